"""Transformed (non-linear Bellman) returns and TD errors for ONE trajectory (`[T]`, `[T, A]`).

A transformed value `h(v)` is learned instead of `v` (Pohlen et al. 2018; van Hasselt et al.
2019, "General non-linear Bellman equations"; Kapturowski et al. 2019, R2D2). Targets are
built by undoing the transform on the bootstrap values, applying an ordinary (linear)
return, and transforming the result back:

    G^h = h(G(r_t, discount_t, h^-1(v_t)))

with `tx_pair = TxPair(apply=h, apply_inv=h^-1)` from `tdkit.transforms`. Each transformed
return below is exactly that wrapper around tdkit's own return (`lambda_returns`,
`n_step_bootstrapped_returns`, `general_off_policy_returns_from_action_values`), and each TD
error is `G^h - q_tm1[i, a_tm1[i]]`, where `q_tm1` holds transformed values.

Names, argument order and values follow rlax. The three transformed returns take `tx_pair`
first, as rlax's do, and, like every returns function in tdkit, default to
`stop_target_gradients=True` (rlax: False). The three TD-error functions default to True in
both libraries and take `tx_pair=IDENTITY_PAIR` last, as in rlax.
"""

import chex
import jax.numpy as jnp

from tdkit import _checks
from tdkit.returns import (
    batched_index,
    general_off_policy_returns_from_action_values,
    lambda_returns,
    n_step_bootstrapped_returns,
)
from tdkit.transforms import IDENTITY_PAIR, TxPair, _check_tx_pair

Array = chex.Array
Numeric = chex.Numeric


def _untransformed(fn: str, tx_pair: TxPair, name: str, x: Array, rank: int, like: Array):
    """`tx_pair.apply_inv(x)`, checked to have rank `rank` and the leading dim of `like`."""
    x = tx_pair.apply_inv(x)
    if jnp.ndim(x) != rank or jnp.shape(x)[0] != jnp.shape(like)[0]:
        raise AssertionError(
            f"[Chex] {fn}: `tx_pair.apply_inv({name})` must have rank {rank} and length "
            f"T={jnp.shape(like)[0]} along axis 0, got shape {jnp.shape(x)}")
    return x


def transformed_lambda_returns(
    tx_pair: TxPair,
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    lambda_: Numeric = 1.0,
    stop_target_gradients: bool = True,
) -> Array:
    """Transformed lambda-returns: `h(lambda_returns(r_t, discount_t, h^-1(v_t), lambda_))`.

    `G_i = r_t[i] + discount_t[i] * ((1 - lambda_i) h^-1(v_t[i]) + lambda_i G_{i+1})`,
    `G_T = h^-1(v_t[T-1])`; the result is `h(G_i)`.

    Args:
      tx_pair: `TxPair(h, h^-1)`, e.g. `tdkit.transforms.SIGNED_HYPERBOLIC_PAIR`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      v_t: transformed bootstrap values, shape `[T]` (`[T, K]` for a 2-hot pair).
      lambda_: a scalar or `[T]` lambda.
      stop_target_gradients: wrap the returns in `stop_gradient` (rlax defaults to False).

    Returns:
      Transformed lambda-returns, shape `[T]` (`[T, K]` for a 2-hot pair).
    """
    fn = "transformed_lambda_returns"
    _check_tx_pair(fn, tx_pair)
    _checks.assert_inputs(fn, r_t=(r_t, 1, float), discount_t=(discount_t, 1, float))
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t)
    _checks.assert_lambda(fn, lambda_, r_t)
    v_t = _untransformed(fn, tx_pair, "v_t", v_t, 1, r_t)
    return tx_pair.apply(lambda_returns(r_t, discount_t, v_t, lambda_, stop_target_gradients))


def transformed_n_step_returns(
    tx_pair: TxPair,
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    n: int,
    lambda_t: Numeric = 1.0,
    stop_target_gradients: bool = True,
) -> Array:
    """Transformed n-step returns: `h(n_step_bootstrapped_returns(r_t, discount_t, h^-1(v_t), n))`.

    `G_i = r_t[i] + discount_t[i] r_t[i+1] + ... + (prod_{k<n} discount_t[i+k]) h^-1(v_t[i+n-1])`,
    cut at the end of the trajectory; the result is `h(G_i)`.

    Args:
      tx_pair: `TxPair(h, h^-1)`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      v_t: transformed bootstrap values, shape `[T]` (`[T, K]` for a 2-hot pair).
      n: number of steps, a Python int >= 1.
      lambda_t: a scalar or `[T]` mixing parameter (as in `n_step_bootstrapped_returns`).
      stop_target_gradients: wrap the returns in `stop_gradient` (rlax defaults to False).

    Returns:
      Transformed n-step returns, shape `[T]` (`[T, K]` for a 2-hot pair).
    """
    fn = "transformed_n_step_returns"
    _check_tx_pair(fn, tx_pair)
    _checks.assert_inputs(fn, r_t=(r_t, 1, float), discount_t=(discount_t, 1, float))
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t)
    _checks.assert_lambda(fn, lambda_t, r_t, name="lambda_t")
    v_t = _untransformed(fn, tx_pair, "v_t", v_t, 1, r_t)
    return tx_pair.apply(n_step_bootstrapped_returns(
        r_t, discount_t, v_t, n, lambda_t, stop_target_gradients))


def transformed_general_off_policy_returns_from_action_values(
    tx_pair: TxPair,
    q_t: Array,
    a_t: Array,
    r_t: Array,
    discount_t: Array,
    c_t: Array,
    pi_t: Array,
    stop_target_gradients: bool = True,
) -> Array:
    """Transformed general off-policy returns (Munos et al. 2016) from action values.

    With `Q = h^-1(q_t)`:
    `G_i = r_t[i] + discount_t[i] * (sum_a pi_t[i, a] Q[i, a] - c_t[i] Q[i, a_t[i]]
    + c_t[i] G_{i+1})`, `G_{T-1} = r_t[T-1] + discount_t[T-1] sum_a pi_t[T-1, a] Q[T-1, a]`;
    the result is `h(G_i)`.

    Args:
      tx_pair: `TxPair(h, h^-1)`.
      q_t: transformed action values at the destination steps, shape `[T, A]`.
      a_t: actions taken at the destination steps, shape `[T]` int.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      c_t: trace coefficients, shape `[T]` (the last is unused).
      pi_t: target-policy probabilities at the destination steps, shape `[T, A]`.
      stop_target_gradients: wrap the returns in `stop_gradient` (rlax defaults to False).

    Returns:
      Transformed off-policy returns, shape `[T]`.
    """
    fn = "transformed_general_off_policy_returns_from_action_values"
    _check_tx_pair(fn, tx_pair)
    _checks.assert_inputs(
        fn, q_t=(q_t, 2, float), a_t=(a_t, 1, int), r_t=(r_t, 1, float),
        discount_t=(discount_t, 1, float), c_t=(c_t, 1, float), pi_t=(pi_t, 2, float))
    _checks.assert_same_shape(fn, q_t=q_t, pi_t=pi_t)
    _checks.assert_same_shape(fn, a_t=a_t, r_t=r_t, discount_t=discount_t, c_t=c_t)
    _checks.assert_same_leading_dim(fn, q_t=q_t, r_t=r_t)
    q_t = _untransformed(fn, tx_pair, "q_t", q_t, 2, r_t)
    return tx_pair.apply(general_off_policy_returns_from_action_values(
        q_t, a_t, r_t, discount_t, c_t, pi_t, stop_target_gradients))


def transformed_q_lambda(
    q_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    q_t: Array,
    lambda_: Numeric,
    stop_target_gradients: bool = True,
    tx_pair: TxPair = IDENTITY_PAIR,
) -> Array:
    """Transformed Q(lambda) errors (van Hasselt et al. 2019).

    `delta_i = transformed_lambda_returns(tx_pair, r_t, discount_t, max_a q_t[:, a], lambda_)[i]
    - q_tm1[i, a_tm1[i]]`. With a scalar `lambda_` this is Peng's Q(lambda); pass
    `lambda_=tdkit.watkins_lambda(q_t, a_t, lam)` for Watkins'. (`max` commutes with a
    monotone `h^-1`, so maximising transformed values is maximising values.)

    Args:
      q_tm1: transformed action values at the source steps, shape `[T, A]`.
      a_tm1: actions at the source steps, shape `[T]` int.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      q_t: transformed action values at the destination steps, shape `[T, A]`.
      lambda_: a scalar or `[T]` lambda.
      stop_target_gradients: wrap the target in `stop_gradient`.
      tx_pair: `TxPair(h, h^-1)`.

    Returns:
      Transformed Q(lambda) errors, shape `[T]`.
    """
    fn = "transformed_q_lambda"
    _check_tx_pair(fn, tx_pair)
    _checks.assert_inputs(
        fn, q_tm1=(q_tm1, 2, float), a_tm1=(a_tm1, 1, int), r_t=(r_t, 1, float),
        discount_t=(discount_t, 1, float), q_t=(q_t, 2, float))
    _checks.assert_same_shape(fn, q_tm1=q_tm1, q_t=q_t)
    _checks.assert_same_shape(fn, a_tm1=a_tm1, r_t=r_t, discount_t=discount_t)
    _checks.assert_same_leading_dim(fn, q_tm1=q_tm1, r_t=r_t)
    _checks.assert_lambda(fn, lambda_, r_t)
    v_t = jnp.max(q_t, axis=-1)
    target_tm1 = transformed_lambda_returns(
        tx_pair, r_t, discount_t, v_t, lambda_, stop_target_gradients)
    return target_tm1 - batched_index(q_tm1, a_tm1)


def transformed_retrace(
    q_tm1: Array,
    q_t: Array,
    a_tm1: Array,
    a_t: Array,
    r_t: Array,
    discount_t: Array,
    pi_t: Array,
    mu_t: Array,
    lambda_: float,
    eps: float = 1e-8,
    stop_target_gradients: bool = True,
    tx_pair: TxPair = IDENTITY_PAIR,
) -> Array:
    """Transformed Retrace errors (Kapturowski et al. 2019), traces
    `c_t = lambda_ * min(1, pi_t[a_t] / (mu_t + eps))`.

    `delta_i = transformed_general_off_policy_returns_from_action_values(tx_pair, q_t, a_t,
    r_t, discount_t, c_t, pi_t)[i] - q_tm1[i, a_tm1[i]]`.

    Args:
      q_tm1: transformed action values at the source steps, shape `[T, A]`.
      q_t: transformed action values at the destination steps, shape `[T, A]`.
      a_tm1: actions at the source steps, shape `[T]` int.
      a_t: actions at the destination steps, shape `[T]` int.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      pi_t: target-policy probabilities at the destination steps, shape `[T, A]`.
      mu_t: behaviour probabilities of `a_t`, shape `[T]`.
      lambda_: a scalar or `[T]` lambda.
      eps: added to `mu_t` in the ratio.
      stop_target_gradients: wrap the target in `stop_gradient`.
      tx_pair: `TxPair(h, h^-1)`.

    Returns:
      Transformed Retrace errors, shape `[T]`.
    """
    fn = "transformed_retrace"
    _check_tx_pair(fn, tx_pair)
    _checks.assert_inputs(
        fn, q_tm1=(q_tm1, 2, float), q_t=(q_t, 2, float), a_tm1=(a_tm1, 1, int),
        a_t=(a_t, 1, int), r_t=(r_t, 1, float), discount_t=(discount_t, 1, float),
        pi_t=(pi_t, 2, float), mu_t=(mu_t, 1, float))
    _checks.assert_same_shape(fn, q_tm1=q_tm1, q_t=q_t, pi_t=pi_t)
    _checks.assert_same_shape(
        fn, a_tm1=a_tm1, a_t=a_t, r_t=r_t, discount_t=discount_t, mu_t=mu_t)
    _checks.assert_same_leading_dim(fn, q_tm1=q_tm1, r_t=r_t)
    _checks.assert_lambda(fn, lambda_, r_t)
    c_t = jnp.minimum(1.0, batched_index(pi_t, a_t) / (mu_t + eps)) * lambda_
    target_tm1 = transformed_general_off_policy_returns_from_action_values(
        tx_pair, q_t, a_t, r_t, discount_t, c_t, pi_t, stop_target_gradients)
    return target_tm1 - batched_index(q_tm1, a_tm1)


def transformed_n_step_q_learning(
    q_tm1: Array,
    a_tm1: Array,
    target_q_t: Array,
    a_t: Array,
    r_t: Array,
    discount_t: Array,
    n: int,
    stop_target_gradients: bool = True,
    tx_pair: TxPair = IDENTITY_PAIR,
) -> Array:
    """Transformed n-step Q-learning errors (R2D2, Kapturowski et al. 2019).

    `delta_i = transformed_n_step_returns(tx_pair, r_t, discount_t,
    target_q_t[:, a_t], n)[i] - q_tm1[i, a_tm1[i]]`. Pass `a_t = argmax target_q_t` for
    Q-learning, `a_t = argmax q_t` (online network) for double Q-learning.

    Args:
      q_tm1: transformed action values at the source steps, shape `[T, A]`.
      a_tm1: actions at the source steps, shape `[T]` int.
      target_q_t: transformed target-network action values at the destination steps,
        shape `[T, A]`.
      a_t: actions that select the bootstrap values in `target_q_t`, shape `[T]` int.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      n: number of steps, a Python int >= 1.
      stop_target_gradients: wrap the target in `stop_gradient`.
      tx_pair: `TxPair(h, h^-1)`.

    Returns:
      Transformed n-step errors, shape `[T]`.
    """
    fn = "transformed_n_step_q_learning"
    _check_tx_pair(fn, tx_pair)
    _checks.assert_inputs(
        fn, q_tm1=(q_tm1, 2, float), a_tm1=(a_tm1, 1, int), target_q_t=(target_q_t, 2, float),
        a_t=(a_t, 1, int), r_t=(r_t, 1, float), discount_t=(discount_t, 1, float))
    _checks.assert_same_shape(fn, q_tm1=q_tm1, target_q_t=target_q_t)
    _checks.assert_same_shape(fn, a_tm1=a_tm1, a_t=a_t, r_t=r_t, discount_t=discount_t)
    _checks.assert_same_leading_dim(fn, q_tm1=q_tm1, r_t=r_t)
    v_t = batched_index(target_q_t, a_t)
    target_tm1 = transformed_n_step_returns(
        tx_pair, r_t, discount_t, v_t, n, stop_target_gradients=stop_target_gradients)
    return target_tm1 - batched_index(q_tm1, a_tm1)
