"""Value functions for ONE observation: `ValueFn(init, apply)`.

`init(key, example_obs) -> params` and `apply(params, obs) -> value`, where the value is a
state value `[]`, action values `[A]` or atoms / quantiles `[A, K]` for a single observation
`[O...]`. Batches come from `jax.vmap(apply, in_axes=(None, 0))`.

Constructors:

- `tabular(num_states, num_actions=None, init_value=0.)`: one entry per state (and action);
  the observation is an int32 state index `[]`.
- `linear(num_features, num_actions=None, features=None)`: `phi(obs) @ w`, with an optional
  feature map `features: obs -> [F]` (e.g. a tile coder from `tdkit.features`).
- `mlp(hidden_sizes, num_outputs=None, num_atoms=None, ...)`: a pure-JAX multilayer
  perceptron on `[O]` observations, with optional LayerNorm; `num_atoms=K` gives `[A, K]`
  outputs (C51 logits or QR-DQN quantiles).
- `from_flax(module)`: any Flax Linen module (Flax is an optional extra).

`tabular`, `linear` and `mlp` also describe how their per-example gradients decompose over
layers (`per_example_structure(value_fn.apply)`); `tdkit.losses.td_loss` turns that into its
loss's `structure`, which `tdkit.grads` takes (explicitly) to compute per-example gradient
norms and clipped mean gradients without materialising one gradient per example.

Dueling heads, noisy layers (NoisyNets) and Implicit Quantile Networks are in
`tdkit.networks`.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks

Array = chex.Array
ArrayTree = chex.ArrayTree
Params = Any


class ValueFn(NamedTuple):
    """A value function as two pure functions.

    Attributes:
      init: `init(key, example_obs) -> params`; `example_obs` is ONE observation `[O...]`.
      apply: `apply(params, obs) -> value` for ONE observation `[O...]`: a state value `[]`,
        action values `[A]` or atoms / quantiles `[A, K]` (float32).
    """

    init: Callable[[chex.PRNGKey, ArrayTree], Params]
    apply: Callable[[Params, ArrayTree], Array]


class PerExampleStructure(NamedTuple):
    """How the gradient of a function of `params` decomposes over its layers, per example.

    A "tap" is a zero array added to the output of every layer that owns parameters. The
    gradient of the output w.r.t. a tap is the backprop signal `g` of that layer; with the
    layer's saved input, it gives that layer's parameter gradient for ONE example (for a dense
    layer `outer(a, g)`, a rank-one matrix whose squared norm is `|a|^2 |g|^2`).

    Attributes:
      tapped: `tapped(params, taps, *inputs) -> (output, saved)`: the function (for ONE
        example) with `taps` added to its layers' outputs; `saved` holds the layer inputs.
        For a value function `output` is its value; for a loss (`tdkit.grads`'s `structure`
        argument) `inputs` are the loss's arguments after `params` and `output` the loss `[]`.
      zero_taps: `zero_taps(params) -> taps`: zero taps for ONE example.
      example_grads: `example_grads(params, saved, tap_grads) -> grads` (like `params`): the
        gradient w.r.t. `params` for ONE example.
      example_sq_norm: `example_sq_norm(params, saved, tap_grads) -> []`: the squared norm of
        `example_grads(...)`, computed without building it.
    """

    tapped: Callable[..., tuple[Array, ArrayTree]]
    zero_taps: Callable[[Params], ArrayTree]
    example_grads: Callable[[Params, ArrayTree, ArrayTree], Params]
    example_sq_norm: Callable[[Params, ArrayTree, ArrayTree], Array]


_STRUCTURE_ATTR = "_tdkit_per_example_structure"


def per_example_structure(fn: Callable[..., Any]) -> PerExampleStructure | None:
    """The `PerExampleStructure` of a value function's `apply`, or None.

    Only the exact `apply` returned by `tabular`, `linear` and `mlp` (or a function given one
    with `attach_per_example_structure`) carries one; any wrapper around it does not.
    `tdkit.losses.td_loss` builds its loss's `TDLoss.structure` from it; `tdkit.grads` never
    looks for one: it takes the loss's structure as its explicit `structure` argument.
    """
    return getattr(fn, _STRUCTURE_ATTR, None)


def attach_per_example_structure(fn: Callable[..., Any], structure: PerExampleStructure):
    """Attaches `structure` to the function `fn` (in place) and returns `fn`."""
    setattr(fn, _STRUCTURE_ATTR, structure)
    return fn


def _check_size(fn: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{fn}: argument `{name}` must be a positive int, got {value!r}")


def _check_obs_shape(fn: str, name: str, obs: Any, shape: tuple) -> None:
    """`obs` must be a float array of exactly `shape` (ONE observation)."""
    if jnp.shape(obs) != shape:
        raise AssertionError(
            f"[Chex] {fn}: argument `{name}` must have shape {shape} (ONE observation; use "
            f"jax.vmap for a batch), got {jnp.shape(obs)}")
    _checks.assert_inputs(fn, **{name: (obs, len(shape), float)})


# --------------------------------------------------------------------------------------
# Tabular.
# --------------------------------------------------------------------------------------


def tabular(num_states: int, num_actions: int | None = None, init_value: float = 0.0) -> ValueFn:
    """A table with one value per state (or one per state and action).

    `obs` is an int state index `[]` in `[0, num_states)`. An index outside that range gives
    NaN values (never a silently clamped entry), which `tdkit.grads`'s finite check catches.

    Args:
      num_states: number of states `S`, > 0.
      num_actions: number of actions `A`, or None for a state-value table.
      init_value: initial value of every entry.

    Returns:
      A `ValueFn`; params are `{"table": [S]}` or `{"table": [S, A]}` float32, and `apply`
      returns `[]` or `[A]`.
    """
    _check_size("tabular", "num_states", num_states)
    if num_actions is not None:
        _check_size("tabular", "num_actions", num_actions)
    shape = (num_states,) if num_actions is None else (num_states, num_actions)

    def check_state(fn: str, name: str, obs: Any) -> None:
        _checks.assert_inputs(fn, **{name: (obs, 0, int)})

    def init(key: chex.PRNGKey, example_obs: Array) -> Params:
        del key
        check_state("tabular.init", "example_obs", example_obs)
        return {"table": jnp.full(shape, init_value, jnp.float32)}

    def row(params: Params, obs: Array) -> Array:
        return jnp.asarray(params["table"]).at[obs].get(mode="fill", fill_value=jnp.nan)

    def apply(params: Params, obs: Array) -> Array:
        check_state("tabular.apply", "obs", obs)
        return row(params, obs)

    def tapped(params: Params, taps: Array, obs: Array) -> tuple[Array, Array]:
        check_state("tabular.apply", "obs", obs)
        return row(params, obs) + taps, obs

    def zero_taps(params: Params) -> Array:
        return jnp.zeros(params["table"].shape[1:], params["table"].dtype)

    def example_grads(params: Params, obs: Array, g: Array) -> Params:
        table = jnp.zeros_like(params["table"]).at[obs].set(g, mode="drop")
        return {"table": table}

    def example_sq_norm(params: Params, obs: Array, g: Array) -> Array:
        # A state outside the table has no entry, hence a zero gradient (as example_grads).
        inside = (obs >= 0) & (obs < params["table"].shape[0])
        return jnp.where(inside, jnp.sum(jnp.square(g)), 0.0)

    attach_per_example_structure(
        apply, PerExampleStructure(tapped, zero_taps, example_grads, example_sq_norm))
    return ValueFn(init, apply)


# --------------------------------------------------------------------------------------
# Linear.
# --------------------------------------------------------------------------------------


def linear(
    num_features: int,
    num_actions: int | None = None,
    features: Callable[[ArrayTree], Array] | None = None,
) -> ValueFn:
    """A linear value function `phi(obs) @ w` (no bias), with weights initialised to zero.

    Args:
      num_features: number of features `F`, > 0.
      num_actions: number of actions `A`, or None for a state value.
      features: a feature map `phi(obs) -> [F]` float (any callable, e.g. a
        `tdkit.features.FeatureMap`), or None when `obs` already is the `[F]` feature vector.
        If it has an `indices` function (tile coders: `phi(obs) = sum_k one_hot(idx_k)`),
        `apply` sums the active rows `w[indices(obs)]` instead of a dense product.

    Returns:
      A `ValueFn`; params are `{"w": [F]}` or `{"w": [F, A]}` float32, and `apply` returns
      `[]` (state value) or `[A]` (action values).
    """
    _check_size("linear", "num_features", num_features)
    if num_actions is not None:
        _check_size("linear", "num_actions", num_actions)
    map_size = getattr(features, "num_features", None)
    if isinstance(map_size, int) and map_size != num_features:
        raise ValueError(
            f"linear: argument `features` produces {map_size} features but `num_features` "
            f"is {num_features}")
    shape = (num_features,) if num_actions is None else (num_features, num_actions)

    indices = getattr(features, "indices", None)

    def featurize(fn: str, name: str, obs: ArrayTree) -> Array:
        if features is None:
            _check_obs_shape(fn, name, obs, (num_features,))
            return obs
        x = features(obs)
        _check_obs_shape(fn, f"features({name})", x, (num_features,))
        return x

    def active(fn: str, name: str, obs: ArrayTree) -> Array:
        idx = indices(obs)
        _checks.assert_inputs(fn, **{f"features.indices({name})": (idx, 1, int)})
        return idx

    def init(key: chex.PRNGKey, example_obs: ArrayTree) -> Params:
        del key
        featurize("linear.init", "example_obs", example_obs)
        return {"w": jnp.zeros(shape, jnp.float32)}

    if indices is None:

        def apply(params: Params, obs: ArrayTree) -> Array:
            return featurize("linear.apply", "obs", obs) @ params["w"]

        def tapped(params: Params, taps: Array, obs: ArrayTree) -> tuple[Array, Array]:
            x = featurize("linear.apply", "obs", obs)
            return x @ params["w"] + taps, x

        def example_grads(params: Params, x: Array, g: Array) -> Params:
            del params
            return {"w": x * g if g.ndim == 0 else jnp.outer(x, g)}

        def example_sq_norm(params: Params, x: Array, g: Array) -> Array:
            del params
            return jnp.sum(jnp.square(x)) * jnp.sum(jnp.square(g))

    else:
        # Sparse binary features (a tile coder): phi(obs) = sum_k one_hot(idx_k), so
        # phi(obs) @ w = sum_k w[idx_k], without building the [F] vector.

        def apply(params: Params, obs: ArrayTree) -> Array:
            return jnp.sum(jnp.asarray(params["w"])[active("linear.apply", "obs", obs)], axis=0)

        def tapped(params: Params, taps: Array, obs: ArrayTree) -> tuple[Array, Array]:
            idx = active("linear.apply", "obs", obs)
            return jnp.sum(jnp.asarray(params["w"])[idx], axis=0) + taps, idx

        def example_grads(params: Params, idx: Array, g: Array) -> Params:
            w = params["w"]
            rows = jnp.broadcast_to(g, idx.shape + w.shape[1:])
            return {"w": jnp.zeros_like(w).at[idx].add(rows)}

        def example_sq_norm(params: Params, idx: Array, g: Array) -> Array:
            del params
            # |phi|^2 = sum_f count_f^2 = number of pairs (j, k) with idx_j == idx_k.
            sq_features = jnp.sum(idx[:, None] == idx[None, :]).astype(g.dtype)
            return sq_features * jnp.sum(jnp.square(g))

    def zero_taps(params: Params) -> Array:
        return jnp.zeros(params["w"].shape[1:], params["w"].dtype)

    attach_per_example_structure(
        apply, PerExampleStructure(tapped, zero_taps, example_grads, example_sq_norm))
    return ValueFn(init, apply)


# --------------------------------------------------------------------------------------
# MLP.
# --------------------------------------------------------------------------------------


def mlp(
    hidden_sizes: Sequence[int],
    num_outputs: int | None = None,
    *,
    num_atoms: int | None = None,
    activation: Callable[[Array], Array] = jax.nn.relu,
    layer_norm: bool = False,
    layer_norm_eps: float = 1e-5,
    w_init: Callable[..., Array] | None = None,
) -> ValueFn:
    """A multilayer perceptron on ONE flat observation `[O]`, in pure JAX.

    Each hidden layer is `activation(LN(x @ w + b))`, where `LN` (only with
    `layer_norm=True`) normalises over the layer's units and applies a learnt `scale` and
    `offset`. The output layer is `x @ w + b` with no activation; with `num_atoms=K` it has
    `A * K` units, reshaped to `[A, K]` (row `a` holds action `a`'s K logits or quantiles).

    Args:
      hidden_sizes: widths of the hidden layers, e.g. `(120, 84)`; may be empty.
      num_outputs: number of outputs `A` (action values), or None for a state value.
      num_atoms: number of atoms or quantiles `K` per output (distributional RL), or None.
      activation: elementwise nonlinearity of the hidden layers.
      layer_norm: apply LayerNorm (with scale and offset) before each hidden activation.
      layer_norm_eps: the epsilon added to the variance in LayerNorm, > 0.
      w_init: weight initialiser `w_init(key, shape, dtype)`; default LeCun normal (as in
        Flax's `Dense`). Biases and offsets start at zero, scales at one.

    Returns:
      A `ValueFn`; params are a list with one dict per layer (`{"w": [d_in, d_out],
      "b": [d_out]}`, plus `"scale"` and `"offset"` `[d_out]` on hidden layers with
      LayerNorm), and `apply` returns `[]` (neither `num_outputs` nor `num_atoms`), `[A]`
      (`num_outputs` only), `[K]` (`num_atoms` only: a state-value distribution) or `[A, K]`
      (both). Every shape keeps the layerwise per-example gradient structure.
    """
    hidden_sizes = tuple(hidden_sizes)
    for i, size in enumerate(hidden_sizes):
        _check_size("mlp", f"hidden_sizes[{i}]", size)
    if num_outputs is not None:
        _check_size("mlp", "num_outputs", num_outputs)
    if num_atoms is not None:
        _check_size("mlp", "num_atoms", num_atoms)
    if not layer_norm_eps > 0:
        raise ValueError(f"mlp: argument `layer_norm_eps` must be > 0, got {layer_norm_eps!r}")
    if w_init is None:
        w_init = jax.nn.initializers.lecun_normal()
    # The output's shape, and the width of the output layer that holds it.
    out_shape = tuple(n for n in (num_outputs, num_atoms) if n is not None)
    sizes = hidden_sizes + (math.prod(out_shape),)
    num_layers = len(sizes)

    def has_norm(i: int) -> bool:
        return layer_norm and i < num_layers - 1

    def init(key: chex.PRNGKey, example_obs: Array) -> Params:
        _checks.assert_inputs("mlp.init", example_obs=(example_obs, 1, float))
        d_in = jnp.shape(example_obs)[0]
        params = []
        for i, (k, d_out) in enumerate(zip(jax.random.split(key, num_layers), sizes, strict=True)):
            layer = {"w": w_init(k, (d_in, d_out), jnp.float32),
                     "b": jnp.zeros((d_out,), jnp.float32)}
            if has_norm(i):
                layer["scale"] = jnp.ones((d_out,), jnp.float32)
                layer["offset"] = jnp.zeros((d_out,), jnp.float32)
            params.append(layer)
            d_in = d_out
        return params

    def forward(params: Params, obs: Array, taps: Any) -> tuple[Array, list]:
        _check_obs_shape("mlp.apply", "obs", obs, (params[0]["w"].shape[0],))
        x, saved = obs, []
        for i, layer in enumerate(params):
            z = x @ layer["w"] + layer["b"]
            if taps is not None:
                z = z + taps[i]["dense"]
            layer_saved = {"dense": x}
            if has_norm(i):
                mean = jnp.mean(z)
                var = jnp.mean(jnp.square(z - mean))
                z_hat = (z - mean) * jax.lax.rsqrt(var + layer_norm_eps)
                z = z_hat * layer["scale"] + layer["offset"]
                if taps is not None:
                    z = z + taps[i]["layer_norm"]
                layer_saved["layer_norm"] = z_hat
            saved.append(layer_saved)
            x = activation(z) if i < num_layers - 1 else z
        return x.reshape(out_shape), saved

    def apply(params: Params, obs: Array) -> Array:
        return forward(params, obs, None)[0]

    def tapped(params: Params, taps: Any, obs: Array) -> tuple[Array, list]:
        return forward(params, obs, taps)

    def zero_taps(params: Params) -> list:
        taps = []
        for i, layer in enumerate(params):
            zeros = jnp.zeros_like(layer["b"])
            taps.append({"dense": zeros, "layer_norm": zeros} if has_norm(i) else
                        {"dense": zeros})
        return taps

    def example_grads(params: Params, saved: list, g: list) -> Params:
        grads = []
        for i, (layer_saved, layer_g) in enumerate(zip(saved, g, strict=True)):
            a, g_dense = layer_saved["dense"], layer_g["dense"]
            layer = {"w": a[:, None] * g_dense[None, :], "b": g_dense}
            if has_norm(i):
                layer["scale"] = layer_g["layer_norm"] * layer_saved["layer_norm"]
                layer["offset"] = layer_g["layer_norm"]
            grads.append(layer)
        del params
        return grads

    def example_sq_norm(params: Params, saved: list, g: list) -> Array:
        total = jnp.zeros((), jnp.float32)
        for i, (layer_saved, layer_g) in enumerate(zip(saved, g, strict=True)):
            a, g_dense = layer_saved["dense"], layer_g["dense"]
            total += (jnp.sum(jnp.square(a)) + 1.0) * jnp.sum(jnp.square(g_dense))
            if has_norm(i):
                g_norm = layer_g["layer_norm"]
                total += jnp.sum(jnp.square(g_norm * layer_saved["layer_norm"]))
                total += jnp.sum(jnp.square(g_norm))
        del params
        return total

    attach_per_example_structure(
        apply, PerExampleStructure(tapped, zero_taps, example_grads, example_sq_norm))
    return ValueFn(init, apply)


# --------------------------------------------------------------------------------------
# Flax.
# --------------------------------------------------------------------------------------


def from_flax(module: Any) -> ValueFn:
    """Wraps a Flax Linen module that maps ONE observation to `[]` or `[A]`.

    Flax is an optional extra (`pip install tdkit[flax]`), imported here only. `tdkit.grads`
    uses `jax.vmap(jax.grad(...))` for such value functions.

    Args:
      module: a `flax.linen.Module` instance whose `__call__(obs)` takes ONE observation.

    Returns:
      A `ValueFn` with `init(key, example_obs) = module.init(key, example_obs)` (the Flax
      variables) and `apply(params, obs) = module.apply(params, obs)`.
    """
    try:
        import flax.linen as nn
    except ImportError as e:  # pragma: no cover - flax is installed in the test extra.
        raise ImportError(
            "from_flax needs Flax: pip install 'tdkit[flax]'") from e
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"from_flax: argument `module` must be a flax.linen.Module, got "
            f"{type(module).__name__}")

    def init(key: chex.PRNGKey, example_obs: ArrayTree) -> Params:
        return module.init(key, example_obs)

    def apply(params: Params, obs: ArrayTree) -> Array:
        return module.apply(params, obs)

    return ValueFn(init, apply)
