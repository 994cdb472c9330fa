"""Episode-counted training: R independent agents, each until it has finished E episodes.

    state, stats = run_episodes(agent, env, env_params, jax.random.split(key, 200),
                                num_episodes=500, hparams={"alpha": 0.5})
    stats.returns.mean(axis=0)          # [E] sum of rewards per episode, averaged over runs

The step is `agents.jax_loop`'s (one environment per run, `num_envs = 1`, no evaluation):
`agent.act`, `env.step` with automatic reset, the transition with the TRUE final
observation and `discount_t = gamma * (1 - terminated)`, `agent.update`. `run_episodes`
only counts: a `lax.while_loop` advances every run by one iteration (`jax.vmap` over the
runs of `JaxLoop.run(state, 1)`) until EVERY run has finished `num_episodes` episodes,
writing each episode's return and length into `[R, E]` buffers as it ends. An episode ends
at termination or truncation (the environment's time limit). A run that is done keeps
acting and learning until the slowest run is done, but nothing of it is recorded after its
E-th episode (its returned state is therefore a little further on than its statistics).

Traceable: jit the call (or a function that calls it) with `num_episodes` static.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from agents import jax_loop
from agents.base import Agent

Array = chex.Array


class EpisodeStats(NamedTuple):
    """Per-episode statistics of R runs.

    Attributes:
      returns: float32 `[R, E]`, the undiscounted sum of rewards of each episode.
      lengths: int32 `[R, E]`, the steps of each episode.
      episodes: int32 `[R]`, episodes recorded (E unless `max_steps` stopped the loop first;
        the entries of unrecorded episodes are 0).
      total_steps: int32 `[R]`, steps taken until the run's E-th episode ended (equal to
        `lengths.sum(axis=1)` when all E were recorded; else every step taken).
    """

    returns: Array
    lengths: Array
    episodes: Array
    total_steps: Array


class _Carry(NamedTuple):
    loop: jax_loop.LoopState  # [R]
    t: Array  # int32 [], steps taken by every run
    stats: EpisodeStats


def run_episodes(agent: Agent, env: Any, env_params: Any, keys: Array, num_episodes: int,
                 hparams: Mapping[str, Any] | None = None, max_steps: int = 10_000_000
                 ) -> tuple[jax_loop.LoopState, EpisodeStats]:
    """Trains R independent agents online, one environment each, for `num_episodes` episodes.

    Args:
      agent: an `Agent`; it is initialised for `num_envs = 1` and must act on `obs [1, O...]`
        (build an `Agent` with another `act` for a different behaviour policy).
      env: a tdkit JAX environment (`reset`, `step` with automatic reset and
        `info["final_observation"]`; `env_params.max_steps` is its time limit).
      env_params: its params, shared by the runs.
      keys: PRNG keys `[R]`, one per run (the run's `jax_loop` init key).
      num_episodes: `E`, a Python int >= 1.
      hparams: the agents' hyperparameter overrides: scalars (shared by the runs) or `[R]`
        arrays (one value per run, e.g. a flattened grid of step sizes), or None.
      max_steps: a safety cap on the steps of every run (a Python int).

    Returns:
      `(state, stats)`: the final `jax_loop.LoopState` of every run (leading `[R]`) and
      `EpisodeStats`.
    """
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes < 1:
        raise ValueError(f"run_episodes: `num_episodes` must be an int >= 1, got {num_episodes!r}")
    runs = keys.shape[0]
    hparams = {k: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (runs,))
               for k, v in (hparams or {}).items()}
    loop = jax_loop.make_jax_loop(agent, env, env_params, num_envs=1, eval_episodes=0)
    lanes = jnp.arange(runs)

    def cond(c: _Carry):
        return jnp.any(c.stats.episodes < num_episodes) & (c.t < max_steps)

    def body(c: _Carry):
        state, metrics = jax.vmap(lambda s: loop.run(s, 1))(c.loop)
        done = metrics.finished[:, 0] > 0  # [R]; one environment per run
        recording = c.stats.episodes < num_episodes
        # One scatter per buffer; index E (out of bounds) drops the write.
        slot = jnp.where(done, c.stats.episodes, num_episodes)
        stats = EpisodeStats(
            returns=c.stats.returns.at[lanes, slot].set(metrics.return_sum[:, 0], mode="drop"),
            lengths=c.stats.lengths.at[lanes, slot].set(metrics.length_sum[:, 0], mode="drop"),
            episodes=jnp.minimum(c.stats.episodes + done.astype(jnp.int32), num_episodes),
            total_steps=jnp.where(recording, c.t + 1, c.stats.total_steps))
        return _Carry(state, c.t + 1, stats)

    state = jax.vmap(loop.init)(keys, hparams)
    zeros = jnp.zeros((runs,), jnp.int32)
    stats = EpisodeStats(jnp.zeros((runs, num_episodes), jnp.float32),
                         jnp.zeros((runs, num_episodes), jnp.int32), zeros, zeros)
    out = jax.lax.while_loop(cond, body, _Carry(state, jnp.zeros((), jnp.int32), stats))
    return out.loop, out.stats
