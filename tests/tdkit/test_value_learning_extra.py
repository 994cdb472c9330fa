"""The rest of rlax's value learning (issue 13) and Munchausen Q-learning: hand-computed
values, plain-loop oracles, stop-gradients both ways, misuse errors."""

import inspect
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import losses, multistep, returns, td
from tests.tdkit import oracles

T, A = 6, 3
f32 = jnp.float32


def _grad_norm(f, *args, argnums=0):
    g = jax.grad(f, argnums=argnums)(*args)
    return float(sum(jnp.abs(leaf).sum() for leaf in jax.tree.leaves(g)))


# ---------------------------------------------------------------- one-step rules (td.py)

Q_TM1 = jnp.array([1.0, 2.0], f32)
R_T, D_T = f32(1.0), f32(0.5)


class OneStepTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_persistent_q_learning_by_hand(self):
        # corrected = 0.75 * max(5, 4) + 0.25 * q_t[a_tm1 = 1] = 4.75; 1 + 0.5 * 4.75 - 2.
        q_t = jnp.array([5.0, 4.0], f32)
        out = self.variant(td.persistent_q_learning)(Q_TM1, jnp.int32(1), R_T, D_T, q_t, 0.25)
        np.testing.assert_allclose(out, 1.375, rtol=1e-6)
        # action_gap_scale = 0 is Q-learning, 1 bootstraps from the same action.
        q0 = td.persistent_q_learning(Q_TM1, jnp.int32(1), R_T, D_T, q_t, 0.0)
        np.testing.assert_allclose(q0, td.q_learning(Q_TM1, jnp.int32(1), R_T, D_T, q_t))
        np.testing.assert_allclose(
            td.persistent_q_learning(Q_TM1, jnp.int32(1), R_T, D_T, q_t, 1.0), 1.0 + 2.0 - 2.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_qv_learning_and_qv_max_by_hand(self):
        out = self.variant(td.qv_learning)(Q_TM1, jnp.int32(0), R_T, D_T, f32(3.0))
        np.testing.assert_allclose(out, 1.0 + 1.5 - 1.0)
        out = self.variant(td.qv_max)(f32(1.0), R_T, D_T, jnp.array([3.0, 4.0], f32))
        np.testing.assert_allclose(out, 1.0 + 2.0 - 1.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_munchausen_by_hand(self):
        # tau = 1: pi(.|s_tm1) = softmax([0, log 3]) = [1/4, 3/4]; log pi(a=0) = log(1/4) = -1.386,
        # clipped to -1, times alpha 0.9 = -0.9. Soft value of q_t_target = [0, log 3] is
        # tau * logsumexp(q / tau) = log 4. Target = 1 - 0.9 + 0.5 log 4; minus q_tm1[0] = 0.5.
        q_target = jnp.array([0.0, math.log(3.0)], f32)
        fn = self.variant(td.munchausen_q_learning)
        out = fn(jnp.array([0.5, 2.0], f32), jnp.int32(0), R_T, D_T, q_target, q_target, 1.0, 0.9,
                 -1.0)
        np.testing.assert_allclose(out, 1.0 - 0.9 + 0.5 * math.log(4.0) - 0.5, rtol=1e-6)
        # a_tm1 = 1: log(3/4) = -0.2877 is inside the clip.
        out = fn(jnp.array([0.5, 2.0], f32), jnp.int32(1), R_T, D_T, q_target, q_target, 1.0, 0.9,
                 -1.0)
        expected = 1.0 + 0.9 * math.log(0.75) + 0.5 * math.log(4.0) - 2.0
        np.testing.assert_allclose(out, expected, rtol=1e-6)

    def test_munchausen_defaults_and_limits(self):
        params = inspect.signature(td.munchausen_q_learning).parameters
        assert [p for p in params][:6] == [
            "q_tm1", "a_tm1", "r_t", "discount_t", "q_t_target", "q_tm1_target"]
        assert (params["entropy_temperature"].default, params["munchausen_coefficient"].default,
                params["clip_value_min"].default) == (0.03, 0.9, -1.0)
        rng = np.random.default_rng(0)
        q_tm1, q_t, q_tm1_target = (jnp.asarray(rng.normal(size=4), f32) for _ in range(3))
        a = jnp.int32(2)
        # alpha = 0 and tau -> 0: Q-learning on the target network's values.
        out = td.munchausen_q_learning(q_tm1, a, R_T, D_T, q_t, q_tm1_target, 1e-4, 0.0)
        np.testing.assert_allclose(out, td.q_learning(q_tm1, a, R_T, D_T, q_t), atol=1e-3)
        # alpha = 0, any tau: the soft value tau * logsumexp(q / tau).
        out = td.munchausen_q_learning(q_tm1, a, R_T, D_T, q_t, q_tm1_target, 0.7, 0.0)
        soft = 0.7 * math.log(sum(math.exp(float(q) / 0.7) for q in q_t))
        np.testing.assert_allclose(out, 1.0 + 0.5 * soft - q_tm1[2], rtol=1e-5)

    def test_stop_gradients_both_ways(self):
        q_t = jnp.array([3.0, 4.0], f32)
        a = jnp.int32(1)
        rules = {
            "persistent_q_learning": lambda q_tm1, q_t, s: td.persistent_q_learning(
                q_tm1, a, R_T, D_T, q_t, 0.3, s),
            "qv_learning": lambda q_tm1, q_t, s: td.qv_learning(q_tm1, a, R_T, D_T, q_t[0], s),
            "qv_max": lambda q_tm1, q_t, s: td.qv_max(q_tm1[0], R_T, D_T, q_t, s),
            "munchausen_q_learning": lambda q_tm1, q_t, s: td.munchausen_q_learning(
                q_tm1, a, R_T, D_T, q_t, q_t * 0.5, 0.5, 0.9, -1.0, s),
        }
        for name, rule in rules.items():
            assert _grad_norm(rule, Q_TM1, q_t, True, argnums=1) == 0.0, name
            assert _grad_norm(rule, Q_TM1, q_t, False, argnums=1) > 0.0, name
            assert _grad_norm(rule, Q_TM1, q_t, True, argnums=0) == 1.0, name  # d(-q)/dq = -1.

    def test_munchausen_gradient_reaches_both_target_inputs_when_not_stopped(self):
        f = lambda q_t, q_tm1_t, s: td.munchausen_q_learning(
            Q_TM1, jnp.int32(1), R_T, D_T, q_t, q_tm1_t, 1.0, 0.9, -1.0, s)
        q = jnp.array([0.0, 1.0], f32)
        assert _grad_norm(f, q, q, False, argnums=1) > 0.0
        assert _grad_norm(f, q, q, True, argnums=(0, 1)) == 0.0

    @chex.variants(with_jit=True, without_jit=True)
    def test_batched_by_vmap(self):
        q = jnp.ones((4, 2), f32)
        a = jnp.zeros(4, jnp.int32)
        r, d = jnp.ones(4, f32), jnp.full(4, 0.5, f32)
        out = self.variant(jax.vmap(td.qv_max))(r, r, d, q)
        np.testing.assert_allclose(out, np.full(4, 0.5))
        out = self.variant(jax.vmap(td.munchausen_q_learning))(q, a, r, d, q, q)
        assert out.shape == (4,)

    def test_misuse(self):
        q, a = Q_TM1, jnp.int32(0)
        with pytest.raises(AssertionError, match="persistent_q_learning: arguments must have the "
                           "same shape.*`q_t` \\(3,\\)"):
            td.persistent_q_learning(q, a, R_T, D_T, jnp.ones(3, f32), 0.5)
        with pytest.raises(ValueError, match="`action_gap_scale` must be in \\[0, 1\\]"):
            td.persistent_q_learning(q, a, R_T, D_T, q, 1.5)
        with pytest.raises(AssertionError, match="qv_learning: argument `v_t` must have rank 0"):
            td.qv_learning(q, a, R_T, D_T, q)
        with pytest.raises(AssertionError, match="qv_max: argument `q_t` must have rank 1"):
            td.qv_max(f32(0.0), R_T, D_T, f32(1.0))
        with pytest.raises(AssertionError, match="qv_learning: argument `a_tm1` must have a int"):
            td.qv_learning(q, f32(0.0), R_T, D_T, f32(1.0))
        with pytest.raises(ValueError, match="`entropy_temperature` must be > 0"):
            td.munchausen_q_learning(q, a, R_T, D_T, q, q, 0.0)
        with pytest.raises(ValueError, match="`clip_value_min` must be <= 0"):
            td.munchausen_q_learning(q, a, R_T, D_T, q, q, clip_value_min=0.5)
        with pytest.raises(AssertionError, match="`q_tm1_target` \\(3,\\)"):
            td.munchausen_q_learning(q, a, R_T, D_T, q, jnp.ones(3, f32))


# ------------------------------------------------------------------ returns.py

def _gae_oracle(r, d, lam, values):
    """A_i = sum_{k >= i} (prod_{i <= j < k} d_j lam_j) delta_k, as a plain double loop."""
    n = len(r)
    lam = np.broadcast_to(lam, (n,))
    delta = [r[k] + d[k] * values[k + 1] - values[k] for k in range(n)]
    out = []
    for i in range(n):
        total, scale = 0.0, 1.0
        for k in range(i, n):
            total += scale * delta[k]
            scale *= d[k] * lam[k]
        out.append(total)
    return np.array(out)


def _trajectory(seed):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=T).astype(np.float32)
    d = np.full(T, 0.9, np.float32)
    d[2] = 0.0
    values = rng.normal(size=T + 1).astype(np.float32)
    return r, d, values


class GAETest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_by_hand(self):
        # delta = [1 + 0.5*2 - 1, 1 + 0.5*4 - 2] = [1, 1]; A_1 = 1, A_0 = 1 + 0.5*0.5*1.
        out = self.variant(returns.truncated_generalized_advantage_estimation)(
            jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), 0.5, jnp.array([1.0, 2.0, 4.0]))
        np.testing.assert_allclose(out, [1.25, 1.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_oracle_and_limits(self):
        r, d, values = _trajectory(0)
        fn = self.variant(returns.truncated_generalized_advantage_estimation)
        for lam in (0.0, 0.7, 1.0, np.linspace(0.2, 0.9, T).astype(np.float32)):
            np.testing.assert_allclose(fn(r, d, lam, values), _gae_oracle(r, d, lam, values),
                                       rtol=1e-5, atol=1e-5)
        # lambda = 1: discounted returns bootstrapped from values[T], minus values[:-1].
        np.testing.assert_allclose(
            fn(r, d, 1.0, values), oracles.discounted_returns(r, d, values[-1]) - values[:-1],
            rtol=1e-5, atol=1e-5)

    def test_stop_gradient_both_ways(self):
        r, d, values = _trajectory(1)
        f = lambda v, s: returns.truncated_generalized_advantage_estimation(r, d, 0.9, v, s).sum()
        np.testing.assert_array_equal(jax.grad(f)(values, True), np.zeros(T + 1))
        assert np.abs(jax.grad(f)(values, False)).sum() > 0

    def test_misuse(self):
        r, d, values = _trajectory(2)
        fn = returns.truncated_generalized_advantage_estimation
        with pytest.raises(AssertionError, match="argument `values` must have shape \\[T\\+1\\]"):
            fn(r, d, 0.9, values[:-1])
        with pytest.raises(AssertionError, match="argument `lambda_` must be a scalar or have"):
            fn(r, d, np.ones(T + 1, np.float32), values)
        with pytest.raises(AssertionError, match="argument `r_t` must have rank 1"):
            fn(r[None], d, 0.9, values)


class BatchedIndexTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_rlax_semantics(self):
        values = jnp.arange(24, dtype=f32).reshape(2, 3, 4)
        indices = jnp.array([[0, 1, 3], [2, 2, 0]], jnp.int32)
        fn = self.variant(returns.batched_index, static_argnums=2)
        np.testing.assert_array_equal(fn(values, indices, False), [[0, 5, 11], [14, 18, 20]])
        np.testing.assert_array_equal(fn(values, indices, True), [[[0], [5], [11]],
                                                                   [[14], [18], [20]]])
        np.testing.assert_array_equal(fn(jnp.array([[1.0, 2.0], [3.0, 4.0]]),
                                         jnp.array([1, 0], jnp.int32), False), [2.0, 3.0])
        assert returns.batched_index(jnp.array([7.0, 8.0]), jnp.int32(1)) == 8.0
        assert list(inspect.signature(returns.batched_index).parameters) == [
            "values", "indices", "keepdims"]

    def test_misuse(self):
        with pytest.raises(AssertionError,
                           match="batched_index: argument `indices` must have rank 1"):
            returns.batched_index(jnp.ones((2, 3)), jnp.zeros((2, 1), jnp.int32))
        with pytest.raises(AssertionError, match="argument `indices` must have the leading shape"):
            returns.batched_index(jnp.ones((2, 3)), jnp.zeros(3, jnp.int32))
        with pytest.raises(AssertionError, match="argument `indices` must have a int dtype"):
            returns.batched_index(jnp.ones((2, 3)), jnp.zeros(2, f32))
        with pytest.raises(AssertionError, match="argument `values` must have rank >= 1"):
            returns.batched_index(f32(1.0), jnp.int32(0))


# --------------------------------------------------------------- multistep.py

def _retrace_continuous_oracle(q_t, v_t, r, d, log_rhos, lam):
    """Munos et al.'s sum of traced TD errors: G_i = r_i + d_i v_i +
    sum_{k > i} (prod_{i <= j < k} d_j c_j) (r_k + d_k v_k - q_t[k-1]), c_j = lam min(1, rho_j)."""
    n = len(r)
    c = lam * np.minimum(1.0, np.exp(log_rhos))
    out = []
    for i in range(n):
        g, scale = r[i] + d[i] * v_t[i], 1.0
        for k in range(i + 1, n):
            scale *= d[k - 1] * c[k - 1]
            g += scale * (r[k] + d[k] * v_t[k] - q_t[k - 1])
        out.append(g)
    return np.array(out)


def _importance_corrected_oracle(r, d, rho, lam, values):
    """errors_i = rho_i sum_{k >= i} (prod_{i <= j < k} d_j lam_j rho_{j+1}) delta_k."""
    n = len(r)
    lam = np.broadcast_to(lam, (n,))
    delta = [r[k] + d[k] * values[k + 1] - values[k] for k in range(n)]
    out = []
    for i in range(n):
        total, scale = 0.0, 1.0
        for k in range(i, n):
            total += scale * delta[k]
            if k + 1 < n:
                scale *= d[k] * lam[k] * rho[k + 1]
        out.append(rho[i] * total)
    return np.array(out)


def _leaky_vtrace_oracle(v_tm1, v_t, r, d, rho, alpha, lam, rho_bar, mask=None):
    """Leaky V-trace errors (Zahavy et al. 2020) over the learnable steps, as a double loop.

    Masked steps are skipped (their discount and trace do not enter the products) and report
    the error of the next learnable step (0 after the last), as rlax does."""
    n = len(r)
    mask = np.ones(n, bool) if mask is None else mask
    c = lam * ((1 - alpha) * rho + alpha * np.minimum(1.0, rho))
    rho_c = (1 - alpha) * rho + alpha * np.minimum(rho_bar, rho)
    delta = rho_c * (r + d * v_t - v_tm1)
    learnable = [k for k in range(n) if mask[k]]

    def error_from(i):  # The error of the first learnable step at or after i.
        ks = [k for k in learnable if k >= i]
        total, scale = 0.0, 1.0
        for pos, k in enumerate(ks):
            if pos > 0:
                prev = ks[pos - 1]
                scale *= d[prev] * c[prev]
            total += scale * delta[k]
        return total

    return np.array([error_from(i) for i in range(n)])


def _vdata(seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=T + 1).astype(np.float32)
    r = rng.normal(size=T).astype(np.float32)
    d = np.full(T, 0.9, np.float32)
    d[3] = 0.0
    rho = rng.uniform(0.2, 2.0, size=T).astype(np.float32)
    return v[:-1], v[1:], r, d, rho


class RetraceContinuousTest(chex.TestCase):

    def _data(self, seed):
        rng = np.random.default_rng(seed)
        q_tm1 = rng.normal(size=T).astype(np.float32)
        q_t = rng.normal(size=T - 1).astype(np.float32)
        v_t = rng.normal(size=T).astype(np.float32)
        r = rng.normal(size=T).astype(np.float32)
        d = np.full(T, 0.9, np.float32)
        d[2] = 0.0
        log_rhos = rng.normal(size=T - 1).astype(np.float32)
        return q_tm1, q_t, v_t, r, d, log_rhos

    @chex.variants(with_jit=True, without_jit=True)
    def test_by_hand(self):
        # T = 2, c_0 = 0.5 * min(1, e^0) = 0.5. G_1 = 1 + 0.5 * 2 = 2.
        # G_0 = 1 + 0.5 * (3 - 0.5 * 4 + 0.5 * 2) = 2; errors = G - q_tm1 = [2 - 1, 2 - 0].
        out = self.variant(multistep.retrace_continuous)(
            jnp.array([1.0, 0.0]), jnp.array([4.0]), jnp.array([3.0, 2.0]), jnp.array([1.0, 1.0]),
            jnp.array([0.5, 0.5]), jnp.array([0.0]), 0.5)
        np.testing.assert_allclose(out, [1.0, 2.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_oracle(self):
        q_tm1, q_t, v_t, r, d, log_rhos = self._data(0)
        for lam in (1.0, 0.8):
            out = self.variant(multistep.retrace_continuous)(q_tm1, q_t, v_t, r, d, log_rhos, lam)
            expected = _retrace_continuous_oracle(q_t, v_t, r, d, log_rhos, lam) - q_tm1
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    def test_stop_gradient_both_ways(self):
        q_tm1, q_t, v_t, r, d, log_rhos = self._data(1)
        f = lambda q_t, v_t, s: multistep.retrace_continuous(
            q_tm1, q_t, v_t, r, d, log_rhos, 0.9, s).sum()
        assert _grad_norm(f, q_t, v_t, True, argnums=(0, 1)) == 0.0
        assert _grad_norm(f, q_t, v_t, False, argnums=(0, 1)) > 0.0
        g = jax.grad(lambda q: multistep.retrace_continuous(q, q_t, v_t, r, d, log_rhos, 0.9).sum())
        np.testing.assert_array_equal(g(q_tm1), -np.ones(T))

    def test_misuse(self):
        q_tm1, q_t, v_t, r, d, log_rhos = self._data(2)
        with pytest.raises(AssertionError, match="`q_t` and `log_rhos` must have shape \\[T-1\\]"):
            multistep.retrace_continuous(q_tm1, v_t, v_t, r, d, r, 1.0)
        with pytest.raises(AssertionError, match="`log_rhos` \\(4,\\)"):
            multistep.retrace_continuous(q_tm1, q_t, v_t, r, d, log_rhos[:-1], 1.0)
        with pytest.raises(AssertionError, match="argument `lambda_` must be a scalar or have "
                           "shape \\(5,\\)"):
            multistep.retrace_continuous(q_tm1, q_t, v_t, r, d, log_rhos, np.ones(T, np.float32))


class ImportanceCorrectedTDErrorsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_by_hand(self):
        # delta = [1 + 0.5*2 - 1, 1 + 0.5*4 - 2] = [1, 1]; e_1 = 1,
        # e_0 = 1 + 0.5 * rho_1 (=2) * lam (=0.5) * 1 = 1.5; errors = rho * e = [0.5*1.5, 2*1].
        out = self.variant(multistep.importance_corrected_td_errors)(
            jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), jnp.array([0.5, 2.0]), 0.5,
            jnp.array([1.0, 2.0, 4.0]))
        np.testing.assert_allclose(out, [0.75, 2.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_oracle_and_on_policy(self):
        r, d, values = _trajectory(3)
        rho = np.random.default_rng(3).uniform(0.2, 2.0, size=T).astype(np.float32)
        fn = self.variant(multistep.importance_corrected_td_errors)
        for lam in (0.9, np.linspace(0.2, 0.9, T).astype(np.float32)):
            np.testing.assert_allclose(fn(r, d, rho, lam, values),
                                       _importance_corrected_oracle(r, d, rho, lam, values),
                                       rtol=1e-5, atol=1e-5)
        # rho = 1: lambda-returns minus values.
        np.testing.assert_allclose(
            fn(r, d, np.ones(T, np.float32), 0.7, values),
            oracles.lambda_returns_forward_view(r, d, values[1:], 0.7) - values[:-1],
            rtol=1e-5, atol=1e-5)

    def test_stop_gradient_both_ways(self):
        r, d, values = _trajectory(4)
        rho = np.full(T, 0.8, np.float32)
        f = lambda v, s: multistep.importance_corrected_td_errors(r, d, rho, 0.9, v, s).sum()
        # With stopped targets only the prediction values[:-1] get gradient, exactly -1 each.
        np.testing.assert_array_equal(jax.grad(f)(values, True), [-1.0] * T + [0.0])
        g = jax.grad(f)(values, False)
        assert np.abs(g[-1]) > 0 and not np.allclose(g[:-1], -1.0)

    def test_misuse(self):
        r, d, values = _trajectory(5)
        fn = multistep.importance_corrected_td_errors
        with pytest.raises(AssertionError, match="argument `values` must have shape \\[T\\+1\\]"):
            fn(r, d, np.ones(T, np.float32), 1.0, values[1:])
        with pytest.raises(AssertionError, match="`rho_tm1` \\(5,\\)"):
            fn(r, d, np.ones(T - 1, np.float32), 1.0, values)


class VTraceMaskAndLeakyTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_leaky_vtrace_oracle(self):
        v_tm1, v_t, r, d, rho = _vdata(0)
        fn = self.variant(multistep.leaky_vtrace)
        for alpha in (0.0, 0.3, 1.0):
            out = fn(v_tm1, v_t, r, d, rho, alpha, 0.9, 1.2)
            np.testing.assert_allclose(
                out, _leaky_vtrace_oracle(v_tm1, v_t, r, d, rho, alpha, 0.9, 1.2),
                rtol=1e-5, atol=1e-5)
        # alpha = 1 is V-trace.
        np.testing.assert_allclose(fn(v_tm1, v_t, r, d, rho, 1.0, 0.9, 1.2),
                                   multistep.vtrace(v_tm1, v_t, r, d, rho, 0.9, 1.2),
                                   rtol=1e-6, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sample_mask_oracle(self):
        v_tm1, v_t, r, d, rho = _vdata(1)
        mask = np.array([True, False, True, True, False, False])
        out = self.variant(multistep.vtrace)(v_tm1, v_t, r, d, rho, 0.9, 1.2, True, mask)
        np.testing.assert_allclose(
            out, _leaky_vtrace_oracle(v_tm1, v_t, r, d, rho, 1.0, 0.9, 1.2, mask),
            rtol=1e-5, atol=1e-5)
        out = self.variant(multistep.leaky_vtrace)(
            v_tm1, v_t, r, d, rho, 0.4, 0.9, 1.2, True, mask)
        np.testing.assert_allclose(
            out, _leaky_vtrace_oracle(v_tm1, v_t, r, d, rho, 0.4, 0.9, 1.2, mask),
            rtol=1e-5, atol=1e-5)
        # An all-True mask changes nothing.
        np.testing.assert_array_equal(
            multistep.vtrace(v_tm1, v_t, r, d, rho, sample_mask=np.ones(T, bool)),
            multistep.vtrace(v_tm1, v_t, r, d, rho))

    def test_td_error_and_advantage_with_leak_and_mask(self):
        v_tm1, v_t, r, d, rho = _vdata(2)
        mask = np.array([True, True, False, True, True, True])
        for alpha in (0.5, 1.0):
            out = multistep.leaky_vtrace_td_error_and_advantage(
                v_tm1, v_t, r, d, rho, alpha, 0.8, 1.0, 0.9, True, mask)
            errors = _leaky_vtrace_oracle(v_tm1, v_t, r, d, rho, alpha, 0.8, 1.0, mask)
            vs = errors + v_tm1
            q_est = r + d * np.concatenate([0.8 * vs[1:] + 0.2 * v_tm1[1:], v_t[-1:]])
            pg_rho = (1 - alpha) * rho + alpha * np.minimum(0.9, rho)
            np.testing.assert_allclose(out.errors, errors, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out.q_estimate, q_est, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out.pg_advantage, pg_rho * (q_est - v_tm1), rtol=1e-5,
                                       atol=1e-5)
        # alpha = 1 is vtrace_td_error_and_advantage, mask and all.
        ours = multistep.leaky_vtrace_td_error_and_advantage(
            v_tm1, v_t, r, d, rho, 1.0, 0.8, 1.0, 0.9, True, mask)
        theirs = multistep.vtrace_td_error_and_advantage(
            v_tm1, v_t, r, d, rho, 0.8, 1.0, 0.9, True, mask)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

    def test_stop_gradient_both_ways(self):
        v_tm1, v_t, r, d, rho = _vdata(3)
        for fn in (lambda v, s: multistep.leaky_vtrace(v_tm1, v, r, d, rho, 0.5, 1.0, 1.0, s),
                   lambda v, s: multistep.leaky_vtrace_td_error_and_advantage(
                       v_tm1, v, r, d, rho, 0.5, 1.0, 1.0, 1.0, s).errors,
                   lambda v, s: multistep.vtrace(
                       v_tm1, v, r, d, rho, 1.0, 1.0, s, np.ones(T, bool))):
            f = lambda v, s, fn=fn: fn(v, s).sum()
            np.testing.assert_array_equal(jax.grad(f)(v_t, True), np.zeros(T))
            assert np.abs(jax.grad(f)(v_t, False)).sum() > 0

    def test_signatures_put_sample_mask_last(self):
        for fn in (multistep.vtrace, multistep.vtrace_td_error_and_advantage,
                   multistep.leaky_vtrace, multistep.leaky_vtrace_td_error_and_advantage):
            params = list(inspect.signature(fn).parameters.values())
            assert params[-1].name == "sample_mask" and params[-1].default is None
            assert params[-2].name == "stop_target_gradients" and params[-2].default is True
        assert "alpha_" in inspect.signature(multistep.leaky_vtrace).parameters
        assert "alpha" in inspect.signature(
            multistep.leaky_vtrace_td_error_and_advantage).parameters

    def test_misuse(self):
        v_tm1, v_t, r, d, rho = _vdata(4)
        with pytest.raises(AssertionError, match="vtrace: argument `sample_mask` must have a bool"):
            multistep.vtrace(v_tm1, v_t, r, d, rho, sample_mask=np.ones(T, np.float32))
        with pytest.raises(AssertionError, match="`sample_mask` \\(5,\\)"):
            multistep.vtrace_td_error_and_advantage(
                v_tm1, v_t, r, d, rho, sample_mask=np.ones(T - 1, bool))
        with pytest.raises(ValueError, match="leaky_vtrace: argument `alpha_` must be in"):
            multistep.leaky_vtrace(v_tm1, v_t, r, d, rho, 1.5)
        with pytest.raises(ValueError, match="argument `alpha` must be in"):
            multistep.leaky_vtrace_td_error_and_advantage(v_tm1, v_t, r, d, rho, -0.1)


# ------------------------------------------------------------------ losses.py

class LossesTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_expectile_by_hand(self):
        # diff = targets - predictions = [2, -2, 0]; weights [0.8, 0.2, 0.8].
        out = self.variant(losses.expectile_loss, static_argnums=2)(
            jnp.array([1.0, 3.0, 1.0]), jnp.array([3.0, 1.0, 1.0]), 0.8)
        np.testing.assert_allclose(out, [3.2, 0.8, 0.0], rtol=1e-6)
        # expectile 0.5 is half the squared error.
        x, y = jnp.array([0.3, -1.2]), jnp.array([1.0, 2.0])
        np.testing.assert_allclose(losses.expectile_loss(x, y, 0.5), 0.5 * (y - x) ** 2)

    @chex.variants(with_jit=True, without_jit=True)
    def test_likelihood_and_log_loss_by_hand(self):
        p = jnp.array([0.8, 0.8, 0.5, 1.0, 0.0, 0.25])
        t = jnp.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.5])
        expected = [0.8, 0.2, 0.5, 1.0, 1.0, math.sqrt(0.25 * 0.75)]
        np.testing.assert_allclose(self.variant(losses.likelihood)(p, t), expected, rtol=1e-6)
        np.testing.assert_allclose(self.variant(losses.log_loss)(p, t), -np.log(expected),
                                   rtol=1e-5, atol=1e-7)

    def test_log_loss_gradient_is_bce(self):
        # d/dp -(t log p + (1 - t) log(1 - p)) = (p - t) / (p (1 - p)).
        g = jax.grad(lambda p: losses.log_loss(p, jnp.float32(0.3)))(jnp.float32(0.6))
        np.testing.assert_allclose(g, (0.6 - 0.3) / (0.6 * 0.4), rtol=1e-5)

    def test_misuse(self):
        x = jnp.ones(3)
        with pytest.raises(AssertionError, match="expectile_loss: arguments must have the same"):
            losses.expectile_loss(x, jnp.ones(2), 0.5)
        with pytest.raises(ValueError, match="`expectile` must be in \\[0, 1\\]"):
            losses.expectile_loss(x, x, 1.5)
        with pytest.raises(AssertionError, match="log_loss: argument `targets` must have a float"):
            losses.log_loss(x, jnp.ones(3, jnp.int32))
        with pytest.raises(AssertionError, match="likelihood: arguments must have the same shape"):
            losses.likelihood(x, jnp.ones(2))
