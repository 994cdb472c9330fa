"""Tests of agents.linear: semi-gradient Sarsa(lambda) with tile coding.

The oracle is the book's pseudocode (S&B Section 12.7, Sarsa(lambda) with binary features)
as a plain NumPy loop over the active tiles; the tile indices come from
`tdkit.features.tile_coding` (tested in tests/tdkit/test_features.py).
"""

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents import jax_loop, linear
from tdkit import features
from tdkit.types import Transition

LOW = np.array([-1.2, -0.07], np.float32)
HIGH = np.array([0.6, 0.07], np.float32)
BOX = gymnasium.spaces.Box(LOW, HIGH, dtype=np.float32)


def oracle(steps, tile_indices, num_features, num_actions, hp, trace, num_tilings):
    """Sarsa(lambda) as in the book, one environment per trace, summed weight updates.

    `steps`: list of (obs_tm1 [N, 2], a_tm1 [N], r_t [N], discount_t [N], obs_t [N, 2],
    last [N], a_t [N]).
    """
    w = np.zeros((num_features, num_actions))
    num_envs = len(steps[0][1])
    z = np.zeros((num_envs, num_features, num_actions))
    step = hp["alpha"] / num_tilings
    for obs_tm1, a_tm1, r_t, d_t, obs_t, last, a_t in steps:
        dw = np.zeros_like(w)
        for i in range(num_envs):
            active = tile_indices(obs_tm1[i])
            q_tm1 = w[active, a_tm1[i]].sum()
            q_t = w[tile_indices(obs_t[i]), a_t[i]].sum()
            delta = r_t[i] + d_t[i] * q_t - q_tm1
            for f in active:
                if trace == "replacing":
                    z[i, f, a_tm1[i]] = 1.0
                else:
                    z[i, f, a_tm1[i]] += 1.0
            dw += step * delta * z[i]
            z[i] *= 0.0 if last[i] else d_t[i] * hp["lambda_"]
        w += dw
    return w


def random_steps(rng, num_steps, num_envs, gamma):
    steps = []
    for _ in range(num_steps):
        obs_tm1 = rng.uniform(LOW, HIGH, (num_envs, 2)).astype(np.float32)
        obs_t = rng.uniform(LOW, HIGH, (num_envs, 2)).astype(np.float32)
        terminated = rng.random(num_envs) < 0.15
        truncated = ~terminated & (rng.random(num_envs) < 0.1)
        steps.append((obs_tm1, rng.integers(0, 3, num_envs).astype(np.int32),
                      rng.normal(-1.0, 0.5, num_envs).astype(np.float32),
                      (gamma * (1.0 - terminated)).astype(np.float32), obs_t,
                      terminated | truncated))
    return steps


@pytest.mark.parametrize("trace,iht_size,num_envs", [
    ("replacing", 0, 1), ("accumulating", 0, 1), ("replacing", 4096, 2),
    ("accumulating", 4096, 2), ("none", 0, 2)])
def test_updates_match_the_books_pseudocode(trace, iht_size, num_envs):
    config = linear.LinearConfig(iht_size=iht_size, trace=trace)
    agent = linear.sarsa_lambda_agent(BOX, 3, config)
    hp = {"alpha": 0.5, "lambda_": 0.0 if trace == "none" else 0.9, "gamma": 0.95,
          "epsilon": 0.2}
    coder = features.tile_coding(8, LOW, HIGH, 8, iht_size=iht_size or None)
    state = agent.init(jax.random.key(0), jnp.zeros(2), num_envs, hp)
    chex.clear_trace_counter()
    update = jax.jit(chex.assert_max_traces(agent.update, n=1))
    steps = []
    for obs_tm1, a_tm1, r_t, d_t, obs_t, last in random_steps(
            np.random.default_rng(1), 25, num_envs, hp["gamma"]):
        transition = Transition(jnp.asarray(obs_tm1), jnp.asarray(a_tm1), jnp.asarray(r_t),
                                jnp.asarray(d_t), jnp.asarray(obs_t))
        state, metrics = update(state, transition, jnp.asarray(last))
        a_t = np.asarray(state.extra["next_action"])
        steps.append((obs_tm1, a_tm1, r_t, d_t, obs_t, last, a_t))
        assert bool(metrics["learned"]) and np.isfinite(float(metrics["loss"]))
    expected = oracle(steps, lambda o: np.asarray(coder.indices(jnp.asarray(o))),
                      coder.num_features, 3, hp, "replacing" if trace == "none" else trace, 8)
    np.testing.assert_allclose(state.params["w"], expected, rtol=1e-4, atol=1e-5)
    assert int(state.step) == 25 * num_envs


def test_traces_are_cleared_after_the_last_step_and_kept_otherwise():
    agent = linear.sarsa_lambda_agent(BOX, 3, linear.LinearConfig(iht_size=0))
    state = agent.init(jax.random.key(0), jnp.zeros(2), 2, {"lambda_": 0.9})
    obs = jnp.asarray([[-0.5, 0.01], [0.1, -0.02]], jnp.float32)
    transition = Transition(obs, jnp.asarray([0, 2]), jnp.asarray([-1.0, -1.0]),
                            jnp.asarray([1.0, 1.0]), obs)  # truncated: discount stays 1
    state, _ = agent.update(state, transition, jnp.asarray([False, True]))
    z = np.asarray(state.extra["trace"])
    assert np.count_nonzero(z[0]) == 8 and np.allclose(z[0][z[0] != 0], 0.9)
    assert not z[1].any()
    np.testing.assert_array_equal(state.extra["has_next"], [True, False])


def test_act_takes_the_sampled_next_action_and_evaluation_is_greedy():
    agent = linear.sarsa_lambda_agent(BOX, 3, linear.LinearConfig(iht_size=0))
    state = agent.init(jax.random.key(0), jnp.zeros(2), 2, {"epsilon": 1.0})
    obs = jnp.asarray([[-0.5, 0.0], [0.0, 0.0]], jnp.float32)
    extra = dict(state.extra, next_action=jnp.asarray([2, 1]),
                 has_next=jnp.asarray([True, False]))
    w = state.params["w"].at[:, 1].set(1.0)  # action 1 is greedy everywhere
    state = state._replace(params={"w": w}, extra=extra)
    picks = np.stack([agent.act(jax.random.key(i), state, obs) for i in range(200)])
    assert np.all(picks[:, 0] == 2)  # the action sampled in update
    assert set(np.unique(picks[:, 1])) == {0, 1, 2}  # epsilon = 1: uniform
    greedy = np.stack([agent.act(jax.random.key(i), state, obs, evaluation=True)
                       for i in range(20)])
    assert np.all(greedy == 1)


def test_vmap_over_hyperparameters_compiles_once():
    agent = linear.sarsa_lambda_agent(BOX, 3, linear.LinearConfig(iht_size=0))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def init_all(keys, alphas):
        return jax.vmap(lambda k, a: agent.init(k, jnp.zeros(2), 4, {"alpha": a}))(keys, alphas)

    states = init_all(jax.random.split(jax.random.key(0), 3), jnp.asarray([0.1, 0.2, 0.5]))
    np.testing.assert_allclose(states.hparams["alpha"], [0.1, 0.2, 0.5])
    assert states.params["w"].shape == (3, 648, 3)
    assert states.extra["trace"].shape == (3, 4, 648, 3)
    states = init_all(jax.random.split(jax.random.key(1), 3), jnp.asarray([0.3, 0.3, 0.3]))


@pytest.mark.parametrize("space,match", [
    (gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32), "bounded"),
    (gymnasium.spaces.Discrete(5), "1-D Box"),
    (gymnasium.spaces.Box(0.0, 1.0, (2, 2), np.float32), "1-D Box"),
])
def test_rejects_observation_spaces_it_cannot_tile(space, match):
    with pytest.raises(ValueError, match=match):
        linear.sarsa_lambda_agent(space, 3)


@pytest.mark.parametrize("config,match", [
    (linear.LinearConfig(trace="dutch"), "trace"),
    (linear.LinearConfig(num_tilings=0), "num_tilings"),
    (linear.LinearConfig(iht_size=-1), "iht_size"),
    (linear.LinearConfig(tiles_per_dim=0), "tiles_per_dim"),
])
def test_rejects_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        linear.sarsa_lambda_agent(BOX, 3, config)


@pytest.mark.parametrize("hparams,match", [
    ({"alpha": 0.0}, "alpha"), ({"epsilon": 1.5}, "epsilon"), ({"lambda_": -0.1}, "lambda_"),
    ({"gama": 0.9}, "unknown")])
def test_rejects_bad_hparams(hparams, match):
    agent = linear.sarsa_lambda_agent(BOX, 3)
    with pytest.raises(ValueError, match=match):
        agent.init(jax.random.key(0), jnp.zeros(2), 1, hparams)


def test_config_fields_document_themselves():
    import dataclasses

    for field in dataclasses.fields(linear.LinearConfig):
        assert field.metadata["help"]
    assert set(linear.HPARAM_HELP) == set(linear.DEFAULT_HPARAMS)
    assert linear.DEFAULT_HPARAMS["epsilon"] == 0.0


@pytest.mark.slow
def test_mountain_car_greedy_episodes_within_150_steps():
    """Issue 5 target: trained on the JAX twin of MountainCar-v0 (200-step limit), the greedy
    policy reaches the goal in at most 150 steps on average (seed 0; 80k steps, 8 envs)."""
    env, params = envs.make("MountainCar-v0")
    agent = linear.sarsa_lambda_agent(env.observation_space, env.num_actions)
    loop = jax_loop.make_jax_loop(agent, env, params, num_envs=8, eval_episodes=0)
    state = loop.init(jax.random.key(0), {"alpha": 0.5, "lambda_": 0.9})
    state, metrics = loop.run(state, 10_000)
    returns = loop.evaluate(jax.random.key(1), state.agent, 100)
    assert float(-returns.mean()) <= 150.0
    # Training episodes got shorter: the first 40 vs the last 40 finished episodes.
    finished = np.asarray(metrics.finished)
    lengths = np.asarray(metrics.length_sum)[finished > 0] / finished[finished > 0]
    assert lengths[:40].mean() > lengths[-40:].mean()
