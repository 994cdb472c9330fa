"""Eligibility traces, TD(lambda), true online TD(lambda), off-line lambda-return, n-step TD.

Step functions take ONE transition `(x_tm1, r_t, discount_t, x_t)` with features `[F]`;
episode functions (`run_episode_*`) run a whole episode with `lax.scan`. All are pure,
jittable and vmappable over runs, step sizes and lambda (`alpha`, `lambda_` and `n` may be
traced arrays; only `trace` is a static Python string).

Trace convention. S&B write `z_t = gamma lambda z_{t-1} + x_t`, where `gamma` is the
discount INTO `S_t`, i.e. the previous transition's. A single-transition function only sees
`discount_t` (this transition's, applied to the value of `x_t`), so the trace `z` passed
between steps is stored ALREADY DECAYED: a step receives `z = discount_{t-1} lambda z_{t-1}`,
forms `z_t = z + x_tm1` (or the replacing/dutch variant), updates `w`, and returns
`discount_t * lambda_ * z_t`. Because `discount_t = 0` at termination, the returned trace is
zero after a terminal transition and the next episode starts clean. Start with `z = 0`
(and reset it by hand after a truncated episode, whose discount is not zero).

Episode layout for `run_episode_*`: `xs [T + 1, F]` holds the features of `S_0 .. S_T`
(`xs[T]` the final observation; its value is multiplied by `discount_t[T - 1]`), `r_t [T]`
and `discount_t [T]` (zero at termination). Episodes of different lengths are padded to a
common `T` and given `length`: only steps `t < length` are used, `xs[length]` is the final
observation, and everything after it is ignored, so a batch of episodes vmaps.

The pieces of the n-step and off-line lambda-return passes are public
(`n_step_prefix`, `n_step_window`, `n_step_td_step`; `lambda_return_coefficients`,
`offline_lambda_return_step`), so a caller can run the same maths over a stream of episodes
back to back with its own bookkeeping (`agents.textbook.prediction` records errors as it goes).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks

Array = chex.Array
Numeric = chex.Numeric
ValueFn = Callable[[Any, Any], Array]

TRACE_KINDS = ("accumulating", "replacing", "dutch")


class TrueOnlineState(NamedTuple):
    """State of true online TD(lambda) carried between steps.

    Attributes:
      z: dutch trace, already decayed by `discount_t * lambda_`, shape `[F]`.
      v_old: `w . x_t` of the previous step (the book's `V_old`), shape `[]`.
    """

    z: Array
    v_old: Array


def init_trace(w: Any) -> Any:
    """A zero trace shaped like `w` (an `[F]` array or any params pytree)."""
    return jax.tree.map(jnp.zeros_like, w)


def init_true_online(w: Array) -> TrueOnlineState:
    """`TrueOnlineState(z = 0 [F], v_old = 0 [])` for weights `w [F]`."""
    return TrueOnlineState(jnp.zeros_like(w), jnp.zeros((), w.dtype))


# ----------------------------------------------------------------------------------------
# Trace primitives, in the book's form `z <- decay * z + ...`.


def accumulating_trace(z: Array, x: Array, decay: Numeric) -> Array:
    """Accumulating trace (S&B (12.5)): `z <- decay * z + x`.

    Args:
      z: previous trace, shape `[F]`.
      x: features (the gradient of a linear `v`) of the current state, shape `[F]`.
      decay: `gamma * lambda`, shape `[]`.

    Returns:
      The new trace, shape `[F]`.
    """
    fn = "accumulating_trace"
    _checks.assert_inputs(fn, z=(z, 1, float), x=(x, 1, float), decay=(decay, 0, float))
    _checks.assert_same_shape(fn, z=z, x=x)
    return decay * z + x


def replacing_trace(z: Array, x: Array, decay: Numeric) -> Array:
    """Replacing trace for BINARY features (S&B Section 12.3): `z_i <- 1` where `x_i = 1`,
    else `decay * z_i`. (For non-binary `x`, active components are set to `x_i`.)

    Args:
      z: previous trace, shape `[F]`.
      x: binary features of the current state, shape `[F]`.
      decay: `gamma * lambda`, shape `[]`.

    Returns:
      The new trace, shape `[F]`.
    """
    fn = "replacing_trace"
    _checks.assert_inputs(fn, z=(z, 1, float), x=(x, 1, float), decay=(decay, 0, float))
    _checks.assert_same_shape(fn, z=z, x=x)
    return jnp.where(x != 0, x, decay * z)


def dutch_trace(z: Array, x: Array, decay: Numeric, alpha: Numeric) -> Array:
    """Dutch trace (S&B (12.11)): `z <- decay * z + (1 - alpha * decay * z . x) x`.

    Args:
      z: previous trace, shape `[F]`.
      x: features of the current state, shape `[F]`.
      decay: `gamma * lambda`, shape `[]`.
      alpha: step size, shape `[]`.

    Returns:
      The new trace, shape `[F]`.
    """
    fn = "dutch_trace"
    _checks.assert_inputs(
        fn, z=(z, 1, float), x=(x, 1, float), decay=(decay, 0, float), alpha=(alpha, 0, float))
    _checks.assert_same_shape(fn, z=z, x=x)
    decayed = decay * z
    return decayed + (1.0 - alpha * jnp.dot(decayed, x)) * x


def tree_accumulating_trace(z: Any, grads: Any, decay: Numeric) -> Any:
    """Accumulating trace over a params pytree: `z <- decay * z + grad v`, leaf by leaf.

    Args:
      z: previous trace, a pytree shaped like the params.
      grads: `grad v(params, obs)` for the current state, same structure.
      decay: `gamma * lambda`, shape `[]`.

    Returns:
      The new trace, same structure.
    """
    _checks.assert_inputs("tree_accumulating_trace", decay=(decay, 0, float))
    chex.assert_trees_all_equal_shapes(
        z, grads, custom_message="tree_accumulating_trace: `z` and `grads` must have the "
        "same structure and shapes")
    return jax.tree.map(lambda zi, gi: decay * zi + gi, z, grads)


# ----------------------------------------------------------------------------------------
# One-transition updates.


def _check_step(fn: str, w, z, x_tm1, r_t, discount_t, x_t, **scalars) -> None:
    _checks.assert_inputs(
        fn, w=(w, 1, float), z=(z, 1, float), x_tm1=(x_tm1, 1, float), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), x_t=(x_t, 1, float),
        **{k: (v, 0, float) for k, v in scalars.items()})
    _checks.assert_same_shape(fn, w=w, z=z, x_tm1=x_tm1, x_t=x_t)


def _check_trace_kind(fn: str, trace: str) -> None:
    if trace not in TRACE_KINDS:
        raise ValueError(
            f"{fn}: argument `trace` must be one of {TRACE_KINDS}, got {trace!r}")


def td_lambda_update(
    w: Array,
    z: Array,
    x_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    x_t: Array,
    alpha: Numeric,
    lambda_: Numeric,
    trace: str = "accumulating",
) -> tuple[Array, Array]:
    """Linear semi-gradient TD(lambda) for one transition (S&B (12.5)-(12.7)):

    `z_t = z + x_tm1` (accumulating; `replacing_trace` / `dutch_trace` rules with decay 1 on
    the already-decayed `z` for the others), `delta = r_t + discount_t w.x_t - w.x_tm1`,
    `w <- w + alpha delta z_t`, and the trace passed on is `discount_t * lambda_ * z_t`.

    Args:
      w: weights, shape `[F]`.
      z: trace from the previous step, already decayed (zeros at episode start), shape `[F]`.
      x_tm1: features of the source state, shape `[F]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      x_t: features of the destination state, shape `[F]`.
      alpha: step size, shape `[]`.
      lambda_: trace-decay parameter, shape `[]`.
      trace: "accumulating", "replacing" (binary features) or "dutch" (static).

    Returns:
      `(w, z)`: the new weights `[F]` and the decayed trace for the next step `[F]`.
    """
    fn = "td_lambda_update"
    _check_trace_kind(fn, trace)
    _check_step(fn, w, z, x_tm1, r_t, discount_t, x_t, alpha=alpha, lambda_=lambda_)
    one = jnp.ones((), z.dtype)
    if trace == "accumulating":
        z = accumulating_trace(z, x_tm1, one)
    elif trace == "replacing":
        z = replacing_trace(z, x_tm1, one)
    else:
        z = dutch_trace(z, x_tm1, one, alpha)
    delta = r_t + discount_t * jnp.dot(w, x_t) - jnp.dot(w, x_tm1)
    w = w + alpha * delta * z
    return w, discount_t * lambda_ * z


def true_online_td_lambda_update(
    w: Array,
    state: TrueOnlineState,
    x_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    x_t: Array,
    alpha: Numeric,
    lambda_: Numeric,
) -> tuple[Array, TrueOnlineState]:
    """True online TD(lambda) (van Seijen & Sutton 2014; S&B Section 12.5) for one transition:

    `V = w.x_tm1`, `V' = w.x_t`, `delta = r_t + discount_t V' - V`,
    `z_t = z + (1 - alpha z.x_tm1) x_tm1` (dutch trace on the already-decayed `z`),
    `w <- w + alpha (delta + V - V_old) z_t - alpha (V - V_old) x_tm1`, `V_old <- V'`,
    and the trace passed on is `discount_t * lambda_ * z_t`.

    For linear `v`, the weights equal those of the on-line lambda-return algorithm exactly.
    At episode start `z = 0`, where `V_old` has no effect.

    Args:
      w: weights, shape `[F]`.
      state: `TrueOnlineState(z [F], v_old [])` from the previous step (`init_true_online`).
      x_tm1: features of the source state, shape `[F]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      x_t: features of the destination state, shape `[F]`.
      alpha: step size, shape `[]`.
      lambda_: trace-decay parameter, shape `[]`.

    Returns:
      `(w, state)`: the new weights `[F]` and `TrueOnlineState` for the next step.
    """
    fn = "true_online_td_lambda_update"
    z, v_old = state
    _check_step(fn, w, z, x_tm1, r_t, discount_t, x_t, alpha=alpha, lambda_=lambda_)
    _checks.assert_inputs(fn, v_old=(v_old, 0, float))
    v = jnp.dot(w, x_tm1)
    v_next = jnp.dot(w, x_t)
    delta = r_t + discount_t * v_next - v
    z = z + (1.0 - alpha * jnp.dot(z, x_tm1)) * x_tm1
    w = w + alpha * (delta + v - v_old) * z - alpha * (v - v_old) * x_tm1
    return w, TrueOnlineState(discount_t * lambda_ * z, v_next)


def td_lambda_tree_direction(
    v_fn: ValueFn,
    params: Any,
    z: Any,
    obs_tm1: Any,
    r_t: Numeric,
    discount_t: Numeric,
    obs_t: Any,
    lambda_: Numeric,
) -> tuple[Any, Any, Array]:
    """Semi-gradient TD(lambda) for any value function `v_fn(params, obs) -> []`:

    `z_t = z + grad v(obs_tm1)` (leaf by leaf), `delta = r_t + discount_t v(obs_t) - v(obs_tm1)`;
    the ascent direction is `delta * z_t` and the trace passed on `discount_t * lambda_ * z_t`.

    `params + alpha * direction` is TD(lambda) (`td_lambda_tree_update`); to use an optax
    optimiser, pass `jax.tree.map(jnp.negative, direction)` as the gradient.

    Args:
      v_fn: value function `v_fn(params, obs) -> []`.
      params: its parameters (any pytree).
      z: trace shaped like `params`, already decayed (zeros at episode start; `init_trace`).
      obs_tm1: source observation.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      obs_t: destination observation.
      lambda_: trace-decay parameter, shape `[]`.

    Returns:
      `(direction, z, delta)`: `delta * z_t` (params-shaped), the decayed trace for the next
      step (params-shaped), and the TD error `[]`.
    """
    fn = "td_lambda_tree_direction"
    _checks.assert_inputs(
        fn, r_t=(r_t, 0, float), discount_t=(discount_t, 0, float), lambda_=(lambda_, 0, float))
    v_tm1, grads = jax.value_and_grad(v_fn)(params, obs_tm1)
    v_t = v_fn(params, obs_t)
    _checks.assert_inputs(fn, **{"v_fn(params, obs)": (v_tm1, 0, float)})
    z = tree_accumulating_trace(z, grads, jnp.ones((), v_tm1.dtype))
    delta = r_t + discount_t * v_t - v_tm1
    direction = jax.tree.map(lambda zi: delta * zi, z)
    return direction, jax.tree.map(lambda zi: discount_t * lambda_ * zi, z), delta


def td_lambda_tree_update(
    v_fn: ValueFn,
    params: Any,
    z: Any,
    obs_tm1: Any,
    r_t: Numeric,
    discount_t: Numeric,
    obs_t: Any,
    alpha: Numeric,
    lambda_: Numeric,
) -> tuple[Any, Any]:
    """`params <- params + alpha delta z_t` with `td_lambda_tree_direction`'s trace.

    Same arguments as `td_lambda_tree_direction` plus `alpha` (shape `[]`).

    Returns:
      `(params, z)`: the new params and the decayed trace for the next step.
    """
    _checks.assert_inputs("td_lambda_tree_update", alpha=(alpha, 0, float))
    direction, z, _ = td_lambda_tree_direction(
        v_fn, params, z, obs_tm1, r_t, discount_t, obs_t, lambda_)
    return jax.tree.map(lambda p, d: p + alpha * d, params, direction), z


# ----------------------------------------------------------------------------------------
# Whole episodes.


def _check_episode(fn: str, w, xs, r_t, discount_t, length, **scalars) -> Array:
    _checks.assert_inputs(
        fn, w=(w, 1, float), xs=(xs, 2, float), r_t=(r_t, 1, float),
        discount_t=(discount_t, 1, float), **{k: (v, 0, float) for k, v in scalars.items()})
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t)
    if xs.shape != (r_t.shape[0] + 1, w.shape[0]):
        raise AssertionError(
            f"[Chex] {fn}: argument `xs` must have shape [T + 1, F] = "
            f"{(r_t.shape[0] + 1, w.shape[0])} (T from `r_t`, F from `w`), got {xs.shape}")
    num_steps = r_t.shape[0]
    if length is None:
        return jnp.asarray(num_steps)
    _checks.assert_inputs(fn, length=(length, 0, int))
    return length


def run_episode_td_lambda(
    w: Array,
    xs: Array,
    r_t: Array,
    discount_t: Array,
    alpha: Numeric,
    lambda_: Numeric,
    trace: str = "accumulating",
    length: Numeric | None = None,
) -> Array:
    """Runs `td_lambda_update` over one episode (online, trace starting at zero).

    With `lambda_ = 0` this is linear TD(0); with one-hot features, tabular TD(lambda).

    Args:
      w: initial weights, shape `[F]`.
      xs: features of `S_0 .. S_T`, shape `[T + 1, F]`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, zero at termination, shape `[T]`.
      alpha: step size, shape `[]`.
      lambda_: trace-decay parameter, shape `[]`.
      trace: "accumulating", "replacing" or "dutch" (static).
      length: number of real steps (int, shape `[]`) of a padded episode; None uses all `T`.

    Returns:
      The weights at the end of the episode, shape `[F]`.
    """
    fn = "run_episode_td_lambda"
    _check_trace_kind(fn, trace)
    length = _check_episode(fn, w, xs, r_t, discount_t, length, alpha=alpha, lambda_=lambda_)

    def body(carry, inputs):
        w, z = carry
        t, x_tm1, r, d, x = inputs
        w_new, z_new = td_lambda_update(w, z, x_tm1, r, d, x, alpha, lambda_, trace)
        valid = t < length
        return (jnp.where(valid, w_new, w), jnp.where(valid, z_new, z)), None

    steps = jnp.arange(r_t.shape[0])
    (w, _), _ = jax.lax.scan(
        body, (w, jnp.zeros_like(w)), (steps, xs[:-1], r_t, discount_t, xs[1:]))
    return w


def run_episode_true_online_td_lambda(
    w: Array,
    xs: Array,
    r_t: Array,
    discount_t: Array,
    alpha: Numeric,
    lambda_: Numeric,
    length: Numeric | None = None,
) -> Array:
    """Runs `true_online_td_lambda_update` over one episode (state starting at zero).

    Same arguments as `run_episode_td_lambda` (without `trace`); returns the final weights
    `[F]`.
    """
    fn = "run_episode_true_online_td_lambda"
    length = _check_episode(fn, w, xs, r_t, discount_t, length, alpha=alpha, lambda_=lambda_)

    def body(carry, inputs):
        w, state = carry
        t, x_tm1, r, d, x = inputs
        w_new, state_new = true_online_td_lambda_update(w, state, x_tm1, r, d, x, alpha, lambda_)
        valid = t < length
        keep = lambda new, old: jnp.where(valid, new, old)
        return (keep(w_new, w), jax.tree.map(keep, state_new, state)), None

    steps = jnp.arange(r_t.shape[0])
    (w, _), _ = jax.lax.scan(
        body, (w, init_true_online(w)), (steps, xs[:-1], r_t, discount_t, xs[1:]))
    return w


def run_episode_offline_lambda_return(
    w: Array,
    xs: Array,
    r_t: Array,
    discount_t: Array,
    alpha: Numeric,
    lambda_: Numeric,
    length: Numeric | None = None,
) -> Array:
    """Off-line lambda-return algorithm (S&B Section 12.1) for linear `v = w.x`.

    No change during the episode; at its end, for `t = 0 .. T-1` in order,
    `w <- w + alpha (G_t^lambda(w) - w.x_t) x_t`, where the values inside
    `G_t^lambda = r_t + discount_t ((1 - lambda) w.x_{t+1} + lambda G_{t+1}^lambda)` use the
    CURRENT weights of that pass (after the updates for `0 .. t-1`), so `lambda_ = 0` is exactly
    TD(0) and `lambda_ = 1` is constant-alpha Monte Carlo in forward order. An episode cut at
    `length` without termination bootstraps from `w.xs[length]`.

    The return is linear in `w`, `G_t = c_t + g_t . w`; `(c_t, g_t)` come from one backward
    scan, so the whole pass costs `O(T F)`.

    Same arguments as `run_episode_true_online_td_lambda`; returns the final weights `[F]`.
    """
    fn = "run_episode_offline_lambda_return"
    length = _check_episode(fn, w, xs, r_t, discount_t, length, alpha=alpha, lambda_=lambda_)
    cs, gs = lambda_return_coefficients(xs, r_t, discount_t, lambda_, length)

    def forward(w, inputs):
        t, x, c, g = inputs
        w_new = offline_lambda_return_step(w, x, c, g, alpha)
        return jnp.where(t < length, w_new, w), None

    w, _ = jax.lax.scan(forward, w, (jnp.arange(r_t.shape[0]), xs[:-1], cs, gs))
    return w


def lambda_return_coefficients(
    xs: Array,
    r_t: Array,
    discount_t: Array,
    lambda_: Numeric,
    length: Numeric | None = None,
) -> tuple[Array, Array]:
    """The lambda-returns of a linear `v = w.x` as linear functions of `w`.

    `G_t^lambda = r_t + discount_t ((1 - lambda) w.x_{t+1} + lambda G_{t+1}^lambda)` is
    `c_t + g_t . w` with `c_t = r_t + discount_t lambda c_{t+1}` and
    `g_t = discount_t ((1 - lambda) x_{t+1} + lambda g_{t+1})`, from one backward scan. The
    last step bootstraps from `xs[T]` (`G_T = w.x_T`); a zero discount ends the recursion, so
    `xs` may hold episodes back to back. With `length`, steps `t >= length` are padding:
    `G_t = w.x_t` there, so `G_{length - 1}` bootstraps from `xs[length]`.

    Args:
      xs: features of `S_0 .. S_T`, shape `[T + 1, F]`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, zero at termination, shape `[T]`.
      lambda_: shape `[]`.
      length: number of real steps (int, shape `[]`), or None for all `T`.

    Returns:
      `(c [T], g [T, F])`.
    """
    fn = "lambda_return_coefficients"
    _checks.assert_inputs(fn, xs=(xs, 2, float), r_t=(r_t, 1, float),
                          discount_t=(discount_t, 1, float), lambda_=(lambda_, 0, float))
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t)
    if xs.shape[0] != r_t.shape[0] + 1:
        raise AssertionError(f"[Chex] {fn}: argument `xs` must have T + 1 = {r_t.shape[0] + 1} "
                             f"rows (T from `r_t`), got shape {xs.shape}")

    def backward(carry, inputs):
        c_next, g_next = carry  # G_{t+1} = c_next + g_next . w
        t, x, r, d, x_next = inputs
        c = r + d * lambda_ * c_next
        g = d * ((1.0 - lambda_) * x_next + lambda_ * g_next)
        if length is not None:  # Past the end, G_t = w.x_t.
            valid = t < length
            c = jnp.where(valid, c, jnp.zeros_like(c))
            g = jnp.where(valid, g, x)
        return (c, g), (c, g)

    init = (jnp.zeros((), r_t.dtype), xs[-1])
    _, (cs, gs) = jax.lax.scan(
        backward, init, (jnp.arange(r_t.shape[0]), xs[:-1], r_t, discount_t, xs[1:]),
        reverse=True)
    return cs, gs


def offline_lambda_return_step(w: Array, x: Array, c: Array, g: Array, alpha: Numeric) -> Array:
    """One update of the off-line lambda-return pass: `w + alpha (c + g.w - x.w) x`.

    Args:
      w: weights `[F]`; x: features of `S_t` `[F]`; c, g: `lambda_return_coefficients` at
        `t` (`[]`, `[F]`); alpha: step size `[]`.

    Returns:
      The new weights `[F]`.
    """
    return w + alpha * (c + jnp.dot(g - x, w)) * x


class NStepPrefix(NamedTuple):
    """Prefix sums behind n-step returns, independent of `n` (see `n_step_prefix`).

    Attributes:
      reward_to_go: `U [T + 1]`, `U[i] = r_i + d_i U[i + 1]`, `U[T] = 0` (a zero discount
        restarts it, so it is the discounted return to the end of step i's episode).
      log_prefix: `[T + 1]`, the sum of `log d_j` over `j < i` (zero discounts add 0).
      zero_prefix: int32 `[T + 1]`, the number of zero discounts among `j < i`.
    """

    reward_to_go: Array
    log_prefix: Array
    zero_prefix: Array


def n_step_prefix(r_t: Array, discount_t: Array) -> NStepPrefix:
    """Prefix sums from which `n_step_window` reads any n-step return in O(1).

    Args:
      r_t: rewards, shape `[T]` (episodes may follow each other: zero discounts end them).
      discount_t: discounts in [0, 1], shape `[T]`.

    Returns:
      `NStepPrefix` with `[T + 1]` fields.
    """
    fn = "n_step_prefix"
    _checks.assert_inputs(fn, r_t=(r_t, 1, float), discount_t=(discount_t, 1, float))
    _checks.assert_same_shape(fn, r_t=r_t, discount_t=discount_t)
    dtype = r_t.dtype

    def backward(u_next, inputs):
        r_i, d_i = inputs
        u = r_i + d_i * u_next
        return u, u

    _, u = jax.lax.scan(backward, jnp.zeros((), dtype), (r_t, discount_t), reverse=True)
    is_zero = discount_t == 0
    logs = jnp.log(jnp.where(is_zero, 1.0, discount_t))
    pad0 = lambda a: jnp.concatenate([jnp.zeros((1,), a.dtype), jnp.cumsum(a)])
    return NStepPrefix(jnp.concatenate([u, jnp.zeros((1,), dtype)]), pad0(logs),
                       pad0(is_zero.astype(jnp.int32)))


def n_step_window(prefix: NStepPrefix, t: Array, n: Numeric,
                  end_limit: Numeric) -> tuple[Array, Array, Array]:
    """The pieces of the n-step return `G_{t:t+n}` for the update of `S_t`.

    With `e = min(t + n, end_limit)`: `window_prod = prod_{j=t}^{e-1} d_j` (0 when a zero
    discount lies inside the window: the return stops at the termination) and
    `reward_sum = sum_{k < e - t} (prod_{j<k} d_{t+j}) r_{t+k} = U[t] - window_prod U[e]`,
    so that `G_{t:t+n} = reward_sum + window_prod * v(S_e)`. Products are `exp` of summed
    logs (exact for discounts 0 and 1).

    Args:
      prefix: `n_step_prefix(r_t, discount_t)`.
      t: step indices, int, any shape.
      n: int `>= 1`, shape `[]`.
      end_limit: no window reaches past this step (the episode's length or `T`), int `[]`.

    Returns:
      `(reward_sum, window_prod, end)`, each shaped like `t`.
    """
    u, log_prefix, zero_prefix = prefix
    end = jnp.minimum(t + n, end_limit)
    window_prod = jnp.where(zero_prefix[end] - zero_prefix[t] > 0, 0.0,
                            jnp.exp(log_prefix[end] - log_prefix[t])).astype(u.dtype)
    return u[t] - window_prod * u[end], window_prod, end


def n_step_td_step(w: Array, x: Array, x_boot: Array, reward_sum: Array, window_prod: Array,
                   alpha: Numeric) -> Array:
    """One n-step semi-gradient TD update of a linear `v = w.x`.

    `w + alpha (reward_sum + window_prod w.x_boot - w.x) x`, the pieces from `n_step_window`.

    Args:
      w: weights `[F]`; x: features of `S_t` `[F]`; x_boot: features of `S_e` `[F]`;
        reward_sum, window_prod: `[]`; alpha: step size `[]`.

    Returns:
      The new weights `[F]`.
    """
    target = reward_sum + window_prod * jnp.dot(w, x_boot)
    return w + alpha * (target - jnp.dot(w, x)) * x


def run_episode_n_step_td(
    w: Array,
    xs: Array,
    r_t: Array,
    discount_t: Array,
    alpha: Numeric,
    n: Numeric,
    length: Numeric | None = None,
) -> Array:
    """n-step semi-gradient TD (S&B Section 7.1 / 9.4, Figure 7.2 protocol) for linear `v`.

    Updates are applied online in time order: the update of `S_tau` happens at time
    `tau + n - 1` with the weights current then (those after the updates of `0 .. tau-1`):
    `w <- w + alpha (G_{tau:tau+n} - w.x_tau) x_tau`, with
    `G_{tau:tau+n} = sum_{k<n} (prod_{j<k} d_{tau+j}) r_{tau+k}`
    `                + (prod_{j<n} d_{tau+j}) w.x_{tau+n}`
    cut at the episode end (no bootstrap past a termination; an episode cut at `length`
    without termination bootstraps from `xs[length]`).

    `n` is an ordinary (traceable) integer, so one compiled function serves every `n` and
    vmaps over it. The reward sums and discount products come from prefix sums, `O(T F)` per
    episode for any `n`; window discount products are `exp` of summed logs (exact when the
    discounts are 0 or 1, as in the random walks).

    Args:
      w: initial weights, shape `[F]`.
      xs: features of `S_0 .. S_T`, shape `[T + 1, F]`.
      r_t: rewards, shape `[T]`.
      discount_t: discounts, zero at termination, shape `[T]`.
      alpha: step size, shape `[]`.
      n: number of steps, an int `>= 1`, shape `[]`.
      length: number of real steps (int, shape `[]`) of a padded episode; None uses all `T`.

    Returns:
      The weights at the end of the episode, shape `[F]`.
    """
    fn = "run_episode_n_step_td"
    length = _check_episode(fn, w, xs, r_t, discount_t, length, alpha=alpha)
    _checks.assert_inputs(fn, n=(n, 0, int))
    if isinstance(n, int) and n < 1:
        raise ValueError(f"{fn}: argument `n` must be >= 1, got {n}")
    steps = jnp.arange(r_t.shape[0])
    valid = steps < length
    r = jnp.where(valid, r_t, 0.0)
    d = jnp.where(valid, discount_t, 1.0)  # Past the end: no reward, product unchanged.
    reward_sum, window_prod, end = n_step_window(n_step_prefix(r, d), steps, n, length)

    def forward(w, inputs):
        tau, x, rs, prod, xb = inputs
        w_new = n_step_td_step(w, x, xb, rs, prod, alpha)
        return jnp.where(tau < length, w_new, w), None

    w, _ = jax.lax.scan(forward, w, (steps, xs[:-1], reward_sum, window_prod, xs[end]))
    return w
