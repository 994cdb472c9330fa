"""Least-squares TD: LSTD(0) and LSTD(lambda), recursive (Sherman-Morrison) and batch.

LSTD(lambda) estimates `A = eps I + sum_t z_t (x_t - gamma_{t+1} x_{t+1})^T` and
`b = sum_t R_{t+1} z_t` and returns `w = A^{-1} b` (S&B Section 9.8; Boyan 2002), with the
accumulating trace `z_t = gamma_t lambda z_{t-1} + x_t` (`z_t = x_t` for LSTD(0)).

The recursive form keeps `A^{-1}` and updates it with the Sherman-Morrison formula
(`O(F^2)` per step, no matrix inversion):

`u = A_inv z`, `y = A_inv^T (x_tm1 - discount_t x_t)`, `A_inv <- A_inv - u y^T / (1 + y . z)`.

Trace convention as in `tdkit.traces`: the carried `z` is already decayed by
`discount_t * lambda_` (zero after a terminal transition).
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks

Array = chex.Array
Numeric = chex.Numeric


class LSTDState(NamedTuple):
    """Recursive LSTD statistics.

    Attributes:
      A_inv: inverse of `eps I + sum z (x - gamma x')^T`, shape `[F, F]`.
      b: `sum r z`, shape `[F]`.
      z: trace carried to the next step, already decayed (zeros for LSTD(0)), shape `[F]`.
    """

    A_inv: Array
    b: Array
    z: Array


def lstd_init(num_features: int, epsilon: float, dtype=jnp.float32) -> LSTDState:
    """`LSTDState(A_inv = I / epsilon, b = 0, z = 0)`.

    Args:
      num_features: `F`, a Python int >= 1.
      epsilon: the ridge `eps > 0` of `A = eps I + ...` (small: 1e-3 .. 1).
      dtype: float dtype of the state.

    Returns:
      The initial `LSTDState`.
    """
    if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
        raise ValueError(
            f"lstd_init: argument `num_features` must be a Python int >= 1, got {num_features!r}")
    if isinstance(epsilon, (int, float)) and not epsilon > 0:
        raise ValueError(f"lstd_init: argument `epsilon` must be > 0, got {epsilon!r}")
    eye = jnp.eye(num_features, dtype=dtype)
    zeros = jnp.zeros((num_features,), dtype)
    return LSTDState(eye / jnp.asarray(epsilon, dtype), zeros, zeros)


def lstd_update(
    state: LSTDState,
    x_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    x_t: Array,
    lambda_: Numeric = 0.0,
) -> LSTDState:
    """Adds one transition to recursive LSTD(lambda) (LSTD(0) with `lambda_ = 0`):

    `z_t = z + x_tm1`, `A_inv <- A_inv - (A_inv z_t)(A_inv^T v)^T / (1 + v . A_inv z_t)` with
    `v = x_tm1 - discount_t x_t`, `b <- b + r_t z_t`, carried trace `discount_t lambda_ z_t`.

    Args:
      state: `LSTDState` (`lstd_init` at the start).
      x_tm1: features of the source state, shape `[F]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      x_t: features of the destination state, shape `[F]`.
      lambda_: trace-decay parameter, shape `[]`.

    Returns:
      The new `LSTDState`; `lstd_weights` gives `w`.
    """
    fn = "lstd_update"
    A_inv, b, z = state
    _checks.assert_inputs(
        fn, A_inv=(A_inv, 2, float), b=(b, 1, float), z=(z, 1, float), x_tm1=(x_tm1, 1, float),
        r_t=(r_t, 0, float), discount_t=(discount_t, 0, float), x_t=(x_t, 1, float),
        lambda_=(lambda_, 0, float))
    _checks.assert_same_shape(fn, b=b, z=z, x_tm1=x_tm1, x_t=x_t)
    if A_inv.shape != (b.shape[0], b.shape[0]):
        raise AssertionError(
            f"[Chex] {fn}: `state.A_inv` must have shape [F, F] = {(b.shape[0],) * 2}, "
            f"got {A_inv.shape}")
    z = z + x_tm1
    v = x_tm1 - discount_t * x_t
    u = A_inv @ z
    y = A_inv.T @ v
    A_inv = A_inv - jnp.outer(u, y) / (1.0 + jnp.dot(v, u))
    return LSTDState(A_inv, b + r_t * z, discount_t * lambda_ * z)


def lstd_weights(state: LSTDState) -> Array:
    """`w = A_inv b`, shape `[F]`."""
    _checks.assert_inputs("lstd_weights", A_inv=(state.A_inv, 2, float), b=(state.b, 1, float))
    return state.A_inv @ state.b


def lstd_statistics(
    x_tm1: Array,
    r_t: Array,
    discount_t: Array,
    x_t: Array,
    lambda_: Numeric = 0.0,
) -> tuple[Array, Array]:
    """`A = sum_t z_t (x_tm1[t] - discount_t[t] x_t[t])^T` and `b = sum_t r_t[t] z_t` (no ridge).

    The rows are ONE stream in time order (episodes back to back; a zero discount ends an
    episode and resets the trace). For `lambda_ = 0` the order does not matter.

    Args:
      x_tm1: source features, shape `[T, F]`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      x_t: destination features, shape `[T, F]`.
      lambda_: trace-decay parameter, shape `[]`.

    Returns:
      `(A [F, F], b [F])`.
    """
    fn = "lstd_statistics"
    _checks.assert_inputs(
        fn, x_tm1=(x_tm1, 2, float), r_t=(r_t, 1, float), discount_t=(discount_t, 1, float),
        x_t=(x_t, 2, float), lambda_=(lambda_, 0, float))
    _checks.assert_same_shape(fn, x_tm1=x_tm1, x_t=x_t)
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t)
    _checks.assert_same_leading_dim(fn, x_tm1=x_tm1, r_t=r_t)

    def trace_step(z, inputs):
        x, d = inputs
        z = z + x
        return d * lambda_ * z, z

    _, zs = jax.lax.scan(trace_step, jnp.zeros_like(x_tm1[0]), (x_tm1, discount_t))
    A = zs.T @ (x_tm1 - discount_t[:, None] * x_t)
    b = zs.T @ r_t
    return A, b


def lstd_solve(
    x_tm1: Array,
    r_t: Array,
    discount_t: Array,
    x_t: Array,
    lambda_: Numeric = 0.0,
    epsilon: Numeric = 0.0,
) -> Array:
    """Batch LSTD(lambda): `w = solve(eps I + A, b)` with `lstd_statistics`.

    With `epsilon = 0` the data must make `A` invertible. Equals the recursive form after
    the same transitions with `lstd_init(F, epsilon)`.

    Args:
      x_tm1: source features, shape `[T, F]`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, shape `[T]`.
      x_t: destination features, shape `[T, F]`.
      lambda_: trace-decay parameter, shape `[]`.
      epsilon: ridge, shape `[]`.

    Returns:
      `w`, shape `[F]`.
    """
    _checks.assert_inputs("lstd_solve", epsilon=(epsilon, 0, float))
    A, b = lstd_statistics(x_tm1, r_t, discount_t, x_t, lambda_)
    A = A + epsilon * jnp.eye(A.shape[0], dtype=A.dtype)
    return jnp.linalg.solve(A, b)
