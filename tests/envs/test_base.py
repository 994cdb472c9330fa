"""Tests of the functional API: automatic reset, time limit, action checks, helpers."""

from typing import NamedTuple

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import base


class CounterParams(NamedTuple):
    goal: int = 3
    max_steps: int = 5


def _counter_env(reset_uses_key: bool = True, step_uses_key: bool = True):
    """obs counts up by `action` from a start of 10 * (reset key draw); terminates at `goal`."""

    def reset(key, params):
        del params
        start = jax.random.randint(key, (), 0, 2) * 0  # draws, but always 0
        return start, start

    def step(key, s, action, params):
        del key
        s = s + action
        return s, s, jnp.float32(1.0), s >= params.goal, {"double": 2 * s}

    core = base.Core(reset, step, reset_uses_key, step_uses_key)
    return base.make_environment(
        "Counter", core, CounterParams(), gymnasium.spaces.Discrete(100),
        gymnasium.spaces.Discrete(3))


def _run(env, params, actions):
    """Steps one environment through `actions` on the host, returning every output."""
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    out = []
    for t, a in enumerate(actions):
        obs, state, r, term, trunc, info = env.step(
            jax.random.fold_in(key, t), state, jnp.int32(a), params)
        out.append((int(obs), int(state.time), float(r), bool(term), bool(trunc),
                    int(info["final_observation"]), int(info["double"])))
    return out


def test_autoreset_on_termination_keeps_final_observation():
    env = _counter_env()
    out = _run(env, env.default_params, [1, 1, 1, 1])
    # obs, time, reward, terminated, truncated, final_observation, info from the core
    assert out == [
        (1, 1, 1.0, False, False, 1, 2),
        (2, 2, 1.0, False, False, 2, 4),
        (0, 0, 1.0, True, False, 3, 6),  # reached 3: reset to 0, final observation 3
        (1, 1, 1.0, False, False, 1, 2),
    ]


def test_truncation_is_reported_as_truncated_not_terminated():
    env = _counter_env()
    out = _run(env, env.default_params, [0, 0, 0, 0, 0, 1])
    assert [o[3] for o in out] == [False] * 6
    assert [o[4] for o in out] == [False, False, False, False, True, False]
    assert [o[1] for o in out] == [1, 2, 3, 4, 0, 1]


def test_truncation_and_termination_on_the_same_step_are_both_reported():
    # As Gymnasium's TimeLimit: the last allowed step may also be terminal.
    env = _counter_env()
    out = _run(env, CounterParams(goal=3, max_steps=3), [1, 1, 1])
    assert out[-1][3:5] == (True, True)
    assert out[-1][5] == 3


@pytest.mark.parametrize("reset_uses_key,step_uses_key", [(True, True), (True, False),
                                                          (False, True), (False, False)])
def test_key_use_flags_do_not_change_deterministic_results(reset_uses_key, step_uses_key):
    env = _counter_env(reset_uses_key, step_uses_key)
    assert _run(env, env.default_params, [1, 2, 1]) == [
        (1, 1, 1.0, False, False, 1, 2), (0, 0, 1.0, True, False, 3, 6),
        (1, 1, 1.0, False, False, 1, 2)]


def test_step_compiles_once():
    env, params = envs.make("CartPole-v1")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state, action, params):
        return env.step(key, state, action, params)

    _, state = env.reset(jax.random.key(0), params)
    for t in range(4):
        _, state, *_ = step(jax.random.key(t), state, jnp.int32(t % 2), params)


def test_float_or_bool_action_is_rejected_at_trace_time():
    env, params = envs.make("CartPole-v1")
    _, state = env.reset(jax.random.key(0), params)
    with pytest.raises(AssertionError, match="action"):
        env.step(jax.random.key(1), state, jnp.float32(1.0), params)
    with pytest.raises(AssertionError, match="action"):
        env.step(jax.random.key(1), state, jnp.bool_(True), params)
    with pytest.raises(AssertionError, match="action"):
        env.step(jax.random.key(1), state, jnp.array([1]), params)


def test_out_of_range_action_is_clipped():
    env, params = envs.make("CartPole-v1")
    _, state = env.reset(jax.random.key(0), params)
    key = jax.random.key(1)
    high = env.step(key, state, jnp.int32(7), params)[0]
    one = env.step(key, state, jnp.int32(1), params)[0]
    low = env.step(key, state, jnp.int32(-4), params)[0]
    zero = env.step(key, state, jnp.int32(0), params)[0]
    np.testing.assert_array_equal(high, one)
    np.testing.assert_array_equal(low, zero)
    assert not np.array_equal(one, zero)


def test_policy_values_solves_a_two_state_chain_by_hand():
    # s0 -> s1 (reward 1), s1 -> terminal s2 (reward 2); gamma 0.5: v1 = 2, v0 = 1 + 0.5 * 2.
    transition = np.zeros((3, 1, 3))
    transition[0, 0, 1] = transition[1, 0, 2] = 1.0
    model = base.TabularModel(transition, np.array([[1.0], [2.0], [0.0]]),
                              np.array([False, False, True]))
    np.testing.assert_allclose(base.policy_values(model, np.ones(1), 0.5), [2.0, 2.0, 0.0])


def test_extras_are_read_only():
    env, _ = envs.make("BoyanChain-v0")
    with pytest.raises(TypeError):
        env.extras["true_values"] = None


def test_random_rollout_summary_counts_episodes():
    env = _counter_env()
    summary = jax.jit(lambda k: base.random_rollout(
        env, k, env.default_params, num_envs=4, num_steps=6, return_trajectory=False))(
            jax.random.key(0))
    traj = jax.jit(lambda k: base.random_rollout(
        env, k, env.default_params, num_envs=4, num_steps=6))(jax.random.key(0))
    done = np.asarray(traj.terminated | traj.truncated)
    np.testing.assert_array_equal(summary.num_episodes, done.sum(axis=0))
    np.testing.assert_allclose(summary.total_reward, np.full(4, 6.0))
    np.testing.assert_allclose(summary.obs_checksum, np.asarray(traj.obs).sum(axis=0))
