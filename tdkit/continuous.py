"""Continuous-action TD: critics, actors, targets and losses of DDPG, TD3 and SAC.

Everything is for ONE example (one observation, one transition); batches come from
`jax.vmap`. Critics have a leading critic axis: `q [C]` holds the values of `C` independent
critics (twin critics: `C = 2`).

Modules (pure JAX, params are dicts and lists of float32 arrays):

- `critic_mlp`: `CriticFn(init, apply)`, `apply(params, obs [O], action [A]) -> q [C]`: C
  MLPs on `concat(obs, action)`, stacked and vmapped over the critic axis.
- `deterministic_actor`: `ActorFn`, `apply(params, obs) -> action [A]` inside the bounds
  (DDPG, TD3).
- `gaussian_actor`: `ActorFn`, `apply(params, obs) -> (mean [A], log_std [A])` of the
  Gaussian BEFORE the tanh squash (SAC); with `squashed_gaussian_sample`,
  `squashed_gaussian_log_prob` and `squashed_gaussian_mode`.

Targets and losses (one transition; `q_tm1 = Q(obs_tm1, a_tm1)`, `q_t = Q_target(obs_t, a_t)`
with `a_t` from the (target) actor at `obs_t`):

- DDPG: target `r_t + discount_t * q_t[0]`; `ddpg_critic_loss`, `deterministic_policy_loss`.
- TD3: target `r_t + discount_t * min_c q_t[c]` (`clipped_double_q_target`) at the smoothed
  target action (`target_policy_smoothing`, its `noise_std` and `noise_clip` relative to the
  half-width of the box, as in CleanRL); `td3_critic_loss`, `deterministic_policy_loss`.
- SAC: target `r_t + discount_t * (min_c q_t[c] - alpha * log_prob_t)` (`soft_q_target`);
  `sac_critic_loss`, `sac_actor_loss`, `sac_temperature_loss` (`default_target_entropy`).

Every critic loss is `critic_loss(q_tm1, y) = sum_c 0.5 * (y - q_tm1[c]) ** 2` with `y` under
`stop_gradient` unless `stop_target_gradients=False`.

Action bounds `action_low`, `action_high` are floats or arrays `[A]` (a float is broadcast to
`[A]`); they must be finite with `low < high`. An action `a = bias + scale * tanh(u)`, with
`scale = (high - low) / 2` and `bias = (high + low) / 2`, is inside the bounds for every `u`.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from tdkit import _checks
from tdkit.networks import (
    _add_layer_norm,
    _check_key,
    _check_layer_norm_eps,
    _check_sizes,
    _dense_init,
    _layer_norm,
)
from tdkit.td import maybe_stop_gradient
from tdkit.values import _check_obs_shape, _check_size

Array = chex.Array
Numeric = chex.Numeric
Params = Any

_LOG_2 = math.log(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class CriticFn(NamedTuple):
    """C action-value critics as two pure functions.

    Attributes:
      init: `init(key, example_obs [O], example_action [A]) -> params`.
      apply: `apply(params, obs [O], action [A]) -> q [C]` float32, one value per critic.
    """

    init: Callable[[chex.PRNGKey, Array, Array], Params]
    apply: Callable[[Params, Array, Array], Array]


class ActorFn(NamedTuple):
    """A policy network as two pure functions.

    Attributes:
      init: `init(key, example_obs [O]) -> params`.
      apply: `apply(params, obs [O])`: an action `[A]` (`deterministic_actor`) or the
        pre-squash Gaussian `(mean [A], log_std [A])` (`gaussian_actor`).
    """

    init: Callable[[chex.PRNGKey, Array], Params]
    apply: Callable[[Params, Array], Any]


# --------------------------------------------------------------------------------------
# Checks shared by the functions below.
# --------------------------------------------------------------------------------------


_concrete = _checks.concrete


def _check_nonnegative(fn: str, name: str, x: Any) -> None:
    """`x >= 0`, checked when concrete (skipped under `jit`)."""
    value = _concrete(x)
    if value is not None and not np.all(value >= 0):
        raise ValueError(f"{fn}: argument `{name}` must be >= 0, got {value.tolist()!r}")


def _check_critics(fn: str, **qs: Array) -> None:
    """Each `q` is `[C]` float with `C >= 1`."""
    _checks.assert_inputs(fn, **{name: (q, 1, float) for name, q in qs.items()})
    for name, q in qs.items():
        if jnp.shape(q)[0] < 1:
            raise AssertionError(
                f"[Chex] {fn}: argument `{name}` must hold at least one critic value (shape "
                f"[C] with C >= 1), got shape {jnp.shape(q)}")


def _check_bound_values(fn: str, low: np.ndarray, high: np.ndarray) -> None:
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(
            f"{fn}: arguments `action_low` and `action_high` must be finite (a squashed policy "
            f"maps onto a bounded box), got {low.tolist()!r} and {high.tolist()!r}")
    if not np.all(low < high):
        raise ValueError(
            f"{fn}: argument `action_low` must be < `action_high` in every dimension, got "
            f"{low.tolist()!r} and {high.tolist()!r}")


def _action_bounds(
    fn: str, action_low: Any, action_high: Any, action_dim: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Construction-time bounds: float32 NumPy arrays `[A]`, validated."""
    low = np.asarray(action_low, np.float32)
    high = np.asarray(action_high, np.float32)
    for name, bound in (("action_low", low), ("action_high", high)):
        if bound.ndim > 1:
            raise ValueError(
                f"{fn}: argument `{name}` must be a float or an array [A] (flat actions), got "
                f"shape {bound.shape}")
    if low.ndim == 1 and high.ndim == 1 and low.shape != high.shape:
        raise ValueError(
            f"{fn}: arguments `action_low` and `action_high` must have the same shape, got "
            f"{low.shape} and {high.shape}")
    shape = low.shape if low.ndim == 1 else high.shape
    if action_dim is not None:
        _check_size(fn, "action_dim", action_dim)
        if shape and shape != (action_dim,):
            raise ValueError(
                f"{fn}: argument `action_dim` is {action_dim} but the bounds have shape {shape}")
        shape = (action_dim,)
    elif not shape:
        raise ValueError(
            f"{fn}: argument `action_dim` is needed when `action_low` and `action_high` are "
            f"both scalars (the number of action dimensions A is otherwise unknown)")
    if shape[0] < 1:
        raise ValueError(f"{fn}: arguments `action_low` and `action_high` are empty")
    low, high = np.broadcast_to(low, shape), np.broadcast_to(high, shape)
    _check_bound_values(fn, low, high)
    return low, high


def _bounds(fn: str, action_low: Any, action_high: Any, like: Array) -> tuple[Array, Array]:
    """`(low, high)` `[A]` float32 from bounds that are floats or arrays shaped like `like`.

    Shapes are checked always; values (finite, `low < high`) when concrete.
    """
    for name, bound in (("action_low", action_low), ("action_high", action_high)):
        if jnp.ndim(bound) not in (0, 1) or (jnp.ndim(bound) == 1
                                             and jnp.shape(bound) != jnp.shape(like)):
            raise AssertionError(
                f"[Chex] {fn}: argument `{name}` must be a float or have shape "
                f"{jnp.shape(like)} (one bound per action dimension), got {jnp.shape(bound)}")
    low_c, high_c = _concrete(action_low), _concrete(action_high)
    if low_c is not None and high_c is not None:
        _check_bound_values(fn, *np.broadcast_arrays(low_c.astype(np.float32),
                                                     high_c.astype(np.float32)))
    low = jnp.broadcast_to(jnp.asarray(action_low, jnp.float32), jnp.shape(like))
    high = jnp.broadcast_to(jnp.asarray(action_high, jnp.float32), jnp.shape(like))
    return low, high


def _squash(u: Array, low: Array, high: Array) -> Array:
    """`bias + scale * tanh(u)`, clipped so that float rounding never leaves `[low, high]`."""
    scale, bias = (high - low) / 2.0, (high + low) / 2.0
    return jnp.clip(bias + scale * jnp.tanh(u), low, high)


# --------------------------------------------------------------------------------------
# Modules.
# --------------------------------------------------------------------------------------


def _mlp_init(
    key: chex.PRNGKey,
    d_in: int,
    hidden_sizes: tuple[int, ...],
    heads: dict[str, int],
    layer_norm: bool,
    w_init: Callable[..., Array],
    final_w_init: Callable[..., Array],
) -> dict:
    """`{"torso": [layer, ...], **{head: layer}}` for one MLP."""
    keys = list(jax.random.split(key, len(hidden_sizes) + len(heads)))
    torso = []
    for d_out in hidden_sizes:
        layer = _dense_init(keys.pop(0), d_in, d_out, w_init)
        torso.append(_add_layer_norm(layer, d_out) if layer_norm else layer)
        d_in = d_out
    params = {"torso": torso}
    for name, d_out in heads.items():
        params[name] = _dense_init(keys.pop(0), d_in, d_out, final_w_init)
    return params


def _torso(
    params: dict, x: Array, layer_norm: bool, eps: float, activation: Callable[[Array], Array]
) -> Array:
    for layer in params["torso"]:
        z = x @ layer["w"] + layer["b"]
        x = activation(_layer_norm(z, layer, eps) if layer_norm else z)
    return x


def _first_layer(params: dict, head: str) -> dict:
    return params["torso"][0] if params["torso"] else params[head]


def critic_mlp(
    hidden_sizes: Sequence[int] = (256, 256),
    num_critics: int = 2,
    layer_norm: bool = False,
    *,
    activation: Callable[[Array], Array] = jax.nn.relu,
    layer_norm_eps: float = 1e-5,
    w_init: Callable[..., Array] | None = None,
) -> CriticFn:
    """`C = num_critics` independent Q-networks on `concat(obs, action)`, in one pass.

    Each critic is an MLP `q_c = head(h)`, `h = activation(LN(x @ w + b))` per hidden layer
    (LN only with `layer_norm=True`), `x = concat(obs, action)`, with a scalar linear output
    (as CleanRL's and sbx's `QNetwork`). The C critics' parameters are stacked along a
    leading critic axis and `jax.vmap` runs them together, so the C critics cost one batched
    matrix product per layer. Each critic has its own initialisation (independent keys).

    Args:
      hidden_sizes: widths of the hidden layers; may be empty (linear critics).
      num_critics: number of critics `C`, > 0 (TD3 and SAC: 2; DDPG: 1).
      layer_norm: LayerNorm (with scale and offset) before each hidden activation.
      activation: elementwise nonlinearity of the hidden layers (ReLU).
      layer_norm_eps: the epsilon added to the variance in LayerNorm, > 0.
      w_init: weight initialiser `w_init(key, shape, dtype)` of every layer; default LeCun
        normal (Flax's `Dense` default, as in CleanRL's JAX scripts). Biases start at zero.

    Returns:
      A `CriticFn`. Params are `{"torso": [{"w": [C, d_in, d_out], "b": [C, d_out]}
      (+ "scale", "offset" [C, d_out] with LayerNorm), ...], "head": {"w": [C, H, 1],
      "b": [C, 1]}}` with `d_in = O + A` for the first layer, and
      `apply(params, obs [O], action [A]) -> q [C]`. A batch:
      `jax.vmap(critic.apply, in_axes=(None, 0, 0))(params, obs [B, O], action [B, A])
      -> [B, C]`.
    """
    fn = "critic_mlp"
    hidden_sizes = _check_sizes(fn, hidden_sizes, num_critics=num_critics)
    _check_layer_norm_eps(fn, layer_norm_eps)
    if w_init is None:
        w_init = jax.nn.initializers.lecun_normal()

    def init(key: chex.PRNGKey, example_obs: Array, example_action: Array) -> Params:
        _checks.assert_inputs(f"{fn}.init", example_obs=(example_obs, 1, float),
                              example_action=(example_action, 1, float))
        _check_key(f"{fn}.init", key)
        d_in = jnp.shape(example_obs)[0] + jnp.shape(example_action)[0]
        one_critic = lambda k: _mlp_init(k, d_in, hidden_sizes, {"head": 1}, layer_norm,
                                         w_init, w_init)
        return jax.vmap(one_critic)(jax.random.split(key, num_critics))

    def one_critic(params: dict, x: Array) -> Array:
        h = _torso(params, x, layer_norm, layer_norm_eps, activation)
        return (h @ params["head"]["w"] + params["head"]["b"])[0]

    def apply(params: Params, obs: Array, action: Array) -> Array:
        _checks.assert_inputs(f"{fn}.apply", obs=(obs, 1, float), action=(action, 1, float))
        d_in = _first_layer(params, "head")["w"].shape[1]
        if jnp.shape(obs)[0] + jnp.shape(action)[0] != d_in:
            raise AssertionError(
                f"[Chex] {fn}.apply: arguments `obs` {jnp.shape(obs)} and `action` "
                f"{jnp.shape(action)} must be ONE observation [O] and ONE action [A] with "
                f"O + A = {d_in} (as at init; use jax.vmap for a batch)")
        x = jnp.concatenate([obs, action])
        return jax.vmap(one_critic, in_axes=(0, None))(params, x)

    return CriticFn(init, apply)


def _actor_inits(
    w_init: Callable[..., Array] | None, final_w_init: Callable[..., Array] | None
) -> tuple[Callable[..., Array], Callable[..., Array]]:
    if w_init is None:
        w_init = jax.nn.initializers.lecun_normal()
    if final_w_init is None:
        # A small output layer: the initial policy sits near the middle of the action box,
        # away from tanh's flat tails.
        final_w_init = jax.nn.initializers.variance_scaling(1e-2, "fan_in", "truncated_normal")
    return w_init, final_w_init


def deterministic_actor(
    action_low: Any,
    action_high: Any,
    hidden_sizes: Sequence[int] = (256, 256),
    layer_norm: bool = False,
    *,
    action_dim: int | None = None,
    activation: Callable[[Array], Array] = jax.nn.relu,
    layer_norm_eps: float = 1e-5,
    w_init: Callable[..., Array] | None = None,
    final_w_init: Callable[..., Array] | None = None,
) -> ActorFn:
    """A deterministic policy `mu(obs)` inside the action box (DDPG, TD3).

    `action = bias + scale * tanh(head(h))`, `scale = (high - low) / 2`,
    `bias = (high + low) / 2`, where `h` is the MLP torso on `obs`. The rescaling to the
    bounds is done here, once; exploration and target-smoothing noise are added to this
    action (in action units) by the caller / `target_policy_smoothing`.

    Args:
      action_low: lower bounds, a float or an array `[A]`, finite.
      action_high: upper bounds, a float or an array `[A]`, finite, `> action_low`.
      hidden_sizes: widths of the hidden layers; may be empty.
      layer_norm: LayerNorm (with scale and offset) before each hidden activation.
      action_dim: `A`; needed only when both bounds are floats.
      activation: elementwise nonlinearity of the hidden layers (ReLU).
      layer_norm_eps: the epsilon added to the variance in LayerNorm, > 0.
      w_init: weight initialiser of the hidden layers; default LeCun normal.
      final_w_init: weight initialiser of the output layer; default variance scaling with
        scale 0.01 (fan in, truncated normal), so that initial actions lie near `bias`.

    Returns:
      An `ActorFn`; params are `{"torso": [{"w", "b"(, "scale", "offset")}, ...],
      "head": {"w": [H, A], "b": [A]}}` and `apply(params, obs [O]) -> action [A]` float32,
      with `low <= action <= high`.
    """
    fn = "deterministic_actor"
    low, high = _action_bounds(fn, action_low, action_high, action_dim)
    hidden_sizes = _check_sizes(fn, hidden_sizes)
    _check_layer_norm_eps(fn, layer_norm_eps)
    w_init, final_w_init = _actor_inits(w_init, final_w_init)
    num_actions = low.shape[0]

    def init(key: chex.PRNGKey, example_obs: Array) -> Params:
        _checks.assert_inputs(f"{fn}.init", example_obs=(example_obs, 1, float))
        _check_key(f"{fn}.init", key)
        return _mlp_init(key, jnp.shape(example_obs)[0], hidden_sizes, {"head": num_actions},
                         layer_norm, w_init, final_w_init)

    def apply(params: Params, obs: Array) -> Array:
        _check_obs_shape(f"{fn}.apply", "obs", obs, (_first_layer(params, "head")["w"].shape[0],))
        h = _torso(params, obs, layer_norm, layer_norm_eps, activation)
        return _squash(h @ params["head"]["w"] + params["head"]["b"], low, high)

    return ActorFn(init, apply)


def gaussian_actor(
    action_low: Any,
    action_high: Any,
    hidden_sizes: Sequence[int] = (256, 256),
    log_std_min: float = -5.0,
    log_std_max: float = 2.0,
    layer_norm: bool = False,
    *,
    action_dim: int | None = None,
    activation: Callable[[Array], Array] = jax.nn.relu,
    layer_norm_eps: float = 1e-5,
    w_init: Callable[..., Array] | None = None,
    final_w_init: Callable[..., Array] | None = None,
) -> ActorFn:
    """A squashed-Gaussian policy network (SAC): the Gaussian BEFORE the tanh squash.

    Two linear heads on the MLP torso `h`: `mean = head_mean(h)` and
    `log_std = log_std_min + 0.5 * (log_std_max - log_std_min) * (tanh(head_log_std(h)) + 1)`,
    so `log_std` lies in `[log_std_min, log_std_max]` (CleanRL's `sac_continuous_action`).
    Actions come from `squashed_gaussian_sample(key, mean, log_std, low, high)` (training)
    or `squashed_gaussian_mode(mean, low, high)` (evaluation), with the same bounds as here.

    Args:
      action_low: lower bounds, a float or an array `[A]`, finite; sizes the output.
      action_high: upper bounds, a float or an array `[A]`, finite, `> action_low`.
      hidden_sizes: widths of the hidden layers; may be empty.
      log_std_min: the smallest log standard deviation (CleanRL: -5).
      log_std_max: the largest log standard deviation, `> log_std_min` (CleanRL: 2).
      layer_norm: LayerNorm (with scale and offset) before each hidden activation.
      action_dim: `A`; needed only when both bounds are floats.
      activation: elementwise nonlinearity of the hidden layers (ReLU).
      layer_norm_eps: the epsilon added to the variance in LayerNorm, > 0.
      w_init: weight initialiser of the hidden layers; default LeCun normal.
      final_w_init: weight initialiser of both heads; default variance scaling with scale
        0.01 (fan in, truncated normal): initial means near 0, log_std near the middle of
        its range.

    Returns:
      An `ActorFn`; params are `{"torso": [...], "mean": {"w": [H, A], "b": [A]},
      "log_std": {"w": [H, A], "b": [A]}}` and
      `apply(params, obs [O]) -> (mean [A], log_std [A])` float32.
    """
    fn = "gaussian_actor"
    low, _ = _action_bounds(fn, action_low, action_high, action_dim)
    hidden_sizes = _check_sizes(fn, hidden_sizes)
    _check_layer_norm_eps(fn, layer_norm_eps)
    for name, value in (("log_std_min", log_std_min), ("log_std_max", log_std_max)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise ValueError(f"{fn}: argument `{name}` must be a finite number, got {value!r}")
    if not log_std_min < log_std_max:
        raise ValueError(
            f"{fn}: argument `log_std_min` must be < `log_std_max`, got {log_std_min!r} and "
            f"{log_std_max!r}")
    w_init, final_w_init = _actor_inits(w_init, final_w_init)
    num_actions = low.shape[0]
    heads = {"mean": num_actions, "log_std": num_actions}

    def init(key: chex.PRNGKey, example_obs: Array) -> Params:
        _checks.assert_inputs(f"{fn}.init", example_obs=(example_obs, 1, float))
        _check_key(f"{fn}.init", key)
        return _mlp_init(key, jnp.shape(example_obs)[0], hidden_sizes, heads, layer_norm,
                         w_init, final_w_init)

    def apply(params: Params, obs: Array) -> tuple[Array, Array]:
        _check_obs_shape(f"{fn}.apply", "obs", obs, (_first_layer(params, "mean")["w"].shape[0],))
        h = _torso(params, obs, layer_norm, layer_norm_eps, activation)
        mean = h @ params["mean"]["w"] + params["mean"]["b"]
        raw = jnp.tanh(h @ params["log_std"]["w"] + params["log_std"]["b"])
        log_std = log_std_min + 0.5 * (log_std_max - log_std_min) * (raw + 1.0)
        return mean, log_std

    return ActorFn(init, apply)


# --------------------------------------------------------------------------------------
# The squashed Gaussian (SAC's policy distribution).
# --------------------------------------------------------------------------------------


def _check_gaussian(fn: str, mean: Array, log_std: Array) -> None:
    _checks.assert_inputs(fn, mean=(mean, 1, float), log_std=(log_std, 1, float))
    _checks.assert_same_shape(fn, mean=mean, log_std=log_std)


def _log_prob(u: Array, mean: Array, log_std: Array, scale: Array) -> Array:
    """`sum_i [log N(u_i; mean_i, std_i) - log(scale_i) - log(1 - tanh(u_i)^2)]`."""
    z = (u - mean) * jnp.exp(-log_std)
    log_normal = -0.5 * jnp.square(z) - log_std - _LOG_SQRT_2PI
    # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), exact and finite for every u.
    log_det_tanh = 2.0 * (_LOG_2 - u - jax.nn.softplus(-2.0 * u))
    return jnp.sum(log_normal - jnp.log(scale) - log_det_tanh)


def squashed_gaussian_log_prob(
    pre_tanh: Array, mean: Array, log_std: Array, action_low: Any, action_high: Any
) -> Array:
    """Log-density of the action `a = bias + scale * tanh(u)` for `u ~ N(mean, exp(log_std)^2)`.

    By the change of variables (Haarnoja et al. 2018, appendix C), per dimension
    `log pi(a) = log N(u; mean, std) - log(scale) - log(1 - tanh(u)^2)`, summed over the
    `A` dimensions, with `log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u))` (finite
    where `tanh(u)` rounds to +-1). CleanRL instead adds `1e-6` inside
    `log(scale * (1 - tanh(u)^2) + 1e-6)`; the two differ by about
    `1e-6 / (scale * (1 - tanh(u)^2))` per dimension: negligible away from the bounds, large
    where the policy saturates (there CleanRL's value is not a density).

    Args:
      pre_tanh: `u`, the Gaussian sample before the squash, `[A]`.
      mean: mean of the Gaussian, `[A]`.
      log_std: log standard deviation of the Gaussian, `[A]`.
      action_low: lower bounds, a float or `[A]`.
      action_high: upper bounds, a float or `[A]`, `> action_low`.

    Returns:
      The log-density of the action (w.r.t. Lebesgue measure on the box), `[]`.
    """
    fn = "squashed_gaussian_log_prob"
    _check_gaussian(fn, mean, log_std)
    _checks.assert_inputs(fn, pre_tanh=(pre_tanh, 1, float))
    _checks.assert_same_shape(fn, pre_tanh=pre_tanh, mean=mean)
    low, high = _bounds(fn, action_low, action_high, mean)
    return _log_prob(pre_tanh, mean, log_std, (high - low) / 2.0)


def squashed_gaussian_sample(
    key: chex.PRNGKey, mean: Array, log_std: Array, action_low: Any, action_high: Any
) -> tuple[Array, Array]:
    """A reparameterised sample of the squashed Gaussian and its log-density (SAC).

    `u = mean + exp(log_std) * eps`, `eps ~ N(0, I)`; `a = bias + scale * tanh(u)` (clipped
    to `[low, high]` against float rounding); `log_prob = squashed_gaussian_log_prob(u, ...)`.
    Gradients flow from `a` and `log_prob` to `mean` and `log_std` (the reparameterisation
    trick), which `sac_actor_loss` needs.

    Args:
      key: ONE PRNG key.
      mean: mean of the Gaussian, `[A]`.
      log_std: log standard deviation of the Gaussian, `[A]`.
      action_low: lower bounds, a float or `[A]`.
      action_high: upper bounds, a float or `[A]`, `> action_low`.

    Returns:
      `(action [A], log_prob [])`, float32, with `low <= action <= high`.
    """
    fn = "squashed_gaussian_sample"
    _check_gaussian(fn, mean, log_std)
    _check_key(fn, key)
    low, high = _bounds(fn, action_low, action_high, mean)
    eps = jax.random.normal(key, jnp.shape(mean), jnp.float32)
    u = mean + jnp.exp(log_std) * eps
    return _squash(u, low, high), _log_prob(u, mean, log_std, (high - low) / 2.0)


def squashed_gaussian_mode(mean: Array, action_low: Any, action_high: Any) -> Array:
    """The greedy action of the squashed Gaussian: `bias + scale * tanh(mean)`.

    (The squash of the Gaussian's mode, as CleanRL and SB3 evaluate SAC; for a skewed
    squashed density this is not exactly the mode of `pi(a)`.)

    Args:
      mean: mean of the Gaussian, `[A]`.
      action_low: lower bounds, a float or `[A]`.
      action_high: upper bounds, a float or `[A]`, `> action_low`.

    Returns:
      The action `[A]`, with `low <= action <= high`.
    """
    fn = "squashed_gaussian_mode"
    _checks.assert_inputs(fn, mean=(mean, 1, float))
    low, high = _bounds(fn, action_low, action_high, mean)
    return _squash(mean, low, high)


# --------------------------------------------------------------------------------------
# Targets.
# --------------------------------------------------------------------------------------


def target_policy_smoothing(
    key: chex.PRNGKey,
    action: Array,
    noise_std: Numeric,
    noise_clip: Numeric,
    action_low: Any,
    action_high: Any,
) -> Array:
    """TD3's target policy smoothing (Fujimoto et al. 2018, eq. 15), CleanRL's units.

    `a' = clip(action + scale * clip(noise_std * eps, -noise_clip, noise_clip), low, high)`,
    `eps ~ N(0, I)`, `scale = (high - low) / 2`. `noise_std` and `noise_clip` are relative
    to the half-width `scale` of the box (CleanRL's `td3_continuous_action_jax`:
    `policy_noise * action_scale`, clipped to `noise_clip * action_scale`), so the paper's
    settings `noise_std=0.2, noise_clip=0.5` on a `[-1, 1]` box give the same numbers on any
    box. Use it on the TARGET actor's action at `obs_t`.

    Args:
      key: ONE PRNG key.
      action: the target actor's action, `[A]`.
      noise_std: standard deviation of the noise, relative to `scale`, `[]`, >= 0.
      noise_clip: the largest absolute noise, relative to `scale`, `[]`, >= 0.
      action_low: lower bounds, a float or `[A]`.
      action_high: upper bounds, a float or `[A]`, `> action_low`.

    Returns:
      The smoothed action `[A]`, with `low <= a' <= high`.
    """
    fn = "target_policy_smoothing"
    _checks.assert_inputs(fn, action=(action, 1, float), noise_std=(noise_std, 0, float),
                          noise_clip=(noise_clip, 0, float))
    _check_nonnegative(fn, "noise_std", noise_std)
    _check_nonnegative(fn, "noise_clip", noise_clip)
    _check_key(fn, key)
    low, high = _bounds(fn, action_low, action_high, action)
    eps = jax.random.normal(key, jnp.shape(action), jnp.float32)
    noise = jnp.clip(noise_std * eps, -noise_clip, noise_clip) * (high - low) / 2.0
    return jnp.clip(action + noise, low, high)


def clipped_double_q_target(r_t: Numeric, discount_t: Numeric, q_t: Array) -> Array:
    """TD3's clipped double-Q target (Fujimoto et al. 2018): `r_t + discount_t * min_c q_t[c]`.

    A plain value (no stop-gradient); the losses below stop its gradient.

    Args:
      r_t: reward, `[]`.
      discount_t: `gamma * (1 - terminated_t)`, `[]`.
      q_t: the C target critics at `(obs_t, a_t)`, `[C]`, C >= 1.

    Returns:
      The target, `[]`.
    """
    fn = "clipped_double_q_target"
    _checks.assert_inputs(fn, r_t=(r_t, 0, float), discount_t=(discount_t, 0, float))
    _check_critics(fn, q_t=q_t)
    return r_t + discount_t * jnp.min(q_t)


def soft_q_target(
    r_t: Numeric, discount_t: Numeric, q_t: Array, log_prob_t: Numeric, alpha: Numeric
) -> Array:
    """SAC's soft target (Haarnoja et al. 2018):
    `r_t + discount_t * (min_c q_t[c] - alpha * log_prob_t)`.

    A plain value (no stop-gradient); `sac_critic_loss` stops its gradient.

    Args:
      r_t: reward, `[]`.
      discount_t: `gamma * (1 - terminated_t)`, `[]`.
      q_t: the C target critics at `(obs_t, a_t)`, `a_t ~ pi(.|obs_t)`, `[C]`, C >= 1.
      log_prob_t: `log pi(a_t | obs_t)`, `[]`.
      alpha: the temperature (entropy coefficient), `[]`, >= 0.

    Returns:
      The target, `[]`.
    """
    fn = "soft_q_target"
    _checks.assert_inputs(fn, r_t=(r_t, 0, float), discount_t=(discount_t, 0, float),
                          log_prob_t=(log_prob_t, 0, float), alpha=(alpha, 0, float))
    _check_critics(fn, q_t=q_t)
    _check_nonnegative(fn, "alpha", alpha)
    return r_t + discount_t * (jnp.min(q_t) - alpha * log_prob_t)


# --------------------------------------------------------------------------------------
# Critic losses.
# --------------------------------------------------------------------------------------


def critic_loss(q_tm1: Array, target: Numeric, stop_target_gradients: bool = True) -> Array:
    """Every critic regresses on the same target: `sum_c 0.5 * (target - q_tm1[c]) ** 2`.

    The sum over critics (not the mean) is sbx's `0.5 * (...)**2 .sum()` and CleanRL's
    `qf1_loss + qf2_loss` (CleanRL's MSE has no 0.5: its loss is twice this one). Since the
    critics have separate parameters, each critic gets exactly its own TD gradient.

    Args:
      q_tm1: the C critics at `(obs_tm1, a_tm1)`, `[C]`, C >= 1.
      target: the bootstrapped target, `[]`.
      stop_target_gradients: wrap `target` in `stop_gradient`.

    Returns:
      The loss, `[]`.
    """
    fn = "critic_loss"
    _checks.assert_inputs(fn, target=(target, 0, float))
    _check_critics(fn, q_tm1=q_tm1)
    target = maybe_stop_gradient(target, stop_target_gradients)
    return jnp.sum(0.5 * jnp.square(target - q_tm1))


def ddpg_critic_loss(
    q_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    q_t: Array,
    stop_target_gradients: bool = True,
) -> Array:
    """DDPG's critic loss (Lillicrap et al. 2016): target `r_t + discount_t * q_t[0]`.

    DDPG has one critic; with `C > 1` the target still uses critic 0 only (and every
    critic in `q_tm1` regresses on it), so this is DDPG even with twin critic networks.
    `q_t` is the target critic at `(obs_t, mu_target(obs_t))`.

    Args:
      q_tm1: the critics at `(obs_tm1, a_tm1)`, `[C]`.
      r_t: reward, `[]`.
      discount_t: `gamma * (1 - terminated_t)`, `[]`.
      q_t: the target critics at `(obs_t, a_t)`, `[C']`, C' >= 1.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      `sum_c 0.5 * (target - q_tm1[c]) ** 2`, `[]`.
    """
    fn = "ddpg_critic_loss"
    _checks.assert_inputs(fn, r_t=(r_t, 0, float), discount_t=(discount_t, 0, float))
    _check_critics(fn, q_tm1=q_tm1, q_t=q_t)
    return critic_loss(q_tm1, r_t + discount_t * q_t[0], stop_target_gradients)


def td3_critic_loss(
    q_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    q_t: Array,
    stop_target_gradients: bool = True,
) -> Array:
    """TD3's critic loss: every critic regresses on `clipped_double_q_target(r_t, discount_t,
    q_t)`, with `q_t` the target critics at the smoothed target action
    (`target_policy_smoothing`).

    Args:
      q_tm1: the critics at `(obs_tm1, a_tm1)`, `[C]`.
      r_t: reward, `[]`.
      discount_t: `gamma * (1 - terminated_t)`, `[]`.
      q_t: the target critics at `(obs_t, a_t)`, `[C']`, C' >= 1.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      `sum_c 0.5 * (target - q_tm1[c]) ** 2`, `[]`.
    """
    fn = "td3_critic_loss"
    _checks.assert_inputs(fn, r_t=(r_t, 0, float), discount_t=(discount_t, 0, float))
    _check_critics(fn, q_tm1=q_tm1, q_t=q_t)
    target = clipped_double_q_target(r_t, discount_t, q_t)
    return critic_loss(q_tm1, target, stop_target_gradients)


def sac_critic_loss(
    q_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    q_t: Array,
    log_prob_t: Numeric,
    alpha: Numeric,
    stop_target_gradients: bool = True,
) -> Array:
    """SAC's critic loss: every critic regresses on
    `soft_q_target = r_t + discount_t * (min_c q_t[c] - alpha * log_prob_t)`, with
    `a_t ~ pi(.|obs_t)` sampled from the CURRENT actor (`squashed_gaussian_sample`).

    With `stop_target_gradients=True` no gradient reaches `q_t`, `log_prob_t` or `alpha`.

    Args:
      q_tm1: the critics at `(obs_tm1, a_tm1)`, `[C]`.
      r_t: reward, `[]`.
      discount_t: `gamma * (1 - terminated_t)`, `[]`.
      q_t: the target critics at `(obs_t, a_t)`, `[C']`, C' >= 1.
      log_prob_t: `log pi(a_t | obs_t)`, `[]`.
      alpha: the temperature, `[]`, >= 0.
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      `sum_c 0.5 * (target - q_tm1[c]) ** 2`, `[]`.
    """
    fn = "sac_critic_loss"
    _checks.assert_inputs(fn, r_t=(r_t, 0, float), discount_t=(discount_t, 0, float),
                          log_prob_t=(log_prob_t, 0, float), alpha=(alpha, 0, float))
    _check_critics(fn, q_tm1=q_tm1, q_t=q_t)
    _check_nonnegative(fn, "alpha", alpha)
    target = soft_q_target(r_t, discount_t, q_t, log_prob_t, alpha)
    return critic_loss(q_tm1, target, stop_target_gradients)


# --------------------------------------------------------------------------------------
# Actor and temperature losses.
# --------------------------------------------------------------------------------------


def deterministic_policy_loss(q: Array) -> Array:
    """DDPG's and TD3's actor loss (Silver et al. 2014): `-q[0]`, maximising critic 0.

    `q = critic.apply(critic_params, obs, actor.apply(actor_params, obs))`; the gradient
    flows through the action into the actor. Differentiate w.r.t. the ACTOR's params only:
    the critic must not be updated by this loss (it would raise its own values). Critics
    other than 0 are ignored (TD3 updates the actor with `Q_1` only).

    Args:
      q: the critics at `(obs, mu(obs))`, `[C]`, C >= 1.

    Returns:
      The loss, `[]`.
    """
    _check_critics("deterministic_policy_loss", q=q)
    return -q[0]


def sac_actor_loss(q: Array, log_prob: Numeric, alpha: Numeric) -> Array:
    """SAC's actor loss (Haarnoja et al. 2018): `stop_gradient(alpha) * log_prob - min_c q[c]`.

    `(a, log_prob) = squashed_gaussian_sample(key, *actor.apply(actor_params, obs), ...)` and
    `q = critic.apply(critic_params, obs, a)`; the gradient reaches the actor through `a`
    and `log_prob` (reparameterised). Differentiate w.r.t. the ACTOR's params only; `alpha`
    gets no gradient here (`sac_temperature_loss` learns it).

    Args:
      q: the critics at `(obs, a)`, `[C]`, C >= 1.
      log_prob: `log pi(a | obs)`, `[]`.
      alpha: the temperature, `[]`, >= 0.

    Returns:
      The loss, `[]`.
    """
    fn = "sac_actor_loss"
    _checks.assert_inputs(fn, log_prob=(log_prob, 0, float), alpha=(alpha, 0, float))
    _check_critics(fn, q=q)
    _check_nonnegative(fn, "alpha", alpha)
    return jax.lax.stop_gradient(alpha) * log_prob - jnp.min(q)


def sac_temperature_loss(log_alpha: Numeric, log_prob: Numeric, target_entropy: Numeric) -> Array:
    """SAC's temperature loss (Haarnoja et al. 2018b, eq. 18, in `log_alpha`):
    `-log_alpha * stop_gradient(log_prob + target_entropy)`.

    The form of SB3 and sbx: the loss is linear in `log_alpha`, so its gradient
    `-(log_prob + target_entropy)` raises `alpha` when the policy's entropy `-log_prob` is
    below `target_entropy` and lowers it above. (The paper and CleanRL use `alpha` itself,
    `-alpha * (log_prob + target_entropy)`, whose gradient is `alpha` times this one; see
    rail-berkeley/softlearning#37.) Learn `log_alpha` and use `alpha = exp(log_alpha)`.

    Args:
      log_alpha: the log temperature, `[]`.
      log_prob: `log pi(a | obs)` of a fresh sample `a ~ pi(.|obs)`, `[]`; no gradient.
      target_entropy: the target entropy, `[]`, e.g. `default_target_entropy(A)`.

    Returns:
      The loss, `[]`.
    """
    _checks.assert_inputs(
        "sac_temperature_loss", log_alpha=(log_alpha, 0, float), log_prob=(log_prob, 0, float),
        target_entropy=(target_entropy, 0, float))
    return -log_alpha * jax.lax.stop_gradient(log_prob + target_entropy)


def default_target_entropy(action_dim: int) -> float:
    """SAC's heuristic target entropy, `-A` (Haarnoja et al. 2018b; CleanRL, SB3).

    Args:
      action_dim: the number of action dimensions `A`, > 0.

    Returns:
      `-float(A)`.
    """
    _check_size("default_target_entropy", "action_dim", action_dim)
    return -float(action_dim)
