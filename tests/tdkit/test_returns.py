"""Multi-step returns: plain-loop oracles, identities, stop-gradients, bad input."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tdkit
from tests.tdkit import oracles

T = 7


def _trajectory(seed=0, episode_end=True):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=T).astype(np.float32)
    d = np.full(T, 0.9, np.float32)
    if episode_end:
        d[3] = 0.0  # An episode ends inside the trajectory.
    v = rng.normal(size=T).astype(np.float32)
    return r, d, v


class LambdaReturnsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed(self):
        # r = [1, 1], d = [0.5, 0.5], v = [2, 4], lambda = 0.5
        # G_1 = 1 + 0.5 * (0.5 * 4 + 0.5 * 4) = 3;  G_0 = 1 + 0.5 * (0.5 * 2 + 0.5 * 3) = 2.25
        out = self.variant(tdkit.lambda_returns)(
            jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), jnp.array([2.0, 4.0]), 0.5)
        np.testing.assert_allclose(out, [2.25, 3.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_forward_view_oracle(self):
        for lam in (0.0, 0.3, 0.8, 1.0):
            for end in (True, False):
                r, d, v = _trajectory(seed=int(lam * 10), episode_end=end)
                out = self.variant(tdkit.lambda_returns)(r, d, v, lam)
                expected = oracles.lambda_returns_forward_view(r, d, v, lam)
                np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_per_step_lambda_oracle(self):
        r, d, v = _trajectory(seed=3)
        lam = np.random.default_rng(4).uniform(size=T).astype(np.float32)
        out = self.variant(tdkit.lambda_returns)(r, d, v, lam)
        np.testing.assert_allclose(
            out, oracles.lambda_returns_per_step(r, d, v, lam), rtol=1e-5, atol=1e-5)

    def test_lambda_zero_is_one_step_target(self):
        r, d, v = _trajectory(seed=5)
        np.testing.assert_allclose(tdkit.lambda_returns(r, d, v, 0.0), r + d * v, rtol=1e-5)

    def test_stop_gradient(self):
        r, d, v = _trajectory()
        g = jax.grad(lambda v: tdkit.lambda_returns(r, d, v, 0.5).sum())(v)
        np.testing.assert_array_equal(g, np.zeros(T))
        g = jax.grad(lambda v: tdkit.lambda_returns(r, d, v, 0.5, False).sum())(v)
        assert np.abs(g).sum() > 0

    def test_rejects_mismatched_lengths(self):
        with pytest.raises(AssertionError, match=r"`r_t` \(3,\), `discount_t` \(4,\)"):
            tdkit.lambda_returns(jnp.zeros(3), jnp.zeros(4), jnp.zeros(4))

    def test_rejects_lambda_of_wrong_length(self):
        with pytest.raises(AssertionError, match="`lambda_` must be a scalar or have shape"):
            tdkit.lambda_returns(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), jnp.zeros(2))

    def test_rejects_a_batch(self):
        with pytest.raises(AssertionError, match="`r_t` must have rank 1"):
            tdkit.lambda_returns(jnp.zeros((2, 3)), jnp.zeros(3), jnp.zeros(3))


class DiscountedReturnsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_oracle(self):
        r, d, _ = _trajectory(seed=6)
        out = self.variant(tdkit.discounted_returns)(r, d, jnp.float32(2.0))
        np.testing.assert_allclose(
            out, oracles.discounted_returns(r, d, 2.0), rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed(self):
        # G_2 = 3 + 0.5 * 10 = 8; G_1 = 2 + 0 * 8 = 2 (episode end); G_0 = 1 + 0.5 * 2 = 2
        out = self.variant(tdkit.discounted_returns)(
            jnp.array([1.0, 2.0, 3.0]), jnp.array([0.5, 0.0, 0.5]), jnp.float32(10.0))
        np.testing.assert_allclose(out, [2.0, 2.0, 8.0])

    def test_stop_gradient(self):
        r, d, _ = _trajectory()
        assert jax.grad(lambda v: tdkit.discounted_returns(r, d, v).sum())(1.0) == 0.0
        assert jax.grad(lambda v: tdkit.discounted_returns(r, d, v, False).sum())(1.0) > 0.0


class NStepReturnsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_oracle(self):
        r, d, v = _trajectory(seed=7)
        for n in (1, 2, 3, T, T + 5):
            fn = self.variant(functools.partial(tdkit.n_step_bootstrapped_returns, n=n))
            expected = [oracles.n_step_return(r, d, v, i, n) for i in range(T)]
            np.testing.assert_allclose(fn(r, d, v), expected, rtol=1e-5, atol=1e-5)

    def test_n_equal_T_is_lambda_one(self):
        r, d, v = _trajectory(seed=8)
        np.testing.assert_allclose(
            tdkit.n_step_bootstrapped_returns(r, d, v, n=T),
            tdkit.lambda_returns(r, d, v, 1.0), rtol=1e-6)

    def test_n_one_is_one_step(self):
        r, d, v = _trajectory(seed=9)
        np.testing.assert_allclose(
            tdkit.n_step_bootstrapped_returns(r, d, v, n=1), r + d * v, rtol=1e-6)

    def test_hand_computed(self):
        # r = 0..4, d = 0.9, v = 2 * (0..4), n = 3:
        # G_0 = 0 + .9 * 1 + .81 * 2 + .729 * v[2] = 0.9 + 1.62 + 2.916 = 5.436
        out = tdkit.n_step_bootstrapped_returns(
            jnp.arange(5.0), jnp.full(5, 0.9), 2 * jnp.arange(5.0), n=3)
        np.testing.assert_allclose(out[0], 5.436, rtol=1e-6)
        # Near the end the window is cut: G_4 = r[4] + .9 * v[4] = 4 + 7.2
        np.testing.assert_allclose(out[4], 11.2, rtol=1e-6)

    def test_stop_gradient(self):
        r, d, v = _trajectory()
        g = jax.grad(lambda v: tdkit.n_step_bootstrapped_returns(r, d, v, 2).sum())(v)
        np.testing.assert_array_equal(g, np.zeros(T))
        g = jax.grad(lambda v: tdkit.n_step_bootstrapped_returns(r, d, v, 2, 1.0, False).sum())(v)
        assert np.abs(g).sum() > 0

    def test_rejects_bad_n(self):
        with pytest.raises(ValueError, match="`n` must be a Python int >= 1"):
            tdkit.n_step_bootstrapped_returns(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), n=0)


class OffPolicyReturnsTest(chex.TestCase):

    def _consistent(self, seed, num_actions=3):
        rng = np.random.default_rng(seed)
        Q = rng.normal(size=(T + 1, num_actions)).astype(np.float32)
        a = rng.integers(0, num_actions, size=T + 1).astype(np.int32)
        pi = rng.dirichlet(np.ones(num_actions), size=T + 1).astype(np.float32)
        r, d, _ = _trajectory(seed)
        return Q, a, pi, r, d

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_traced_td_error_sum(self):
        Q, a, pi, r, d = self._consistent(10)
        c = np.random.default_rng(11).uniform(size=T + 1).astype(np.float32)
        out = self.variant(tdkit.general_off_policy_returns_from_action_values)(
            Q[1:], a[1:], r, d, c[1:], pi[1:])
        expected = oracles.retrace_targets(Q, a, r, d, pi, c)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_stop_gradient(self):
        Q, a, pi, r, d = self._consistent(12)
        c = np.ones(T, np.float32)
        f = lambda q, stop: tdkit.general_off_policy_returns_from_action_values(
            q, a[1:], r, d, c, pi[1:], stop).sum()
        np.testing.assert_array_equal(jax.grad(f)(Q[1:], True), np.zeros_like(Q[1:]))
        assert np.abs(jax.grad(f)(Q[1:], False)).sum() > 0


def test_watkins_lambda_cuts_after_non_greedy_actions():
    q_t = jnp.array([[1.0, 2.0], [3.0, 0.0], [1.0, 1.0]])
    a_t = jnp.array([1, 1, 0])  # greedy, non-greedy, tie (counts as greedy)
    np.testing.assert_allclose(tdkit.watkins_lambda(q_t, a_t, 0.9), [0.9, 0.0, 0.9])


def test_discount_from_terminated():
    out = tdkit.discount_from_terminated(jnp.array([False, True, False]), 0.99)
    np.testing.assert_allclose(out, [0.99, 0.0, 0.99])
    assert out.dtype == jnp.float32
    with pytest.raises(ValueError, match="`gamma` must be a number in"):
        tdkit.discount_from_terminated(jnp.array([True]), 1.5)
    with pytest.raises(TypeError, match="`terminated` must be bool or integer"):
        tdkit.discount_from_terminated(jnp.array([0.5]), 0.9)
