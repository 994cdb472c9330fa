"""Elementwise losses on TD errors (rlax's `l2_loss` and `huber_loss`)."""

import chex
import jax.numpy as jnp

from tdkit import _checks

Array = chex.Array


def l2_loss(predictions: Array, targets: Array | None = None) -> Array:
    """`0.5 * (predictions - targets) ** 2`, elementwise; `targets` default to zero.

    Pass a TD error as `predictions` to get the semi-gradient TD loss whose negative gradient
    is `delta * grad v`.

    Args:
      predictions: float array of any shape `[...]`.
      targets: float array of the same shape, or None.

    Returns:
      The elementwise loss, shape `[...]`.
    """
    _checks.assert_inputs("l2_loss", predictions=(predictions, set(range(32)), float))
    if targets is None:
        targets = jnp.zeros_like(predictions)
    else:
        _checks.assert_inputs("l2_loss", targets=(targets, set(range(32)), float))
        _checks.assert_same_shape("l2_loss", predictions=predictions, targets=targets)
    return 0.5 * (predictions - targets) ** 2


def huber_loss(x: Array, delta: float = 1.0) -> Array:
    """Huber loss: quadratic for `|x| <= delta`, linear (slope `delta`) beyond.

    `0.5 * min(|x|, delta)^2 + delta * (|x| - min(|x|, delta))`; its gradient is `x` clipped
    to `[-delta, delta]`.

    Args:
      x: float array of any shape `[...]` (typically TD errors).
      delta: the threshold, > 0.

    Returns:
      The elementwise loss, shape `[...]`.
    """
    _checks.assert_inputs("huber_loss", x=(x, set(range(32)), float))
    if isinstance(delta, (int, float)) and delta <= 0:
        raise ValueError(f"huber_loss: argument `delta` must be > 0, got {delta!r}")
    abs_x = jnp.abs(x)
    quadratic = jnp.minimum(abs_x, delta)
    linear = abs_x - quadratic
    return 0.5 * quadratic**2 + delta * linear
