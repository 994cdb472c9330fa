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
  outputs (C51 logits or QR-DQN quantiles). With `torso=conv_torso(...)` it takes ONE image
  `[H, W, C]` instead.
- `conv_torso(kind="minatar" | "nature", ...)`: a convolutional `Torso(init, apply)` that
  maps ONE image `[H, W, C]` to features `[F]`, for `mlp` and every network of
  `tdkit.networks` (MinAtar's one-layer network; Nature DQN's three layers).
- `from_flax(module)`: any Flax Linen module (Flax is an optional extra).

`tabular`, `linear` and `mlp` (without a torso) also describe how their per-example gradients
decompose over layers (`per_example_structure(value_fn.apply)`); `tdkit.losses.td_loss` turns
that into its loss's `structure`, which `tdkit.grads` takes (explicitly) to compute
per-example gradient norms and clipped mean gradients without materialising one gradient per
example. An `mlp` with a torso carries none (a convolution's per-example gradient is not a
rank-one product): `tdkit.grads` then uses its generic `vmap(grad)` path.

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

    Only the exact `apply` returned by `tabular`, `linear` and `mlp` without a `torso` (or a
    function given one with `attach_per_example_structure`) carries one; any wrapper around
    it does not.
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
# Convolutional torsos.
# --------------------------------------------------------------------------------------


class Torso(NamedTuple):
    """A feature extractor for ONE observation, placed before a value network's MLP layers.

    Attributes:
      init: `init(key, example_obs) -> (params, num_features)`; `example_obs` is ONE
        observation (for `conv_torso`, an image `[H, W, C]`) and `num_features` the int `F`.
      apply: `apply(params, obs) -> features [F]` float32 for ONE observation; batches come
        from `jax.vmap(apply, in_axes=(None, 0))`.
    """

    init: Callable[[chex.PRNGKey, ArrayTree], tuple[Params, int]]
    apply: Callable[[Params, ArrayTree], Array]


# (filters, kernel size, stride) of each conv layer; all use VALID padding.
_CONV_KINDS = {
    # MinAtar (Young & Tian 2019), as in PQN's pqn_minatar (purejaxql): [10, 10, C] -> [8, 8, 16].
    "minatar": ((16, 3, 1),),
    # Nature DQN (Mnih et al. 2015): [84, 84, 4] -> [20, 20, 32] -> [9, 9, 64] -> [7, 7, 64].
    "nature": ((32, 8, 4), (64, 4, 2), (64, 3, 1)),
}
_CONV_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
_CONV_IMPLS = ("auto", "patches", "xla")


def _patches_conv(x: Array, w: Array, stride: int) -> Array:
    """VALID convolution `[N, H, W, C] * [kh, kw, C, O] -> [N, H', W', O]` as one matmul on
    patches gathered by `kh * kw` strided slices (im2col), without a convolution op.

    Its gradients are slices, pads and matmuls. XLA:CPU runs a convolution's gradient about
    10x slower inside a `lax.cond` branch or a loop body (`lax.scan`, `lax.while_loop`)
    than at the top level of a program (it cannot pick the convolution's layouts there),
    and a training step always runs inside one of them; this form runs at the same speed
    everywhere (`scripts/bench_conv.py`).
    """
    kh, kw, c, o = w.shape
    n, h, wd, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    if stride > 1 and kh % stride == 0 and kw % stride == 0:
        # Space to depth: [N, H, W, C] -> [N, H/s, W/s, s*s*C] and a (kh/s x kw/s) kernel
        # of stride 1 (Nature DQN: 4 slices instead of 64, then 4 instead of 16).
        s, hh, ww = stride, stride * (oh - 1) + kh, stride * (ow - 1) + kw
        x = x[:, :hh, :ww].reshape(n, hh // s, s, ww // s, s, c).transpose(0, 1, 3, 2, 4, 5)
        x = x.reshape(n, hh // s, ww // s, s * s * c)
        w = w.reshape(kh // s, s, kw // s, s, c, o).transpose(0, 2, 1, 3, 4, 5)
        return _patches_conv(x, w.reshape(kh // s, kw // s, s * s * c, o), 1)
    cols = [jax.lax.slice(x, (0, i, j, 0),
                          (n, i + stride * (oh - 1) + 1, j + stride * (ow - 1) + 1, c),
                          (1, stride, stride, 1))
            for i in range(kh) for j in range(kw)]
    patches = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
    return patches @ w.reshape(kh * kw * c, -1)  # features ordered (i, j, c), as w's


def _layer_norm(z: Array, layer: dict, eps: float) -> Array:
    """LayerNorm over the last axis, with the layer's learnt `scale` and `offset`."""
    mean = jnp.mean(z, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(z - mean), axis=-1, keepdims=True)
    return (z - mean) * jax.lax.rsqrt(var + eps) * layer["scale"] + layer["offset"]


def _image_to_float(fn: str, name: str, obs: Any) -> Array:
    """Checks ONE image `[H, W, C]` and returns it as float32; uint8 is scaled by 1/255."""
    if jnp.ndim(obs) != 3:
        raise AssertionError(
            f"[Chex] {fn}: argument `{name}` must have rank 3, an image [H, W, C] (ONE "
            f"observation; use jax.vmap for a batch), got shape {jnp.shape(obs)}")
    obs = jnp.asarray(obs)
    if obs.dtype == jnp.uint8:
        return obs.astype(jnp.float32) / 255.0
    if obs.dtype == jnp.bool_ or jnp.issubdtype(obs.dtype, jnp.floating):
        return obs.astype(jnp.float32)
    raise AssertionError(
        f"[Chex] {fn}: argument `{name}` must have a float, uint8 or bool dtype, got "
        f"{obs.dtype}")


def conv_torso(
    kind: str = "minatar",
    layer_norm: bool = False,
    channels: Sequence[int] | None = None,
    *,
    activation: Callable[[Array], Array] = jax.nn.relu,
    layer_norm_eps: float = 1e-5,
    w_init: Callable[..., Array] | None = None,
    conv: str = "auto",
) -> Torso:
    """A convolutional torso: ONE image `[H, W, C]` -> flat features `[F]`.

    Each layer is `activation(LN(conv(x, w) + b))` with VALID padding (no zero padding, as
    in both papers and in PQN), then the last layer's output `[H', W', C']` is flattened in
    row-major (H, W, C) order, `F = H' * W' * C'`. Kinds:

    - `"minatar"`: MinAtar's network (Young & Tian 2019; PQN's `pqn_minatar`): one 3x3 conv,
      16 filters, stride 1. `[10, 10, C] -> [8, 8, 16]`, `F = 1024`.
    - `"nature"`: Nature DQN (Mnih et al. 2015): 32 8x8 stride 4, 64 4x4 stride 2, 64 3x3
      stride 1. `[84, 84, 4] -> [7, 7, 64]`, `F = 3136`.

    Observations: a float image is used as it is; a `uint8` image (raw pixels) is scaled by
    `1 / 255` to `[0, 1]` inside the torso, so a replay buffer can store uint8 frames; a
    `bool` image (MinAtar's native observations) becomes 0. / 1.

    LayerNorm (`layer_norm=True`) follows PQN's CNN (Gallici et al. 2024, purejaxql
    `pqn_minatar` / `pqn_atari`, a Flax `nn.LayerNorm` on NHWC maps): after each conv and
    before its activation, over the channels at each position `(h, w)` separately, with a
    learnt `scale` and `offset` per channel `[C']`.

    Args:
      kind: `"minatar"` or `"nature"`.
      layer_norm: LayerNorm (with scale and offset) before each conv layer's activation.
      channels: number of filters of each conv layer, overriding the kind's (one int per
        layer: 1 for `"minatar"`, 3 for `"nature"`), or None.
      activation: elementwise nonlinearity after each conv layer.
      layer_norm_eps: the epsilon added to the variance in LayerNorm, > 0 (Flax's default,
        used by PQN, is 1e-6).
      w_init: kernel initialiser `w_init(key, [kh, kw, C_in, C_out], dtype)`; default He
        normal (variance scaling with `fan_in = kh * kw * C_in`, as PQN's CNN). Biases and
        offsets start at zero, scales at one.
      conv: how each convolution is computed (the same values up to float rounding):
        `"xla"`, XLA's convolution op; `"patches"`, one matmul on patches gathered by
        strided slices (im2col), whose gradient XLA:CPU runs as fast inside a `lax.cond` or
        a loop body (where training steps run) as outside, while its convolution op's
        gradient runs about 10x slower there; `"auto"` (default), `"patches"` when JAX's
        default backend is the CPU, else `"xla"` (decided when `apply` is traced).

    Returns:
      A `Torso`; `init(key, example_obs [H, W, C]) -> (params, F)`, params a list with one
      dict per conv layer (`{"w": [kh, kw, C_in, C_out], "b": [C_out]}` float32, plus
      `"scale"` and `"offset"` `[C_out]` with LayerNorm), and
      `apply(params, obs [H, W, C]) -> [F]` float32.
    """
    if kind not in _CONV_KINDS:
        raise ValueError(
            f"conv_torso: argument `kind` must be one of {tuple(_CONV_KINDS)}, got {kind!r}")
    layers = _CONV_KINDS[kind]
    if channels is not None:
        channels = tuple(channels)
        if len(channels) != len(layers):
            raise ValueError(
                f"conv_torso: argument `channels` must have one entry per conv layer of "
                f"{kind!r} ({len(layers)}), got {channels!r}")
        for i, c in enumerate(channels):
            _check_size("conv_torso", f"channels[{i}]", c)
        layers = tuple((c, k, s) for c, (_, k, s) in zip(channels, layers, strict=True))
    if not (isinstance(layer_norm_eps, (int, float)) and layer_norm_eps > 0):
        raise ValueError(
            f"conv_torso: argument `layer_norm_eps` must be > 0, got {layer_norm_eps!r}")
    if w_init is None:
        w_init = jax.nn.initializers.he_normal()
    if conv not in _CONV_IMPLS:
        raise ValueError(
            f"conv_torso: argument `conv` must be one of {_CONV_IMPLS}, got {conv!r}")

    def output_shape(fn: str, name: str, shape: tuple) -> tuple[int, int, int]:
        """The last layer's `[H', W', C']` for an input of `shape`, or a clear error."""
        h, w, c = shape
        for i, (filters, size, stride) in enumerate(layers):
            if h < size or w < size:
                raise AssertionError(
                    f"[Chex] {fn}: argument `{name}` of shape {shape} is too small for the "
                    f"{kind!r} torso: conv layer {i} ({size}x{size}, stride {stride}, VALID) "
                    f"gets a {h}x{w} input")
            h, w, c = (h - size) // stride + 1, (w - size) // stride + 1, filters
        return h, w, c

    def init(key: chex.PRNGKey, example_obs: Array) -> tuple[Params, int]:
        _image_to_float("conv_torso.init", "example_obs", example_obs)
        h, w, c_out = output_shape("conv_torso.init", "example_obs", jnp.shape(example_obs))
        c_in, params = jnp.shape(example_obs)[2], []
        for k, (filters, size, _) in zip(jax.random.split(key, len(layers)), layers, strict=True):
            layer = {"w": w_init(k, (size, size, c_in, filters), jnp.float32),
                     "b": jnp.zeros((filters,), jnp.float32)}
            if layer_norm:
                layer["scale"] = jnp.ones((filters,), jnp.float32)
                layer["offset"] = jnp.zeros((filters,), jnp.float32)
            params.append(layer)
            c_in = filters
        return params, h * w * c_out

    def apply(params: Params, obs: Array) -> Array:
        x = _image_to_float("conv_torso.apply", "obs", obs)
        c_in = params[0]["w"].shape[2]
        if x.shape[2] != c_in:
            raise AssertionError(
                f"[Chex] conv_torso.apply: argument `obs` must have {c_in} channels (the last "
                f"axis of [H, W, C], as at init), got shape {jnp.shape(obs)}")
        output_shape("conv_torso.apply", "obs", x.shape)
        x = x[None]  # [1, H, W, C]: one example; jax.vmap batches it.
        patches = conv == "patches" or (conv == "auto" and jax.default_backend() == "cpu")
        for layer, (_, _, stride) in zip(params, layers, strict=True):
            if patches:
                z = _patches_conv(x, layer["w"], stride) + layer["b"]
            else:
                z = jax.lax.conv_general_dilated(
                    x, layer["w"], window_strides=(stride, stride), padding="VALID",
                    dimension_numbers=_CONV_DIMENSIONS) + layer["b"]
            x = activation(_layer_norm(z, layer, layer_norm_eps) if layer_norm else z)
        return x.reshape(-1)

    return Torso(init, apply)


def _check_torso(fn: str, torso: Any) -> None:
    if torso is not None and not isinstance(torso, Torso):
        raise TypeError(
            f"{fn}: argument `torso` must be a tdkit.values.Torso (e.g. conv_torso(...)) or "
            f"None, got {type(torso).__name__}")


def _init_torso(fn: str, torso: Torso, key: chex.PRNGKey, example_obs: ArrayTree
                ) -> tuple[Params, int]:
    """`(torso params, F)`; checks that the torso reports a positive int `F`."""
    params, num_features = torso.init(key, example_obs)
    if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features <= 0:
        raise ValueError(
            f"{fn}: the torso's init must return (params, num_features) with a positive int "
            f"num_features, got {num_features!r}")
    return params, num_features


def _apply_torso(fn: str, torso: Torso, params: Params, obs: ArrayTree, d_in: int) -> Array:
    """The torso's features `[F]` of ONE observation, checked against the MLP's input width."""
    features = torso.apply(params, obs)
    if jnp.shape(features) != (d_in,):
        raise AssertionError(
            f"[Chex] {fn}: argument `obs` of shape {jnp.shape(obs)} gives torso features of "
            f"shape {jnp.shape(features)}, but the params expect ({d_in},): `obs` must have "
            f"the shape of init's `example_obs` (ONE observation; use jax.vmap for a batch)")
    _checks.assert_inputs(fn, **{"torso(obs)": (features, 1, float)})
    return features


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
    torso: Torso | None = None,
) -> ValueFn:
    """A multilayer perceptron on ONE flat observation `[O]` (or image, with a torso), in JAX.

    Each hidden layer is `activation(LN(x @ w + b))`, where `LN` (only with
    `layer_norm=True`) normalises over the layer's units and applies a learnt `scale` and
    `offset`. The output layer is `x @ w + b` with no activation; with `num_atoms=K` it has
    `A * K` units, reshaped to `[A, K]` (row `a` holds action `a`'s K logits or quantiles).

    With a `torso` (e.g. `conv_torso("minatar")`), the observation goes through the torso
    first and the layers above take its features `[F]` as their input `x`. PQN's MinAtar
    network, for example, is `mlp([128], A, layer_norm=True,
    torso=conv_torso("minatar", layer_norm=True))` (PQN also divides MinAtar's 0/1
    observations by 255; `conv_torso` scales only uint8 images).

    Args:
      hidden_sizes: widths of the hidden layers, e.g. `(120, 84)`; may be empty.
      num_outputs: number of outputs `A` (action values), or None for a state value.
      num_atoms: number of atoms or quantiles `K` per output (distributional RL), or None.
      activation: elementwise nonlinearity of the hidden layers.
      layer_norm: apply LayerNorm (with scale and offset) before each hidden activation.
      layer_norm_eps: the epsilon added to the variance in LayerNorm, > 0.
      w_init: weight initialiser `w_init(key, shape, dtype)`; default LeCun normal (as in
        Flax's `Dense`). Biases and offsets start at zero, scales at one.
      torso: a `Torso` applied to the observation first (then `obs` is what the torso takes,
        e.g. ONE image `[H, W, C]`), or None for a flat `[O]` float observation.

    Returns:
      A `ValueFn`; params are a list with one dict per layer (`{"w": [d_in, d_out],
      "b": [d_out]}`, plus `"scale"` and `"offset"` `[d_out]` on hidden layers with
      LayerNorm) or, with a torso, `{"encoder": torso params, "layers": that list}`; and
      `apply` returns `[]` (neither `num_outputs` nor `num_atoms`), `[A]` (`num_outputs`
      only), `[K]` (`num_atoms` only: a state-value distribution) or `[A, K]` (both).
      Without a torso every shape keeps the layerwise per-example gradient structure
      (`per_example_structure(apply)`); with one, `apply` carries none and `tdkit.grads`
      uses its generic `vmap(grad)` path.
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
    _check_torso("mlp", torso)
    if w_init is None:
        w_init = jax.nn.initializers.lecun_normal()
    # The output's shape, and the width of the output layer that holds it.
    out_shape = tuple(n for n in (num_outputs, num_atoms) if n is not None)
    sizes = hidden_sizes + (math.prod(out_shape),)
    num_layers = len(sizes)

    def has_norm(i: int) -> bool:
        return layer_norm and i < num_layers - 1

    def init_layers(key: chex.PRNGKey, d_in: int) -> list:
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

    if torso is not None:

        def init(key: chex.PRNGKey, example_obs: ArrayTree) -> Params:
            key_encoder, key = jax.random.split(key)
            encoder, d_in = _init_torso("mlp.init", torso, key_encoder, example_obs)
            return {"encoder": encoder, "layers": init_layers(key, d_in)}

        def apply(params: Params, obs: ArrayTree) -> Array:
            layers = params["layers"]
            x = _apply_torso("mlp.apply", torso, params["encoder"], obs, layers[0]["w"].shape[0])
            return forward(layers, x, None)[0]

        # No PerExampleStructure: a conv layer's per-example gradient is not rank one.
        return ValueFn(init, apply)

    def init(key: chex.PRNGKey, example_obs: Array) -> Params:
        _checks.assert_inputs("mlp.init", example_obs=(example_obs, 1, float))
        return init_layers(key, jnp.shape(example_obs)[0])

    def apply(params: Params, obs: Array) -> Array:
        _check_obs_shape("mlp.apply", "obs", obs, (params[0]["w"].shape[0],))
        return forward(params, obs, None)[0]

    def tapped(params: Params, taps: Any, obs: Array) -> tuple[Array, list]:
        _check_obs_shape("mlp.apply", "obs", obs, (params[0]["w"].shape[0],))
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
