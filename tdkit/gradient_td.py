"""Off-policy semi-gradient TD(0) and the gradient-TD family: GTD2, TDC, TDRC.

Each method comes twice:

- a LINEAR update for ONE transition on feature vectors (`x_tm1`, `x_t`, shape `[F]`);
- a LOSS form for any value function `v_fn(params, obs) -> []`, whose gradient (with respect
  to `params` and the auxiliary `h_params`) is minus the step direction. In the linear case,
  `params - alpha * grad` is exactly the linear update; with a network it is the natural
  nonlinear generalisation (gradient_td.md).

Notation (S&B chapter 11): `delta = r_t + discount_t * w.x_t - w.x_tm1`;
`rho_tm1 = pi(a_tm1 | s_tm1) / b(a_tm1 | s_tm1)`; `alpha` the main step size; `beta` the
auxiliary step size (book naming); `h` the auxiliary weights; `discount_t` is
`gamma * (1 - terminated_t)`, so `x_t` needs no zeroing at termination.

| method | main update | auxiliary update |
|---|---|---|
| off-policy TD(0) | `w += alpha rho delta x` | |
| GTD2 | `w += alpha rho (x - gamma x') (x.h)` | `h += beta rho (delta - h.x) x` |
| TDC | `w += alpha rho (delta x - gamma x' (x.h))` | `h += beta rho (delta - h.x) x` |
| TDRC | as TDC | `h += eta alpha [(rho delta - h.x) x - beta_reg h]` |

TDC and GTD2 put `rho` on BOTH terms of the auxiliary update, as S&B Section 11.7 does
(some public code puts it on `delta` only: the same fixed point, different sample paths).
TDRC follows Ghiassian, Patterson et al. (2020): `rho` on `delta` only, plus the
regulariser; with `beta_reg = 0` and `rho = 1` it is TDC with `beta = eta * alpha`.
Note `beta` is the auxiliary step size in TDC/GTD2 but `beta_reg` is the regulariser in TDRC.

All functions are pure, jittable and vmappable; step sizes may be traced arrays.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks
from tdkit.td import maybe_stop_gradient

Array = chex.Array
Numeric = chex.Numeric
ValueFn = Callable[[Any, Any], Array]


class GTDState(NamedTuple):
    """Weights of a gradient-TD method.

    Attributes:
      w: main weights, shape `[F]` (or any params pytree for the loss forms).
      h: auxiliary weights (the book's `v`), same shape as `w`; start at zero.
    """

    w: Any
    h: Any


def gtd_init(w: Array) -> GTDState:
    """`GTDState(w, zeros_like(w))`: auxiliary weights start at zero. Works on pytrees."""
    return GTDState(w, jax.tree.map(jnp.zeros_like, w))


def _check_linear(fn: str, w: Array, x_tm1: Array, r_t: Numeric, discount_t: Numeric,
                  x_t: Array, rho_tm1: Numeric, **scalars: Numeric) -> None:
    _checks.assert_inputs(
        fn, w=(w, 1, float), x_tm1=(x_tm1, 1, float), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), x_t=(x_t, 1, float), rho_tm1=(rho_tm1, 0, float),
        **{k: (v, 0, float) for k, v in scalars.items()})
    _checks.assert_same_shape(fn, w=w, x_tm1=x_tm1, x_t=x_t)


def _td_error(w: Array, x_tm1: Array, r_t: Numeric, discount_t: Numeric, x_t: Array) -> Array:
    return r_t + discount_t * jnp.dot(w, x_t) - jnp.dot(w, x_tm1)


def off_policy_td_update(
    w: Array,
    x_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    x_t: Array,
    rho_tm1: Numeric,
    alpha: Numeric,
) -> Array:
    """Off-policy semi-gradient TD(0) (S&B (11.2)): `w += alpha rho delta x_tm1`.

    Args:
      w: weights, shape `[F]`.
      x_tm1: features of the source state, shape `[F]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      x_t: features of the destination state, shape `[F]`.
      rho_tm1: importance ratio of the action taken, shape `[]` (1 on-policy).
      alpha: step size, shape `[]`.

    Returns:
      The new weights, shape `[F]`.
    """
    _check_linear("off_policy_td_update", w, x_tm1, r_t, discount_t, x_t, rho_tm1, alpha=alpha)
    delta = _td_error(w, x_tm1, r_t, discount_t, x_t)
    return w + alpha * rho_tm1 * delta * x_tm1


def tdc_update(
    state: GTDState,
    x_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    x_t: Array,
    rho_tm1: Numeric,
    alpha: Numeric,
    beta: Numeric,
) -> GTDState:
    """TDC / GTD(0) (Sutton et al. 2009; S&B Section 11.7), both from the old `(w, h)`:

    `w += alpha rho (delta x_tm1 - discount_t x_t (x_tm1 . h))`,
    `h += beta rho (delta - h . x_tm1) x_tm1`   (rho on both terms, as the book).

    Args:
      state: `GTDState(w [F], h [F])`.
      x_tm1: features of the source state, shape `[F]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      x_t: features of the destination state, shape `[F]`.
      rho_tm1: importance ratio, shape `[]`.
      alpha: main step size, shape `[]`.
      beta: auxiliary step size, shape `[]`.

    Returns:
      The new `GTDState`.
    """
    w, h = state
    fn = "tdc_update"
    _check_linear(fn, w, x_tm1, r_t, discount_t, x_t, rho_tm1, alpha=alpha, beta=beta)
    _checks.assert_same_shape(fn, w=w, h=h)
    delta = _td_error(w, x_tm1, r_t, discount_t, x_t)
    delta_hat = jnp.dot(h, x_tm1)
    w = w + alpha * rho_tm1 * (delta * x_tm1 - discount_t * delta_hat * x_t)
    h = h + beta * rho_tm1 * (delta - delta_hat) * x_tm1
    return GTDState(w, h)


def gtd2_update(
    state: GTDState,
    x_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    x_t: Array,
    rho_tm1: Numeric,
    alpha: Numeric,
    beta: Numeric,
) -> GTDState:
    """GTD2 (Sutton et al. 2009; S&B (11.29)), both from the old `(w, h)`:

    `w += alpha rho (x_tm1 - discount_t x_t) (x_tm1 . h)`,
    `h += beta rho (delta - h . x_tm1) x_tm1`.

    Same arguments and return as `tdc_update`.
    """
    w, h = state
    fn = "gtd2_update"
    _check_linear(fn, w, x_tm1, r_t, discount_t, x_t, rho_tm1, alpha=alpha, beta=beta)
    _checks.assert_same_shape(fn, w=w, h=h)
    delta = _td_error(w, x_tm1, r_t, discount_t, x_t)
    delta_hat = jnp.dot(h, x_tm1)
    w = w + alpha * rho_tm1 * delta_hat * (x_tm1 - discount_t * x_t)
    h = h + beta * rho_tm1 * (delta - delta_hat) * x_tm1
    return GTDState(w, h)


def tdrc_update(
    state: GTDState,
    x_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    x_t: Array,
    rho_tm1: Numeric,
    alpha: Numeric,
    eta: Numeric = 1.0,
    beta_reg: Numeric = 1.0,
) -> GTDState:
    """TDRC (Ghiassian, Patterson, Garg, Gupta, White & White 2020), from the old `(w, h)`:

    `w += alpha rho (delta x_tm1 - discount_t x_t (x_tm1 . h))`   (as TDC),
    `h += eta alpha [(rho delta - h . x_tm1) x_tm1 - beta_reg h]`.

    Args:
      state: `GTDState(w [F], h [F])`.
      x_tm1: features of the source state, shape `[F]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      x_t: features of the destination state, shape `[F]`.
      rho_tm1: importance ratio, shape `[]`.
      alpha: main step size, shape `[]`.
      eta: auxiliary step-size multiplier (aux step `eta * alpha`), shape `[]`; paper default 1.
      beta_reg: regularisation of `h`, shape `[]`; paper default 1. (The paper calls it beta.)

    Returns:
      The new `GTDState`.
    """
    w, h = state
    fn = "tdrc_update"
    _check_linear(fn, w, x_tm1, r_t, discount_t, x_t, rho_tm1, alpha=alpha, eta=eta,
                  beta_reg=beta_reg)
    _checks.assert_same_shape(fn, w=w, h=h)
    delta = _td_error(w, x_tm1, r_t, discount_t, x_t)
    delta_hat = jnp.dot(h, x_tm1)
    w = w + alpha * rho_tm1 * (delta * x_tm1 - discount_t * delta_hat * x_t)
    h = h + eta * alpha * ((rho_tm1 * delta - delta_hat) * x_tm1 - beta_reg * h)
    return GTDState(w, h)


# ----------------------------------------------------------------------------------------
# Loss forms: any value function v_fn(params, obs) -> [].


def _check_scalars(fn: str, **scalars: Numeric) -> None:
    _checks.assert_inputs(fn, **{k: (v, 0, float) for k, v in scalars.items()})


def _value(fn: str, v_fn: ValueFn, params: Any, obs: Any, name: str) -> Array:
    v = v_fn(params, obs)
    _checks.assert_inputs(fn, **{name: (v, 0, float)})
    return v


def td_loss(
    v_fn: ValueFn,
    params: Any,
    obs_tm1: Any,
    r_t: Numeric,
    discount_t: Numeric,
    obs_t: Any,
    rho_tm1: Numeric = 1.0,
    stop_target_gradients: bool = True,
) -> Array:
    """Semi-gradient (off-policy) TD(0) loss for any `v_fn`:

    `0.5 rho (sg(r_t + discount_t v(obs_t)) - v(obs_tm1))^2`.

    `-grad_params = rho delta grad v(obs_tm1)`; with `v = w . x`, `w - alpha grad` is
    `off_policy_td_update`.

    Args:
      v_fn: value function `v_fn(params, obs) -> []`.
      params: its parameters (any pytree).
      obs_tm1: source observation (whatever `v_fn` takes, e.g. features `[F]`).
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      obs_t: destination observation.
      rho_tm1: importance ratio, shape `[]`.
      stop_target_gradients: wrap the target in `stop_gradient` (False: residual gradient).

    Returns:
      The scalar loss.
    """
    fn = "td_loss"
    _check_scalars(fn, r_t=r_t, discount_t=discount_t, rho_tm1=rho_tm1)
    v_tm1 = _value(fn, v_fn, params, obs_tm1, "v_fn(params, obs_tm1)")
    v_t = _value(fn, v_fn, params, obs_t, "v_fn(params, obs_t)")
    target = maybe_stop_gradient(r_t + discount_t * v_t, stop_target_gradients)
    return 0.5 * rho_tm1 * (target - v_tm1) ** 2


def _aux_value(fn: str, v_fn: ValueFn, h_fn: ValueFn | None, h_params: Any, obs_tm1: Any):
    return _value(fn, v_fn if h_fn is None else h_fn, h_params, obs_tm1,
                  "h_fn(h_params, obs_tm1)")


def tdc_loss(
    v_fn: ValueFn,
    params: Any,
    h_params: Any,
    obs_tm1: Any,
    r_t: Numeric,
    discount_t: Numeric,
    obs_t: Any,
    rho_tm1: Numeric = 1.0,
    h_fn: ValueFn | None = None,
) -> Array:
    """TDC loss for `(params, h_params)`; minimise with steps `alpha` (params), `beta` (h).

    With `delta = r_t + discount_t v(obs_t) - v(obs_tm1)`, `delta_hat = h_fn(h_params, obs_tm1)`:

    `0.5 rho (sg(r_t + discount_t v(obs_t)) - v(obs_tm1))^2 + rho discount_t sg(delta_hat) v(obs_t)`
    `+ 0.5 rho (sg(delta) - delta_hat)^2`.

    The stop-gradients make the first line depend on `params` only and the second on
    `h_params` only, so `jax.grad(tdc_loss, argnums=(1, 2))` gives `(g_w, g_h)` with
    `-g_w = rho (delta grad v(obs_tm1) - discount_t delta_hat grad v(obs_t))` and
    `-g_h = rho (delta - delta_hat) grad h_fn`. Linear `v = w.x`, `h_fn = h.x`:
    `(w - alpha g_w, h - beta g_h)` is exactly `tdc_update`.

    Args:
      v_fn: value function `v_fn(params, obs) -> []`.
      params: its parameters (any pytree).
      h_params: auxiliary parameters (for `h_fn`, or for `v_fn` when `h_fn` is None).
      obs_tm1: source observation.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      obs_t: destination observation.
      rho_tm1: importance ratio, shape `[]`.
      h_fn: auxiliary predictor `h_fn(h_params, obs) -> []` of the expected TD error;
        None uses `v_fn` (same architecture, separate parameters).

    Returns:
      The scalar loss.
    """
    fn = "tdc_loss"
    _check_scalars(fn, r_t=r_t, discount_t=discount_t, rho_tm1=rho_tm1)
    v_tm1 = _value(fn, v_fn, params, obs_tm1, "v_fn(params, obs_tm1)")
    v_t = _value(fn, v_fn, params, obs_t, "v_fn(params, obs_t)")
    delta_hat = _aux_value(fn, v_fn, h_fn, h_params, obs_tm1)
    sg = jax.lax.stop_gradient
    target = sg(r_t + discount_t * v_t)
    delta = sg(r_t + discount_t * v_t - v_tm1)
    loss_w = 0.5 * rho_tm1 * (target - v_tm1) ** 2 + rho_tm1 * discount_t * sg(delta_hat) * v_t
    loss_h = 0.5 * rho_tm1 * (delta - delta_hat) ** 2
    return loss_w + loss_h


def gtd2_loss(
    v_fn: ValueFn,
    params: Any,
    h_params: Any,
    obs_tm1: Any,
    r_t: Numeric,
    discount_t: Numeric,
    obs_t: Any,
    rho_tm1: Numeric = 1.0,
    h_fn: ValueFn | None = None,
) -> Array:
    """GTD2 loss for `(params, h_params)`; minimise with steps `alpha` (params), `beta` (h).

    `rho sg(delta_hat) delta(params) + 0.5 rho (sg(delta) - delta_hat)^2`, where `delta(params)`
    keeps its gradient through BOTH values. `-g_w = rho delta_hat (grad v(obs_tm1) -
    discount_t grad v(obs_t))`; linear: `(w - alpha g_w, h - beta g_h)` is `gtd2_update`.

    Same arguments as `tdc_loss`; returns the scalar loss.
    """
    fn = "gtd2_loss"
    _check_scalars(fn, r_t=r_t, discount_t=discount_t, rho_tm1=rho_tm1)
    v_tm1 = _value(fn, v_fn, params, obs_tm1, "v_fn(params, obs_tm1)")
    v_t = _value(fn, v_fn, params, obs_t, "v_fn(params, obs_t)")
    delta_hat = _aux_value(fn, v_fn, h_fn, h_params, obs_tm1)
    sg = jax.lax.stop_gradient
    delta_w = r_t + discount_t * v_t - v_tm1
    loss_w = rho_tm1 * sg(delta_hat) * delta_w
    loss_h = 0.5 * rho_tm1 * (sg(delta_w) - delta_hat) ** 2
    return loss_w + loss_h


def tdrc_loss(
    v_fn: ValueFn,
    params: Any,
    h_params: Any,
    obs_tm1: Any,
    r_t: Numeric,
    discount_t: Numeric,
    obs_t: Any,
    rho_tm1: Numeric = 1.0,
    beta_reg: Numeric = 1.0,
    h_fn: ValueFn | None = None,
) -> Array:
    """TDRC loss for `(params, h_params)`; minimise with steps `alpha` (params), `eta alpha` (h).

    The TDC loss for `params`, and `0.5 (sg(rho delta) - delta_hat)^2 + 0.5 beta_reg |h_params|^2`
    for `h_params` (sum of squares over the whole pytree). Linear: `tdrc_update`.

    Same arguments as `tdc_loss`, plus `beta_reg` (shape `[]`); returns the scalar loss.
    """
    fn = "tdrc_loss"
    _check_scalars(fn, r_t=r_t, discount_t=discount_t, rho_tm1=rho_tm1, beta_reg=beta_reg)
    v_tm1 = _value(fn, v_fn, params, obs_tm1, "v_fn(params, obs_tm1)")
    v_t = _value(fn, v_fn, params, obs_t, "v_fn(params, obs_t)")
    delta_hat = _aux_value(fn, v_fn, h_fn, h_params, obs_tm1)
    sg = jax.lax.stop_gradient
    target = sg(r_t + discount_t * v_t)
    delta = sg(r_t + discount_t * v_t - v_tm1)
    loss_w = 0.5 * rho_tm1 * (target - v_tm1) ** 2 + rho_tm1 * discount_t * sg(delta_hat) * v_t
    sq_norm = sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(h_params))
    loss_h = 0.5 * (rho_tm1 * delta - delta_hat) ** 2 + 0.5 * beta_reg * sq_norm
    return loss_w + loss_h
