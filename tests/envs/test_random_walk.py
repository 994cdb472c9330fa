"""Random walk: exact true values, dynamics, automatic reset and bad parameters."""

import jax
import numpy as np
import pytest

import envs


def test_true_values_of_the_five_state_walk_are_one_sixth_to_five_sixths():
    env, _ = envs.make("RandomWalk-v0")
    np.testing.assert_allclose(
        env.extras["true_values"], [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 0], atol=1e-12)
    assert env.extras["num_states"] == 7
    assert env.extras["start_state"] == 3
    np.testing.assert_array_equal(env.extras["nonterminal_states"], [1, 2, 3, 4, 5])
    # Example 6.2: RMS error of V = 0.5 over the five states is sqrt(1/18).
    rms = np.sqrt(np.mean((0.5 - env.extras["true_values"][1:6]) ** 2))
    np.testing.assert_allclose(rms, np.sqrt(1 / 18), atol=1e-12)


def test_true_values_of_the_nineteen_state_walk_are_s_minus_ten_over_ten():
    for env, _ in (envs.make("RandomWalk19-v0"),
                   envs.make("RandomWalk-v0", num_states=19, left_reward=-1.0)):
        s = np.arange(1, 20)
        np.testing.assert_allclose(env.extras["true_values"][1:20], (s - 10) / 10, atol=1e-12)
        assert env.extras["start_state"] == 10
        assert env.observation_space.n == 21
        # Figure 7.2: alpha = 0 (V = 0) has RMS error sqrt(0.3).
        np.testing.assert_allclose(
            np.sqrt(np.mean(env.extras["true_values"][1:20] ** 2)), np.sqrt(0.3), atol=1e-12)


@pytest.mark.parametrize("num_states,left_reward,num_steps", [(5, 0.0, 400), (19, -1.0, 1200)])
def test_walk_moves_one_state_per_step_and_pays_at_the_ends(num_states, left_reward, num_steps):
    env, params = envs.make("RandomWalk-v0", num_states=num_states, left_reward=left_reward)
    traj = jax.jit(lambda k: envs.random_rollout(
        env, k, params, num_envs=256, num_steps=num_steps))(jax.random.key(0))
    obs, final, reward = map(np.asarray, (traj.obs, traj.final_observation, traj.reward))
    term = np.asarray(traj.terminated)
    start = (num_states + 1) // 2
    before = np.concatenate([np.full((1, 256), start), obs[:-1]])
    np.testing.assert_array_equal(np.abs(final - before), 1)
    right, left = final == num_states + 1, final == 0
    np.testing.assert_array_equal(term, right | left)
    np.testing.assert_array_equal(reward, np.where(right, 1.0, np.where(left, left_reward, 0.0)))
    np.testing.assert_array_equal(obs[term], start)  # automatic reset to the centre
    assert not np.asarray(traj.truncated).any()
    # From the centre, half of the walks end on the right (binomial, 5 standard errors).
    n_end = term.sum()
    assert n_end > 1000
    assert abs(right.sum() / n_end - 0.5) < 5 * 0.5 / np.sqrt(n_end)


@pytest.mark.parametrize("kwargs,arg", [
    ({"num_states": 0}, "num_states"),
    ({"num_states": -3}, "num_states"),
    ({"num_states": 2.5}, "num_states"),
    ({"start_state": 0}, "start_state"),
    ({"start_state": 6}, "start_state"),
    ({"p_right": 1.5}, "p_right"),
])
def test_invalid_params_raise_value_error(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        envs.RandomWalk(**kwargs)
