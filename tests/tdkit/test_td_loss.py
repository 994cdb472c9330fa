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


# --------------------------------------------------------------------------------------
# Open rules: TDRule. Two distributional rules written here, outside tdkit.losses, for
# [A, K] value outputs, each checked by hand and against a plain-NumPy oracle.
# --------------------------------------------------------------------------------------


def c51_rule(atoms):
    """C51: project the target distribution on `atoms [K]`, cross-entropy with the logits."""
    v_min, v_max = float(atoms[0]), float(atoms[-1])
    spacing = (v_max - v_min) / (len(atoms) - 1)

    def fn(logits_tm1, logits_t, q_t_selector, t, stop):
        probs_t = jax.nn.softmax(logits_t)                                   # [A, K]
        selector = probs_t if q_t_selector is None else jax.nn.softmax(q_t_selector)
        p_t = probs_t[jnp.argmax(selector @ atoms)]                          # [K]
        target_atoms = jnp.clip(t.r_t + t.discount_t * atoms, v_min, v_max)  # [K]
        # Each target atom j splits its mass between the neighbouring atoms i.
        share = jnp.clip(1.0 - jnp.abs(target_atoms[None, :] - atoms[:, None]) / spacing, 0, 1)
        target = tdkit.td.maybe_stop_gradient(share @ p_t, stop)            # [K]
        loss = -jnp.sum(target * jax.nn.log_softmax(logits_tm1[t.a_tm1]))
        return loss, loss

    return losses.TDRule(fn, returns_loss=True, value_ndim=2, name="c51")


def quantile_huber_rule(kappa=1.0):
    """QR-DQN: quantile Huber loss between `q_tm1[a_tm1]` and the greedy target quantiles."""

    def fn(q_tm1, q_t, _, t, stop):
        num_quantiles = q_tm1.shape[-1]
        tau = (jnp.arange(num_quantiles) + 0.5) / num_quantiles                # [K]
        target = t.r_t + t.discount_t * q_t[jnp.argmax(jnp.mean(q_t, axis=-1))]
        target = tdkit.td.maybe_stop_gradient(target, stop)                 # [K]
        u = target[None, :] - q_tm1[t.a_tm1][:, None]                        # [K_i, K_j]
        weight = jnp.abs(tau[:, None] - (u < 0).astype(u.dtype))
        loss = jnp.sum(jnp.mean(weight * losses.huber_loss(u, kappa) / kappa, axis=1))
        return loss, jnp.mean(target) - jnp.mean(q_tm1[t.a_tm1])

    return losses.TDRule(fn, returns_loss=True, value_ndim=2, name="quantile_huber")


def numpy_c51(logits_tm1, logits_t, a_tm1, r_t, discount_t, atoms):
    """Oracle: the classic floor/ceil projection in a Python loop."""
    softmax = lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(
        x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)
    probs_t = softmax(np.asarray(logits_t, np.float64))
    p_t = probs_t[np.argmax(probs_t @ atoms)]
    v_min, v_max, spacing = atoms[0], atoms[-1], atoms[1] - atoms[0]
    m = np.zeros(len(atoms))
    for j, z in enumerate(atoms):
        b = (min(max(r_t + discount_t * z, v_min), v_max) - v_min) / spacing
        lower, upper = int(np.floor(b)), int(np.ceil(b))
        if lower == upper:
            m[lower] += p_t[j]
        else:
            m[lower] += p_t[j] * (upper - b)
            m[upper] += p_t[j] * (b - lower)
    log_p = np.log(softmax(np.asarray(logits_tm1, np.float64))[a_tm1])
    return -np.sum(m * log_p)


def numpy_quantile_huber(q_tm1, q_t, a_tm1, r_t, discount_t, kappa=1.0):
    """Oracle: the QR-DQN loss as a double Python loop."""
    q_tm1, q_t = np.asarray(q_tm1, np.float64), np.asarray(q_t, np.float64)
    k = q_tm1.shape[-1]
    target = r_t + discount_t * q_t[np.argmax(q_t.mean(-1))]
    total = 0.0
    for i in range(k):
        tau = (i + 0.5) / k
        for j in range(k):
            u = target[j] - q_tm1[a_tm1, i]
            huber = 0.5 * u**2 if abs(u) <= kappa else kappa * (abs(u) - 0.5 * kappa)
            total += abs(tau - (u < 0)) * huber / kappa / k
    return total, target.mean() - q_tm1[a_tm1].mean()


def atom_table(num_states, num_actions, num_atoms):
    """A ValueFn whose `apply` returns `[A, K]`: a table `[S, A, K]` (no layerwise structure)."""
    init = lambda key, obs: jnp.zeros((num_states, num_actions, num_atoms), jnp.float32)
    return values.ValueFn(init, lambda params, obs: params[obs])


def atom_mlp(num_actions, num_atoms):
    """An mlp with `A * K` outputs shaped `[A, K]`, with its layerwise structure attached."""
    base = values.mlp([6], num_actions * num_atoms)
    structure = values.per_example_structure(base.apply)
    shape = (num_actions, num_atoms)

    def apply(params, obs):
        return base.apply(params, obs).reshape(shape)

    def tapped(params, taps, obs):
        out, saved = structure.tapped(params, taps, obs)
        return out.reshape(shape), saved

    values.attach_per_example_structure(apply, structure._replace(tapped=tapped))
    return values.ValueFn(base.init, apply)


ATOMS = jnp.array([-1.0, 0.0, 1.0])
# s_tm1 = 0, a_tm1 = 1, r_t = 0.5, discount_t = 0.5, s_t = 1 (as TRANSITION, other reward).
DIST_TRANSITION = tdkit.Transition(
    obs_tm1=jnp.int32(0), a_tm1=jnp.int32(1), r_t=jnp.float32(0.5),
    discount_t=jnp.float32(0.5), obs_t=jnp.int32(1))


class CustomRuleTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_c51_by_hand(self):
        # logits_tm1[1] = log [0.2, 0.3, 0.5]. logits_t[1] = log [0.1, 0.2, 0.7] has the
        # larger mean (0.6 > 0), so p_t = [0.1, 0.2, 0.7]; target atoms 0.5 + 0.5 z =
        # [0, 0.5, 1] project to [0, 0.1 + 0.1, 0.1 + 0.7] = [0, 0.2, 0.8].
        # Loss: -(0.2 log 0.3 + 0.8 log 0.5).
        table = np.zeros((2, 2, 3), np.float32)
        table[0, 1] = np.log([0.2, 0.3, 0.5])
        table[1, 1] = np.log([0.1, 0.2, 0.7])
        loss = losses.td_loss(atom_table(2, 2, 3), c51_rule(ATOMS), has_aux=True)
        value, td_error = self.variant(loss)(table, table, DIST_TRANSITION)
        expected = -(0.2 * np.log(0.3) + 0.8 * np.log(0.5))
        np.testing.assert_allclose(value, expected, rtol=1e-5)
        np.testing.assert_allclose(td_error, expected, rtol=1e-5)
        weighted = self.variant(loss)(table, table, DIST_TRANSITION, jnp.float32(0.5))[0]
        np.testing.assert_allclose(weighted, 0.5 * expected, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_quantile_huber_by_hand(self):
        # K = 2, tau = [0.25, 0.75]; q_tm1[1] = [0, 1]; q_t = [[0, 0], [1, 3]]: greedy 1,
        # target 0.5 + 0.5 [1, 3] = [1, 2]. All u > 0, Huber(1) = 0.5, Huber(2) = 1.5.
        # i = 0: 0.25 * mean(Huber(1 - 0), Huber(2 - 0)) = 0.25 * (0.5 + 1.5) / 2 = 0.25
        # i = 1: 0.75 * mean(Huber(0), Huber(1))         = 0.75 * (0 + 0.5) / 2  = 0.1875
        # td_error: mean(target) - mean(q_tm1[1]) = 1.5 - 0.5 = 1.
        table = np.zeros((2, 2, 2), np.float32)
        table[0, 1] = [0.0, 1.0]
        table[1] = [[0.0, 0.0], [1.0, 3.0]]
        loss = losses.td_loss(atom_table(2, 2, 2), quantile_huber_rule(), has_aux=True)
        value, td_error = self.variant(loss)(table, table, DIST_TRANSITION)
        np.testing.assert_allclose(value, 0.4375, rtol=1e-6)
        np.testing.assert_allclose(td_error, 1.0, rtol=1e-6)

    def test_distributional_rules_equal_numpy_oracles(self):
        rng = np.random.default_rng(0)
        atoms = np.linspace(-2.0, 2.0, 5)
        c51 = jax.jit(losses.td_loss(atom_table(3, 2, 5), c51_rule(jnp.asarray(atoms))))
        qr = jax.jit(losses.td_loss(atom_table(3, 2, 4), quantile_huber_rule(), has_aux=True))
        for _ in range(5):
            s_tm1, s_t, a = (int(x) for x in rng.integers(0, 2, 3))
            r, d = float(rng.normal()), float(rng.choice([0.0, 0.9]))
            t = tdkit.Transition(jnp.int32(s_tm1), jnp.int32(a), jnp.float32(r),
                                 jnp.float32(d), jnp.int32(s_t))
            params = rng.normal(size=(3, 2, 5)).astype(np.float32)
            target = rng.normal(size=(3, 2, 5)).astype(np.float32)
            np.testing.assert_allclose(
                c51(params, target, t),
                numpy_c51(params[s_tm1], target[s_t], a, r, d, atoms), rtol=1e-5)
            q, q_target = params[..., :4], target[..., :4]
            value, td_error = qr(q, q_target, t)
            want, want_error = numpy_quantile_huber(q[s_tm1], q_target[s_t], a, r, d)
            np.testing.assert_allclose(value, want, rtol=1e-5)
            np.testing.assert_allclose(td_error, want_error, rtol=1e-5, atol=1e-6)

    def test_error_rule_with_a_callable_elementwise_loss(self):
        # A scalar-error rule (q_learning by hand) with |delta| as the loss: |3| = 3.
        def rule(q_tm1, q_t, _, t, stop):
            target = tdkit.td.maybe_stop_gradient(t.r_t + t.discount_t * jnp.max(q_t), stop)
            return target - q_tm1[t.a_tm1]

        loss = losses.td_loss(values.tabular(3, 2), losses.TDRule(rule), jnp.abs, has_aux=True)
        value, td_error = loss(PARAMS, TARGET, TRANSITION)
        np.testing.assert_allclose([value, td_error], [3.0, 3.0])
        g = jax.grad(lambda p: loss(p, TARGET, TRANSITION)[0])(PARAMS)["table"]
        np.testing.assert_allclose(g, [[0.0, -1.0], [0.0, 0.0], [0.0, 0.0]])

    def test_selector_is_the_online_values_only_when_asked_for(self):
        # Double Q by hand: the selector argmax PARAMS[1] = 0 -> 2 + 0.5 * TARGET[1, 0] - 2.
        seen = []

        def rule(q_tm1, q_t, q_t_selector, t, stop):
            seen.append(q_t_selector)
            if q_t_selector is None:
                return t.r_t - q_tm1[t.a_tm1]
            return t.r_t + t.discount_t * q_t[jnp.argmax(q_t_selector)] - q_tm1[t.a_tm1]

        table = values.tabular(3, 2)
        double = losses.td_loss(table, losses.TDRule(rule, needs_selector=True), has_aux=True)
        np.testing.assert_allclose(double(PARAMS, TARGET, TRANSITION)[1], 1.0)
        np.testing.assert_array_equal(seen[-1], PARAMS["table"][1])
        plain = losses.td_loss(table, losses.TDRule(rule), has_aux=True)
        np.testing.assert_allclose(plain(PARAMS, TARGET, TRANSITION)[1], 0.0)
        assert seen[-1] is None

    def test_forward_passes(self):
        # q_learning: params at obs_tm1 and target_params at obs_t only; Double Q one more.
        calls = []
        base = values.tabular(3, 2)
        counted = values.ValueFn(base.init, lambda p, o: calls.append(o) or base.apply(p, o))
        for rule, expected in (("q_learning", 2), ("double_q_learning", 3),
                               (losses.TDRule(lambda q, q_t, s, t, stop: q[0]), 2),
                               (losses.TDRule(lambda q, q_t, s, t, stop: q[0],
                                              needs_selector=True), 3)):
            calls.clear()
            jax.make_jaxpr(losses.td_loss(counted, rule))(PARAMS, TARGET, TRANSITION)
            assert len(calls) == expected, rule

    def test_stop_gradient_of_a_custom_rule(self):
        rng = np.random.default_rng(1)
        params = rng.normal(size=(2, 2, 3)).astype(np.float32)
        target = rng.normal(size=(2, 2, 3)).astype(np.float32)
        for rule in (c51_rule(ATOMS), quantile_huber_rule()):
            default = losses.td_loss(atom_table(2, 2, 3), rule)
            g = jax.grad(default, argnums=1)(params, target, DIST_TRANSITION)
            np.testing.assert_array_equal(g, np.zeros_like(g), err_msg=rule.name)
            g_params = jax.grad(default)(params, target, DIST_TRANSITION)
            assert np.abs(g_params[0, 1]).sum() > 0, rule.name  # The prediction learns.
            open_target = losses.td_loss(atom_table(2, 2, 3), rule, stop_target_gradients=False)
            g = jax.grad(open_target, argnums=1)(params, target, DIST_TRANSITION)
            assert np.abs(g[1]).sum() > 0, rule.name      # Flows into q_t = target[s_t = 1].
            np.testing.assert_array_equal(g[0], np.zeros_like(g[0]), err_msg=rule.name)
            np.testing.assert_allclose(  # The prediction's gradient is the same either way.
                jax.grad(open_target)(params, target, DIST_TRANSITION), g_params, rtol=1e-6)


def _atom_batch(batch_size, seed, num_obs=4):
    rng = np.random.default_rng(seed)
    return tdkit.Transition(
        obs_tm1=rng.standard_normal((batch_size, num_obs)).astype(np.float32),
        a_tm1=rng.integers(0, 2, batch_size).astype(np.int32),
        r_t=rng.standard_normal(batch_size).astype(np.float32),
        discount_t=np.full(batch_size, 0.9, np.float32),
        obs_t=rng.standard_normal((batch_size, num_obs)).astype(np.float32))


class CustomRuleGradsTest(chex.TestCase):
    """tdkit.grads on distributional losses equals a Python loop of jax.grad."""

    def test_per_example_grads_norms_and_clipped_mean(self):
        from tdkit import grads

        value_fn = atom_mlp(2, 5)
        params = value_fn.init(jax.random.key(0), jnp.zeros(4))
        target = jax.tree.map(lambda p: 0.5 * p, params)
        batch = _atom_batch(6, 2)
        weights = np.linspace(0.5, 1.0, 6).astype(np.float32)
        for rule in (c51_rule(jnp.linspace(-2.0, 2.0, 5)), quantile_huber_rule()):
            for has_aux in (False, True):
                loss = losses.td_loss(value_fn, rule, has_aux=has_aux)
                assert loss.structure is not None
                scalar = (lambda *a, loss=loss: loss(*a)[0]) if has_aux else loss
                single = jax.jit(jax.grad(scalar))
                loop = [single(params, target, jax.tree.map(lambda x, i=i: x[i], batch),
                               weights[i]) for i in range(6)]
                oracle = jax.tree.map(lambda *g: np.stack(g), *loop)
                sq = sum(np.sum(np.reshape(g, (6, -1)).astype(np.float64) ** 2, axis=1)
                         for g in jax.tree.leaves(oracle))
                norms = np.sqrt(sq)
                max_norm = float(np.median(norms))
                factors = np.minimum(1.0, max_norm / norms)
                mean = jax.tree.map(
                    lambda g, f=factors: np.mean(g * f.reshape((-1,) + (1,) * (g.ndim - 1)), 0),
                    oracle)
                args = (params, target, batch, weights)
                for structure in (None, loss.structure):  # vmap and layerwise.
                    kw = {"in_axes": (None, None, 0, 0), "has_aux": has_aux,
                          "structure": structure}
                    msg = f"{rule.name}, aux {has_aux}, layerwise {structure is not None}"
                    chex.assert_trees_all_close(
                        grads.per_example_grads(loss, **kw)(*args), oracle, rtol=1e-5,
                        atol=1e-6, custom_message=msg)
                    np.testing.assert_allclose(
                        grads.per_example_grad_norms(loss, **kw)(*args), norms, rtol=1e-5,
                        err_msg=msg)
                    chex.assert_trees_all_close(
                        grads.clipped_mean_grad(loss, max_norm, **kw)(*args), mean,
                        rtol=1e-5, atol=1e-6, custom_message=msg)


class CustomRuleBadInputTest(chex.TestCase):

    def test_rule_returning_the_wrong_shape(self):
        vf = atom_table(2, 2, 3)
        per_atom = losses.TDRule(lambda q, q_t, s, t, stop: q_t[0] - q[t.a_tm1], name="atoms")
        with pytest.raises(AssertionError, match=r"td_loss: argument `rule` \('atoms'\) must "
                           r"give a td_error of shape \(\) for ONE transition, got shape \(3,\)"):
            losses.td_loss(vf, per_atom)(jnp.zeros((2, 2, 3)), jnp.zeros((2, 2, 3)),
                                         DIST_TRANSITION)
        full = losses.TDRule(lambda q, q_t, s, t, stop: (q[0], q[0, 0]), returns_loss=True)
        with pytest.raises(AssertionError, match=r"argument `rule` \('<lambda>'\) must give a "
                           r"per_example_loss of shape \(\)"):
            losses.td_loss(vf, full)(jnp.zeros((2, 2, 3)), jnp.zeros((2, 2, 3)),
                                     DIST_TRANSITION)
        not_a_pair = losses.TDRule(lambda q, q_t, s, t, stop: q[0, 0], returns_loss=True)
        with pytest.raises(TypeError, match=r"argument `rule` .* must return "
                           r"\(per_example_loss, td_error\)"):
            losses.td_loss(vf, not_a_pair)(jnp.zeros((2, 2, 3)), jnp.zeros((2, 2, 3)),
                                           DIST_TRANSITION)
        with pytest.raises(AssertionError, match=r"argument `loss` must map the TD error"):
            losses.td_loss(values.tabular(3, 2), "q_learning", lambda d: jnp.stack([d, d]))(
                PARAMS, TARGET, TRANSITION)

    def test_value_rank_must_match_the_rule(self):
        table = jnp.zeros((2, 2, 3))
        with pytest.raises(AssertionError, match=r"rule 'q_learning' needs action values, but "
                           r"`value_fn.apply` returned q_tm1 of shape \(2, 3\) \(expected \[A\]\)"):
            losses.td_loss(atom_table(2, 2, 3), "q_learning")(table, table, DIST_TRANSITION)
        with pytest.raises(AssertionError, match=r"rule 'c51' needs values of rank 2, but "
                           r"`value_fn.apply` returned q_tm1 of shape \(2,\)"):
            losses.td_loss(values.tabular(3, 2), c51_rule(ATOMS))(PARAMS, TARGET, TRANSITION)

    def test_bad_construction_arguments(self):
        vf = atom_table(2, 2, 3)
        with pytest.raises(ValueError, match=r"td_loss: argument `loss` must be None for rule "
                           r"'c51', which returns its own loss"):
            losses.td_loss(vf, c51_rule(ATOMS), "huber")
        with pytest.raises(ValueError, match=r"or a tdkit.losses.TDRule \(to use any other rule"):
            losses.td_loss(vf, lambda q_tm1, q_t, s, t, stop: q_tm1[0])
        with pytest.raises(ValueError, match="argument `epsilon` is only used by rule "
                           "'expected_sarsa', not a TDRule"):
            losses.td_loss(vf, c51_rule(ATOMS), epsilon=0.1)
        with pytest.raises(TypeError, match="argument `rule` is a TDRule whose `fn` is not"):
            losses.td_loss(vf, losses.TDRule("q_learning"))
        with pytest.raises(ValueError, match="argument `rule` has `value_ndim` -1"):
            losses.td_loss(vf, losses.TDRule(jnp.sum, value_ndim=-1))

    def test_td_loss_is_a_plain_callable_with_public_attributes(self):
        loss = losses.td_loss(values.mlp([3], 2), "double_q_learning", "huber", has_aux=True)
        assert isinstance(loss, losses.TDLoss) and callable(loss)
        assert loss.has_aux and loss.rule.name == "double_q_learning"
        assert loss.rule.needs_selector and loss.structure is not None
        base = values.mlp([3], 2)
        wrapped = values.ValueFn(base.init, lambda p, o: base.apply(p, o))
        assert losses.td_loss(wrapped, "q_learning").structure is None
