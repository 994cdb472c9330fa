"""Action selection from action values, for ONE observation (`[A]`); batch with `jax.vmap`.

Ties between maximal action values are broken uniformly at random, as the textbook's
experiments require (an all-zero initial table must not always pick action 0).
"""

from typing import NamedTuple

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

    Equal to `epsilon_greedy_from_draws(batched_epsilon_greedy_draws(key, N, A, epsilon), q)`.

    Args:
      key: PRNG key.
      q: action values, shape `[N, A]`.
      epsilon: exploration rate in [0, 1], a scalar shared by the batch or one per
        observation, shape `[N]` (e.g. Ape-X's per-actor rates).

    Returns:
      int32 actions, shape `[N]`.
    """
    _checks.assert_inputs(
        "batched_epsilon_greedy", q=(q, 2, float), epsilon=(epsilon, {0, 1}, float))
    if jnp.ndim(epsilon) == 1 and jnp.shape(epsilon) != q.shape[:1]:
        raise AssertionError(
            f"[Chex] batched_epsilon_greedy: argument `epsilon` must be a scalar or have "
            f"shape [N] = {q.shape[:1]}, got {jnp.shape(epsilon)}")
    u = jax.random.uniform(key, (q.shape[0], q.shape[1] + 1))
    epsilon_axis = 0 if jnp.ndim(epsilon) == 1 else None
    return jax.vmap(_epsilon_greedy, in_axes=(0, 0, epsilon_axis))(u, q, epsilon)


class EpsilonGreedyDraws(NamedTuple):
    """The random part of `batched_epsilon_greedy`, drawn before the action values exist.

    Attributes:
      explore: bool `[..., N]`, observation i takes the random action.
      random_actions: int32 `[..., N]`, the uniformly random action of observation i.
      noise: float32 `[..., N, A]`, uniform numbers that break ties among maximal actions.
    """

    explore: Array
    random_actions: Array
    noise: Array


def batched_epsilon_greedy_draws(key: chex.PRNGKey, num_observations: int, num_actions: int,
                                 epsilon: chex.Numeric) -> EpsilonGreedyDraws:
    """The draws `batched_epsilon_greedy(key, q, epsilon)` makes for `q` of shape `[N, A]`.

    A loop that knows its exploration in advance can take the random actions without
    computing action values at all, and compute them (`epsilon_greedy_from_draws`) only
    where some observation acts greedily; the actions are the same.

    Args:
      key: PRNG key.
      num_observations: `N` (static).
      num_actions: `A` (static).
      epsilon: exploration rate in [0, 1], scalar.

    Returns:
      `EpsilonGreedyDraws` with `explore [N]`, `random_actions [N]`, `noise [N, A]`.
    """
    _checks.assert_inputs("batched_epsilon_greedy_draws", epsilon=(epsilon, 0, float))
    u = jax.random.uniform(key, (num_observations, num_actions + 1))
    noise = u[:, 1:]
    return EpsilonGreedyDraws(explore=u[:, 0] < epsilon,
                              random_actions=jnp.argmax(noise, axis=-1).astype(jnp.int32),
                              noise=noise)


def epsilon_greedy_from_draws(draws: EpsilonGreedyDraws, q: Array) -> Array:
    """Epsilon-greedy actions from draws made in advance (`batched_epsilon_greedy_draws`).

    Args:
      draws: `EpsilonGreedyDraws` with `explore [N]`, `random_actions [N]`, `noise [N, A]`.
      q: action values, shape `[N, A]`.

    Returns:
      int32 actions, shape `[N]`.
    """
    return jnp.where(draws.explore, draws.random_actions, greedy_from_noise(q, draws.noise))


def greedy_from_noise(q: Array, noise: Array) -> Array:
    """Greedy actions, ties broken by the largest `noise` (uniform noise: uniformly).

    Args:
      q: action values, shape `[N, A]`.
      noise: float, shape `[N, A]` (e.g. `EpsilonGreedyDraws.noise`).

    Returns:
      int32 actions, shape `[N]`.
    """
    _checks.assert_inputs("greedy_from_noise", q=(q, 2, float), noise=(noise, 2, float))
    _checks.assert_same_shape("greedy_from_noise", q=q, noise=noise)
    return jax.vmap(_argmax_among_max)(q, noise)


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
