"""Tests of agents.textbook.prediction against plain NumPy loops of the book's algorithms.

Episodes are sampled with tests/tdkit/mdps.py (independent of the code under test) and put
back to back into a `Stream`; each oracle processes the same episodes one at a time.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.textbook import prediction
from tests.tdkit import mdps

N = 5  # states of the random walk


@pytest.fixture(scope="module")
def episodes():
    rng = np.random.default_rng(0)
    return [mdps.sample_random_walk(rng, N) for _ in range(6)]


def to_stream(episodes, features=None):
    """Episodes back to back; `features [N, F]` (default one-hot), terminal rows zero."""
    xs, r, d = [], [], []
    for states, ep_xs, ep_r, ep_d in episodes:
        rows = ep_xs if features is None else np.stack(
            [features[s] if 0 <= s < N else np.zeros(features.shape[1]) for s in states])
        xs.append(rows[:-1])
        r.append(ep_r)
        d.append(ep_d)
    xs.append(rows[-1:])
    r, d = np.concatenate(r), np.concatenate(d)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return prediction.Stream(f32(np.concatenate(xs)), f32(r), f32(d), f32(np.ones_like(r)),
                             jnp.asarray(d == 0))


def run(method, stream, hparams, w0=None, **kwargs):
    predictor = prediction.make_predictor(method, **kwargs)
    w0 = jnp.zeros(stream.xs.shape[1], jnp.float32) if w0 is None else w0
    num_records = int(np.sum(np.asarray(stream.record)))
    state, records = jax.jit(lambda s: predictor.run(
        predictor.init(w0, hparams), s, lambda w: w, num_records))(stream)
    return state, np.asarray(records)


def n_step_oracle(episodes, alpha, n, v):
    """Book Section 7.1 pseudocode (gamma = 1), tabular; values after each episode."""
    out = []
    for states, _, rewards, _ in episodes:
        T = len(rewards)
        for tau in range(T):
            end = min(tau + n, T)
            G = rewards[tau:end].sum()
            if tau + n < T:
                G += v[states[tau + n]]
            v[states[tau]] += alpha * (G - v[states[tau]])
        out.append(v.copy())
    return np.array(out)


def offline_lambda_oracle(episodes, alpha, lam, v):
    """Off-line lambda-return (S&B 12.1), values inside G from the current pass, gamma = 1."""
    out = []
    for states, _, rewards, _ in episodes:
        T = len(rewards)
        for t in range(T):
            value = [v[s] for s in states[:T]] + [0.0]  # the current pass's values
            g_n = [rewards[t:t + k].sum() + value[t + k] for k in range(1, T - t + 1)]
            G = (1 - lam) * sum(lam ** (k - 1) * g_n[k - 1] for k in range(1, T - t)) \
                + lam ** (T - t - 1) * rewards[t:].sum()
            v[states[t]] += alpha * (G - v[states[t]])
        out.append(v.copy())
    return np.array(out)


def td_lambda_oracle(episodes, features, alpha, lam, w, true_online=False):
    """Accumulating TD(lambda) (S&B 12.5-12.7) or true online TD(lambda) (S&B 12.5 box)."""
    out = []
    x_of = lambda s: features[s] if 0 <= s < N else np.zeros(features.shape[1])
    for states, _, rewards, _ in episodes:
        z = np.zeros_like(w)
        v_old = 0.0
        for t, r in enumerate(rewards):
            x, x_next = x_of(states[t]), x_of(states[t + 1])
            if true_online:
                v, v_next = w @ x, w @ x_next
                delta = r + v_next - v
                z = lam * z + (1 - alpha * lam * z @ x) * x
                w = w + alpha * (delta + v - v_old) * z - alpha * (v - v_old) * x
                v_old = v_next
            else:
                z = lam * z + x
                w = w + alpha * (r + w @ x_next - w @ x) * z
        out.append(w.copy())
    return np.array(out)


@pytest.mark.parametrize("n,alpha", [(1, 0.4), (3, 0.3), (8, 0.2), (64, 0.1)])
def test_n_step_td_stream_matches_the_books_loop(episodes, n, alpha):
    _, records = run("n_step_td", to_stream(episodes), {"alpha": alpha, "n": n})
    np.testing.assert_allclose(records, n_step_oracle(episodes, alpha, n, np.zeros(N)),
                               atol=1e-5)


@pytest.mark.parametrize("lam,alpha", [(0.0, 0.3), (0.5, 0.3), (0.9, 0.2), (1.0, 0.1)])
def test_offline_lambda_return_stream_matches_the_books_loop(episodes, lam, alpha):
    _, records = run("offline_lambda_return", to_stream(episodes),
                     {"alpha": alpha, "lambda_": lam})
    np.testing.assert_allclose(
        records, offline_lambda_oracle(episodes, alpha, lam, np.zeros(N)), atol=1e-5)


def test_mc_is_constant_alpha_every_visit_monte_carlo(episodes):
    v = np.full(N, 0.5)
    expected = []
    for states, _, rewards, _ in episodes:
        for t in range(len(rewards)):
            v[states[t]] += 0.1 * (rewards[t:].sum() - v[states[t]])
        expected.append(v.copy())
    _, records = run("mc", to_stream(episodes), {"alpha": 0.1}, w0=jnp.full(N, 0.5))
    np.testing.assert_allclose(records, np.array(expected), atol=1e-5)


@pytest.mark.parametrize("method", ["td_lambda", "true_online_td_lambda"])
def test_trace_methods_on_a_stream_reset_at_episode_ends(episodes, method):
    features = np.random.default_rng(3).normal(size=(N, 3)) * 0.5
    w0 = np.array([0.1, -0.2, 0.3])
    _, records = run(method, to_stream(episodes, features), {"alpha": 0.1, "lambda_": 0.8},
                     w0=jnp.asarray(w0, jnp.float32))
    expected = td_lambda_oracle(episodes, features, 0.1, 0.8, w0,
                                true_online=method == "true_online_td_lambda")
    np.testing.assert_allclose(records, expected, atol=1e-5)


def test_update_clears_traces_after_a_truncated_last_step():
    x = jnp.asarray([1.0, 0.0, 0.5])
    for method in ("td_lambda", "true_online_td_lambda", "etd"):
        predictor = prediction.make_predictor(method)
        state = predictor.init(jnp.zeros(3), {"lambda_": 0.9})
        kept = predictor.update(state, x, 1.0, 0.9, x, 1.0, False)
        cleared = predictor.update(state, x, 1.0, 0.9, x, 1.0, True)
        trace = {"etd": lambda s: s.extra.trace, "true_online_td_lambda": lambda s: s.extra.z,
                 "td_lambda": lambda s: s.extra}[method]
        assert np.abs(np.asarray(trace(kept))).sum() > 0, method
        assert not np.asarray(trace(cleared)).any(), method
        np.testing.assert_allclose(kept.w, cleared.w)  # the last step itself still learns
    etd = prediction.make_predictor("etd")
    state = etd.update(etd.init(jnp.zeros(3)), x, 0.0, 0.9, x, 2.0, True)
    assert float(state.extra.followon) == 0.0


def test_tdc_update_puts_rho_on_both_terms():
    rng = np.random.default_rng(0)
    w, h, x, xn = (rng.normal(size=4) for _ in range(4))
    r, d, rho, alpha, beta = 0.5, 0.9, 2.5, 0.1, 0.3
    predictor = prediction.make_predictor("tdc")
    state = predictor.init(jnp.asarray(w, jnp.float32), {"alpha": alpha, "beta": beta})
    state = state._replace(extra=jnp.asarray(h, jnp.float32))
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    state = predictor.update(state, f32(x), f32(r), f32(d), f32(xn), f32(rho), False)
    delta = r + d * w @ xn - w @ x
    np.testing.assert_allclose(state.w, w + alpha * rho * (delta * x - d * xn * (h @ x)),
                               rtol=1e-5)
    np.testing.assert_allclose(state.extra, h + beta * rho * (delta - h @ x) * x, rtol=1e-5)
    assert predictor.off_policy and not prediction.make_predictor("lstd").off_policy


def test_lstd_weights_solve_the_regularised_normal_equations(episodes):
    features = np.random.default_rng(5).uniform(size=(N, 3))
    stream = to_stream(episodes, features)
    state, _ = run("lstd", stream, {"lambda_": 0.0, "epsilon": 0.5})
    xs, r, d = (np.asarray(a, np.float64) for a in (stream.xs, stream.r_t, stream.discount_t))
    A = 0.5 * np.eye(3) + xs[:-1].T @ (xs[:-1] - d[:, None] * xs[1:])
    b = xs[:-1].T @ r
    np.testing.assert_allclose(state.w, np.linalg.solve(A, b), rtol=1e-3, atol=1e-4)


def test_sweeping_step_sizes_compiles_once(episodes):
    stream = to_stream(episodes)
    predictor = prediction.make_predictor("true_online_td_lambda")
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def sweep(alphas, lambdas):
        def one(alpha, lam):
            state = predictor.init(jnp.zeros(N), {"alpha": alpha, "lambda_": lam})
            return predictor.run(state, stream, lambda w: w, 6)[1]
        return jax.vmap(one)(alphas, lambdas)

    out = sweep(jnp.asarray([0.1, 0.2]), jnp.asarray([0.0, 0.9]))
    sweep(jnp.asarray([0.3, 0.4]), jnp.asarray([0.5, 0.5]))
    assert out.shape == (2, 6, N)
    # lambda = 0 true online TD is TD(0).
    expected = td_lambda_oracle(episodes, np.eye(N), 0.1, 0.0, np.zeros(N))
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


def test_records_stop_at_num_records_and_pad_with_zeros(episodes):
    stream = to_stream(episodes)
    predictor = prediction.make_predictor("td_lambda")
    state = predictor.init(jnp.zeros(N), {"alpha": 0.1, "lambda_": 0.0})
    _, few = predictor.run(state, stream, lambda w: jnp.sum(w) + 1.0, 2)
    _, many = predictor.run(state, stream, lambda w: jnp.sum(w) + 1.0, 9)
    np.testing.assert_allclose(few, many[:2])
    assert np.all(np.asarray(many[6:]) == 0) and np.all(np.asarray(many[:6]) != 0)


@pytest.mark.parametrize("method", ["td_lambda", "n_step_td", "offline_lambda_return"])
def test_both_recording_strategies_agree(episodes, method, monkeypatch):
    """Gathering flagged steps from every step's observation, or a select into a buffer."""
    stream = to_stream(episodes)
    predictor = prediction.make_predictor(method)
    state = predictor.init(jnp.zeros(N), {"alpha": 0.1})
    observe = lambda w: {"w": w, "sum": jnp.sum(w) + 1.0}
    final_gather, gathered = predictor.run(state, stream, observe, 9)
    monkeypatch.setattr(prediction, "RECORD_EVERY_STEP_LIMIT", 0)
    final_select, selected = predictor.run(state, stream, observe, 9)
    chex.assert_trees_all_close(gathered, selected)
    chex.assert_trees_all_close(final_gather.w, final_select.w)
    assert np.all(np.asarray(selected["sum"][6:]) == 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        prediction.make_predictor("q_learning")
    with pytest.raises(ValueError, match="trace"):
        prediction.make_predictor("td_lambda", trace="bogus")
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        prediction.make_predictor("tdc").init(jnp.zeros(3), {"lambda_": 0.5})
    assert prediction.make_predictor("n_step_td").update is None
    predictor = prediction.make_predictor("td_lambda")
    state = predictor.init(jnp.zeros(3))
    bad = prediction.Stream(jnp.zeros((4, 3)), jnp.zeros(4), jnp.ones(4), jnp.ones(4),
                            jnp.zeros(4, bool))  # xs must be [L + 1, F]
    with pytest.raises(AssertionError, match="xs"):
        predictor.run(state, bad, lambda w: w, 1)
