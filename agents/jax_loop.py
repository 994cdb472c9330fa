"""The jitted training loop: a JAX environment, rollout, replay and updates in one program.

    loop = make_jax_loop(agent, env, env_params, num_envs=8)
    state = loop.init(key)                                   # or jax.vmap(loop.init)(keys)
    state, metrics = loop.run(state, num_iterations=1000)    # jit(lax.scan) over iterations

One iteration: `agent.act` on the N environments, `env.step` (vmapped, automatic reset),
the transition with the TRUE final observation (`info["final_observation"]`) and
`discount_t = gamma * (1 - terminated)` (truncation keeps the discount), then
`agent.update`. `run` is jitted with the number of iterations static, so the host calls
it chunk by chunk (reporting progress and checkpointing in between) with one compilation.
`jax.vmap` over `init` and `run` trains many seeds (and hyperparameter settings, through
`hparams`) in one program.

Agents whose parameters change only every K iterations offer a `FastPath` with
`update_every = K` and an `update_block` (the rollout driver: K = T; the replay driver:
K = `train_every`). For them `run` scans blocks: K iterations of acting and environment
steps on the block's starting agent state (its step count advanced as `update` would), then
ONE `update_block` on the K transitions, equal to K calls of `update`. This matters most
under `jax.vmap` (seeds and sweeps), where the `lax.cond` that skips learning in `update`
becomes a `select` that computes the learning branch on every iteration. Blocks are used
when `num_iterations` is a multiple of K; runs then stay aligned (every chunk starts at a
multiple of K iterations).

After each chunk `run` also evaluates the greedy policy on the JAX environment
(`eval_episodes` episodes) and keeps the best-scoring parameters in `best_params`
(model selection on the training environment; set `eval_episodes=0` to disable).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from agents.base import Agent, AgentState
from tdkit.types import Transition

Array = chex.Array


class LoopState(NamedTuple):
    """Carry of the jitted loop (leaves gain a leading `[S]` axis when vmapped over seeds).

    Attributes:
      agent: the `AgentState`.
      env_state: environment states `[N, ...]`.
      obs: current observations `[N, O...]` (after any automatic reset).
      key: PRNG key of the loop (actions, environment steps, evaluation).
      episode_return: float32 `[N]`, return of the running episodes so far.
      episode_length: int32 `[N]`, length of the running episodes so far.
      best_params: parameters with the best greedy evaluation so far.
      best_score: float32 `[]`, that evaluation's mean return (-inf before the first).
      last_score: float32 `[]`, the latest evaluation's mean return.
    """

    agent: AgentState
    env_state: Any
    obs: Array
    key: Array
    episode_return: Array
    episode_length: Array
    best_params: Any
    best_score: Array
    last_score: Array


class IterationMetrics(NamedTuple):
    """Per-iteration metrics, stacked to `[K]` by `run` (`[S, K]` over seeds).

    Attributes:
      finished: int32, episodes that ended this iteration.
      return_sum: float32, summed return of those episodes.
      length_sum: int32, summed length of those episodes.
      loss: float32, the agent's loss (0 where `learned` is False).
      learned: bool, the agent took a gradient step.
      step: int32, environment steps so far (after this iteration).
    """

    finished: Array
    return_sum: Array
    length_sum: Array
    loss: Array
    learned: Array
    step: Array


class JaxLoop(NamedTuple):
    """`init(key, hparams=None) -> LoopState`; `run(state, num_iterations) -> (state,
    IterationMetrics [K])` (jitted, `num_iterations` static); `evaluate(key, params,
    num_episodes) -> [E]` greedy returns."""

    init: Callable[..., LoopState]
    run: Callable[..., tuple[LoopState, IterationMetrics]]
    evaluate: Callable[..., Array]
    num_envs: int


def make_jax_loop(agent: Agent, env: Any, env_params: Any, num_envs: int,
                  eval_episodes: int = 16, max_eval_steps: int | None = None) -> JaxLoop:
    """Builds the jitted loop for `agent` on the JAX environment `env`.

    Args:
      agent: an `Agent`.
      env: an environment with `reset(key, params)` and `step(key, state, action, params)`
        returning `(obs, state, reward, terminated, truncated, info)` with
        `info["final_observation"]`.
      env_params: the environment params pytree.
      num_envs: N, environments stepped in parallel per iteration.
      eval_episodes: greedy evaluation episodes after each `run` call (0 disables).
      max_eval_steps: step cap of an evaluation episode; defaults to `env_params.max_steps`.

    Returns:
      A `JaxLoop`.
    """
    if num_envs <= 0:
        raise ValueError(f"make_jax_loop: `num_envs` must be > 0, got {num_envs}")
    if max_eval_steps is None:
        max_eval_steps = int(env_params.max_steps)
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def init(key, hparams=None):
        k_env, k_agent, k_loop = jax.random.split(key, 3)
        obs, env_state = v_reset(jax.random.split(k_env, num_envs), env_params)
        agent_state = agent.init(k_agent, obs[0], num_envs, hparams)
        return LoopState(
            agent=agent_state, env_state=env_state, obs=obs, key=k_loop,
            episode_return=jnp.zeros((num_envs,), jnp.float32),
            episode_length=jnp.zeros((num_envs,), jnp.int32),
            best_params=agent_state.params, best_score=jnp.full((), -jnp.inf, jnp.float32),
            last_score=jnp.full((), -jnp.inf, jnp.float32))

    fast_path = agent.fast_path
    block = (fast_path.update_every if fast_path is not None
             and fast_path.update_block is not None else 1)

    def env_iteration(state: LoopState, acting_state: AgentState):
        """Act with `acting_state`, step the environments; the agent is not updated."""
        key, k_act, k_step = jax.random.split(state.key, 3)
        action = agent.act(k_act, acting_state, state.obs)
        obs, env_state, reward, terminated, truncated, info = v_step(
            jax.random.split(k_step, num_envs), state.env_state, action, env_params)
        gamma = acting_state.hparams["gamma"]
        transition = Transition(
            obs_tm1=state.obs, a_tm1=action, r_t=reward.astype(jnp.float32),
            discount_t=gamma * (1.0 - terminated.astype(jnp.float32)),
            obs_t=info["final_observation"])
        last = jnp.logical_or(terminated, truncated)
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        episodes = (last.sum().astype(jnp.int32),
                    jnp.where(last, episode_return, 0.0).sum(),
                    jnp.where(last, episode_length, 0).sum().astype(jnp.int32))
        state = state._replace(
            env_state=env_state, obs=obs, key=key,
            episode_return=jnp.where(last, 0.0, episode_return),
            episode_length=jnp.where(last, 0, episode_length))
        return state, transition, last, episodes

    def iteration(state: LoopState, _):
        state, transition, last, episodes = env_iteration(state, state.agent)
        agent_state, agent_metrics = agent.update(state.agent, transition, last)
        metrics = IterationMetrics(
            *episodes, loss=agent_metrics["loss"], learned=agent_metrics["learned"],
            step=agent_state.step)
        return state._replace(agent=agent_state), metrics

    def block_iteration(state: LoopState, _):
        """`block` iterations: acting on the block's first agent state, one update_block."""
        start = state.agent

        def body(loop_state, k):
            acting_state = start._replace(step=start.step + k * num_envs)
            loop_state, transition, last, episodes = env_iteration(loop_state, acting_state)
            return loop_state, (transition, last, episodes)

        state, (transitions, lasts, episodes) = jax.lax.scan(
            body, state, jnp.arange(block, dtype=start.step.dtype))
        agent_state, agent_metrics = fast_path.update_block(start, transitions, lasts)
        steps = start.step + (jnp.arange(block, dtype=start.step.dtype) + 1) * num_envs
        metrics = IterationMetrics(
            *episodes, loss=agent_metrics["loss"], learned=agent_metrics["learned"],
            step=steps)
        return state._replace(agent=agent_state), metrics

    def evaluate(key, agent_state: AgentState, num_episodes: int):
        """Greedy returns of `num_episodes` episodes (the first episode of each env)."""
        k_reset, k_run = jax.random.split(key)
        obs, env_state = v_reset(jax.random.split(k_reset, num_episodes), env_params)
        v_step_e = jax.vmap(env.step, in_axes=(0, 0, 0, None))

        def body(carry, key):
            obs, env_state, total, running = carry
            k_act, k_step = jax.random.split(key)
            action = agent.act(k_act, agent_state, obs, evaluation=True)
            obs, env_state, reward, terminated, truncated, _ = v_step_e(
                jax.random.split(k_step, num_episodes), env_state, action, env_params)
            total = total + jnp.where(running, reward, 0.0)
            running = running & ~(terminated | truncated)
            return (obs, env_state, total, running), None

        carry = (obs, env_state, jnp.zeros((num_episodes,), jnp.float32),
                 jnp.ones((num_episodes,), jnp.bool_))
        (_, _, total, _), _ = jax.lax.scan(
            body, carry, jax.random.split(k_run, max_eval_steps))
        return total

    def run(state: LoopState, num_iterations: int):
        if block > 1 and num_iterations % block == 0:
            state, metrics = jax.lax.scan(block_iteration, state, None,
                                          length=num_iterations // block)
            metrics = jax.tree.map(lambda x: x.reshape((num_iterations,) + x.shape[2:]),
                                   metrics)
        else:
            state, metrics = jax.lax.scan(iteration, state, None, length=num_iterations)
        if eval_episodes > 0:
            key, k_eval = jax.random.split(state.key)
            score = evaluate(k_eval, state.agent, eval_episodes).mean()
            better = score >= state.best_score
            best_params = jax.tree.map(
                lambda new, old: jnp.where(better, new, old), state.agent.params,
                state.best_params)
            state = state._replace(
                key=key, best_params=best_params,
                best_score=jnp.maximum(score, state.best_score), last_score=score)
        return state, metrics

    return JaxLoop(init=init, run=jax.jit(run, static_argnums=1), evaluate=evaluate,
                   num_envs=num_envs)
