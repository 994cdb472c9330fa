"""Action selection: epsilon-greedy probabilities, random tie-breaking, schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import policies


def test_policies():
    q = jnp.array([1.0, 3.0, 3.0, 0.0])
    np.testing.assert_allclose(policies.epsilon_greedy_probs(q, 0.2), [0.05, 0.45, 0.45, 0.05])
    keys = jax.random.split(jax.random.key(0), 4000)
    acts = np.asarray(jax.vmap(policies.greedy, in_axes=(0, None))(keys, q))
    assert set(np.unique(acts)) == {1, 2}  # ties broken at random, never a non-maximal action
    assert 0.45 < np.mean(acts == 1) < 0.55
    acts = np.asarray(jax.vmap(policies.epsilon_greedy, in_axes=(0, None, None))(
        keys, q, jnp.float32(0.2)))
    freq = np.bincount(acts, minlength=4) / len(acts)
    np.testing.assert_allclose(freq, [0.05, 0.45, 0.45, 0.05], atol=0.03)
    sched = policies.linear_schedule(1.0, 0.1, 100)
    np.testing.assert_allclose([sched(0), sched(50), sched(100), sched(1000)],
                               [1.0, 0.55, 0.1, 0.1], rtol=1e-6)


def test_batched_epsilon_greedy_frequencies():
    q = jnp.array([[1.0, 3.0, 3.0, 0.0], [5.0, 0.0, 0.0, 0.0]])
    keys = jax.random.split(jax.random.key(1), 4000)
    acts = np.asarray(jax.vmap(policies.batched_epsilon_greedy, in_axes=(0, None, None))(
        keys, q, jnp.float32(0.2)))
    assert acts.shape == (4000, 2)
    np.testing.assert_allclose(np.bincount(acts[:, 0], minlength=4) / 4000,
                               [0.05, 0.45, 0.45, 0.05], atol=0.03)
    np.testing.assert_allclose(np.bincount(acts[:, 1], minlength=4) / 4000,
                               [0.85, 0.05, 0.05, 0.05], atol=0.03)
    greedy = policies.batched_epsilon_greedy(jax.random.key(0), q, jnp.float32(0.0))
    assert int(greedy[1]) == 0 and int(greedy[0]) in (1, 2)


def test_draws_in_advance_give_the_same_actions_as_batched_epsilon_greedy():
    q = jnp.array([[1.0, 3.0, 3.0, 0.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    keys = jax.random.split(jax.random.key(2), 500)
    for epsilon in (0.0, 0.3, 1.0):
        eps = jnp.float32(epsilon)
        direct = jax.vmap(policies.batched_epsilon_greedy, in_axes=(0, None, None))(
            keys, q, eps)
        draws = jax.vmap(policies.batched_epsilon_greedy_draws, in_axes=(0, None, None, None))(
            keys, 3, 4, eps)
        assert draws.explore.shape == (500, 3) and draws.noise.shape == (500, 3, 4)
        assert draws.random_actions.dtype == jnp.int32
        later = jax.vmap(policies.epsilon_greedy_from_draws, in_axes=(0, None))(draws, q)
        np.testing.assert_array_equal(direct, later)
        # where nothing explores, the greedy part alone is the action
        greedy = jax.vmap(policies.greedy_from_noise, in_axes=(None, 0))(q, draws.noise)
        np.testing.assert_array_equal(np.where(draws.explore, draws.random_actions, greedy),
                                      direct)
    assert float(draws.explore.mean()) == 1.0
    # hand values: u[0] < epsilon explores with argmax(u[1:]); otherwise ties go to the
    # maximal action with the larger noise
    draws = policies.EpsilonGreedyDraws(
        explore=jnp.array([True, False]), random_actions=jnp.array([3, 0], jnp.int32),
        noise=jnp.array([[0.1, 0.2, 0.3, 0.9], [0.9, 0.2, 0.7, 0.1]]))
    np.testing.assert_array_equal(
        policies.epsilon_greedy_from_draws(draws, q[:2] * jnp.array([[1.0], [0.0]])), [3, 0])
    np.testing.assert_array_equal(policies.greedy_from_noise(q[:2], draws.noise), [2, 0])


def test_bad_input():
    with pytest.raises(AssertionError, match="`noise` must have rank 2"):
        policies.greedy_from_noise(jnp.zeros((2, 3)), jnp.zeros(3))
    with pytest.raises(AssertionError, match="same shape"):
        policies.greedy_from_noise(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(AssertionError, match="`q` must have rank 2"):
        policies.batched_epsilon_greedy(jax.random.key(0), jnp.zeros(3), jnp.float32(0.1))
    with pytest.raises(ValueError, match="`steps` must be > 0"):
        policies.linear_schedule(1.0, 0.0, 0)
