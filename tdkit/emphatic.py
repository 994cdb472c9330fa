"""Emphatic TD: one-step emphatic TD (S&B Section 11.8) and emphatic TD(lambda)
(Sutton, Mahmood & White 2016; S&B Section 12.11), linear updates and a loss form.

Book equations, with `rho_t = pi(A_t|S_t) / b(A_t|S_t)`, interest `I_t` and `gamma_t` the
discount into `S_t`:

- one-step: `M_t = gamma_t rho_{t-1} M_{t-1} + I_t` (`M_{-1} = 0`),
  `w += alpha M_t rho_t delta_t x_t`;
- ETD(lambda): `F_t = rho_{t-1} gamma_t F_{t-1} + I_t`, `M_t = lambda I_t + (1 - lambda) F_t`,
  `z_t = rho_t (gamma_t lambda z_{t-1} + M_t x_t)`, `w += alpha delta_t z_t`.

Carried state. As in `tdkit.traces`, a step sees one transition `(x_tm1, r_t, discount_t,
x_t, rho_tm1)`, so what is carried to the next step is ALREADY DECAYED by this step's
`discount_t` (and `rho_tm1`): `followon = discount_t rho_tm1 F` and
`trace = discount_t lambda z`. Both are zero after a terminal transition (`discount_t = 0`),
so the next episode starts clean; start from `EmphaticState(0, 0)`. With `lambda_ = 0`,
ETD(lambda) is one-step emphatic TD.
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


class EmphaticState(NamedTuple):
    """State of emphatic TD carried between steps (already decayed; zeros at the start).

    Attributes:
      followon: `discount_t * rho_tm1 * F` from the previous step, shape `[]`: the next step's
        follow-on trace is `followon + interest`.
      trace: `discount_t * lambda * z` from the previous step, shape `[F]` (stays zero for
        one-step emphatic TD).
    """

    followon: Array
    trace: Array


def init_emphatic(w: Array) -> EmphaticState:
    """`EmphaticState(followon = 0 [], trace = 0 [F])` for weights `w [F]`."""
    return EmphaticState(jnp.zeros((), w.dtype), jnp.zeros_like(w))


def emphasis(
    followon: Numeric,
    rho_tm1: Numeric,
    discount_t: Numeric,
    interest_tm1: Numeric = 1.0,
    lambda_: Numeric = 0.0,
) -> tuple[Array, Array]:
    """Emphasis of the current step and the follow-on to carry (for the loss form).

    `F = followon + interest_tm1`, `M = lambda_ interest_tm1 + (1 - lambda_) F`, and the carried
    follow-on `discount_t * rho_tm1 * F`. With `lambda_ = 0`, `M = F` (one-step emphatic TD).

    Args:
      followon: carried follow-on from the previous step (0 at the start), shape `[]`.
      rho_tm1: importance ratio of this step's action, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)` of this transition, shape `[]`.
      interest_tm1: interest in the source state, shape `[]`.
      lambda_: trace-decay parameter, shape `[]`.

    Returns:
      `(M, followon)`: the emphasis `[]` and the follow-on for the next step `[]`.
    """
    _checks.assert_inputs(
        "emphasis", followon=(followon, 0, float), rho_tm1=(rho_tm1, 0, float),
        discount_t=(discount_t, 0, float), interest_tm1=(interest_tm1, 0, float),
        lambda_=(lambda_, 0, float))
    f = followon + interest_tm1
    m = lambda_ * interest_tm1 + (1.0 - lambda_) * f
    return m, discount_t * rho_tm1 * f


def _check_linear(fn, w, x_tm1, r_t, discount_t, x_t, **scalars) -> None:
    _checks.assert_inputs(
        fn, w=(w, 1, float), x_tm1=(x_tm1, 1, float), r_t=(r_t, 0, float),
        discount_t=(discount_t, 0, float), x_t=(x_t, 1, float),
        **{k: (v, 0, float) for k, v in scalars.items()})
    _checks.assert_same_shape(fn, w=w, x_tm1=x_tm1, x_t=x_t)


def emphatic_td_update(
    w: Array,
    followon: Numeric,
    x_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    x_t: Array,
    rho_tm1: Numeric,
    alpha: Numeric,
    interest_tm1: Numeric = 1.0,
) -> tuple[Array, Array]:
    """One-step emphatic TD (S&B (11.8)) for one transition:

    `M = followon + interest_tm1`, `w <- w + alpha M rho_tm1 delta x_tm1`, and the follow-on
    carried on is `discount_t * rho_tm1 * M`.

    Args:
      w: weights, shape `[F]`.
      followon: carried follow-on (0 at the start), shape `[]`.
      x_tm1: features of the source state, shape `[F]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      x_t: features of the destination state, shape `[F]`.
      rho_tm1: importance ratio, shape `[]`.
      alpha: step size, shape `[]`.
      interest_tm1: interest in the source state, shape `[]`.

    Returns:
      `(w, followon)`: new weights `[F]` and the follow-on for the next step `[]`.
    """
    fn = "emphatic_td_update"
    _check_linear(fn, w, x_tm1, r_t, discount_t, x_t, followon=followon, rho_tm1=rho_tm1,
                  alpha=alpha, interest_tm1=interest_tm1)
    m, followon = emphasis(followon, rho_tm1, discount_t, interest_tm1)
    delta = r_t + discount_t * jnp.dot(w, x_t) - jnp.dot(w, x_tm1)
    return w + alpha * m * rho_tm1 * delta * x_tm1, followon


def emphatic_td_lambda_update(
    w: Array,
    state: EmphaticState,
    x_tm1: Array,
    r_t: Numeric,
    discount_t: Numeric,
    x_t: Array,
    rho_tm1: Numeric,
    alpha: Numeric,
    lambda_: Numeric,
    interest_tm1: Numeric = 1.0,
) -> tuple[Array, EmphaticState]:
    """Emphatic TD(lambda) (S&B Section 12.11) for one transition:

    `F = followon + I`, `M = lambda I + (1 - lambda) F`, `z_t = rho_tm1 (trace + M x_tm1)`,
    `w <- w + alpha delta z_t`; carried on: `followon = discount_t rho_tm1 F`,
    `trace = discount_t lambda z_t`.

    Args:
      w: weights, shape `[F]`.
      state: `EmphaticState(followon [], trace [F])` (`init_emphatic` at the start).
      x_tm1: features of the source state, shape `[F]`.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      x_t: features of the destination state, shape `[F]`.
      rho_tm1: importance ratio, shape `[]`.
      alpha: step size, shape `[]`.
      lambda_: trace-decay parameter, shape `[]`.
      interest_tm1: interest `I` in the source state, shape `[]`.

    Returns:
      `(w, state)`: new weights `[F]` and the `EmphaticState` for the next step.
    """
    fn = "emphatic_td_lambda_update"
    followon, trace = state
    _check_linear(fn, w, x_tm1, r_t, discount_t, x_t, followon=followon, rho_tm1=rho_tm1,
                  alpha=alpha, lambda_=lambda_, interest_tm1=interest_tm1)
    _checks.assert_same_shape(fn, w=w, trace=trace)
    m, followon = emphasis(followon, rho_tm1, discount_t, interest_tm1, lambda_)
    z = rho_tm1 * (trace + m * x_tm1)
    delta = r_t + discount_t * jnp.dot(w, x_t) - jnp.dot(w, x_tm1)
    w = w + alpha * delta * z
    return w, EmphaticState(followon, discount_t * lambda_ * z)


def emphatic_td_loss(
    v_fn: ValueFn,
    params: Any,
    obs_tm1: Any,
    r_t: Numeric,
    discount_t: Numeric,
    obs_t: Any,
    rho_tm1: Numeric,
    emphasis_tm1: Numeric,
    stop_target_gradients: bool = True,
) -> Array:
    """One-step emphatic TD loss `0.5 sg(M) rho (sg(r_t + discount_t v(obs_t)) - v(obs_tm1))^2`.

    `M` comes from `emphasis(followon, rho_tm1, discount_t)`, carried across steps by the
    caller. `-grad = M rho delta grad v(obs_tm1)`; linear: `params - alpha grad` is
    `emphatic_td_update`.

    Args:
      v_fn: value function `v_fn(params, obs) -> []`.
      params: its parameters (any pytree).
      obs_tm1: source observation.
      r_t: reward, shape `[]`.
      discount_t: `gamma * (1 - terminated_t)`, shape `[]`.
      obs_t: destination observation.
      rho_tm1: importance ratio, shape `[]`.
      emphasis_tm1: the emphasis `M` of this step, shape `[]` (always under stop_gradient).
      stop_target_gradients: wrap the target in `stop_gradient`.

    Returns:
      The scalar loss.
    """
    fn = "emphatic_td_loss"
    _checks.assert_inputs(
        fn, r_t=(r_t, 0, float), discount_t=(discount_t, 0, float), rho_tm1=(rho_tm1, 0, float),
        emphasis_tm1=(emphasis_tm1, 0, float))
    v_tm1 = v_fn(params, obs_tm1)
    v_t = v_fn(params, obs_t)
    _checks.assert_inputs(fn, **{"v_fn(params, obs)": (v_tm1, 0, float)})
    target = maybe_stop_gradient(r_t + discount_t * v_t, stop_target_gradients)
    return 0.5 * jax.lax.stop_gradient(emphasis_tm1) * rho_tm1 * (target - v_tm1) ** 2
