"""Epsilon-greedy acting on a learner's action values, shared by the drivers.

`epsilon_greedy(action_values, num_actions, decay_steps)` gives an agent's `act` and its
`agents.base.EpsilonGreedyActing` (the exploration of K steps drawn at once, for the host
loop's fast path). Epsilon decays linearly from `hparams["epsilon_start"]` to
`hparams["epsilon_end"]` over `decay_steps` environment steps (summed over the N envs).
With `noisy=True` (noisy networks) the action values themselves are drawn with a key of
their own when training, and computed noise-free for greedy evaluation; such agents have no
`EpsilonGreedyActing` (their greedy part depends on a key).
"""

from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp

from agents.base import EpsilonGreedyActing
from tdkit import policies

Array = chex.Array

HPARAMS = {"epsilon_start": 1.0, "epsilon_end": 0.05}
NOISE_STREAM = 0x4015E  # the key of a noisy network's values: fold_in(act key, NOISE_STREAM)
HPARAM_HELP = {"epsilon_start": "initial exploration rate",
               "epsilon_end": "final exploration rate"}


class EpsilonGreedy:
    """`act`, `epsilon_at` and `acting` (`EpsilonGreedyActing`) of one agent.

    Args:
      action_values: `action_values(params, obs [N, O...]) -> [N, A]`.
      num_actions: A.
      decay_steps: environment steps of the linear decay, > 0.
      noisy: `action_values(params, obs, key)` takes a key (noisy networks).
    """

    def __init__(self, action_values: Callable[..., Array], num_actions: int,
                 decay_steps: int, noisy: bool = False):
        self.action_values = action_values
        self.num_actions = num_actions
        self.decay_steps = decay_steps
        self.noisy = noisy
        self.acting = None if noisy else EpsilonGreedyActing(draws=self.draws,
                                                             greedy=self.greedy)

    def epsilon_at(self, step: Array, hparams) -> Array:
        """The schedule at environment step(s) `step` (any shape)."""
        frac = jnp.minimum(step.astype(jnp.float32) / self.decay_steps, 1.0)
        return hparams["epsilon_start"] + (hparams["epsilon_end"] - hparams["epsilon_start"]) * frac

    def act(self, key, state, obs, evaluation=False):
        """`Agent.act`: epsilon-greedy on `state.params` (greedy with `evaluation=True`)."""
        obs = jnp.asarray(obs, jnp.float32)
        if self.noisy:  # noisy values when training, the noise-free network when evaluating
            noise_key = None if evaluation else jax.random.fold_in(key, NOISE_STREAM)
            q = self.action_values(state.params, obs, noise_key)
        else:
            q = self.action_values(state.params, obs)
        eps = jnp.zeros((), jnp.float32) if evaluation else self.epsilon_at(
            state.step, state.hparams)
        return policies.batched_epsilon_greedy(key, q, eps)

    def draws(self, key, state, num_steps, num_envs):
        """`EpsilonGreedyActing.draws`: entry k is what `act(fold_in(key, k), ...)` draws at
        environment step `state.step + k * num_envs`."""
        index = jnp.arange(num_steps, dtype=jnp.int32)
        eps = self.epsilon_at(state.step + index * num_envs, state.hparams)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)
        return jax.vmap(policies.batched_epsilon_greedy_draws, in_axes=(0, None, None, 0))(
            keys, num_envs, self.num_actions, eps)

    def greedy(self, params, obs, noise):
        """`EpsilonGreedyActing.greedy`: the greedy part of `act` given its tie noise."""
        return policies.greedy_from_noise(
            self.action_values(params, jnp.asarray(obs, jnp.float32)), noise)
