"""PQN / Q(lambda) on rollouts: targets by hand (a terminated and a truncated episode inside
the rollout), the learner step against a hand-written step, per-env exploration, the jitted
loop's blocks against per-iteration updates, both loops, seeds and sweeps, and CartPole."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import exploration, pqn, registry
from agents import run as run_lib
from agents.rollout_driver import Rollout
from tdkit import policies, values
from tdkit.types import Transition
from tests.agents.loops import check_both_loops

LR = 0.05
TINY = dict(hidden_sizes=(8,), layer_norm=False, optimizer="sgd", max_grad_norm=None,
            learning_rate_decay_steps=None, num_epochs=2, num_minibatches=2)


def test_rollout_targets_by_hand_cut_at_termination_and_truncation():
    # t=1 terminates (discount 0), t=2 is truncated (discount kept, episode ends), t=3 is
    # the rollout's end (bootstraps from q_t[3]).
    r = jnp.array([1.0, 2.0, 3.0, 4.0])
    d = jnp.array([0.9, 0.0, 0.9, 0.9])
    lasts = jnp.array([False, True, True, False])
    q_t = jnp.array([[10.0, 0.0], [20.0, 0.0], [30.0, 0.0], [0.0, 40.0]])
    a_next = jnp.array([1, 0, 0, 0])
    peng = pqn.rollout_targets(q_t, a_next, r, d, lasts, 0.5, "peng")
    # G3 = 4 + .9*40 = 40; G2 = 3 + .9*30 = 30 (truncated: bootstraps, no trace);
    # G1 = 2 (terminated); G0 = 1 + .9*(.5*10 + .5*G1) = 6.4
    np.testing.assert_allclose(peng, [6.4, 2.0, 30.0, 40.0], rtol=1e-6)
    # Watkins: the action taken from obs_t[0] (a_next[0] = 1) is not greedy (q_t[0] argmax
    # is 0): the return is cut there, G0 = 1 + .9*10 = 10.
    watkins = pqn.rollout_targets(q_t, a_next, r, d, lasts, 0.5, "watkins")
    np.testing.assert_allclose(watkins, [10.0, 2.0, 30.0, 40.0], rtol=1e-6)
    # lambda = 1 without episode ends: the Monte Carlo return bootstrapped at the end
    mc = pqn.rollout_targets(q_t, a_next, r, jnp.full(4, 0.5), jnp.zeros(4, bool), 1.0)
    np.testing.assert_allclose(mc, [1 + .5 * (2 + .5 * (3 + .5 * (4 + .5 * 40)))
                                    ] + list(mc[1:]), rtol=1e-6)


def _plain_loop_targets(q_t, a_tm1, r, d, lasts, lam, trace):
    """Targets of one env by an explicit backward loop (numpy)."""
    length = len(r)
    g = np.zeros(length)
    for t in reversed(range(length)):
        v = q_t[t].max()
        if t == length - 1 or lasts[t]:
            g[t] = r[t] + d[t] * v
            continue
        lam_t = lam
        if trace == "watkins" and q_t[t][a_tm1[t + 1]] < v:
            lam_t = 0.0
        g[t] = r[t] + d[t] * ((1 - lam_t) * v + lam_t * g[t + 1])
    return g


def _rollout(length=4, num_envs=2, seed=0):
    rng = np.random.default_rng(seed)
    lasts = np.zeros((length, num_envs), bool)
    lasts[1, 0] = lasts[2, 1] = True
    discount = np.full((length, num_envs), 0.99, np.float32)
    discount[1, 0] = 0.0  # env 0 terminates at t=1; env 1 is truncated at t=2
    transitions = Transition(
        obs_tm1=jnp.asarray(rng.normal(size=(length, num_envs, 3)), jnp.float32),
        a_tm1=jnp.asarray(rng.integers(0, 2, (length, num_envs)), jnp.int32),
        r_t=jnp.asarray(rng.uniform(0, 1, (length, num_envs)), jnp.float32),
        discount_t=jnp.asarray(discount),
        obs_t=jnp.asarray(rng.normal(size=(length, num_envs, 3)), jnp.float32))
    return Rollout(transitions, jnp.asarray(lasts))


@pytest.mark.parametrize("trace", ["peng", "watkins"])
def test_learner_step_equals_a_hand_written_step(trace):
    config = pqn.PQNConfig(trace=trace, **TINY)
    learner = pqn.q_lambda_learner(2, config)
    hp = {"learning_rate": jnp.float32(LR), "lambda_": jnp.float32(0.7),
          "reward_scale": jnp.float32(0.5)}
    state = learner.init(jax.random.key(0), jnp.zeros(3), hp)
    rollout = _rollout()
    key = jax.random.key(3)
    new_state, info = jax.jit(learner.step)(state, rollout, None, hp, key)

    # The reference: targets by a plain loop with the starting parameters, then epochs of
    # shuffled minibatches (the learner's shuffling keys) of plain SGD on 0.5 * mean sq err.
    apply = values.mlp((8,), 2).apply
    tr = jax.tree.map(np.asarray, rollout.transitions)
    q_t = np.asarray(jax.vmap(jax.vmap(apply, (None, 0)), (None, 0))(state.params, tr.obs_t))
    targets = np.stack([_plain_loop_targets(q_t[:, n], tr.a_tm1[:, n], 0.5 * tr.r_t[:, n],
                                            tr.discount_t[:, n], np.asarray(rollout.lasts)[:, n],
                                            0.7, trace) for n in range(2)], axis=1)
    obs, actions, targets = tr.obs_tm1.reshape(8, 3), tr.a_tm1.reshape(8), targets.reshape(8)
    params, losses = state.params, []
    for epoch_key in jax.random.split(key, 2):
        order = np.asarray(jax.random.permutation(epoch_key, 8))
        for m in range(2):
            idx = order[4 * m:4 * m + 4]

            def loss(p, idx=idx):
                q = jax.vmap(apply, (None, 0))(p, obs[idx])
                return 0.5 * jnp.mean((targets[idx] - q[jnp.arange(4), actions[idx]]) ** 2)

            value, grad = jax.value_and_grad(loss)(params)
            params = jax.tree.map(lambda p, g: p - LR * g, params, grad)
            losses.append(value)
    chex.assert_trees_all_close(new_state.params, params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info["loss"], np.mean(losses), rtol=1e-5)
    assert int(new_state.step) == 1


def test_minibatches_must_divide_the_rollout():
    learner = pqn.q_lambda_learner(2, pqn.PQNConfig(**{**TINY, "num_minibatches": 3}))
    hp = {"learning_rate": 0.1, "lambda_": 0.5, "reward_scale": 1.0}
    state = learner.init(jax.random.key(0), jnp.zeros(3), hp)
    with pytest.raises(ValueError, match=r"`num_minibatches` \(3\) must divide"):
        learner.step(state, _rollout(), None, hp, jax.random.key(0))
    with pytest.raises(ValueError, match="`trace` must be one of"):
        pqn.pqn(2, pqn.PQNConfig(trace="tree"))
    with pytest.raises(ValueError, match="`lambda_` must be in"):
        pqn.pqn(2).init(jax.random.key(0), jnp.zeros(3), 2, {"lambda_": 1.5})


def test_per_env_epsilon_follows_apex_rates():
    acting = exploration.EpsilonGreedy(lambda p, o: o, 2, 100, per_env=True)
    np.testing.assert_allclose(acting.env_epsilons(jnp.float32(0.5), 3),
                               [0.5, 0.5 ** 4.5, 0.5 ** 8], rtol=1e-6)
    # one epsilon per observation: 0 acts greedily, 1 uniformly
    q = jnp.tile(jnp.array([[0.0, 1.0]]), (2, 1))
    acts = np.stack([np.asarray(policies.batched_epsilon_greedy(
        jax.random.key(i), q, jnp.array([0.0, 1.0]))) for i in range(200)])
    assert (acts[:, 0] == 1).all() and 0.3 < acts[:, 1].mean() < 0.7
    with pytest.raises(AssertionError, match="`epsilon` must be a scalar or have shape"):
        policies.batched_epsilon_greedy(jax.random.key(0), q, jnp.zeros(3))
    agent = pqn.pqn(2, pqn.PQNConfig(per_env_epsilon=True, **TINY))
    state = agent.init(jax.random.key(0), jnp.zeros(3), 4)
    assert agent.act(jax.random.key(1), state, jnp.zeros((4, 3))).shape == (4,)


def test_jitted_loop_blocks_equal_per_iteration_updates_and_compile_once():
    import envs
    from agents.jax_loop import make_jax_loop

    env, params = envs.make("CartPole-v1")
    agent = pqn.pqn(2, pqn.PQNConfig(rollout_length=8, **TINY))
    assert agent.fast_path.update_every == 8
    finals = []
    for a in (agent, agent._replace(fast_path=None)):
        loop = make_jax_loop(a, env, params, num_envs=4, eval_episodes=0)
        run = jax.vmap(loop.run, in_axes=(0, None))  # two seeds: lax.cond becomes select
        state = jax.vmap(loop.init)(jax.random.split(jax.random.key(0), 2))
        state, _ = jax.jit(run, static_argnums=1)(state, 16)
        state, metrics = jax.jit(run, static_argnums=1)(state, 16)
        finals.append((state, metrics))
    chex.assert_trees_all_close(finals[0][0].agent.params, finals[1][0].agent.params,
                                rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_equal(finals[0][0].agent.extra, finals[1][0].agent.extra)
    chex.assert_trees_all_equal(finals[0][1].learned, finals[1][1].learned)
    assert np.asarray(finals[0][1].learned).sum() == 4  # 2 rollouts x 2 seeds

    counted = chex.assert_max_traces(n=1)(agent.fast_path.update_block)
    state = agent.init(jax.random.key(0), jnp.zeros(4), 2)
    block = jax.jit(counted)
    rollout = state.extra["rollout"]  # zeros [T=8, N=2]
    for _ in range(3):
        state, _ = block(state, rollout.transitions, rollout.lasts)
    assert int(state.extra["updates"]) == 3


def test_update_block_equals_updates_when_the_block_is_not_aligned():
    agent = pqn.pqn(2, pqn.PQNConfig(rollout_length=4, **TINY))
    state = agent.init(jax.random.key(0), jnp.zeros(3), 2)
    rollout = _rollout(length=6)
    lasts = rollout.lasts
    scanned, s_metrics = jax.lax.scan(lambda s, x: agent.update(s, *x), state,
                                      (rollout.transitions, lasts))
    # start mid-rollout: 2 updates, then a block of 4 that completes the rollout at its
    # second position
    first, _ = jax.lax.scan(lambda s, x: agent.update(s, *x), state,
                            jax.tree.map(lambda x: x[:2], (rollout.transitions, lasts)))
    blocked, b_metrics = agent.fast_path.update_block(
        first, jax.tree.map(lambda x: x[2:], rollout.transitions), lasts[2:])
    chex.assert_trees_all_close(blocked.params, scanned.params, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_equal(blocked.extra, scanned.extra)
    np.testing.assert_array_equal(b_metrics["learned"], s_metrics["learned"][2:])
    np.testing.assert_allclose(b_metrics["loss"], s_metrics["loss"][2:], rtol=1e-6)


def test_pqn_runs_in_both_loops_with_seeds_and_sweeps(tmp_path):
    tiny = {"hidden_sizes": [8], "rollout_length": 8, "num_minibatches": 4}
    assert "pqn" in registry.AGENTS
    check_both_loops("pqn", "CartPole-v1", tiny, tmp_path, total_steps=256, chunk_steps=128,
                     sweep={"lambda_": [0.5, 0.9]}, jax_envs=4)

@pytest.mark.slow
def test_pqn_solves_cartpole_on_gymnasium_for_two_seeds(tmp_path):
    """Defaults (purejaxql's CartPole settings), two seeds in one program, stopped once both
    greedy evaluations on the JAX twin reach 475; then 100 Gymnasium episodes each."""
    summary = run_lib.train(run_lib.RunConfig(
        agent="pqn", env="CartPole-v1", seeds=2, stop_at_return=475.0, eval_episodes=100,
        total_steps=500_000, num_envs=32, chunk_steps=20_480, out=str(tmp_path / "pqn")),
        progress=False)
    returns = [m["mean_return"] for m in summary["evaluation"]["members"]]
    assert summary["evaluation"]["env_id"] == "CartPole-v1"
    assert all(r >= 475.0 for r in returns), returns


def test_a_frozen_target_gives_the_targets_when_target_period_is_set():
    """With the driver's `target_period`, the Q(lambda) targets bootstrap from the frozen
    target parameters (a target network zeroed by hand gives targets r_t * scale only where
    the lambda-return does not reach another reward)."""
    config = pqn.PQNConfig(target_period=3, **{**TINY, "num_epochs": 1, "num_minibatches": 1})
    learner = pqn.q_lambda_learner(2, config)
    hp = {"learning_rate": jnp.float32(LR), "lambda_": jnp.float32(0.0),
          "reward_scale": jnp.float32(1.0)}
    state = learner.init(jax.random.key(0), jnp.zeros(3), hp)
    rollout = _rollout()
    zero_target = jax.tree.map(jnp.zeros_like, state.params)
    frozen = state._replace(target_params=zero_target)
    new_state, info = learner.step(frozen, rollout, None, hp, jax.random.key(1))
    # lambda = 0 and a zero target network: every target is the reward itself
    apply = values.mlp((8,), 2).apply
    tr = rollout.transitions
    obs, actions, r = tr.obs_tm1.reshape(8, 3), tr.a_tm1.reshape(8), tr.r_t.reshape(8)

    def loss(p):
        q = jax.vmap(apply, (None, 0))(p, obs)
        return 0.5 * jnp.mean((r - q[jnp.arange(8), actions]) ** 2)

    np.testing.assert_allclose(info["loss"], loss(state.params), rtol=1e-5)
    # the driver copies the online parameters into the target every 3 learner steps
    agent = pqn.pqn(2, pqn.PQNConfig(rollout_length=2, target_period=3, **TINY))
    s = agent.init(jax.random.key(0), jnp.zeros(3), 2)
    one = jax.tree.map(lambda x: x[:2], _rollout())
    for i in range(3):
        s, _ = agent.fast_path.update_block(s, one.transitions, one.lasts)
        same = jax.tree.leaves(jax.tree.map(jnp.array_equal, s.params, s.target_params))
        assert all(same) == (i == 2), i
