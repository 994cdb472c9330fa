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
PER_ENV_ALPHA = 7.0  # Ape-X's exponent range: epsilon_i = epsilon ** (1 + 7 i / (N - 1))
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
      per_env: each of the N environments explores at its own rate (Ape-X, Horgan et al.
        2018): environment i acts with `epsilon ** (1 + PER_ENV_ALPHA * i / (N - 1))`, where
        `epsilon` is the shared schedule, so the first environment follows the schedule and
        the others explore less and less (the reported `epsilon` is the schedule's).
    """

    def __init__(self, action_values: Callable[..., Array], num_actions: int,
                 decay_steps: int, noisy: bool = False, per_env: bool = False):
        self.action_values = action_values
        self.num_actions = num_actions
        self.decay_steps = decay_steps
        self.noisy = noisy
        self.per_env = per_env
        self.acting = None if (noisy or per_env) else EpsilonGreedyActing(
            draws=self.draws, greedy=self.greedy)

    def epsilon_at(self, step: Array, hparams) -> Array:
        """The schedule at environment step(s) `step` (any shape)."""
        frac = jnp.minimum(step.astype(jnp.float32) / self.decay_steps, 1.0)
        return hparams["epsilon_start"] + (hparams["epsilon_end"] - hparams["epsilon_start"]) * frac

    def env_epsilons(self, epsilon: Array, num_envs: int) -> Array:
        """The per-environment rates `[N]` of the shared rate `epsilon` (`per_env=True`)."""
        exponent = 1.0 + PER_ENV_ALPHA * jnp.arange(num_envs, dtype=jnp.float32) / max(
            num_envs - 1, 1)
        return epsilon ** exponent

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
        if self.per_env and not evaluation:
            eps = self.env_epsilons(eps, q.shape[0])
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


class ContinuousActing:
    """`act` of a continuous-action learner (`Learner.policy`): uniformly random actions in
    the box for the first `random_steps` environment steps (filling the replay, as CleanRL
    and SB3's `learning_starts` do), then the learner's exploring policy; the greedy policy
    (`policy(..., key=None)`) for evaluation.

    Args:
      policy: `policy(params, obs [N, O...], key | None, hparams) -> actions [N, A]`.
      action_low, action_high: float32 `[A]` bounds of the action box.
      random_steps: environment steps (summed over the N envs) of uniform actions.
    """

    acting = None  # no epsilon-greedy draws for the host loop's fast path

    def __init__(self, policy: Callable[..., Array], action_low, action_high,
                 random_steps: int):
        self.policy = policy
        self.low = jnp.asarray(action_low, jnp.float32)
        self.high = jnp.asarray(action_high, jnp.float32)
        self.random_steps = random_steps

    def act(self, key, state, obs, evaluation=False):
        """`Agent.act`: actions `[N, A]` for observations `[N, O...]`."""
        obs = jnp.asarray(obs, jnp.float32)
        if evaluation:
            return self.policy(state.params, obs, None, state.hparams)
        k_policy, k_random = jax.random.split(key)
        actions = self.policy(state.params, obs, k_policy, state.hparams)
        uniform = jax.random.uniform(k_random, actions.shape, jnp.float32, self.low, self.high)
        return jnp.where(state.step < self.random_steps, uniform, actions)
