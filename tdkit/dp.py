"""Expected (DP-style) updates and error measures for small MDPs with linear features.

A small MDP under the target policy pi is given by arrays:

- `P [S, S]`: `P[s, s'] = Pr(S_{t+1} = s' | S_t = s)` between NON-terminal states; in an
  episodic task a row sums to less than one (the rest of the mass ends the episode).
- `r [S]`: expected reward on leaving `s`, `E_pi[R_{t+1} | S_t = s]`.
- `gamma []`: the discount.
- `X [S, F]`: features, one row per state; `v_w = X w`.
- `mu [S]`: the state distribution that weights the errors (and the updates): the on-policy
  distribution, or the behaviour policy's distribution off-policy.

With `D = diag(mu)` and the expected TD error vector `delta_w = r + gamma P X w - X w`
(`bellman_error`), the expected updates are those of S&B (11.9) and Section 11.7:

| update | rule |
|---|---|
| semi-gradient TD / DP | `w += alpha X^T D delta_w` |
| TDC | `w += alpha (X^T D delta_w - gamma (P X)^T D X h)`, `h += beta X^T D (delta_w - X h)` |
| GTD2 | `w += alpha (X - gamma P X)^T D X h`, `h += beta X^T D (delta_w - X h)` |
| emphatic TD | `w += alpha X^T diag(m) delta_w`, `m` the emphasis-weighted distribution |

Off-policy, `E_b[rho_t * f(S_t, S_{t+1}) | S_t = s] = sum_s' P_pi[s, s'] f(s, s')`, so the same
formulas give the expectation of the sample updates of `tdkit.gradient_td` and
`tdkit.emphatic` under the behaviour distribution `mu`. With `mu` uniform they are the
book's sweeps "over all states, divided by the number of states" (Baird, Figure 11.2).

Everything here is jittable and vmappable (step sizes are ordinary arguments).
"""

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks
from tdkit.gradient_td import GTDState

Array = chex.Array
Numeric = chex.Numeric


def _check_mdp(fn: str, P: Array, r: Array, gamma: Numeric, X: Array | None = None) -> None:
    _checks.assert_inputs(fn, P=(P, 2, float), r=(r, 1, float), gamma=(gamma, 0, float))
    if P.shape[0] != P.shape[1]:
        raise AssertionError(f"[Chex] {fn}: argument `P` must be square [S, S], got {P.shape}")
    _checks.assert_same_leading_dim(fn, P=P, r=r)
    if X is not None:
        _checks.assert_inputs(fn, X=(X, 2, float))
        _checks.assert_same_leading_dim(fn, P=P, X=X)


def _check_w(fn: str, X: Array, **vectors: Array) -> None:
    for name, v in vectors.items():
        _checks.assert_inputs(fn, **{name: (v, 1, float)})
        if v.shape[0] != X.shape[1]:
            raise AssertionError(
                f"[Chex] {fn}: argument `{name}` must have shape [F] = {(X.shape[1],)} "
                f"(one entry per feature of `X`), got {v.shape}")


def _check_mu(fn: str, mu: Array, X: Array, name: str = "mu") -> None:
    _checks.assert_inputs(fn, **{name: (mu, 1, float)})
    if mu.shape[0] != X.shape[0]:
        raise AssertionError(
            f"[Chex] {fn}: argument `{name}` must have shape [S] = {(X.shape[0],)} "
            f"(one entry per state), got {mu.shape}")


def true_values(P: Array, r: Array, gamma: Numeric) -> Array:
    """True state values `v_pi = (I - gamma P)^{-1} r`.

    Args:
      P: transitions between non-terminal states, shape `[S, S]`.
      r: expected rewards, shape `[S]`.
      gamma: discount, shape `[]`.

    Returns:
      `v_pi`, shape `[S]`.
    """
    _check_mdp("true_values", P, r, gamma)
    eye = jnp.eye(P.shape[0], dtype=P.dtype)
    return jnp.linalg.solve(eye - gamma * P, r)


def episodic_state_distribution(P: Array, start: Array) -> Array:
    """On-policy distribution of an episodic task (S&B (9.2)-(9.3)).

    Expected visits `eta = start + P^T eta`, normalised: `mu = eta / sum(eta)`.

    Args:
      P: transitions between non-terminal states (rows sum to < 1 where episodes end),
        shape `[S, S]`.
      start: start-state distribution, shape `[S]`.

    Returns:
      `mu`, shape `[S]`, summing to one.
    """
    _checks.assert_inputs(
        "episodic_state_distribution", P=(P, 2, float), start=(start, 1, float))
    _checks.assert_same_leading_dim("episodic_state_distribution", P=P, start=start)
    eye = jnp.eye(P.shape[0], dtype=P.dtype)
    eta = jnp.linalg.solve(eye - P.T, start)
    return eta / jnp.sum(eta)


def bellman_error(w: Array, P: Array, r: Array, gamma: Numeric, X: Array) -> Array:
    """Expected TD errors `delta_w = r + gamma P X w - X w` (the Bellman error vector).

    Args:
      w: weights, shape `[F]`.
      P: transitions, shape `[S, S]`.
      r: expected rewards, shape `[S]`.
      gamma: discount, shape `[]`.
      X: features, shape `[S, F]`.

    Returns:
      `delta_w`, shape `[S]`.
    """
    _check_mdp("bellman_error", P, r, gamma, X)
    _check_w("bellman_error", X, w=w)
    v = X @ w
    return r + gamma * (P @ v) - v


def value_error(w: Array, X: Array, v_true: Array, mu: Array) -> Array:
    """Value error `VE(w) = sum_s mu(s) (v_true(s) - x(s) . w)^2` (S&B (9.1)).

    Args:
      w: weights, shape `[F]`.
      X: features, shape `[S, F]`.
      v_true: true values, shape `[S]`.
      mu: state distribution, shape `[S]`.

    Returns:
      `VE(w)`, shape `[]`. Take its square root for the RMS error (`rms_value_error`).
    """
    fn = "value_error"
    _checks.assert_inputs(fn, X=(X, 2, float))
    _check_w(fn, X, w=w)
    _check_mu(fn, v_true, X, "v_true")
    _check_mu(fn, mu, X)
    return jnp.sum(mu * (v_true - X @ w) ** 2)


def rms_value_error(w: Array, X: Array, v_true: Array, mu: Array) -> Array:
    """`sqrt(VE(w))`: the root-mean-squared value error under `mu`.

    With `mu` uniform this is the RMS error over states of S&B Figures 6.2, 7.2, 12.3.
    Same arguments as `value_error`; returns shape `[]`.
    """
    return jnp.sqrt(value_error(w, X, v_true, mu))


def projected_bellman_error(
    w: Array, P: Array, r: Array, gamma: Numeric, X: Array, mu: Array
) -> Array:
    """Projected Bellman error `PBE(w) = ||Pi delta_w||^2_mu` (S&B (11.22), (11.27)).

    `= (X^T D delta_w)^T (X^T D X)^{-1} (X^T D delta_w)`, computed as a weighted least-squares
    projection so that it also holds when `X^T D X` is singular (more features than states,
    as in Baird's counterexample, where the pseudo-inverse is the right projection).

    Args:
      w: weights, shape `[F]`.
      P: transitions, shape `[S, S]`.
      r: expected rewards, shape `[S]`.
      gamma: discount, shape `[]`.
      X: features, shape `[S, F]`.
      mu: state distribution, shape `[S]`.

    Returns:
      `PBE(w)`, shape `[]`.
    """
    fn = "projected_bellman_error"
    _check_mdp(fn, P, r, gamma, X)
    _check_w(fn, X, w=w)
    _check_mu(fn, mu, X)
    delta = bellman_error(w, P, r, gamma, X)
    sqrt_mu = jnp.sqrt(mu)
    u, *_ = jnp.linalg.lstsq(sqrt_mu[:, None] * X, sqrt_mu * delta)
    projected = X @ u
    return jnp.sum(mu * projected**2)


def rms_projected_bellman_error(
    w: Array, P: Array, r: Array, gamma: Numeric, X: Array, mu: Array
) -> Array:
    """`sqrt(PBE(w))`, as plotted in S&B Figure 11.5. Same arguments as
    `projected_bellman_error`; returns shape `[]`."""
    return jnp.sqrt(projected_bellman_error(w, P, r, gamma, X, mu))


def td_fixed_point(P: Array, r: Array, gamma: Numeric, X: Array, mu: Array) -> Array:
    """The TD fixed point `w_TD` (S&B (9.12)), where `PBE(w_TD) = 0`.

    Solves `A w = b` with `A = X^T D (I - gamma P) X`, `b = X^T D r`: the asymptotic LSTD
    solution, and the fixed point of TD(0), TDC and GTD2. A least-squares solve returns the
    minimum-norm solution when `A` is singular.

    Args:
      P: transitions, shape `[S, S]`.
      r: expected rewards, shape `[S]`.
      gamma: discount, shape `[]`.
      X: features, shape `[S, F]`.
      mu: state distribution, shape `[S]`.

    Returns:
      `w_TD`, shape `[F]`.
    """
    fn = "td_fixed_point"
    _check_mdp(fn, P, r, gamma, X)
    _check_mu(fn, mu, X)
    xd = X.T * mu
    A = xd @ (X - gamma * (P @ X))
    b = xd @ r
    w, *_ = jnp.linalg.lstsq(A, b)
    return w


def expected_td_update(
    w: Array, P: Array, r: Array, gamma: Numeric, X: Array, mu: Array, alpha: Numeric
) -> Array:
    """One sweep of semi-gradient DP / expected TD(0) (S&B (11.9)):

    `w <- w + alpha * sum_s mu(s) delta_w(s) x(s) = w + alpha X^T D delta_w`.

    With `mu = 1 / S` (uniform) this is the book's sweep over all states divided by `S`.

    Args:
      w: weights, shape `[F]`.
      P: transitions, shape `[S, S]`.
      r: expected rewards, shape `[S]`.
      gamma: discount, shape `[]`.
      X: features, shape `[S, F]`.
      mu: state weighting, shape `[S]`.
      alpha: step size, shape `[]`.

    Returns:
      The new weights, shape `[F]`.
    """
    fn = "expected_td_update"
    _check_mu(fn, mu, X)
    _checks.assert_inputs(fn, alpha=(alpha, 0, float))
    delta = bellman_error(w, P, r, gamma, X)
    return w + alpha * (X.T @ (mu * delta))


def _expected_aux_update(
    h: Array, delta: Array, X: Array, mu: Array, beta: Numeric
) -> Array:
    # E_b[rho (delta - h.x) x] = X^T D (delta_w - X h): both rho terms average to P_pi.
    return h + beta * (X.T @ (mu * (delta - X @ h)))


def expected_tdc_update(
    state: GTDState,
    P: Array,
    r: Array,
    gamma: Numeric,
    X: Array,
    mu: Array,
    alpha: Numeric,
    beta: Numeric,
) -> GTDState:
    """One expected TDC sweep (S&B Figure 11.5, right; both vectors updated synchronously):

    `w <- w + alpha (X^T D delta_w - gamma (P X)^T D X h)`,
    `h <- h + beta X^T D (delta_w - X h)`, both from the old `(w, h)`.

    The expectation of `tdkit.gradient_td.tdc_update` under the state distribution `mu`.

    Args:
      state: `GTDState(w [F], h [F])`.
      P: transitions, shape `[S, S]`.
      r: expected rewards, shape `[S]`.
      gamma: discount, shape `[]`.
      X: features, shape `[S, F]`.
      mu: state distribution, shape `[S]`.
      alpha: main step size, shape `[]`.
      beta: auxiliary step size, shape `[]`.

    Returns:
      The new `GTDState`.
    """
    fn = "expected_tdc_update"
    w, h = state
    _check_w(fn, X, h=h)
    _check_mu(fn, mu, X)
    _checks.assert_inputs(fn, alpha=(alpha, 0, float), beta=(beta, 0, float))
    delta = bellman_error(w, P, r, gamma, X)
    xh = X @ h
    w_new = w + alpha * (X.T @ (mu * delta) - gamma * ((P @ X).T @ (mu * xh)))
    return GTDState(w_new, _expected_aux_update(h, delta, X, mu, beta))


def expected_gtd2_update(
    state: GTDState,
    P: Array,
    r: Array,
    gamma: Numeric,
    X: Array,
    mu: Array,
    alpha: Numeric,
    beta: Numeric,
) -> GTDState:
    """One expected GTD2 sweep, both vectors updated synchronously:

    `w <- w + alpha (X - gamma P X)^T D X h`, `h <- h + beta X^T D (delta_w - X h)`.

    The expectation of `tdkit.gradient_td.gtd2_update` under the state distribution `mu`.
    Same arguments as `expected_tdc_update`; returns the new `GTDState`.
    """
    fn = "expected_gtd2_update"
    w, h = state
    _check_w(fn, X, h=h)
    _check_mu(fn, mu, X)
    _checks.assert_inputs(fn, alpha=(alpha, 0, float), beta=(beta, 0, float))
    delta = bellman_error(w, P, r, gamma, X)
    xh = X @ h
    w_new = w + alpha * ((X - gamma * (P @ X)).T @ (mu * xh))
    return GTDState(w_new, _expected_aux_update(h, delta, X, mu, beta))


def expected_followon_update(
    f: Array, P: Array, gamma: Numeric, mu: Array, interest: Numeric = 1.0
) -> Array:
    """Advances the expected follow-on trace by one step: `f <- mu * i + gamma P^T f`.

    `f(s) = E_b[F_t 1(S_t = s)]` for the behaviour process started in its stationary
    distribution `mu` with `F_{-1} = 0` (so start from `f = 0`); for one-step emphatic TD
    (lambda = 0) the emphasis is `M_t = F_t`, so `f` is the emphasis-weighted distribution of
    that step. `f` tends to `expected_emphasis(P, gamma, mu, interest)`.

    Args:
      f: expected follow-on trace, shape `[S]`.
      P: TARGET-policy transitions, shape `[S, S]`.
      gamma: discount, shape `[]`.
      mu: behaviour state distribution, shape `[S]`.
      interest: interest `i(s)`, a scalar or shape `[S]`.

    Returns:
      The next `f`, shape `[S]`.
    """
    fn = "expected_followon_update"
    _checks.assert_inputs(
        fn, f=(f, 1, float), P=(P, 2, float), gamma=(gamma, 0, float), mu=(mu, 1, float),
        interest=(interest, {0, 1}, float))
    _checks.assert_same_leading_dim(fn, f=f, P=P, mu=mu)
    return mu * interest + gamma * (P.T @ f)


def expected_emphasis(P: Array, gamma: Numeric, mu: Array, interest: Numeric = 1.0) -> Array:
    """Stationary emphasis-weighted distribution `m = (I - gamma P^T)^{-1} (mu * i)`.

    (Sutton, Mahmood & White 2016, with lambda = 0.) The limit of
    `expected_followon_update`; `m(s) / mu(s)` is the expected emphasis in state `s`.

    Args:
      P: TARGET-policy transitions, shape `[S, S]`.
      gamma: discount, shape `[]`.
      mu: behaviour state distribution, shape `[S]`.
      interest: interest, a scalar or shape `[S]`.

    Returns:
      `m`, shape `[S]`.
    """
    fn = "expected_emphasis"
    _checks.assert_inputs(
        fn, P=(P, 2, float), gamma=(gamma, 0, float), mu=(mu, 1, float),
        interest=(interest, {0, 1}, float))
    _checks.assert_same_leading_dim(fn, P=P, mu=mu)
    eye = jnp.eye(P.shape[0], dtype=P.dtype)
    return jnp.linalg.solve(eye - gamma * P.T, mu * interest)


def expected_emphatic_td_update(
    w: Array,
    emphasis: Array,
    P: Array,
    r: Array,
    gamma: Numeric,
    X: Array,
    alpha: Numeric,
) -> Array:
    """One expected one-step emphatic-TD sweep (S&B Section 11.8, Figure 11.6):

    `w <- w + alpha * sum_s m(s) delta_w(s) x(s) = w + alpha X^T diag(m) delta_w`.

    `m` is the emphasis-weighted state distribution `E_b[M_t 1(S_t = s)]`: pass
    `expected_emphasis(...)` for the stationary one, or carry `f` from
    `expected_followon_update` (starting at zero) for the exact expectation of the emphasis
    of a process started with `M_{-1} = 0`.

    Args:
      w: weights, shape `[F]`.
      emphasis: `m`, shape `[S]`.
      P: TARGET-policy transitions, shape `[S, S]`.
      r: expected rewards under the target policy, shape `[S]`.
      gamma: discount, shape `[]`.
      X: features, shape `[S, F]`.
      alpha: step size, shape `[]`.

    Returns:
      The new weights, shape `[F]`.
    """
    fn = "expected_emphatic_td_update"
    _check_mu(fn, emphasis, X, "emphasis")
    _checks.assert_inputs(fn, alpha=(alpha, 0, float))
    delta = bellman_error(w, P, r, gamma, X)
    return w + alpha * (X.T @ (emphasis * delta))


def iterate(update: Callable[[Any], Any], state: Any, num_sweeps: int) -> tuple[Any, Any]:
    """Applies `update` `num_sweeps` times with `lax.scan`, keeping every intermediate state.

    Example, 1000 sweeps of semi-gradient DP on Baird's counterexample::

      w_final, ws = iterate(lambda w: expected_td_update(w, P, r, g, X, mu, 0.01), w0, 1000)

    Args:
      update: `state -> state`, a pure function of a pytree.
      state: the initial state (any pytree).
      num_sweeps: number of applications, a Python int >= 0 (static).

    Returns:
      `(final_state, history)`: `history` has a leading axis `[num_sweeps + 1]` holding the
      initial state followed by the state after each sweep.
    """
    if not isinstance(num_sweeps, int) or isinstance(num_sweeps, bool) or num_sweeps < 0:
        raise ValueError(f"iterate: argument `num_sweeps` must be a Python int >= 0, got "
                         f"{num_sweeps!r}")

    def body(s, _):
        s = update(s)
        return s, s

    final, history = jax.lax.scan(body, state, None, length=num_sweeps)
    history = jax.tree.map(
        lambda s0, hs: jnp.concatenate([jnp.asarray(s0, hs.dtype)[None], hs]), state, history)
    return final, history
