"""Maximization bias (Example 6.7): A's two actions, B's noisy rewards, the action scheme."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.maximization_bias import STATE_A, STATE_B, TERMINAL


def _step(env, params, s, a, key=jax.random.key(0)):
    obs, state, reward, terminated, truncated, info = env.step(
        key, envs.State(jnp.int32(s), jnp.int32(0)), jnp.int32(a), params)
    return int(obs), int(info["final_observation"]), float(reward), bool(terminated)


def test_left_from_a_goes_to_b_and_right_ends_the_episode():
    env, params = envs.make("MaximizationBias-v0")
    assert env.num_actions == 10
    assert _step(env, params, STATE_A, 0) == (STATE_B, STATE_B, 0.0, False)
    assert _step(env, params, STATE_A, 1) == (STATE_A, TERMINAL, 0.0, True)
    # Actions >= 1 in A are treated as "right".
    for a in range(2, 10):
        assert _step(env, params, STATE_A, a) == (STATE_A, TERMINAL, 0.0, True)


def test_b_ends_the_episode_with_normal_minus_point_one_rewards():
    env, params = envs.make("MaximizationBias-v0")
    keys = jax.random.split(jax.random.key(1), 20000)
    actions = jnp.arange(20000, dtype=jnp.int32) % 10
    obs, s, reward, term, _ = jax.vmap(env.core.step, in_axes=(0, None, 0, None))(
        keys, jnp.int32(STATE_B), actions, params)
    np.testing.assert_array_equal(s, TERMINAL)
    assert np.asarray(term).all()
    reward = np.asarray(reward)
    assert abs(reward.mean() + 0.1) < 5 / np.sqrt(20000)
    assert abs(reward.std() - 1.0) < 0.03


def test_valid_actions_and_optimal_values():
    env, _ = envs.make("MaximizationBias-v0")
    valid = env.extras["valid_actions"]
    np.testing.assert_array_equal(valid[STATE_A], [True, True] + [False] * 8)
    assert valid[STATE_B].all() and valid[TERMINAL].all()
    np.testing.assert_allclose(env.extras["optimal_action_values"][STATE_A, :2], [-0.1, 0.0])
    np.testing.assert_allclose(env.extras["optimal_action_values"][STATE_B], -0.1)


def test_invalid_number_of_b_actions_raises():
    with pytest.raises(ValueError, match="num_b_actions"):
        envs.MaximizationBias(num_b_actions=1)
    with pytest.raises(ValueError, match="b_reward_std"):
        envs.MaximizationBias(b_reward_std=-1.0)
