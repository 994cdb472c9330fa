"""Tests for agents.host_fast: the packed state, and the block loop's two ways of acting."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.dqn import DQNConfig, dqn
from agents.host_fast import FastHostLoop, StatePacker
from agents.tabular import TabularConfig, tabular_agent

SMALL = dict(hidden_sizes=(8,), buffer_size=64, batch_size=4, learning_starts=8,
             layer_norm=False, learning_rate_decay_steps=None, train_every=5,
             epsilon_decay_steps=60)


def _comparable(state):
    return state._replace(key=jax.random.key_data(state.key))


@pytest.mark.parametrize("options", [dict(), dict(prioritized=True)])
def test_state_packer_round_trip(options):
    agent = dqn(2, DQNConfig(**{**SMALL, **options}))
    state = agent.init(jax.random.key(3), jnp.zeros(4), 2)
    state = state._replace(params=jax.tree.map(lambda x: x + 1.5, state.params))
    packer = StatePacker(state)
    groups, large = jax.jit(packer.pack)(state)
    # one flat array per dtype (float32, int32, the key's uint32), the replay's arrays apart
    assert sorted(str(g.dtype) for g in groups) == ["float32", "int32", "uint32"]
    assert all(g.ndim == 1 for g in groups)
    replay_arrays = [x for x in jax.tree.leaves(state.replay) if x.ndim >= 1]
    # 5 transition fields; prioritized: + priorities, leaf_mass, block_mass, block_min
    assert len(large) == len(replay_arrays) == (9 if options else 5)
    for x, y in zip(large, replay_arrays, strict=True):
        np.testing.assert_array_equal(x, y)
    assert len(jax.tree.leaves(state)) > 5 * len(groups) + len(large)
    back = jax.jit(packer.unpack)((groups, large))
    assert jax.tree.structure(back) == jax.tree.structure(state)
    assert back.key.dtype == state.key.dtype
    chex.assert_trees_all_equal(_comparable(back), _comparable(state))
    chex.assert_trees_all_equal_dtypes(_comparable(back), _comparable(state))
    with pytest.raises(ValueError, match="dtype"):
        packer.pack(state._replace(step=state.step.astype(jnp.float32)))


def test_state_packer_passes_large_arrays_unpacked():
    """A 300x300 layer (90k elements >= LARGE_LEAF_SIZE) is passed as it is, with its target
    copy and both Adam moments (packing would copy them on every call); the rest is packed."""
    from agents.host_fast import LARGE_LEAF_SIZE

    agent = dqn(2, DQNConfig(**{**SMALL, "hidden_sizes": (300, 300)}))
    state = agent.init(jax.random.key(3), jnp.zeros(4), 2)
    packer = StatePacker(state)
    groups, large = jax.jit(packer.pack)(state)
    big = [x for x in jax.tree.leaves(state) if x.size >= LARGE_LEAF_SIZE]
    replay_arrays = [x for x in jax.tree.leaves(state.replay) if x.ndim >= 1]
    assert [x.shape for x in big] == [(300, 300)] * 4  # params, target, Adam mu and nu
    assert len(large) == len(replay_arrays) + 4
    assert sum(g.size for g in groups) < 3 * LARGE_LEAF_SIZE
    back = jax.jit(packer.unpack)((groups, large))
    chex.assert_trees_all_equal(_comparable(back), _comparable(state))


def test_state_packer_tabular_state():
    agent = tabular_agent("sarsa", 5, 3, TabularConfig())
    state = agent.init(jax.random.key(0), jnp.int32(0), 2)
    packer = StatePacker(state)
    back = packer.unpack(packer.pack(state))
    chex.assert_trees_all_equal(_comparable(back), _comparable(state))


def _run(agent, seed, iterations, chunks=2, num_envs=2, update_every=5):
    from envs.host import make_host_env

    adapter = make_host_env("CartPole-v1", num_envs=num_envs, gamma=0.99, seed=seed)
    loop = FastHostLoop(agent, adapter, update_every=update_every)
    obs = adapter.reset(seed=seed)
    state = loop.init(jax.random.key(seed), obs[0])
    returns = []
    for _ in range(chunks):
        state, obs, stats = loop.run(state, obs, iterations)
        returns += stats.episode_returns
    adapter.close()
    return loop, state, returns


def test_block_loop_acts_the_same_with_draws_in_advance_as_with_act():
    """The epsilon-greedy path (exploration drawn per block, the network only where some
    env acts greedily) gives exactly the run of the generic path (`act` every step, at
    the exploration rate of its own step, not the block's first: with 4 envs and blocks of
    10 a lagging rate would change about 8 actions during the decay)."""
    agent = dqn(2, DQNConfig(**{**SMALL, "train_every": 10, "epsilon_decay_steps": 400}))
    generic = agent._replace(fast_path=agent.fast_path._replace(epsilon_greedy=None))
    run = dict(seed=4, iterations=40, num_envs=4, update_every=10)
    loop, planned, returns = _run(agent, **run)
    loop_generic, acted, returns_generic = _run(generic, **run)
    assert loop._jitted[1].greedy._cache_size() == 1  # the greedy path ran
    assert loop._jitted[1].act._cache_size() == 0
    assert loop_generic._jitted[1].act._cache_size() == 1
    assert int(planned.extra["updates"]) >= 6 and len(returns) >= 3
    assert returns != [] and returns == returns_generic
    chex.assert_trees_all_equal(_comparable(planned), _comparable(acted))


def test_block_loop_chunks_that_end_mid_block_continue_exactly():
    """Chunks of 7 iterations with blocks of 5: leftovers are updated one by one, and the
    run equals one with whole blocks up to the leftover's end."""
    agent = dqn(2, DQNConfig(**SMALL))
    _, state, _ = _run(agent, seed=1, iterations=7, chunks=3)
    assert int(state.step) == 2 * 21 and int(state.replay.size) == 42
    chex.assert_tree_all_finite(state.params)


def test_init_is_one_program_and_still_checks_hyperparameters():
    from envs.host import make_host_env

    agent = dqn(2, DQNConfig(**SMALL))
    adapter = make_host_env("CartPole-v1", num_envs=1, gamma=0.99, seed=0)
    loop = FastHostLoop(agent, adapter, update_every=5)
    example = jnp.zeros(4)
    state = loop.init(jax.random.key(0), example, {"learning_rate": 0.01})
    expected = agent.init(jax.random.key(0), example, 1, {"learning_rate": 0.01})
    chex.assert_trees_all_close(_comparable(state), _comparable(expected))
    assert loop._init._cache_size() == 1
    with pytest.raises(ValueError, match="`learning_rate` must be > 0"):
        loop.init(jax.random.key(0), example, {"learning_rate": -1.0})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        loop.init(jax.random.key(0), example, {"lr": 0.1})
    adapter.close()


def test_block_acting_keys_never_reuse_a_key_of_the_update_chain():
    """Acting keys are split off the agent's key after each block update; the update's own
    chain (K splits of the key, each giving the next key and a learning key) never meets
    them. (Folding the step index into the agent's key directly would: `split(key)` is
    `(fold_in(key, 0), fold_in(key, 1))`.)"""
    from envs.host import make_host_env

    K = 5
    agent = dqn(2, DQNConfig(**SMALL))
    adapter = make_host_env("CartPole-v1", num_envs=1, gamma=0.99, seed=0)
    loop = FastHostLoop(agent, adapter, update_every=K)
    state = loop.init(jax.random.key(0), jnp.zeros(4))
    jitted = loop._functions(state)
    packed, act_key, _, _ = jitted.pack(state, np.zeros((1, 4), np.float32))
    after = jitted.unpack(packed)
    data = lambda k: tuple(np.asarray(jax.random.key_data(k)).tolist())  # noqa: E731
    chain, key = set(), after.key
    for _ in range(K):  # what the next block's K updates derive from the agent's key
        key, k_learn = jax.random.split(key)
        chain |= {data(key), data(k_learn), data(jax.random.split(k_learn, 1)[0])}
    acting = {data(jax.random.fold_in(act_key, k)) for k in range(K)} | {data(act_key)}
    assert len(acting) == K + 1 and not acting & chain
    assert data(state.key) not in acting
    adapter.close()
