"""tdkit.continuous: DDPG / TD3 / SAC targets, losses, actors and critics.

Oracles: numbers worked out by hand (in the comments), NumPy forward passes (float64), the
squashed-Gaussian density written naively in NumPy and integrated numerically, and sample
statistics.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import continuous

KEY = jax.random.key(0)
OBS = jnp.array([0.5, -1.0, 2.0], jnp.float32)
f32 = jnp.float32


def _perturbed(params, seed=0, scale=0.3):
    """Non-trivial biases, scales and offsets so that every parameter matters."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(np.asarray(p) + scale * rng.standard_normal(p.shape), jnp.float32),
        params)


def _np_torso(params, x, layer_norm, eps=1e-5):
    x = np.asarray(x, np.float64)
    for layer in params["torso"]:
        z = x @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64)
        if layer_norm:
            z = (z - z.mean()) / np.sqrt(z.var() + eps) * np.asarray(layer["scale"]) + np.asarray(
                layer["offset"])
        x = np.maximum(z, 0.0)
    return x


def _np_linear(layer, x):
    return x @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64)


def _np_squashed_log_prob(u, mean, std, low, high):
    """Naive: log N(u; mean, std) - log |d a / d u| with a = bias + scale * tanh(u)."""
    u, mean, std = (np.asarray(x, np.float64) for x in (u, mean, std))
    scale = (np.asarray(high, np.float64) - np.asarray(low, np.float64)) / 2
    log_normal = -0.5 * ((u - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    log_jacobian = np.log(scale * (1 - np.tanh(u) ** 2))
    return np.sum(log_normal - log_jacobian)


# --------------------------------------------------------------------------------------
# Targets.
# --------------------------------------------------------------------------------------

R_T, D_T = f32(1.0), f32(0.9)


class TargetsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_clipped_double_q_target(self):
        fn = self.variant(continuous.clipped_double_q_target)
        # 1 + 0.9 * min(2, 3) = 2.8
        np.testing.assert_allclose(fn(R_T, D_T, jnp.array([2.0, 3.0])), 2.8, rtol=1e-6)
        np.testing.assert_allclose(fn(R_T, D_T, jnp.array([3.0, 2.0])), 2.8, rtol=1e-6)
        # Termination: no bootstrap.
        np.testing.assert_allclose(fn(R_T, f32(0.0), jnp.array([3.0, 2.0])), 1.0)
        # One critic: plain DDPG-style target, 1 + 0.9 * 5 = 5.5.
        np.testing.assert_allclose(fn(R_T, D_T, jnp.array([5.0])), 5.5, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_soft_q_target(self):
        fn = self.variant(continuous.soft_q_target)
        # 1 + 0.9 * (min(2, 3) - 0.2 * (-1.5)) = 1 + 0.9 * 2.3 = 3.07
        out = fn(R_T, D_T, jnp.array([2.0, 3.0]), f32(-1.5), f32(0.2))
        np.testing.assert_allclose(out, 3.07, rtol=1e-6)
        # alpha = 0 is the TD3 target.
        out = fn(R_T, D_T, jnp.array([2.0, 3.0]), f32(-1.5), f32(0.0))
        np.testing.assert_allclose(out, 2.8, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_target_batched_by_vmap(self):
        fn = self.variant(jax.vmap(continuous.clipped_double_q_target))
        out = fn(jnp.array([1.0, 0.0]), jnp.array([0.9, 0.5]),
                 jnp.array([[2.0, 3.0], [-4.0, 1.0]]))
        np.testing.assert_allclose(out, [2.8, -2.0], rtol=1e-6)


# --------------------------------------------------------------------------------------
# Critic losses.
# --------------------------------------------------------------------------------------

Q_TM1 = jnp.array([3.0, 4.0], jnp.float32)


class CriticLossTest(chex.TestCase):
    """By hand, with q_tm1 = [3, 4], r = 1, discount = 0.9."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_critic_loss_sums_over_critics(self):
        # 0.5 * ((2 - 1)^2 + (2 - 2)^2) = 0.5
        out = self.variant(continuous.critic_loss)(jnp.array([1.0, 2.0]), f32(2.0))
        np.testing.assert_allclose(out, 0.5)
        out = self.variant(continuous.critic_loss)(jnp.array([1.0]), f32(4.0))
        np.testing.assert_allclose(out, 4.5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_ddpg_uses_critic_zero(self):
        # Target 1 + 0.9 * q_t[0] = 1 + 0.9 * 3 = 3.7 (not min(3, 2)):
        # 0.5 * ((3.7 - 3)^2 + (3.7 - 4)^2) = 0.5 * (0.49 + 0.09) = 0.29
        out = self.variant(continuous.ddpg_critic_loss)(Q_TM1, R_T, D_T, jnp.array([3.0, 2.0]))
        np.testing.assert_allclose(out, 0.29, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_td3(self):
        # Target 1 + 0.9 * min(3, 2) = 2.8: 0.5 * (0.2^2 + 1.2^2) = 0.74
        out = self.variant(continuous.td3_critic_loss)(Q_TM1, R_T, D_T, jnp.array([3.0, 2.0]))
        np.testing.assert_allclose(out, 0.74, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sac(self):
        # Target 3.07 (see test_soft_q_target): 0.5 * (0.07^2 + 0.93^2) = 0.4349
        out = self.variant(continuous.sac_critic_loss)(
            Q_TM1, R_T, D_T, jnp.array([2.0, 3.0]), f32(-1.5), f32(0.2))
        np.testing.assert_allclose(out, 0.4349, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_batched_by_vmap(self):
        fn = self.variant(jax.vmap(continuous.td3_critic_loss))
        out = fn(jnp.stack([Q_TM1, Q_TM1]), jnp.array([1.0, 1.0]), jnp.array([0.9, 0.0]),
                 jnp.array([[3.0, 2.0], [3.0, 2.0]]))
        # Second row terminates: target 1, 0.5 * (2^2 + 3^2) = 6.5.
        np.testing.assert_allclose(out, [0.74, 6.5], rtol=1e-5)
        chex.assert_type(out, jnp.float32)

    def test_stop_gradient_critic_loss(self):
        q = jnp.array([1.0, 2.0])
        g = jax.grad(continuous.critic_loss, argnums=(0, 1))(q, f32(2.0))
        np.testing.assert_allclose(g[0], [-1.0, 0.0])  # q - target
        assert g[1] == 0.0
        g = jax.grad(continuous.critic_loss, argnums=(0, 1))(q, f32(2.0), False)
        np.testing.assert_allclose(g[0], [-1.0, 0.0])
        np.testing.assert_allclose(g[1], 1.0)  # sum_c (target - q_c)

    def test_stop_gradient_ddpg_and_td3(self):
        q_t = jnp.array([3.0, 2.0])
        # DDPG, unstopped: d/dq_t[0] = 0.9 * sum_c (3.7 - q_tm1[c]) = 0.9 * 0.4 = 0.36.
        # TD3, unstopped: d/dq_t[1] (the min) = 0.9 * sum_c (2.8 - q_tm1[c]) = -1.26.
        expected = {continuous.ddpg_critic_loss: [0.36, 0.0],
                    continuous.td3_critic_loss: [0.0, -1.26]}
        for loss, unstopped in expected.items():
            g = jax.grad(lambda q_t, loss=loss: loss(Q_TM1, R_T, D_T, q_t))(q_t)
            np.testing.assert_array_equal(g, [0.0, 0.0], err_msg=loss.__name__)
            g = jax.grad(lambda q_t, loss=loss: loss(Q_TM1, R_T, D_T, q_t, False))(q_t)
            np.testing.assert_allclose(g, unstopped, rtol=1e-5, err_msg=loss.__name__)
            # The prediction side always carries the gradient.
            g = jax.grad(loss)(Q_TM1, R_T, D_T, q_t)
            assert np.all(np.asarray(g) != 0.0), loss.__name__

    def test_stop_gradient_sac(self):
        args = (jnp.array([2.0, 3.0]), f32(-1.5), f32(0.2))

        def grads(stop):
            return jax.grad(
                lambda q_t, lp, alpha: continuous.sac_critic_loss(
                    Q_TM1, R_T, D_T, q_t, lp, alpha, stop), argnums=(0, 1, 2))(*args)

        g_q, g_lp, g_alpha = grads(True)
        np.testing.assert_array_equal(g_q, [0.0, 0.0])
        assert g_lp == 0.0 and g_alpha == 0.0
        # sum_c (3.07 - q_tm1[c]) = -0.86; d target / d q_t = [0.9, 0],
        # d target / d log_prob_t = -0.9 * alpha = -0.18, d target / d alpha = 0.9 * 1.5 = 1.35.
        g_q, g_lp, g_alpha = grads(False)
        np.testing.assert_allclose(g_q, [-0.774, 0.0], rtol=1e-5)
        np.testing.assert_allclose(g_lp, 0.1548, rtol=1e-5)
        np.testing.assert_allclose(g_alpha, -1.161, rtol=1e-5)


# --------------------------------------------------------------------------------------
# Actor and temperature losses.
# --------------------------------------------------------------------------------------


class ActorLossTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_deterministic_policy_loss(self):
        fn = self.variant(continuous.deterministic_policy_loss)
        np.testing.assert_allclose(fn(jnp.array([2.0, 5.0])), -2.0)  # critic 0, not the min
        np.testing.assert_allclose(jax.grad(continuous.deterministic_policy_loss)(
            jnp.array([2.0, 5.0])), [-1.0, 0.0])

    @chex.variants(with_jit=True, without_jit=True)
    def test_sac_actor_loss(self):
        # 0.2 * (-1.5) - min(2, 3) = -2.3
        out = self.variant(continuous.sac_actor_loss)(jnp.array([2.0, 3.0]), f32(-1.5), f32(0.2))
        np.testing.assert_allclose(out, -2.3, rtol=1e-6)

    def test_sac_actor_loss_gradients(self):
        g_q, g_lp, g_alpha = jax.grad(continuous.sac_actor_loss, argnums=(0, 1, 2))(
            jnp.array([3.0, 2.0]), f32(-1.5), f32(0.2))
        np.testing.assert_allclose(g_q, [0.0, -1.0])  # through the smaller critic
        np.testing.assert_allclose(g_lp, 0.2, rtol=1e-6)  # alpha
        assert g_alpha == 0.0  # the temperature is learnt by sac_temperature_loss only

    @chex.variants(with_jit=True, without_jit=True)
    def test_sac_temperature_loss(self):
        # -0.1 * (-1.5 + -2) = 0.35
        out = self.variant(continuous.sac_temperature_loss)(f32(0.1), f32(-1.5), f32(-2.0))
        np.testing.assert_allclose(out, 0.35, rtol=1e-6)

    def test_sac_temperature_loss_gradients(self):
        g_log_alpha, g_lp, g_target = jax.grad(continuous.sac_temperature_loss,
                                               argnums=(0, 1, 2))(f32(0.1), f32(-1.5), f32(-2.0))
        # Entropy 1.5 is above the target -2: the gradient 3.5 > 0 makes descent lower alpha.
        np.testing.assert_allclose(g_log_alpha, 3.5, rtol=1e-6)
        assert g_lp == 0.0 and g_target == 0.0
        # Entropy below the target (log_prob = 3 > 2): descent raises alpha.
        g = jax.grad(continuous.sac_temperature_loss)(f32(0.1), f32(3.0), f32(-2.0))
        np.testing.assert_allclose(g, -1.0)

    def test_default_target_entropy(self):
        assert continuous.default_target_entropy(6) == -6.0
        assert isinstance(continuous.default_target_entropy(1), float)


# --------------------------------------------------------------------------------------
# The squashed Gaussian.
# --------------------------------------------------------------------------------------


def _random_case(rng, num_actions):
    mean = rng.uniform(-1.5, 1.5, num_actions)
    std = rng.uniform(0.2, 1.5, num_actions)
    low = rng.uniform(-3.0, 0.0, num_actions)
    high = low + rng.uniform(0.1, 4.0, num_actions)
    return mean, std, low, high


class SquashedGaussianTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_log_prob_matches_naive_numpy(self):
        fn = self.variant(continuous.squashed_gaussian_log_prob)
        rng = np.random.default_rng(0)
        for num_actions in (1, 3, 6):
            for _ in range(5):
                mean, std, low, high = _random_case(rng, num_actions)
                u = mean + std * rng.standard_normal(num_actions)
                out = fn(*(jnp.asarray(x, jnp.float32) for x in (u, mean, np.log(std), low,
                                                                 high)))
                chex.assert_shape(out, ())
                chex.assert_type(out, jnp.float32)
                np.testing.assert_allclose(out, _np_squashed_log_prob(u, mean, std, low, high),
                                           rtol=1e-4, atol=1e-4)

    def test_log_prob_scalar_bounds_broadcast(self):
        u, mean, std = np.array([0.3, -0.7]), np.array([0.1, 0.2]), np.array([0.5, 1.0])
        out = continuous.squashed_gaussian_log_prob(
            jnp.asarray(u, jnp.float32), jnp.asarray(mean, jnp.float32),
            jnp.asarray(np.log(std), jnp.float32), -2.0, 1.0)
        expected = _np_squashed_log_prob(u, mean, std, [-2.0, -2.0], [1.0, 1.0])
        np.testing.assert_allclose(out, expected, rtol=1e-5)

    def test_log_prob_is_stable_where_tanh_saturates(self):
        # tanh(30) rounds to 1, so the naive log(1 - tanh^2) is -inf; the exact value is
        # log(sech(u)^2) = 2 * (log 2 - u - log(1 + exp(-2u))) = 2 log 2 - 60 (to 1e-26).
        u, mean = jnp.array([30.0]), jnp.array([29.0])
        out = continuous.squashed_gaussian_log_prob(u, mean, jnp.array([0.0]), -1.0, 1.0)
        expected = -0.5 - 0.5 * np.log(2 * np.pi) - (2 * np.log(2) - 60.0)
        np.testing.assert_allclose(out, expected, rtol=1e-6)
        g = jax.grad(continuous.squashed_gaussian_log_prob, argnums=(0, 1))(
            u, mean, jnp.array([0.0]), -1.0, 1.0)
        chex.assert_tree_all_finite(g)

    def test_density_integrates_to_one(self):
        # Midpoint rule over the action interval: integral of pi(a) da = 1 (A = 1).
        n = 200_000
        log_prob_fn = jax.jit(jax.vmap(continuous.squashed_gaussian_log_prob,
                                       in_axes=(0, None, None, None, None)))
        for mean, std, low, high in [(0.3, 0.5, -2.0, 1.0), (-1.0, 1.0, 0.0, 5.0),
                                     (0.0, 0.1, -1.0, 1.0), (1.2, 0.8, -0.5, 0.5)]:
            scale, bias = (high - low) / 2, (high + low) / 2
            a = low + (np.arange(n) + 0.5) * (high - low) / n
            u = np.arctanh((a - bias) / scale)
            log_prob = log_prob_fn(
                jnp.asarray(u[:, None], jnp.float32), jnp.array([mean], jnp.float32),
                jnp.array([np.log(std)], jnp.float32), f32(low), f32(high))
            integral = np.sum(np.exp(np.asarray(log_prob, np.float64))) * (high - low) / n
            np.testing.assert_allclose(integral, 1.0, atol=2e-3, err_msg=str((mean, std)))

    def test_sample_inside_bounds_and_log_prob(self):
        keys = jax.random.split(jax.random.key(1), 5000)
        rng = np.random.default_rng(1)
        mean, std, low, high = _random_case(rng, 4)
        mean_j, log_std_j = jnp.asarray(mean, jnp.float32), jnp.asarray(np.log(std), jnp.float32)
        low_j, high_j = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
        sample = jax.jit(jax.vmap(continuous.squashed_gaussian_sample,
                                  in_axes=(0, None, None, None, None)))
        actions, log_probs = sample(keys, mean_j, log_std_j, low_j, high_j)
        chex.assert_shape([actions, log_probs], [(5000, 4), (5000,)])
        chex.assert_type([actions, log_probs], jnp.float32)
        assert np.all(actions >= low_j) and np.all(actions <= high_j)
        # The returned log_prob is the density at the returned action (u recovered by atanh).
        a = np.asarray(actions[:200], np.float64)
        u = np.arctanh((a - (high + low) / 2) / ((high - low) / 2))
        expected = [_np_squashed_log_prob(ui, mean, std, low, high) for ui in u]
        np.testing.assert_allclose(log_probs[:200], expected, rtol=2e-3, atol=2e-3)
        # Sample statistics: the pre-squash u is N(mean, std).
        np.testing.assert_allclose(u.mean(0), mean, atol=4 * std.max() / np.sqrt(200))

    def test_saturated_samples_stay_inside_bounds(self):
        keys = jax.random.split(jax.random.key(2), 2000)
        mean = jnp.array([20.0, -20.0, 0.0], jnp.float32)
        log_std = jnp.array([2.0, 2.0, 3.0], jnp.float32)
        low, high = jnp.array([-1.0, 0.1, -7.3]), jnp.array([1.0, 0.3, 11.9])
        actions, log_probs = jax.vmap(continuous.squashed_gaussian_sample,
                                      in_axes=(0, None, None, None, None))(
            keys, mean, log_std, low, high)
        assert np.all(actions >= low) and np.all(actions <= high)
        chex.assert_tree_all_finite(log_probs)

    def test_sample_is_reparameterised(self):
        mean, log_std = jnp.array([0.3, -0.2]), jnp.array([-0.5, 0.1])
        low, high = jnp.array([-1.0, 0.0]), jnp.array([1.0, 4.0])
        key = jax.random.key(3)
        sample = lambda m, s: continuous.squashed_gaussian_sample(key, m, s, low, high)
        action, _ = sample(mean, log_std)
        g_mean = jax.grad(lambda m: jnp.sum(sample(m, log_std)[0]))(mean)
        # d a / d mean = scale * (1 - tanh(u)^2), tanh(u) = (a - bias) / scale.
        scale, bias = np.array([1.0, 2.0]), np.array([0.0, 2.0])
        np.testing.assert_allclose(g_mean, scale * (1 - ((action - bias) / scale) ** 2),
                                   rtol=1e-5)
        g_log_std = jax.grad(lambda s: jnp.sum(sample(mean, s)[0]))(log_std)
        assert np.all(np.asarray(g_log_std) != 0.0)
        g = jax.grad(lambda m, s: sample(m, s)[1], argnums=(0, 1))(mean, log_std)
        assert all(np.all(np.isfinite(x)) and np.any(x != 0.0) for x in g)

    @chex.variants(with_jit=True, without_jit=True)
    def test_mode(self):
        fn = self.variant(continuous.squashed_gaussian_mode)
        low, high = jnp.array([-1.0, 0.0, 2.0]), jnp.array([1.0, 4.0, 3.0])
        # tanh(0) = 0 -> midpoints; tanh(100) = 1 -> the upper bound.
        np.testing.assert_allclose(fn(jnp.array([0.0, 0.0, 100.0]), low, high), [0.0, 2.0, 3.0])
        # bias + scale * tanh(0.5) = 2 + 2 * 0.46211716 for [0, 4].
        np.testing.assert_allclose(fn(jnp.array([0.5]), 0.0, 4.0), [2.9242343], rtol=1e-6)


# --------------------------------------------------------------------------------------
# Target policy smoothing.
# --------------------------------------------------------------------------------------

LOW, HIGH = jnp.array([-1.0, 0.0]), jnp.array([1.0, 4.0])  # scale [1, 2], bias [0, 2]


class TargetPolicySmoothingTest(chex.TestCase):

    def _smooth(self, action, noise_std, noise_clip, n=4000, seed=0, low=LOW, high=HIGH):
        keys = jax.random.split(jax.random.key(seed), n)
        fn = jax.jit(jax.vmap(continuous.target_policy_smoothing,
                              in_axes=(0, None, None, None, None, None)))
        return np.asarray(fn(keys, action, f32(noise_std), f32(noise_clip), low, high))

    def test_noise_is_clipped_relative_to_scale(self):
        action = jnp.array([0.0, 2.0])
        out = self._smooth(action, 1e6, 0.5)
        # |noise| <= noise_clip * scale = [0.5, 1]; huge noise hits the clip exactly.
        assert np.all(np.abs(out - action) <= np.array([0.5, 1.0]) + 1e-6)
        assert set(np.unique(out[:, 0])) == {-0.5, 0.5}
        assert set(np.unique(out[:, 1])) == {1.0, 3.0}

    def test_inside_bounds(self):
        out = self._smooth(HIGH, 1e6, 0.5)
        assert np.all(out >= np.asarray(LOW)) and np.all(out <= np.asarray(HIGH))
        np.testing.assert_array_equal(np.unique(out[:, 1]), [3.0, 4.0])  # 4 + 1 clipped to 4

    def test_noise_std_is_relative_to_scale(self):
        # CleanRL: N(0, 1) * policy_noise * action_scale. With a wide clip the noise std is
        # noise_std * scale = [0.2, 0.4].
        out = self._smooth(jnp.array([0.0, 2.0]), 0.2, 10.0, n=20000)
        np.testing.assert_allclose(out.std(0), [0.2, 0.4], rtol=0.03)
        np.testing.assert_allclose(out.mean(0), [0.0, 2.0], atol=0.015)

    def test_zero_noise_is_identity(self):
        action = jnp.array([0.25, 3.5])
        out = self._smooth(action, 0.0, 0.5, n=10)
        np.testing.assert_array_equal(out, np.tile(np.asarray(action), (10, 1)))


# --------------------------------------------------------------------------------------
# Critic module.
# --------------------------------------------------------------------------------------

ACTION = jnp.array([0.3, -0.8], jnp.float32)


class CriticMLPTest(chex.TestCase):

    def test_param_shapes(self):
        params = continuous.critic_mlp((8, 5), 3, layer_norm=True).init(KEY, OBS, ACTION)
        chex.assert_trees_all_equal_shapes(params, {
            "torso": [{"w": jnp.zeros((3, 5, 8)), "b": jnp.zeros((3, 8)),
                       "scale": jnp.zeros((3, 8)), "offset": jnp.zeros((3, 8))},
                      {"w": jnp.zeros((3, 8, 5)), "b": jnp.zeros((3, 5)),
                       "scale": jnp.zeros((3, 5)), "offset": jnp.zeros((3, 5))}],
            "head": {"w": jnp.zeros((3, 5, 1)), "b": jnp.zeros((3, 1))}})
        chex.assert_type(jax.tree.leaves(params), jnp.float32)

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_per_critic(self):
        for layer_norm in (False, True):
            critic = continuous.critic_mlp((16, 8), 2, layer_norm=layer_norm)
            params = _perturbed(critic.init(KEY, OBS, ACTION))
            q = self.variant(critic.apply)(params, OBS, ACTION)
            chex.assert_shape(q, (2,))
            chex.assert_type(q, jnp.float32)
            x = np.concatenate([np.asarray(OBS), np.asarray(ACTION)])
            for c in range(2):
                p_c = jax.tree.map(lambda p, c=c: np.asarray(p)[c], params)
                expected = _np_linear(p_c["head"], _np_torso(p_c, x, layer_norm))[0]
                np.testing.assert_allclose(q[c], expected, rtol=1e-5, atol=1e-5)

    def test_critics_are_independent(self):
        critic = continuous.critic_mlp((16, 16), 2)
        params = critic.init(KEY, OBS, ACTION)
        for layer in params["torso"] + [params["head"]]:
            assert not np.allclose(layer["w"][0], layer["w"][1])
        q = critic.apply(params, OBS, ACTION)
        assert abs(float(q[0] - q[1])) > 1e-4
        # Each critic's loss gradient touches its own parameters only.
        g = jax.grad(lambda p: critic.apply(p, OBS, ACTION)[0])(params)
        for leaf in jax.tree.leaves(g):
            np.testing.assert_array_equal(leaf[1], 0.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_vmap_over_a_batch(self):
        critic = continuous.critic_mlp((16,), 2)
        params = critic.init(KEY, OBS, ACTION)
        rng = np.random.default_rng(0)
        obs = jnp.asarray(rng.standard_normal((5, 3)), jnp.float32)
        actions = jnp.asarray(rng.uniform(-1, 1, (5, 2)), jnp.float32)
        q = self.variant(jax.vmap(critic.apply, in_axes=(None, 0, 0)))(params, obs, actions)
        chex.assert_shape(q, (5, 2))
        loop = np.stack([critic.apply(params, obs[i], actions[i]) for i in range(5)])
        np.testing.assert_allclose(q, loop, rtol=1e-5, atol=1e-6)

    def test_one_critic_and_no_hidden_layers(self):
        critic = continuous.critic_mlp((32,), num_critics=1)
        q = critic.apply(critic.init(KEY, OBS, ACTION), OBS, ACTION)
        chex.assert_shape(q, (1,))
        linear = continuous.critic_mlp((), 1)
        params = {"torso": [], "head": {"w": jnp.array([[[1.0], [0.0], [0.0], [2.0], [-1.0]]]),
                                        "b": jnp.array([[0.5]])}}
        # 0.5 * 1 + 2 * 0.3 - 1 * (-0.8) + 0.5 = 2.4
        np.testing.assert_allclose(linear.apply(params, OBS, ACTION), [2.4], rtol=1e-6)

    def test_bad_input_raises(self):
        with pytest.raises(ValueError, match="critic_mlp: argument `num_critics` must be a pos"):
            continuous.critic_mlp((8,), 0)
        with pytest.raises(ValueError, match=r"critic_mlp: argument `hidden_sizes\[1\]`"):
            continuous.critic_mlp((8, -1))
        critic = continuous.critic_mlp((8,))
        params = critic.init(KEY, OBS, ACTION)
        with pytest.raises(AssertionError, match="critic_mlp.apply: argument `obs` must have "
                           "rank 1"):
            critic.apply(params, jnp.zeros((4, 3)), jnp.zeros((4, 2)))
        with pytest.raises(AssertionError, match=r"O \+ A = 5"):
            critic.apply(params, OBS, jnp.zeros(3))
        with pytest.raises(AssertionError, match="critic_mlp.apply: argument `action` must have "
                           "a float dtype"):
            critic.apply(params, OBS, jnp.zeros(2, jnp.int32))
        with pytest.raises(AssertionError, match="critic_mlp.init: argument `example_action`"):
            critic.init(KEY, OBS, jnp.zeros((1, 2)))
        with pytest.raises(AssertionError, match="critic_mlp.init: argument `key` must be ONE"):
            critic.init(jax.random.split(KEY, 2), OBS, ACTION)


# --------------------------------------------------------------------------------------
# Actors.
# --------------------------------------------------------------------------------------

A_LOW, A_HIGH = np.array([-1.0, 0.0], np.float32), np.array([1.0, 4.0], np.float32)


class DeterministicActorTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy(self):
        for layer_norm in (False, True):
            actor = continuous.deterministic_actor(A_LOW, A_HIGH, (16, 8), layer_norm)
            params = _perturbed(actor.init(KEY, OBS))
            action = self.variant(actor.apply)(params, OBS)
            chex.assert_shape(action, (2,))
            chex.assert_type(action, jnp.float32)
            out = _np_linear(params["head"], _np_torso(params, OBS, layer_norm))
            expected = np.array([0.0, 2.0]) + np.array([1.0, 2.0]) * np.tanh(out)
            np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-5)

    def test_zero_final_layer_gives_the_midpoint(self):
        low, high = np.array([-2.5, 0.1, 3.0], np.float32), np.array([1.0, 0.3, 7.0], np.float32)
        actor = continuous.deterministic_actor(low, high, (8,))
        params = actor.init(KEY, OBS)
        params["head"] = jax.tree.map(jnp.zeros_like, params["head"])
        np.testing.assert_array_equal(actor.apply(params, OBS), (low + high) / 2)

    def test_inside_bounds_when_saturated(self):
        actor = continuous.deterministic_actor(A_LOW, A_HIGH, (16,))
        params = _perturbed(actor.init(KEY, OBS), scale=30.0)
        obs = jnp.asarray(np.random.default_rng(0).standard_normal((200, 3)) * 10, jnp.float32)
        actions = np.asarray(jax.jit(jax.vmap(actor.apply, in_axes=(None, 0)))(params, obs))
        assert np.all(actions >= A_LOW) and np.all(actions <= A_HIGH)
        assert np.any(actions == A_HIGH) or np.any(actions == A_LOW)  # really saturated

    def test_initial_actions_near_the_midpoint(self):
        actor = continuous.deterministic_actor(A_LOW, A_HIGH)
        action = actor.apply(actor.init(KEY, OBS), OBS)
        np.testing.assert_allclose(action, [0.0, 2.0], atol=0.1)

    def test_scalar_bounds_and_gradient_to_the_actor(self):
        actor = continuous.deterministic_actor(-2.0, 2.0, (8,), action_dim=3)
        critic = continuous.critic_mlp((8,), 2)
        actor_params = actor.init(KEY, OBS)
        critic_params = critic.init(jax.random.key(1), OBS, jnp.zeros(3))
        chex.assert_shape(actor.apply(actor_params, OBS), (3,))
        loss = lambda p: continuous.deterministic_policy_loss(
            critic.apply(critic_params, OBS, actor.apply(p, OBS)))
        g = jax.grad(loss)(actor_params)
        assert np.any(np.asarray(g["head"]["w"]) != 0.0)


class GaussianActorTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy(self):
        for layer_norm in (False, True):
            actor = continuous.gaussian_actor(A_LOW, A_HIGH, (16, 8), layer_norm=layer_norm)
            params = _perturbed(actor.init(KEY, OBS), scale=1.0)
            mean, log_std = self.variant(actor.apply)(params, OBS)
            chex.assert_shape([mean, log_std], [(2,), (2,)])
            chex.assert_type([mean, log_std], jnp.float32)
            h = _np_torso(params, OBS, layer_norm)
            raw = np.tanh(_np_linear(params["log_std"], h))
            np.testing.assert_allclose(mean, _np_linear(params["mean"], h), rtol=1e-5, atol=1e-5)
            # CleanRL: LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (tanh(x) + 1)
            np.testing.assert_allclose(log_std, -5.0 + 3.5 * (raw + 1.0), rtol=1e-5, atol=1e-5)

    def test_zero_heads(self):
        actor = continuous.gaussian_actor(A_LOW, A_HIGH, (8,), log_std_min=-4.0, log_std_max=1.0)
        params = actor.init(KEY, OBS)
        params["mean"] = jax.tree.map(jnp.zeros_like, params["mean"])
        params["log_std"] = jax.tree.map(jnp.zeros_like, params["log_std"])
        mean, log_std = actor.apply(params, OBS)
        np.testing.assert_array_equal(mean, [0.0, 0.0])
        np.testing.assert_allclose(log_std, [-1.5, -1.5])  # the middle of [-4, 1]
        np.testing.assert_array_equal(continuous.squashed_gaussian_mode(mean, A_LOW, A_HIGH),
                                      [0.0, 2.0])

    def test_log_std_inside_its_range(self):
        actor = continuous.gaussian_actor(A_LOW, A_HIGH, (16,))
        params = _perturbed(actor.init(KEY, OBS), scale=30.0)
        obs = jnp.asarray(np.random.default_rng(0).standard_normal((200, 3)) * 10, jnp.float32)
        _, log_std = jax.vmap(actor.apply, in_axes=(None, 0))(params, obs)
        assert np.all(log_std >= -5.0) and np.all(log_std <= 2.0)

    def test_sac_actor_step_composes(self):
        actor = continuous.gaussian_actor(A_LOW, A_HIGH, (8,))
        critic = continuous.critic_mlp((8,), 2)
        actor_params = actor.init(KEY, OBS)
        critic_params = critic.init(jax.random.key(1), OBS, ACTION)
        obs = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)), jnp.float32)
        keys = jax.random.split(jax.random.key(2), 4)

        def example_loss(params, key, o, alpha):
            mean, log_std = actor.apply(params, o)
            a, log_prob = continuous.squashed_gaussian_sample(key, mean, log_std, A_LOW, A_HIGH)
            return continuous.sac_actor_loss(critic.apply(critic_params, o, a), log_prob, alpha)

        loss = lambda p, alpha: jnp.mean(
            jax.vmap(example_loss, in_axes=(None, 0, 0, None))(p, keys, obs, alpha))
        # alpha traced under jit: its value check is skipped, the computation runs.
        g = jax.jit(jax.grad(loss))(actor_params, f32(0.2))
        chex.assert_tree_all_finite(g)
        assert np.any(np.asarray(g["log_std"]["w"]) != 0.0)
        assert np.any(np.asarray(g["mean"]["w"]) != 0.0)


# --------------------------------------------------------------------------------------
# Misuse.
# --------------------------------------------------------------------------------------


class MisuseTest(chex.TestCase):

    def test_wrong_ranks_and_dtypes(self):
        q2 = jnp.zeros((4, 2))
        with pytest.raises(AssertionError, match="clipped_double_q_target: argument `q_t` must "
                           "have rank 1"):
            continuous.clipped_double_q_target(R_T, D_T, q2)
        with pytest.raises(AssertionError, match="td3_critic_loss: argument `r_t` must have "
                           "rank 0"):
            continuous.td3_critic_loss(Q_TM1, jnp.zeros(2), D_T, Q_TM1)
        with pytest.raises(AssertionError, match="sac_critic_loss: argument `q_tm1` must have "
                           "rank 1"):
            continuous.sac_critic_loss(q2, R_T, D_T, Q_TM1, f32(0.0), f32(0.1))
        with pytest.raises(AssertionError, match="ddpg_critic_loss: argument `q_t` must hold at "
                           "least one critic"):
            continuous.ddpg_critic_loss(Q_TM1, R_T, D_T, jnp.zeros(0))
        with pytest.raises(AssertionError, match="critic_loss: argument `target` must have "
                           "rank 0"):
            continuous.critic_loss(Q_TM1, jnp.zeros(2))
        with pytest.raises(AssertionError, match="deterministic_policy_loss: argument `q` must "
                           "have a float dtype"):
            continuous.deterministic_policy_loss(jnp.array([1, 2]))
        with pytest.raises(AssertionError, match="sac_actor_loss: argument `log_prob` must have "
                           "rank 0"):
            continuous.sac_actor_loss(Q_TM1, jnp.zeros(2), f32(0.1))
        with pytest.raises(AssertionError, match="sac_temperature_loss: argument `log_alpha`"):
            continuous.sac_temperature_loss(jnp.zeros(1), f32(0.0), f32(-1.0))
        with pytest.raises(AssertionError, match="squashed_gaussian_log_prob: arguments must have "
                           "the same shape"):
            continuous.squashed_gaussian_log_prob(jnp.zeros(3), jnp.zeros(2), jnp.zeros(2),
                                                  -1.0, 1.0)
        with pytest.raises(AssertionError, match="squashed_gaussian_sample: arguments must have "
                           "the same shape"):
            continuous.squashed_gaussian_sample(KEY, jnp.zeros(2), jnp.zeros(3), -1.0, 1.0)
        with pytest.raises(AssertionError, match="squashed_gaussian_sample: argument `key` must "
                           "be ONE PRNG key"):
            continuous.squashed_gaussian_sample(jax.random.split(KEY, 2), jnp.zeros(2),
                                                jnp.zeros(2), -1.0, 1.0)
        with pytest.raises(AssertionError, match="target_policy_smoothing: argument `action` "
                           "must have rank 1"):
            continuous.target_policy_smoothing(KEY, jnp.zeros((3, 2)), f32(0.2), f32(0.5),
                                               -1.0, 1.0)

    def test_negative_values(self):
        with pytest.raises(ValueError, match="target_policy_smoothing: argument `noise_std` must "
                           "be >= 0"):
            continuous.target_policy_smoothing(KEY, ACTION, f32(-0.1), f32(0.5), -1.0, 1.0)
        with pytest.raises(ValueError, match="argument `noise_clip` must be >= 0"):
            continuous.target_policy_smoothing(KEY, ACTION, f32(0.1), f32(-0.5), -1.0, 1.0)
        with pytest.raises(ValueError, match="soft_q_target: argument `alpha` must be >= 0"):
            continuous.soft_q_target(R_T, D_T, Q_TM1, f32(0.0), f32(-0.2))
        with pytest.raises(ValueError, match="sac_critic_loss: argument `alpha` must be >= 0"):
            continuous.sac_critic_loss(Q_TM1, R_T, D_T, Q_TM1, f32(0.0), f32(-0.2))
        with pytest.raises(ValueError, match="sac_actor_loss: argument `alpha` must be >= 0"):
            continuous.sac_actor_loss(Q_TM1, f32(0.0), f32(jnp.nan))
        with pytest.raises(ValueError, match="default_target_entropy: argument `action_dim`"):
            continuous.default_target_entropy(0)

    def test_bad_bounds_in_constructors(self):
        for make in (continuous.deterministic_actor, continuous.gaussian_actor):
            name = make.__name__
            with pytest.raises(ValueError, match=f"{name}: argument `action_low` must be < "
                               "`action_high`"):
                make(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
            with pytest.raises(ValueError, match=f"{name}: arguments `action_low` and "
                               "`action_high` must have the same shape"):
                make(np.zeros(2), np.ones(3))
            with pytest.raises(ValueError, match=f"{name}: arguments `action_low` and "
                               "`action_high` must be finite"):
                make(np.array([-np.inf, 0.0]), np.ones(2))
            with pytest.raises(ValueError, match=f"{name}: argument `action_dim` is needed"):
                make(-1.0, 1.0)
            with pytest.raises(ValueError, match=f"{name}: argument `action_dim` is 3 but the "
                               "bounds have shape"):
                make(np.zeros(2), 1.0, action_dim=3)
            with pytest.raises(ValueError, match=f"{name}: argument `action_low` must be a float "
                               "or an array"):
                make(np.zeros((2, 2)), 1.0)
        # A scalar and an array broadcast.
        actor = continuous.deterministic_actor(-1.0, np.array([1.0, 2.0]), (4,))
        chex.assert_shape(actor.apply(actor.init(KEY, OBS), OBS), (2,))
        with pytest.raises(ValueError, match="gaussian_actor: argument `log_std_min` must be < "
                           "`log_std_max`"):
            continuous.gaussian_actor(A_LOW, A_HIGH, log_std_min=2.0, log_std_max=2.0)

    def test_bad_bounds_in_functions(self):
        mean = jnp.zeros(2)
        with pytest.raises(ValueError, match="squashed_gaussian_sample: argument `action_low` "
                           "must be < `action_high`"):
            continuous.squashed_gaussian_sample(KEY, mean, mean, 1.0, 1.0)
        with pytest.raises(ValueError, match="squashed_gaussian_mode: argument `action_low` must "
                           "be <"):
            continuous.squashed_gaussian_mode(mean, jnp.array([0.0, 2.0]), jnp.array([1.0, 1.0]))
        with pytest.raises(AssertionError, match=r"squashed_gaussian_log_prob: argument "
                           r"`action_high` must be a float or have shape \(2,\)"):
            continuous.squashed_gaussian_log_prob(mean, mean, mean, -1.0, jnp.ones(3))
        with pytest.raises(ValueError, match="target_policy_smoothing: arguments `action_low` "
                           "and `action_high` must be finite"):
            continuous.target_policy_smoothing(KEY, ACTION, f32(0.1), f32(0.5), -np.inf, 1.0)
