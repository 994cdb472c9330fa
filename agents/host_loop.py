"""The host loop: any Gymnasium environment stepped on the host, the agent jitted.

    loop = HostLoop(agent, adapter)           # adapter: envs.host.HostAdapter (N envs)
    state = loop.init(key, example_obs, hparams)
    state, obs, stats = loop.run(state, obs, num_iterations)

Per iteration: `agent.act` on the current observations (one jitted call), the N
environments step on the host (numpy), and `agent.update` on the new transitions (one
jitted call, the state donated so the replay buffer is updated in place). The adapter runs
in SAME_STEP autoreset mode, so every transition is valid and `obs_t` is the TRUE final
observation at an episode end; `discount_t = gamma * (1 - terminated)`. The transition
shapes never change, so each function compiles once. Acting uses a key split off the
agent's key after every update (`key, act_key = split(state.key)`).

This is the reference loop, written to be read. `agents.host_fast.FastHostLoop` computes
the same thing with fewer dispatches (and, with blocks of updates, faster still).
"""

from typing import Any, NamedTuple

import jax
import numpy as np

from agents.base import Agent, AgentState


class ChunkStats(NamedTuple):
    """Host-side statistics of one chunk.

    Attributes:
      episode_returns: returns of the episodes that ended, in order.
      episode_lengths: their lengths.
      losses: float `[L]`, the losses of the updates that took a gradient step.
      steps: environment steps taken (iterations x N).
    """

    episode_returns: list
    episode_lengths: list
    losses: np.ndarray
    steps: int


class HostLoop:
    """Drives an `Agent` on an `envs.host.HostAdapter`, one `act` and one `update` per step.

    Args:
      agent: the `Agent`.
      adapter: a `HostAdapter` in SAME_STEP (or DISABLED) autoreset mode.
    """

    def __init__(self, agent: Agent, adapter: Any):
        from gymnasium.vector import AutoresetMode

        if adapter.autoreset_mode == AutoresetMode.NEXT_STEP:
            raise ValueError("HostLoop needs an adapter in SAME_STEP or DISABLED autoreset mode")
        self.agent = agent
        self.adapter = adapter
        self.num_envs = adapter.num_envs
        self._init = jax.jit(
            lambda key, obs, items: agent.init(key, obs, self.num_envs, dict(items)),
            static_argnums=2)

        def act(state, obs):
            key, act_key = jax.random.split(state.key)
            return state._replace(key=key), agent.act(act_key, state, obs)

        self.act = jax.jit(act, donate_argnums=0)
        self.update = jax.jit(agent.update, donate_argnums=0)

    def init(self, key: jax.Array, example_obs: Any, hparams: dict | None = None) -> AgentState:
        """The agent's initial state, built by one compiled program (op by op, a network's
        initializers would compile dozens of small programs)."""
        # Static (hashable) hyperparameters: the agent checks them while tracing.
        items = tuple(sorted((name, float(value)) for name, value in (hparams or {}).items()))
        return self._init(key, np.asarray(example_obs), items)

    def run(self, state: AgentState, obs: np.ndarray, num_iterations: int,
            should_stop=lambda: False) -> tuple[AgentState, np.ndarray, ChunkStats]:
        """Runs up to `num_iterations` steps of all N envs (fewer once `should_stop()`).

        Returns:
          `(state, obs, ChunkStats)`; `obs` is the observation to continue from.
        """
        returns, lengths, losses = [], [], []
        iterations = 0
        for _ in range(num_iterations):
            state, actions = self.act(state, obs)
            step = self.adapter.step(np.asarray(actions))
            state, metrics = self.update(state, step.transition, step.episodes.finished)
            losses.append((metrics["loss"], metrics["learned"]))
            finished = step.episodes.finished
            returns.extend(step.episodes.returns[finished].tolist())
            lengths.extend(step.episodes.lengths[finished].tolist())
            obs = step.next_obs
            iterations += 1
            if should_stop():
                break
        losses = jax.device_get(losses)
        learned = np.array([float(loss) for loss, ok in losses if ok], np.float64)
        return state, obs, ChunkStats(returns, lengths, learned, iterations * self.num_envs)
