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


def persistent_q_learning(
    q_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    q_t: Array,
    action_gap_scale: float,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Persistent Q-learning error (Bellemare et al. 2016, "Increasing the Action Gap"):

    `delta = r_t + discount_t * ((1 - c) * max_a q_t[a] + c * q_t[a_tm1]) - q_tm1[a_tm1]`,
    with `c = action_gap_scale`. Bootstrapping partly from the SAME action widens the action
    gap; `c = 0` is `q_learning`.

    Args:
      q_tm1: action values at the source state, shape `[A]`.
      a_tm1: action taken at the source state, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: discount, shape `[]`.
      q_t: action values at the destination state, shape `[A]`.
      action_gap_scale: `c` in `[0, 1]`, the weight of `q_t[a_tm1]` in the bootstrap.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The TD error, shape `[]`.
    """
    fn = "persistent_q_learning"
    _checks.assert_inputs(
        fn, q_tm1=(q_tm1, 1, float), a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), q_t=(q_t, 1, float))
    _checks.assert_same_shape(fn, q_tm1=q_tm1, q_t=q_t)
    if isinstance(action_gap_scale, (int, float)) and not 0.0 <= action_gap_scale <= 1.0:
        raise ValueError(
            f"{fn}: argument `action_gap_scale` must be in [0, 1], got {action_gap_scale!r}")
    corrected_q_t = (1.0 - action_gap_scale) * jnp.max(q_t) + action_gap_scale * q_t[a_tm1]
    target_tm1 = maybe_stop_gradient(r_t + discount_t * corrected_q_t, stop_target_gradients)
    return target_tm1 - q_tm1[a_tm1]


def qv_learning(
    q_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    v_t: Numeric,
    stop_target_gradients: bool = True,
) -> Numeric:
    """QV-learning error for the action values (Wiering & van Hasselt 2007):
    `delta = r_t + discount_t * v_t - q_tm1[a_tm1]`.

    The action values bootstrap from a separately learned state value `v_t` (itself
    trained by `td_learning`).

    Args:
      q_tm1: action values at the source state, shape `[A]`.
      a_tm1: action taken at the source state, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: discount, shape `[]`.
      v_t: state value at the destination state, shape `[]`.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The TD error, shape `[]`.
    """
    _checks.assert_inputs(
        "qv_learning", q_tm1=(q_tm1, 1, float), a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), v_t=(v_t, 0, float))
    target_tm1 = maybe_stop_gradient(r_t + discount_t * v_t, stop_target_gradients)
    return target_tm1 - q_tm1[a_tm1]


def qv_max(
    v_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    q_t: Array,
    stop_target_gradients: bool = True,
) -> Numeric:
    """QVMAX error for the state value (Wiering & van Hasselt 2009):
    `delta = r_t + discount_t * max_a q_t[a] - v_tm1`.

    Args:
      v_tm1: state value at the source state, shape `[]`.
      r_t: reward, shape `[]`.
      discount_t: discount, shape `[]`.
      q_t: action values at the destination state, shape `[A]`.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The TD error, shape `[]`.
    """
    _checks.assert_inputs(
        "qv_max", v_tm1=(v_tm1, 0, float), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), q_t=(q_t, 1, float))
    target_tm1 = maybe_stop_gradient(r_t + discount_t * jnp.max(q_t), stop_target_gradients)
    return target_tm1 - v_tm1


def munchausen_q_learning(
    q_tm1: Array,
    a_tm1: Numeric,
    r_t: Numeric,
    discount_t: Numeric,
    q_t_target: Array,
    q_tm1_target: Array,
    entropy_temperature: float = 0.03,
    munchausen_coefficient: float = 0.9,
    clip_value_min: float = -1.0,
    stop_target_gradients: bool = True,
) -> Numeric:
    """Munchausen Q-learning error (Vieillard, Pietquin & Geist 2020, M-DQN). Not in rlax.

    With `tau = entropy_temperature`, `alpha = munchausen_coefficient` and the softmax
    policies of the TARGET network `pi(.|s) = softmax(q_target(s, .) / tau)`:

        target = r_t + alpha * clip(tau * log pi(a_tm1 | s_tm1), clip_value_min, 0)
                 + discount_t * sum_a pi(a | s_t) * (q_t_target[a] - tau * log pi(a | s_t))
        delta  = target - q_tm1[a_tm1]

    The first extra term is the scaled, clipped log-policy of the action taken (the
    "Munchausen" bonus); the bootstrap is the soft (entropy-regularised) value. With
    `alpha = 0` and `tau -> 0` this is `q_learning` on `q_t_target`.

    Args:
      q_tm1: online action values at the source state, shape `[A]`.
      a_tm1: action taken at the source state, shape `[]` int.
      r_t: reward, shape `[]`.
      discount_t: discount, shape `[]`.
      q_t_target: target-network action values at the destination state, shape `[A]`.
      q_tm1_target: target-network action values at the SOURCE state (for
        `log pi(a_tm1 | s_tm1)`), shape `[A]`.
      entropy_temperature: `tau > 0` (paper: 0.03).
      munchausen_coefficient: `alpha` (paper: 0.9).
      clip_value_min: lower clip `l_0 <= 0` of `tau * log pi(a_tm1 | s_tm1)` (paper: -1).
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The TD error, shape `[]`.
    """
    fn = "munchausen_q_learning"
    _checks.assert_inputs(
        fn, q_tm1=(q_tm1, 1, float), a_tm1=(a_tm1, 0, int), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), q_t_target=(q_t_target, 1, float),
        q_tm1_target=(q_tm1_target, 1, float))
    _checks.assert_same_shape(fn, q_tm1=q_tm1, q_t_target=q_t_target, q_tm1_target=q_tm1_target)
    if isinstance(entropy_temperature, (int, float)) and entropy_temperature <= 0:
        raise ValueError(
            f"{fn}: argument `entropy_temperature` must be > 0, got {entropy_temperature!r}")
    if isinstance(clip_value_min, (int, float)) and clip_value_min > 0:
        raise ValueError(f"{fn}: argument `clip_value_min` must be <= 0, got {clip_value_min!r}")
    tau = entropy_temperature
    log_pi_tm1 = jax.nn.log_softmax(q_tm1_target / tau)
    munchausen_term = munchausen_coefficient * jnp.clip(
        tau * log_pi_tm1[a_tm1], clip_value_min, 0.0)
    log_pi_t = jax.nn.log_softmax(q_t_target / tau)
    soft_v_t = jnp.sum(jnp.exp(log_pi_t) * (q_t_target - tau * log_pi_t))
    target_tm1 = maybe_stop_gradient(
        r_t + munchausen_term + discount_t * soft_v_t, stop_target_gradients)
    return target_tm1 - q_tm1[a_tm1]
