"""C51, QR-DQN, IQN, M-DQN and Rainbow: each learner step against a hand-written reference
step on a tiny batch, noisy acting, both loops, seeds and sweeps, and learning CartPole."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import registry
from agents import run as run_lib
from agents.c51 import C51Config, c51_learner
from agents.iqn import IQNConfig, iqn_learner
from agents.munchausen import MDQNConfig, mdqn_learner
from agents.qr_dqn import QRDQNConfig, qr_dqn_learner
from agents.rainbow import RainbowConfig, rainbow, rainbow_learner
from tdkit import networks, values
from tdkit.types import Transition
from tests.agents.loops import check_both_loops

A, B, LR = 2, 4, 0.1
SMALL = dict(hidden_sizes=(8,), layer_norm=False, optimizer="sgd",
             learning_rate_decay_steps=None)
HP = {"learning_rate": jnp.float32(LR)}
KEY = jax.random.key(7)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    batch = Transition(
        obs_tm1=jnp.asarray(rng.normal(size=(B, 4)), jnp.float32),
        a_tm1=jnp.asarray([0, 1, 1, 0], jnp.int32),
        r_t=jnp.asarray(rng.uniform(0.0, 2.0, B), jnp.float32),
        discount_t=jnp.asarray([0.9, 0.0, 0.9, 0.9], jnp.float32),
        obs_t=jnp.asarray(rng.normal(size=(B, 4)), jnp.float32))
    return batch, jnp.asarray(rng.uniform(0.2, 1.0, B), jnp.float32)


def _start(learner):
    state = learner.init(jax.random.key(0), jnp.zeros(4), HP)
    target = jax.tree.map(lambda p: 0.7 * p + 0.05, state.params)  # a different target net
    return state._replace(target_params=target)


def _check_step(learner, reference_loss, key=KEY):
    """One SGD step of `learner` equals `params - LR * grad(reference_loss)`."""
    state = _start(learner)
    batch, weights = _batch()
    expected_loss, grad = jax.value_and_grad(reference_loss)(state.params, state, batch, weights)
    new, info = learner.step(state, batch, weights, HP, key)
    np.testing.assert_allclose(info["loss"], expected_loss, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(new.params, jax.tree.map(lambda p, g: p - LR * g, state.params,
                                                         grad), rtol=1e-4, atol=1e-6)
    assert info["priorities"].shape == (B,) and np.all(np.asarray(info["priorities"]) >= 0)
    chex.assert_trees_all_equal(new.target_params, state.target_params)
    assert int(new.step) == 1


def _project(atoms, probs, r, d):
    """C51's projection of `r + d * atoms` under `probs` onto `atoms`, by a plain loop."""
    atoms = np.asarray(atoms, np.float64)
    v_min, v_max, dz = atoms[0], atoms[-1], atoms[1] - atoms[0]
    out = np.zeros_like(atoms)
    for z, p in zip(atoms, np.asarray(probs, np.float64), strict=True):
        b = (np.clip(r + d * z, v_min, v_max) - v_min) / dz
        lo, hi = int(np.floor(b)), int(np.ceil(b))
        if lo == hi:
            out[lo] += p
        else:
            out[lo] += p * (hi - b)
            out[hi] += p * (b - lo)
    return out


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _categorical_reference(apply, atoms, double):
    def loss(params, state, batch, weights):
        total = 0.0
        for b in range(B):
            target_probs = _softmax(np.asarray(apply(state.target_params, batch.obs_t[b])))
            # the selector is the online network at the same (concrete) parameters: argmax
            # carries no gradient
            online = np.asarray(apply(state.params, batch.obs_t[b]))
            select = (_softmax(online) if double else target_probs) @ np.asarray(atoms)
            a_star = int(np.argmax(select))
            m = _project(atoms, target_probs[a_star], float(batch.r_t[b]),
                         float(batch.discount_t[b]))
            log_p = jax.nn.log_softmax(apply(params, batch.obs_tm1[b])[batch.a_tm1[b]])
            total += weights[b] * -jnp.sum(jnp.asarray(m, jnp.float32) * log_p)
        return total / B
    return loss


@pytest.mark.parametrize("double", [False, True])
def test_c51_step_equals_a_hand_written_step(double):
    config = C51Config(**SMALL, num_atoms=5, v_min=0.0, v_max=4.0, double=double)
    net = values.mlp((8,), A, num_atoms=5)
    _check_step(c51_learner(A, config),
                _categorical_reference(net.apply, np.linspace(0, 4, 5), double))


def _quantile_huber(theta, taus, targets, kappa=1.0):
    """sum_i mean_j |tau_i - 1{u_ij < 0}| huber_kappa(u_ij), u_ij = targets_j - theta_i."""
    u = jax.lax.stop_gradient(targets)[None, :] - theta[:, None]
    huber = jnp.where(jnp.abs(u) <= kappa, 0.5 * u**2, kappa * (jnp.abs(u) - 0.5 * kappa))
    return jnp.sum(jnp.mean(jnp.abs(taus[:, None] - (u < 0)) * huber, axis=1))


def test_qr_dqn_step_equals_a_hand_written_step():
    K = 3
    net = values.mlp((8,), A, num_atoms=K)
    taus = (2 * jnp.arange(K) + 1) / (2 * K)

    def loss(params, state, batch, weights):
        total = 0.0
        for b in range(B):
            q_t = net.apply(state.target_params, batch.obs_t[b])            # [A, K]
            a_star = jnp.argmax(q_t.mean(axis=1))
            targets = batch.r_t[b] + batch.discount_t[b] * q_t[a_star]
            theta = net.apply(params, batch.obs_tm1[b])[batch.a_tm1[b]]
            total += weights[b] * _quantile_huber(theta, taus, targets)
        return total / B

    _check_step(qr_dqn_learner(A, QRDQNConfig(**SMALL, num_quantiles=K)), loss)


def test_iqn_step_equals_a_hand_written_step():
    N, N2, K = 3, 4, 5
    config = IQNConfig(**SMALL, num_tau_samples=N, num_tau_prime_samples=N2,
                       num_quantile_samples=K, embedding_dim=6)
    net = networks.iqn_mlp((8,), A, 6)

    def loss(params, state, batch, weights):
        keys = jax.random.split(KEY, B)  # one key per example, as documented
        total = 0.0
        for b in range(B):
            k_tm1, k_t, k_select = jax.random.split(keys[b], 3)
            tau_tm1 = jax.random.uniform(k_tm1, (N,))
            tau_t = jax.random.uniform(k_t, (N2,))
            tau_select = jax.random.uniform(k_select, (K,))
            a_star = jnp.argmax(net.apply(state.target_params, batch.obs_t[b],
                                          tau_select).mean(axis=0))
            targets = batch.r_t[b] + batch.discount_t[b] * net.apply(
                state.target_params, batch.obs_t[b], tau_t)[:, a_star]
            theta = net.apply(params, batch.obs_tm1[b], tau_tm1)[:, batch.a_tm1[b]]
            total += weights[b] * _quantile_huber(theta, tau_tm1, targets)
        return total / B

    _check_step(iqn_learner(A, config), loss)


def test_mdqn_step_equals_a_hand_written_step():
    tau, alpha, l0 = 0.03, 0.9, -1.0
    net = values.mlp((8,), A)

    def loss(params, state, batch, weights):
        total = 0.0
        for b in range(B):
            q_tm1 = net.apply(params, batch.obs_tm1[b])
            q_tm1_target = net.apply(state.target_params, batch.obs_tm1[b])
            q_t_target = net.apply(state.target_params, batch.obs_t[b])
            log_pi_tm1 = q_tm1_target / tau - jax.scipy.special.logsumexp(q_tm1_target / tau)
            log_pi_t = q_t_target / tau - jax.scipy.special.logsumexp(q_t_target / tau)
            bonus = alpha * jnp.clip(tau * log_pi_tm1[batch.a_tm1[b]], l0, 0.0)
            soft_v = jnp.sum(jnp.exp(log_pi_t) * (q_t_target - tau * log_pi_t))
            target = jax.lax.stop_gradient(batch.r_t[b] + bonus + batch.discount_t[b] * soft_v)
            delta = target - q_tm1[batch.a_tm1[b]]
            huber = jnp.where(jnp.abs(delta) <= 1.0, 0.5 * delta**2, jnp.abs(delta) - 0.5)
            total += weights[b] * huber
        return total / B

    _check_step(mdqn_learner(A, MDQNConfig(**SMALL)), loss)


def test_rainbow_step_without_noise_equals_a_hand_written_step():
    config = RainbowConfig(**SMALL, num_atoms=5, v_min=0.0, v_max=4.0, noisy=False)
    net = networks.dueling_mlp((8,), A, 5)
    _check_step(rainbow_learner(A, config),
                _categorical_reference(net.apply, np.linspace(0, 4, 5), double=True))


def test_rainbow_noisy_acting_explores_by_noise_and_evaluates_without_it():
    agent = rainbow(A, RainbowConfig(**SMALL, num_atoms=5, v_max=4.0, learning_starts=128))
    assert agent.fast_path.epsilon_greedy is None  # the greedy part depends on a key
    state = agent.init(jax.random.key(0), jnp.zeros(4), 64, {"epsilon_start": 0.0,
                                                             "epsilon_end": 0.0})
    obs = jax.random.normal(jax.random.key(1), (64, 4))
    act = jax.jit(agent.act, static_argnames="evaluation")
    greedy = [np.asarray(act(jax.random.key(s), state, obs, evaluation=True)) for s in range(3)]
    noisy = [np.asarray(act(jax.random.key(s), state, obs)) for s in range(3)]
    assert all(np.array_equal(greedy[0], g) for g in greedy)  # noise-free, whatever the key
    assert not all(np.array_equal(noisy[0], n) for n in noisy)  # epsilon 0: noise explores
    assert np.array_equal(np.asarray(act(jax.random.key(1), state, obs)), noisy[1])


@pytest.mark.parametrize("name", ["c51", "qr_dqn", "iqn", "mdqn", "rainbow"])
def test_every_agent_runs_in_both_loops_with_seeds_and_sweeps(name, tmp_path):
    tiny = {"hidden_sizes": [8], "buffer_size": 256, "batch_size": 16, "learning_starts": 32}
    assert name in registry.AGENTS
    check_both_loops(name, "CartPole-v1", tiny, tmp_path, total_steps=200, chunk_steps=100,
                     sweep={"lr": [1e-3, 3e-4]}, jax_envs=4)

@pytest.mark.slow
@pytest.mark.parametrize("name", ["c51", "qr_dqn", "iqn", "mdqn", "rainbow"])
def test_every_agent_solves_cartpole_on_gymnasium_for_two_seeds(name, tmp_path):
    """Defaults, two seeds in one program, stopped once both greedy evaluations on the JAX
    twin reach 475; then 100 greedy episodes each of Gymnasium's own CartPole-v1."""
    summary = run_lib.train(run_lib.RunConfig(
        agent=name, env="CartPole-v1", seeds=2, stop_at_return=475.0, eval_episodes=100,
        total_steps=240_000, num_envs=16, chunk_steps=10_000, out=str(tmp_path / name)),
        progress=False)
    returns = [m["mean_return"] for m in summary["evaluation"]["members"]]
    assert summary["evaluation"]["env_id"] == "CartPole-v1"
    assert all(r >= 475.0 for r in returns), returns
