"""Baird's counterexample: features, policies, ratios, dynamics, and the book's DP numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import baird


def test_feature_matrix_is_the_books():
    expected = np.array([
        [2, 0, 0, 0, 0, 0, 0, 1],
        [0, 2, 0, 0, 0, 0, 0, 1],
        [0, 0, 2, 0, 0, 0, 0, 1],
        [0, 0, 0, 2, 0, 0, 0, 1],
        [0, 0, 0, 0, 2, 0, 0, 1],
        [0, 0, 0, 0, 0, 2, 0, 1],
        [0, 0, 0, 0, 0, 0, 1, 2],
    ], float)
    env, _ = envs.make("BairdCounterexample-v0")
    np.testing.assert_array_equal(env.extras["feature_matrix"], expected)
    np.testing.assert_array_equal(baird.FEATURES, expected)


def test_policies_and_importance_ratios():
    env, _ = envs.make("BairdCounterexample-v0")
    np.testing.assert_allclose(env.extras["behaviour_probs"], [6 / 7, 1 / 7], atol=1e-15)
    np.testing.assert_array_equal(env.extras["target_probs"], [0, 1])
    np.testing.assert_allclose(env.extras["importance_ratios"], [0, 7], atol=1e-12)
    assert env.extras["behaviour_policy"].shape == (7, 2)
    assert env.extras["gamma"] == 0.99
    np.testing.assert_array_equal(env.extras["initial_weights"], [1, 1, 1, 1, 1, 1, 10, 1])
    np.testing.assert_array_equal(env.extras["true_values"], np.zeros(7))


def test_semi_gradient_dp_reproduces_figure_11_2_numbers():
    # Expected update over all 7 states (divided by 7) under the target policy, alpha = 0.01,
    # 1000 sweeps from w0; the reference gives w1..w6 = 114.434, w7 = 6.850, w8 = 335.001.
    env, _ = envs.make("BairdCounterexample-v0")
    x = env.extras["feature_matrix"]
    p_pi = np.einsum("sa,sat->st", env.extras["target_policy"], env.extras["model"].transition)
    gamma, w = env.extras["gamma"], env.extras["initial_weights"].copy()
    for _ in range(1000):
        v = x @ w
        delta = 0.0 + gamma * p_pi @ v - v
        w = w + 0.01 / 7 * x.T @ delta
    np.testing.assert_allclose(w[:6], 114.434, atol=5e-4)
    np.testing.assert_allclose(w[6], 6.850, atol=5e-4)
    np.testing.assert_allclose(w[7], 335.001, atol=5e-4)


def test_solid_goes_to_the_lower_state_and_dashed_to_a_uniform_upper_state():
    env, params = envs.make("BairdCounterexample-v0")
    keys = jax.random.split(jax.random.key(0), 7000)
    start = jnp.arange(7000, dtype=jnp.int32) % 7
    step = jax.jit(jax.vmap(env.core.step, in_axes=(0, 0, None, None)))
    obs, s, reward, term, _ = step(keys, start, jnp.int32(1), params)
    np.testing.assert_array_equal(s, 6)
    np.testing.assert_array_equal(obs, np.tile(baird.FEATURES[6], (7000, 1)))
    obs, s, reward, term, _ = step(keys, start, jnp.int32(0), params)
    counts = np.bincount(np.asarray(s), minlength=7)
    assert counts[6] == 0
    np.testing.assert_allclose(counts[:6] / 7000, 1 / 6, atol=5 * np.sqrt(1 / 6 * 5 / 6 / 7000))
    np.testing.assert_array_equal(obs, baird.FEATURES[np.asarray(s)])
    assert not np.asarray(term).any() and not np.asarray(reward).any()


def test_reset_is_uniform_over_the_seven_states():
    env, params = envs.make("BairdCounterexample-v0", observation="index")
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(3), 7000), params)
    np.testing.assert_array_equal(obs, state.env_state)
    counts = np.bincount(np.asarray(obs), minlength=7)
    np.testing.assert_allclose(counts / 7000, 1 / 7, atol=5 * np.sqrt(1 / 7 * 6 / 7 / 7000))


def test_bad_observation_option_raises():
    with pytest.raises(ValueError, match="observation"):
        envs.BairdCounterexample(observation="state")
