"""Every environment under jit, vmap over 1024 environments and lax.scan over 1000 steps.

Checks: nothing is NaN or outside the observation space; `info["final_observation"]` equals
the observation except on the step an episode ends, where the observation is a fresh reset
observation; tabular episodes end in a terminal state; dtypes are the documented ones.
"""

import jax
import numpy as np
import pytest

import envs

NUM_ENVS, NUM_STEPS = 1024, 1000


def _reset_ok(name, env, obs):
    """Whether each observation in `obs` [K, O...] can be a reset observation of `env`."""
    if name in ("CartPole-v1",):
        return np.all(np.abs(obs) <= 0.05, axis=-1)
    if name == "MountainCar-v0":
        return (obs[:, 0] >= -0.6) & (obs[:, 0] <= -0.4) & (obs[:, 1] == 0)
    if name == "Acrobot-v1":
        angles = np.arctan2(obs[:, [1, 3]], obs[:, [0, 2]])
        return np.all(np.abs(angles) <= 0.1 + 1e-6, axis=-1) & np.all(
            np.abs(obs[:, 4:]) <= 0.1, axis=-1)
    if name == "Pendulum-v1":  # theta ~ U(-pi, pi), theta_dot ~ U(-1, 1)
        return np.abs(obs[:, 2]) <= 1.0
    if name == "BairdCounterexample-v0":
        return np.any(np.all(obs[:, None, :] == env.extras["feature_matrix"][None], -1), -1)
    return obs == env.extras["start_state"]


_SLOW = ("CartPole-v1", "MountainCar-v0", "Acrobot-v1", "Pendulum-v1",
         "BairdCounterexample-v0")  # > 3 s


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in envs.names()])
def test_jit_vmap_scan_rollout(name):
    env, params = envs.make(name)
    traj = jax.jit(lambda k: envs.random_rollout(
        env, k, params, num_envs=NUM_ENVS, num_steps=NUM_STEPS))(jax.random.key(0))
    obs, final, reward, term, trunc = map(np.asarray, (
        traj.obs, traj.final_observation, traj.reward, traj.terminated, traj.truncated))
    assert obs.shape == (NUM_STEPS, NUM_ENVS) + env.observation_shape
    assert obs.dtype == env.observation_dtype and final.dtype == env.observation_dtype
    assert reward.dtype == np.float32 and term.dtype == bool and trunc.dtype == bool
    for x in (obs, final, reward):
        assert not np.isnan(x).any()
    space = env.observation_space
    flat = obs.reshape((-1,) + env.observation_shape)
    if hasattr(space, "low"):
        assert np.all(flat >= space.low) and np.all(flat <= space.high)
    else:
        assert np.all((flat >= 0) & (flat < space.n))
    done = term | trunc
    np.testing.assert_array_equal(obs[~done], final[~done])
    assert np.all(_reset_ok(name, env, obs[done]))
    if "terminal_states" in env.extras:
        assert np.all(np.isin(final[term], env.extras["terminal_states"]))
    if done.any():
        assert not np.all(obs[done] == final[done])
    if name in ("CartPole-v1", "MountainCar-v0", "Acrobot-v1", "Pendulum-v1", "RandomWalk-v0",
                "BoyanChain-v0"):
        assert done.sum() > NUM_ENVS  # episodes ended and were reset many times
