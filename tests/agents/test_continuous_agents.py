"""DDPG, TD3 and SAC: each learner step against a hand-written reference step on a tiny batch,
acting inside the box (uniform before learning starts), delayed actor and target updates,
both loops with seeds and sweeps, bad agent/environment pairs, and learning Pendulum-v1."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import registry
from agents import run as run_lib
from agents.sac import SACConfig, sac, sac_learner
from agents.td3 import DDPG_OVERRIDES, TD3Config, td3, td3_learner
from tdkit import continuous
from tdkit.types import Transition
from tests.agents.loops import check_both_loops

LOW, HIGH = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
B, LR = 4, 0.05
SMALL = dict(actor_hidden_sizes=(8,), critic_hidden_sizes=(8,), optimizer="sgd")


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return Transition(
        obs_tm1=jnp.asarray(rng.normal(size=(B, 3)), jnp.float32),
        a_tm1=jnp.asarray(rng.uniform(LOW, HIGH, (B, 2)), jnp.float32),
        r_t=jnp.asarray(rng.normal(size=B), jnp.float32),
        discount_t=jnp.asarray([0.9, 0.0, 0.9, 0.9], jnp.float32),
        obs_t=jnp.asarray(rng.normal(size=(B, 3)), jnp.float32))


def _sgd(params, grads):
    return jax.tree.map(lambda p, g: p - LR * g, params, grads)


def _start(learner, hp):
    state = learner.init(jax.random.key(0), jnp.zeros(3), hp)
    target = jax.tree.map(lambda p: 0.8 * p + 0.01, state.params)  # a different target
    return state._replace(target_params=target)


@pytest.mark.parametrize("variant", ["td3", "ddpg"])
def test_td3_and_ddpg_steps_equal_a_hand_written_step(variant):
    config = TD3Config(**SMALL, **(DDPG_OVERRIDES if variant == "ddpg" else {}))
    learner = td3_learner(LOW, HIGH, config)
    hp = {"learning_rate": jnp.float32(LR), "actor_learning_rate": jnp.float32(LR),
          "exploration_noise": 0.1, "policy_noise": jnp.float32(0.2),
          "noise_clip": jnp.float32(0.5)}
    state = _start(learner, hp)
    batch, weights = _batch(), jnp.asarray([1.0, 0.5, 0.25, 1.0])
    key = jax.random.key(5)
    actor = continuous.deterministic_actor(LOW, HIGH, (8,))
    critic = continuous.critic_mlp((8,), config.num_critics)
    scale = (HIGH - LOW) / 2

    # Reference: written out per example with numpy noise from the same keys.
    p, tp = state.params, state.target_params
    noise_keys = jax.random.split(key, B)

    def critic_loss(critic_params):
        total = 0.0
        for b in range(B):
            a_next = actor.apply(tp["actor"], batch.obs_t[b])
            if variant == "td3":  # clipped noise, relative to the half-width
                eps = jax.random.normal(noise_keys[b], (2,))
                a_next = jnp.clip(a_next + jnp.clip(0.2 * eps, -0.5, 0.5) * scale, LOW, HIGH)
            q_next = critic.apply(tp["critic"], batch.obs_t[b], a_next)
            v_next = q_next.min() if variant == "td3" else q_next[0]
            y = jax.lax.stop_gradient(batch.r_t[b] + batch.discount_t[b] * v_next)
            q = critic.apply(critic_params, batch.obs_tm1[b], batch.a_tm1[b])
            total += weights[b] * jnp.sum(0.5 * (y - q) ** 2)
        return total / B

    loss, grad = jax.value_and_grad(critic_loss)(p["critic"])
    new_critic = _sgd(p["critic"], grad)

    def actor_loss(actor_params):
        return -jnp.mean(jnp.stack([critic.apply(new_critic, o, actor.apply(actor_params, o))[0]
                                    for o in batch.obs_tm1]))

    new_actor = p["actor"]
    if variant == "ddpg":  # DDPG: an actor step every step; TD3: the first step is critic-only
        new_actor = _sgd(p["actor"], jax.grad(actor_loss)(p["actor"]))
    s1, info = jax.jit(learner.step)(state, batch, weights, hp, key)
    chex.assert_trees_all_close(s1.params["critic"], new_critic, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(s1.params["actor"], new_actor, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info["loss"], loss, rtol=1e-5)
    if variant == "td3":  # the second step updates the actor (policy_delay = 2)
        s2, info2 = jax.jit(learner.step)(s1, batch, weights, hp, key)
        assert float(info2["actor_loss"]) != 0.0 and float(info["actor_loss"]) == 0.0
        assert not np.allclose(s2.params["actor"][0]["w"] if isinstance(s2.params["actor"], list)
                               else jax.tree.leaves(s2.params["actor"])[0],
                               jax.tree.leaves(s1.params["actor"])[0])


def test_sac_step_equals_a_hand_written_step():
    config = SACConfig(**SMALL)
    learner = sac_learner(LOW, HIGH, config)
    hp = {"learning_rate": jnp.float32(LR), "actor_learning_rate": jnp.float32(LR),
          "alpha": jnp.float32(0.5), "alpha_learning_rate": jnp.float32(0.01)}
    state = _start(learner, hp)
    state = state._replace(target_params={**state.target_params,
                                          "actor": state.params["actor"]})
    batch, weights = _batch(1), jnp.ones(B)
    key = jax.random.key(9)
    actor = continuous.gaussian_actor(LOW, HIGH, (8,))
    critic = continuous.critic_mlp((8,), 2)
    p, tp = state.params, state.target_params
    alpha = jnp.exp(p["log_alpha"])
    np.testing.assert_allclose(alpha, 0.5, rtol=1e-6)
    k_critic, k_actor = jax.random.split(key)

    def sample(actor_params, obs, keys):
        out = []
        for o, k in zip(obs, keys, strict=True):
            mean, log_std = actor.apply(actor_params, o)
            u = mean + jnp.exp(log_std) * jax.random.normal(k, (2,))
            a = continuous.squashed_gaussian_mode(u, LOW, HIGH)  # bias + scale * tanh(u)
            out.append((a, continuous.squashed_gaussian_log_prob(u, mean, log_std, LOW, HIGH)))
        return out

    next_samples = sample(p["actor"], batch.obs_t, jax.random.split(k_critic, B))

    def critic_loss(critic_params):
        total = 0.0
        for b, (a_next, logp_next) in enumerate(next_samples):
            q_next = critic.apply(tp["critic"], batch.obs_t[b], a_next)
            y = jax.lax.stop_gradient(
                batch.r_t[b] + batch.discount_t[b] * (q_next.min() - alpha * logp_next))
            q = critic.apply(critic_params, batch.obs_tm1[b], batch.a_tm1[b])
            total += jnp.sum(0.5 * (y - q) ** 2)
        return total / B

    loss, grad = jax.value_and_grad(critic_loss)(p["critic"])
    new_critic = _sgd(p["critic"], grad)
    actor_keys = jax.random.split(k_actor, B)

    def actor_loss(actor_params):
        terms = [alpha * logp - critic.apply(new_critic, o, a).min()
                 for o, (a, logp) in zip(batch.obs_tm1, sample(actor_params, batch.obs_tm1,
                                                              actor_keys), strict=True)]
        return jnp.mean(jnp.stack(terms))

    new_actor = _sgd(p["actor"], jax.grad(actor_loss)(p["actor"]))
    log_probs = jnp.stack([lp for _, lp in sample(p["actor"], batch.obs_tm1, actor_keys)])
    # Adam's first step moves log_alpha by -lr * sign(grad); grad = -mean(logp + H), H = -2
    expected_log_alpha = p["log_alpha"] - 0.01 * jnp.sign(-jnp.mean(log_probs - 2.0))
    s1, info = jax.jit(learner.step)(state, batch, weights, hp, key)
    chex.assert_trees_all_close(s1.params["critic"], new_critic, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(s1.params["actor"], new_actor, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s1.params["log_alpha"], expected_log_alpha, rtol=1e-5)
    np.testing.assert_allclose(info["loss"], loss, rtol=1e-5)


@pytest.mark.parametrize("make", [td3, sac])
def test_acting_is_uniform_before_learning_starts_then_the_policy_inside_the_box(make):
    config = (TD3Config if make is td3 else SACConfig)(learning_starts=256, batch_size=32,
                                                       **SMALL)
    agent = make(LOW, HIGH, config)
    assert "epsilon_start" not in agent.default_hparams
    state = agent.init(jax.random.key(0), jnp.zeros(3), 64)
    obs = jnp.zeros((64, 3))
    early = np.asarray(agent.act(jax.random.key(1), state, obs))
    assert early.shape == (64, 2) and early.dtype == np.float32
    assert (early >= LOW).all() and (early <= HIGH).all()
    assert early[:, 0].std() > 0.8  # uniform on [-2, 2]: std 1.15
    late_state = state._replace(step=jnp.asarray(256, jnp.int32))
    late = np.asarray(agent.act(jax.random.key(1), late_state, obs))
    greedy = np.asarray(agent.act(jax.random.key(1), late_state, obs, evaluation=True))
    assert (late >= LOW).all() and (late <= HIGH).all()
    assert late[:, 0].std() < 0.8  # the policy (noise around the same action)
    assert np.allclose(greedy, greedy[0])  # deterministic: same obs, same action


def test_td3_targets_move_only_with_the_actor():
    """The driver's Polyak step runs every `polyak_every` (= policy delay) learner steps."""
    from agents.replay_driver import replay_agent  # noqa: F401  (the driver under test)

    agent = td3(LOW, HIGH, TD3Config(learning_starts=8, batch_size=8, buffer_size=64,
                                     **SMALL))
    state = agent.init(jax.random.key(0), jnp.zeros(3), 1)
    update = jax.jit(agent.update)
    targets = []
    for i in range(12):
        t = Transition(obs_tm1=jnp.full((1, 3), i / 10.0), a_tm1=jnp.zeros((1, 2)),
                       r_t=jnp.ones(1), discount_t=jnp.full(1, 0.9),
                       obs_t=jnp.full((1, 3), (i + 1) / 10.0))
        state, metrics = update(state, t, jnp.zeros(1, bool))
        targets.append(jax.tree.leaves(state.target_params["critic"])[0].copy())
    updates = int(state.extra["updates"])
    assert updates == 5  # learning from the 8th transition on
    changed = [not np.array_equal(a, b) for a, b in zip(targets, targets[1:], strict=False)]
    # learner steps 1..5 happen at iterations 7..11; the target moves after steps 2 and 4
    assert changed == [False] * 7 + [True, False, True, False]


def test_bad_agent_environment_pairs_are_one_line_errors():
    import gymnasium

    box = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
    with pytest.raises(ValueError, match="'td3' needs a continuous"):
        registry.get("td3").check(box, gymnasium.spaces.Discrete(2))
    with pytest.raises(ValueError, match="'dqn' needs a Discrete action space"):
        registry.get("dqn").check(box, gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32))
    with pytest.raises(ValueError, match="finite action bounds"):
        registry.get("sac").check(box, gymnasium.spaces.Box(-np.inf, np.inf, (1,)))
    with pytest.raises(run_lib.RunError, match="needs a continuous"):
        run_lib.train(run_lib.RunConfig(agent="sac", env="CartPole-v1", total_steps=10,
                                        out="/nonexistent/never"), progress=False)


@pytest.mark.parametrize("name", ["ddpg", "td3", "sac"])
def test_every_continuous_agent_runs_in_both_loops_with_seeds_and_sweeps(name, tmp_path):
    tiny = {"actor_hidden_sizes": [8], "critic_hidden_sizes": [8], "buffer_size": 256,
            "batch_size": 16, "learning_starts": 32}
    check_both_loops(name, "Pendulum-v1", tiny, tmp_path, total_steps=100, chunk_steps=50,
                     sweep={"lr": [1e-3, 3e-4]}, jax_envs=2)

@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddpg", "td3", "sac"])
def test_every_continuous_agent_solves_pendulum_within_20k_steps(name, tmp_path):
    """Defaults, two seeds in one program, 20k environment steps each on the JAX twin; then
    10 greedy episodes each of Gymnasium's own Pendulum-v1: mean return >= -200."""
    summary = run_lib.train(run_lib.RunConfig(
        agent=name, env="Pendulum-v1", seeds=2, total_steps=20_000, num_envs=1,
        chunk_steps=2_000, eval_episodes=10, out=str(tmp_path / name)), progress=False)
    returns = [m["mean_return"] for m in summary["evaluation"]["members"]]
    assert summary["evaluation"]["env_id"] == "Pendulum-v1"
    assert all(r >= -200.0 for r in returns), returns
