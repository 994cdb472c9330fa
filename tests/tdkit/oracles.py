"""Plain-Python oracles for multi-step returns (independent of tdkit's implementations).

They follow the textbook definitions (sums of discounted rewards, forward-view weighted
averages of n-step returns, Munos et al.'s sum of traced TD errors), not the backward
recursions that tdkit uses, so agreement is evidence of correctness.
"""

import numpy as np


def n_step_return(r, d, v, i, n):
    """G_{i:i+n} = r[i] + d[i] r[i+1] + ... + (d[i] ... d[i+n-1]) v[i+n-1], cut at the end."""
    T = len(r)
    g, scale = 0.0, 1.0
    last = min(i + n, T) - 1
    for k in range(i, last + 1):
        g += scale * r[k]
        scale *= d[k]
    return g + scale * v[last]


def discounted_returns(r, d, v_last):
    T = len(r)
    out = []
    for i in range(T):
        g, scale = 0.0, 1.0
        for k in range(i, T):
            g += scale * r[k]
            scale *= d[k]
        out.append(g + scale * v_last)
    return np.array(out)


def lambda_returns_forward_view(r, d, v, lam):
    """Forward view, scalar lambda: (1-lam) sum_n lam^(n-1) G_{i:i+n} + lam^(T-i-1) G_{i:T}."""
    T = len(r)
    out = []
    for i in range(T):
        horizon = T - i
        g = sum((1 - lam) * lam ** (n - 1) * n_step_return(r, d, v, i, n)
                for n in range(1, horizon))
        g += lam ** (horizon - 1) * n_step_return(r, d, v, i, horizon)
        out.append(g)
    return np.array(out)


def lambda_returns_per_step(r, d, v, lam):
    """Per-step lambda: expand G_i recursively by hand as nested sums, one step at a time."""
    T = len(r)
    out = np.zeros(T)
    for i in range(T):
        # G_i = sum over k >= i of (prod_{j<k} d_j lam_j) * (r_k + d_k (1 - lam_k) v_k)
        #       + (prod_{j<T} d_j lam_j) * v_{T-1}   [bootstrap of the final step]
        g, scale = 0.0, 1.0
        for k in range(i, T):
            g += scale * (r[k] + d[k] * (1 - lam[k]) * v[k])
            scale *= d[k] * lam[k]
        g += scale * v[T - 1]
        out[i] = g
    return out


def retrace_targets(Q, a, r, d, pi, c):
    """Munos et al. 2016: Q_ret(x_s, a_s) = Q(x_s, a_s) + sum_{t>=s} (prod c * discounts) delta_t.

    Q: [T+1, A] consistent action values (Q[i] at step i), a: [T+1] actions (a[0] = a_tm1[0]),
    r, d: [T], pi: [T+1, A], c: [T+1] (c[t] is the trace of a[t]).
    delta_t = r[t] + d[t] E_pi Q[t+1] - Q[t, a[t]].
    """
    T = len(r)
    out = np.zeros(T)
    exp_q = (pi * Q).sum(-1)
    delta = [r[t] + d[t] * exp_q[t + 1] - Q[t, a[t]] for t in range(T)]
    for s in range(T):
        total, scale = 0.0, 1.0
        for t in range(s, T):
            if t > s:
                scale *= d[t - 1] * c[t]
            total += scale * delta[t]
        out[s] = Q[s, a[s]] + total
    return out
