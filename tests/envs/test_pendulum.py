"""Pendulum-v1 against Gymnasium's own environment, step for step; Box actions through the
functional API, the Gymnasium wrapper and the host adapter (MuJoCo included when installed).

The JAX environment runs a trajectory of random torques (with automatic reset) in one jitted
scan. Gymnasium then replays it: its state is set from the JAX state after every reset (and,
in float32, before every step, so that float32 rounding cannot accumulate), it takes the same
action, and its observation, reward, terminated and truncated must agree with the JAX
step's. Gymnasium's `TimeLimit` is reset whenever the JAX episode ends, so the 200-step
truncation is compared too.
"""

import importlib
import sys
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import gym_factory
from envs.gym_wrapper import GymnasiumEnv, InvalidActionError
from envs.pendulum import PendulumState
from tests.envs.trajectories import jax_trajectory as _jax_trajectory

NUM_STEPS = 3000
GAMMA = 0.99


def _random_torques(seed, num_steps=NUM_STEPS):
    # A little beyond the bounds [-2, 2], so that the clipping is compared too.
    return jax.random.uniform(jax.random.key(seed), (num_steps, 1), jnp.float32, -2.5, 2.5)


def _compare_with_gymnasium(kwargs, rtol, atol, seed, set_state_every_step, state_tol=None):
    """Replays the twin's trajectory in Gymnasium. `rtol`/`atol` for the float32 observations
    and rewards; `state_tol` for Gymnasium's state when it runs episodes on its own."""
    env, params = envs.make("Pendulum-v1", **kwargs)
    gym_kwargs = {"max_episode_steps": kwargs["max_steps"]} if "max_steps" in kwargs else {}
    if "g" in kwargs:
        gym_kwargs["g"] = kwargs["g"]
    gym_env = gymnasium.make("Pendulum-v1", **gym_kwargs)
    actions = _random_torques(seed)
    states, obs, rewards, terminated, truncated, final_obs = _jax_trajectory(
        env, params, jax.random.key(seed + 1), actions)
    assert actions.dtype == jnp.float32 and obs.dtype == np.float32
    episodes = 0
    need_reset = True
    for t in range(NUM_STEPS):
        state_t = np.array([states.env_state.theta[t], states.env_state.theta_dot[t]],
                           np.float64)
        if need_reset:
            gym_env.reset(seed=seed + t)
            assert int(states.time[t]) == 0
            gym_env.unwrapped.state = state_t
            if t > 0:  # the automatic reset's observation is the next episode's first one
                np.testing.assert_allclose(obs[t - 1], gym_env.unwrapped._get_obs(),
                                           rtol=rtol, atol=atol)
        elif set_state_every_step:
            gym_env.unwrapped.state = state_t
        else:  # Gymnasium runs the episode on its own: its state must still be the twin's
            np.testing.assert_allclose(gym_env.unwrapped.state, state_t, rtol=state_tol,
                                       atol=state_tol, err_msg=f"step {t}")
        g_obs, g_reward, g_term, g_trunc, _ = gym_env.step(np.asarray(actions[t]))
        np.testing.assert_allclose(final_obs[t], g_obs, rtol=rtol, atol=atol,
                                   err_msg=f"step {t}")
        np.testing.assert_allclose(rewards[t], g_reward, rtol=rtol, atol=atol,
                                   err_msg=f"step {t}")
        assert not g_term and not bool(terminated[t]), t  # Pendulum never terminates
        assert bool(truncated[t]) == g_trunc, t
        need_reset = g_trunc
        episodes += g_trunc
        if need_reset:
            assert not np.array_equal(obs[t], final_obs[t])  # obs is the reset observation
        else:
            np.testing.assert_array_equal(obs[t], final_obs[t])
    gym_env.close()
    return episodes


@pytest.mark.slow
def test_matches_gymnasium_float32():
    episodes = _compare_with_gymnasium({}, rtol=1e-5, atol=1e-5, seed=0,
                                       set_state_every_step=True)
    assert episodes == NUM_STEPS // 200  # truncated at 200 steps, every time


@pytest.mark.slow
def test_matches_gymnasium_float64_over_whole_episodes():
    # In float64 the twin computes what Gymnasium computes, operation for operation: the
    # state is set only at each reset and the two agree for whole 200-step episodes.
    with jax.enable_x64(True):
        env, params = envs.make("Pendulum-v1")
        _, state = env.reset(jax.random.key(0), params)
        assert state.env_state.theta.dtype == jnp.float64
        # Observations and rewards are float32: equal to float32 rounding.
        episodes = _compare_with_gymnasium({}, rtol=1e-6, atol=1e-6, seed=10,
                                           set_state_every_step=False, state_tol=1e-9)
    assert episodes == NUM_STEPS // 200


@pytest.mark.slow
def test_matches_gymnasium_with_other_gravity_and_time_limit():
    episodes = _compare_with_gymnasium({"g": 9.81, "max_steps": 37}, rtol=1e-5, atol=1e-5,
                                       seed=20, set_state_every_step=True)
    assert episodes == NUM_STEPS // 37


def test_single_step_by_hand():
    # theta 0.5, theta_dot 0.2, torque 1: cost = 0.25 + 0.1 * 0.04 + 0.001 * 1;
    # theta_dot' = 0.2 + (3 * 10 / 2 * sin(0.5) + 3 * 1) * 0.05, theta' = 0.5 + 0.05 theta_dot'.
    env, params = envs.make("Pendulum-v1")
    state = envs.State(PendulumState(jnp.float32(0.5), jnp.float32(0.2)), jnp.int32(0))
    obs, next_state, reward, terminated, truncated, _ = env.step(
        jax.random.key(0), state, jnp.array([1.0], jnp.float32), params)
    theta_dot = 0.2 + (15.0 * np.sin(0.5) + 3.0) * 0.05
    theta = 0.5 + 0.05 * theta_dot
    np.testing.assert_allclose(obs, [np.cos(theta), np.sin(theta), theta_dot], rtol=1e-6)
    np.testing.assert_allclose(reward, -(0.25 + 0.004 + 0.001), rtol=1e-6)
    assert not terminated and not truncated and int(next_state.time) == 1


def test_torque_is_clipped_and_speed_is_capped():
    env, params = envs.make("Pendulum-v1")
    state = envs.State(PendulumState(jnp.float32(0.0), jnp.float32(7.9)), jnp.int32(0))
    step = jax.jit(env.step)
    clipped = step(jax.random.key(0), state, jnp.array([5.0], jnp.float32), params)
    at_bound = step(jax.random.key(0), state, jnp.array([2.0], jnp.float32), params)
    np.testing.assert_array_equal(clipped[0], at_bound[0])
    np.testing.assert_allclose(clipped[2], -(0.1 * 7.9**2 + 0.001 * 4.0), rtol=1e-6)
    assert float(clipped[0][2]) == 8.0  # 7.9 + 3 * 2 * 0.05 = 8.2, capped at max_speed


def test_spaces_params_and_registration():
    env, params = envs.make("Pendulum-v1")
    gym_env = gymnasium.make("Pendulum-v1")
    assert env.action_space == gym_env.action_space == gymnasium.spaces.Box(
        -2.0, 2.0, (1,), np.float32)
    assert env.observation_space == gym_env.observation_space
    assert env.action_shape == (1,) and env.num_actions is None
    assert env.observation_shape == (3,) and env.observation_dtype == np.float32
    assert (params.max_speed, params.max_torque, params.dt, params.g, params.m, params.l,
            params.max_steps) == (8, 2, 0.05, 10.0, 1, 1, 200)
    assert envs.make("Pendulum-v1", g=9.81)[1].g == 9.81
    spec = gymnasium.spec("tdkit/Pendulum-v1")
    assert spec.max_episode_steps == gymnasium.spec("Pendulum-v1").max_episode_steps == 200
    assert spec.reward_threshold is None is gymnasium.spec("Pendulum-v1").reward_threshold
    gym_env.close()


@pytest.mark.parametrize("kwargs", [{"max_torque": 0.0}, {"max_speed": -1.0}, {"dt": 0.0},
                                    {"max_steps": 0}, {"reset_theta": -1.0}])
def test_invalid_params_raise_value_error(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        envs.Pendulum(**kwargs)


def test_jit_vmap_over_envs_truncates_every_200_steps():
    env, params = envs.make("Pendulum-v1")
    num_envs, num_steps = 8, 450
    traj = jax.jit(lambda k: envs.random_rollout(
        env, k, params, num_envs=num_envs, num_steps=num_steps))(jax.random.key(0))
    obs, final, reward, term, trunc = map(np.asarray, (
        traj.obs, traj.final_observation, traj.reward, traj.terminated, traj.truncated))
    assert obs.shape == final.shape == (num_steps, num_envs, 3)
    assert obs.dtype == final.dtype == reward.dtype == np.float32
    assert reward.shape == (num_steps, num_envs)
    assert not term.any()
    np.testing.assert_array_equal(np.flatnonzero(trunc.all(axis=1)), [199, 399])
    assert trunc.sum() == 2 * num_envs
    assert np.all((reward <= 0) & (reward >= -16.2736045))
    space = env.observation_space
    assert np.all((obs >= space.low) & (obs <= space.high))
    np.testing.assert_array_equal(obs[~trunc], final[~trunc])
    assert np.all(np.abs(obs[trunc][:, 2]) <= 1.0)  # reset: theta_dot ~ U(-1, 1)
    assert not np.any(np.all(obs[trunc] == final[trunc], axis=-1))


@pytest.mark.slow
def test_vmap_over_steps_and_over_params():
    env, params = envs.make("Pendulum-v1")
    num_envs = 4
    keys = jax.random.split(jax.random.key(0), num_envs)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    actions = jnp.linspace(-2.0, 2.0, num_envs, dtype=jnp.float32)[:, None]  # [N, A]
    obs, _, reward, *_ = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))(
        keys, state, actions, params)
    assert obs.shape == (num_envs, 3) and reward.shape == (num_envs,)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), params, params._replace(g=2.0))
    traj = jax.jit(jax.vmap(lambda p: envs.random_rollout(
        env, jax.random.key(1), p, num_envs=2, num_steps=20)))(stacked)
    assert traj.obs.shape == (2, 20, 2, 3)
    assert not np.allclose(traj.obs[0], traj.obs[1])  # same keys, different gravity


@pytest.mark.parametrize("action,match", [
    (jnp.float32(1.0), r"`action` must have rank 1"),
    (jnp.ones((3, 1), jnp.float32), r"`action` must have rank 1"),  # a batch, by mistake
    (jnp.array([1], jnp.int32), r"`action` must have a float dtype"),
    (jnp.array([True]), r"`action` must have a float dtype"),
    (jnp.ones((2,), jnp.float32), r"`action` must have shape \(1,\)"),
])
def test_bad_actions_are_rejected_at_trace_time(action, match):
    env, params = envs.make("Pendulum-v1")
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    with pytest.raises(AssertionError, match=match):
        jax.jit(env.step)(key, state, action, params)
    with pytest.raises(AssertionError, match=match):
        env.step(key, state, action, params)


def test_other_float_dtypes_are_cast_to_float32():
    env, params = envs.make("Pendulum-v1")
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    a = env.step(key, state, jnp.array([1.5], jnp.float32), params)
    b = env.step(key, state, jnp.array([1.5], jnp.bfloat16), params)
    np.testing.assert_array_equal(a[0], b[0])


# ---------------------------------------------------------------------------- Gymnasium form


def test_gymnasium_wrapper_passes_check_env():
    env = gymnasium.make("tdkit/Pendulum-v1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    # Gymnasium's own Pendulum-v1 gets the same advice about its [-2, 2] torque bounds.
    unexpected = [str(w.message) for w in caught
                  if "recommend using a symmetric and normalized space" not in str(w.message)]
    assert unexpected == []
    env.close()


def test_gymnasium_time_limit_truncates_at_200():
    env = gymnasium.make("tdkit/Pendulum-v1")
    env.reset(seed=0)
    for t in range(200):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert type(obs) is np.ndarray and obs.dtype == np.float32 and obs.shape == (3,)
        assert type(reward) is float and not terminated
        assert truncated == (t == 199)
    env.close()


@pytest.fixture(scope="module")
def pendulum_gym():
    env = GymnasiumEnv(envs.make("Pendulum-v1")[0])
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("action", [
    [1.0], np.array([-2.0]), np.array([0.5], np.float32), jnp.array([1.5], jnp.float32)])
def test_gymnasium_wrapper_accepts_float_actions(pendulum_gym, action):
    env = pendulum_gym
    obs, reward, terminated, truncated, _ = env.step(action)
    assert obs.shape == (3,) and np.isfinite(reward)
    assert env._validate(action).dtype == np.float32


@pytest.mark.parametrize("action,match", [
    ([2.5], "outside the action space"),
    (np.array([np.nan], np.float32), "outside the action space"),
    (np.array([1]), "must be a float array"),
    (np.array([True]), "must be a float array"),
    ("1.0", "must be a float array"),
    (1.0, r"must have shape \(1,\)"),
    ([[1.0]], r"must have shape \(1,\)"),
    ([1.0, 0.0], r"must have shape \(1,\)"),
])
def test_gymnasium_wrapper_rejects_bad_box_actions(pendulum_gym, action, match):
    with pytest.raises(InvalidActionError, match=match):
        pendulum_gym.step(action)


def test_rgb_array_render():
    env = gymnasium.make("tdkit/Pendulum-v1", render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (500, 500, 3) and image.dtype == np.uint8
    assert image.min() < image.max()
    env.close()


# ---------------------------------------------------------------------------- host adapter


class _RecordActions(gymnasium.Wrapper):
    """Records every action the vector env hands to the single env."""

    def __init__(self, env, record):
        super().__init__(env)
        self.record = record

    def step(self, action):
        self.record.append(action)
        return self.env.step(action)


def test_host_adapter_steps_the_twin_with_float32_actions():
    record = []
    with envs.make_host_env("tdkit/Pendulum-v1", 2, GAMMA, seed=0, max_episode_steps=50,
                            wrappers=[lambda env: _RecordActions(env, record)]) as adapter:
        obs = adapter.reset()
        assert obs.shape == (2, 3) and obs.dtype == np.float32
        ends = []
        all_actions = np.random.default_rng(0).uniform(-2, 2, (101, 2, 1)).astype(np.float32)
        for t, actions in enumerate(all_actions):  # float32 [N, A]
            if t == 0:
                actions = jnp.asarray(actions)  # JAX arrays work as well
            step = adapter.step(actions)
            np.testing.assert_array_equal(step.transition.a_tm1, actions)
            assert step.transition.a_tm1.dtype == np.float32
            if step.episodes.finished.any():
                ends.append(t)
                assert step.episodes.finished.all()
                np.testing.assert_array_equal(step.episodes.lengths, 50)
                # Truncation: the discount stays gamma and obs_t is the true final observation.
                np.testing.assert_array_equal(step.transition.discount_t, np.float32(GAMMA))
                np.testing.assert_array_equal(step.transition.obs_t,
                                              np.stack(step.info["final_obs"]))
                assert not np.any(np.all(step.transition.obs_t == step.next_obs, axis=-1))
        assert ends == [49, 99]
        assert all(type(a) is np.ndarray and a.dtype == np.float32 and a.shape == (1,)
                   for a in record)
        with pytest.raises(TypeError, match="`actions` must have a float dtype"):
            adapter.step(np.zeros((2, 1), np.int32))
        with pytest.raises(ValueError, match=r"`actions` must have shape \(2, 1\)"):
            adapter.step(np.zeros((2,), np.float32))


def test_host_adapter_runs_mujoco_half_cheetah(tmp_path, monkeypatch):
    pytest.importorskip("mujoco")
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the cwd
    with envs.make_host_env("HalfCheetah-v5", 2, GAMMA, seed=0,
                            max_episode_steps=100) as adapter:
        space = adapter.single_action_space
        assert isinstance(space, gymnasium.spaces.Box) and space.shape == (6,)
        obs = adapter.reset()
        assert obs.shape == (2, 17) and obs.dtype == np.float32  # float64 in MuJoCo
        ends = []
        all_actions = np.random.default_rng(0).uniform(-1, 1, (250, 2, 6)).astype(np.float32)
        for t, actions in enumerate(all_actions):  # float32 [N, A]
            if t == 0:
                actions = jnp.asarray(actions)  # JAX arrays work as well
            step = adapter.step(actions)
            assert step.transition.a_tm1.dtype == np.float32
            assert step.transition.a_tm1.shape == (2, 6)
            assert np.all(np.isfinite(step.transition.obs_t))
            if step.episodes.finished.any():
                ends.append(t)
                np.testing.assert_array_equal(step.episodes.lengths, 100)
                # HalfCheetah never terminates: the time limit is a truncation, gamma stays.
                np.testing.assert_array_equal(step.transition.discount_t, np.float32(GAMMA))
                np.testing.assert_allclose(step.transition.obs_t,
                                           np.stack(step.info["final_obs"]), rtol=1e-6)
                assert not np.allclose(step.transition.obs_t, step.next_obs)
        assert ends == [99, 199]
        with pytest.raises(TypeError, match="`actions` must have a float dtype"):
            adapter.step(np.zeros((2, 6), np.int64))


# ---------------------------------------------------------------------------- missing MuJoCo


def test_mujoco_id_without_mujoco_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # `import mujoco` raises ImportError
    with pytest.raises(ImportError):
        importlib.import_module("mujoco")
    message = ("environment 'HalfCheetah-v5' needs MuJoCo: pip install 'tdkit[mujoco]' "
               "(or pip install '.[mujoco]')")
    makers = [
        lambda: gym_factory.make_gym_env("HalfCheetah-v5"),
        lambda: gym_factory.gym_spaces("HalfCheetah-v5"),
        lambda: envs.make_host_env("HalfCheetah-v5", 2, GAMMA),
        lambda: envs.make_host_env("HalfCheetah-v5", 2, GAMMA, asynchronous=True),
    ]
    for make in makers:
        with pytest.raises(gym_factory.MissingDependencyError) as error:
            make()
        assert str(error.value) == message
    # A ValueError (as the factory's other errors) and Gymnasium's DependencyNotInstalled.
    assert issubclass(gym_factory.MissingDependencyError, ValueError)
    assert issubclass(gym_factory.MissingDependencyError,
                      gymnasium.error.DependencyNotInstalled)
    with pytest.raises(gym_factory.MissingDependencyError, match="'Hopper-v4' needs MuJoCo"):
        gym_factory.make_gym_env("Hopper-v4")
    gym_factory.make_gym_env("Pendulum-v1").close()  # other ids do not need it
