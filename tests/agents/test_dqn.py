"""DQN: one update by hand, truncation through both loops, replay options, one compilation."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents.dqn import DQNConfig, dqn
from agents.host_fast import FastHostLoop
from agents.host_loop import HostLoop
from agents.jax_loop import make_jax_loop
from tdkit.types import Transition

SMALL = dict(hidden_sizes=(8,), buffer_size=64, batch_size=4, learning_starts=4, layer_norm=False,
             learning_rate_decay_steps=None)


def _transitions(n=4):
    obs = jnp.tile(jnp.array([[0.1, -0.2, 0.3, 0.05]]), (n, 1))
    obs_t = jnp.tile(jnp.array([[0.2, 0.1, -0.1, 0.0]]), (n, 1))
    return Transition(obs, jnp.ones((n,), jnp.int32), jnp.ones((n,)), jnp.full((n,), 0.9),
                      obs_t)


@pytest.mark.parametrize("double", [False, True])
def test_one_sgd_step_matches_hand_written_semi_gradient(double):
    agent = dqn(2, DQNConfig(optimizer="sgd", loss="l2", double=double, **SMALL))
    state = agent.init(jax.random.key(0), jnp.zeros(4), 4, {"learning_rate": 0.1})
    # A different target network, so the Double DQN selector matters.
    target = jax.tree.map(lambda p: p * 0.5 + 0.1, state.params)
    state = state._replace(target_params=target)
    t = _transitions()  # four identical transitions: every sampled batch is the same
    from tdkit import values

    q = values.mlp((8,), 2)

    def loss(params):
        q_tm1 = q.apply(params, t.obs_tm1[0])
        q_next = q.apply(target, t.obs_t[0])
        a = jnp.argmax(q.apply(params, t.obs_t[0])) if double else jnp.argmax(q_next)
        target_value = jax.lax.stop_gradient(1.0 + 0.9 * q_next[a])
        return 0.5 * (target_value - q_tm1[1]) ** 2

    expected = jax.tree.map(lambda p, g: p - 0.1 * g, state.params, jax.grad(loss)(state.params))
    new, metrics = agent.update(state, t, jnp.zeros((4,), bool))
    assert bool(metrics["learned"])
    np.testing.assert_allclose(metrics["loss"], loss(state.params), rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 new.params, expected)
    assert int(new.step) == 4 and int(new.replay.size) == 4


def test_no_learning_before_learning_starts():
    agent = dqn(2, DQNConfig(**{**SMALL, "learning_starts": 8}))
    state = agent.init(jax.random.key(0), jnp.zeros(4), 4)
    new, metrics = agent.update(state, _transitions(), jnp.zeros((4,), bool))
    assert not bool(metrics["learned"])
    jax.tree.map(np.testing.assert_array_equal, new.params, state.params)


@pytest.mark.parametrize("options", [
    dict(prioritized=True), dict(n_step=3), dict(per_example_max_norm=0.5),
    dict(target_update="polyak", max_grad_norm=1.0, learning_rate_decay_steps=10),
    dict(layer_norm=True, optimizer="rmsprop", gradient_steps=2),
])
def test_options_train_in_the_jitted_loop(options):
    env, params = envs.make("CartPole-v1")
    agent = dqn(2, DQNConfig(**{**SMALL, "learning_starts": 16, **options}))
    loop = make_jax_loop(agent, env, params, num_envs=4, eval_episodes=2, max_eval_steps=20)
    state = loop.init(jax.random.key(1))
    state, metrics = loop.run(state, 30)
    state, metrics = loop.run(state, 30)
    assert metrics.learned.all()
    assert np.isfinite(metrics.loss).all()
    assert loop.run._cache_size() == 1  # one compilation for every chunk
    if options.get("prioritized"):
        priorities = np.asarray(state.agent.replay.priorities[:int(state.agent.replay.size)])
        assert len(np.unique(priorities)) > 1  # updated from TD errors


def test_bad_settings():
    with pytest.raises(ValueError, match="`batch_size` .* must not exceed `buffer_size`"):
        dqn(2, DQNConfig(buffer_size=8, batch_size=16, learning_starts=16))
    with pytest.raises(ValueError, match="`target_update` must be"):
        dqn(2, DQNConfig(target_update="sometimes"))
    with pytest.raises(ValueError, match="not an optax optimizer"):
        dqn(2, DQNConfig(optimizer="magic"))
    agent = dqn(2, DQNConfig(**SMALL))
    with pytest.raises(ValueError, match="`learning_rate` must be > 0"):
        agent.init(jax.random.key(0), jnp.zeros(4), 4, {"learning_rate": -1.0})


def test_jitted_loop_bootstraps_at_cartpole_time_limit():
    """The transition at the 500-step time limit keeps discount gamma and the true final
    observation (not the reset observation)."""
    env, params = envs.make("CartPole-v1")
    assert int(params.max_steps) == 500
    agent = dqn(2, DQNConfig(**{**SMALL, "learning_starts": 64}))
    loop = make_jax_loop(agent, env, params, num_envs=4, eval_episodes=0)
    state = loop.init(jax.random.key(2))
    env_state = state.env_state._replace(time=jnp.full((4,), 499, jnp.int32))
    before = np.asarray(state.obs)
    state, metrics = loop.run(state._replace(env_state=env_state), 1)
    stored = jax.tree.map(lambda x: np.asarray(x[:4]), state.agent.replay.storage)
    assert int(metrics.finished[0]) == 4  # every env was truncated
    np.testing.assert_allclose(stored.discount_t, 0.99, rtol=1e-6)  # bootstraps
    np.testing.assert_array_equal(stored.obs_tm1, before)
    # obs_t is one physics step from obs_tm1, while the loop already acts on reset obs.
    assert np.all(np.abs(stored.obs_t - stored.obs_tm1).max(axis=1) < 0.5)
    assert not np.allclose(stored.obs_t, np.asarray(state.obs))


def _time_limits(vector_env):
    import gymnasium

    for sub in vector_env.envs:
        env = sub
        while not isinstance(env, gymnasium.wrappers.TimeLimit):
            env = env.env
        yield env


def test_host_loop_bootstraps_at_cartpole_time_limit():
    from envs.host import make_host_env

    adapter = make_host_env("CartPole-v1", num_envs=2, gamma=0.99, seed=0)
    agent = dqn(2, DQNConfig(**{**SMALL, "learning_starts": 64}))
    loop = HostLoop(agent, adapter)
    obs = adapter.reset(seed=0)
    state = loop.init(jax.random.key(0), obs[0])
    for limit in _time_limits(adapter.env):
        assert limit._max_episode_steps == 500
        limit._elapsed_steps = 499
    state, next_obs, stats = loop.run(state, obs, 1)
    adapter.close()
    stored = jax.tree.map(lambda x: np.asarray(x[:2]), state.replay.storage)
    assert len(stats.episode_lengths) == 2  # both truncated
    np.testing.assert_allclose(stored.discount_t, 0.99, rtol=1e-6)
    np.testing.assert_array_equal(stored.obs_tm1, obs)
    assert np.all(np.abs(stored.obs_t - stored.obs_tm1).max(axis=1) < 0.5)
    assert not np.allclose(stored.obs_t, next_obs)


def test_host_loop_compiles_once():
    from envs.host import make_host_env

    adapter = make_host_env("CartPole-v1", num_envs=2, gamma=0.99, seed=0)
    agent = dqn(2, DQNConfig(**{**SMALL, "learning_starts": 8}))
    loop = HostLoop(agent, adapter)
    obs = adapter.reset(seed=0)
    state = loop.init(jax.random.key(0), obs[0])
    state, obs, stats = loop.run(state, obs, 40)
    state, obs, stats = loop.run(state, obs, 40)
    adapter.close()
    assert loop.act._cache_size() == 1 and loop.update._cache_size() == 1
    assert stats.losses.size > 0 and np.isfinite(stats.losses).all()
    chex.assert_tree_all_finite(state.params)


def _block_transitions(rng, num_updates, num_envs):
    return Transition(
        obs_tm1=jnp.asarray(rng.normal(size=(num_updates, num_envs, 4)), jnp.float32),
        a_tm1=jnp.asarray(rng.integers(0, 2, (num_updates, num_envs)), jnp.int32),
        r_t=jnp.asarray(rng.normal(size=(num_updates, num_envs)), jnp.float32),
        discount_t=jnp.asarray(rng.choice([0.0, 0.99], (num_updates, num_envs)), jnp.float32),
        obs_t=jnp.asarray(rng.normal(size=(num_updates, num_envs, 4)), jnp.float32))


@pytest.mark.parametrize("options", [dict(), dict(prioritized=True), dict(n_step=3)])
def test_update_block_equals_scanned_updates(options):
    """Blocks of any length and alignment (learning due mid-block, twice, or not at all)."""
    from agents.base import scan_updates

    config = DQNConfig(**{**SMALL, "buffer_size": 32, "learning_starts": 6, "train_every": 3,
                          "target_period": 2, **options})
    agent = dqn(2, config)
    num_envs = 2
    scanned = blocked = agent.init(jax.random.key(0), jnp.zeros(4), num_envs)
    rng = np.random.default_rng(0)
    scan_fn = jax.jit(scan_updates, static_argnums=0)
    block_fn = jax.jit(agent.fast_path.update_block)

    def comparable(state):
        return state._replace(key=jax.random.key_data(state.key))

    for num_updates in (3, 5, 3, 7, 1, 3, 10, 4):
        transitions = _block_transitions(rng, num_updates, num_envs)
        lasts = jnp.asarray(rng.random((num_updates, num_envs)) < 0.2)
        scanned, m_scan = scan_fn(agent.update, scanned, transitions, lasts)
        blocked, m_block = block_fn(blocked, transitions, lasts)
        chex.assert_trees_all_close((comparable(scanned), m_scan),
                                    (comparable(blocked), m_block), rtol=1e-6, atol=1e-6)
    # Iterations 1..36; learning every 3rd once 6 items are stored: 12 steps (11 with the
    # 3-step window, whose first 2 iterations store nothing).
    expected = 11 if config.n_step == 3 else 12
    assert int(blocked.extra["updates"]) == expected and int(blocked.step) == 2 * 36


@pytest.mark.parametrize("options", [dict(), dict(prioritized=True), dict(n_step=3)])
@pytest.mark.parametrize("num_updates", [1, 3, 7])
def test_update_and_update_block_write_the_replay_in_place(options, num_updates):
    """No copy of the replay storage in the compiled `update` / `update_block` (a block of
    one training round reads the replay, the sample, between two writes; without
    `replay_driver._written_after` XLA copied the whole storage on every call, which made
    Atari's 20k-frame replay run at a tenth of the speed)."""
    config = DQNConfig(**{**SMALL, "buffer_size": 4096, "batch_size": 8, "learning_starts": 8,
                          "train_every": 3, **options})
    agent = dqn(2, config)
    num_envs = 2
    state = agent.init(jax.random.key(0), jnp.zeros(5), num_envs)
    transitions = Transition(
        jnp.zeros((num_updates, num_envs, 5)), jnp.zeros((num_updates, num_envs), jnp.int32),
        jnp.zeros((num_updates, num_envs)), jnp.zeros((num_updates, num_envs)),
        jnp.zeros((num_updates, num_envs, 5)))
    lasts = jnp.zeros((num_updates, num_envs), bool)
    if num_updates == 1:
        fn, args = agent.update, (state, jax.tree.map(lambda x: x[0], transitions), lasts[0])
    else:
        fn, args = agent.fast_path.update_block, (state, transitions, lasts)
    hlo = jax.jit(fn, donate_argnums=0).lower(*args).compile().as_text()
    copies = [line for line in hlo.splitlines() if re.search(r"\[4096,5\]\S* copy\(", line)]
    assert copies == []


def test_epsilon_greedy_draws_are_the_draws_of_act():
    """`EpsilonGreedyActing`: entry k of `draws(key, state, K, N)` with `greedy` gives
    exactly `act(fold_in(key, k), state with step + k N, obs)`, also mid-schedule."""
    config = DQNConfig(**{**SMALL, "epsilon_decay_steps": 40})
    agent = dqn(3, config)
    num_envs, num_steps = 4, 6
    state = agent.init(jax.random.key(1), jnp.zeros(4), num_envs)
    state = state._replace(step=jnp.int32(20))  # epsilon 0.525, falling 0.095 per entry
    acting = agent.fast_path.epsilon_greedy
    obs = jax.random.normal(jax.random.key(2), (num_envs, 4))
    for seed in range(20):
        key = jax.random.key(seed)
        draws = acting.draws(key, state, num_steps, num_envs)
        assert draws.explore.shape == (num_steps, num_envs)
        assert draws.noise.shape == (num_steps, num_envs, 3)
        for k in range(num_steps):
            expected = agent.act(jax.random.fold_in(key, k),
                                 state._replace(step=state.step + k * num_envs), obs)
            greedy = acting.greedy(state.params, obs, draws.noise[k])
            np.testing.assert_array_equal(
                jnp.where(draws.explore[k], draws.random_actions[k], greedy), expected)
    explore = acting.draws(jax.random.key(0), state._replace(step=jnp.int32(10_000)), 500,
                           num_envs).explore
    assert 0.02 < float(explore.mean()) < 0.08  # epsilon_end 0.05 after the decay


def test_host_loop_blocks_of_updates():
    """update_every=K: every transition is still added (one update per step, K per dispatch),
    each jitted piece compiles once, and a leftover shorter than K is flushed."""
    from envs.host import make_host_env

    adapter = make_host_env("CartPole-v1", num_envs=2, gamma=0.99, seed=0)
    agent = dqn(2, DQNConfig(**{**SMALL, "learning_starts": 8, "train_every": 5,
                                "epsilon_decay_steps": 20}))
    loop = FastHostLoop(agent, adapter, update_every=5)
    obs = adapter.reset(seed=0)
    state = loop.init(jax.random.key(0), obs[0])
    state, obs, stats = loop.run(state, obs, 23)
    state, obs, stats = loop.run(state, obs, 23)
    adapter.close()
    added = 2 * 23 * 2  # two runs of 23 steps of 2 envs, every one into the 64-slot replay
    assert int(state.step) == added
    assert int(state.replay.size) == 64 and int(state.replay.position) == added % 64
    assert stats.steps == 23 * 2 and stats.losses.size > 0
    assert np.isfinite(stats.losses).all()
    jitted = loop._jitted[1]
    for fn in (jitted.pack, jitted.update, jitted.greedy, jitted.unpack, jitted.update_one):
        assert fn._cache_size() == 1
    with pytest.raises(ValueError, match="`update_every` must be an int >= 1"):
        FastHostLoop(agent, adapter, update_every=0)
