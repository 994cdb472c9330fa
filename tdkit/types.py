"""Core containers shared across tdkit, agents and envs."""

from typing import NamedTuple

import chex
import jax.numpy as jnp

from tdkit import _checks


class Transition(NamedTuple):
    """One transition (or a batch of them, with a leading axis on every field).

    Attributes:
        obs_tm1: observation at the source step, shape `[O...]` (`[B, O...]` batched).
        a_tm1: action taken at the source step, shape `[]` int (or `[A...]`), `[B, ...]` batched.
        r_t: reward received on the way to the destination step, shape `[]`.
        discount_t: `gamma * (1 - terminated_t)`, shape `[]`. Zero only at termination;
            a truncated (time-limited) transition keeps `gamma`.
        obs_t: the TRUE next observation (also at the end of an episode, never the reset
            observation), shape `[O...]`.
    """

    obs_tm1: chex.ArrayTree
    a_tm1: chex.Array
    r_t: chex.Array
    discount_t: chex.Array
    obs_t: chex.ArrayTree


def discount_from_terminated(terminated: chex.Array, gamma: float) -> chex.Array:
    """Builds `discount_t = gamma * (1 - terminated_t)`.

    Truncation (a time limit) is deliberately NOT an argument: a truncated transition keeps
    the full discount `gamma` and bootstraps from the true final observation.

    Args:
        terminated: bool (or 0/1) array of any shape `[...]`: the episode ended in a
            terminal state at this step.
        gamma: the discount factor, a Python float in [0, 1].

    Returns:
        float32 array with the shape of `terminated`.
    """
    if not isinstance(gamma, (int, float)) or not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(
            f"discount_from_terminated: `gamma` must be a number in [0, 1], got {gamma!r}")
    terminated = jnp.asarray(terminated)
    _checks.check_dtype_kind("discount_from_terminated", terminated=(terminated, "bool_or_int"))
    return jnp.float32(gamma) * (1.0 - terminated.astype(jnp.float32))


class SarsaTransition(NamedTuple):
    """A `Transition` plus the action taken at the destination step, for Sarsa.

    Attributes:
        obs_tm1: observation at the source step, shape `[O...]` (`[B, O...]` batched).
        a_tm1: action taken at the source step, shape `[]` int.
        r_t: reward received on the way to the destination step, shape `[]`.
        discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
        obs_t: the TRUE next observation, shape `[O...]`.
        a_t: action taken (or to be taken) at the destination step, shape `[]` int.
    """

    obs_tm1: chex.ArrayTree
    a_tm1: chex.Array
    r_t: chex.Array
    discount_t: chex.Array
    obs_t: chex.ArrayTree
    a_t: chex.Array


def random_transitions(key, batch_size: int, obs_low, obs_high, num_actions: int,
                       gamma: float = 0.99, terminal_prob: float = 0.05) -> Transition:
    """A batch of synthetic transitions, for benchmarks and tests of TD losses and gradients.

    Observations are uniform in the box `[obs_low, obs_high]`, actions uniform in
    `[0, num_actions)`, rewards 1, and each transition terminates (discount 0) with
    probability `terminal_prob`, else keeps `gamma`.

    Args:
      key: PRNG key.
      batch_size: `B`.
      obs_low, obs_high: bounds of one observation, shape `[O]`.
      num_actions: `A`.
      gamma: discount of non-terminal transitions.
      terminal_prob: probability of termination.

    Returns:
      A `Transition` with leaves `[B, O]` (observations), `[B]` int32 (actions) and `[B]`
      float32 (rewards, discounts).
    """
    import jax

    low = jnp.asarray(obs_low, jnp.float32)
    high = jnp.asarray(obs_high, jnp.float32)
    if low.ndim != 1 or low.shape != high.shape:
        raise ValueError(
            f"random_transitions: `obs_low` and `obs_high` must be [O] of equal shape, got "
            f"{low.shape} and {high.shape}")
    k1, k2, k3, k4 = jax.random.split(key, 4)
    obs = lambda k: jax.random.uniform(k, (batch_size,) + low.shape, jnp.float32, low, high)
    terminated = jax.random.bernoulli(k4, terminal_prob, (batch_size,))
    return Transition(
        obs_tm1=obs(k1),
        a_tm1=jax.random.randint(k2, (batch_size,), 0, num_actions, jnp.int32),
        r_t=jnp.ones((batch_size,), jnp.float32),
        discount_t=discount_from_terminated(terminated, gamma),
        obs_t=obs(k3))
