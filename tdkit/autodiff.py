"""Autodiff building blocks for TD learning: Hessians, HVPs, Jacobians, gradient surgery.

- `hessian(f)`: forward-over-reverse (`jacfwd(jacrev(f))`).
- `hvp(f, primals, tangents)`: Hessian-vector product, forward-over-reverse, never forming
  the Hessian (memory and time of about two gradient evaluations).
- `jacobian(f, mode="auto")`: forward mode for tall Jacobians (more outputs than inputs),
  reverse mode for wide ones; `jacobian_mode(f, *args)` says which one "auto" picks.
- `clip_gradient(x, gradient_min, gradient_max)`: identity forward, cotangent clipped to
  `[gradient_min, gradient_max]` backward (`jax.custom_vjp`; rlax's signature).
- `safe_norm(x)`: the Euclidean norm with a `jax.custom_jvp` derivative that is finite at 0
  (the default derivative of `jnp.linalg.norm` at 0 is NaN).
- `top_hessian_eigenvalue(loss, params, ...)`: the largest Hessian eigenvalue by Lanczos or
  power iteration on `hvp`. For gradient descent on a quadratic, steps are stable when
  `step_size < 2 / lambda_max`.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

Array = chex.Array

_MODES = ("auto", "forward", "reverse")


def hessian(f: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The Hessian of `f` by forward-over-reverse: `jax.jacfwd(jax.jacrev(f))`.

    Args:
      f: a function of arrays (or pytrees) returning an array of shape `[O...]`.
      argnums: which positional argument(s) to differentiate, as in `jax.grad`.

    Returns:
      A function with the signature of `f` returning the Hessian: for an argument of shape
      `[I...]`, an array of shape `[O..., I..., I...]` (nested pytrees for pytree arguments).
      Example: `hessian(lambda x: x @ x)(x)` is `2 I`, shape `[N, N]`.
    """
    return jax.jacfwd(jax.jacrev(f, argnums=argnums), argnums=argnums)


def hvp(f: Callable[..., Array], primals: Sequence[Any], tangents: Sequence[Any]) -> Any:
    """Hessian-vector product by forward-over-reverse, without forming the Hessian.

    `jax.jvp(jax.grad(f), primals, tangents)[1]`: the directional derivative of the
    gradient of `f` with respect to its FIRST argument along `tangents`. With one primal
    (close over the other arguments) this is `H v`, where `H` is the Hessian of `f` at
    `primals[0]` and `v = tangents[0]`.

    Args:
      f: scalar function `f(x, *rest) -> []`.
      primals: tuple `(x, *rest)`, `x` an array or pytree of shape `[P...]`.
      tangents: tuple of the same structure as `primals`, `v = tangents[0]`.

    Returns:
      `H v`, with the structure and shapes of `x`.
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(
            "hvp: `primals` and `tangents` must be tuples (as for jax.jvp), got "
            f"{type(primals).__name__} and {type(tangents).__name__}")
    return jax.jvp(jax.grad(f), tuple(primals), tuple(tangents))[1]


def _size(tree: Any) -> int:
    return sum(int(np.prod(jnp.shape(leaf))) for leaf in jax.tree.leaves(tree))


def jacobian_mode(f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0) -> str:
    """The mode `jacobian(f, mode="auto")` uses at these arguments: "forward" or "reverse".

    Forward mode costs one pass per input entry, reverse mode one per output entry. Tall
    Jacobians (outputs >= inputs) use forward mode, wide ones reverse mode. Only shapes are
    used (`jax.eval_shape`), so this is free and works on tracers.

    Args:
      f: the function.
      *args: its arguments.
      argnums: the differentiated argument(s).

    Returns:
      "forward" or "reverse".
    """
    out = jax.eval_shape(f, *args)
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    num_inputs = sum(_size(args[i]) for i in nums)
    return "forward" if _size(out) >= num_inputs else "reverse"


def jacobian(
    f: Callable[..., Any], mode: str = "auto", argnums: int | Sequence[int] = 0,
) -> Callable[..., Any]:
    """The Jacobian of `f`, in forward mode (`jax.jacfwd`) or reverse mode (`jax.jacrev`).

    Args:
      f: a function of arrays (or pytrees) returning an array of shape `[O...]`.
      mode: "forward", "reverse", or "auto": forward for tall Jacobians (more outputs than
        inputs), reverse for wide ones, chosen from shapes at call time (see `jacobian_mode`).
      argnums: which positional argument(s) to differentiate, as in `jax.grad`.

    Returns:
      A function with the signature of `f` returning the Jacobian, shape `[O..., I...]` for an
      argument of shape `[I...]` (a pytree of such for pytree arguments, e.g. a dict of
      parameters).
    """
    if mode not in _MODES:
        raise ValueError(f"jacobian: `mode` must be one of {_MODES}, got {mode!r}")

    def jac(*args):
        chosen = jacobian_mode(f, *args, argnums=argnums) if mode == "auto" else mode
        transform = jax.jacfwd if chosen == "forward" else jax.jacrev
        return transform(f, argnums=argnums)(*args)

    return jac


@jax.custom_vjp
def _clip_gradient(x, lo, hi):
    return x


def _clip_gradient_fwd(x, lo, hi):
    return x, (lo, hi)


def _clip_gradient_bwd(residuals, g):
    lo, hi = residuals
    return jnp.clip(g, lo, hi), jnp.zeros_like(lo), jnp.zeros_like(hi)


_clip_gradient.defvjp(_clip_gradient_fwd, _clip_gradient_bwd)


def _concrete(value: Any) -> np.ndarray | None:
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def clip_gradient(x: Any, gradient_min: Any, gradient_max: Any) -> Any:
    """Identity in the forward pass; clips the incoming gradient to `[gradient_min,
    gradient_max]` backward (rlax's name and argument order).

    `jax.grad(lambda x: g(clip_gradient(x, lo, hi)))(x) == clip(grad g(x), lo, hi)`.
    No gradient flows to the bounds. `grad(0.5 * clip_gradient(x, -d, d) ** 2)` is
    `grad(huber_loss(x, d))`.

    Args:
      x: float array of shape `[...]`, or a pytree of float arrays (clipped leafwise).
      gradient_min, gradient_max: lower and upper bounds on the gradient: scalars, or
        (for an array `x`) arrays of the shape of `x`; `gradient_min <= gradient_max`
        (checked when they are not traced).

    Returns:
      `x` unchanged, same structure and shapes.
    """
    fn = "clip_gradient"
    leaves = jax.tree.leaves(x)
    is_array = len(leaves) == 1 and leaves[0] is x
    if not leaves:
        raise AssertionError(f"[Chex] {fn}: argument `x` must hold at least one array")
    for leaf in leaves:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise AssertionError(
                f"[Chex] {fn}: argument `x` must have a float dtype, got {jnp.result_type(leaf)}")
    for name, bound in (("gradient_min", gradient_min), ("gradient_max", gradient_max)):
        if jnp.ndim(bound) != 0 and (not is_array or jnp.shape(bound) != jnp.shape(x)):
            where = f"the shape of `x` {jnp.shape(x)}" if is_array else "a scalar for a pytree `x`"
            raise AssertionError(
                f"[Chex] {fn}: argument `{name}` must be a scalar or have {where}, got "
                f"{jnp.shape(bound)}")
    lo_c, hi_c = _concrete(gradient_min), _concrete(gradient_max)
    if lo_c is not None and hi_c is not None and np.any(lo_c > hi_c):
        raise ValueError(
            f"{fn}: `gradient_min` must be <= `gradient_max`, got gradient_min="
            f"{lo_c.tolist()}, gradient_max={hi_c.tolist()}")

    def clip_leaf(leaf):
        leaf = jnp.asarray(leaf)
        lo = jnp.broadcast_to(jnp.asarray(gradient_min, leaf.dtype), leaf.shape)
        hi = jnp.broadcast_to(jnp.asarray(gradient_max, leaf.dtype), leaf.shape)
        return _clip_gradient(leaf, lo, hi)

    return jax.tree.map(clip_leaf, x)


def safe_norm(x: Array, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Array:
    """Euclidean norm `sqrt(sum(x ** 2))` whose derivative is finite everywhere.

    `jnp.linalg.norm` has the derivative `x / ||x||`, which is `0 / 0 = NaN` at `x = 0`
    (for instance when a per-example TD gradient is exactly zero and a loss or a clipping
    rule differentiates through its norm). `safe_norm` has the same value and, through a
    `jax.custom_jvp`, the derivative `x / ||x||` for `x != 0` and `0` (a subgradient) at
    `x = 0`. The rule is itself differentiable, so Hessians stay finite too.

    Args:
      x: float array of shape `[...]`.
      axis: axis or axes to reduce (None: all).
      keepdims: keep the reduced axes with size 1.

    Returns:
      The norm, with the reduced shape.
    """
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return _safe_norm(x, axis, bool(keepdims))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _safe_norm(x, axis, keepdims):
    return jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=keepdims))


@_safe_norm.defjvp
def _safe_norm_jvp(axis, keepdims, primals, tangents):
    (x,), (t,) = primals, tangents
    norm = _safe_norm(x, axis, keepdims)
    positive = norm > 0
    safe = jnp.where(positive, norm, jnp.ones_like(norm))
    dot = jnp.sum(x * t, axis=axis, keepdims=keepdims)
    return norm, jnp.where(positive, dot / safe, jnp.zeros_like(dot))


def top_hessian_eigenvalue(
    loss: Callable[..., Array],
    params: Any,
    *loss_args: Any,
    num_iterations: int = 32,
    method: str = "lanczos",
    key: jax.Array | None = None,
) -> Array:
    """The largest eigenvalue of the Hessian of `loss` at `params`, from `hvp` only.

    - `method="lanczos"` (default): `num_iterations` Lanczos steps with full
      reorthogonalisation; returns the largest eigenvalue of the tridiagonal matrix, the
      largest ALGEBRAIC eigenvalue of the Hessian (exact when `num_iterations` is at least
      the number of parameters). Stores `num_iterations` vectors of the size of `params`.
    - `method="power"`: power iteration `v <- H v / ||H v||`, returns the Rayleigh quotient
      `v . H v`; it converges to the eigenvalue of largest MAGNITUDE (the same for the
      positive semi-definite Hessians of least-squares and semi-gradient TD losses), at a
      rate set by the ratio of the two largest magnitudes.

    Use it to pick a stable step size: gradient descent on a quadratic diverges for
    `step_size > 2 / lambda_max`.

    Args:
      loss: scalar function `loss(params, *loss_args) -> []`.
      params: array or pytree of float arrays (the point at which the Hessian is taken).
      *loss_args: further arguments of `loss` (for instance a batch of transitions).
      num_iterations: a positive Python int.
      method: "lanczos" or "power".
      key: start vector seed (a `jax.random.key`); defaults to `jax.random.key(0)`.

    Returns:
      The eigenvalue estimate, shape `[]`, with the dtype of `params`.
    """
    if isinstance(num_iterations, bool) or not isinstance(num_iterations, int) or (
            num_iterations < 1):
        raise ValueError(
            "top_hessian_eigenvalue: `num_iterations` must be a positive integer, got "
            f"{num_iterations!r}")
    if method not in ("lanczos", "power"):
        raise ValueError(
            f"top_hessian_eigenvalue: `method` must be 'lanczos' or 'power', got {method!r}")
    leaves = jax.tree.leaves(params)
    if not leaves or _size(params) == 0 or not all(
            jnp.issubdtype(jnp.result_type(leaf), jnp.floating) for leaf in leaves):
        raise AssertionError(
            "[Chex] top_hessian_eigenvalue: argument `params` must hold float arrays, got "
            f"{jax.tree.map(lambda x: jnp.result_type(x).name, params)}")
    key = jax.random.key(0) if key is None else key
    return _top_hessian_eigenvalue(loss, num_iterations, method, params, loss_args, key)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))  # Cached per loss function.
def _top_hessian_eigenvalue(loss, num_iterations, method, params, loss_args, key):
    flat, unravel = ravel_pytree(params)

    def matvec(v):
        flat_loss = lambda p: loss(unravel(p), *loss_args)
        return hvp(flat_loss, (flat,), (v,))

    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    v0 = v0 / jnp.linalg.norm(v0)
    if method == "power":
        return _power_iteration(matvec, v0, num_iterations)
    return _lanczos_top(matvec, v0, min(num_iterations, flat.size))


def _power_iteration(matvec: Callable[[Array], Array], v0: Array, num: int) -> Array:
    def body(_, v):
        w = matvec(v)
        norm = jnp.linalg.norm(w)
        return jnp.where(norm > 0, w / jnp.where(norm > 0, norm, 1), v)

    v = jax.lax.fori_loop(0, num, body, v0)
    return jnp.vdot(v, matvec(v))


def _lanczos_top(matvec: Callable[[Array], Array], v0: Array, num: int) -> Array:
    """Largest Ritz value after `num` Lanczos steps (full reorthogonalisation)."""
    dtype = v0.dtype
    basis = jnp.zeros((num, v0.size), dtype).at[0].set(v0)
    tol = jnp.asarray(np.finfo(np.dtype(dtype)).eps, dtype) ** 0.75

    def body(i, carry):
        basis, alphas, betas, alive = carry
        v = basis[i]
        w = matvec(v)
        alpha = jnp.vdot(v, w)
        # Orthogonalise against every basis vector so far (twice, for stability).
        mask = (jnp.arange(num) <= i).astype(dtype)[:, None]
        for _ in range(2):
            w = w - (basis * mask).T @ ((basis * mask) @ w)
        beta = jnp.linalg.norm(w)
        # The Krylov space is exhausted once beta ~ 0: later steps are ignored.
        scale = jnp.maximum(jnp.abs(alphas[0]), jnp.abs(alpha))
        keep = alive & (beta > tol * jnp.maximum(scale, 1))
        next_v = jnp.where(keep, w / jnp.where(keep, beta, 1), jnp.zeros_like(w))
        basis = jnp.where(i + 1 < num, basis.at[jnp.minimum(i + 1, num - 1)].set(next_v), basis)
        alphas = alphas.at[i].set(jnp.where(alive, alpha, jnp.nan))
        betas = betas.at[i].set(jnp.where(keep, beta, 0))
        return basis, alphas, betas, keep

    alphas = jnp.zeros((num,), dtype)
    betas = jnp.zeros((num,), dtype)
    init = (basis, alphas, betas, jnp.array(True))
    _, alphas, betas, _ = jax.lax.fori_loop(0, num, body, init)
    # Steps after a breakdown are marked NaN; give them alphas[0], a Rayleigh quotient of the
    # Krylov space, which never exceeds its largest Ritz value, and no coupling.
    valid = ~jnp.isnan(alphas)
    alphas = jnp.where(valid, alphas, alphas[0])
    off = betas[:-1] * valid[1:]
    tridiagonal = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)
    return jnp.max(jnp.linalg.eigvalsh(tridiagonal))


__all__ = [
    "clip_gradient",
    "hessian",
    "hvp",
    "jacobian",
    "jacobian_mode",
    "safe_norm",
    "top_hessian_eigenvalue",
]
