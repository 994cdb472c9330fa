"""One-step TD errors for ONE transition.

Names, argument order and values follow rlax (`rlax.td_learning`, `rlax.q_learning`, ...).
Each function returns the TD error `delta = target - prediction`, where the bootstrapped
target is wrapped in `jax.lax.stop_gradient` unless `stop_target_gradients=False`.
Batches come from `jax.vmap`.
"""

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks

Array = chex.Array
Numeric = chex.Numeric


def maybe_stop_gradient(x: chex.ArrayTree, stop: bool | Array) -> chex.ArrayTree:
    """`jax.lax.stop_gradient(x)` if `stop` else `x` (`stop` may be a Python or traced bool)."""
    if isinstance(stop, bool):
        return jax.lax.stop_gradient(x) if stop else x
    return jax.tree.map(lambda v: jax.lax.select(stop, jax.lax.stop_gradient(v), v), x)


def td_learning(
    v_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    v_t: Numeric,
    stop_target_gradients: bool = True,
) -> Numeric:
    """TD(0) error for a state value: `delta = r_t + discount_t * v_t - v_tm1`.

    Args:
      v_tm1: value at the source state, shape `[]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      v_t: value at the destination state, shape `[]`.
      stop_target_gradients: wrap `r_t + discount_t * v_t` in `stop_gradient`.

    Returns:
      The TD error, shape `[]`.
    """
    _checks.assert_inputs(
        "td_learning", v_tm1=(v_tm1, 0, float), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), v_t=(v_t, 0, float))
    target_tm1 = maybe_stop_gradient(r_t + discount_t * v_t, stop_target_gradients)
    return target_tm1 - v_tm1


def sarsa(
    q_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    q_t: Array,
    a_t: Numeric,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Sarsa error: `delta = r_t + discount_t * q_t[a_t] - q_tm1[a_tm1]`.

    Args:
      q_tm1: action values at the source state, shape `[A]`.
      a_tm1: action taken at the source state, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: discount, shape `[]`.
      q_t: action values at the destination state, shape `[A]`.
      a_t: action taken at the destination state, shape `[]` int.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The TD error, shape `[]`.
    """
    _checks.assert_inputs(
        "sarsa", q_tm1=(q_tm1, 1, float), a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), q_t=(q_t, 1, float), a_t=(a_t, 0, int))
    target_tm1 = maybe_stop_gradient(r_t + discount_t * q_t[a_t], stop_target_gradients)
    return target_tm1 - q_tm1[a_tm1]


def expected_sarsa(
    q_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    q_t: Array,
    probs_a_t: Array,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Expected Sarsa error: `delta = r_t + discount_t * <probs_a_t, q_t> - q_tm1[a_tm1]`.

    Args:
      q_tm1: action values at the source state, shape `[A]`.
      a_tm1: action taken at the source state, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: discount, shape `[]`.
      q_t: action values at the destination state, shape `[A]`.
      probs_a_t: target-policy probabilities at the destination state, shape `[A]`.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The TD error, shape `[]`.
    """
    _checks.assert_inputs(
        "expected_sarsa", q_tm1=(q_tm1, 1, float), a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), q_t=(q_t, 1, float),
        probs_a_t=(probs_a_t, 1, float))
    _checks.assert_same_shape("expected_sarsa", q_t=q_t, probs_a_t=probs_a_t)
    target_tm1 = maybe_stop_gradient(
        r_t + discount_t * jnp.dot(q_t, probs_a_t), stop_target_gradients)
    return target_tm1 - q_tm1[a_tm1]


def q_learning(
    q_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    q_t: Array,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Q-learning error: `delta = r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]`.

    Args:
      q_tm1: action values at the source state, shape `[A]`.
      a_tm1: action taken at the source state, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: discount, shape `[]`.
      q_t: action values at the destination state, shape `[A]`.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The TD error, shape `[]`.
    """
    _checks.assert_inputs(
        "q_learning", q_tm1=(q_tm1, 1, float), a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), q_t=(q_t, 1, float))
    target_tm1 = maybe_stop_gradient(r_t + discount_t * jnp.max(q_t), stop_target_gradients)
    return target_tm1 - q_tm1[a_tm1]


def double_q_learning(
    q_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    q_t_value: Array,
    q_t_selector: Array,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Double Q-learning error (van Hasselt 2010):
    `delta = r_t + discount_t * q_t_value[argmax q_t_selector] - q_tm1[a_tm1]`.

    Args:
      q_tm1: action values at the source state, shape `[A]`.
      a_tm1: action taken at the source state, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: discount, shape `[]`.
      q_t_value: action values that evaluate the chosen action, shape `[A]`.
      q_t_selector: action values that choose the action, shape `[A]`.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The TD error, shape `[]`.
    """
    _checks.assert_inputs(
        "double_q_learning", q_tm1=(q_tm1, 1, float), a_tm1=(a_tm1, 0, int),
        r_t=(r_t, 0, float), discount_t=(discount_t, 0, float),
        q_t_value=(q_t_value, 1, float), q_t_selector=(q_t_selector, 1, float))
    _checks.assert_same_shape(
        "double_q_learning", q_t_value=q_t_value, q_t_selector=q_t_selector)
    target_tm1 = maybe_stop_gradient(
        r_t + discount_t * q_t_value[jnp.argmax(q_t_selector)], stop_target_gradients)
    return target_tm1 - q_tm1[a_tm1]
