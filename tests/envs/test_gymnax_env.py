"""gymnax environments through `envs.make("gymnax:<id>")`, against gymnax's own functions.

The oracle is gymnax itself: with the same keys, tdkit's `Core` must equal gymnax's
`step_env`, and tdkit's automatically resetting `step` must equal gymnax's own `step`
(which applies gymnax's time limit), including the split of episode ends into `terminated`
and `truncated` and the final observation.
"""

import builtins
import math
import subprocess
import sys

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
import tdkit
from agents.base import Agent, AgentState, merge_hparams
from agents.jax_loop import make_jax_loop


def _gymnax():
    return pytest.importorskip("gymnax")


def _balancing_action(obs):
    """A hand-made CartPole controller that keeps the pole up for 500 steps and more."""
    x, x_dot, theta, theta_dot = obs
    return (theta + 0.1 * theta_dot + 0.01 * x + 0.1 * x_dot > 0).astype(jnp.int32)


def _compare_with_gymnax(env, params, gymnax_env, gymnax_params, policy, num_steps, seed=0):
    """Runs tdkit's `env.step` and gymnax's `step` side by side with the same keys.

    Returns per step (as NumPy): tdkit outputs, gymnax outputs, and the `Core.step` /
    `step_env` outputs computed from the same state with the same step key.
    """

    def body(carry, key):
        obs, state, g_obs, g_state = carry
        action = policy(key, obs)
        key_step, _ = jax.random.split(key)  # the split both auto-resets make
        core = env.core.step(key_step, state.env_state, action, params)
        ref = gymnax_env.step_env(key_step, state.env_state, action, gymnax_params)
        obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
        g_obs, g_state, g_reward, g_terminated, g_truncated, g_info = gymnax_env.step(
            key, g_state, action, gymnax_params)
        out = dict(obs=obs, reward=reward, terminated=terminated, truncated=truncated,
                   final=info["final_observation"], time=state.time)
        gym = dict(obs=g_obs, reward=g_reward, terminated=g_terminated, truncated=g_truncated,
                   final=g_info["final_observation"])
        step_env = dict(core_obs=core[0], core_reward=core[2], core_terminated=core[3],
                        ref_obs=ref[0], ref_reward=ref[2], ref_terminated=ref[3])
        return (obs, state, g_obs, g_state), (out, gym, step_env)

    key_reset = jax.random.key(seed)
    obs, state = env.reset(key_reset, params)
    g_obs, g_state = gymnax_env.reset(key_reset, gymnax_params)
    keys = jax.random.split(jax.random.key(seed + 1), num_steps)
    run = jax.jit(lambda c: jax.lax.scan(body, c, keys)[1])
    return jax.device_get(run((obs, state, g_obs, g_state)))


def _assert_equal_runs(out, gym, step_env):
    for name in ("obs", "reward", "terminated", "truncated", "final"):
        np.testing.assert_array_equal(out[name], gym[name], err_msg=name)
    np.testing.assert_array_equal(step_env["core_obs"], step_env["ref_obs"])
    np.testing.assert_array_equal(step_env["core_reward"], step_env["ref_reward"])
    np.testing.assert_array_equal(step_env["core_terminated"], step_env["ref_terminated"])


# ------------------------------------------------------------------------------------ (a)


def test_cartpole_equals_gymnax_and_truncates_at_500():
    gymnax = _gymnax()
    env, params = envs.make("gymnax:CartPole-v1")
    gymnax_env, gymnax_params = gymnax.make("CartPole-v1")
    assert env.name == "gymnax:CartPole-v1" and params.max_steps == 500
    out, gym, step_env = _compare_with_gymnax(
        env, params, gymnax_env, gymnax_params, lambda key, obs: _balancing_action(obs), 1100)
    _assert_equal_runs(out, gym, step_env)
    # The controller never fails: both episodes end by the time limit, as truncation.
    assert not out["terminated"].any()
    np.testing.assert_array_equal(np.flatnonzero(out["truncated"]), [499, 999])
    for t in (499, 999):
        final = out["final"][t]
        # The true last observation, not the reset one that `obs` already holds.
        assert np.abs(final).max() > 0.05 and np.abs(out["obs"][t]).max() <= 0.05
        assert not np.array_equal(final, out["obs"][t])
        assert out["time"][t] == 0
    assert out["time"][498] == 499


def test_cartpole_terminations_are_terminated_not_truncated():
    gymnax = _gymnax()
    env, params = envs.make("gymnax:CartPole-v1")
    gymnax_env, gymnax_params = gymnax.make("CartPole-v1")

    def random_action(key, obs):
        return jax.random.randint(jax.random.fold_in(key, 7), (), 0, 2)

    out, gym, step_env = _compare_with_gymnax(
        env, params, gymnax_env, gymnax_params, random_action, 1000)
    _assert_equal_runs(out, gym, step_env)
    assert out["terminated"].sum() > 20 and not out["truncated"].any()
    ends = np.flatnonzero(out["terminated"])
    # At a termination the final observation is outside the thresholds (|x| > 2.4 or
    # |theta| > 12 degrees); the next episode starts near zero.
    final = out["final"][ends]
    assert ((np.abs(final[:, 0]) > 2.4) | (np.abs(final[:, 2]) > 12 * 2 * math.pi / 360)).all()
    assert (np.abs(out["obs"][ends]) <= 0.05).all()


def test_breakout_minatar_splits_termination_and_truncation():
    gymnax = _gymnax()
    env, params = envs.make("gymnax:Breakout-MinAtar", max_steps=10)
    gymnax_env, gymnax_params = gymnax.make("Breakout-MinAtar")
    gymnax_params = gymnax_params.replace(max_steps_in_episode=10)
    assert params.max_steps == 10 and params.env_params.max_steps_in_episode == 10
    assert envs.make("gymnax:Breakout-MinAtar")[1].max_steps == 1000
    assert env.observation_space == gymnasium.spaces.Box(0.0, 1.0, (10, 10, 4), np.float32)
    assert env.action_space == gymnasium.spaces.Discrete(3)

    def random_action(key, obs):
        return jax.random.randint(jax.random.fold_in(key, 7), (), 0, 3)

    out, gym, step_env = _compare_with_gymnax(
        env, params, gymnax_env, gymnax_params, random_action, 600)
    _assert_equal_runs(out, gym, step_env)
    assert out["obs"].dtype == np.float32 and out["obs"].shape == (600, 10, 10, 4)
    assert out["terminated"].sum() > 3 and out["truncated"].sum() > 3
    # Truncation exactly at step 10 of an episode, and only there; the ball is lost
    # (terminated) in the bottom row.
    step_in_episode = np.concatenate([[0], out["time"][:-1]]) + 1
    np.testing.assert_array_equal(out["truncated"], step_in_episode == 10)
    assert (out["final"][out["terminated"]][:, 9, :, 1].sum(axis=-1) == 1).all()


def _legacy_cartpole_factory():
    """gymnax's CartPole written in the gymnax 0.x style: `is_terminal` (which `step_env`
    reports as `terminated`) also ends the episode at `max_steps_in_episode`."""
    from gymnax.environments.classic_control.cartpole import CartPole

    class LegacyCartPole(CartPole):
        def is_terminal(self, state, params):
            return jnp.logical_or(self.is_terminated(state, params),
                                  state.time >= params.max_steps_in_episode)

    return LegacyCartPole()


def test_time_limit_inside_step_env_is_reported_as_truncation():
    gymnax = _gymnax()
    legacy_id = "LegacyCartPole-tdkit-test"
    if legacy_id not in gymnax.registered_envs:
        gymnax.register(legacy_id, _legacy_cartpole_factory)
    env, params = envs.make(f"gymnax:{legacy_id}")
    assert env.extras["time_limit_removed_from_step_env"]
    assert not envs.make("gymnax:CartPole-v1")[0].extras["time_limit_removed_from_step_env"]
    gymnax_env, gymnax_params = gymnax.make(legacy_id)

    def body(carry, key):
        obs, state, g_state = carry
        action = _balancing_action(obs)
        obs, state, _, terminated, truncated, info = env.step(key, state, action, params)
        g_obs, g_state, _, g_terminated, _ = gymnax_env.step_env(
            key, g_state, action, gymnax_params)
        return (obs, state, g_state), (terminated, truncated, info["final_observation"],
                                       g_terminated, g_obs)

    obs, state = env.reset(jax.random.key(0), params)
    keys = jax.random.split(jax.random.key(1), 500)
    terminated, truncated, final, g_terminated, g_obs = jax.device_get(
        jax.jit(lambda c: jax.lax.scan(body, c, keys)[1])((obs, state, state.env_state)))
    # gymnax's own step_env calls the time limit a termination ...
    np.testing.assert_array_equal(np.flatnonzero(g_terminated), [499])
    # ... tdkit reports it as truncation, with the same dynamics and final observation.
    assert not terminated.any()
    np.testing.assert_array_equal(np.flatnonzero(truncated), [499])
    np.testing.assert_allclose(final, g_obs, rtol=1e-6, atol=1e-6)


def test_params_are_a_vmappable_pytree():
    _gymnax()
    env, params = envs.make("gymnax:CartPole-v1", gravity=20.0)
    assert params.env_params.gravity == 20.0
    stacked = jax.tree.map(lambda *x: jnp.stack(x), params,
                           params._replace(env_params=params.env_params.replace(gravity=9.8)))

    def one_step(p):
        obs, state = env.reset(jax.random.key(0), p)
        return env.step(jax.random.key(1), state, 1, p)[0]

    obs = jax.jit(jax.vmap(one_step))(stacked)
    assert obs.shape == (2, 4) and obs.dtype == jnp.float32
    # Same start, same push: the first Euler step moves the positions by the old
    # velocities; the new velocities depend on gravity.
    np.testing.assert_array_equal(obs[0, ::2], obs[1, ::2])
    assert (obs[0, 1::2] != obs[1, 1::2]).all()


def test_overrides_and_constructor_arguments():
    _gymnax()
    env, params = envs.make("gymnax:Breakout-MinAtar", use_minimal_action_set=False)
    assert env.action_space == gymnasium.spaces.Discrete(6)
    env, params = envs.make("gymnax:CartPole-v1", max_steps_in_episode=200)
    assert params.max_steps == 200 and params.env_params.max_steps_in_episode == 200
    with pytest.raises(ValueError, match="unknown option.*'gravit'.*gravity"):
        envs.make("gymnax:CartPole-v1", gravit=1.0)
    with pytest.raises(ValueError, match="`max_steps` must be a positive integer"):
        envs.make("gymnax:CartPole-v1", max_steps=0)
    with pytest.raises(ValueError, match="same time limit"):
        envs.make("gymnax:CartPole-v1", max_steps=10, max_steps_in_episode=20)


def test_discrete_observations_stay_state_indices():
    _gymnax()
    env, params = envs.make("gymnax:FrozenLake-misc")
    obs, state = env.reset(jax.random.key(0), params)
    assert env.observation_space == gymnasium.spaces.Discrete(16)
    assert obs.shape == () and obs.dtype == jnp.int32
    with pytest.raises(AssertionError):  # a float action is rejected at trace time
        env.step(jax.random.key(1), state, 1.0, params)


def test_continuous_actions_are_float_vectors():
    _gymnax()
    env, params = envs.make("gymnax:Pendulum-v1")
    assert env.action_space == gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
    obs, state = env.reset(jax.random.key(0), params)
    obs, _, reward, *_ = env.step(jax.random.key(1), state, jnp.array([0.5]), params)
    assert obs.shape == (3,) and reward.dtype == jnp.float32 and params.max_steps == 200
    with pytest.raises(AssertionError):  # an integer action is rejected at trace time
        env.step(jax.random.key(1), state, jnp.array([1]), params)


# ------------------------------------------------------------------------------------ (b)


def _linear_q_agent(num_actions: int) -> Agent:
    """Q-learning with a linear function of the flattened observation; acts at random."""

    def init(key, example_obs, num_envs, hparams=None):
        del num_envs
        weights = jnp.zeros((example_obs.size, num_actions), jnp.float32)
        hp = merge_hparams({"gamma": 0.99, "learning_rate": 0.01}, hparams)
        return AgentState(weights, weights, (), (), jnp.zeros((), jnp.int32), key, hp, ())

    def q_values(weights, obs):
        return obs.reshape(-1) @ weights

    def act(key, state, obs, evaluation=False):
        if evaluation:
            return jnp.argmax(jax.vmap(q_values, (None, 0))(state.params, obs), axis=-1)
        return jax.random.randint(key, obs.shape[:1], 0, num_actions)

    def loss(weights, transition):
        td = tdkit.q_learning(q_values(weights, transition.obs_tm1), transition.a_tm1,
                              transition.r_t, transition.discount_t,
                              q_values(weights, transition.obs_t))
        return 0.5 * td**2

    def update(state, transition, last):
        del last
        value, grad = jax.value_and_grad(
            lambda w: jax.vmap(loss, (None, 0))(w, transition).mean())(state.params)
        weights = state.params - state.hparams["learning_rate"] * grad
        num_envs = transition.r_t.shape[0]
        return (state._replace(params=weights, target_params=weights,
                               step=state.step + num_envs),
                {"loss": value, "learned": jnp.bool_(True)})

    return Agent(init, act, update, "linear_q_test", {"gamma": 0.99, "learning_rate": 0.01})


def test_breakout_minatar_runs_in_the_jitted_loop_over_seeds():
    _gymnax()
    env, params = envs.make("gymnax:Breakout-MinAtar")
    num_seeds, num_envs, iterations = 2, 4, 50
    loop = make_jax_loop(_linear_q_agent(env.num_actions), env, params, num_envs,
                         eval_episodes=2, max_eval_steps=50)
    init = jax.jit(jax.vmap(loop.init))
    run = jax.jit(jax.vmap(chex.assert_max_traces(lambda s: loop.run(s, iterations), n=1)))
    state = init(jax.random.split(jax.random.key(0), num_seeds))
    assert state.obs.shape == (num_seeds, num_envs, 10, 10, 4)
    assert state.obs.dtype == jnp.float32
    finished = 0
    for _ in range(3):
        state, metrics = run(state)
        finished += int(metrics.finished.sum())
        assert metrics.loss.shape == (num_seeds, iterations)
        chex.assert_tree_all_finite((metrics.loss, state.agent.params, state.last_score))
    assert finished > 0
    np.testing.assert_array_equal(np.asarray(metrics.step[:, -1]),
                                  3 * iterations * num_envs)
    # The seeds ran different episodes.
    assert not np.array_equal(np.asarray(state.obs[0]), np.asarray(state.obs[1]))


# ------------------------------------------------------------------------------------ (c)


def test_unknown_gymnax_id_is_one_line_with_suggestion():
    _gymnax()
    with pytest.raises(ValueError) as info:
        envs.make("gymnax:Breakout-MinAtr")
    message = str(info.value)
    assert "\n" not in message
    assert "unknown gymnax environment 'Breakout-MinAtr'" in message
    assert "Did you mean 'gymnax:Breakout-MinAtar'" in message


# ------------------------------------------------------------------------------------ (d)


@pytest.mark.parametrize("missing,reason", [("gymnax", ""), ("six", " (ModuleNotFoundError")])
def test_without_gymnax_a_one_line_error_names_the_extra(monkeypatch, missing, reason):
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "gymnax":
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(ImportError) as info:
        envs.make("gymnax:Breakout-MinAtar")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "envs.make('gymnax:Breakout-MinAtar') needs gymnax: pip install '.[gymnax]'" + reason)


def test_gymnax_is_imported_only_for_a_gymnax_id():
    code = ("import sys, envs\n"
            "envs.make('CartPole-v1')\n"
            "print('gymnax' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------ (e)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Breakout-MinAtar"])
def test_step_compiles_once_per_shape(env_id):
    _gymnax()
    env, params = envs.make(f"gymnax:{env_id}")
    chex.clear_trace_counter()  # the counter is per code location, shared by the cases
    step = jax.jit(chex.assert_max_traces(lambda *args: env.step(*args), n=1))
    v_step = jax.jit(jax.vmap(chex.assert_max_traces(lambda *args: env.step(*args), n=1),
                              (0, 0, 0, None)))
    v_reset = jax.vmap(env.reset, (0, None))
    # A state straight from (eager) reset and the states that step returns share one type.
    _, state = env.reset(jax.random.key(0), params)
    for t in range(5):
        _, state, *_ = step(jax.random.key(t), state, jnp.int32(t % 2), params)
    _, states = v_reset(jax.random.split(jax.random.key(1), 3), params)
    for t in range(5):
        _, states, *_ = v_step(jax.random.split(jax.random.key(t), 3), states,
                               jnp.full((3,), t % 2, jnp.int32), params)
