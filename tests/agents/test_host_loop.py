"""Tests for agents.host_loop: the reference loop, and the fast path computing the same run."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.dqn import DQNConfig, dqn
from agents.host_fast import FastHostLoop
from agents.host_loop import HostLoop
from agents.tabular import TabularConfig, tabular_agent

SMALL = dict(hidden_sizes=(8,), buffer_size=64, batch_size=4, learning_starts=8,
             layer_norm=False, learning_rate_decay_steps=None, epsilon_decay_steps=60)


def _comparable(state):
    return state._replace(key=jax.random.key_data(state.key))


def _run(loop_cls, agent, env_id, seed, iterations, chunks, num_envs, **kwargs):
    from envs.host import make_host_env

    adapter = make_host_env(env_id, num_envs=num_envs, gamma=0.99, seed=seed)
    loop = loop_cls(agent, adapter, **kwargs)
    obs = adapter.reset(seed=seed)
    state = loop.init(jax.random.key(seed), obs[0])
    returns, losses, steps = [], [], 0
    for _ in range(chunks):
        state, obs, stats = loop.run(state, obs, iterations)
        returns += stats.episode_returns
        losses += stats.losses.tolist()
        steps += stats.steps
    adapter.close()
    return loop, state, returns, losses, steps


@pytest.mark.parametrize("case", ["dqn", "sarsa"])
def test_reference_loop_equals_the_fast_path_with_one_update_per_dispatch(case):
    """The readable loop (act, step, update) and the fast path's K = 1 loop (packed state,
    update-then-act in one call) give the same run, key for key, for an agent with a fast
    path (DQN) and one without (tabular Sarsa)."""
    if case == "dqn":
        agent, env_id = dqn(2, DQNConfig(**SMALL)), "CartPole-v1"
    else:
        agent, env_id = tabular_agent("sarsa", 500, 6, TabularConfig()), "Taxi-v4"
    run = dict(env_id=env_id, seed=3, iterations=60, chunks=1, num_envs=2)
    loop, reference, returns, losses, steps = _run(HostLoop, agent, **run)
    _, fast, fast_returns, fast_losses, fast_steps = _run(FastHostLoop, agent,
                                                         update_every=1, **run)
    assert steps == fast_steps == 2 * 30 * 2
    assert returns == fast_returns and losses == fast_losses
    if case == "dqn":
        assert len(losses) > 0 and len(returns) > 0
    # ... the fast path has split off the key of the (discarded) next action already
    reference = reference._replace(key=jax.random.split(reference.key)[0])
    chex.assert_trees_all_close(_comparable(reference), _comparable(fast), rtol=1e-6,
                                atol=1e-6)
    assert loop.act._cache_size() == 1 and loop.update._cache_size() == 1  # compiled once


def test_reference_loop_stops_when_asked():
    agent = dqn(2, DQNConfig(**SMALL))
    calls = []

    from envs.host import make_host_env

    adapter = make_host_env("CartPole-v1", num_envs=3, gamma=0.99, seed=0)
    loop = HostLoop(agent, adapter)
    obs = adapter.reset(seed=0)
    state = loop.init(jax.random.key(0), obs[0])
    state, obs, stats = loop.run(state, obs, 50, should_stop=lambda: len(calls.append(0) or
                                                                          calls) >= 4)
    adapter.close()
    assert stats.steps == 4 * 3 and int(state.step) == 12
    assert np.isfinite(np.asarray(jax.tree.leaves(state.params)[0])).all()


def test_reference_loop_rejects_next_step_autoreset():
    from gymnasium.vector import AutoresetMode

    class Adapter:
        autoreset_mode = AutoresetMode.NEXT_STEP
        num_envs = 1

    with pytest.raises(ValueError, match="SAME_STEP"):
        HostLoop(dqn(2, DQNConfig(**SMALL)), Adapter())
    assert jnp.zeros(()).shape == ()
