"""CartPole, MountainCar and Acrobot against Gymnasium's own environments, step for step.

The JAX environment runs a trajectory of random actions (with automatic reset) in one jitted
scan. Gymnasium then replays it: at each step its internal state is set from the JAX state
(so float32 rounding cannot accumulate), it takes the same action, and its observation,
reward, terminated and truncated must agree with the JAX step's. Gymnasium's `TimeLimit` is
reset whenever the JAX episode ends, so truncation is compared too. A second test repeats
this with JAX in float64, where the agreement is to rounding error.
"""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from tests.envs.trajectories import jax_trajectory as _jax_trajectory

NUM_STEPS = 3000

# (tdkit name, Gymnasium id, make kwargs for both)
CASES = [
    ("CartPole-v1", "CartPole-v1", {}),
    ("CartPole-v1", "CartPole-v1", {"max_steps": 15}),  # exercises truncation
    ("CartPole-v1", "CartPole-v1", {"sutton_barto_reward": True}),
    ("MountainCar-v0", "MountainCar-v0", {}),
    ("Acrobot-v1", "Acrobot-v1", {}),
]


def _set_gym_state(gym_env, env_state) -> None:
    gym_env.unwrapped.state = np.array([float(v) for v in env_state], np.float64)


def _compare_with_gymnasium(name, gym_id, kwargs, rtol, atol, seed):
    env, params = envs.make(name, **kwargs)
    gym_kwargs = {}
    if "max_steps" in kwargs:
        gym_kwargs["max_episode_steps"] = kwargs["max_steps"]
    if "sutton_barto_reward" in kwargs:
        gym_kwargs["sutton_barto_reward"] = kwargs["sutton_barto_reward"]
    gym_env = gymnasium.make(gym_id, **gym_kwargs)
    actions = jax.random.randint(jax.random.key(seed), (NUM_STEPS,), 0, env.num_actions)
    states, obs, rewards, terminated, truncated, final_obs = _jax_trajectory(
        env, params, jax.random.key(seed + 1), actions)
    counts = {"terminated": 0, "truncated": 0}
    need_reset = True
    for t in range(NUM_STEPS):
        if need_reset:
            gym_env.reset(seed=seed + t)
            assert int(states.time[t]) == 0
        _set_gym_state(gym_env, [leaf[t] for leaf in states.env_state])
        g_obs, g_reward, g_term, g_trunc, _ = gym_env.step(int(actions[t]))
        np.testing.assert_allclose(final_obs[t], g_obs, rtol=rtol, atol=atol,
                                   err_msg=f"{name} step {t}")
        assert float(rewards[t]) == g_reward, (name, t)
        assert bool(terminated[t]) == g_term, (name, t)
        assert bool(truncated[t]) == g_trunc, (name, t)
        need_reset = g_term or g_trunc
        counts["terminated"] += g_term
        counts["truncated"] += g_trunc
        if not need_reset:
            np.testing.assert_array_equal(obs[t], final_obs[t])
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("name,gym_id,kwargs", CASES)
def test_matches_gymnasium_float32(name, gym_id, kwargs):
    counts = _compare_with_gymnasium(name, gym_id, kwargs, rtol=1e-5, atol=1e-5, seed=0)
    # The comparison covered episode ends of the kind this case is about.
    if name == "CartPole-v1" and "max_steps" not in kwargs:
        assert counts["terminated"] > 50
    if "max_steps" in kwargs or name != "CartPole-v1":
        assert counts["truncated"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name,gym_id,kwargs", [CASES[0], CASES[3], CASES[4]])
def test_matches_gymnasium_float64(name, gym_id, kwargs):
    with jax.enable_x64(True):
        env, params = envs.make(name, **kwargs)
        _, state = env.reset(jax.random.key(0), params)
        assert state.env_state[0].dtype == jnp.float64
        _compare_with_gymnasium(name, gym_id, kwargs, rtol=1e-12, atol=1e-12, seed=10)


def test_cartpole_single_step_by_hand():
    # From the zero state pushing right: temp = 10 / 1.1,
    # thetaacc = -temp / (0.5 * (4/3 - 0.1/1.1)), xacc = temp - 0.05 * thetaacc / 1.1;
    # Euler with tau = 0.02 moves only the velocities.
    env, params = envs.make("CartPole-v1")
    zero = jnp.float32(0.0)
    state = envs.State(envs.classic_control.CartPoleState(zero, zero, zero, zero), jnp.int32(0))
    obs, _, reward, terminated, truncated, _ = env.step(jax.random.key(0), state, 1, params)
    temp = 10.0 / 1.1
    thetaacc = -temp / (0.5 * (4.0 / 3.0 - 0.1 / 1.1))
    xacc = temp - 0.05 * thetaacc / 1.1
    np.testing.assert_allclose(obs, [0.0, 0.02 * xacc, 0.0, 0.02 * thetaacc], rtol=1e-6)
    assert float(reward) == 1.0 and not terminated and not truncated


def test_mountain_car_left_wall_stops_the_car():
    env, params = envs.make("MountainCar-v0")
    s = envs.State(envs.classic_control.MountainCarState(jnp.float32(-1.19), jnp.float32(-0.05)),
                   jnp.int32(0))
    obs, state, reward, terminated, _, _ = env.step(jax.random.key(0), s, 0, params)
    np.testing.assert_allclose(obs, [-1.2, 0.0])
    assert float(reward) == -1.0 and not terminated


def test_mountain_car_reaching_the_goal_terminates():
    env, params = envs.make("MountainCar-v0")
    s = envs.State(envs.classic_control.MountainCarState(jnp.float32(0.49), jnp.float32(0.05)),
                   jnp.int32(7))
    _, state, _, terminated, truncated, info = env.step(jax.random.key(0), s, 2, params)
    assert bool(terminated) and not bool(truncated)
    assert float(info["final_observation"][0]) >= 0.5
    assert int(state.time) == 0
    assert -0.6 <= float(state.env_state.position) <= -0.4


def test_time_limits_are_gymnasiums():
    assert envs.make("CartPole-v1")[1].max_steps == 500
    assert envs.make("MountainCar-v0")[1].max_steps == 200
    assert envs.make("Acrobot-v1")[1].max_steps == 500


@pytest.mark.slow
def test_vmap_over_params_gives_one_trajectory_per_setting():
    env, params = envs.make("CartPole-v1")
    stacked = jax.tree.map(lambda *x: jnp.stack(x), params, params._replace(gravity=20.0))

    def rollout(p):
        return envs.random_rollout(env, jax.random.key(0), p, num_envs=2, num_steps=20)

    traj = jax.jit(jax.vmap(rollout))(stacked)
    assert traj.obs.shape == (2, 20, 2, 4)
    # Same keys, different gravity: the pole falls faster.
    assert not np.allclose(traj.obs[0], traj.obs[1])


@pytest.mark.parametrize("ctor,kwargs", [
    (envs.CartPole, {"masspole": -0.1}),
    (envs.CartPole, {"max_steps": 0}),
    (envs.MountainCar, {"max_speed": 0.0}),
    (envs.MountainCar, {"reset_low": -2.0}),
    (envs.Acrobot, {"dt": 0.0}),
    (envs.Acrobot, {"torque_noise_max": -1.0}),
])
def test_invalid_params_raise_value_error(ctor, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ctor(**kwargs)


def test_acrobot_torque_noise_is_a_static_option():
    state = envs.State(envs.classic_control.AcrobotState(*[jnp.float32(0.05)] * 4), jnp.int32(0))
    env, params = envs.make("Acrobot-v1")
    assert not env.core.step_uses_key
    a = env.step(jax.random.key(0), state, 2, params)[0]
    b = env.step(jax.random.key(1), state, 2, params)[0]
    np.testing.assert_array_equal(a, b)
    env, params = envs.make("Acrobot-v1", torque_noise_max=0.5)
    assert env.core.step_uses_key
    a = env.step(jax.random.key(0), state, 2, params)[0]
    b = env.step(jax.random.key(1), state, 2, params)[0]
    assert not np.array_equal(a, b)
