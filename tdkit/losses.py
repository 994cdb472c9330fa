"""Elementwise losses on TD errors and predictions (rlax's `l2_loss`, `huber_loss`,
`expectile_loss`, `likelihood`, `log_loss`), and `td_loss`, the loss of a value function on ONE
transition under any target rule (`TDRule`)."""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

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


def expectile_loss(predictions: Array, targets: Array, expectile: float) -> Array:
    """Expectile (asymmetric least-squares) loss, elementwise (IQL, Kostrikov et al. 2021):

    `|expectile - 1[targets - predictions < 0]| * (targets - predictions) ** 2`.

    Under-predictions (`targets > predictions`) weigh `expectile`, over-predictions
    `1 - expectile`; `expectile = 0.5` is half the squared error, and `expectile -> 1` drives
    the minimiser towards the maximum of the targets. No `0.5` factor, as in rlax.

    Args:
      predictions: float array of any shape `[...]`.
      targets: float array of the same shape (wrap it in `jax.lax.stop_gradient` if it is a
        bootstrapped target).
      expectile: the weight of under-predictions, in `[0, 1]`.

    Returns:
      The elementwise loss, shape `[...]`.
    """
    fn = "expectile_loss"
    _checks.assert_inputs(fn, predictions=(predictions, set(range(32)), float),
                          targets=(targets, set(range(32)), float))
    _checks.assert_same_shape(fn, predictions=predictions, targets=targets)
    if isinstance(expectile, (int, float)) and not 0.0 <= expectile <= 1.0:
        raise ValueError(f"{fn}: argument `expectile` must be in [0, 1], got {expectile!r}")
    diff = targets - predictions
    weight = jnp.abs(expectile - (diff < 0).astype(diff.dtype))
    return weight * diff**2


def likelihood(predictions: Array, targets: Array) -> Array:
    """Bernoulli likelihood, elementwise: `predictions ** targets * (1 - predictions) **
    (1 - targets)`, with `0 ** 0 = 1` where `targets == predictions` is 0 or 1 (as in rlax).

    Args:
      predictions: probabilities in `[0, 1]`, float, shape `[...]`.
      targets: probabilities in `[0, 1]` (often 0 or 1), float, the same shape.

    Returns:
      The elementwise likelihood, shape `[...]`.
    """
    fn = "likelihood"
    _checks.assert_inputs(fn, predictions=(predictions, set(range(32)), float),
                          targets=(targets, set(range(32)), float))
    _checks.assert_same_shape(fn, predictions=predictions, targets=targets)
    values = predictions**targets * (1.0 - predictions) ** (1.0 - targets)
    exact = ((targets == 1) & (predictions == 1)) | ((targets == 0) & (predictions == 0))
    return jnp.where(exact, jnp.ones_like(values), values)


def log_loss(predictions: Array, targets: Array) -> Array:
    """Log loss (binary cross-entropy), elementwise: `-log likelihood(predictions, targets)`
    `= -(targets log predictions + (1 - targets) log(1 - predictions))`.

    Args:
      predictions: probabilities in `[0, 1]`, float, shape `[...]`.
      targets: probabilities in `[0, 1]`, float, the same shape.

    Returns:
      The elementwise loss, shape `[...]` (`inf` where a target has probability 0).
    """
    fn = "log_loss"
    _checks.assert_inputs(fn, predictions=(predictions, set(range(32)), float),
                          targets=(targets, set(range(32)), float))
    _checks.assert_same_shape(fn, predictions=predictions, targets=targets)
    return -jnp.log(likelihood(predictions, targets))


class TDRule(NamedTuple):
    """A target rule for `td_loss`: how ONE transition's values become a TD error (or a loss).

    `fn(q_tm1, q_t, q_t_selector, transition, stop_target_gradients)` receives

    - `q_tm1`: `value_fn.apply(params, transition.obs_tm1)`, the prediction (any shape: `[]`,
      `[A]`, `[A, K]` atoms or quantiles, ...);
    - `q_t`: `value_fn.apply(target_params, transition.obs_t)`, same shape;
    - `q_t_selector`: `value_fn.apply(params, transition.obs_t)` under `stop_gradient` when
      `needs_selector` (Double-DQN action selection), else None (and never computed);
    - `transition`: the ONE transition (`a_tm1, r_t, discount_t: []`, any further fields);
    - `stop_target_gradients`: the rule must wrap its bootstrapped target in
      `jax.lax.stop_gradient` when this is True (`tdkit.td.maybe_stop_gradient`).

    It returns the TD error `[]` (when `returns_loss=False`; `td_loss` then applies its
    elementwise `loss`) or `(per_example_loss [], td_error [])` (when `returns_loss=True`,
    e.g. a C51 cross-entropy or a QR-DQN quantile Huber loss; what "td_error" means is the
    rule's choice, e.g. the loss itself; it is what `has_aux` returns for replay priorities).

    Attributes:
      fn: the rule, as above.
      returns_loss: whether `fn` returns `(per_example_loss, td_error)` instead of a TD error.
      needs_selector: whether `fn` uses `q_t_selector` (costs one more forward pass).
      value_ndim: the rank `value_fn.apply` must return, checked by `td_loss` (e.g. 2 for
        `[A, K]`), or None for any.
      name: the rule's name in error messages (default: `fn.__name__`).

    Example (a C51-style rule written outside tdkit, for `[A, K]` logits on atoms `z [K]`):

        def c51(logits_tm1, logits_t, _, t, stop):
            probs_t = jax.nn.softmax(logits_t)                          # [A, K]
            p_t = probs_t[jnp.argmax(probs_t @ z)]                       # greedy action, [K]
            target = maybe_stop_gradient(project(t.r_t + t.discount_t * z, p_t, z), stop)
            loss = -jnp.sum(target * jax.nn.log_softmax(logits_tm1[t.a_tm1]))
            return loss, loss
        loss = td_loss(value_fn, TDRule(c51, returns_loss=True, value_ndim=2))
    """

    fn: Callable[..., Any]
    returns_loss: bool = False
    needs_selector: bool = False
    value_ndim: int | None = None
    name: str | None = None


_NAMED_RULES = {
    "td_learning": td.td_learning,
    "q_learning": td.q_learning,
    "double_q_learning": td.double_q_learning,
    "sarsa": td.sarsa,
    "expected_sarsa": td.expected_sarsa,
}


def _named_rule(name: str, epsilon: float | None) -> TDRule:
    """The `TDRule` behind one of the five rule names."""
    if name == "td_learning":
        fn = lambda v_tm1, v_t, _, t, stop: td.td_learning(v_tm1, t.r_t, t.discount_t, v_t, stop)
    elif name == "q_learning":
        fn = lambda q_tm1, q_t, _, t, stop: td.q_learning(
            q_tm1, t.a_tm1, t.r_t, t.discount_t, q_t, stop)
    elif name == "double_q_learning":
        fn = lambda q_tm1, q_t, selector, t, stop: td.double_q_learning(
            q_tm1, t.a_tm1, t.r_t, t.discount_t, q_t, selector, stop)
    elif name == "sarsa":
        fn = lambda q_tm1, q_t, _, t, stop: td.sarsa(
            q_tm1, t.a_tm1, t.r_t, t.discount_t, q_t, t.a_t, stop)
    else:

        def fn(q_tm1, q_t, _, t, stop):
            probs = td.maybe_stop_gradient(policies.epsilon_greedy_probs(q_t, epsilon), stop)
            return td.expected_sarsa(q_tm1, t.a_tm1, t.r_t, t.discount_t, q_t, probs, stop)

    return TDRule(fn, returns_loss=False, needs_selector=name == "double_q_learning",
                  value_ndim=0 if name == "td_learning" else 1, name=name)


class TDLoss:
    """The loss returned by `td_loss`: `loss(params, target_params, transition, weight=None)`.

    A plain callable (use it with `jax.grad`, `jax.vmap`, `jax.jit` like any function) that
    also states, as public attributes, what `tdkit.grads` may be told about it:

    Attributes:
      rule: the resolved `TDRule`.
      has_aux: whether it returns `(loss, td_error)` instead of the loss alone.
      structure: a `tdkit.values.PerExampleStructure` of the LOSS (`structure.tapped(params,
        taps, target_params, transition, weight=None) -> (loss [], saved)`), present when
        `value_fn.apply` has one (`tabular`, `linear`, `mlp`), else None. Pass it explicitly
        to opt into the layerwise per-example path:
        `tdkit.grads.clipped_mean_grad(loss, 1.0, (None, None, 0), structure=loss.structure)`.
    """

    def __init__(self, fn: Callable[..., Any], rule: TDRule, has_aux: bool,
                 structure: "values.PerExampleStructure | None"):
        functools.update_wrapper(self, fn)
        self._fn = fn
        self.rule = rule
        self.has_aux = has_aux
        self.structure = structure

    def __call__(self, params: Any, target_params: Any, transition: Any,
                 weight: Array | None = None) -> Any:
        return self._fn(params, target_params, transition, weight)

    def __repr__(self) -> str:
        return (f"TDLoss(rule={self.rule.name!r}, has_aux={self.has_aux}, "
                f"layerwise={self.structure is not None})")


def _resolve_rule(rule: Any, epsilon: Any) -> TDRule:
    names = sorted(_NAMED_RULES)
    if isinstance(rule, TDRule):
        if not callable(rule.fn):
            raise TypeError(f"td_loss: argument `rule` is a TDRule whose `fn` is not callable: "
                            f"{rule.fn!r}")
        if rule.value_ndim is not None and (
                not isinstance(rule.value_ndim, int) or rule.value_ndim < 0):
            raise ValueError(f"td_loss: argument `rule` has `value_ndim` {rule.value_ndim!r}; "
                             "it must be a non-negative int or None")
        if epsilon is not None:
            raise ValueError(
                "td_loss: argument `epsilon` is only used by rule 'expected_sarsa', not a "
                "TDRule (close over the rule's own parameters instead)")
        name = rule.name or getattr(rule.fn, "__name__", "custom")
        return rule._replace(name=name)
    if callable(rule):
        matches = [name for name, fn in _NAMED_RULES.items() if fn is rule]
        if not matches:
            raise ValueError(
                f"td_loss: argument `rule` must be one of {names}, the tdkit function of that "
                f"name, or a tdkit.losses.TDRule (to use any other rule), got {rule!r}")
        rule = matches[0]
    if rule not in _NAMED_RULES:
        raise ValueError(
            f"td_loss: argument `rule` must be one of {names}, the tdkit function of that "
            f"name, or a tdkit.losses.TDRule, got {rule!r}")
    if rule == "expected_sarsa":
        if not (isinstance(epsilon, (int, float)) and 0.0 <= epsilon <= 1.0):
            raise ValueError(
                "td_loss: rule 'expected_sarsa' needs argument `epsilon`, a number in [0, 1], "
                f"got {epsilon!r}")
    elif epsilon is not None:
        raise ValueError(
            f"td_loss: argument `epsilon` is only used by rule 'expected_sarsa', not {rule!r}")
    return _named_rule(rule, epsilon)


def _resolve_loss(rule: TDRule, loss: Any, huber_delta: float) -> Callable[[Array], Array] | None:
    """The elementwise loss on the TD error, or None when the rule returns its own loss."""
    if not (isinstance(huber_delta, (int, float)) and huber_delta > 0):
        raise ValueError(f"td_loss: argument `huber_delta` must be > 0, got {huber_delta!r}")
    if rule.returns_loss:
        if loss is not None:
            raise ValueError(
                f"td_loss: argument `loss` must be None for rule {rule.name!r}, which returns "
                f"its own loss (TDRule.returns_loss=True), got {loss!r}")
        return None
    if loss is None or loss == "l2":
        return l2_loss
    if loss == "huber":
        return lambda delta: huber_loss(delta, huber_delta)
    if callable(loss):
        return loss
    raise ValueError(f"td_loss: argument `loss` must be 'l2' or 'huber' (or an elementwise loss "
                     f"function of the TD error), got {loss!r}")


def _value_kind(ndim: int) -> tuple[str, str]:
    if ndim == 0:
        return "a state-value function", "()"
    if ndim == 1:
        return "action values", "[A]"
    return f"values of rank {ndim}", f"rank {ndim}, e.g. [A, K]"


def td_loss(
    value_fn: values.ValueFn,
    rule: str | Callable[..., Any] | TDRule = "q_learning",
    loss: str | Callable[[Array], Array] | None = None,
    *,
    huber_delta: float = 1.0,
    epsilon: float | None = None,
    stop_target_gradients: bool = True,
    has_aux: bool = False,
) -> TDLoss:
    """The TD loss of `value_fn` on ONE transition, `loss(params, target_params, transition)`.

    The prediction `q_tm1 = value_fn.apply(params, obs_tm1)` and the target values
    `q_t = value_fn.apply(target_params, obs_t)` go to the target `rule`. A rule that returns
    a TD error `delta` (the five named rules) gives the loss `weight * 0.5 * delta ** 2`
    (`"l2"`), `weight * huber_loss(delta, huber_delta)` (`"huber"`) or `weight * loss(delta)`
    (a function); a rule with `returns_loss=True` (C51, QR-DQN, ...) gives
    `weight * per_example_loss` itself. The negative gradient w.r.t. `params` is the
    semi-gradient TD update (`delta * grad q_tm1[a_tm1]` for l2). `target_params` are never
    differentiated through unless `stop_target_gradients=False`. Batches and per-example
    gradients come from vmap:

        loss = td_loss(value_fn, "q_learning", "huber")
        grads = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, None, 0)))(
            params, target_params, batch)                 # one gradient per transition
        # with importance weights [B]: in_axes=(None, None, 0, 0), (..., batch, weights)

    Named rules (`rule` is a name or the `tdkit` function itself):

    - `"td_learning"`: state values `[]`; `r_t + discount_t * v_t - v_tm1`.
    - `"q_learning"`: `[A]`; `r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]`.
    - `"double_q_learning"` (Double DQN): `[A]`; the action is selected by `params` at
      `obs_t` (one more forward pass, under stop_gradient) and evaluated by `target_params`.
    - `"sarsa"`: `[A]`; bootstraps from `q_t[a_t]`; `transition` needs an `a_t` field
      (`tdkit.types.SarsaTransition`).
    - `"expected_sarsa"`: `[A]`; bootstraps from the epsilon-greedy expectation over `q_t`
      (`tdkit.policies.epsilon_greedy_probs(q_t, epsilon)`: ties share the greedy mass);
      needs `epsilon`.

    Any other rule is a `TDRule` (see there for the protocol), with value outputs of any
    shape (`[A, K]` atoms or quantiles for distributional rules).

    Args:
      value_fn: a `ValueFn`; `apply` must return what the rule expects (`[]` for
        `"td_learning"`, `[A]` for the other named rules, `TDRule.value_ndim` if set).
      rule: a rule name above, the `tdkit` function of that name, or a `TDRule`.
      loss: the elementwise loss of the TD error: `"l2"` (also when None), `"huber"`, or a
        function `loss(td_error []) -> []`. Must be None for a rule with `returns_loss=True`.
      huber_delta: the Huber threshold, > 0 (used with `loss="huber"`).
      epsilon: exploration rate in `[0, 1]` of the target policy, for `"expected_sarsa"` only.
      stop_target_gradients: wrap the bootstrapped target in `stop_gradient` (default).
      has_aux: return `(loss, td_error)` instead of the loss alone, for
        `jax.value_and_grad(loss, has_aux=True)` (the TD error gives replay priorities).

    Returns:
      A `TDLoss`, `loss(params, target_params, transition, weight=None) -> []` (or
      `([], [])` with `has_aux`), where `transition` is ONE `tdkit.Transition`
      (`obs_tm1, obs_t: [O...]`, `a_tm1: []` int, `r_t, discount_t: []` float) and `weight`
      an optional importance weight `[]` float. Its `structure` (not None for `tabular`,
      `linear` and `mlp` value functions) opts `tdkit.grads` into layerwise per-example
      norms and clipped means: `grads.per_example_grad_norms(loss, (None, None, 0),
      structure=loss.structure)`.
    """
    rule = _resolve_rule(rule, epsilon)
    elementwise = _resolve_loss(rule, loss, huber_delta)
    if not isinstance(value_fn, values.ValueFn):
        raise TypeError(
            f"td_loss: argument `value_fn` must be a tdkit.values.ValueFn, got "
            f"{type(value_fn).__name__}")
    apply = value_fn.apply
    sarsa = rule.name == "sarsa"  # Needs `transition.a_t`.

    def check_inputs(transition: Any, weight: Any) -> None:
        for field in ("obs_tm1", "a_tm1", "r_t", "discount_t", "obs_t"):
            if not hasattr(transition, field):
                raise TypeError(
                    f"td_loss: argument `transition` must have a `{field}` field "
                    f"(a tdkit.Transition), got {type(transition).__name__}")
        if sarsa and not hasattr(transition, "a_t"):
            raise TypeError(
                "td_loss: rule 'sarsa' needs `transition.a_t` (use tdkit.types.SarsaTransition), "
                f"got {type(transition).__name__}")
        for field in ("r_t", "discount_t", "a_tm1") + (("a_t",) if sarsa else ()):
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

    def check_values(name: str, q: Array, like: Array | None = None) -> None:
        ndim = rule.value_ndim
        if ndim is not None and jnp.ndim(q) != ndim:
            kind, expected = _value_kind(ndim)
            raise AssertionError(
                f"[Chex] td_loss: rule {rule.name!r} needs {kind}, but `value_fn.apply` "
                f"returned {name} of shape {jnp.shape(q)} (expected {expected})")
        if like is not None and jnp.shape(q) != jnp.shape(like):
            raise AssertionError(
                f"[Chex] td_loss: `value_fn.apply` returned {name} of shape {jnp.shape(q)} but "
                f"q_tm1 of shape {jnp.shape(like)}; they must match")

    def check_scalar(what: str, x: Any) -> None:
        if jnp.shape(x) != ():
            raise AssertionError(
                f"[Chex] td_loss: argument `rule` ({rule.name!r}) must give a {what} of shape () "
                f"for ONE transition, got shape {jnp.shape(x)}")
        if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            raise AssertionError(
                f"[Chex] td_loss: argument `rule` ({rule.name!r}) must give a float {what}, got "
                f"dtype {jnp.result_type(x)}")

    def from_q_tm1(q_tm1, params, target_params, transition, weight):
        """(loss, td_error) given the prediction `q_tm1` computed from `params`."""
        check_values("q_tm1", q_tm1)
        q_t = apply(target_params, transition.obs_t)
        check_values("q_t", q_t, q_tm1)
        q_t_selector = None
        if rule.needs_selector:
            # argmax has a zero derivative: the selector never carries gradient.
            q_t_selector = jax.lax.stop_gradient(apply(params, transition.obs_t))
            check_values("q_t_selector", q_t_selector, q_tm1)
        out = rule.fn(q_tm1, q_t, q_t_selector, transition, stop_target_gradients)
        if elementwise is None:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(
                    f"td_loss: argument `rule` ({rule.name!r}) has returns_loss=True and must "
                    f"return (per_example_loss, td_error), got {type(out).__name__}")
            per_example, delta = out
            check_scalar("per_example_loss", per_example)
            check_scalar("td_error", delta)
        else:
            delta = out
            check_scalar("td_error", delta)
            per_example = elementwise(delta)
            if jnp.shape(per_example) != ():
                raise AssertionError(
                    f"[Chex] td_loss: argument `loss` must map the TD error [] to a loss of "
                    f"shape (), got shape {jnp.shape(per_example)}")
        if weight is not None:
            per_example = weight * per_example
        return per_example, delta

    def td_loss_fn(params, target_params, transition, weight=None):
        check_inputs(transition, weight)
        q_tm1 = apply(params, transition.obs_tm1)
        out = from_q_tm1(q_tm1, params, target_params, transition, weight)
        return out if has_aux else out[0]

    value_structure = values.per_example_structure(apply)
    loss_structure = None
    if value_structure is not None:

        def tapped(params, taps, target_params, transition, weight=None):
            check_inputs(transition, weight)
            q_tm1, saved = value_structure.tapped(params, taps, transition.obs_tm1)
            return from_q_tm1(q_tm1, params, target_params, transition, weight)[0], saved

        loss_structure = value_structure._replace(tapped=tapped)
    return TDLoss(td_loss_fn, rule, has_aux, loss_structure)
