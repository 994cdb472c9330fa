"""Learners and drivers: the DQN learner step by hand, the rollout driver's [T, N] rollouts,
and a new replay agent from one learner plus a registry entry."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import envs
from agents import registry, replay_driver, rollout_driver
from agents import run as run_lib
from agents.dqn import DQNConfig, dqn_learner
from agents.host_loop import HostLoop
from agents.jax_loop import make_jax_loop
from agents.learner import Learner, LearnerState, make_optimizer
from tdkit import losses, values
from tdkit.types import Transition


def _batch(rng, n):
    return Transition(
        obs_tm1=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
        a_tm1=jnp.asarray(rng.integers(0, 2, n), jnp.int32),
        r_t=jnp.asarray(rng.normal(size=n), jnp.float32),
        discount_t=jnp.asarray(rng.choice([0.0, 0.9], n), jnp.float32),
        obs_t=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32))


@pytest.mark.parametrize("double", [False, True])
def test_dqn_learner_step_equals_a_hand_written_step(double):
    """One learner step with importance weights: SGD on mean_b w_b * 0.5 delta_b^2, the
    target from the target network (Double DQN: the action chosen by the online one)."""
    config = DQNConfig(hidden_sizes=(8,), layer_norm=False, optimizer="sgd",
                       learning_rate_decay_steps=None, double=double)
    learner = dqn_learner(2, config)
    hp = {"learning_rate": jnp.float32(0.1)}
    state = learner.init(jax.random.key(0), jnp.zeros(4), hp)
    state = state._replace(target_params=jax.tree.map(lambda p: 0.5 * p + 0.1, state.params))
    rng = np.random.default_rng(0)
    batch, weights = _batch(rng, 5), jnp.asarray(rng.uniform(0.1, 1.0, 5), jnp.float32)
    q = values.mlp((8,), 2)

    def loss(params):
        total = 0.0
        for b in range(5):  # a plain loop over the examples
            q_tm1 = q.apply(params, batch.obs_tm1[b])
            q_next = q.apply(state.target_params, batch.obs_t[b])
            a = (jnp.argmax(q.apply(params, batch.obs_t[b])) if double
                 else jnp.argmax(q_next))
            target = jax.lax.stop_gradient(batch.r_t[b] + batch.discount_t[b] * q_next[a])
            total += weights[b] * 0.5 * (target - q_tm1[batch.a_tm1[b]]) ** 2
        return total / 5

    expected = jax.tree.map(lambda p, g: p - 0.1 * g, state.params, jax.grad(loss)(state.params))
    new, info = learner.step(state, batch, weights, hp, jax.random.key(1))
    chex.assert_trees_all_close(new.params, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info["loss"], loss(state.params), rtol=1e-5)
    assert info["priorities"].shape == (5,) and int(new.step) == 1
    chex.assert_trees_all_equal(new.target_params, state.target_params)  # the driver's job


def test_learning_rate_decay_is_an_optax_schedule():
    opt = make_optimizer("sgd", 1.0, decay_steps=4)
    params = {"w": jnp.zeros(())}
    opt_state = opt.init(params)
    steps = []
    for _ in range(6):
        updates, opt_state = opt.update({"w": jnp.ones(())}, opt_state, params)
        steps.append(float(-updates["w"]))
    np.testing.assert_allclose(steps, [1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    with pytest.raises(ValueError, match="not an optax optimizer"):
        make_optimizer("magic", 1.0)


# --------------------------------------------------------------------------- rollout driver


def _recording_learner():
    """A learner whose 'parameters' record the last rollout it was given and a count."""

    def init(key, example_obs, hparams):
        params = {"rewards": jnp.zeros((3, 2)), "lasts": jnp.zeros((3, 2), bool),
                  "obs": jnp.zeros((3, 2, 4))}
        return LearnerState(params, params, (), jnp.zeros((), jnp.int32))

    def step(state, rollout, weights, hparams, key):
        assert weights is None
        params = {"rewards": rollout.transitions.r_t, "lasts": rollout.lasts,
                  "obs": rollout.transitions.obs_tm1}
        return state._replace(params=params, step=state.step + 1), {
            "loss": rollout.transitions.r_t.sum()}

    return Learner(init=init, step=step,
                   action_values=lambda params, obs: jnp.zeros((obs.shape[0], 2)),
                   name="recorder", default_hparams={})


def test_rollout_driver_hands_each_full_rollout_to_the_learner():
    agent = rollout_driver.rollout_agent(
        _recording_learner(), rollout_driver.RolloutConfig(rollout_length=3, target_period=2),
        num_actions=2)
    state = agent.init(jax.random.key(0), jnp.zeros(4), 2)
    update = jax.jit(agent.update)
    learned = []
    for t in range(7):
        transition = Transition(
            obs_tm1=jnp.full((2, 4), float(t)), a_tm1=jnp.zeros(2, jnp.int32),
            r_t=jnp.array([t, 10.0 + t]), discount_t=jnp.full((2,), 0.99),
            obs_t=jnp.full((2, 4), t + 1.0))
        state, metrics = update(state, transition, jnp.array([t == 4, False]))
        learned.append(bool(metrics["learned"]))
        if metrics["learned"]:
            np.testing.assert_allclose(metrics["loss"], state.params["rewards"].sum())
    assert learned == [False, False, True, False, False, True, False]
    # the second rollout is iterations 3, 4, 5: [T, N] in order, episode end at t = 4
    np.testing.assert_array_equal(state.params["rewards"], [[3, 13], [4, 14], [5, 15]])
    np.testing.assert_array_equal(state.params["lasts"], [[0, 0], [1, 0], [0, 0]])
    np.testing.assert_array_equal(state.params["obs"][:, 0, 0], [3, 4, 5])
    assert int(state.extra["updates"]) == 2 and int(state.extra["index"]) == 1
    assert int(state.step) == 14
    # target copied at learner step 2 (target_period=2)
    chex.assert_trees_all_equal(state.target_params, state.params)
    assert update._cache_size() == 1


def _online_q_learner(num_actions, config):
    """A rollout learner that is one DQN learner step on the whole flattened rollout."""
    inner = dqn_learner(num_actions, config)

    def step(state, rollout, weights, hparams, key):
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), rollout.transitions)
        return inner.step(state, flat, jnp.ones(flat.r_t.shape), hparams, key)

    return inner._replace(step=step, name="online_q")


@pytest.mark.parametrize("loop", ["jax", "host"])
def test_a_rollout_learner_trains_in_both_loops(loop):
    config = DQNConfig(hidden_sizes=(16,), learning_rate_decay_steps=None)
    agent = rollout_driver.rollout_agent(
        _online_q_learner(2, config), rollout_driver.RolloutConfig(rollout_length=8), 2)
    if loop == "jax":
        env, params = envs.make("CartPole-v1")
        jax_loop = make_jax_loop(agent, env, params, num_envs=4, eval_episodes=0)
        state, metrics = jax_loop.run(jax_loop.init(jax.random.key(0)), 64)
        assert int(metrics.learned.sum()) == 8 and np.isfinite(metrics.loss).all()
        updates = state.agent.extra["updates"]
    else:
        from envs.host import make_host_env

        adapter = make_host_env("CartPole-v1", num_envs=2, gamma=0.99, seed=0)
        host = HostLoop(agent, adapter)
        obs = adapter.reset(seed=0)
        state, obs, stats = host.run(host.init(jax.random.key(0), obs[0]), obs, 40)
        adapter.close()
        assert stats.losses.size == 5 and np.isfinite(stats.losses).all()
        updates = state.extra["updates"]
    assert int(updates) == (8 if loop == "jax" else 5)


def test_rollout_driver_checks_its_settings():
    with pytest.raises(ValueError, match="`rollout_length` must be > 0"):
        rollout_driver.rollout_agent(_recording_learner(),
                                     rollout_driver.RolloutConfig(rollout_length=0), 2)
    with pytest.raises(ValueError, match="`target_period` must be > 0 or None"):
        rollout_driver.rollout_agent(_recording_learner(),
                                     rollout_driver.RolloutConfig(target_period=0), 2)


# ------------------------------------------------- a new replay agent: learner + registry


@dataclasses.dataclass(frozen=True)
class LinearQConfig(replay_driver.ReplayConfig):
    """A linear Q-function on the raw observation, Huber loss, SGD."""

    huber_delta: float = dataclasses.field(default=1.0, metadata={"help": "Huber threshold"})


def linear_q_learner(num_actions, config, name="linear_q"):
    value_fn = values.linear(4, num_actions)
    loss = losses.td_loss(value_fn, "q_learning", "huber", huber_delta=config.huber_delta,
                          has_aux=True)

    def init(key, example_obs, hparams):
        params = value_fn.init(key, example_obs)
        opt_state = optax.sgd(hparams["learning_rate"]).init(params)
        return LearnerState(params, params, opt_state, jnp.zeros((), jnp.int32))

    def step(state, batch, weights, hparams, key):
        def mean(params):
            per_example, td = jax.vmap(loss, (None, None, 0, 0))(
                params, state.target_params, batch, weights)
            return per_example.mean(), td

        (value, td), grad = jax.value_and_grad(mean, has_aux=True)(state.params)
        updates, opt_state = optax.sgd(hparams["learning_rate"]).update(grad, state.opt_state)
        return (state._replace(params=optax.apply_updates(state.params, updates),
                               opt_state=opt_state, step=state.step + 1),
                {"loss": value, "priorities": jnp.abs(td)})

    return Learner(init, step, jax.vmap(value_fn.apply, (None, 0)), name,
                   {"learning_rate": 0.01})


def test_a_new_replay_agent_is_a_learner_and_a_registry_entry(tmp_path, monkeypatch):
    spec = registry.replay_agent_spec(
        "linear_q", "linear Q-learning on raw observations", linear_q_learner, LinearQConfig,
        learner_hparams={"learning_rate": 0.01}, learner_help={"learning_rate": "step size"},
        run_defaults={"total_steps": 400, "num_envs": 4, "chunk_steps": 200})
    monkeypatch.setitem(registry.AGENTS, "linear_q", spec)
    config = run_lib.RunConfig(
        agent="linear_q", env="CartPole-v1", total_steps=400, num_envs=4, chunk_steps=200,
        eval_episodes=1, out=str(tmp_path / "run"),
        agent_config={"buffer_size": 256, "batch_size": 16, "learning_starts": 32,
                      "prioritized": True}, sweep={"lr": [0.01, 0.001]})
    summary = run_lib.train(config, progress=False)
    assert summary["chunks_done"] == 2 and summary["members"] == 2
    rows = run_lib.read_metrics(tmp_path / "run" / "metrics.csv")
    assert {r["learning_rate"] for r in rows} == {"0.01", "0.001"}
    assert all(r["loss"] != "" and np.isfinite(float(r["loss"])) for r in rows)
    assert summary["evaluation"]["configurations"][0]["learning_rate"] == 0.01
