"""Trace-time input checks that name the offending argument.

Every check runs on shapes and dtypes only, so it is free under `jax.jit`. Errors are
chex `AssertionError`s whose message names the function, the argument and what was expected.
"""

from typing import Any

import chex
import jax.numpy as jnp
import numpy as np

Spec = tuple  # (value, expected_rank, expected_type)


def _kind(x: Any) -> str:
    if isinstance(x, bool):
        return "b"
    if isinstance(x, int):
        return "i"
    if isinstance(x, float):
        return "f"
    return np.dtype(jnp.asarray(x).dtype).kind


def assert_inputs(fn: str, **specs: Spec) -> None:
    """Checks rank and dtype of each named argument.

    Args:
      fn: name of the public function, used in the message.
      **specs: `name=(value, rank, dtype)`, where `rank` is an int or a set of ints and
        `dtype` is `float`, `int` or `None` (not checked).
    """
    for name, (value, rank, dtype) in specs.items():
        chex.assert_rank(
            value, rank,
            custom_message=f"{fn}: argument `{name}` must have rank {_fmt_rank(rank)}")
        if dtype is not None:
            chex.assert_type(
                value, dtype,
                custom_message=f"{fn}: argument `{name}` must have a {dtype.__name__} dtype")


def assert_same_shape(fn: str, **arrays: Any) -> None:
    """Checks that all named arrays have exactly the same shape (no broadcasting)."""
    shapes = {name: jnp.shape(v) for name, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        detail = ", ".join(f"`{n}` {s}" for n, s in shapes.items())
        raise AssertionError(
            f"[Chex] {fn}: arguments must have the same shape, got {detail}")


def assert_same_leading_dim(fn: str, **arrays: Any) -> None:
    """Checks that all named arrays share their leading (time) dimension."""
    lengths = {name: jnp.shape(v)[0] for name, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"`{n}` {jnp.shape(arrays[n])}" for n in lengths)
        raise AssertionError(
            f"[Chex] {fn}: arguments must have the same length T along axis 0, got {detail}")


def assert_lambda(fn: str, lambda_: Any, like: Any, name: str = "lambda_") -> None:
    """`lambda_` is a scalar or has exactly the shape of `like` (`[T]`)."""
    assert_inputs(fn, **{name: (lambda_, {0, 1}, float)})
    if jnp.ndim(lambda_) == 1 and jnp.shape(lambda_) != jnp.shape(like):
        raise AssertionError(
            f"[Chex] {fn}: argument `{name}` must be a scalar or have shape "
            f"{jnp.shape(like)} (one value per step), got {jnp.shape(lambda_)}")


def check_dtype_kind(fn: str, **specs: tuple) -> None:
    """`name=(value, "bool_or_int")`: raises TypeError for a float or other dtype."""
    for name, (value, kind) in specs.items():
        if kind == "bool_or_int" and _kind(value) not in ("b", "i", "u"):
            raise TypeError(
                f"{fn}: argument `{name}` must be bool or integer, got dtype "
                f"{jnp.asarray(value).dtype}")


def _fmt_rank(rank: Any) -> str:
    if isinstance(rank, (set, frozenset)):
        return " or ".join(str(r) for r in sorted(rank))
    return str(rank)


def concrete(x: Any) -> np.ndarray | None:
    """`x` as a NumPy array, or None when it is traced (value checks are then skipped)."""
    import jax

    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None
