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
