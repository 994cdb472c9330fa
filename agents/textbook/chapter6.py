"""Chapter 6, temporal-difference learning: Examples 6.2, 6.5, 6.6 and Figure 6.5.

- Example 6.2: TD(0) vs constant-alpha MC on the 5-state random walk (prediction streams).
- Example 6.5: Sarsa on the windy gridworld, episodes vs time steps (`agents.jax_loop`).
- Example 6.6: Sarsa vs Q-learning on the cliff, sum of rewards per episode
  (`agents.episodes.run_episodes`).
- Figure 6.5: maximization bias, Q-learning vs Double Q-learning, % "left" from A per
  episode (`agents.episodes.run_episodes`).

Each `compute(key, runs)` returns the figure's series (`results.make_series`); each
`summary_*(result)` returns `[(quantity, measured, book), ...]` for `results.format_table`.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents import episodes as episodes_lib
from agents import jax_loop, tabular
from agents.base import Agent
from agents.textbook import prediction
from agents.textbook.results import fmt, make_series
from agents.textbook.streams import (
    feature_streams,
    fused_streams,
    random_walk_task,
    sweep_predictor,
)
from tdkit import policies

Array = jax.Array


def example_6_2(key: Array, runs: int) -> list[dict]:
    """Example 6.2: TD(0) vs constant-alpha MC on the 5-state walk, RMS error per episode."""
    episodes = 100
    env, params, table, inner, rms = random_walk_task(5)
    w0 = np.zeros(table, np.float32)
    w0[inner] = 0.5
    td_alphas, mc_alphas = [0.05, 0.1, 0.15], [0.01, 0.02, 0.03, 0.04]
    td = prediction.make_predictor("td_lambda")
    mc = prediction.make_predictor("mc")

    def compute(data):
        streams = feature_streams(data, table)
        td_err = sweep_predictor(td, w0, [("alpha", td_alphas)], streams, rms, episodes,
                                 fixed={"lambda_": 0.0})
        mc_err = sweep_predictor(mc, w0, [("alpha", mc_alphas)], streams, rms, episodes)
        return td_err.mean(axis=0), mc_err.mean(axis=0)

    # 100 episodes of 9 +- 7 steps: 1280 steps (5 standard deviations) are nearly always enough.
    td_err, mc_err = fused_streams(env, params, key, runs, episodes, compute, 1280)
    x = np.arange(episodes + 1)
    start = float(rms(w0))
    series = []
    for method, alphas, err in (("TD", td_alphas, td_err), ("MC", mc_alphas, mc_err)):
        for i, alpha in enumerate(alphas):
            series.append(make_series(f"{method} alpha={alpha}", {"method": method,
                                                                 "alpha": alpha},
                                      x, np.concatenate([[start], err[i]])))
    return series


def example_6_5(key: Array, runs: int) -> list[dict]:
    """Example 6.5: Sarsa on the windy gridworld, episodes completed vs time steps.

    Trained by `agents.jax_loop` (one environment per run, vmapped over runs).
    """
    num_steps, every = 8000, 10
    env, params = envs.make("WindyGridworld-v0")
    agent = tabular.tabular_agent("sarsa", int(env.extras["num_states"]), env.num_actions,
                                  tabular.TabularConfig(epsilon=0.1))
    loop = jax_loop.make_jax_loop(agent, env, params, num_envs=1, eval_episodes=0)

    @jax.jit
    def compute(key):
        keys = jax.random.split(key, runs)
        states = jax.vmap(lambda k: loop.init(k, {"alpha": 0.5, "gamma": 1.0}))(keys)
        _, metrics = jax.vmap(lambda s: loop.run(s, num_steps))(states)
        return jnp.cumsum(metrics.finished, axis=1).astype(jnp.float32).mean(axis=0)

    episodes = np.concatenate([[0.0], np.asarray(jax.device_get(compute(key)))])
    x = np.arange(0, num_steps + 1, every)
    return [make_series("Sarsa", {"method": "sarsa", "alpha": 0.5}, x, episodes[x])]


def example_6_6(key: Array, runs: int) -> list[dict]:
    """Example 6.6: Sarsa vs Q-learning on the cliff, sum of rewards per episode."""
    episodes = 500
    env, params = envs.make("CliffWalking-v0")
    num_states, num_actions = int(env.extras["num_states"]), env.num_actions
    agents = {rule: tabular.tabular_agent(rule, num_states, num_actions,
                                          tabular.TabularConfig(epsilon=0.1))
              for rule in ("sarsa", "q_learning")}
    hparams = {"alpha": 0.5, "gamma": 1.0}

    @jax.jit
    def compute(key):
        keys = jax.random.split(key, runs)  # the same keys for both rules
        return {rule: episodes_lib.run_episodes(agent, env, params, keys, episodes,
                                                hparams)[1].returns.mean(0)
                for rule, agent in agents.items()}

    out = jax.device_get(compute(key))
    x = np.arange(1, episodes + 1)
    return [make_series(rule.replace("q_learning", "Q-learning").replace("sarsa", "Sarsa"),
                        {"method": rule, "alpha": 0.5}, x, out[rule]) for rule in agents]


def masked_epsilon_greedy_act(valid_actions: Any, epsilon: float) -> Callable:
    """`act` for the tabular agents restricted to each state's valid actions.

    Epsilon-greedy over `Q1 + Q2` (Double Q-learning; `2 Q` for the one-table agents, the
    same choice) among `valid_actions[s]` only: `epsilon` spread evenly over the valid
    actions, `1 - epsilon` over the maximal valid ones (`tdkit.policies`, random ties).

    Args:
      valid_actions: bool `[S, A]`.
      epsilon: exploration rate.

    Returns:
      `act(key, agent_state, obs [N], evaluation=False) -> actions [N]` (the same policy
      whatever `evaluation`).
    """
    valid = jnp.asarray(valid_actions, jnp.bool_)

    def one(key, q, mask):
        greedy = policies.epsilon_greedy_probs(jnp.where(mask, q, -jnp.inf), jnp.float32(0.0))
        probs = epsilon * mask / mask.sum() + (1.0 - epsilon) * greedy
        return jax.random.choice(key, q.shape[0], p=probs).astype(jnp.int32)

    def act(key, state, obs, evaluation=False):
        del evaluation
        q = state.params["table"][obs] + state.target_params["table"][obs]
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(one)(keys, q, valid[obs])

    return act


def figure_6_5(key: Array, runs: int) -> list[dict]:
    """Figure 6.5: % of "left" from A per episode, Q-learning vs Double Q-learning.

    "left" from A leads to B and every action in B ends the episode, "right" from A ends it
    at once: an episode went left exactly when it lasted 2 steps.
    """
    episodes = 300
    env, params = envs.make("MaximizationBias-v0")
    act = masked_epsilon_greedy_act(env.extras["valid_actions"], 0.1)
    agents = {}
    for rule in ("q_learning", "double_q_learning"):
        base = tabular.tabular_agent(rule, 3, env.num_actions, tabular.TabularConfig(epsilon=0.1))
        # The same learner with the masked policy (and none of the optional speed-ups of `act`).
        agents[rule] = Agent(base.init, act, base.update, base.name, base.default_hparams)
    hparams = {"alpha": 0.1, "gamma": 1.0}

    @jax.jit
    def compute(key):
        keys = jax.random.split(key, runs)
        return {rule: episodes_lib.run_episodes(agent, env, params, keys, episodes,
                                                hparams)[1].lengths == 2
                for rule, agent in agents.items()}

    out = jax.device_get(compute(key))
    x = np.arange(1, episodes + 1)
    labels = {"q_learning": "Q-learning", "double_q_learning": "Double Q-learning"}
    return [make_series(labels[rule], {"method": rule, "alpha": 0.1}, x,
                        100.0 * np.mean(out[rule], axis=0)) for rule in agents]


def summary_6_2(result):
    td = [s for s in result["series"] if s["params"]["method"] == "TD"]
    mc = [s for s in result["series"] if s["params"]["method"] == "MC"]
    worst_td = max(td, key=lambda s: s["y"][-1])
    best_mc = min(mc, key=lambda s: s["y"][-1])
    return [("RMS at episode 0", fmt(td[0]["y"][0], 6), "sqrt(1/18) = 0.235702 (exact)")] + [
        (f"RMS at episode 100, {s['label']}", fmt(s["y"][-1]), "") for s in td + mc] + [
        ("worst TD vs best MC at episode 100",
         f"{fmt(worst_td['y'][-1])} vs {fmt(best_mc['y'][-1])}",
         "TD better than MC for every alpha shown")]


def summary_6_5(result):
    s = result["series"][0]
    return [("episodes completed in 8000 steps", fmt(s["y"][-1]), "about 170")]


def summary_6_6(result):
    rows = []
    for s, book in zip(result["series"], ("about -25", "about -50"), strict=True):
        rows.append((f"{s['label']}: mean sum of rewards, episodes 401-500",
                     fmt(float(np.mean(s["y"][-100:]))), book))
    return rows


def summary_figure_6_5(result):
    q, dq = result["series"]
    return [("Q-learning: peak % left (episode)",
             f"{fmt(max(q['y']))} ({q['x'][int(np.argmax(q['y']))]:g})",
             "far above the optimal 5% early on"),
            ("Q-learning: % left, episodes 251-300", fmt(float(np.mean(q["y"][-50:]))),
             "stays above 5%"),
            ("Double Q-learning: % left, episodes 251-300", fmt(float(np.mean(dq["y"][-50:]))),
             "close to 5% (optimal with epsilon = 0.1)")]
