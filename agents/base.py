"""The agent protocol: `Agent(init, act, update)` of pure functions over an explicit state.

    state = agent.init(key, example_obs, num_envs)
    actions = agent.act(key, state, obs)                    # obs [N, O...] -> actions [N]
    state, metrics = agent.update(state, transition, last)  # transition [N], last [N]

`transition` is a `tdkit.Transition` batch of N environments (one step each) whose `obs_t`
is the TRUE next observation (the final one at an episode end) and whose `discount_t`
is `gamma * (1 - terminated)`; `last` marks transitions that end an episode (terminated
OR truncated), so agents with per-episode state (eligibility traces, the next Sarsa action)
can reset it. Both training loops (`agents.jax_loop`, `agents.host_loop`) drive agents
through exactly these three functions; the host loop's fast path (`agents.host_fast`) also
uses an agent's optional `FastPath`.

Numeric hyperparameters that a sweep may vary (learning rate, discount, exploration, ...)
live in `AgentState.hparams` as float32 scalars, so `jax.vmap` over a batch of states trains
a grid of configurations in one program; structural ones (sizes, periods) are static.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import chex

Array = chex.Array


class AgentState(NamedTuple):
    """Everything an agent learns or carries, as arrays.

    Attributes:
      params: value-function parameters.
      target_params: target-network parameters (or the second table of Double Q-learning;
        equal to `params` for agents without a target).
      opt_state: optax state.
      replay: replay-buffer state (or `()` for online agents).
      step: int32 `[]`, environment steps seen (summed over the N environments).
      key: PRNG key for the agent's own randomness (replay sampling, coin flips).
      hparams: dict of float32 scalars, the numeric hyperparameters (`gamma`, ...).
      extra: agent-specific state (traces, n-step window, next actions, ...), a pytree.
    """

    params: Any
    target_params: Any
    opt_state: Any
    replay: Any
    step: Array
    key: Array
    hparams: Mapping[str, Array]
    extra: Any


class EpsilonGreedyActing(NamedTuple):
    """An epsilon-greedy `act` split into draws made in advance and a greedy part.

    A loop that acts K times between two updates can draw the exploration of all K steps in
    one call and skip the value function on the steps where every environment explores.

    Attributes:
      draws: `draws(key, state, num_steps, num_envs) -> tdkit.policies.EpsilonGreedyDraws`
        with a leading `[K]`: entry k is exactly what
        `act(jax.random.fold_in(key, k), state_k, obs)` draws, where
        `state_k = state._replace(step=state.step + k * num_envs)` (the exploration
        schedule moves on by one step of the N environments per entry).
      greedy: `greedy(params, obs, noise) -> actions [N]`, the greedy part of `act`
        (`tdkit.policies.greedy_from_noise` of the action values), so that
        `act(...) == where(explore[k], random_actions[k], greedy(state.params, obs, noise[k]))`.
    """

    draws: Callable[..., Any]
    greedy: Callable[..., Array]


class FastPath(NamedTuple):
    """Optional extras an agent offers to the host loop's fast path (`agents.host_fast`),
    which probes `Agent.fast_path` for them; the reference loops use `init/act/update` only.

    Attributes:
      update_every: K, how many steps the host loop may batch into one update dispatch
        (exact when the acting parameters change only every K steps, e.g. DQN with
        `train_every = K`; 1 for agents whose `act` needs every update).
      update_block: optional `update_block(state, transitions, lasts) -> (state, metrics)`
        for K transitions at once (leading `[K]` on `transitions`, `lasts [K, N]` and on
        every metric): the same result as `update` applied K times in order (`lax.scan`),
        computed faster where the agent can (None: the fast loop scans `update`).
      epsilon_greedy: optional `EpsilonGreedyActing` for agents whose `act` is epsilon-greedy
        on `params` alone; the fast loop then draws each block's exploration in advance.
    """

    update_every: int = 1
    update_block: Callable[..., tuple[AgentState, dict]] | None = None
    epsilon_greedy: EpsilonGreedyActing | None = None


class Agent(NamedTuple):
    """An agent as pure functions plus what the loops need to know.

    Attributes:
      init: `init(key, example_obs, num_envs, hparams=None) -> AgentState`; `example_obs` is
        ONE observation `[O...]`; `hparams` overrides the default numeric hyperparameters
        (float scalars, may be traced for sweeps).
      act: `act(key, state, obs, evaluation=False) -> actions [N]`; `evaluation=True` acts
        greedily (a static flag).
      update: `update(state, transition, last) -> (state, metrics)`, `metrics` a dict of
        float32 scalars (`loss`, and `learned`, a bool: whether a gradient step was taken).
      name: the agent's registry name.
      default_hparams: dict of the default numeric hyperparameters.
      fast_path: optional `FastPath` for the host loop's fast path (None: none).
    """

    init: Callable[..., AgentState]
    act: Callable[..., Array]
    update: Callable[..., tuple[AgentState, dict]]
    name: str
    default_hparams: Mapping[str, float]
    fast_path: FastPath | None = None


def scan_updates(update: Callable, state: AgentState, transitions: Any, lasts: Array
                 ) -> tuple[AgentState, dict]:
    """`update` applied to K transitions in order (`lax.scan`); metrics gain a leading `[K]`."""
    import jax

    return jax.lax.scan(lambda s, x: update(s, *x), state, (transitions, lasts))


def merge_hparams(defaults: Mapping[str, float], overrides: Mapping[str, Any] | None) -> dict:
    """Defaults updated by `overrides`; an unknown name raises ValueError listing valid ones."""
    import jax.numpy as jnp

    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown}; valid: {sorted(defaults)}")
    merged = {**defaults, **overrides}
    return {k: jnp.asarray(v, jnp.float32) for k, v in merged.items()}
