"""Multi-step TD errors for ONE trajectory (`[T]`, `[T, A]`).

Names, argument order and values follow rlax where rlax has the function (`td_lambda`,
`sarsa_lambda`, `q_lambda`, `retrace`, `retrace_continuous`, `importance_corrected_td_errors`,
`vtrace`, `vtrace_td_error_and_advantage`, `leaky_vtrace`,
`leaky_vtrace_td_error_and_advantage`); `tree_backup` is new. Every function returns
`target - prediction` with the target under `jax.lax.stop_gradient` unless
`stop_target_gradients=False`.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks
from tdkit.returns import (
    batched_index,
    general_off_policy_returns_from_action_values,
    general_off_policy_returns_from_q_and_v,
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


def retrace_continuous(
    q_tm1: Array,
    q_t: Array,
    v_t: Array,
    r_t: Array,
    discount_t: Array,
    log_rhos: Array,
    lambda_: Numeric,
    stop_target_gradients: bool = True,
) -> Array:
    """Retrace errors for continuous actions (Munos et al. 2016), from log importance ratios.

    The actions are already applied: `q_tm1[i] = Q(s_i, a_i)`, `q_t[i] = Q(s_{i+1}, a_{i+1})`
    and `v_t[i] = E_pi Q(s_{i+1}, .)` (e.g. a sampled estimate). With
    `c_i = lambda_i * min(1, exp(log_rhos[i]))`:

        G_{T-1} = r_t[T-1] + discount_t[T-1] * v_t[T-1]
        G_i = r_t[i] + discount_t[i] * (v_t[i] - c_i q_t[i] + c_i G_{i+1})
        delta_i = G_i - q_tm1[i]

    Args:
      q_tm1: values of the actions taken at steps `0..T-1`, shape `[T]`.
      q_t: values of the actions taken at steps `1..T-1`, shape `[T-1]`.
      v_t: expected values under the target policy at steps `1..T`, shape `[T]`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      log_rhos: `log pi(a) - log mu(a)` of the actions at steps `1..T-1`, shape `[T-1]`.
      lambda_: a scalar or `[T-1]` lambda.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      Retrace errors, shape `[T]`.
    """
    fn = "retrace_continuous"
    _checks.assert_inputs(
        fn, q_tm1=(q_tm1, 1, float), q_t=(q_t, 1, float), v_t=(v_t, 1, float),
        r_t=(r_t, 1, float), discount_t=(discount_t, 1, float), log_rhos=(log_rhos, 1, float))
    _checks.assert_same_shape(fn, q_tm1=q_tm1, v_t=v_t, r_t=r_t, discount_t=discount_t)
    _checks.assert_same_shape(fn, q_t=q_t, log_rhos=log_rhos)
    if q_t.shape[0] != r_t.shape[0] - 1:
        raise AssertionError(
            f"[Chex] {fn}: `q_t` and `log_rhos` must have shape [T-1] = ({r_t.shape[0] - 1},), "
            f"got {q_t.shape}")
    _checks.assert_lambda(fn, lambda_, log_rhos)
    c_t = jnp.minimum(1.0, jnp.exp(log_rhos)) * lambda_
    target_tm1 = general_off_policy_returns_from_q_and_v(
        q_t, v_t, r_t, discount_t, c_t, stop_target_gradients)
    return target_tm1 - q_tm1


def importance_corrected_td_errors(
    r_t: Array,
    discount_t: Array,
    rho_tm1: Array,
    lambda_: Numeric,
    values: Array,
    stop_target_gradients: bool = True,
) -> Array:
    """Multi-step TD errors with per-decision importance sampling (Sutton et al. 2014).

    With `delta_i = r_t[i] + discount_t[i] * values[i+1] - values[i]`:

        e_i = delta_i + discount_t[i] * rho_tm1[i+1] * lambda_i * e_{i+1},   e_T = 0
        errors_i = rho_tm1[i] * e_i

    (the lambda-return with `lambda_i rho_{i+1}` as the per-step lambda, minus `values[i]`,
    weighted by `rho_tm1[i]`).

    Args:
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      rho_tm1: importance ratios `pi(a_i) / mu(a_i)` at steps `0..T-1`, shape `[T]`.
      lambda_: a scalar or `[T]` lambda.
      values: state values at steps `0..T`, shape `[T+1]`.
      stop_target_gradients: when True the result is `stop_gradient(errors + values[:-1])
        - values[:-1]` (rlax defaults to False).

    Returns:
      Off-policy TD errors, shape `[T]`.
    """
    fn = "importance_corrected_td_errors"
    _checks.assert_inputs(
        fn, r_t=(r_t, 1, float), discount_t=(discount_t, 1, float),
        rho_tm1=(rho_tm1, 1, float), values=(values, 1, float))
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t, rho_tm1=rho_tm1)
    if values.shape[0] != r_t.shape[0] + 1:
        raise AssertionError(
            f"[Chex] {fn}: argument `values` must have shape [T+1] = ({r_t.shape[0] + 1},), got "
            f"{values.shape}")
    _checks.assert_lambda(fn, lambda_, r_t)
    v_tm1, v_t = values[:-1], values[1:]
    rho_t = jnp.concatenate([rho_tm1[1:], jnp.ones((1,), rho_tm1.dtype)])  # Last is unused.
    lambda_ = jnp.ones_like(discount_t) * lambda_
    one_step_delta = r_t + discount_t * v_t - v_tm1

    def body(acc, xs):
        delta, discount, rho, lam = xs
        acc = delta + discount * rho * lam * acc
        return acc, acc

    _, errors = jax.lax.scan(
        body, jnp.zeros((), one_step_delta.dtype), (one_step_delta, discount_t, rho_t, lambda_),
        reverse=True)
    errors = rho_tm1 * errors
    return _select_stopped(errors, v_tm1, stop_target_gradients)


def _select_stopped(errors, v_tm1, stop_target_gradients):
    """`stop_gradient(errors + v_tm1) - v_tm1` if `stop_target_gradients` else `errors`."""
    stopped = jax.lax.stop_gradient(errors + v_tm1) - v_tm1
    if isinstance(stop_target_gradients, bool):
        return stopped if stop_target_gradients else errors
    return jax.lax.select(stop_target_gradients, stopped, errors)


def _check_vtrace(fn, v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_, sample_mask):
    _checks.assert_inputs(
        fn, v_tm1=(v_tm1, 1, float), v_t=(v_t, 1, float), r_t=(r_t, 1, float),
        discount_t=(discount_t, 1, float), rho_tm1=(rho_tm1, 1, float))
    _checks.assert_same_shape(
        fn, v_tm1=v_tm1, v_t=v_t, r_t=r_t, discount_t=discount_t, rho_tm1=rho_tm1)
    _checks.assert_lambda(fn, lambda_, r_t)
    if sample_mask is None:
        return jnp.ones_like(r_t)
    _checks.assert_inputs(fn, sample_mask=(sample_mask, 1, bool))
    _checks.assert_same_shape(fn, r_t=r_t, sample_mask=sample_mask)
    return jnp.asarray(sample_mask).astype(r_t.dtype)


def _vtrace_errors(v_tm1, v_t, r_t, discount_t, c_tm1, clipped_rhos_tm1, learnable,
                   stop_target_gradients):
    td_errors = clipped_rhos_tm1 * (r_t + discount_t * v_t - v_tm1)

    def body(acc, xs):
        td_error, discount, keep, c = xs
        # A masked step (keep = 0) is skipped: the recursion passes through unchanged.
        acc = keep * (td_error + discount * c * acc) + (1.0 - keep) * acc
        return acc, acc

    _, errors = jax.lax.scan(
        body, jnp.zeros((), td_errors.dtype), (td_errors, discount_t, learnable, c_tm1),
        reverse=True)
    return _select_stopped(errors, v_tm1, stop_target_gradients)


def vtrace(
    v_tm1: Array,
    v_t: Array,
    r_t: Array,
    discount_t: Array,
    rho_tm1: Array,
    lambda_: Numeric = 1.0,
    clip_rho_threshold: float = 1.0,
    stop_target_gradients: bool = True,
    sample_mask: Array | None = None,
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
      sample_mask: bool, shape `[T]`, which steps are learnable (default: all). A
        step with False is skipped by the recursion (no TD error of its own; its discount
        and trace do not cut the sum); its output is the next step's accumulated error and
        should be masked out of the loss, as in rlax.

    Returns:
      V-trace errors, shape `[T]`.
    """
    learnable = _check_vtrace("vtrace", v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_,
                              sample_mask)
    lambda_ = jnp.ones_like(discount_t) * lambda_
    c_tm1 = jnp.minimum(1.0, rho_tm1) * lambda_
    clipped_rhos_tm1 = jnp.minimum(clip_rho_threshold, rho_tm1)
    return _vtrace_errors(v_tm1, v_t, r_t, discount_t, c_tm1, clipped_rhos_tm1, learnable,
                          stop_target_gradients)


def leaky_vtrace(
    v_tm1: Array,
    v_t: Array,
    r_t: Array,
    discount_t: Array,
    rho_tm1: Array,
    alpha_: float = 1.0,
    lambda_: Numeric = 1.0,
    clip_rho_threshold: float = 1.0,
    stop_target_gradients: bool = True,
    sample_mask: Array | None = None,
) -> Array:
    """Leaky V-trace errors (Zahavy et al. 2020, "Self-Tuning Deep RL"): V-trace whose clipped
    ratios are mixed with the unclipped ones by `alpha_` (1: V-trace, 0: plain importance
    sampling):

    `c_i = lambda_i * ((1 - alpha_) rho_tm1[i] + alpha_ min(1, rho_tm1[i]))`,
    `rho'_i = (1 - alpha_) rho_tm1[i] + alpha_ min(rho_bar, rho_tm1[i])`,
    `err_i = rho'_i (r_t[i] + discount_t[i] v_t[i] - v_tm1[i]) + discount_t[i] c_i err_{i+1}`.

    Args:
      v_tm1, v_t, r_t, discount_t, rho_tm1: as in `vtrace`, each of shape `[T]`.
      alpha_: the mixing coefficient in `[0, 1]` (rlax's name, with the trailing underscore).
      lambda_: a scalar or `[T]` lambda.
      clip_rho_threshold: `rho_bar`.
      stop_target_gradients: when True the result is `stop_gradient(v_s) - v_tm1`.
      sample_mask: bool, shape `[T]`, which steps are learnable (default: all). A
        step with False is skipped by the recursion (no TD error of its own; its discount
        and trace do not cut the sum); its output is the next step's accumulated error and
        should be masked out of the loss, as in rlax.

    Returns:
      Leaky V-trace errors, shape `[T]`.
    """
    fn = "leaky_vtrace"
    learnable = _check_vtrace(fn, v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_, sample_mask)
    _check_alpha(fn, "alpha_", alpha_)
    lambda_ = jnp.ones_like(discount_t) * lambda_
    c_tm1 = ((1.0 - alpha_) * rho_tm1 + alpha_ * jnp.minimum(1.0, rho_tm1)) * lambda_
    clipped_rhos_tm1 = (1.0 - alpha_) * rho_tm1 + alpha_ * jnp.minimum(
        clip_rho_threshold, rho_tm1)
    return _vtrace_errors(v_tm1, v_t, r_t, discount_t, c_tm1, clipped_rhos_tm1, learnable,
                          stop_target_gradients)


def _check_alpha(fn, name, alpha):
    if isinstance(alpha, (int, float)) and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{fn}: argument `{name}` must be in [0, 1], got {alpha!r}")


def _advantage(v_tm1, v_t, r_t, discount_t, lambda_, errors, pg_rho_tm1):
    targets_tm1 = errors + v_tm1
    q_bootstrap = jnp.concatenate([
        lambda_[:-1] * targets_tm1[1:] + (1.0 - lambda_[:-1]) * v_tm1[1:],
        v_t[-1:],
    ], axis=0)
    q_estimate = r_t + discount_t * q_bootstrap
    pg_advantages = pg_rho_tm1 * (q_estimate - v_tm1)
    return VTraceOutput(errors=errors, pg_advantage=pg_advantages, q_estimate=q_estimate)


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
    sample_mask: Array | None = None,
) -> VTraceOutput:
    """V-trace errors plus the policy-gradient advantages and Q estimates.

    `q_estimate_i = r_t[i] + discount_t[i] * (lambda_i v_s[i+1] + (1 - lambda_i) v_tm1[i+1])`
    (`v_t[T-1]` at the last step), `pg_advantage_i = min(rho_pg_bar, rho_tm1[i]) *
    (q_estimate_i - v_tm1[i])`.

    Args:
      v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_, clip_rho_threshold: as in `vtrace`.
      clip_pg_rho_threshold: clip on the ratios that weight the policy-gradient advantages.
      stop_target_gradients: as in `vtrace`.
      sample_mask: bool, shape `[T]`, which steps are learnable (default: all). A
        step with False is skipped by the recursion (no TD error of its own; its discount
        and trace do not cut the sum); its output is the next step's accumulated error and
        should be masked out of the loss, as in rlax.

    Returns:
      `VTraceOutput(errors, pg_advantage, q_estimate)`, each of shape `[T]`.
    """
    _check_vtrace("vtrace_td_error_and_advantage", v_tm1, v_t, r_t, discount_t, rho_tm1,
                  lambda_, sample_mask)
    lambda_ = jnp.ones_like(discount_t) * lambda_
    errors = vtrace(v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_, clip_rho_threshold,
                    stop_target_gradients, sample_mask)
    return _advantage(v_tm1, v_t, r_t, discount_t, lambda_, errors,
                      jnp.minimum(clip_pg_rho_threshold, rho_tm1))


def leaky_vtrace_td_error_and_advantage(
    v_tm1: Array,
    v_t: Array,
    r_t: Array,
    discount_t: Array,
    rho_tm1: Array,
    alpha: float = 1.0,
    lambda_: Numeric = 1.0,
    clip_rho_threshold: float = 1.0,
    clip_pg_rho_threshold: float = 1.0,
    stop_target_gradients: bool = True,
    sample_mask: Array | None = None,
) -> VTraceOutput:
    """Leaky V-trace errors plus policy-gradient advantages and Q estimates (Zahavy et al.).

    As `vtrace_td_error_and_advantage` with `leaky_vtrace` errors, and advantages weighted
    by `(1 - alpha) rho_tm1[i] + alpha min(rho_pg_bar, rho_tm1[i])`.

    Args:
      v_tm1, v_t, r_t, discount_t, rho_tm1: as in `vtrace`, each of shape `[T]`.
      alpha: the mixing coefficient in `[0, 1]` (rlax names it `alpha` here and `alpha_` in
        `leaky_vtrace`).
      lambda_, clip_rho_threshold, clip_pg_rho_threshold, stop_target_gradients: as in
        `vtrace_td_error_and_advantage`.
      sample_mask: bool, shape `[T]`, which steps are learnable (default: all). A
        step with False is skipped by the recursion (no TD error of its own; its discount
        and trace do not cut the sum); its output is the next step's accumulated error and
        should be masked out of the loss, as in rlax.

    Returns:
      `VTraceOutput(errors, pg_advantage, q_estimate)`, each of shape `[T]`.
    """
    fn = "leaky_vtrace_td_error_and_advantage"
    _check_vtrace(fn, v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_, sample_mask)
    _check_alpha(fn, "alpha", alpha)
    lambda_ = jnp.ones_like(discount_t) * lambda_
    errors = leaky_vtrace(v_tm1, v_t, r_t, discount_t, rho_tm1, alpha, lambda_,
                          clip_rho_threshold, stop_target_gradients, sample_mask)
    pg_rho_tm1 = (1.0 - alpha) * rho_tm1 + alpha * jnp.minimum(clip_pg_rho_threshold, rho_tm1)
    return _advantage(v_tm1, v_t, r_t, discount_t, lambda_, errors, pg_rho_tm1)
