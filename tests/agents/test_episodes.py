"""The episode-counted loop on a deterministic corridor whose episodes are known by hand."""

from typing import NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents import tabular
from agents.base import Agent, AgentState
from agents.episodes import run_episodes
from envs import base as env_base

GOAL = 6


class CorridorParams(NamedTuple):
    max_steps: int = env_base.NO_TIME_LIMIT


def corridor(**params) -> env_base.Environment:
    """Position 0..6 from 0; action k moves k cells right; reward = the new position; the
    episode terminates on reaching 6. Stride 1: 6 steps, return 1 + ... + 6 = 21; stride 2:
    3 steps, 2 + 4 + 6 = 12; stride 3: 2 steps, 3 + 6 = 9."""
    def reset(key, params):
        del key, params
        return jnp.int32(0), jnp.int32(0)

    def step(key, pos, action, params):
        del key, params
        pos = jnp.minimum(pos + action, GOAL).astype(jnp.int32)
        return pos, pos, pos.astype(jnp.float32), pos == GOAL, {}

    return env_base.make_environment(
        "Corridor-v0", env_base.Core(reset, step, False, False), CorridorParams(**params),
        gymnasium.spaces.Discrete(GOAL + 1), gymnasium.spaces.Discrete(4))


def stride_agent() -> Agent:
    """Always moves `stride` cells (a hyperparameter); `update` counts what it is given."""
    defaults = {"gamma": 1.0, "stride": 1.0}

    def init(key, example_obs, num_envs, hparams=None):
        del example_obs
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in {**defaults, **(hparams or {})}.items()}
        counts = {"updates": jnp.int32(0), "lasts": jnp.int32(0), "discount_sum": 0.0,
                  "final_obs_at_last": jnp.int32(0), "reward_sum": 0.0}
        return AgentState({}, {}, (), (), jnp.int32(0), key, hp, counts)

    def act(key, state, obs, evaluation=False):
        del key, evaluation
        return jnp.full(obs.shape, state.hparams["stride"], jnp.int32)

    def update(state, transition, last):
        c = state.extra
        counts = {"updates": c["updates"] + 1, "lasts": c["lasts"] + last.sum(),
                  "discount_sum": c["discount_sum"] + transition.discount_t.sum(),
                  "final_obs_at_last": c["final_obs_at_last"]
                  + jnp.where(last, transition.obs_t, 0).sum(),
                  "reward_sum": c["reward_sum"] + transition.r_t.sum()}
        state = state._replace(step=state.step + last.shape[0], extra=counts)
        return state, {"loss": jnp.float32(0.0), "learned": jnp.bool_(False)}

    return Agent(init, act, update, "stride", defaults)


KEYS = jax.random.split(jax.random.key(0), 3)


def test_every_run_records_its_episodes_and_the_loop_waits_for_the_slowest():
    env = corridor()
    state, stats = jax.jit(lambda k: run_episodes(
        stride_agent(), env, env.default_params, k, 4,
        {"stride": jnp.array([1.0, 2.0, 3.0])}))(KEYS)
    np.testing.assert_array_equal(stats.returns, [[21.0] * 4, [12.0] * 4, [9.0] * 4])
    np.testing.assert_array_equal(stats.lengths, [[6] * 4, [3] * 4, [2] * 4])
    np.testing.assert_array_equal(stats.episodes, [4, 4, 4])
    np.testing.assert_array_equal(stats.total_steps, [24, 12, 8])
    # The slowest run needs 24 steps; the others go on learning until then (8 and 12 episodes).
    counts = state.agent.extra
    np.testing.assert_array_equal(state.agent.step, [24, 24, 24])
    np.testing.assert_array_equal(counts["updates"], [24, 24, 24])
    np.testing.assert_array_equal(counts["lasts"], [4, 8, 12])
    # Terminal transitions: discount 0 and the TRUE final observation (6, not the reset 0).
    np.testing.assert_array_equal(counts["discount_sum"], [20.0, 16.0, 12.0])
    np.testing.assert_array_equal(counts["final_obs_at_last"], [24, 48, 72])
    np.testing.assert_array_equal(counts["reward_sum"], [84.0, 96.0, 108.0])


def test_a_time_limit_ends_episodes_without_zeroing_the_discount():
    env = corridor(max_steps=2)  # stride 1 is truncated after positions 1, 2
    state, stats = run_episodes(stride_agent(), env, env.default_params, KEYS[:2], 3,
                                {"gamma": 0.5})
    np.testing.assert_array_equal(stats.returns, [[3.0] * 3] * 2)
    np.testing.assert_array_equal(stats.lengths, [[2] * 3] * 2)
    np.testing.assert_array_equal(stats.total_steps, [6, 6])
    np.testing.assert_array_equal(state.agent.extra["lasts"], [3, 3])
    np.testing.assert_allclose(state.agent.extra["discount_sum"], [3.0, 3.0])  # 6 x gamma
    np.testing.assert_array_equal(state.agent.extra["final_obs_at_last"], [6, 6])  # 3 x 2


def test_max_steps_stops_the_loop_and_leaves_unfinished_episodes_empty():
    env = corridor()
    _, stats = run_episodes(stride_agent(), env, env.default_params, KEYS, 2,
                            {"stride": jnp.array([1.0, 1.0, 3.0])}, max_steps=5)
    np.testing.assert_array_equal(stats.episodes, [0, 0, 2])
    np.testing.assert_array_equal(stats.lengths, [[0, 0], [0, 0], [2, 2]])
    np.testing.assert_array_equal(stats.returns, [[0.0, 0.0], [0.0, 0.0], [9.0, 9.0]])
    np.testing.assert_array_equal(stats.total_steps, [5, 5, 4])


def test_tabular_q_learning_on_the_cliff():
    env, params = envs.make("CliffWalking-v0")
    agent = tabular.tabular_agent("q_learning", 48, 4)
    _, stats = jax.jit(lambda k: run_episodes(agent, env, params, k, 20, {"alpha": 0.5}))(
        KEYS)
    lengths, returns = np.asarray(stats.lengths), np.asarray(stats.returns)
    assert lengths.shape == (3, 20) and np.all(lengths >= 13)
    assert np.all(returns <= -13.0)  # the optimal return
    np.testing.assert_array_equal(stats.total_steps, lengths.sum(axis=1))


def test_bad_arguments():
    env = corridor()
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="num_episodes"):
            run_episodes(stride_agent(), env, env.default_params, KEYS, bad)
