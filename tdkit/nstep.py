"""n-step transitions from a stream of one-step transitions of N parallel environments.

A replay buffer that learns from n-step targets stores, for every step t,
`(obs_t, a_t, r_t+1 + g r_t+2 + ... , discount product, obs_t+n)`, cut at an episode end.
`NStepAccumulator` does this inside `jit` with fixed shapes: it keeps the last n one-step
transitions of every environment and, at every push, emits the n-step transition of the
OLDEST one (so each transition is emitted exactly once, n - 1 pushes after it happened; the
first n - 1 pushes emit nothing, `valid` is False).

For the emitted transition starting at step k, with one-step discounts `d_j` (zero at
termination) and episode-end flags `last_j` (terminated or truncated):

    r      = sum_{j=k}^{K} (d_k ... d_{j-1}) r_j
    discount = d_k ... d_K
    obs_t  = obs_t of step K,     K = min(k + n - 1, first step >= k with last_j)

So a termination inside the window gives discount 0, and a truncation bootstraps from the
true final observation with `gamma ** (K - k + 1)`. With n = 1 the stream passes through.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from tdkit.types import Transition

Array = chex.Array


class NStepState(NamedTuple):
    """Window of the last n one-step transitions of N envs (every leaf `[n, N, ...]`).

    Attributes:
      window: `Transition` with leaves `[n, N, ...]`, oldest first.
      last: bool `[n, N]`, the transition ended an episode (terminated or truncated).
      count: int32 `[]`, pushes so far (saturates at n).
    """

    window: Transition
    last: Array
    count: Array


class NStepAccumulator(NamedTuple):
    """`init(example_transition [N], n)` and `push(state, transition [N], last [N])`."""

    init: callable
    push: callable


def nstep_accumulator(n: int) -> NStepAccumulator:
    """Builds an n-step accumulator.

    Args:
      n: number of steps, a Python int >= 1.

    Returns:
      `NStepAccumulator(init, push)`:
        `init(example_transition) -> NStepState`, `example_transition` with leaves `[N, ...]`;
        `push(state, transition, last) -> (state, nstep_transition, valid)`, `transition` with
        leaves `[N, ...]`, `last` bool `[N]`; `nstep_transition` has leaves `[N, ...]` and
        `valid` is a bool scalar (False for the first n - 1 pushes).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"nstep_accumulator: `n` must be a Python int >= 1, got {n!r}")

    def init(example_transition: Transition) -> NStepState:
        window = jax.tree.map(
            lambda x: jnp.zeros((n,) + jnp.shape(x), jnp.asarray(x).dtype), example_transition)
        last = jnp.zeros((n,) + jnp.shape(example_transition.r_t), jnp.bool_)
        return NStepState(window, last, jnp.zeros((), jnp.int32))

    def push(state: NStepState, transition: Transition, last: Array):
        chex.assert_equal_shape([transition.r_t, transition.discount_t, last])
        window = jax.tree.map(
            lambda w, x: jnp.concatenate([w[1:], jnp.asarray(x, w.dtype)[None]], axis=0),
            state.window, transition)
        lasts = jnp.concatenate([state.last[1:], jnp.asarray(last, jnp.bool_)[None]], axis=0)
        count = jnp.minimum(state.count + 1, n)
        # included[j]: step j of the window belongs to the oldest transition's n-step return,
        # i.e. no episode ended strictly before j.
        ended_before = jnp.cumsum(lasts, axis=0) - lasts
        included = (ended_before == 0).astype(window.r_t.dtype)  # [n, N]
        discounts = window.discount_t * included + (1.0 - included)  # 1 past the cut
        scale = jnp.cumprod(
            jnp.concatenate([jnp.ones_like(discounts[:1]), discounts[:-1]], axis=0), axis=0)
        reward = jnp.sum(scale * window.r_t * included, axis=0)
        discount = jnp.prod(discounts, axis=0)
        final_index = jnp.sum(included, axis=0).astype(jnp.int32) - 1  # K - k, [N]
        obs_t = jax.tree.map(
            lambda o: jnp.take_along_axis(
                o, final_index.reshape((1, -1) + (1,) * (o.ndim - 2)), axis=0)[0],
            window.obs_t)
        out = Transition(
            obs_tm1=jax.tree.map(lambda o: o[0], window.obs_tm1), a_tm1=window.a_tm1[0],
            r_t=reward, discount_t=discount, obs_t=obs_t)
        return NStepState(window, lasts, count), out, count >= n

    return NStepAccumulator(init, push)
