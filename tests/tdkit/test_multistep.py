"""Multi-step TD errors: oracles, identities, stop-gradients both ways, bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tdkit
from tests.tdkit import oracles

T, A = 6, 3


def _episode(seed, discount=0.9, end_at=2):
    """Consistent trajectory: Q[i] are the values at step i (q_tm1 = Q[:-1], q_t = Q[1:])."""
    rng = np.random.default_rng(seed)
    Q = rng.normal(size=(T + 1, A)).astype(np.float32)
    a = rng.integers(0, A, size=T + 1).astype(np.int32)
    r = rng.normal(size=T).astype(np.float32)
    d = np.full(T, discount, np.float32)
    if end_at is not None:
        d[end_at] = 0.0
    return Q, a, r, d


def _mc_with_bootstrap(r, d, v_last):
    return oracles.discounted_returns(r, d, v_last)


class TDLambdaTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed(self):
        # targets [2.25, 3.0] (see test_returns); errors = targets - v_tm1.
        out = self.variant(tdkit.td_lambda)(
            jnp.array([1.0, 1.0]), jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]),
            jnp.array([2.0, 4.0]), 0.5)
        np.testing.assert_allclose(out, [1.25, 2.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_oracle(self):
        rng = np.random.default_rng(0)
        v_tm1, v_t, r = (rng.normal(size=T).astype(np.float32) for _ in range(3))
        d = np.full(T, 0.8, np.float32)
        d[4] = 0.0
        out = self.variant(tdkit.td_lambda)(v_tm1, r, d, v_t, 0.7)
        expected = oracles.lambda_returns_forward_view(r, d, v_t, 0.7) - v_tm1
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_stop_gradient(self):
        v = jnp.ones(T)
        r, d = jnp.ones(T), jnp.full(T, 0.9)
        f = lambda v_t, s: tdkit.td_lambda(v, r, d, v_t, 0.5, s).sum()
        np.testing.assert_array_equal(jax.grad(f)(v, True), np.zeros(T))
        assert np.abs(jax.grad(f)(v, False)).sum() > 0
        # The prediction side keeps its gradient: d sum(errors) / d v_tm1 = -1.
        np.testing.assert_array_equal(
            jax.grad(lambda v_tm1: tdkit.td_lambda(v_tm1, r, d, v, 0.5).sum())(v), -np.ones(T))

    def test_rejects_mismatched_lengths(self):
        with pytest.raises(AssertionError, match="td_lambda: arguments must have the same shape"):
            tdkit.td_lambda(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), jnp.zeros(4), 0.5)


class SarsaAndQLambdaTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_sarsa_lambda_oracle(self):
        Q, a, r, d = _episode(1)
        out = self.variant(tdkit.sarsa_lambda)(Q[:-1], a[:-1], r, d, Q[1:], a[1:], 0.6)
        v = Q[1:][np.arange(T), a[1:]]
        expected = oracles.lambda_returns_forward_view(r, d, v, 0.6) - Q[:-1][np.arange(T), a[:-1]]
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_peng_q_lambda_oracle(self):
        Q, a, r, d = _episode(2)
        out = self.variant(tdkit.q_lambda)(Q[:-1], a[:-1], r, d, Q[1:], 0.6)
        expected = (oracles.lambda_returns_forward_view(r, d, Q[1:].max(-1), 0.6)
                    - Q[:-1][np.arange(T), a[:-1]])
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_watkins_q_lambda_hand_computed(self):
        # a_t[0] = 0 is not greedy in q_t[0] = [1, 2]: the trace is cut there, so step 0's
        # target is the one-step Q-learning target r0 + d0 * max q_t[0] = 1 + 0.5 * 2 = 2.
        # Step 1: G_1 = r1 + d1 * max q_t[1] = 1 + 0.5 * 3 = 2.5.
        q_tm1 = jnp.zeros((2, 2))
        q_t = jnp.array([[1.0, 2.0], [3.0, 0.0]])
        a_tm1 = jnp.array([0, 0])
        a_t = jnp.array([0, 1])
        r, d = jnp.ones(2), jnp.full(2, 0.5)
        lam = tdkit.watkins_lambda(q_t, a_t, 1.0)
        np.testing.assert_allclose(tdkit.q_lambda(q_tm1, a_tm1, r, d, q_t, lam), [2.0, 2.5])
        # With the greedy action at step 0 the trace continues: G_0 = 1 + 0.5 * G_1 = 2.25.
        lam = tdkit.watkins_lambda(q_t, jnp.array([1, 1]), 1.0)
        np.testing.assert_allclose(tdkit.q_lambda(q_tm1, a_tm1, r, d, q_t, lam), [2.25, 2.5])

    def test_lambda_zero_is_q_learning(self):
        Q, a, r, d = _episode(3)
        out = tdkit.q_lambda(Q[:-1], a[:-1], r, d, Q[1:], 0.0)
        one_step = jax.vmap(tdkit.q_learning)(Q[:-1], a[:-1], r, d, Q[1:])
        np.testing.assert_allclose(out, one_step, rtol=1e-5, atol=1e-6)

    def test_stop_gradients(self):
        Q, a, r, d = _episode(4)
        Q = jnp.asarray(Q)
        for name, f in {
            "sarsa_lambda": lambda q_t, s: tdkit.sarsa_lambda(
                Q[:-1], a[:-1], r, d, q_t, a[1:], 0.5, s),
            "q_lambda": lambda q_t, s: tdkit.q_lambda(Q[:-1], a[:-1], r, d, q_t, 0.5, s),
        }.items():
            g = jax.grad(lambda q_t, f=f: f(q_t, True).sum())(Q[1:])
            np.testing.assert_array_equal(g, np.zeros_like(Q[1:]), err_msg=name)
            g = jax.grad(lambda q_t, f=f: f(q_t, False).sum())(Q[1:])
            assert np.abs(g).sum() > 0, name

    def test_rejects_float_actions(self):
        Q, a, r, d = _episode(5)
        with pytest.raises(AssertionError, match="q_lambda: argument `a_tm1` must have a int"):
            tdkit.q_lambda(Q[:-1], a[:-1].astype(np.float32), r, d, Q[1:], 0.5)


class RetraceAndTreeBackupTest(chex.TestCase):

    def _policies(self, seed):
        rng = np.random.default_rng(seed)
        pi = rng.dirichlet(np.ones(A), size=T + 1).astype(np.float32)
        mu = rng.dirichlet(np.ones(A), size=T + 1).astype(np.float32)
        return pi, mu

    @chex.variants(with_jit=True, without_jit=True)
    def test_retrace_oracle(self):
        Q, a, r, d = _episode(6)
        pi, mu = self._policies(7)
        lam = 0.9
        mu_a = mu[np.arange(T + 1), a]
        c = lam * np.minimum(1.0, pi[np.arange(T + 1), a] / (mu_a + 1e-8))
        out = self.variant(tdkit.retrace)(
            Q[:-1], Q[1:], a[:-1], a[1:], r, d, pi[1:], mu_a[1:], lam)
        expected = oracles.retrace_targets(Q, a, r, d, pi, c) - Q[:-1][np.arange(T), a[:-1]]
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_retrace_on_policy_lambda_one(self):
        """pi = mu, lambda = 1: c = 1 and Retrace is Q^pi(lambda=1) (Munos et al. 2016, sec 3):
        with a deterministic policy that is the Monte Carlo return bootstrapped at the end."""
        Q, a, r, d = _episode(8, end_at=None)
        pi = np.eye(A, dtype=np.float32)[a]  # deterministic: always the action taken
        mu_a = np.ones(T + 1, np.float32)
        out = tdkit.retrace(Q[:-1], Q[1:], a[:-1], a[1:], r, d, pi[1:], mu_a[1:], 1.0, eps=0.0)
        targets = out + Q[:-1][np.arange(T), a[:-1]]
        expected = _mc_with_bootstrap(r, d, Q[T, a[T]])
        np.testing.assert_allclose(targets, expected, rtol=1e-5, atol=1e-5)
        # Stochastic pi = mu: c = 1, the target is the return plus zero-mean corrections
        # E_pi Q - Q(a) at every step (the same as tree backup's c = pi(a) only if pi(a)=1).
        pi, _ = self._policies(9)
        mu_a = pi[np.arange(T + 1), a]
        out = tdkit.retrace(Q[:-1], Q[1:], a[:-1], a[1:], r, d, pi[1:], mu_a[1:], 1.0, eps=0.0)
        expected = oracles.retrace_targets(Q, a, r, d, pi, np.ones(T + 1)) - Q[:-1][
            np.arange(T), a[:-1]]
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_tree_backup_oracle(self):
        """S&B (7.16): G = r + d (sum_{a != A'} pi(a) Q(a) + pi(A') G'), written out by hand."""
        Q, a, r, d = _episode(10)
        pi, _ = self._policies(11)
        out = self.variant(tdkit.tree_backup)(Q[:-1], Q[1:], a[:-1], a[1:], r, d, pi[1:])
        expected = np.zeros(T)
        g = r[T - 1] + d[T - 1] * (pi[T] * Q[T]).sum()
        expected[T - 1] = g
        for t in range(T - 2, -1, -1):
            nxt = t + 1
            others = sum(pi[nxt, b] * Q[nxt, b] for b in range(A) if b != a[nxt])
            g = r[t] + d[t] * (others + pi[nxt, a[nxt]] * g)
            expected[t] = g
        expected -= Q[:-1][np.arange(T), a[:-1]]
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_tree_backup_lambda_zero_is_expected_sarsa(self):
        Q, a, r, d = _episode(12)
        pi, _ = self._policies(13)
        out = tdkit.tree_backup(Q[:-1], Q[1:], a[:-1], a[1:], r, d, pi[1:], 0.0)
        one_step = jax.vmap(tdkit.expected_sarsa)(Q[:-1], a[:-1], r, d, Q[1:], pi[1:])
        np.testing.assert_allclose(out, one_step, rtol=1e-5, atol=1e-6)

    def test_stop_gradients(self):
        Q, a, r, d = _episode(14)
        Q = jnp.asarray(Q)
        pi, mu = self._policies(15)
        mu_a = mu[np.arange(T + 1), a][1:]
        for name, f in {
            "retrace": lambda q_t, s: tdkit.retrace(
                Q[:-1], q_t, a[:-1], a[1:], r, d, pi[1:], mu_a, 0.9, 1e-8, s),
            "tree_backup": lambda q_t, s: tdkit.tree_backup(
                Q[:-1], q_t, a[:-1], a[1:], r, d, pi[1:], 0.9, s),
        }.items():
            g = jax.grad(lambda q_t, f=f: f(q_t, True).sum())(Q[1:])
            np.testing.assert_array_equal(g, np.zeros_like(Q[1:]), err_msg=name)
            assert np.abs(jax.grad(lambda q_t, f=f: f(q_t, False).sum())(Q[1:])).sum() > 0

    def test_rejects_mismatched_policy(self):
        Q, a, r, d = _episode(16)
        with pytest.raises(AssertionError, match="`pi_t`"):
            tdkit.tree_backup(Q[:-1], Q[1:], a[:-1], a[1:], r, d, np.ones((T, A + 1), np.float32))


def _vtrace_oracle(v_tm1, v_t, r, d, rho, lam, rho_bar):
    """Espeholt et al. (2018) eq. 1 with per-step discounts, as a plain double loop."""
    n = len(r)
    vs = np.zeros(n)
    c = lam * np.minimum(1.0, rho)
    for s in range(n):
        total, scale = 0.0, 1.0
        for t in range(s, n):
            if t > s:
                scale *= d[t - 1] * c[t - 1]
            total += scale * min(rho_bar, rho[t]) * (r[t] + d[t] * v_t[t] - v_tm1[t])
        vs[s] = v_tm1[s] + total
    return vs


class VTraceTest(chex.TestCase):

    def _data(self, seed):
        rng = np.random.default_rng(seed)
        v = rng.normal(size=T + 1).astype(np.float32)
        r = rng.normal(size=T).astype(np.float32)
        d = np.full(T, 0.9, np.float32)
        d[3] = 0.0
        rho = rng.uniform(0.2, 2.0, size=T).astype(np.float32)
        return v[:-1], v[1:], r, d, rho

    @chex.variants(with_jit=True, without_jit=True)
    def test_oracle(self):
        v_tm1, v_t, r, d, rho = self._data(0)
        out = self.variant(tdkit.vtrace)(v_tm1, v_t, r, d, rho, 0.9, 1.2)
        expected = _vtrace_oracle(v_tm1, v_t, r, d, rho, 0.9, 1.2) - v_tm1
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_on_policy_is_lambda_return(self):
        v_tm1, v_t, r, d, _ = self._data(1)
        out = tdkit.vtrace(v_tm1, v_t, r, d, np.ones(T, np.float32), 0.7)
        np.testing.assert_allclose(
            out + v_tm1, oracles.lambda_returns_forward_view(r, d, v_t, 0.7), rtol=1e-5,
            atol=1e-5)

    def test_td_error_and_advantage(self):
        v_tm1, v_t, r, d, rho = self._data(2)
        out = tdkit.vtrace_td_error_and_advantage(v_tm1, v_t, r, d, rho, 1.0, 1.0, 0.8)
        vs = _vtrace_oracle(v_tm1, v_t, r, d, rho, 1.0, 1.0)
        next_vs = np.concatenate([vs[1:], v_t[-1:]])
        q_est = r + d * next_vs
        np.testing.assert_allclose(out.errors, vs - v_tm1, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.q_estimate, q_est, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            out.pg_advantage, np.minimum(0.8, rho) * (q_est - v_tm1), rtol=1e-5, atol=1e-5)

    def test_stop_gradient(self):
        v_tm1, v_t, r, d, rho = self._data(3)
        f = lambda v_t, s: tdkit.vtrace(v_tm1, v_t, r, d, rho, 1.0, 1.0, s).sum()
        np.testing.assert_array_equal(jax.grad(f)(v_t, True), np.zeros(T))
        assert np.abs(jax.grad(f)(v_t, False)).sum() > 0
        # With stopped targets the prediction side has gradient exactly -1 per step.
        g = jax.grad(lambda v: tdkit.vtrace(v, v_t, r, d, rho).sum())(v_tm1)
        np.testing.assert_array_equal(g, -np.ones(T))

    def test_rejects_mismatched(self):
        v_tm1, v_t, r, d, rho = self._data(4)
        with pytest.raises(AssertionError, match="`rho_tm1` \\(5,\\)"):
            tdkit.vtrace(v_tm1, v_t, r, d, rho[:-1])
