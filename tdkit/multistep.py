"""Multi-step TD errors for ONE trajectory (`[T]`, `[T, A]`).

Names, argument order and values follow rlax where rlax has the function (`td_lambda`,
`sarsa_lambda`, `q_lambda`, `retrace`, `vtrace`, `vtrace_td_error_and_advantage`);
`tree_backup` is new. Every function returns `target - prediction` with the target under
`jax.lax.stop_gradient` unless `stop_target_gradients=False`.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks
from tdkit.returns import (
    batched_index,
    general_off_policy_returns_from_action_values,
    lambda_returns,
)

Array = chex.Array
Numeric = chex.Numeric


def td_lambda(
    v_tm1: Array,
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    lambda_: Numeric,
    stop_target_gradients: bool = True,
) -> Array:
    """TD(lambda) errors: `lambda_returns(r_t, discount_t, v_t, lambda_) - v_tm1`.

    Args:
      v_tm1: values at the source steps, shape `[T]`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      v_t: values at the destination steps, shape `[T]`.
      lambda_: a scalar or `[T]` lambda.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      TD(lambda) errors, shape `[T]`.
    """
    fn = "td_lambda"
    _checks.assert_inputs(
        fn, v_tm1=(v_tm1, 1, float), r_t=(r_t, 1, float), discount_t=(discount_t, 1, float),
        v_t=(v_t, 1, float))
    _checks.assert_same_shape(fn, v_tm1=v_tm1, r_t=r_t, discount_t=discount_t, v_t=v_t)
    _checks.assert_lambda(fn, lambda_, v_tm1)
    target_tm1 = lambda_returns(r_t, discount_t, v_t, lambda_, stop_target_gradients)
    return target_tm1 - v_tm1


def sarsa_lambda(
    q_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    q_t: Array,
    a_t: Array,
    lambda_: Numeric,
    stop_target_gradients: bool = True,
) -> Array:
    """Sarsa(lambda) errors: lambda-returns over `q_t[i, a_t[i]]` minus `q_tm1[i, a_tm1[i]]`.

    Args:
      q_tm1: action values at the source steps, shape `[T, A]`.
      a_tm1: actions at the source steps, shape `[T]` int.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      q_t: action values at the destination steps, shape `[T, A]`.
      a_t: actions at the destination steps, shape `[T]` int.
      lambda_: a scalar or `[T]` lambda.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      Sarsa(lambda) errors, shape `[T]`.
    """
    fn = "sarsa_lambda"
    _checks.assert_inputs(
        fn, q_tm1=(q_tm1, 2, float), a_tm1=(a_tm1, 1, int), r_t=(r_t, 1, float),
        discount_t=(discount_t, 1, float), q_t=(q_t, 2, float), a_t=(a_t, 1, int))
    _checks.assert_same_shape(fn, q_tm1=q_tm1, q_t=q_t)
    _checks.assert_same_shape(fn, a_tm1=a_tm1, r_t=r_t, discount_t=discount_t, a_t=a_t)
    _checks.assert_same_leading_dim(fn, q_tm1=q_tm1, r_t=r_t)
    _checks.assert_lambda(fn, lambda_, r_t)
    qa_tm1 = batched_index(q_tm1, a_tm1)
    qa_t = batched_index(q_t, a_t)
    target_tm1 = lambda_returns(r_t, discount_t, qa_t, lambda_, stop_target_gradients)
    return target_tm1 - qa_tm1


def q_lambda(
    q_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    q_t: Array,
    lambda_: Numeric,
    stop_target_gradients: bool = True,
) -> Array:
    """Q(lambda) errors: lambda-returns over `max_a q_t[i, a]` minus `q_tm1[i, a_tm1[i]]`.

    With a scalar `lambda_` this is Peng's Q(lambda). For Watkins' Q(lambda) pass
    `lambda_=tdkit.watkins_lambda(q_t, a_t, lam)`, which cuts the trace after non-greedy
    actions.

    Args:
      q_tm1: action values at the source steps, shape `[T, A]`.
      a_tm1: actions at the source steps, shape `[T]` int.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      q_t: action values at the destination steps, shape `[T, A]`.
      lambda_: a scalar or `[T]` lambda.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      Q(lambda) errors, shape `[T]`.
    """
    fn = "q_lambda"
    _checks.assert_inputs(
        fn, q_tm1=(q_tm1, 2, float), a_tm1=(a_tm1, 1, int), r_t=(r_t, 1, float),
        discount_t=(discount_t, 1, float), q_t=(q_t, 2, float))
    _checks.assert_same_shape(fn, q_tm1=q_tm1, q_t=q_t)
    _checks.assert_same_shape(fn, a_tm1=a_tm1, r_t=r_t, discount_t=discount_t)
    _checks.assert_same_leading_dim(fn, q_tm1=q_tm1, r_t=r_t)
    _checks.assert_lambda(fn, lambda_, r_t)
    qa_tm1 = batched_index(q_tm1, a_tm1)
    v_t = jnp.max(q_t, axis=-1)
    target_tm1 = lambda_returns(r_t, discount_t, v_t, lambda_, stop_target_gradients)
    return target_tm1 - qa_tm1


def _check_off_policy(fn, q_tm1, q_t, a_tm1, a_t, r_t, discount_t, pi_t, lambda_):
    _checks.assert_inputs(
        fn, q_tm1=(q_tm1, 2, float), q_t=(q_t, 2, float), a_tm1=(a_tm1, 1, int),
        a_t=(a_t, 1, int), r_t=(r_t, 1, float), discount_t=(discount_t, 1, float),
        pi_t=(pi_t, 2, float))
    _checks.assert_same_shape(fn, q_tm1=q_tm1, q_t=q_t, pi_t=pi_t)
    _checks.assert_same_shape(fn, a_tm1=a_tm1, a_t=a_t, r_t=r_t, discount_t=discount_t)
    _checks.assert_same_leading_dim(fn, q_tm1=q_tm1, r_t=r_t)
    _checks.assert_lambda(fn, lambda_, r_t)


def retrace(
    q_tm1: Array,
    q_t: Array,
    a_tm1: Array,
    a_t: Array,
    r_t: Array,
    discount_t: Array,
    pi_t: Array,
    mu_t: Array,
    lambda_: Numeric,
    eps: float = 1e-8,
    stop_target_gradients: bool = True,
) -> Array:
    """Retrace errors (Munos et al. 2016), traces `c_t = lambda_ * min(1, pi(a_t) / mu(a_t))`.

    Args:
      q_tm1: action values at the source steps, shape `[T, A]`.
      q_t: action values at the destination steps, shape `[T, A]`.
      a_tm1: actions at the source steps, shape `[T]` int.
      a_t: actions at the destination steps, shape `[T]` int.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      pi_t: target-policy probabilities at the destination steps, shape `[T, A]`.
      mu_t: behaviour probabilities of `a_t`, shape `[T]`.
      lambda_: a scalar or `[T]` lambda.
      eps: added to `mu_t` in the ratio.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      Retrace errors, shape `[T]`.
    """
    fn = "retrace"
    _check_off_policy(fn, q_tm1, q_t, a_tm1, a_t, r_t, discount_t, pi_t, lambda_)
    _checks.assert_inputs(fn, mu_t=(mu_t, 1, float))
    _checks.assert_same_shape(fn, mu_t=mu_t, r_t=r_t)
    pi_a_t = batched_index(pi_t, a_t)
    c_t = jnp.minimum(1.0, pi_a_t / (mu_t + eps)) * lambda_
    target_tm1 = general_off_policy_returns_from_action_values(
        q_t, a_t, r_t, discount_t, c_t, pi_t, stop_target_gradients)
    return target_tm1 - batched_index(q_tm1, a_tm1)


def tree_backup(
    q_tm1: Array,
    q_t: Array,
    a_tm1: Array,
    a_t: Array,
    r_t: Array,
    discount_t: Array,
    pi_t: Array,
    lambda_: Numeric = 1.0,
    stop_target_gradients: bool = True,
) -> Array:
    """Tree-backup errors (Precup et al. 2000; Sutton & Barto 7.5), traces `c_t = lambda_ pi(a_t)`.

    `G_i = r_t[i] + discount_t[i] * (sum_{a != a_t[i]} pi_t[i, a] q_t[i, a]
    + pi_t[i, a_t[i]] * ((1 - lambda_) q_t[i, a_t[i]] + lambda_ G_{i+1}))`; no importance
    ratios, so it is safe off-policy with any behaviour.

    Args:
      q_tm1: action values at the source steps, shape `[T, A]`.
      q_t: action values at the destination steps, shape `[T, A]`.
      a_tm1: actions at the source steps, shape `[T]` int.
      a_t: actions at the destination steps, shape `[T]` int.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      pi_t: target-policy probabilities at the destination steps, shape `[T, A]`.
      lambda_: a scalar or `[T]` lambda.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      Tree-backup errors, shape `[T]`.
    """
    fn = "tree_backup"
    _check_off_policy(fn, q_tm1, q_t, a_tm1, a_t, r_t, discount_t, pi_t, lambda_)
    c_t = batched_index(pi_t, a_t) * lambda_
    target_tm1 = general_off_policy_returns_from_action_values(
        q_t, a_t, r_t, discount_t, c_t, pi_t, stop_target_gradients)
    return target_tm1 - batched_index(q_tm1, a_tm1)


class VTraceOutput(NamedTuple):
    """Output of `vtrace_td_error_and_advantage`, every field shape `[T]`."""

    errors: Array
    pg_advantage: Array
    q_estimate: Array


def _check_vtrace(fn, v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_):
    _checks.assert_inputs(
        fn, v_tm1=(v_tm1, 1, float), v_t=(v_t, 1, float), r_t=(r_t, 1, float),
        discount_t=(discount_t, 1, float), rho_tm1=(rho_tm1, 1, float))
    _checks.assert_same_shape(
        fn, v_tm1=v_tm1, v_t=v_t, r_t=r_t, discount_t=discount_t, rho_tm1=rho_tm1)
    _checks.assert_lambda(fn, lambda_, r_t)


def vtrace(
    v_tm1: Array,
    v_t: Array,
    r_t: Array,
    discount_t: Array,
    rho_tm1: Array,
    lambda_: Numeric = 1.0,
    clip_rho_threshold: float = 1.0,
    stop_target_gradients: bool = True,
) -> Array:
    """V-trace errors (Espeholt et al. 2018): `v_s - v_tm1` with clipped importance ratios.

    `delta_i = min(rho_bar, rho_tm1[i]) * (r_t[i] + discount_t[i] v_t[i] - v_tm1[i])`,
    `err_i = delta_i + discount_t[i] * c_i * err_{i+1}`, `c_i = lambda_ * min(1, rho_tm1[i])`.

    Args:
      v_tm1: values at the source steps, shape `[T]`.
      v_t: values at the destination steps, shape `[T]`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      rho_tm1: importance ratios `pi(a_tm1) / mu(a_tm1)`, shape `[T]`.
      lambda_: a scalar or `[T]` lambda.
      clip_rho_threshold: `rho_bar`, the clip on the ratios inside the TD errors.
      stop_target_gradients: when True the result is `stop_gradient(v_s) - v_tm1`.

    Returns:
      V-trace errors, shape `[T]`.
    """
    _check_vtrace("vtrace", v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_)
    lambda_ = jnp.ones_like(discount_t) * lambda_
    c_tm1 = jnp.minimum(1.0, rho_tm1) * lambda_
    clipped_rhos_tm1 = jnp.minimum(clip_rho_threshold, rho_tm1)
    td_errors = clipped_rhos_tm1 * (r_t + discount_t * v_t - v_tm1)

    def body(acc, xs):
        td_error, discount, c = xs
        acc = td_error + discount * c * acc
        return acc, acc

    _, errors = jax.lax.scan(
        body, jnp.zeros((), td_errors.dtype), (td_errors, discount_t, c_tm1), reverse=True)
    targets_minus_v = jax.lax.stop_gradient(errors + v_tm1) - v_tm1
    if isinstance(stop_target_gradients, bool):
        return targets_minus_v if stop_target_gradients else errors
    return jax.lax.select(stop_target_gradients, targets_minus_v, errors)


def vtrace_td_error_and_advantage(
    v_tm1: Array,
    v_t: Array,
    r_t: Array,
    discount_t: Array,
    rho_tm1: Array,
    lambda_: Numeric = 1.0,
    clip_rho_threshold: float = 1.0,
    clip_pg_rho_threshold: float = 1.0,
    stop_target_gradients: bool = True,
) -> VTraceOutput:
    """V-trace errors plus the policy-gradient advantages and Q estimates.

    Args:
      v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_, clip_rho_threshold: as in `vtrace`.
      clip_pg_rho_threshold: clip on the ratios that weight the policy-gradient advantages.
      stop_target_gradients: as in `vtrace`.

    Returns:
      `VTraceOutput(errors, pg_advantage, q_estimate)`, each of shape `[T]`.
    """
    _check_vtrace("vtrace_td_error_and_advantage", v_tm1, v_t, r_t, discount_t, rho_tm1,
                  lambda_)
    lambda_ = jnp.ones_like(discount_t) * lambda_
    errors = vtrace(v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_, clip_rho_threshold,
                    stop_target_gradients)
    targets_tm1 = errors + v_tm1
    q_bootstrap = jnp.concatenate([
        lambda_[:-1] * targets_tm1[1:] + (1.0 - lambda_[:-1]) * v_tm1[1:],
        v_t[-1:],
    ], axis=0)
    q_estimate = r_t + discount_t * q_bootstrap
    clipped_pg_rho_tm1 = jnp.minimum(clip_pg_rho_threshold, rho_tm1)
    pg_advantages = clipped_pg_rho_tm1 * (q_estimate - v_tm1)
    return VTraceOutput(errors=errors, pg_advantage=pg_advantages, q_estimate=q_estimate)
