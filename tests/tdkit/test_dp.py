"""Tests for tdkit.dp: expected updates, VE, PBE and fixed points on hand-built MDPs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import dp
from tdkit.gradient_td import GTDState
from tests.tdkit import mdps


def as_jnp(task):
    return (jnp.asarray(task.P), jnp.asarray(task.r), jnp.asarray(task.gamma),
            jnp.asarray(task.X))


def test_true_values_boyan_and_episodic_distribution_random_walk():
    with jax.enable_x64(True):
        P, r, g, _ = as_jnp(mdps.boyan_chain())
        states = np.arange(13, 1, -1)
        np.testing.assert_allclose(dp.true_values(P, r, g), -2.0 * (states - 1), atol=1e-12)
        # Expected visits of the 5-state walk from C: 1, 2, 3, 2, 1 (out of 9).
        walk = mdps.random_walk(5)
        mu = dp.episodic_state_distribution(jnp.asarray(walk.P), jnp.asarray(walk.start))
        np.testing.assert_allclose(mu, np.array([1, 2, 3, 2, 1]) / 9.0, atol=1e-14)


def test_value_error_hand_value():
    # v = X w = (1, 2); errors (0, -1) with weights (0.25, 0.75): VE = 0.75.
    X = jnp.array([[1.0, 0.0], [1.0, 1.0]])
    w = jnp.array([1.0, 1.0])
    ve = dp.value_error(w, X, jnp.array([1.0, 1.0]), jnp.array([0.25, 0.75]))
    np.testing.assert_allclose(ve, 0.75, rtol=1e-6)
    np.testing.assert_allclose(
        dp.rms_value_error(w, X, jnp.array([1.0, 1.0]), jnp.array([0.25, 0.75])),
        np.sqrt(0.75), rtol=1e-6)


def test_baird_semi_gradient_dp_after_1000_sweeps():
    """S&B Figure 11.2: w1..w6 = 114.434, w7 = 6.850, w8 = 335.001 after 1000 sweeps."""
    task = mdps.baird()
    with jax.enable_x64(True):
        P, r, g, X = as_jnp(task)
        mu = jnp.asarray(task.start)  # uniform 1/7: the sweep divided by 7
        w_final, history = dp.iterate(
            lambda w: dp.expected_td_update(w, P, r, g, X, mu, 0.01),
            jnp.asarray(mdps.BAIRD_W0), 1000)
        assert history.shape == (1001, 8)
        np.testing.assert_array_equal(history[0], mdps.BAIRD_W0)
        np.testing.assert_array_equal(history[-1], w_final)
        np.testing.assert_allclose(w_final[:6], 114.434, atol=5e-4)
        np.testing.assert_allclose(w_final[6], 6.850, atol=5e-4)
        np.testing.assert_allclose(w_final[7], 335.001, atol=5e-4)


def test_projected_bellman_error_matches_matrix_formula():
    """PBE = (X^T D d)^T (X^T D X)^{-1} (X^T D d), pseudo-inverse when X^T D X is singular."""
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        S, F = 6, 3
        P = rng.random((S, S))
        P = 0.9 * P / P.sum(1, keepdims=True)
        r, X, w = rng.normal(size=S), rng.normal(size=(S, F)), rng.normal(size=F)
        mu = rng.random(S)
        mu /= mu.sum()
        delta = r + 0.95 * P @ X @ w - X @ w
        xd = X.T @ (mu * delta)
        expected = xd @ np.linalg.solve(X.T @ (mu[:, None] * X), xd)
        out = dp.projected_bellman_error(w, P, r, 0.95, X, mu)
        np.testing.assert_allclose(out, expected, rtol=1e-10)
        np.testing.assert_allclose(dp.bellman_error(w, P, r, 0.95, X), delta, rtol=1e-12)

        task = mdps.baird()  # 7 states, 8 features: X^T D X is singular.
        w = rng.normal(size=8)
        delta = task.r + 0.99 * task.P @ task.X @ w - task.X @ w
        xd = task.X.T @ (task.start * delta)
        expected = xd @ np.linalg.pinv(task.X.T @ (task.start[:, None] * task.X)) @ xd
        out = dp.projected_bellman_error(w, *as_jnp(task), jnp.asarray(task.start))
        np.testing.assert_allclose(out, expected, rtol=1e-8)
        np.testing.assert_allclose(dp.rms_projected_bellman_error(
            w, *as_jnp(task), jnp.asarray(task.start)), np.sqrt(expected), rtol=1e-8)


def test_boyan_fixed_point_and_expected_td_tdc_gtd2_reach_w_star():
    """LSTD's exact solution and the expected TD, TDC and GTD2 iterations all give w*."""
    task = mdps.boyan_chain()
    with jax.enable_x64(True):
        P, r, g, X = as_jnp(task)
        mu = dp.episodic_state_distribution(P, jnp.asarray(task.start))
        w_star = dp.td_fixed_point(P, r, g, X, mu)
        np.testing.assert_allclose(w_star, mdps.BOYAN_W_STAR, atol=1e-10)
        np.testing.assert_allclose(dp.projected_bellman_error(w_star, P, r, g, X, mu), 0.0,
                                   atol=1e-20)
        np.testing.assert_allclose(
            dp.value_error(w_star, X, dp.true_values(P, r, g), mu), 0.0, atol=1e-20)
        zero = GTDState(jnp.zeros(4), jnp.zeros(4))
        w_td, _ = dp.iterate(lambda w: dp.expected_td_update(w, P, r, g, X, mu, 1.0),
                             jnp.zeros(4), 5000)
        tdc, _ = dp.iterate(lambda s: dp.expected_tdc_update(s, P, r, g, X, mu, 1.0, 1.0),
                            zero, 5000)
        gtd2, _ = dp.iterate(lambda s: dp.expected_gtd2_update(s, P, r, g, X, mu, 1.0, 1.0),
                             zero, 5000)
        for w in (w_td, tdc.w, gtd2.w):
            np.testing.assert_allclose(w, mdps.BOYAN_W_STAR, rtol=0, atol=1e-8)
        np.testing.assert_allclose(tdc.h, 0.0, atol=1e-8)


def baird_sample_average(w, h, m_over_mu):
    """Exact average of the SAMPLE updates on Baird over mu(s) b(a|s) p(s'|s,a), in NumPy:
    returns the expected TD(0), TDC, GTD2 and emphatic-TD increments (per unit step size)."""
    X, gamma = mdps.baird_features(), 0.99
    td, tdc_w, gtd2_w, aux, etd = (np.zeros(8) for _ in range(5))
    for s in range(7):
        for nxt in range(7):
            prob, rho = ((6 / 7) / 6, 0.0) if nxt < 6 else (1 / 7, 7.0)
            p = prob / 7.0  # mu(s) = 1/7
            x, xn = X[s], X[nxt]
            delta = gamma * w @ xn - w @ x
            td += p * rho * delta * x
            tdc_w += p * rho * (delta * x - gamma * xn * (h @ x))
            gtd2_w += p * rho * (x - gamma * xn) * (h @ x)
            aux += p * rho * (delta - h @ x) * x
            etd += p * m_over_mu[s] * rho * delta * x
    return td, tdc_w, gtd2_w, aux, etd


def test_expected_updates_are_the_average_of_the_sample_updates_on_baird():
    rng = np.random.default_rng(1)
    task = mdps.baird()
    with jax.enable_x64(True):
        P, r, g, X = as_jnp(task)
        mu = jnp.asarray(task.start)
        w, h = rng.normal(size=8), rng.normal(size=8)
        m = rng.random(7)
        td, tdc_w, gtd2_w, aux, etd = baird_sample_average(w, h, m / task.start)
        np.testing.assert_allclose(
            dp.expected_td_update(w, P, r, g, X, mu, 1.0) - w, td, atol=1e-12)
        tdc = dp.expected_tdc_update(GTDState(w, h), P, r, g, X, mu, 1.0, 1.0)
        np.testing.assert_allclose(tdc.w - w, tdc_w, atol=1e-12)
        np.testing.assert_allclose(tdc.h - h, aux, atol=1e-12)
        gtd2 = dp.expected_gtd2_update(GTDState(w, h), P, r, g, X, mu, 1.0, 1.0)
        np.testing.assert_allclose(gtd2.w - w, gtd2_w, atol=1e-12)
        np.testing.assert_allclose(gtd2.h - h, aux, atol=1e-12)
        np.testing.assert_allclose(
            dp.expected_emphatic_td_update(w, m, P, r, g, X, 1.0) - w, etd, atol=1e-12)


def test_baird_emphasis_hand_values():
    """Every state leads to the lower one under pi: m = 1/7 upstairs and
    m_7 = (1/7 + 0.99 * 6/7) / (1 - 0.99) below; the follow-on iteration tends to it."""
    task = mdps.baird()
    with jax.enable_x64(True):
        P, _, g, _ = as_jnp(task)
        mu = jnp.asarray(task.start)
        m = dp.expected_emphasis(P, g, mu)
        expected = np.full(7, 1 / 7)
        expected[6] = (1 / 7 + 0.99 * 6 / 7) / 0.01
        np.testing.assert_allclose(m, expected, rtol=1e-12)
        f1 = dp.expected_followon_update(jnp.zeros(7), P, g, mu)
        np.testing.assert_allclose(f1, np.full(7, 1 / 7), rtol=1e-14)
        f, _ = dp.iterate(lambda f: dp.expected_followon_update(f, P, g, mu), jnp.zeros(7), 5000)
        np.testing.assert_allclose(f, expected, rtol=1e-12)


def test_figure_11_5_expected_tdc_on_baird():
    """alpha = 0.005, beta = 0.05: the PBE goes to 0 while the VE stays near 2 (book)."""
    task = mdps.baird()
    with jax.enable_x64(True):
        P, r, g, X = as_jnp(task)
        mu = jnp.asarray(task.start)
        v_true = dp.true_values(P, r, g)
        _, hist = dp.iterate(
            lambda s: dp.expected_tdc_update(s, P, r, g, X, mu, 0.005, 0.05),
            GTDState(jnp.asarray(mdps.BAIRD_W0), jnp.zeros(8)), 1000)
        pbe = jax.vmap(lambda w: dp.rms_projected_bellman_error(w, P, r, g, X, mu))(hist.w)
        ve = jax.vmap(lambda w: dp.rms_value_error(w, X, v_true, mu))(hist.w)
        assert pbe[0] > 5.0 and pbe[-1] < 0.01
        assert abs(float(ve[-1]) - 2.0) < 0.1


@pytest.mark.parametrize("emphasis", ["stationary", "from_zero"])
def test_figure_11_6_expected_emphatic_td_on_baird_converges(emphasis):
    """alpha = 0.03: expected one-step emphatic TD converges and the value error goes to 0."""
    task = mdps.baird()
    with jax.enable_x64(True):
        P, r, g, X = as_jnp(task)
        mu = jnp.asarray(task.start)
        v_true = dp.true_values(P, r, g)
        if emphasis == "stationary":
            m = dp.expected_emphasis(P, g, mu)
            w, _ = dp.iterate(lambda w: dp.expected_emphatic_td_update(w, m, P, r, g, X, 0.03),
                              jnp.asarray(mdps.BAIRD_W0), 1000)
        else:
            def sweep(state):
                w, f = state
                f = dp.expected_followon_update(f, P, g, mu)
                return dp.expected_emphatic_td_update(w, f, P, r, g, X, 0.03), f

            (w, _), _ = dp.iterate(sweep, (jnp.asarray(mdps.BAIRD_W0), jnp.zeros(7)), 1000)
        assert float(dp.rms_value_error(w, X, v_true, mu)) < 1e-6


def test_vmap_over_step_sizes_compiles_once_and_bad_inputs():
    task = mdps.baird()
    P, r, g, X = (jnp.asarray(a, jnp.float32) for a in (task.P, task.r, task.gamma, task.X))
    mu = jnp.asarray(task.start, jnp.float32)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(alpha):
        w, _ = dp.iterate(lambda w: dp.expected_td_update(w, P, r, g, X, mu, alpha),
                          jnp.asarray(mdps.BAIRD_W0, jnp.float32), 10)
        return w

    out = jax.vmap(run)(jnp.array([0.0, 0.01]))
    np.testing.assert_array_equal(out[0], mdps.BAIRD_W0)
    jax.vmap(run)(jnp.array([0.1, 0.01]))
    with pytest.raises(AssertionError, match="`P` must be square"):
        dp.true_values(jnp.zeros((3, 2)), jnp.zeros(3), 0.9)
    with pytest.raises(AssertionError, match="`w` must have shape"):
        dp.bellman_error(jnp.zeros(3), P, r, g, X)
    with pytest.raises(AssertionError, match="`mu` must have shape"):
        dp.expected_td_update(jnp.zeros(8), P, r, g, X, jnp.ones(6), 0.1)
    with pytest.raises(ValueError, match="`num_sweeps`"):
        dp.iterate(lambda w: w, jnp.zeros(2), -1)
