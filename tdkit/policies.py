"""Action selection from action values, for ONE observation (`[A]`); batch with `jax.vmap`.

Ties between maximal action values are broken uniformly at random, as the textbook's
experiments require (an all-zero initial table must not always pick action 0).
"""

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks

Array = chex.Array


def _is_max(q: Array) -> Array:
    return q >= jnp.max(q)


def greedy(key: chex.PRNGKey, q: Array) -> Array:
    """A greedy action, ties broken uniformly at random.

    Args:
      key: PRNG key.
      q: action values, shape `[A]`.

    Returns:
      int32 action, shape `[]`.
    """
    _checks.assert_inputs("greedy", q=(q, 1, float))
    noise = jax.random.uniform(key, q.shape)
    return _argmax_among_max(q, noise)


def _argmax_among_max(q: Array, noise: Array) -> Array:
    """The maximal action with the largest `noise` (uniform noise: a uniformly random one)."""
    return jnp.argmax(jnp.where(_is_max(q), noise, -1.0)).astype(jnp.int32)


def epsilon_greedy(key: chex.PRNGKey, q: Array, epsilon: chex.Numeric) -> Array:
    """With probability `epsilon` a uniformly random action, else a greedy one (random ties).

    One uniform draw of `A + 1` numbers: the first decides whether to explore, the others pick
    the random action (their argmax) or break ties among the maximal actions, so
    `P(a) = epsilon / A + (1 - epsilon) [a is maximal] / #maximal` (`epsilon_greedy_probs`).

    Args:
      key: PRNG key.
      q: action values, shape `[A]`.
      epsilon: exploration rate in [0, 1], scalar (may be traced).

    Returns:
      int32 action, shape `[]`.
    """
    _checks.assert_inputs("epsilon_greedy", q=(q, 1, float), epsilon=(epsilon, 0, float))
    return _epsilon_greedy(jax.random.uniform(key, (q.shape[0] + 1,)), q, epsilon)


def batched_epsilon_greedy(key: chex.PRNGKey, q: Array, epsilon: chex.Numeric) -> Array:
    """`epsilon_greedy` for a batch of observations with ONE random draw (cheaper than
    splitting the key per observation).

    Args:
      key: PRNG key.
      q: action values, shape `[N, A]`.
      epsilon: exploration rate in [0, 1], scalar (shared by the batch).

    Returns:
      int32 actions, shape `[N]`.
    """
    _checks.assert_inputs(
        "batched_epsilon_greedy", q=(q, 2, float), epsilon=(epsilon, 0, float))
    u = jax.random.uniform(key, (q.shape[0], q.shape[1] + 1))
    return jax.vmap(_epsilon_greedy, in_axes=(0, 0, None))(u, q, epsilon)


def _epsilon_greedy(u: Array, q: Array, epsilon: chex.Numeric) -> Array:
    """Epsilon-greedy from uniform numbers `u [A + 1]`."""
    noise = u[1:]
    return jnp.where(u[0] < epsilon, jnp.argmax(noise).astype(jnp.int32),
                     _argmax_among_max(q, noise))


def epsilon_greedy_probs(q: Array, epsilon: chex.Numeric) -> Array:
    """Probabilities of the epsilon-greedy policy: `epsilon / A` each, plus `1 - epsilon`
    shared evenly among the maximal actions.

    Args:
      q: action values, shape `[A]`.
      epsilon: exploration rate in [0, 1], scalar.

    Returns:
      float probabilities, shape `[A]`.
    """
    _checks.assert_inputs("epsilon_greedy_probs", q=(q, 1, float), epsilon=(epsilon, 0, float))
    is_max = _is_max(q).astype(q.dtype)
    num_actions = q.shape[0]
    return epsilon / num_actions + (1.0 - epsilon) * is_max / is_max.sum()


def linear_schedule(start: float, end: float, steps: int):
    """`t -> start + (end - start) * min(t / steps, 1)`: a linear decay (e.g. of epsilon).

    Args:
      start: value at t = 0.
      end: value from t = steps on.
      steps: length of the decay, > 0.

    Returns:
      A jittable function of an int step `[]` returning a float32 scalar.
    """
    if steps <= 0:
        raise ValueError(f"linear_schedule: `steps` must be > 0, got {steps!r}")

    def schedule(t):
        frac = jnp.minimum(jnp.asarray(t, jnp.float32) / steps, 1.0)
        return jnp.float32(start) + (jnp.float32(end) - jnp.float32(start)) * frac

    return schedule
