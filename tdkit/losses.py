"""Elementwise losses on TD errors (rlax's `l2_loss` and `huber_loss`), and `td_loss`, the loss
of a value function on ONE transition."""

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks, policies, td, values

Array = chex.Array


def l2_loss(predictions: Array, targets: Array | None = None) -> Array:
    """`0.5 * (predictions - targets) ** 2`, elementwise; `targets` default to zero.

    Pass a TD error as `predictions` to get the semi-gradient TD loss whose negative gradient
    is `delta * grad v`.

    Args:
      predictions: float array of any shape `[...]`.
      targets: float array of the same shape, or None.

    Returns:
      The elementwise loss, shape `[...]`.
    """
    _checks.assert_inputs("l2_loss", predictions=(predictions, set(range(32)), float))
    if targets is None:
        targets = jnp.zeros_like(predictions)
    else:
        _checks.assert_inputs("l2_loss", targets=(targets, set(range(32)), float))
        _checks.assert_same_shape("l2_loss", predictions=predictions, targets=targets)
    return 0.5 * (predictions - targets) ** 2


def huber_loss(x: Array, delta: float = 1.0) -> Array:
    """Huber loss: quadratic for `|x| <= delta`, linear (slope `delta`) beyond.

    `0.5 * min(|x|, delta)^2 + delta * (|x| - min(|x|, delta))`; its gradient is `x` clipped
    to `[-delta, delta]`.

    Args:
      x: float array of any shape `[...]` (typically TD errors).
      delta: the threshold, > 0.

    Returns:
      The elementwise loss, shape `[...]`.
    """
    _checks.assert_inputs("huber_loss", x=(x, set(range(32)), float))
    if isinstance(delta, (int, float)) and delta <= 0:
        raise ValueError(f"huber_loss: argument `delta` must be > 0, got {delta!r}")
    abs_x = jnp.abs(x)
    quadratic = jnp.minimum(abs_x, delta)
    linear = abs_x - quadratic
    return 0.5 * quadratic**2 + delta * linear


_RULES = {
    "td_learning": td.td_learning,
    "q_learning": td.q_learning,
    "double_q_learning": td.double_q_learning,
    "sarsa": td.sarsa,
    "expected_sarsa": td.expected_sarsa,
}
_TD_LOSS_ATTR = "_tdkit_td_loss_has_aux"


def is_td_loss(fn: Callable[..., Any]) -> bool:
    """Whether `fn` is a loss returned by `td_loss` (used by `tdkit.grads` for defaults)."""
    return hasattr(fn, _TD_LOSS_ATTR)


def td_loss_has_aux(fn: Callable[..., Any]) -> bool:
    """Whether `fn`, a loss returned by `td_loss`, returns `(loss, td_error)`."""
    return bool(getattr(fn, _TD_LOSS_ATTR))


def td_loss(
    value_fn: values.ValueFn,
    rule: str | Callable[..., Any] = "q_learning",
    loss: str = "l2",
    *,
    huber_delta: float = 1.0,
    epsilon: float | None = None,
    stop_target_gradients: bool = True,
    has_aux: bool = False,
) -> Callable[..., Any]:
    """The TD loss of `value_fn` on ONE transition, `loss(params, target_params, transition)`.

    The TD error `delta` of `rule` is computed from `q_tm1 = value_fn.apply(params, obs_tm1)`
    and target values `q_t = value_fn.apply(target_params, obs_t)`; the loss is
    `weight * 0.5 * delta ** 2` (`"l2"`) or `weight * huber_loss(delta, huber_delta)`
    (`"huber"`). Its negative gradient w.r.t. `params` is the semi-gradient TD update
    (`delta * grad q_tm1[a_tm1]` for l2). `target_params` are never differentiated through
    unless `stop_target_gradients=False`. Batches and per-example gradients come from vmap:

        loss = td_loss(value_fn, "q_learning", "huber")
        grads = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, None, 0)))(
            params, target_params, batch)                 # one gradient per transition
        # with importance weights [B]: in_axes=(None, None, 0, 0), (..., batch, weights)

    Rules (`rule` is a name or the `tdkit` function itself):

    - `"td_learning"`: state values; `r_t + discount_t * v_t - v_tm1`.
    - `"q_learning"`: `r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]`.
    - `"double_q_learning"` (Double DQN): the action is selected by `params` at `obs_t` and
      evaluated by `target_params`.
    - `"sarsa"`: bootstraps from `q_t[a_t]`; `transition` needs an `a_t` field
      (`tdkit.types.SarsaTransition`).
    - `"expected_sarsa"`: bootstraps from the epsilon-greedy expectation over `q_t`
      (`tdkit.policies.epsilon_greedy_probs(q_t, epsilon)`: ties share the greedy mass);
      needs `epsilon`.

    Args:
      value_fn: a `ValueFn`; `apply` must return `[]` for `"td_learning"`, `[A]` otherwise.
      rule: the TD rule, one of the names above (or `tdkit.q_learning`, ...).
      loss: `"l2"` or `"huber"`.
      huber_delta: the Huber threshold, > 0 (used with `loss="huber"`).
      epsilon: exploration rate in `[0, 1]` of the target policy, for `"expected_sarsa"` only.
      stop_target_gradients: wrap the bootstrapped target in `stop_gradient` (default).
      has_aux: return `(loss, td_error)` instead of the loss alone, for
        `jax.value_and_grad(loss, has_aux=True)` (the TD error gives replay priorities).

    Returns:
      `loss(params, target_params, transition, weight=None) -> []` (or `([], [])` with
      `has_aux`), where `transition` is ONE `tdkit.Transition` (`obs_tm1, obs_t: [O...]`,
      `a_tm1: []` int, `r_t, discount_t: []` float) and `weight` an optional importance
      weight `[]` float. For `tabular`, `linear` and `mlp` value functions the returned loss
      also carries a `tdkit.values.PerExampleStructure`, which `tdkit.grads` uses for its
      layerwise per-example norms and clipped means.
    """
    if callable(rule):
        names = [name for name, fn in _RULES.items() if fn is rule]
        if not names:
            raise ValueError(
                f"td_loss: argument `rule` must be one of {sorted(_RULES)} or the tdkit "
                f"function of that name, got {rule!r}")
        rule = names[0]
    if rule not in _RULES:
        raise ValueError(f"td_loss: argument `rule` must be one of {sorted(_RULES)}, got {rule!r}")
    if loss not in ("l2", "huber"):
        raise ValueError(f"td_loss: argument `loss` must be 'l2' or 'huber', got {loss!r}")
    if not (isinstance(huber_delta, (int, float)) and huber_delta > 0):
        raise ValueError(f"td_loss: argument `huber_delta` must be > 0, got {huber_delta!r}")
    if rule == "expected_sarsa":
        if not (isinstance(epsilon, (int, float)) and 0.0 <= epsilon <= 1.0):
            raise ValueError(
                "td_loss: rule 'expected_sarsa' needs argument `epsilon`, a number in [0, 1], "
                f"got {epsilon!r}")
    elif epsilon is not None:
        raise ValueError(
            f"td_loss: argument `epsilon` is only used by rule 'expected_sarsa', not {rule!r}")
    if not isinstance(value_fn, values.ValueFn):
        raise TypeError(
            f"td_loss: argument `value_fn` must be a tdkit.values.ValueFn, got "
            f"{type(value_fn).__name__}")
    apply = value_fn.apply
    state_values = rule == "td_learning"

    def check_inputs(transition: Any, weight: Any) -> None:
        for field in ("obs_tm1", "a_tm1", "r_t", "discount_t", "obs_t"):
            if not hasattr(transition, field):
                raise TypeError(
                    f"td_loss: argument `transition` must have a `{field}` field "
                    f"(a tdkit.Transition), got {type(transition).__name__}")
        if rule == "sarsa" and not hasattr(transition, "a_t"):
            raise TypeError(
                "td_loss: rule 'sarsa' needs `transition.a_t` (use tdkit.types.SarsaTransition), "
                f"got {type(transition).__name__}")
        for field in ("r_t", "discount_t", "a_tm1") + (("a_t",) if rule == "sarsa" else ()):
            shape = jnp.shape(getattr(transition, field))
            if shape != ():
                raise AssertionError(
                    f"[Chex] td_loss: argument `transition` must be ONE transition "
                    f"(`transition.{field}` of shape ()), got `transition.{field}` of shape "
                    f"{shape}; use jax.vmap for a batch")
        _checks.assert_inputs(
            "td_loss", **{"transition.r_t": (transition.r_t, 0, float),
                          "transition.discount_t": (transition.discount_t, 0, float)})
        if weight is not None:
            _checks.assert_inputs("td_loss", weight=(weight, 0, float))

    def check_values(name: str, q: Array) -> None:
        if state_values and jnp.ndim(q) != 0:
            raise AssertionError(
                f"[Chex] td_loss: rule 'td_learning' needs a state-value function, but "
                f"`value_fn.apply` returned {name} of shape {jnp.shape(q)} (expected ())")
        if not state_values and jnp.ndim(q) != 1:
            raise AssertionError(
                f"[Chex] td_loss: rule {rule!r} needs action values, but `value_fn.apply` "
                f"returned {name} of shape {jnp.shape(q)} (expected [A])")

    def from_q_tm1(q_tm1, params, target_params, transition, weight):
        """(loss, td_error) given the prediction `q_tm1` computed from `params`."""
        check_values("q_tm1", q_tm1)
        t = transition
        q_t = apply(target_params, t.obs_t)
        check_values("q_t", q_t)
        stop = stop_target_gradients
        if rule == "td_learning":
            delta = td.td_learning(q_tm1, t.r_t, t.discount_t, q_t, stop)
        elif rule == "q_learning":
            delta = td.q_learning(q_tm1, t.a_tm1, t.r_t, t.discount_t, q_t, stop)
        elif rule == "double_q_learning":
            # argmax has a zero derivative: the selector never carries gradient.
            q_t_selector = jax.lax.stop_gradient(apply(params, t.obs_t))
            delta = td.double_q_learning(
                q_tm1, t.a_tm1, t.r_t, t.discount_t, q_t, q_t_selector, stop)
        elif rule == "sarsa":
            delta = td.sarsa(q_tm1, t.a_tm1, t.r_t, t.discount_t, q_t, t.a_t, stop)
        else:
            probs = td.maybe_stop_gradient(policies.epsilon_greedy_probs(q_t, epsilon), stop)
            delta = td.expected_sarsa(q_tm1, t.a_tm1, t.r_t, t.discount_t, q_t, probs, stop)
        per_example = l2_loss(delta) if loss == "l2" else huber_loss(delta, huber_delta)
        if weight is not None:
            per_example = weight * per_example
        return per_example, delta

    def td_loss_fn(params, target_params, transition, weight=None):
        check_inputs(transition, weight)
        q_tm1 = apply(params, transition.obs_tm1)
        out = from_q_tm1(q_tm1, params, target_params, transition, weight)
        return out if has_aux else out[0]

    setattr(td_loss_fn, _TD_LOSS_ATTR, has_aux)
    structure = values.per_example_structure(apply)
    if structure is not None:

        def tapped(params, taps, target_params, transition, weight=None):
            check_inputs(transition, weight)
            q_tm1, saved = structure.tapped(params, taps, transition.obs_tm1)
            return from_q_tm1(q_tm1, params, target_params, transition, weight)[0], saved

        values.attach_per_example_structure(td_loss_fn, structure._replace(tapped=tapped))
    return td_loss_fn
