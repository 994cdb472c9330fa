"""One-step TD errors: hand-computed values, stop-gradients both ways, bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tdkit

# (v_tm1, r_t, discount_t, v_t) -> r_t + discount_t * v_t - v_tm1, computed by hand.
TD_CASES = [
    ((1.0, 2.0, 0.5, 3.0), 2.5),
    ((0.0, -1.0, 0.0, 100.0), -1.0),  # Termination: the discount is zero, no bootstrap.
    ((2.0, 0.0, 0.9, 2.0), -0.2),
]


class TDLearningTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_values(self):
        fn = self.variant(tdkit.td_learning)
        for args, expected in TD_CASES:
            np.testing.assert_allclose(fn(*map(jnp.float32, args)), expected, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_batched_by_vmap(self):
        fn = self.variant(jax.vmap(tdkit.td_learning))
        args = [jnp.array([c[0][i] for c in TD_CASES], jnp.float32) for i in range(4)]
        np.testing.assert_allclose(fn(*args), [e for _, e in TD_CASES], rtol=1e-6)

    def test_stop_gradient(self):
        def grad_wrt_v_t(stop):
            f = lambda v_tm1, v_t: tdkit.td_learning(v_tm1, 1.0, 0.5, v_t, stop)
            return jax.grad(f, argnums=(0, 1))(1.0, 3.0)

        g_tm1, g_t = grad_wrt_v_t(True)
        assert g_tm1 == -1.0 and g_t == 0.0
        g_tm1, g_t = grad_wrt_v_t(False)
        assert g_tm1 == -1.0 and g_t == 0.5

    def test_rejects_a_batch(self):
        with pytest.raises(AssertionError, match="td_learning: argument `v_tm1` must have rank 0"):
            tdkit.td_learning(jnp.zeros(3), 0.0, 1.0, 0.0)

    def test_rejects_integer_reward(self):
        with pytest.raises(AssertionError, match="argument `r_t` must have a float dtype"):
            tdkit.td_learning(0.0, jnp.int32(1), 1.0, 0.0)


Q_TM1 = jnp.array([1.0, 2.0], jnp.float32)
Q_T = jnp.array([3.0, 4.0], jnp.float32)
A_TM1 = jnp.int32(1)
R_T = jnp.float32(1.0)
D_T = jnp.float32(0.5)


class ActionValueTDTest(chex.TestCase):
    """Expected values by hand: q_tm1 = [1, 2], a_tm1 = 1, r = 1, discount = 0.5, q_t = [3, 4]."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_sarsa(self):
        # 1 + 0.5 * q_t[0] - q_tm1[1] = 1 + 1.5 - 2
        out = self.variant(tdkit.sarsa)(Q_TM1, A_TM1, R_T, D_T, Q_T, jnp.int32(0))
        np.testing.assert_allclose(out, 0.5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_expected_sarsa(self):
        # 1 + 0.5 * (0.25 * 3 + 0.75 * 4) - 2 = 0.875
        probs = jnp.array([0.25, 0.75], jnp.float32)
        out = self.variant(tdkit.expected_sarsa)(Q_TM1, A_TM1, R_T, D_T, Q_T, probs)
        np.testing.assert_allclose(out, 0.875)

    @chex.variants(with_jit=True, without_jit=True)
    def test_q_learning(self):
        # 1 + 0.5 * max(3, 4) - 2 = 1
        out = self.variant(tdkit.q_learning)(Q_TM1, A_TM1, R_T, D_T, Q_T)
        np.testing.assert_allclose(out, 1.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_double_q_learning(self):
        # The selector picks action 0; the value net evaluates it: 1 + 0.5 * 3 - 2 = 0.5
        selector = jnp.array([5.0, 1.0], jnp.float32)
        out = self.variant(tdkit.double_q_learning)(Q_TM1, A_TM1, R_T, D_T, Q_T, selector)
        np.testing.assert_allclose(out, 0.5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_q_learning_batch_via_vmap(self):
        q_tm1 = jnp.array([[1.0, 1.0, 0.0], [1.0, 2.0, 0.0]], jnp.float32)
        q_t = jnp.array([[0.0, 1.0, 0.0], [1.0, 2.0, 0.0]], jnp.float32)
        a_tm1 = jnp.array([0, 1], jnp.int32)
        r_t = jnp.array([1.0, 1.0], jnp.float32)
        discount_t = jnp.array([0.0, 1.0], jnp.float32)
        out = self.variant(jax.vmap(tdkit.q_learning))(q_tm1, a_tm1, r_t, discount_t, q_t)
        np.testing.assert_allclose(out, [0.0, 1.0])

    def test_stop_gradients_all_rules(self):
        probs = jnp.array([0.25, 0.75], jnp.float32)
        selector = jnp.array([5.0, 1.0], jnp.float32)
        rules = {
            "sarsa": lambda q_t, s: tdkit.sarsa(Q_TM1, A_TM1, R_T, D_T, q_t, jnp.int32(0), s),
            "expected_sarsa": lambda q_t, s: tdkit.expected_sarsa(
                Q_TM1, A_TM1, R_T, D_T, q_t, probs, s),
            "q_learning": lambda q_t, s: tdkit.q_learning(Q_TM1, A_TM1, R_T, D_T, q_t, s),
            "double_q_learning": lambda q_t, s: tdkit.double_q_learning(
                Q_TM1, A_TM1, R_T, D_T, q_t, selector, s),
        }
        expected_unstopped = {
            "sarsa": [0.5, 0.0],
            "expected_sarsa": [0.125, 0.375],
            "q_learning": [0.0, 0.5],
            "double_q_learning": [0.5, 0.0],
        }
        for name, rule in rules.items():
            g = jax.grad(lambda q_t, rule=rule: rule(q_t, True))(Q_T)
            np.testing.assert_array_equal(g, [0.0, 0.0], err_msg=name)
            g = jax.grad(lambda q_t, rule=rule: rule(q_t, False))(Q_T)
            np.testing.assert_allclose(g, expected_unstopped[name], err_msg=name)
            # The prediction side always carries the gradient: d delta / d q_tm1 = -e_a.
            g_pred = jax.grad(
                lambda q_tm1: tdkit.q_learning(q_tm1, A_TM1, R_T, D_T, Q_T))(Q_TM1)
            np.testing.assert_array_equal(g_pred, [0.0, -1.0])

    def test_rejects_float_action(self):
        with pytest.raises(AssertionError, match="q_learning: argument `a_tm1` must have a int"):
            tdkit.q_learning(Q_TM1, jnp.float32(1.0), R_T, D_T, Q_T)

    def test_rejects_batch(self):
        with pytest.raises(AssertionError, match="sarsa: argument `q_tm1` must have rank 1"):
            tdkit.sarsa(jnp.zeros((4, 2)), A_TM1, R_T, D_T, Q_T, A_TM1)

    def test_rejects_mismatched_action_values(self):
        with pytest.raises(AssertionError, match="q_t_value.*q_t_selector"):
            tdkit.double_q_learning(Q_TM1, A_TM1, R_T, D_T, Q_T, jnp.zeros(3))

    def test_traced_stop_flag(self):
        # A traced flag (e.g. under jit without static_argnums) selects at run time.
        f = jax.jit(lambda q_t, s: tdkit.q_learning(Q_TM1, A_TM1, R_T, D_T, q_t, s))
        g_stop = jax.grad(f)(Q_T, True)
        g_flow = jax.grad(f)(Q_T, False)
        np.testing.assert_array_equal(g_stop, [0.0, 0.0])
        np.testing.assert_allclose(g_flow, [0.0, 0.5])


def test_per_example_grads_of_linear_td_loss_equal_loop_and_minus_delta_x():
    """jit(vmap(grad)) of a one-transition TD loss equals a Python loop and -delta * x_tm1."""
    rng = np.random.default_rng(0)
    batch, features = 16, 5
    w = jnp.asarray(rng.normal(size=features), jnp.float32)
    x_tm1 = jnp.asarray(rng.normal(size=(batch, features)), jnp.float32)
    x_t = jnp.asarray(rng.normal(size=(batch, features)), jnp.float32)
    r_t = jnp.asarray(rng.normal(size=batch), jnp.float32)
    discount_t = jnp.asarray(rng.choice([0.0, 0.9], size=batch), jnp.float32)

    def loss(w, x_tm1, r_t, discount_t, x_t):
        delta = tdkit.td_learning(jnp.dot(w, x_tm1), r_t, discount_t, jnp.dot(w, x_t))
        return tdkit.l2_loss(delta)

    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0, 0, 0)))
    grads = per_example(w, x_tm1, r_t, discount_t, x_t)
    chex.assert_shape(grads, (batch, features))
    single = jax.jit(jax.grad(loss))
    loop = np.stack([single(w, x_tm1[i], r_t[i], discount_t[i], x_t[i]) for i in range(batch)])
    np.testing.assert_allclose(grads, loop, rtol=1e-5, atol=1e-6)
    w_np, x0, x1 = map(np.asarray, (w, x_tm1, x_t))
    delta = np.asarray(r_t) + np.asarray(discount_t) * (x1 @ w_np) - x0 @ w_np
    np.testing.assert_allclose(grads, -delta[:, None] * x0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads.mean(0), jax.grad(
        lambda w: jax.vmap(loss, in_axes=(None, 0, 0, 0, 0))(
            w, x_tm1, r_t, discount_t, x_t).mean())(w), rtol=1e-5, atol=1e-6)
