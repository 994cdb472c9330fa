"""Tests for tdkit.traces: traces, TD(lambda), true online TD(lambda), off-line
lambda-return and n-step TD. Expected values come from plain NumPy loops written here."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import dp, traces
from tests.tdkit import mdps

# ----------------------------------------------------------------------------------------
# Independent NumPy oracles (book pseudocode, one step at a time).


def random_episode(rng, num_features, length, gamma=0.9, binary=False):
    """Random features/rewards; discount gamma, zero at the last step (termination)."""
    if binary:
        xs = (rng.random((length + 1, num_features)) < 0.4).astype(float)
    else:
        xs = rng.normal(size=(length + 1, num_features))
    r = rng.normal(size=length)
    d = np.full(length, gamma)
    d[-1] = 0.0
    return xs, r, d


def np_td0(w, xs, r, d, alpha):
    w = w.copy()
    for t in range(len(r)):
        delta = r[t] + d[t] * w @ xs[t + 1] - w @ xs[t]
        w = w + alpha * delta * xs[t]
    return w


def np_td_lambda(w, xs, r, d, alpha, lam, trace):
    """S&B (12.5)-(12.7): z = gamma lambda z + x with gamma the discount INTO S_t."""
    w = w.copy()
    z = np.zeros_like(w)
    gamma_in = 0.0  # z = 0 at the start
    for t in range(len(r)):
        x = xs[t]
        decay = gamma_in * lam
        if trace == "accumulating":
            z = decay * z + x
        elif trace == "replacing":
            z = np.where(x == 1.0, 1.0, decay * z)
        else:
            z = decay * z + (1.0 - alpha * decay * (z @ x)) * x
        delta = r[t] + d[t] * w @ xs[t + 1] - w @ x
        w = w + alpha * delta * z
        gamma_in = d[t]
    return w


def np_n_step_returns_online(w_hist, xs, r, d, t, h, lam):
    """Truncated lambda-return G^lambda_{t:h}; n-step returns bootstrap with w_hist[t+n-1]."""
    def n_step(n):
        g, prod = 0.0, 1.0
        for k in range(t, t + n):
            g += prod * r[k]
            prod *= d[k]
        return g + prod * (w_hist[t + n - 1] @ xs[t + n])

    total = sum((1 - lam) * lam ** (n - 1) * n_step(n) for n in range(1, h - t))
    return total + lam ** (h - t - 1) * n_step(h - t)


def np_online_lambda_return(w, xs, r, d, alpha, lam):
    """Brute-force on-line lambda-return (S&B 12.4): redo all updates at every horizon h."""
    big_t = len(r)
    w_hist = [w.copy()]  # w_hist[k] = w_k^k
    for h in range(1, big_t + 1):
        wh = w_hist[0].copy()
        for t in range(h):
            g = np_n_step_returns_online(w_hist, xs, r, d, t, h, lam)
            wh = wh + alpha * (g - wh @ xs[t]) * xs[t]
        w_hist.append(wh)
    return w_hist[-1]


def np_offline_lambda_return(w, xs, r, d, alpha, lam):
    """End-of-episode pass; G_t^lambda recomputed from scratch with the current weights."""
    w = w.copy()
    big_t = len(r)
    for t in range(big_t):
        g = w @ xs[big_t]
        for k in range(big_t - 1, t - 1, -1):
            g = r[k] + d[k] * ((1 - lam) * (w @ xs[k + 1]) + lam * g)
        w = w + alpha * (g - w @ xs[t]) * xs[t]
    return w


def np_n_step_td(w, xs, r, d, alpha, n):
    """S&B Section 7.1 pseudocode, literally (discount products for general d)."""
    w = w.copy()
    big_t = len(r)
    terminated = d[-1] == 0.0
    t = 0
    while True:
        tau = t - n + 1
        if tau >= 0:
            g, prod = 0.0, 1.0
            for i in range(tau, min(tau + n, big_t)):
                g += prod * r[i]
                prod *= d[i]
            if tau + n < big_t or not terminated:
                g += prod * (w @ xs[min(tau + n, big_t)])
            w = w + alpha * (g - w @ xs[tau]) * xs[tau]
        if tau == big_t - 1:
            return w
        t += 1


def pad(xs, r, d, max_len):
    """Pads an episode to max_len steps with junk (to prove it is ignored)."""
    extra = max_len - len(r)
    junk = 7.0
    return (np.concatenate([xs, np.full((extra, xs.shape[1]), junk)]),
            np.concatenate([r, np.full(extra, junk)]),
            np.concatenate([d, np.full(extra, 0.5)]))


# ----------------------------------------------------------------------------------------
# Trace primitives.


def test_trace_primitives_hand_values():
    z = jnp.array([1.0, 2.0, 0.5])
    x = jnp.array([0.0, 1.0, 1.0])
    np.testing.assert_allclose(traces.accumulating_trace(z, x, 0.5), [0.5, 2.0, 1.25])
    np.testing.assert_allclose(traces.replacing_trace(z, x, 0.5), [0.5, 1.0, 1.0])
    # dutch: 0.5 z = (.5, 1, .25); (0.5 z).x = 1.25; 1 - 0.2 * 1.25 = 0.75.
    np.testing.assert_allclose(
        traces.dutch_trace(z, x, 0.5, 0.2), [0.5, 1.75, 1.0], rtol=1e-6)


def test_tree_accumulating_trace_matches_leafwise():
    z = {"a": jnp.ones((2, 3)), "b": jnp.array([1.0, -1.0])}
    g = {"a": jnp.full((2, 3), 2.0), "b": jnp.array([0.5, 0.5])}
    out = traces.tree_accumulating_trace(z, g, 0.9)
    np.testing.assert_allclose(out["a"], np.full((2, 3), 2.9), rtol=1e-6)
    np.testing.assert_allclose(out["b"], [1.4, -0.4], rtol=1e-5)
    with pytest.raises(AssertionError, match="same structure"):
        traces.tree_accumulating_trace(z, {"a": g["a"]}, 0.9)


def test_trace_primitive_shape_errors():
    with pytest.raises(AssertionError, match="same shape"):
        traces.accumulating_trace(jnp.zeros(3), jnp.zeros(4), 0.5)
    with pytest.raises(AssertionError, match="`decay`"):
        traces.accumulating_trace(jnp.zeros(3), jnp.zeros(3), jnp.ones(3))


# ----------------------------------------------------------------------------------------
# TD(lambda) step and episode functions.


@pytest.mark.parametrize("trace", ["accumulating", "replacing", "dutch"])
def test_td_lambda_update_matches_book_loop_over_episodes(trace):
    """A stream of three episodes back to back: the carried trace resets at termination."""
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        w0 = rng.normal(size=5)
        eps = [random_episode(rng, 5, n, binary=(trace == "replacing")) for n in (6, 1, 9)]
        w_np = w0
        for xs, r, d in eps:
            w_np = np_td_lambda(w_np, xs, r, d, 0.1, 0.8, trace)
        step = jax.jit(traces.td_lambda_update, static_argnames="trace")
        w, z = jnp.asarray(w0), jnp.zeros(5)
        for xs, r, d in eps:
            for t in range(len(r)):
                w, z = step(w, z, xs[t], r[t], d[t], xs[t + 1], 0.1, 0.8, trace=trace)
            np.testing.assert_array_equal(z, 0.0)  # zero after the terminal transition
        np.testing.assert_allclose(w, w_np, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("trace", ["accumulating", "replacing", "dutch"])
def test_run_episode_td_lambda_padded_matches_oracle(trace):
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        w0 = rng.normal(size=4)
        xs, r, d = random_episode(rng, 4, 7, binary=(trace == "replacing"))
        expected = np_td_lambda(w0, xs, r, d, 0.05, 0.9, trace)
        xs_p, r_p, d_p = pad(xs, r, d, 12)
        out = traces.run_episode_td_lambda(
            jnp.asarray(w0), xs_p, r_p, d_p, 0.05, 0.9, trace=trace, length=jnp.asarray(7))
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        out_full = traces.run_episode_td_lambda(jnp.asarray(w0), xs, r, d, 0.05, 0.9, trace)
        np.testing.assert_allclose(out_full, expected, rtol=1e-12, atol=1e-12)


def test_td_lambda_bad_trace_name_and_shapes():
    w = jnp.zeros(3)
    with pytest.raises(ValueError, match="`trace` must be one of"):
        traces.td_lambda_update(w, w, w, 0.0, 1.0, w, 0.1, 0.5, trace="dutchy")
    with pytest.raises(AssertionError, match="same shape"):
        traces.td_lambda_update(w, w, jnp.zeros(4), 0.0, 1.0, w, 0.1, 0.5)
    with pytest.raises(AssertionError, match="`r_t` must have rank 0"):
        traces.td_lambda_update(w, w, w, jnp.zeros(2), 1.0, w, 0.1, 0.5)
    with pytest.raises(AssertionError, match="`xs` must have shape"):
        traces.run_episode_td_lambda(w, jnp.zeros((4, 3)), jnp.zeros(4), jnp.zeros(4), 0.1, 0.5)
    with pytest.raises(AssertionError, match="`length`"):
        traces.run_episode_td_lambda(
            w, jnp.zeros((5, 3)), jnp.zeros(4), jnp.zeros(4), 0.1, 0.5, length=3.0)


def test_td_lambda_tree_update_on_linear_params_matches_linear_update():
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        xs, r, d = random_episode(rng, 3, 5)
        w0 = rng.normal(size=3)
        expected = np_td_lambda(w0, xs, r, d, 0.1, 0.7, "accumulating")
        # params as a pytree {"w": [2], "b": [1]} splitting the three features.
        v_fn = lambda p, x: p["w"] @ x[:2] + p["b"] @ x[2:]
        params = {"w": jnp.asarray(w0[:2]), "b": jnp.asarray(w0[2:])}
        z = traces.init_trace(params)
        step = jax.jit(traces.td_lambda_tree_update, static_argnums=0)
        for t in range(len(r)):
            params, z = step(v_fn, params, z, xs[t], r[t], d[t], xs[t + 1], 0.1, 0.7)
        np.testing.assert_allclose(
            np.concatenate([params["w"], params["b"]]), expected, rtol=1e-12, atol=1e-12)


def test_td_lambda_tree_direction_nonlinear():
    """For an MLP, the direction is delta * (sum of decayed gradients), from manual grads."""
    key = jax.random.key(0)
    k1, k2 = jax.random.split(key)
    params = {"W": jax.random.normal(k1, (3, 4)), "v": jax.random.normal(k2, (4,))}
    v_fn = lambda p, o: jnp.tanh(o @ p["W"]) @ p["v"]
    obs = jax.random.normal(jax.random.key(1), (3, 3))
    z = traces.init_trace(params)
    step = jax.jit(traces.td_lambda_tree_direction, static_argnums=0)
    _, z, _ = step(v_fn, params, z, obs[0], 0.5, 0.9, obs[1], 0.8)
    direction, _, delta = step(v_fn, params, z, obs[1], -1.0, 0.9, obs[2], 0.8)
    g0 = jax.grad(v_fn)(params, obs[0])
    g1 = jax.grad(v_fn)(params, obs[1])
    manual_delta = -1.0 + 0.9 * v_fn(params, obs[2]) - v_fn(params, obs[1])
    np.testing.assert_allclose(delta, manual_delta, rtol=1e-5)
    for name in params:
        np.testing.assert_allclose(
            direction[name], manual_delta * (0.9 * 0.8 * g0[name] + g1[name]),
            rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------------------
# True online TD(lambda) and the lambda-return algorithms.


def test_true_online_equals_brute_force_online_lambda_return():
    """van Seijen & Sutton (2014): exact equality for linear v, over several episodes."""
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        w_np = rng.normal(size=4)
        w = jnp.asarray(w_np)
        run = jax.jit(traces.run_episode_true_online_td_lambda)
        for length, lam, alpha in [(6, 0.8, 0.1), (9, 0.5, 0.05), (4, 0.95, 0.2), (7, 1.0, 0.1)]:
            xs, r, d = random_episode(rng, 4, length)
            w_np = np_online_lambda_return(w_np, xs, r, d, alpha, lam)
            w = run(w, xs, r, d, alpha, lam)
            np.testing.assert_allclose(w, w_np, rtol=0, atol=1e-10)


def test_true_online_step_carries_state_across_episodes():
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        w_np = rng.normal(size=3)
        w = jnp.asarray(w_np)
        state = traces.init_true_online(w)
        for length in (5, 3):
            xs, r, d = random_episode(rng, 3, length, gamma=1.0)
            w_np = np_online_lambda_return(w_np, xs, r, d, 0.1, 0.9)
            for t in range(length):
                w, state = traces.true_online_td_lambda_update(
                    w, state, xs[t], r[t], d[t], xs[t + 1], 0.1, 0.9)
            np.testing.assert_array_equal(state.z, 0.0)
        np.testing.assert_allclose(w, w_np, rtol=0, atol=1e-10)


def test_offline_lambda_return_matches_brute_force_with_current_weights():
    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        w0 = rng.normal(size=4)
        xs, r, d = random_episode(rng, 4, 8)
        for lam in (0.0, 0.6, 1.0):
            expected = np_offline_lambda_return(w0, xs, r, d, 0.1, lam)
            out = traces.run_episode_offline_lambda_return(jnp.asarray(w0), xs, r, d, 0.1, lam)
            np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
            xs_p, r_p, d_p = pad(xs, r, d, 13)
            out_p = traces.run_episode_offline_lambda_return(
                jnp.asarray(w0), xs_p, r_p, d_p, 0.1, lam, length=jnp.asarray(8))
            np.testing.assert_allclose(out_p, expected, rtol=1e-12, atol=1e-12)


def test_offline_lambda_return_truncated_episode_bootstraps():
    rng = np.random.default_rng(6)
    with jax.enable_x64(True):
        w0 = rng.normal(size=3)
        xs, r, d = random_episode(rng, 3, 6)
        d[-1] = 0.9  # cut by a time limit: bootstrap from xs[6]
        expected = np_offline_lambda_return(w0, xs, r, d, 0.1, 0.7)
        out = traces.run_episode_offline_lambda_return(jnp.asarray(w0), xs, r, d, 0.1, 0.7)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_lambda_zero_is_td0_for_all_lambda_methods():
    """Episodes of lengths 1, 4 and 11, padded to one shape (one compilation per method)."""
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        fns = {
            "td_lambda": jax.jit(lambda w, xs, r, d, n: traces.run_episode_td_lambda(
                w, xs, r, d, 0.1, 0.0, length=n)),
            "true_online": jax.jit(lambda w, xs, r, d, n: (
                traces.run_episode_true_online_td_lambda(w, xs, r, d, 0.1, 0.0, length=n))),
            "offline": jax.jit(lambda w, xs, r, d, n: (
                traces.run_episode_offline_lambda_return(w, xs, r, d, 0.1, 0.0, length=n))),
            "n_step_1": jax.jit(lambda w, xs, r, d, n: traces.run_episode_n_step_td(
                w, xs, r, d, 0.1, 1, length=n)),
        }
        w = rng.normal(size=5)
        for length in (1, 4, 11):
            xs, r, d = random_episode(rng, 5, length)
            expected = np_td0(w, xs, r, d, 0.1)
            padded = pad(xs, r, d, 11)
            for name, fn in fns.items():
                out = fn(jnp.asarray(w), *padded, length)
                np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12, err_msg=name)
            w = expected


# ----------------------------------------------------------------------------------------
# n-step TD.


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8, 512])
def test_n_step_td_matches_book_pseudocode(n):
    rng = np.random.default_rng(10 + n)
    with jax.enable_x64(True):
        w0 = rng.normal(size=4)
        for gamma in (1.0, 0.9):
            xs, r, d = random_episode(rng, 4, 9, gamma=gamma)
            expected = np_n_step_td(w0, xs, r, d, 0.1, n)
            out = traces.run_episode_n_step_td(jnp.asarray(w0), xs, r, d, 0.1, n)
            np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)
        d[-1] = 0.9  # truncated: the last windows bootstrap from xs[T]
        expected = np_n_step_td(w0, xs, r, d, 0.1, n)
        out = traces.run_episode_n_step_td(jnp.asarray(w0), xs, r, d, 0.1, n)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


def test_n_step_td_vmapped_over_episodes_n_and_alpha_compiles_once():
    """Figure 7.2 layout: padded random-walk episodes, one jitted vmap over (run, n, alpha)."""
    rng = np.random.default_rng(11)
    with jax.enable_x64(True):
        episodes = [mdps.sample_random_walk(rng, 19)[1:] for _ in range(3)]
        max_len = max(len(e[1]) for e in episodes)
        padded = [pad(*e, max_len) for e in episodes]
        xs = jnp.asarray(np.stack([p[0] for p in padded]))
        r = jnp.asarray(np.stack([p[1] for p in padded]))
        d = jnp.asarray(np.stack([p[2] for p in padded]))
        lengths = jnp.asarray([len(e[1]) for e in episodes])
        ns = jnp.asarray([1, 4, 512])
        alphas = jnp.asarray([0.0, 0.2, 0.6])

        @jax.jit
        @chex.assert_max_traces(n=1)
        def sweep(w, xs, r, d, lengths, ns, alphas):
            per_alpha = jax.vmap(traces.run_episode_n_step_td,
                                 in_axes=(None, None, None, None, 0, None, None))
            per_n = jax.vmap(per_alpha, in_axes=(None, None, None, None, None, 0, None))
            per_run = jax.vmap(per_n, in_axes=(None, 0, 0, 0, None, None, 0))
            return per_run(w, xs, r, d, alphas, ns, lengths)

        w0 = jnp.zeros(19)
        out = sweep(w0, xs, r, d, lengths, ns, alphas)
        assert out.shape == (3, 3, 3, 19)
        for i, (ex, er, ed) in enumerate(episodes):
            for j, n in enumerate([1, 4, 512]):
                for k, alpha in enumerate([0.0, 0.2, 0.6]):
                    expected = np_n_step_td(np.zeros(19), ex, er, ed, alpha, n)
                    np.testing.assert_allclose(out[i, j, k], expected, rtol=0, atol=1e-10)
        sweep(w0 + 1.0, xs, r, d, lengths, ns, alphas * 0.5)  # no retrace


def test_n_step_window_hand_values_across_an_episode_boundary():
    # Two episodes back to back: steps 0-2 (terminal at 2), then steps 3-4.
    r = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])
    d = jnp.array([0.5, 0.5, 0.0, 0.5, 0.5])
    prefix = traces.n_step_prefix(r, d)
    np.testing.assert_allclose(prefix.reward_to_go, [2.75, 3.5, 3.0, 6.5, 5.0, 0.0])
    np.testing.assert_array_equal(prefix.zero_prefix, [0, 0, 0, 1, 1, 1])
    reward_sum, prod, end = traces.n_step_window(prefix, jnp.arange(5), 2, 5)
    # G_{0:2} = 1 + 0.5 * 2 + 0.25 v(S_2); G_{1:3} = 2 + 0.5 * 3 (the episode ends at 2);
    # G_{2:4} = 3; G_{3:5} = 4 + 0.5 * 5 + 0.25 v(S_5); G_{4:5} = 5 + 0.5 v(S_5).
    np.testing.assert_allclose(reward_sum, [2.0, 3.5, 3.0, 6.5, 5.0])
    np.testing.assert_allclose(prod, [0.25, 0.0, 0.0, 0.25, 0.5])
    np.testing.assert_array_equal(end, [2, 3, 4, 5, 5])
    w, x, xb = jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    # target 2 + 0.25 * 2 = 2.5, prediction 1: w + 0.1 * 1.5 * x.
    np.testing.assert_allclose(traces.n_step_td_step(w, x, xb, 2.0, 0.25, 0.1), [1.15, 2.0])


def test_lambda_return_coefficients_give_the_recursive_lambda_return():
    rng = np.random.default_rng(3)
    xs = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
    r = jnp.asarray(rng.normal(size=5), jnp.float32)
    d = jnp.array([0.9, 0.9, 0.0, 0.9, 0.9], jnp.float32)
    w = jnp.asarray(rng.normal(size=3), jnp.float32)
    lam = 0.7
    cs, gs = traces.lambda_return_coefficients(xs, r, d, lam)
    v = np.asarray(xs @ w, np.float64)
    g_next, expected = v[5], np.zeros(5)
    for t in reversed(range(5)):  # G_t = r_t + d_t ((1 - lam) v_{t+1} + lam G_{t+1})
        expected[t] = r[t] + d[t] * ((1 - lam) * v[t + 1] + lam * g_next)
        g_next = expected[t]
    np.testing.assert_allclose(cs + gs @ w, expected, rtol=1e-5, atol=1e-5)
    # Padding: with length 4, G_3 bootstraps from xs[4] (G_4 = w.x_4).
    cs4, gs4 = traces.lambda_return_coefficients(xs, r, d, lam, length=4)
    np.testing.assert_allclose(cs4[3] + gs4[3] @ w, r[3] + d[3] * v[4], rtol=1e-5)
    step = traces.offline_lambda_return_step(w, xs[0], cs[0], gs[0], 0.1)
    np.testing.assert_allclose(step, w + 0.1 * (expected[0] - v[0]) * xs[0], rtol=1e-5)
    with pytest.raises(AssertionError, match="argument `xs` must have T \\+ 1"):
        traces.lambda_return_coefficients(xs[:-1], r, d, lam)


def test_n_step_td_bad_n():
    w = jnp.zeros(2)
    with pytest.raises(ValueError, match="`n` must be >= 1"):
        traces.run_episode_n_step_td(w, jnp.zeros((3, 2)), jnp.zeros(2), jnp.zeros(2), 0.1, 0)
    with pytest.raises(AssertionError, match="`n`"):
        traces.run_episode_n_step_td(w, jnp.zeros((3, 2)), jnp.zeros(2), jnp.zeros(2), 0.1, 2.0)


# ----------------------------------------------------------------------------------------
# Published exact facts.


def test_example_6_2_initial_rms_and_first_td0_update():
    """5-state walk: RMS at episode 0 is sqrt(1/18); after one TD(0) episode (alpha = 0.1)
    only V(A) or V(E) has moved, by exactly 0.05."""
    task = mdps.random_walk(5)
    with jax.enable_x64(True):
        v_true = dp.true_values(task.P, task.r, task.gamma)
        np.testing.assert_allclose(v_true, np.arange(1, 6) / 6.0, rtol=0, atol=1e-14)
        w0 = jnp.full(5, 0.5)
        uniform = jnp.full(5, 0.2)
        rms0 = dp.rms_value_error(w0, jnp.asarray(task.X), v_true, uniform)
        np.testing.assert_allclose(rms0, np.sqrt(1.0 / 18.0), rtol=0, atol=1e-14)
        rng = np.random.default_rng(12)
        seen_sides = set()
        run = jax.jit(traces.run_episode_td_lambda)  # padded to 400 steps: one compilation
        for _ in range(8):
            states, xs, r, d = mdps.sample_random_walk(rng, 5)
            w1 = run(w0, *pad(xs, r, d, 400), 0.1, 0.0, length=len(r))
            change = np.asarray(w1 - w0)
            moved = np.nonzero(change)[0]
            side = 4 if states[-1] == 5 else 0
            seen_sides.add(side)
            np.testing.assert_array_equal(moved, [side])
            np.testing.assert_allclose(
                change[side], 0.05 if side == 4 else -0.05, rtol=0, atol=1e-15)
        assert seen_sides == {0, 4}


def test_figure_7_2_alpha_zero_error_is_sqrt_0_3():
    task = mdps.random_walk(19)
    with jax.enable_x64(True):
        v_true = dp.true_values(task.P, task.r, task.gamma)
        np.testing.assert_allclose(v_true, (np.arange(1, 20) - 10) / 10.0, rtol=0, atol=1e-12)
        rng = np.random.default_rng(13)
        _, xs, r, d = mdps.sample_random_walk(rng, 19)
        w0 = jnp.zeros(19)
        uniform = jnp.full(19, 1.0 / 19.0)
        run = jax.jit(traces.run_episode_n_step_td)
        for n in (1, 4, 512):
            w = run(w0, xs, r, d, 0.0, n)
            rms = dp.rms_value_error(w, jnp.asarray(task.X), v_true, uniform)
            np.testing.assert_allclose(rms, np.sqrt(0.3), rtol=0, atol=1e-14)


def test_episode_functions_vmap_over_alpha_lambda_compile_once():
    rng = np.random.default_rng(14)
    xs, r, d = (jnp.asarray(a, jnp.float32) for a in random_episode(rng, 3, 6))
    alphas = jnp.asarray([0.01, 0.1], jnp.float32)
    lambdas = jnp.asarray([0.0, 0.5, 0.9], jnp.float32)
    for fn in (traces.run_episode_td_lambda, traces.run_episode_true_online_td_lambda,
               traces.run_episode_offline_lambda_return):
        counted = chex.assert_max_traces(fn, n=1)
        inner = jax.vmap(counted, in_axes=(None, None, None, None, None, 0))
        swept = jax.jit(jax.vmap(inner, in_axes=(None, None, None, None, 0, None)))
        out = swept(jnp.zeros(3), xs, r, d, alphas, lambdas)
        assert out.shape == (2, 3, 3) and out.dtype == jnp.float32
        chex.assert_tree_all_finite(out)
        swept(jnp.ones(3), xs, r * 2.0, d, alphas, lambdas)
