"""Bootstrapped multi-step targets for ONE trajectory (`[T]`).

Indexing follows rlax: `r_t[i]`, `discount_t[i]` and `v_t[i]` belong to step `i + 1` of a
trajectory whose first value `v_tm1[0]` is at step 0; the target for step `i` is built from
`r_t[i:]`, `discount_t[i:]` and `v_t[i:]`. An episode end inside the trajectory is
`discount_t[i] = 0`.

Unlike rlax, `stop_target_gradients` defaults to True in every function here: the
returns are targets, and gradients should not flow into them unless you ask.
"""

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks
from tdkit.td import maybe_stop_gradient

Array = chex.Array
Numeric = chex.Numeric


def lambda_returns(
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    lambda_: Numeric = 1.0,
    stop_target_gradients: bool = True,
) -> Array:
    """lambda-returns, computed backwards with `lax.scan`:

    `G_i = r_t[i] + discount_t[i] * ((1 - lambda_i) * v_t[i] + lambda_i * G_{i+1})`,
    with `G_T = v_t[T-1]` (the last value bootstraps the end of the trajectory).

    Args:
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      v_t: bootstrap values, shape `[T]`.
      lambda_: mixing parameter, a scalar or one value per step `[T]`.
      stop_target_gradients: wrap the returns in `stop_gradient` (rlax defaults to False).

    Returns:
      lambda-returns, shape `[T]`.
    """
    fn = "lambda_returns"
    _checks.assert_inputs(
        fn, r_t=(r_t, 1, float), discount_t=(discount_t, 1, float), v_t=(v_t, 1, float))
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t, v_t=v_t)
    _checks.assert_lambda(fn, lambda_, discount_t)
    lambda_ = jnp.ones_like(discount_t) * lambda_

    def body(acc, xs):
        reward, discount, value, lam = xs
        acc = reward + discount * ((1.0 - lam) * value + lam * acc)
        return acc, acc

    _, returns = jax.lax.scan(body, v_t[-1], (r_t, discount_t, v_t, lambda_), reverse=True)
    return maybe_stop_gradient(returns, stop_target_gradients)


def discounted_returns(
    r_t: Array,
    discount_t: Array,
    v_t: Numeric,
    stop_target_gradients: bool = True,
) -> Array:
    """Discounted returns bootstrapped at the end: `G_i = r_t[i] + discount_t[i] * G_{i+1}`.

    Args:
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      v_t: the bootstrap value after the last step, shape `[]`, or `[T]` (only its last
        entry is used).
      stop_target_gradients: wrap the returns in `stop_gradient` (rlax defaults to False).

    Returns:
      Discounted returns, shape `[T]`.
    """
    fn = "discounted_returns"
    _checks.assert_inputs(
        fn, r_t=(r_t, 1, float), discount_t=(discount_t, 1, float), v_t=(v_t, {0, 1}, float))
    if jnp.ndim(v_t) == 1:
        _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t, v_t=v_t)
    else:
        _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t)
    bootstrapped_v = jnp.ones_like(discount_t) * v_t
    return lambda_returns(r_t, discount_t, bootstrapped_v, 1.0, stop_target_gradients)


def n_step_bootstrapped_returns(
    r_t: Array,
    discount_t: Array,
    v_t: Array,
    n: int,
    lambda_t: Numeric = 1.0,
    stop_target_gradients: bool = True,
) -> Array:
    """n-step returns, bootstrapping from `v_t[i + n - 1]` (or `v_t[T-1]` near the end).

    `G_i = r_t[i] + discount_t[i] * r_t[i+1] + ... + (prod discount) * v_t[i+n-1]`, truncated at
    the end of the trajectory. With `lambda_t < 1`, each intermediate step mixes in its own
    value as in `lambda_returns` (rlax's generalisation).

    Args:
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      v_t: bootstrap values, shape `[T]`.
      n: number of steps, a Python int >= 1.
      lambda_t: a scalar or `[T]` mixing parameter.
      stop_target_gradients: wrap the returns in `stop_gradient` (rlax defaults to False).

    Returns:
      n-step returns, shape `[T]`.
    """
    fn = "n_step_bootstrapped_returns"
    _checks.assert_inputs(
        fn, r_t=(r_t, 1, float), discount_t=(discount_t, 1, float), v_t=(v_t, 1, float))
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t, v_t=v_t)
    _checks.assert_lambda(fn, lambda_t, discount_t, name="lambda_t")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{fn}: argument `n` must be a Python int >= 1, got {n!r}")
    seq_len = r_t.shape[0]
    dtype = r_t.dtype
    lambda_t = jnp.ones_like(discount_t) * lambda_t
    # Pad to length T + n - 1 so every window of length T exists; past the end the reward is
    # 0, the discount and lambda are 1 and the value is the last value.
    pad = n - 1
    r_p = jnp.concatenate([r_t, jnp.zeros((pad,), dtype)])
    d_p = jnp.concatenate([discount_t, jnp.ones((pad,), dtype)])
    l_p = jnp.concatenate([lambda_t, jnp.ones((pad,), dtype)])
    v_p = jnp.concatenate([v_t, jnp.full((pad,), v_t[-1], dtype)])
    targets = jax.lax.dynamic_slice_in_dim(v_p, n - 1, seq_len)

    def body(k, targets):
        i = n - 1 - k  # Work backwards from the n-th step.
        window = lambda x: jax.lax.dynamic_slice_in_dim(x, i, seq_len)
        return window(r_p) + window(d_p) * (
            (1.0 - window(l_p)) * window(v_p) + window(l_p) * targets)

    targets = jax.lax.fori_loop(0, n, body, targets)
    return maybe_stop_gradient(targets, stop_target_gradients)


def general_off_policy_returns_from_q_and_v(
    q_t: Array,
    v_t: Array,
    r_t: Array,
    discount_t: Array,
    c_t: Array,
    stop_target_gradients: bool = True,
) -> Array:
    """General off-policy returns from Q values and expected values.

    `G_i = r_t[i] + discount_t[i] * (v_t[i] - c_t[i] * q_t[i] + c_t[i] * G_{i+1})` and
    `G_{T-1} = r_t[T-1] + discount_t[T-1] * v_t[T-1]` (Retrace, tree backup, ...).

    Args:
      q_t: values of the actions taken, shape `[T-1]`.
      v_t: expected values under the target policy, shape `[T]`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      c_t: trace coefficients, shape `[T-1]`.
      stop_target_gradients: wrap the returns in `stop_gradient` (rlax defaults to False).

    Returns:
      Off-policy returns, shape `[T]`.
    """
    fn = "general_off_policy_returns_from_q_and_v"
    _checks.assert_inputs(
        fn, q_t=(q_t, 1, float), v_t=(v_t, 1, float), r_t=(r_t, 1, float),
        discount_t=(discount_t, 1, float), c_t=(c_t, 1, float))
    _checks.assert_same_shape(fn, q_t=q_t, c_t=c_t)
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t, v_t=v_t)
    if q_t.shape[0] != r_t.shape[0] - 1:
        raise AssertionError(
            f"[Chex] {fn}: `q_t` and `c_t` must have shape [T-1] = ({r_t.shape[0] - 1},), got "
            f"{q_t.shape}")
    g = r_t[-1] + discount_t[-1] * v_t[-1]

    def body(acc, xs):
        reward, discount, c, v, q = xs
        acc = reward + discount * (v - c * q + c * acc)
        return acc, acc

    _, returns = jax.lax.scan(
        body, g, (r_t[:-1], discount_t[:-1], c_t, v_t[:-1], q_t), reverse=True)
    returns = jnp.concatenate([returns, g[jnp.newaxis]], axis=0)
    return maybe_stop_gradient(returns, stop_target_gradients)


def general_off_policy_returns_from_action_values(
    q_t: Array,
    a_t: Array,
    r_t: Array,
    discount_t: Array,
    c_t: Array,
    pi_t: Array,
    stop_target_gradients: bool = True,
) -> Array:
    """General off-policy returns (Munos et al. 2016) from action values.

    `G_i = r_t[i] + discount_t[i] * (E_pi q_t[i] - c_t[i] q_t[i, a_t[i]] + c_t[i] G_{i+1})`.

    Args:
      q_t: action values at the destination steps, shape `[T, A]`.
      a_t: actions taken at the destination steps, shape `[T]` int.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      c_t: trace coefficients, shape `[T]` (the last is unused).
      pi_t: target-policy probabilities at the destination steps, shape `[T, A]`.
      stop_target_gradients: wrap the returns in `stop_gradient` (rlax defaults to False).

    Returns:
      Off-policy returns, shape `[T]`.
    """
    fn = "general_off_policy_returns_from_action_values"
    _checks.assert_inputs(
        fn, q_t=(q_t, 2, float), a_t=(a_t, 1, int), r_t=(r_t, 1, float),
        discount_t=(discount_t, 1, float), c_t=(c_t, 1, float), pi_t=(pi_t, 2, float))
    _checks.assert_same_shape(fn, q_t=q_t, pi_t=pi_t)
    _checks.assert_same_shape(
        fn, q_t_T=q_t[:, 0], a_t=a_t, r_t=r_t, discount_t=discount_t, c_t=c_t)
    exp_q_t = (pi_t * q_t).sum(axis=-1)
    q_a_t = batched_index(q_t, a_t)[:-1]
    return general_off_policy_returns_from_q_and_v(
        q_a_t, exp_q_t, r_t, discount_t, c_t[:-1], stop_target_gradients)


def truncated_generalized_advantage_estimation(
    r_t: Array,
    discount_t: Array,
    lambda_: Numeric,
    values: Array,
    stop_target_gradients: bool = True,
) -> Array:
    """Truncated generalized advantage estimates (Schulman et al. 2016; PPO) for ONE trajectory.

    `delta_i = r_t[i] + discount_t[i] * values[i+1] - values[i]` and, backwards,
    `A_i = delta_i + discount_t[i] * lambda_i * A_{i+1}`, `A_T = 0`; that is
    `A_i = sum_k (prod_{j<k} discount_t[j] lambda_j) delta_k` (k from i to T-1).

    Args:
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      lambda_: a scalar or `[T]` lambda.
      values: state values at steps `0..T`, shape `[T+1]`.
      stop_target_gradients: wrap the advantages in `stop_gradient` (rlax defaults to
        False): advantages weight a policy gradient and are normally constants.

    Returns:
      Advantages, shape `[T]`.
    """
    fn = "truncated_generalized_advantage_estimation"
    _checks.assert_inputs(
        fn, r_t=(r_t, 1, float), discount_t=(discount_t, 1, float), values=(values, 1, float))
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t)
    if values.shape[0] != r_t.shape[0] + 1:
        raise AssertionError(
            f"[Chex] {fn}: argument `values` must have shape [T+1] = ({r_t.shape[0] + 1},), got "
            f"{values.shape}")
    _checks.assert_lambda(fn, lambda_, r_t)
    lambda_ = jnp.ones_like(discount_t) * lambda_
    delta_t = r_t + discount_t * values[1:] - values[:-1]

    def body(acc, xs):
        delta, discount, lam = xs
        acc = delta + discount * lam * acc
        return acc, acc

    _, advantages = jax.lax.scan(
        body, jnp.zeros((), delta_t.dtype), (delta_t, discount_t, lambda_), reverse=True)
    return maybe_stop_gradient(advantages, stop_target_gradients)


def watkins_lambda(q_t: Array, a_t: Array, lambda_: Numeric) -> Array:
    """Per-step lambda for Watkins' Q(lambda): `lambda_` where `a_t` is greedy, else 0.

    Pass the result as `lambda_` to `q_lambda`: the trace is cut after every non-greedy
    (exploratory) action, so the target only follows the greedy policy. Ties count as greedy.

    Args:
      q_t: action values at the destination steps, shape `[T, A]`.
      a_t: actions taken at the destination steps, shape `[T]` int.
      lambda_: a scalar or `[T]` lambda.

    Returns:
      Per-step lambda, shape `[T]` (float, the dtype of `q_t`).
    """
    fn = "watkins_lambda"
    _checks.assert_inputs(fn, q_t=(q_t, 2, float), a_t=(a_t, 1, int))
    _checks.assert_same_leading_dim(fn, q_t=q_t, a_t=a_t)
    _checks.assert_lambda(fn, lambda_, a_t)
    greedy = batched_index(q_t, a_t) >= jnp.max(q_t, axis=-1)
    return jnp.where(greedy, jnp.ones_like(q_t[:, 0]) * lambda_, 0.0).astype(q_t.dtype)


def batched_index(values: Array, indices: Array, keepdims: bool = False) -> Array:
    """`values[..., indices[...]]`: index the last axis of `values`, as `rlax.batched_index`.

    `out[i, j, ...] = values[i, j, ..., indices[i, j, ...]]`; e.g. `[T, A]`, `[T]` -> `[T]`
    (the value of each step's action), or `[A]`, `[]` -> `[]`.

    Args:
      values: array of shape `[..., D]` (rank >= 1).
      indices: int array of shape `[...]` (the leading shape of `values`).
      keepdims: keep the indexed axis with size 1 (shape `[..., 1]`).

    Returns:
      The indexed values, shape `[...]` (or `[..., 1]` with `keepdims`).
    """
    fn = "batched_index"
    values = jnp.asarray(values)
    indices = jnp.asarray(indices)
    if values.ndim < 1:
        raise AssertionError(
            f"[Chex] {fn}: argument `values` must have rank >= 1 (shape [..., D]), got shape "
            f"{values.shape}")
    _checks.assert_inputs(fn, indices=(indices, values.ndim - 1, int))
    if indices.shape != values.shape[:-1]:
        raise AssertionError(
            f"[Chex] {fn}: argument `indices` must have the leading shape of `values` "
            f"{values.shape[:-1]}, got {indices.shape}")
    indexed = jnp.take_along_axis(values, indices[..., None], axis=-1)
    return indexed if keepdims else jnp.squeeze(indexed, axis=-1)
