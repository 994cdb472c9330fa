"""td_loss: hand-computed values for every rule, stop-gradients, the seed pattern, bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tdkit
from tdkit import losses, values
from tdkit.types import SarsaTransition

# Tabular action values, 3 states x 2 actions, and the target network's values.
PARAMS = {"table": jnp.array([[1.0, 2.0], [4.0, 3.0], [0.0, 0.0]])}
TARGET = {"table": jnp.array([[0.0, 0.0], [2.0, 6.0], [0.0, 0.0]])}
# State values for td_learning.
V_PARAMS = {"table": jnp.array([1.0, 4.0, 0.0])}
V_TARGET = {"table": jnp.array([0.0, 2.0, 0.0])}
# s_tm1 = 0, a_tm1 = 1, r_t = 2, discount_t = 0.5, s_t = 1, a_t = 0.
TRANSITION = SarsaTransition(
    obs_tm1=jnp.int32(0), a_tm1=jnp.int32(1), r_t=jnp.float32(2.0),
    discount_t=jnp.float32(0.5), obs_t=jnp.int32(1), a_t=jnp.int32(0))

# TD errors by hand (q_tm1 = PARAMS[0, 1] = 2, v_tm1 = 1):
#   td_learning:       2 + 0.5 * V_TARGET[1] - 1                          = 2
#   q_learning:        2 + 0.5 * max(2, 6) - 2                            = 3
#   double_q_learning: argmax PARAMS[1] = 0 -> 2 + 0.5 * TARGET[1, 0] - 2 = 1
#   sarsa (a_t = 0):   2 + 0.5 * TARGET[1, 0] - 2                         = 1
#   expected_sarsa, epsilon 0.2 -> probs [0.1, 0.9]: 2 + 0.5 * 5.6 - 2   = 2.8
DELTAS = {"td_learning": 2.0, "q_learning": 3.0, "double_q_learning": 1.0, "sarsa": 1.0,
          "expected_sarsa": 2.8}
# 0.5 * delta^2 and Huber(delta = 1): 0.5 * delta^2 if |delta| <= 1 else |delta| - 0.5.
L2 = {"td_learning": 2.0, "q_learning": 4.5, "double_q_learning": 0.5, "sarsa": 0.5,
      "expected_sarsa": 3.92}
HUBER = {"td_learning": 1.5, "q_learning": 2.5, "double_q_learning": 0.5, "sarsa": 0.5,
         "expected_sarsa": 2.3}


def make_loss(rule, loss="l2", **kwargs):
    if rule == "expected_sarsa":
        kwargs.setdefault("epsilon", 0.2)
    value_fn = values.tabular(3) if rule == "td_learning" else values.tabular(3, 2)
    return losses.td_loss(value_fn, rule, loss, **kwargs)


def params_for(rule):
    return (V_PARAMS, V_TARGET) if rule == "td_learning" else (PARAMS, TARGET)


class TDLossValuesTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed_values(self):
        for rule in DELTAS:
            params, target = params_for(rule)
            for loss, expected in (("l2", L2), ("huber", HUBER)):
                fn = self.variant(make_loss(rule, loss))
                np.testing.assert_allclose(
                    fn(params, target, TRANSITION), expected[rule], rtol=1e-6,
                    err_msg=f"{rule}, {loss}")
                np.testing.assert_allclose(
                    fn(params, target, TRANSITION, jnp.float32(0.25)), 0.25 * expected[rule],
                    rtol=1e-6, err_msg=f"{rule}, {loss}, weighted")

    @chex.variants(with_jit=True, without_jit=True)
    def test_aux_is_the_td_error(self):
        for rule, delta in DELTAS.items():
            params, target = params_for(rule)
            fn = self.variant(make_loss(rule, "huber", has_aux=True))
            loss, td_error = fn(params, target, TRANSITION, jnp.float32(2.0))
            np.testing.assert_allclose(loss, 2.0 * HUBER[rule], rtol=1e-6)
            np.testing.assert_allclose(td_error, delta, rtol=1e-6)

    def test_huber_delta(self):
        # delta 3 with threshold 2: 0.5 * 2^2 + 2 * (3 - 2) = 4.
        fn = make_loss("q_learning", "huber", huber_delta=2.0)
        np.testing.assert_allclose(fn(PARAMS, TARGET, TRANSITION), 4.0)

    def test_rule_as_a_tdkit_function(self):
        fn = losses.td_loss(values.tabular(3, 2), tdkit.q_learning)
        np.testing.assert_allclose(fn(PARAMS, TARGET, TRANSITION), L2["q_learning"])

    def test_expected_sarsa_splits_ties(self):
        # q_t = [3, 3], epsilon 0.5: probs [0.5, 0.5]; 2 + 0.5 * 3 - 2 = 1.5.
        target = {"table": jnp.array([[0.0, 0.0], [3.0, 3.0], [0.0, 0.0]])}
        fn = make_loss("expected_sarsa", has_aux=True, epsilon=0.5)
        np.testing.assert_allclose(fn(PARAMS, target, TRANSITION)[1], 1.5)

    def test_plain_transition_for_q_learning(self):
        t = tdkit.Transition(*TRANSITION[:5])
        np.testing.assert_allclose(make_loss("q_learning")(PARAMS, TARGET, t), 4.5)


class TDLossGradientTest(chex.TestCase):

    def test_semi_gradient_wrt_params(self):
        # d(0.5 delta^2)/dq_tm1[a_tm1] = -delta, nothing else.
        for rule, delta in DELTAS.items():
            params, target = params_for(rule)
            g = jax.grad(make_loss(rule))(params, target, TRANSITION)["table"]
            expected = np.zeros(g.shape)
            expected[(0,) if rule == "td_learning" else (0, 1)] = -delta
            np.testing.assert_allclose(g, expected, rtol=1e-6, err_msg=rule)

    def test_target_side_gradient_zero_by_default(self):
        for rule in DELTAS:
            params, target = params_for(rule)
            g = jax.grad(make_loss(rule), argnums=1)(params, target, TRANSITION)
            np.testing.assert_array_equal(g["table"], np.zeros(g["table"].shape), err_msg=rule)

    def test_target_side_gradient_without_stop(self):
        # d(0.5 delta^2)/d target value = delta * discount_t * (d target / d value).
        expected = {
            "td_learning": ((1,), 2.0 * 0.5),
            "q_learning": ((1, 1), 3.0 * 0.5),
            "double_q_learning": ((1, 0), 1.0 * 0.5),
            "sarsa": ((1, 0), 1.0 * 0.5),
        }
        for rule, (index, value) in expected.items():
            params, target = params_for(rule)
            loss = make_loss(rule, stop_target_gradients=False)
            g = jax.grad(loss, argnums=1)(params, target, TRANSITION)["table"]
            want = np.zeros(g.shape)
            want[index] = value
            np.testing.assert_allclose(g, want, rtol=1e-6, err_msg=rule)
        loss = make_loss("expected_sarsa", stop_target_gradients=False)
        g = jax.grad(loss, argnums=1)(PARAMS, TARGET, TRANSITION)["table"]
        np.testing.assert_allclose(g[1], 2.8 * 0.5 * np.array([0.1, 0.9]), rtol=1e-5)
        np.testing.assert_array_equal(g[0], [0.0, 0.0])

    def test_shared_params_wrapper(self):
        # target_params = params: delta = 2 + 0.5 * max(PARAMS[1]) - 2 = 2.
        for stop, extra in ((True, 0.0), (False, 2.0 * 0.5)):
            loss = make_loss("q_learning", stop_target_gradients=stop)
            g = jax.grad(lambda p, t, loss=loss: loss(p, p, t))(PARAMS, TRANSITION)["table"]
            np.testing.assert_allclose(g, [[0.0, -2.0], [extra, 0.0], [0.0, 0.0]], rtol=1e-6)

    def test_double_q_selector_carries_no_gradient(self):
        loss = make_loss("double_q_learning", stop_target_gradients=False)
        g = jax.grad(loss)(PARAMS, TARGET, TRANSITION)["table"]
        np.testing.assert_allclose(g, [[0.0, -1.0], [0.0, 0.0], [0.0, 0.0]])


def _mlp_batch(batch_size, seed):
    rng = np.random.default_rng(seed)
    return tdkit.Transition(
        obs_tm1=rng.standard_normal((batch_size, 4), np.float32),
        a_tm1=rng.integers(0, 2, batch_size).astype(np.int32),
        r_t=rng.standard_normal(batch_size, np.float32),
        discount_t=np.full(batch_size, 0.9, np.float32),
        obs_t=rng.standard_normal((batch_size, 4), np.float32))


class SeedPatternTest(chex.TestCase):

    def test_jit_vmap_grad_as_written(self):
        value_fn = values.mlp([8], 2)
        params = value_fn.init(jax.random.key(0), jnp.zeros(4))
        target = jax.tree.map(lambda p: 0.5 * p, params)
        loss = chex.assert_max_traces(losses.td_loss(value_fn, "q_learning", "huber"), n=1)
        perex = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, None, 0)))
        # Oracle: one un-vmapped gradient per transition, in a Python loop.
        single_grad = jax.jit(jax.grad(losses.td_loss(value_fn, "q_learning", "huber")))
        for seed in (1, 2):
            batch = _mlp_batch(5, seed)
            grads = perex(params, target, batch)
            chex.assert_trees_all_equal_shapes(
                grads, jax.tree.map(lambda p: jnp.zeros((5,) + p.shape), params))
            for i in range(5):
                single = single_grad(params, target, jax.tree.map(lambda x, i=i: x[i], batch))
                chex.assert_trees_all_close(
                    jax.tree.map(lambda g, i=i: g[i], grads), single, rtol=1e-5, atol=1e-6)

    def test_weighted_pattern_and_value_and_grad(self):
        value_fn = values.mlp([8], 2)
        params = value_fn.init(jax.random.key(0), jnp.zeros(4))
        batch = _mlp_batch(6, 3)
        weights = jnp.linspace(0.0, 1.0, 6)
        loss = losses.td_loss(value_fn)
        weighted = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, None, 0, 0)))(
            params, params, batch, weights)
        plain = jax.vmap(jax.grad(loss), in_axes=(None, None, 0))(params, params, batch)
        chex.assert_trees_all_close(
            weighted, jax.tree.map(lambda g: g * weights.reshape((6,) + (1,) * (g.ndim - 1)),
                                   plain), rtol=1e-5, atol=1e-7)
        aux_loss = losses.td_loss(value_fn, has_aux=True)
        (values_, deltas), _ = jax.vmap(
            jax.value_and_grad(aux_loss, has_aux=True), in_axes=(None, None, 0))(
                params, params, batch)
        np.testing.assert_allclose(values_, 0.5 * np.asarray(deltas) ** 2, rtol=1e-5)


class TDLossBadInputTest(chex.TestCase):

    def test_batch_instead_of_one_transition(self):
        batch = jax.tree.map(lambda x: jnp.stack([x, x]), TRANSITION)
        with pytest.raises(AssertionError, match=r"td_loss: argument `transition` must be ONE "
                           r"transition \(`transition.r_t` of shape \(\)\), got"):
            make_loss("q_learning")(PARAMS, TARGET, batch)

    def test_bad_weight(self):
        with pytest.raises(AssertionError, match="td_loss: argument `weight` must have rank 0"):
            make_loss("q_learning")(PARAMS, TARGET, TRANSITION, jnp.ones(2))

    def test_integer_reward(self):
        t = TRANSITION._replace(r_t=jnp.int32(2))
        with pytest.raises(AssertionError, match=r"argument `transition.r_t` must have a float"):
            make_loss("q_learning")(PARAMS, TARGET, t)

    def test_sarsa_needs_a_t(self):
        with pytest.raises(TypeError, match=r"rule 'sarsa' needs `transition.a_t`"):
            make_loss("sarsa")(PARAMS, TARGET, tdkit.Transition(*TRANSITION[:5]))

    def test_value_kind_must_match_the_rule(self):
        with pytest.raises(AssertionError, match="rule 'td_learning' needs a state-value"):
            losses.td_loss(values.tabular(3, 2), "td_learning")(PARAMS, TARGET, TRANSITION)
        with pytest.raises(AssertionError, match="rule 'q_learning' needs action values"):
            losses.td_loss(values.tabular(3), "q_learning")(V_PARAMS, V_TARGET, TRANSITION)

    def test_wrong_observation_shape_names_obs(self):
        value_fn = values.mlp([4], 2)
        params = value_fn.init(jax.random.key(0), jnp.zeros(3))
        t = tdkit.Transition(jnp.zeros(4), jnp.int32(0), jnp.float32(0.0), jnp.float32(1.0),
                             jnp.zeros(4))
        with pytest.raises(AssertionError, match=r"mlp.apply: argument `obs` must have shape"):
            losses.td_loss(value_fn)(params, params, t)

    def test_bad_construction_arguments(self):
        vf = values.tabular(3, 2)
        with pytest.raises(ValueError, match="td_loss: argument `rule` must be one of"):
            losses.td_loss(vf, "watkins")
        with pytest.raises(ValueError, match="td_loss: argument `rule` must be one of"):
            losses.td_loss(vf, tdkit.retrace)
        with pytest.raises(ValueError, match="td_loss: argument `loss` must be 'l2' or 'huber'"):
            losses.td_loss(vf, loss="l1")
        with pytest.raises(ValueError, match="td_loss: argument `huber_delta` must be > 0"):
            losses.td_loss(vf, loss="huber", huber_delta=0.0)
        with pytest.raises(ValueError, match="rule 'expected_sarsa' needs argument `epsilon`"):
            losses.td_loss(vf, "expected_sarsa")
        with pytest.raises(ValueError, match="rule 'expected_sarsa' needs argument `epsilon`"):
            losses.td_loss(vf, "expected_sarsa", epsilon=1.5)
        with pytest.raises(ValueError, match="argument `epsilon` is only used by rule"):
            losses.td_loss(vf, "q_learning", epsilon=0.1)
        with pytest.raises(TypeError, match="td_loss: argument `value_fn` must be a"):
            losses.td_loss(lambda p, o: o)
