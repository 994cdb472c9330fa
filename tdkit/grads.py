"""Per-example gradients, their norms, and clipped mean gradients (DP-SGD style).

Every function here takes a loss for ONE example, `loss_fn(params, *args) -> []` (any
function; with `has_aux=True`, `loss_fn(params, *args) -> ([], aux)` and `aux` is ignored),
and returns a function of `(params, *batched_args)`. The gradient is w.r.t. the first
argument, `params`, which is shared by all examples. `in_axes` has one entry per argument of
`loss_fn`; the default `(None, 0, ..., 0)` batches every argument after `params` along axis
0. For a loss from `tdkit.losses.td_loss`, `loss(params, target_params, transition[, weight])`,
pass `in_axes=(None, None, 0)` (or `(None, None, 0, 0)` with importance weights) so that
`target_params` are shared too.

Two ways to compute:

- `"layerwise"`: needs `structure`, a `tdkit.values.PerExampleStructure` of the LOSS
  (`structure.tapped(params, taps, *args) -> (loss [], saved)`), e.g. `loss.structure` of a
  `td_loss` on a `tabular`, `linear` or `mlp` value function. One forward and one backward
  pass of the summed loss give, for every layer, its inputs `a_i` and backprop signals `g_i`
  per example. A dense layer's per-example weight gradient is `outer(a_i, g_i)`, so its
  squared norm is `(|a_i|^2 + 1) |g_i|^2` (the `+ 1` for the bias): norms and clipped means
  never build the `[B, |params|]` per-example gradients. The clipped mean is one more
  backward pass of `sum_i c_i loss_i`, `c_i = min(1, C / norm_i)`.
- `"vmap"`: `jax.vmap(jax.grad(loss_fn))` for any loss (the fallback).

`method="auto"` (the default) picks `"layerwise"` when a `structure` is given, `"vmap"`
otherwise. Nothing is read off `loss_fn` itself: the fast path is an explicit opt-in:

    loss = tdkit.td_loss(value_fn, "q_learning", "huber")
    norms = per_example_grad_norms(loss, (None, None, 0), structure=loss.structure)
    mean = clipped_mean_grad(loss, 1.0, (None, None, 0, 0), structure=loss.structure)
    norms(params, target_params, batch), mean(params, target_params, batch, weights)

`chunk_size` processes the batch in chunks (`lax.scan`), so that only `chunk_size` examples'
intermediate values live at once. `check_finite=True` runs `chex.assert_tree_all_finite` on
the per-example results before anything is averaged (eagerly, or under
`chex.chexify(jax.jit(fn))`); without it NaNs propagate into the result, never hidden.

The returned functions are pure and not jitted: wrap them in `jax.jit`.
"""

from collections.abc import Callable, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from tdkit import values

Array = chex.Array
ArrayTree = chex.ArrayTree
InAxes = Sequence[int | None] | None

_METHODS = ("auto", "layerwise", "vmap")


def per_example_grads(
    loss_fn: Callable[..., Array],
    in_axes: InAxes = None,
    *,
    has_aux: bool = False,
    structure: values.PerExampleStructure | None = None,
    chunk_size: int | None = None,
    method: str = "auto",
    check_finite: bool = False,
) -> Callable[..., ArrayTree]:
    """Gradients of `loss_fn` w.r.t. `params`, one per example.

    Args:
      loss_fn: `loss_fn(params, *args) -> []`, the loss of ONE example.
      in_axes: one entry per argument of `loss_fn`: None (shared) or the batch axis; the
        first entry must be None. Default `(None, 0, ..., 0)`: every argument after `params`
        batched along axis 0 (a `td_loss` needs `(None, None, 0)`, see the module docstring).
      has_aux: `loss_fn` returns `(loss, aux)` (e.g. `td_loss(..., has_aux=True)`); `aux` is
        ignored.
      structure: the `PerExampleStructure` of `loss_fn` (e.g. `loss.structure` of a
        `td_loss`), to enable the layerwise method; None: vmap only.
      chunk_size: process the batch in chunks of this many examples (> 0), or None.
      method: `"auto"`, `"layerwise"` (needs `structure`) or `"vmap"` (see the module
        docstring).
      check_finite: assert that every per-example gradient is finite.

    Returns:
      `fn(params, *args) -> grads`: a pytree like `params` whose leaves have a leading `[B]`.
    """
    _check_options("per_example_grads", chunk_size, method, structure)

    def fn(params: ArrayTree, *args: Any) -> ArrayTree:
        plan = _plan("per_example_grads", loss_fn, in_axes, has_aux, structure, method, params,
                     args)
        grads = _over_chunks(plan, chunk_size, plan.grads, "concat")
        if check_finite:
            chex.assert_tree_all_finite(
                grads, custom_message="per_example_grads: a per-example gradient is not finite")
        return grads

    return fn


def per_example_grad_norms(
    loss_fn: Callable[..., Array],
    in_axes: InAxes = None,
    *,
    has_aux: bool = False,
    structure: values.PerExampleStructure | None = None,
    chunk_size: int | None = None,
    method: str = "auto",
    check_finite: bool = False,
) -> Callable[..., Array]:
    """Global L2 norms of the per-example gradients of `loss_fn` w.r.t. `params`.

    With the layerwise method the per-example gradients are never materialised.

    Args:
      loss_fn: `loss_fn(params, *args) -> []`, the loss of ONE example.
      in_axes, has_aux, structure: as in `per_example_grads`.
      chunk_size: process the batch in chunks of this many examples (> 0), or None.
      method: `"auto"`, `"layerwise"` or `"vmap"`.
      check_finite: assert that every norm is finite.

    Returns:
      `fn(params, *args) -> [B]` float32 norms.
    """
    _check_options("per_example_grad_norms", chunk_size, method, structure)

    def fn(params: ArrayTree, *args: Any) -> Array:
        plan = _plan("per_example_grad_norms", loss_fn, in_axes, has_aux, structure, method, params,
                     args)
        norms = _over_chunks(plan, chunk_size, plan.norms, "concat")
        if check_finite:
            chex.assert_tree_all_finite(
                norms, custom_message="per_example_grad_norms: a per-example gradient is not "
                "finite")
        return norms

    return fn


def clip_per_example(grads: ArrayTree, max_norm: chex.Numeric) -> ArrayTree:
    """Scales each example's gradient to a global L2 norm of at most `max_norm`.

    Example `i` is multiplied by `min(1, max_norm / norm_i)`; a NaN gradient stays NaN.

    Args:
      grads: per-example gradients, a pytree whose leaves have a leading `[B]`.
      max_norm: the clipping threshold, > 0 (a scalar).

    Returns:
      The clipped gradients, same structure and shapes as `grads`.
    """
    _check_max_norm("clip_per_example", max_norm)
    factors = _clip_factors(_tree_norms(grads), max_norm)
    return jax.tree.map(
        lambda g: g * factors.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype), grads)


def clipped_mean_grad(
    loss_fn: Callable[..., Array],
    max_norm: chex.Numeric,
    in_axes: InAxes = None,
    *,
    has_aux: bool = False,
    structure: values.PerExampleStructure | None = None,
    chunk_size: int | None = None,
    method: str = "auto",
    check_finite: bool = False,
) -> Callable[..., ArrayTree]:
    """The mean over examples of per-example gradients clipped to norm `max_norm` (DP-SGD).

    `(1 / B) sum_i min(1, max_norm / |grad_i|) grad_i`, the gradient of `loss_fn` w.r.t.
    `params`. With the layerwise method this costs about two backward passes and never
    builds the per-example gradients. (DP-SGD's noise is left to the caller.)

    Args:
      loss_fn: `loss_fn(params, *args) -> []`, the loss of ONE example.
      max_norm: the clipping threshold, > 0.
      in_axes, has_aux, structure: as in `per_example_grads`.
      chunk_size: process the batch in chunks of this many examples (> 0), or None.
      method: `"auto"`, `"layerwise"` or `"vmap"`.
      check_finite: assert that every per-example gradient norm is finite before averaging.

    Returns:
      `fn(params, *args) -> grads`, a pytree like `params`.
    """
    _check_options("clipped_mean_grad", chunk_size, method, structure)
    _check_max_norm("clipped_mean_grad", max_norm)

    def fn(params: ArrayTree, *args: Any) -> ArrayTree:
        plan = _plan("clipped_mean_grad", loss_fn, in_axes, has_aux, structure, method, params,
                     args)
        total, norms = _over_chunks(
            plan, chunk_size, lambda xs: plan.clipped_sum(xs, max_norm), "sum")
        if check_finite:
            chex.assert_tree_all_finite(
                norms, custom_message="clipped_mean_grad: a per-example gradient is not finite")
        return jax.tree.map(lambda g: g / plan.batch_size, total)

    return fn


# --------------------------------------------------------------------------------------
# Implementation.
# --------------------------------------------------------------------------------------


def _check_options(fn: str, chunk_size: Any, method: str, structure: Any) -> None:
    if chunk_size is not None and (
            not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0):
        raise ValueError(f"{fn}: argument `chunk_size` must be a positive int or None, "
                         f"got {chunk_size!r}")
    if method not in _METHODS:
        raise ValueError(f"{fn}: argument `method` must be one of {_METHODS}, got {method!r}")
    if structure is not None and not isinstance(structure, values.PerExampleStructure):
        raise TypeError(
            f"{fn}: argument `structure` must be a tdkit.values.PerExampleStructure of the loss "
            f"(e.g. `loss.structure` of a td_loss) or None, got {type(structure).__name__}")
    if method == "layerwise" and structure is None:
        raise ValueError(
            f"{fn}: method 'layerwise' needs argument `structure`, the PerExampleStructure of "
            "the loss (e.g. `structure=loss.structure` for a td_loss on a tabular, linear or "
            "mlp value function); use method 'auto' or 'vmap'")


def _check_max_norm(fn: str, max_norm: Any) -> None:
    if jnp.ndim(max_norm) != 0:
        raise ValueError(f"{fn}: argument `max_norm` must be a scalar, got shape "
                         f"{jnp.shape(max_norm)}")
    try:
        value = float(max_norm)
    except jax.errors.ConcretizationTypeError:  # Traced: checked by the caller's values.
        return
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{fn}: argument `max_norm` must be > 0 and finite, got {max_norm!r}")


def _tree_norms(grads: ArrayTree) -> Array:
    """`[B]` global L2 norms of a pytree of per-example gradients (leading axis `[B]`)."""
    sq = [jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)
          for g in jax.tree.leaves(grads)]
    return jnp.sqrt(sum(sq))


def _clip_factors(norms: Array, max_norm: chex.Numeric) -> Array:
    # NaN norms compare False and keep a factor of 1, so NaNs propagate.
    return jnp.where(norms > max_norm, max_norm / norms, jnp.ones_like(norms))


class _Plan:
    """A loss, its resolved `in_axes` and the batch, with per-batch computations."""

    def __init__(self, loss_fn, structure, params, args, batched, batch_size):
        self.loss_fn = loss_fn
        self.structure = structure
        self.params = params
        self.args = args
        self.batched = batched  # One bool per element of `args`.
        self.batch_size = batch_size
        self.axes = tuple(0 if b else None for b in batched)

    def split(self, xs):
        """Rebuilds the full argument list from the batched arguments `xs`."""
        it = iter(xs)
        return [next(it) if b else a for a, b in zip(self.args, self.batched, strict=True)]

    # --- The vmap method. ---

    def _vmap_grads(self, xs):
        grad = jax.grad(self.loss_fn)
        return jax.vmap(grad, in_axes=(None,) + self.axes)(self.params, *self.split(xs))

    # --- The layerwise method. ---

    def _tap_grads(self, xs):
        """Per-example (saved layer inputs, backprop signals), from one backward pass."""
        s, args, params = self.structure, self.split(xs), self.params
        n = _leading_size(xs)
        taps = jax.tree.map(lambda z: jnp.zeros((n,) + z.shape, z.dtype), s.zero_taps(params))

        def total(taps):
            losses_, saved = jax.vmap(s.tapped, in_axes=(None, 0) + self.axes)(
                params, taps, *args)
            return jnp.sum(losses_), saved

        g, saved = jax.grad(total, has_aux=True)(taps)
        return saved, g

    # --- Per-batch results. ---

    def grads(self, xs):
        if self.structure is None:
            return self._vmap_grads(xs)
        saved, g = self._tap_grads(xs)
        return jax.vmap(self.structure.example_grads, in_axes=(None, 0, 0))(
            self.params, saved, g)

    def norms(self, xs):
        if self.structure is None:
            return _tree_norms(self._vmap_grads(xs))
        saved, g = self._tap_grads(xs)
        sq = jax.vmap(self.structure.example_sq_norm, in_axes=(None, 0, 0))(
            self.params, saved, g)
        return jnp.sqrt(sq)

    def clipped_sum(self, xs, max_norm):
        """(sum_i c_i grad_i, norms [b]) over the examples `xs`."""
        if self.structure is None:
            grads = self._vmap_grads(xs)
            norms = _tree_norms(grads)
            factors = _clip_factors(norms, max_norm)
            total = jax.tree.map(
                lambda g: jnp.tensordot(factors.astype(g.dtype), g, axes=1), grads)
            return total, norms
        s, args = self.structure, self.split(xs)
        n = _leading_size(xs)
        taps = jax.tree.map(
            lambda z: jnp.zeros((n,) + z.shape, z.dtype), s.zero_taps(self.params))

        def losses_fn(params, taps):
            return jax.vmap(s.tapped, in_axes=(None, 0) + self.axes)(params, taps, *args)

        losses_, vjp_fn, saved = jax.vjp(losses_fn, self.params, taps, has_aux=True)
        _, g = vjp_fn(jnp.ones_like(losses_))
        sq = jax.vmap(s.example_sq_norm, in_axes=(None, 0, 0))(self.params, saved, g)
        norms = jnp.sqrt(sq)
        total, _ = vjp_fn(_clip_factors(norms, max_norm).astype(losses_.dtype))
        return total, norms


def _leading_size(xs) -> int:
    return jax.tree.leaves(xs)[0].shape[0]


def _plan(fn, loss_fn, in_axes, has_aux, structure, method, params, args) -> _Plan:
    """Resolves `in_axes` and the method, moves batch axes to 0, checks the batch size."""
    if not args:
        raise ValueError(f"{fn}: the loss needs at least one batched argument after `params`")
    hint = ("" if in_axes is not None else
            " (the default in_axes batches every argument after params; for a td_loss pass "
            "in_axes=(None, None, 0) so that target_params are shared)")
    in_axes = _resolve_in_axes(fn, in_axes, len(args))
    if method == "vmap":
        structure = None
    scalar_loss = (lambda *a: loss_fn(*a)[0]) if has_aux else loss_fn

    moved, sizes = [], {}
    for i, (arg, axis) in enumerate(zip(args, in_axes[1:], strict=True)):
        if axis is None:
            moved.append(arg)
            continue
        for leaf in jax.tree.leaves(arg):
            if not -jnp.ndim(leaf) <= axis < jnp.ndim(leaf):
                raise ValueError(
                    f"{fn}: argument {i + 1} of the loss (after params) is batched along axis "
                    f"{axis}, but has a leaf of shape {jnp.shape(leaf)}{hint}")
            sizes.setdefault(jnp.shape(leaf)[axis], i + 1)
        moved.append(arg if axis == 0 else jax.tree.map(lambda x, a=axis: jnp.moveaxis(x, a, 0),
                                                        arg))
    if len(sizes) != 1:
        raise ValueError(
            f"{fn}: batched arguments must share one batch size, got sizes {sorted(sizes)}"
            f"{hint}")
    batched = tuple(axis is not None for axis in in_axes[1:])
    return _Plan(scalar_loss, structure, params, tuple(moved), batched, next(iter(sizes)))


def _resolve_in_axes(fn: str, in_axes: InAxes, num_args: int) -> tuple:
    """`in_axes` for a loss with `num_args` arguments after `params`, default and checked.

    The default (None) is `(None,) + (0,) * num_args`: `params` shared, the rest batched along
    axis 0. `fn` names the public function in error messages.
    """
    if num_args == 0:
        raise ValueError(f"{fn}: the loss needs at least one batched argument after `params`")
    if in_axes is None:
        return (None,) + (0,) * num_args
    in_axes = tuple(in_axes)
    if len(in_axes) != num_args + 1:
        raise ValueError(
            f"{fn}: argument `in_axes` must have one entry per argument of the loss "
            f"({num_args + 1} here, params first), got {in_axes!r}")
    if in_axes[0] is not None:
        raise ValueError(
            f"{fn}: argument `in_axes` must start with None (params are shared), got {in_axes!r}")
    for axis in in_axes:
        if axis is not None and (not isinstance(axis, int) or isinstance(axis, bool)):
            raise ValueError(
                f"{fn}: argument `in_axes` entries must be None or an int, got {in_axes!r}")
    if all(axis is None for axis in in_axes[1:]):
        raise ValueError(f"{fn}: argument `in_axes` batches no argument: {in_axes!r}")
    return in_axes


def _over_chunks(plan: _Plan, chunk_size: int | None, batch_fn, combine: str):
    """Applies `batch_fn(xs)` to chunks of the batched arguments `xs` and combines them.

    `combine="concat"`: outputs have a leading `[b]` and are concatenated. `combine="sum"`:
    `batch_fn` returns `(total, per_example)`; totals are summed, per-example concatenated.
    """
    xs = [a for a, b in zip(plan.args, plan.batched, strict=True) if b]
    size = plan.batch_size
    if chunk_size is None or chunk_size >= size:
        return batch_fn(xs)
    num_full, rest = divmod(size, chunk_size)
    head = jax.tree.map(
        lambda x: x[: num_full * chunk_size].reshape((num_full, chunk_size) + x.shape[1:]), xs)
    if combine == "concat":
        out = jax.lax.map(batch_fn, head)
        out = jax.tree.map(lambda y: y.reshape((num_full * chunk_size,) + y.shape[2:]), out)
    else:
        shapes = jax.eval_shape(batch_fn, jax.tree.map(lambda x: x[0], head))[0]
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def step(acc, chunk):
            total, per_example = batch_fn(chunk)
            return jax.tree.map(jnp.add, acc, total), per_example

        total, per_example = jax.lax.scan(step, zeros, head)
        out = (total, per_example.reshape(-1))
    if rest == 0:
        return out
    tail = batch_fn(jax.tree.map(lambda x: x[num_full * chunk_size:], xs))
    if combine == "concat":
        return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, tail)
    return jax.tree.map(jnp.add, out[0], tail[0]), jnp.concatenate([out[1], tail[1]])
