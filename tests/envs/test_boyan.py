"""Boyan chain: features, exact true values and weights, dynamics."""

import jax
import numpy as np
import pytest

import envs
from envs import boyan


def test_features_are_the_interpolated_unit_vectors():
    f = boyan.FEATURES  # row j = Boyan state j + 1
    np.testing.assert_array_equal(f[12], [1, 0, 0, 0])     # x(13)
    np.testing.assert_array_equal(f[11], [.75, .25, 0, 0])  # x(12)
    np.testing.assert_array_equal(f[10], [.5, .5, 0, 0])    # x(11)
    np.testing.assert_array_equal(f[8], [0, 1, 0, 0])       # x(9)
    np.testing.assert_array_equal(f[4], [0, 0, 1, 0])       # x(5)
    np.testing.assert_array_equal(f[1], [0, 0, .25, .75])   # x(2)
    np.testing.assert_array_equal(f[0], [0, 0, 0, 1])       # x(1)
    np.testing.assert_array_equal(f.sum(axis=1), np.ones(13))


def test_true_weights_reproduce_the_true_values_exactly():
    env, _ = envs.make("BoyanChain-v0")
    expected = -2.0 * np.arange(13)  # v(i) = -2 (i - 1) at index i - 1
    np.testing.assert_array_equal(env.extras["true_values"], expected)
    np.testing.assert_array_equal(env.extras["feature_matrix"] @ [-24.0, -16.0, -8.0, 0.0],
                                  expected)
    np.testing.assert_array_equal(env.extras["true_weights"], [-24, -16, -8, 0])


def test_chain_steps_down_by_one_or_two_with_the_right_rewards():
    env, params = envs.make("BoyanChain-v0")
    traj = jax.jit(lambda k: envs.random_rollout(env, k, params, num_envs=128, num_steps=300))(
        jax.random.key(1))
    obs, final, reward, term = map(np.asarray, (traj.obs, traj.final_observation, traj.reward,
                                                traj.terminated))
    before = np.concatenate([np.full((1, 128), 12), obs[:-1]])
    drop = before - final
    from_high = before >= 2
    assert set(np.unique(drop[from_high])) == {1, 2}
    np.testing.assert_array_equal(drop[~from_high], 1)
    np.testing.assert_array_equal(reward, np.where(from_high, -3.0, -2.0))
    np.testing.assert_array_equal(term, final == 0)
    np.testing.assert_array_equal(obs[term], 12)
    # Monte Carlo: the mean return of an episode is v(13) = -24.
    running, episode_returns = np.zeros(128), []
    for t in range(300):
        running += reward[t]
        episode_returns.extend(running[term[t]])
        running[term[t]] = 0.0
    episode_returns = np.array(episode_returns)
    assert len(episode_returns) > 1000
    standard_error = episode_returns.std() / np.sqrt(len(episode_returns))
    assert abs(episode_returns.mean() + 24.0) < 5 * standard_error


def test_feature_observations():
    env, params = envs.make("BoyanChain-v0", observation="features")
    obs, state = env.reset(jax.random.key(0), params)
    np.testing.assert_array_equal(obs, [1, 0, 0, 0])
    obs, state, *_ = env.step(jax.random.key(0), state, 0, params)
    assert int(state.env_state) in (10, 11)
    np.testing.assert_array_equal(obs, boyan.FEATURES[int(state.env_state)])


def test_bad_observation_option_raises():
    with pytest.raises(ValueError, match="observation"):
        envs.BoyanChain(observation="pixels")
