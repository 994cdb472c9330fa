"""Value networks of DQN's descendants, in pure JAX: dueling heads, noisy layers, IQN.

Every network maps ONE flat observation `[O]` (float) to action values `[A]`, or to `[A, K]`
atoms (C51 logits) or quantiles (QR-DQN) with `num_atoms=K`; batches come from `jax.vmap`.
Params are plain dicts and lists of float32 arrays. Plain MLPs with `[A, K]` outputs are
`tdkit.values.mlp(hidden_sizes, A, num_atoms=K)`.

Every network takes `torso=None` or a `tdkit.values.Torso`, e.g.
`tdkit.values.conv_torso("nature")` for ONE image `[H, W, C]`: the observation goes through
the torso first and the hidden layers take its features `[F]`; the torso's params are under
`params["encoder"]` (`"torso"` already names the shared hidden layers here).

- `dueling_mlp`: shared torso, value and advantage heads, `q = v + a - mean_a a`
  (Wang et al. 2016).
- `noisy_mlp`: every linear layer noisy, with factorised Gaussian noise (Fortunato et al.
  2018); `apply(params, obs, key=None)`, noise-free with `key=None`. Its layer:
  `factorised_noise`, `noisy_linear_init`, `noisy_linear`.
- `iqn_mlp`: Implicit Quantile Network (Dabney et al. 2018), `apply(params, obs, taus [N])
  -> [N, A]`, with its `cosine_embedding`.

None of them carries a `tdkit.values.PerExampleStructure`: `tdkit.grads` uses its generic
`vmap(grad)` path for them (pass no `structure`). A function whose `apply` takes more than
`(params, obs)` goes into `tdkit.losses.td_loss` with its extra argument bound, e.g.
`ValueFn(net.init, functools.partial(net.apply, key=key))`.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks
from tdkit.values import (
    Torso,
    ValueFn,
    _apply_torso,
    _check_obs_shape,
    _check_size,
    _check_torso,
    _init_torso,
    _layer_norm,
)

Array = chex.Array
Params = Any


# --------------------------------------------------------------------------------------
# Shared pieces.
# --------------------------------------------------------------------------------------


def _check_sizes(fn: str, hidden_sizes: Sequence[int], **sizes: Any) -> tuple[int, ...]:
    hidden_sizes = tuple(hidden_sizes)
    for i, size in enumerate(hidden_sizes):
        _check_size(fn, f"hidden_sizes[{i}]", size)
    for name, value in sizes.items():
        if value is not None or name != "num_atoms":  # Only `num_atoms` may be None.
            _check_size(fn, name, value)
    return hidden_sizes


def _check_layer_norm_eps(fn: str, layer_norm_eps: Any) -> None:
    if not (isinstance(layer_norm_eps, (int, float)) and layer_norm_eps > 0):
        raise ValueError(f"{fn}: argument `layer_norm_eps` must be > 0, got {layer_norm_eps!r}")


def _check_key(fn: str, key: Any) -> None:
    """`key` is ONE PRNG key: a typed key `[]` or a raw uint32 key `[2]`."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        ok = key.shape == ()
    else:
        ok = key.dtype == jnp.uint32 and key.shape == (2,)
    if not ok:
        raise AssertionError(
            f"[Chex] {fn}: argument `key` must be ONE PRNG key (jax.random.key(...) of shape () "
            f"or a uint32 key of shape (2,); use jax.vmap for one key per example), got dtype "
            f"{key.dtype} and shape {key.shape}")


def _dense_init(key: chex.PRNGKey, d_in: int, d_out: int, w_init: Callable[..., Array]) -> dict:
    return {"w": w_init(key, (d_in, d_out), jnp.float32), "b": jnp.zeros((d_out,), jnp.float32)}


def _init_input(fn: str, torso: Torso | None, key: chex.PRNGKey, example_obs: Any
                ) -> tuple[chex.PRNGKey, int, dict]:
    """Checks `key` and `example_obs`: `(key for the layers, input width, params so far)`.

    Without a torso the input is `example_obs [O]` itself; with one, the torso is initialised
    on a key of its own, its params go under `"encoder"` and the input width is its `F`.
    """
    if torso is None:
        _checks.assert_inputs(fn, example_obs=(example_obs, 1, float))
        _check_key(fn, key)
        return key, jnp.shape(example_obs)[0], {}
    _check_key(fn, key)
    key_encoder, key = jax.random.split(key)
    encoder, d_in = _init_torso(fn, torso, key_encoder, example_obs)
    return key, d_in, {"encoder": encoder}


def _input(fn: str, torso: Torso | None, params: Params, obs: Any, d_in: int) -> Array:
    """The input `[d_in]` of the first linear layer: `obs [O]`, or the torso's features."""
    if torso is None:
        _check_obs_shape(fn, "obs", obs, (d_in,))
        return obs
    return _apply_torso(fn, torso, params["encoder"], obs, d_in)


def _add_layer_norm(layer: dict, d_out: int) -> dict:
    return {**layer, "scale": jnp.ones((d_out,), jnp.float32),
            "offset": jnp.zeros((d_out,), jnp.float32)}


# --------------------------------------------------------------------------------------
# Noisy linear layer (Fortunato et al. 2018, factorised Gaussian noise).
# --------------------------------------------------------------------------------------


def _signed_sqrt(x: Array) -> Array:
    """`f(x) = sign(x) sqrt(|x|)`, the noise shaping of factorised NoisyNets."""
    return jnp.sign(x) * jnp.sqrt(jnp.abs(x))


def factorised_noise(key: chex.PRNGKey, num_inputs: int, num_outputs: int) -> tuple[Array, Array]:
    """One sample of factorised Gaussian noise for a `[num_inputs, num_outputs]` layer.

    With `e_in ~ N(0, I) [I]` and `e_out ~ N(0, I) [O]` and `f(x) = sign(x) sqrt(|x|)`:
    `eps_w = outer(f(e_in), f(e_out))` (a rank-one matrix) and `eps_b = f(e_out)`
    (Fortunato et al. 2018, eqs. 10-11): `I + O` Gaussian draws instead of `I * O + O`.

    Args:
      key: ONE PRNG key.
      num_inputs: the layer's input width `I`, > 0.
      num_outputs: the layer's output width `O`, > 0.

    Returns:
      `(eps_w [I, O], eps_b [O])`, float32.
    """
    _check_size("factorised_noise", "num_inputs", num_inputs)
    _check_size("factorised_noise", "num_outputs", num_outputs)
    _check_key("factorised_noise", key)
    key_in, key_out = jax.random.split(key)
    f_in = _signed_sqrt(jax.random.normal(key_in, (num_inputs,), jnp.float32))
    f_out = _signed_sqrt(jax.random.normal(key_out, (num_outputs,), jnp.float32))
    return jnp.outer(f_in, f_out), f_out


def noisy_linear_init(
    key: chex.PRNGKey, num_inputs: int, num_outputs: int, sigma0: float = 0.5
) -> dict:
    """Parameters of a factorised noisy linear layer, initialised as in Fortunato et al.

    `w_mu` and `b_mu` are drawn from `U(-1/sqrt(p), 1/sqrt(p))` and `w_sigma`, `b_sigma` are
    `sigma0 / sqrt(p)`, where `p = num_inputs` (Section 3.2; the paper's `sigma0 = 0.5`;
    Dopamine's JAX Rainbow uses `0.1`).

    Args:
      key: ONE PRNG key.
      num_inputs: input width `p = I`, > 0.
      num_outputs: output width `O`, > 0.
      sigma0: the noise scale, >= 0.

    Returns:
      `{"w_mu": [I, O], "w_sigma": [I, O], "b_mu": [O], "b_sigma": [O]}`, float32.
    """
    _check_size("noisy_linear_init", "num_inputs", num_inputs)
    _check_size("noisy_linear_init", "num_outputs", num_outputs)
    _check_sigma0("noisy_linear_init", sigma0)
    _check_key("noisy_linear_init", key)
    return _noisy_linear_init(key, num_inputs, num_outputs, sigma0)


def _check_sigma0(fn: str, sigma0: Any) -> None:
    if not (isinstance(sigma0, (int, float)) and not isinstance(sigma0, bool) and sigma0 >= 0):
        raise ValueError(f"{fn}: argument `sigma0` must be a number >= 0, got {sigma0!r}")


def _noisy_linear_init(key: chex.PRNGKey, d_in: int, d_out: int, sigma0: float) -> dict:
    bound = 1.0 / math.sqrt(d_in)
    key_w, key_b = jax.random.split(key)
    return {
        "w_mu": jax.random.uniform(key_w, (d_in, d_out), jnp.float32, -bound, bound),
        "w_sigma": jnp.full((d_in, d_out), sigma0 / math.sqrt(d_in), jnp.float32),
        "b_mu": jax.random.uniform(key_b, (d_out,), jnp.float32, -bound, bound),
        "b_sigma": jnp.full((d_out,), sigma0 / math.sqrt(d_in), jnp.float32),
    }


def _noisy_linear(params: dict, x: Array, key: chex.PRNGKey | None) -> Array:
    """`x @ w + b` for `x [..., I]`; mean weights when `key` is None."""
    if key is None:
        return x @ params["w_mu"] + params["b_mu"]
    d_in, d_out = params["w_mu"].shape
    eps_w, eps_b = factorised_noise(key, d_in, d_out)
    w = params["w_mu"] + params["w_sigma"] * eps_w
    b = params["b_mu"] + params["b_sigma"] * eps_b
    return x @ w + b


def noisy_linear(params: dict, x: Array, key: chex.PRNGKey | None = None) -> Array:
    """A factorised noisy linear layer: `x @ (w_mu + w_sigma * eps_w) + b_mu + b_sigma * eps_b`.

    One noise sample `(eps_w, eps_b) = factorised_noise(key, I, O)` per call; with
    `key=None` the noise is zero (the mean layer `x @ w_mu + b_mu`, for evaluation).

    Args:
      params: from `noisy_linear_init`, `w_mu, w_sigma: [I, O]`, `b_mu, b_sigma: [O]`.
      x: ONE input `[I]` float.
      key: ONE PRNG key, or None for the noise-free layer.

    Returns:
      `[O]`.
    """
    d_in = params["w_mu"].shape[0]
    _check_obs_shape("noisy_linear", "x", x, (d_in,))
    if key is not None:
        _check_key("noisy_linear", key)
    return _noisy_linear(params, x, key)


# --------------------------------------------------------------------------------------
# MLPs with dueling and/or noisy heads.
# --------------------------------------------------------------------------------------


def _q_network(
    fn: str,
    hidden_sizes: tuple[int, ...],
    num_actions: int,
    num_atoms: int | None,
    *,
    dueling: bool,
    noisy: bool,
    layer_norm: bool,
    layer_norm_eps: float,
    activation: Callable[[Array], Array],
    w_init: Callable[..., Array] | None,
    sigma0: float,
    torso: Torso | None,
):
    """`(init, apply(params, obs, key))` of a torso of hidden layers and a (dueling) head.

    Params: `{"torso": [layer, ...], "head": layer}` or, dueling,
    `{"torso": [...], "value": layer, "advantage": layer}`; with a `Torso`, also
    `"encoder"`: its params (never noisy).
    """
    per_action = 1 if num_atoms is None else num_atoms
    if dueling:
        heads = {"value": per_action, "advantage": num_actions * per_action}
    else:
        heads = {"head": num_actions * per_action}
    num_layers = len(hidden_sizes) + len(heads)
    if w_init is None:
        w_init = jax.nn.initializers.lecun_normal()
    w_name = "w_mu" if noisy else "w"

    def layer_init(key: chex.PRNGKey, d_in: int, d_out: int) -> dict:
        if noisy:
            return _noisy_linear_init(key, d_in, d_out, sigma0)
        return _dense_init(key, d_in, d_out, w_init)

    def init(key: chex.PRNGKey, example_obs: Array) -> Params:
        key, d_in, params = _init_input(f"{fn}.init", torso, key, example_obs)
        keys = list(jax.random.split(key, num_layers))
        hidden = []
        for d_out in hidden_sizes:
            layer = layer_init(keys.pop(0), d_in, d_out)
            hidden.append(_add_layer_norm(layer, d_out) if layer_norm else layer)
            d_in = d_out
        params["torso"] = hidden
        for name, d_out in heads.items():
            params[name] = layer_init(keys.pop(0), d_in, d_out)
        return params

    def apply(params: Params, obs: Array, key: chex.PRNGKey | None) -> Array:
        first = params["torso"][0] if params["torso"] else params[next(iter(heads))]
        x = _input(f"{fn}.apply", torso, params, obs, first[w_name].shape[0])
        if key is None:
            keys = [None] * num_layers
        else:
            _check_key(f"{fn}.apply", key)
            keys = list(jax.random.split(key, num_layers))  # Independent noise per layer.

        def linear(layer: dict, x: Array, layer_key: Any) -> Array:
            if noisy:
                return _noisy_linear(layer, x, layer_key)
            return x @ layer["w"] + layer["b"]

        for layer in params["torso"]:
            z = linear(layer, x, keys.pop(0))
            x = activation(_layer_norm(z, layer, layer_norm_eps) if layer_norm else z)
        if dueling:
            value = linear(params["value"], x, keys.pop(0)).reshape(1, per_action)
            advantage = linear(params["advantage"], x, keys.pop(0))
            advantage = advantage.reshape(num_actions, per_action)
            q = value + advantage - jnp.mean(advantage, axis=0, keepdims=True)
        else:
            q = linear(params["head"], x, keys.pop(0)).reshape(num_actions, per_action)
        return q[:, 0] if num_atoms is None else q

    return init, apply


def dueling_mlp(
    hidden_sizes: Sequence[int],
    num_actions: int,
    num_atoms: int | None = None,
    layer_norm: bool = False,
    *,
    activation: Callable[[Array], Array] = jax.nn.relu,
    layer_norm_eps: float = 1e-5,
    w_init: Callable[..., Array] | None = None,
    torso: Torso | None = None,
) -> ValueFn:
    """A dueling network (Wang et al. 2016) on ONE flat observation `[O]` (or torso input).

    A shared torso of hidden layers `h = activation(LN(x @ w + b))` (LN only with
    `layer_norm=True`) feeds two linear heads, a state value `v` and advantages `a`, combined
    as `q[a] = v + a[a] - mean_b a[b]`. With `num_atoms=K` the heads give `v [K]` and
    `a [A, K]` and the combination is per atom, `q[a, k] = v[k] + a[a, k] - mean_b a[b, k]`:
    on C51 logits (as Dopamine's Rainbow does) or on QR-DQN quantiles; `softmax` over `k`
    then makes probabilities. As in Dopamine (and unlike Wang et al., whose streams have a
    hidden layer each), the heads are single linear layers on the shared torso.

    Args:
      hidden_sizes: widths of the shared hidden layers, e.g. `(64, 64)`; may be empty.
      num_actions: number of actions `A`, > 0.
      num_atoms: atoms or quantiles per action `K`, > 0, or None for `[A]` action values.
      layer_norm: LayerNorm (with scale and offset) before each hidden activation.
      activation: elementwise nonlinearity of the hidden layers.
      layer_norm_eps: the epsilon added to the variance in LayerNorm, > 0.
      w_init: weight initialiser `w_init(key, shape, dtype)`; default LeCun normal. Biases
        and offsets start at zero, scales at one.
      torso: a `tdkit.values.Torso` (e.g. `conv_torso("nature")`) applied to the
        observation first, its features `[F]` feeding the hidden layers; or None for `[O]`.

    Returns:
      A `ValueFn`; params are `{"torso": [{"w": [d_in, d_out], "b": [d_out]} (+ "scale",
      "offset" [d_out] with LayerNorm), ...], "value": {"w": [H, K], "b": [K]},
      "advantage": {"w": [H, A * K], "b": [A * K]}}` (K = 1 without atoms; with a torso,
      plus `"encoder"`: its params), and `apply(params, obs [O]) -> [A]` or `[A, K]`.
    """
    hidden_sizes = _check_sizes("dueling_mlp", hidden_sizes, num_actions=num_actions,
                                num_atoms=num_atoms)
    _check_layer_norm_eps("dueling_mlp", layer_norm_eps)
    _check_torso("dueling_mlp", torso)
    init, network = _q_network(
        "dueling_mlp", hidden_sizes, num_actions, num_atoms, dueling=True, noisy=False,
        layer_norm=layer_norm, layer_norm_eps=layer_norm_eps, activation=activation,
        w_init=w_init, sigma0=0.0, torso=torso)

    def apply(params: Params, obs: Array) -> Array:
        return network(params, obs, None)

    return ValueFn(init, apply)


def noisy_mlp(
    hidden_sizes: Sequence[int],
    num_actions: int,
    num_atoms: int | None = None,
    dueling: bool = False,
    layer_norm: bool = False,
    sigma0: float = 0.5,
    *,
    activation: Callable[[Array], Array] = jax.nn.relu,
    layer_norm_eps: float = 1e-5,
    torso: Torso | None = None,
) -> ValueFn:
    """A NoisyNet MLP (Fortunato et al. 2018) on ONE flat observation `[O]`: every layer noisy.

    Every linear layer (hidden layers and heads) is a `noisy_linear` layer with factorised
    Gaussian noise, initialised by `noisy_linear_init(key, p, d_out, sigma0)`. A `torso`
    (e.g. `conv_torso("nature")`) is not noisy, as in Rainbow: only the linear layers on its
    features are.
    `apply(params, obs, key=None)`:

    - `key=None`: the mean network (all noise zero), for evaluation and for code that
      calls `apply(params, obs)`.
    - a key: ONE noise sample for the whole call, split into independent noise for each
      layer. Under `jax.vmap(apply, in_axes=(None, 0, None))` the batch shares that one
      sample (as Rainbow and Dopamine do: one noise per forward pass of a batch); vmap over
      keys too, `in_axes=(None, 0, 0)`, for independent noise per example.

    For `tdkit.losses.td_loss`, bind the key:
    `ValueFn(net.init, functools.partial(net.apply, key=key))` (one key per update step; the
    online and target networks then see the same noise sample).

    Args:
      hidden_sizes: widths of the hidden layers, e.g. `(64, 64)`; may be empty.
      num_actions: number of actions `A`, > 0.
      num_atoms: atoms or quantiles per action `K`, > 0, or None for `[A]` action values.
      dueling: value and advantage heads combined as in `dueling_mlp` (per atom for `[A, K]`).
      layer_norm: LayerNorm (with scale and offset) before each hidden activation.
      sigma0: the noise scale, >= 0 (the paper's 0.5 for factorised noise).
      activation: elementwise nonlinearity of the hidden layers.
      layer_norm_eps: the epsilon added to the variance in LayerNorm, > 0.
      torso: a `tdkit.values.Torso` applied to the observation first, its features `[F]`
        feeding the noisy layers; or None for `[O]`.

    Returns:
      A `ValueFn`; params are `{"torso": [noisy layer (+ "scale", "offset" with LayerNorm),
      ...], "head": noisy layer}` (dueling: `"value"` `[H, K]` and `"advantage"`
      `[H, A * K]` instead of `"head"`; with a torso, plus `"encoder"`: its params), each
      noisy layer as from `noisy_linear_init`; and
      `apply(params, obs [O], key=None) -> [A]` or `[A, K]`.
    """
    hidden_sizes = _check_sizes("noisy_mlp", hidden_sizes, num_actions=num_actions,
                                num_atoms=num_atoms)
    _check_layer_norm_eps("noisy_mlp", layer_norm_eps)
    _check_sigma0("noisy_mlp", sigma0)
    _check_torso("noisy_mlp", torso)
    init, network = _q_network(
        "noisy_mlp", hidden_sizes, num_actions, num_atoms, dueling=dueling, noisy=True,
        layer_norm=layer_norm, layer_norm_eps=layer_norm_eps, activation=activation,
        w_init=None, sigma0=sigma0, torso=torso)

    def apply(params: Params, obs: Array, key: chex.PRNGKey | None = None) -> Array:
        return network(params, obs, key)

    return ValueFn(init, apply)


# --------------------------------------------------------------------------------------
# Implicit Quantile Networks (Dabney et al. 2018).
# --------------------------------------------------------------------------------------


def cosine_embedding(taus: Array, embedding_dim: int) -> Array:
    """IQN's cosine basis of quantile levels: `out[j, i] = cos(pi * i * taus[j])`.

    `i = 0, ..., embedding_dim - 1`, as in Dabney et al. (2018, eq. 4). The `i = 0` feature
    is the constant 1, which the following layer's bias absorbs; Dopamine uses
    `i = 1, ..., n` instead, so its `quantile_embedding_dim=n` spans the same functions as
    `embedding_dim=n + 1` here.

    Args:
      taus: quantile levels `[N]` float, in `[0, 1]`.
      embedding_dim: number of cosine features `E`, > 0.

    Returns:
      `[N, E]` float32.
    """
    _check_size("cosine_embedding", "embedding_dim", embedding_dim)
    _checks.assert_inputs("cosine_embedding", taus=(taus, 1, float))
    i = jnp.arange(embedding_dim, dtype=jnp.float32)
    return jnp.cos(jnp.pi * jnp.asarray(taus, jnp.float32)[:, None] * i[None, :])


def iqn_mlp(
    hidden_sizes: Sequence[int],
    num_actions: int,
    embedding_dim: int = 64,
    layer_norm: bool = False,
    *,
    head_hidden_sizes: Sequence[int] = (),
    activation: Callable[[Array], Array] = jax.nn.relu,
    layer_norm_eps: float = 1e-5,
    w_init: Callable[..., Array] | None = None,
    torso: Torso | None = None,
) -> ValueFn:
    """An Implicit Quantile Network (Dabney et al. 2018) on ONE flat observation `[O]`.

    `apply(params, obs, taus)` returns the quantiles `Z_tau(obs, a)` at `N` levels `taus`:

        psi = hidden(obs)                                     [H]  hidden layers, H = last width
        phi = relu(cosine_embedding(taus, E) @ w_e + b_e)     [N, H]
        out = head(psi[None, :] * phi)                        [N, A] (hadamard, then the head)

    The head is `head_hidden_sizes` hidden layers then a linear layer to `A` (Dopamine's
    Atari IQN has one hidden layer of 512 there: `head_hidden_sizes=(512,)`; its conv
    layers are `torso=tdkit.values.conv_torso("nature")` with `hidden_sizes=()`, so that
    `psi` is the flattened conv output). With a `torso`, `hidden` takes the torso's
    features `torso(obs) [F]` instead of `obs`. Sampling the
    levels (`taus = jax.random.uniform(key, (N,))`) is the caller's: online and target
    levels are independent in IQN, and a risk-sensitive policy distorts them.

    Args:
      hidden_sizes: widths of the hidden layers before the product; may be empty (then
        `psi = obs`, `H = O`, or with a torso `psi = torso(obs)`, `H = F`).
      num_actions: number of actions `A`, > 0.
      embedding_dim: number of cosine features `E`, > 0 (64 in the paper).
      layer_norm: LayerNorm (with scale and offset) before each hidden activation of the
        torso and the head (not on the embedding layer).
      head_hidden_sizes: widths of the hidden layers between the product and the output.
      activation: elementwise nonlinearity of the torso's and the head's hidden layers.
      layer_norm_eps: the epsilon added to the variance in LayerNorm, > 0.
      w_init: weight initialiser `w_init(key, shape, dtype)`; default LeCun normal. Biases
        and offsets start at zero, scales at one.
      torso: a `tdkit.values.Torso` applied to the observation first; or None for `[O]`.

    Returns:
      A `ValueFn`; params are `{"torso": [layer, ...], "embedding": {"w": [E, H], "b": [H]},
      "head": [layer, ..., {"w": [d, A], "b": [A]}]}` (hidden layers `{"w", "b"}` plus
      `"scale", "offset"` with LayerNorm; with a torso, plus `"encoder"`: its params), and
      `apply(params, obs [O], taus [N]) -> [N, A]`.
    """
    hidden_sizes = _check_sizes("iqn_mlp", hidden_sizes, num_actions=num_actions,
                                embedding_dim=embedding_dim)
    head_hidden_sizes = tuple(head_hidden_sizes)
    for i, size in enumerate(head_hidden_sizes):
        _check_size("iqn_mlp", f"head_hidden_sizes[{i}]", size)
    _check_layer_norm_eps("iqn_mlp", layer_norm_eps)
    _check_torso("iqn_mlp", torso)
    if w_init is None:
        w_init = jax.nn.initializers.lecun_normal()
    num_layers = len(hidden_sizes) + 1 + len(head_hidden_sizes) + 1

    def hidden_layer(key: chex.PRNGKey, d_in: int, d_out: int) -> dict:
        layer = _dense_init(key, d_in, d_out, w_init)
        return _add_layer_norm(layer, d_out) if layer_norm else layer

    def init(key: chex.PRNGKey, example_obs: Array) -> Params:
        key, d_in, params = _init_input("iqn_mlp.init", torso, key, example_obs)
        keys = list(jax.random.split(key, num_layers))
        hidden_layers = []
        for d_out in hidden_sizes:
            hidden_layers.append(hidden_layer(keys.pop(0), d_in, d_out))
            d_in = d_out
        embedding = _dense_init(keys.pop(0), embedding_dim, d_in, w_init)
        head = []
        for d_out in head_hidden_sizes:
            head.append(hidden_layer(keys.pop(0), d_in, d_out))
            d_in = d_out
        head.append(_dense_init(keys.pop(0), d_in, num_actions, w_init))
        return {**params, "torso": hidden_layers, "embedding": embedding, "head": head}

    def hidden(layer: dict, x: Array) -> Array:
        z = x @ layer["w"] + layer["b"]
        return activation(_layer_norm(z, layer, layer_norm_eps) if layer_norm else z)

    def apply(params: Params, obs: Array, taus: Array) -> Array:
        d_obs = params["embedding"]["w"].shape[1]
        if params["torso"]:
            d_obs = params["torso"][0]["w"].shape[0]
        psi = _input("iqn_mlp.apply", torso, params, obs, d_obs)
        _checks.assert_inputs("iqn_mlp.apply", taus=(taus, 1, float))
        for layer in params["torso"]:
            psi = hidden(layer, psi)                                         # [H]
        embedding = params["embedding"]
        phi = jax.nn.relu(cosine_embedding(taus, embedding_dim) @ embedding["w"]
                          + embedding["b"])                                 # [N, H]
        x = psi[None, :] * phi
        for layer in params["head"][:-1]:
            x = hidden(layer, x)
        return x @ params["head"][-1]["w"] + params["head"][-1]["b"]        # [N, A]

    return ValueFn(init, apply)
