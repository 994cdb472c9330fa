"""Element-wise value transforms, 2-hot encodings and transform pairs (`TxPair`).

Names, argument order and values follow rlax (`rlax.signed_hyperbolic`,
`rlax.transform_to_2hot`, `rlax.TxPair`, `rlax.SIGNED_HYPERBOLIC_PAIR`, ...). A transform
maps values into a space where they are easier to regress (squashed, or spread over a fixed
support); `TxPair(apply, apply_inv)` holds a transform and its inverse, and is what the
transformed returns in `tdkit.nonlinear_bellman` take.

Every element-wise transform takes any shape `[...]` and returns the same shape.

Differences from rlax, all in the last digits or in corner cases, never in the maths:

- `transform_to_2hot` interpolates exactly between the two neighbouring bins (rlax adds
  `1e-5` to the bin width, which moves up to `1e-5 / bin_width` of probability to the upper
  bin and biases the decoded value by up to `1e-5`), so `transform_from_2hot` inverts it.
- `transform_from_2hot` and the `_nonlinear` pair map `[..., num_bins]` to `[...]` for any
  rank; rlax returns shape `[1]` for a single `[num_bins]` distribution (and `[1, num_bins]`
  for a scalar in `transform_to_2hot_nonlinear`).
- `signed_hyperbolic`, `signed_parabolic`, `power`, `logit` and the discount pair use
  algebraically equal forms that avoid cancellation in float32, and `signed_hyperbolic` has
  the true derivative `1/2 + eps` at 0 (rlax's `sign(x)` form gives `eps` there), and
  `signed_parabolic` its reciprocal (rlax: 0).
"""

import functools
import operator
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

Array = chex.Array
Numeric = chex.Numeric


def _assert_float(fn: str, name: str, x: Any) -> None:
    chex.assert_type(
        x, float, custom_message=f"{fn}: argument `{name}` must have a float dtype")


def identity(x: Array) -> Array:
    """Identity transform: `x`.

    Args:
      x: values, any shape `[...]`, float.

    Returns:
      `x`, shape `[...]`.
    """
    _assert_float("identity", "x", x)
    return x


def sigmoid(x: Numeric) -> Array:
    """Sigmoid: `1 / (1 + exp(-x))`, inverse of `logit`.

    Args:
      x: values, any shape `[...]`, float.

    Returns:
      Values in `(0, 1)`, shape `[...]`.
    """
    _assert_float("sigmoid", "x", x)
    return jax.nn.sigmoid(x)


def logit(x: Array) -> Array:
    """Logit: `log(x / (1 - x))`, inverse of `sigmoid`.

    Args:
      x: values in `(0, 1)`, any shape `[...]`, float.

    Returns:
      Values, shape `[...]`.
    """
    _assert_float("logit", "x", x)
    return jnp.log(x) - jnp.log1p(-x)


def signed_logp1(x: Array) -> Array:
    """Signed log: `sign(x) * log(1 + |x|)`, inverse of `signed_expm1`.

    Args:
      x: values, any shape `[...]`, float.

    Returns:
      Squashed values, shape `[...]`.
    """
    _assert_float("signed_logp1", "x", x)
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def signed_expm1(x: Array) -> Array:
    """Signed exp: `sign(x) * (exp(|x|) - 1)`, inverse of `signed_logp1`.

    Args:
      x: values, any shape `[...]`, float.

    Returns:
      Values, shape `[...]`.
    """
    _assert_float("signed_expm1", "x", x)
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def signed_hyperbolic(x: Array, eps: float = 1e-3) -> Array:
    """`h(x) = sign(x) * (sqrt(|x| + 1) - 1) + eps * x` (Pohlen et al. 2018), inverse of
    `signed_parabolic`.

    Computed as `x / (sqrt(|x| + 1) + 1) + eps * x`, the same function without cancellation.

    Args:
      x: values, any shape `[...]`, float.
      eps: the linear term that keeps `h` invertible with a Lipschitz inverse.

    Returns:
      Squashed values, shape `[...]`.
    """
    _assert_float("signed_hyperbolic", "x", x)
    return x / (jnp.sqrt(jnp.abs(x) + 1.0) + 1.0) + eps * x


def signed_parabolic(x: Array, eps: float = 1e-3) -> Array:
    """Inverse of `signed_hyperbolic`:

    `h^-1(y) = sign(y) * (((sqrt(1 + 4 eps (|y| + 1 + eps)) - 1) / (2 eps))^2 - 1)`.

    Computed with `w = sqrt(|x| + 1) - 1`, the positive root of
    `eps w^2 + (1 + 2 eps) w - |y| = 0`, as `w = 2 |y| / (b + sqrt(b^2 + 4 eps |y|))`,
    `b = 1 + 2 eps`, and `x = sign(y) * w (w + 2)`: the same function without cancellation,
    written as `y * 2 (w + 2) / (b + sqrt(...))` so that the slope at 0 is `1 / (1/2 + eps)`.

    Args:
      x: transformed values `y`, any shape `[...]`, float.
      eps: the `eps` used by `signed_hyperbolic`.

    Returns:
      Values, shape `[...]`.
    """
    _assert_float("signed_parabolic", "x", x)
    abs_y = jnp.abs(x)
    b = 1.0 + 2.0 * eps
    denominator = b + jnp.sqrt(b * b + 4.0 * eps * abs_y)
    w = 2.0 * abs_y / denominator
    return x * 2.0 * (w + 2.0) / denominator


def hyperbolic_sin(x: Array) -> Array:
    """`sinh(x)`, inverse of `hyperbolic_arcsin`.

    Args:
      x: values, any shape `[...]`, float.

    Returns:
      Values, shape `[...]`.
    """
    _assert_float("hyperbolic_sin", "x", x)
    return jnp.sinh(x)


def hyperbolic_arcsin(x: Array) -> Array:
    """`arcsinh(x) = log(x + sqrt(x^2 + 1))`, inverse of `hyperbolic_sin`.

    Args:
      x: values, any shape `[...]`, float.

    Returns:
      Squashed values, shape `[...]`.
    """
    _assert_float("hyperbolic_arcsin", "x", x)
    return jnp.arcsinh(x)


def power(x: Array, p: float) -> Array:
    """Signed power transform `sign(x) * ((|x| / sqrt(p) + 1)^p - 1) / sqrt(p)`.

    `power(power(x, p), 1 / p) == x`. Computed as `expm1(p * log1p(|x| / q)) / q`,
    `q = sqrt(p)`.

    Args:
      x: values, any shape `[...]`, float.
      p: the exponent, `> 0`.

    Returns:
      Values, shape `[...]`.
    """
    _assert_float("power", "x", x)
    if _concrete(p) is not None and _concrete(p) <= 0:
        raise ValueError(f"power: argument `p` must be > 0, got {p!r}")
    q = jnp.sqrt(p)
    return jnp.sign(x) * jnp.expm1(p * jnp.log1p(jnp.abs(x) / q)) / q


def _concrete(x: Any) -> float | None:
    """`float(x)` when `x` is a concrete scalar, None when it is traced."""
    try:
        return float(x)
    except (jax.errors.ConcretizationTypeError, TypeError):
        return None


def _check_support(fn: str, min_value: Any, max_value: Any, num_bins: Any) -> int:
    try:
        num_bins = operator.index(num_bins)
    except TypeError:
        raise TypeError(
            f"{fn}: argument `num_bins` must be a Python int, got {num_bins!r}") from None
    if num_bins < 2:
        raise ValueError(f"{fn}: argument `num_bins` must be >= 2, got {num_bins}")
    lo, hi = _concrete(min_value), _concrete(max_value)
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(
            f"{fn}: argument `min_value` must be < `max_value`, got {lo} and {hi}")
    return num_bins


def transform_to_2hot(
    scalar: Array,
    min_value: float,
    max_value: float,
    num_bins: int,
) -> Array:
    """Encodes scalars as 2-hot distributions over `num_bins` evenly spaced bins.

    With bins `z_k = min_value + k * w`, `w = (max_value - min_value) / (num_bins - 1)`, a
    value `x` (first clipped to `[min_value, max_value]`) with `z_k <= x <= z_{k+1}` gets
    probability `(z_{k+1} - x) / w` on bin `k` and `(x - z_k) / w` on bin `k + 1`, so
    `sum_k p_k z_k = x`.

    Args:
      scalar: values, any shape `[...]`, float.
      min_value: the lowest bin.
      max_value: the highest bin, `> min_value`.
      num_bins: number of bins, a Python int `>= 2`.

    Returns:
      Probabilities, shape `[..., num_bins]`, the dtype of `scalar`.
    """
    fn = "transform_to_2hot"
    _assert_float(fn, "scalar", scalar)
    num_bins = _check_support(fn, min_value, max_value, num_bins)
    scalar = jnp.asarray(scalar)
    x = jnp.clip(scalar, min_value, max_value)
    position = (x - min_value) / (max_value - min_value) * (num_bins - 1)
    lower = jnp.clip(jnp.floor(position), 0, num_bins - 2)
    p_upper = (position - lower).astype(scalar.dtype)
    lower = lower.astype(jnp.int32)
    return (jax.nn.one_hot(lower, num_bins, dtype=scalar.dtype) * (1.0 - p_upper)[..., None]
            + jax.nn.one_hot(lower + 1, num_bins, dtype=scalar.dtype) * p_upper[..., None])


def transform_from_2hot(
    probs: Array,
    min_value: float,
    max_value: float,
    num_bins: int,
) -> Array:
    """Decodes distributions over `num_bins` evenly spaced bins: `sum_k probs[..., k] z_k`.

    Args:
      probs: probabilities, shape `[..., num_bins]`, float.
      min_value: the lowest bin.
      max_value: the highest bin, `> min_value`.
      num_bins: number of bins, a Python int `>= 2`.

    Returns:
      Expected values, shape `[...]`.
    """
    fn = "transform_from_2hot"
    _assert_float(fn, "probs", probs)
    num_bins = _check_support(fn, min_value, max_value, num_bins)
    if jnp.ndim(probs) < 1 or jnp.shape(probs)[-1] != num_bins:
        raise AssertionError(
            f"[Chex] {fn}: argument `probs` must have shape [..., num_bins={num_bins}], got "
            f"{jnp.shape(probs)}")
    support = jnp.linspace(min_value, max_value, num_bins).astype(jnp.result_type(probs))
    return jnp.sum(probs * support, axis=-1)


def _check_bins(fn: str, bins: Any) -> None:
    chex.assert_rank(bins, 1, custom_message=f"{fn}: argument `bins` must have rank 1")
    _assert_float(fn, "bins", bins)
    if jnp.shape(bins)[0] < 2:
        raise ValueError(f"{fn}: argument `bins` must hold at least 2 bins, got {bins}")


def transform_to_2hot_nonlinear(scalar: Array, bins: Array) -> Array:
    """Encodes scalars as 2-hot distributions over increasing, not evenly spaced, `bins`.

    A value `x` (clipped to `[bins[0], bins[-1]]`) with `bins[k] <= x <= bins[k+1]` gets
    `(bins[k+1] - x) / (bins[k+1] - bins[k])` on bin `k` and the rest on bin `k + 1`.

    Args:
      scalar: values, any shape `[...]`, float.
      bins: bin locations, strictly increasing, shape `[K]`, `K >= 2`.

    Returns:
      Probabilities, shape `[..., K]`.
    """
    fn = "transform_to_2hot_nonlinear"
    _assert_float(fn, "scalar", scalar)
    _check_bins(fn, bins)
    num_bins = bins.shape[0]
    x = jnp.clip(scalar, bins[0], bins[-1])
    upper = jnp.clip(jnp.searchsorted(bins, x, side="left"), 1, num_bins - 1)
    upper_value, lower_value = bins[upper], bins[upper - 1]
    p_lower = (upper_value - x) / (upper_value - lower_value)
    dtype = jnp.result_type(x)
    return (jax.nn.one_hot(upper - 1, num_bins, dtype=dtype) * p_lower[..., None]
            + jax.nn.one_hot(upper, num_bins, dtype=dtype) * (1.0 - p_lower)[..., None])


def transform_from_2hot_nonlinear(probs: Array, bins: Array) -> Array:
    """Decodes distributions over `bins`: `sum_k probs[..., k] bins[k]`.

    Args:
      probs: probabilities, shape `[..., K]`, float.
      bins: bin locations, shape `[K]`.

    Returns:
      Expected values, shape `[...]`.
    """
    fn = "transform_from_2hot_nonlinear"
    _assert_float(fn, "probs", probs)
    _check_bins(fn, bins)
    if jnp.ndim(probs) < 1 or jnp.shape(probs)[-1] != bins.shape[0]:
        raise AssertionError(
            f"[Chex] {fn}: argument `probs` must have shape [..., K={bins.shape[0]}], got "
            f"{jnp.shape(probs)}")
    return jnp.sum(probs * bins, axis=-1)


class TxPair(NamedTuple):
    """A value transform and its inverse, as in rlax: `apply_inv(apply(x)) == x`.

    Attributes:
      apply: the transform, `[...] -> [...]` (or `[...] -> [..., K]` for 2-hot pairs).
      apply_inv: its inverse.
    """

    apply: Callable[[Array], Array]
    apply_inv: Callable[[Array], Array]


def _discount_to_horizon(x: Array) -> Array:
    return -jnp.log1p(-x)


def _horizon_to_discount(x: Array) -> Array:
    return -jnp.expm1(-x)


IDENTITY_PAIR = TxPair(identity, identity)
SIGNED_LOGP1_PAIR = TxPair(signed_logp1, signed_expm1)
SIGNED_HYPERBOLIC_PAIR = TxPair(signed_hyperbolic, signed_parabolic)
HYPERBOLIC_SIN_PAIR = TxPair(hyperbolic_arcsin, hyperbolic_sin)
# Maps a discount in [0, 1) to `-log(1 - discount)` and back.
DISCOUNT_TRANSFORM_PAIR = TxPair(_discount_to_horizon, _horizon_to_discount)


def twohot_pair(min_value: float, max_value: float, num_bins: int) -> TxPair:
    """`TxPair(transform_to_2hot, transform_from_2hot)` over a fixed, evenly spaced support.

    Args:
      min_value: the lowest bin.
      max_value: the highest bin.
      num_bins: number of bins, `>= 2`.

    Returns:
      A pair mapping `[...]` to `[..., num_bins]` and back.
    """
    _check_support("twohot_pair", min_value, max_value, num_bins)
    support = dict(min_value=min_value, max_value=max_value, num_bins=num_bins)
    return TxPair(functools.partial(transform_to_2hot, **support),
                  functools.partial(transform_from_2hot, **support))


def compose_tx(*tx_list: TxPair) -> TxPair:
    """Chains pairs: `[f, g]` gives `apply = g.apply o f.apply`, `apply_inv = f^-1 o g^-1`.

    Args:
      *tx_list: the pairs, in the order their `apply` runs.

    Returns:
      The composed pair.
    """
    for k, tx in enumerate(tx_list):
        _check_tx_pair("compose_tx", tx, f"tx_list[{k}]")

    def apply(x):
        for tx in tx_list:
            x = tx.apply(x)
        return x

    def apply_inv(x):
        for tx in reversed(tx_list):
            x = tx.apply_inv(x)
        return x

    return TxPair(apply, apply_inv)


def muzero_pair(min_value: float, max_value: float, num_bins: int, tx: TxPair) -> TxPair:
    """MuZero's pair (Schrittwieser et al. 2020): squash with `tx`, then 2-hot encode.

    Args:
      min_value: the lowest bin, in the squashed space.
      max_value: the highest bin, in the squashed space.
      num_bins: number of bins, `>= 2`.
      tx: the squashing pair, e.g. `SIGNED_HYPERBOLIC_PAIR`.

    Returns:
      A pair mapping `[...]` to `[..., num_bins]` and back.
    """
    return compose_tx(tx, twohot_pair(min_value, max_value, num_bins))


def unbiased_transform_pair(
    min_value: float, max_value: float, num_bins: int, tx: TxPair
) -> TxPair:
    """2-hot pair over the bins `tx.apply_inv(linspace(min_value, max_value, num_bins))`.

    Unlike `muzero_pair`, the non-linearity moves the bins rather than the values, so
    decoding the 2-hot encoding of `x` gives `x` back exactly (inside the support).

    Args:
      min_value: the lowest bin, in the squashed space.
      max_value: the highest bin, in the squashed space.
      num_bins: number of bins, `>= 2`.
      tx: the pair whose `apply_inv` places the bins.

    Returns:
      A pair mapping `[...]` to `[..., num_bins]` and back.
    """
    _check_support("unbiased_transform_pair", min_value, max_value, num_bins)
    _check_tx_pair("unbiased_transform_pair", tx, "tx")
    bins = tx.apply_inv(jnp.linspace(min_value, max_value, num_bins))
    return TxPair(functools.partial(transform_to_2hot_nonlinear, bins=bins),
                  functools.partial(transform_from_2hot_nonlinear, bins=bins))


def _check_tx_pair(fn: str, tx: Any, name: str = "tx_pair") -> None:
    if not (isinstance(tx, tuple) and len(tx) == 2 and callable(getattr(tx, "apply", None))
            and callable(getattr(tx, "apply_inv", None))):
        raise TypeError(
            f"{fn}: argument `{name}` must be a TxPair(apply, apply_inv) of callables, got "
            f"{type(tx).__name__}")
