"""Prediction agents: linear policy evaluation with the tdkit methods, on and off policy.

A `Predictor` is a NamedTuple of pure functions over an explicit `PredictionState(w, extra,
hparams)`, where `w [F]` are the weights of `v(s) = w . x(s)` and the numeric
hyperparameters (`alpha`, `lambda_`, `beta`, `n`, ...) are float32 scalars in
`state.hparams`, so `jax.vmap` over `init`'s `hparams` sweeps step sizes (and over streams,
runs) in one compiled program:

    predictor = make_predictor("true_online_td_lambda")
    state = predictor.init(w0, {"alpha": 0.1, "lambda_": 0.8})
    state = predictor.update(state, x_tm1, r_t, discount_t, x_t, rho_tm1, last)  # one step
    state, records = predictor.run(state, stream, observe, num_records)        # a stream

| method | tdkit function | hparams | policy |
|---|---|---|---|
| "td_lambda" | `traces.td_lambda_update` (config `trace`) | alpha, lambda_ | on |
| "true_online_td_lambda" | `traces.true_online_td_lambda_update` | alpha, lambda_ | on |
| "n_step_td" | `traces.run_episode_n_step_td` (stream) | alpha, n | on |
| "offline_lambda_return" | `traces.run_episode_offline_lambda_return` | alpha, lambda_ | on |
| "mc" | constant-alpha every-visit Monte Carlo = off-line lambda-return, lambda = 1 | alpha | on |
| "td" | `gradient_td.off_policy_td_update` (semi-gradient TD(0)) | alpha | off |
| "tdc" | `gradient_td.tdc_update` | alpha, beta | off |
| "gtd2" | `gradient_td.gtd2_update` | alpha, beta | off |
| "tdrc" | `gradient_td.tdrc_update` | alpha, eta, beta_reg | off |
| "etd" | `emphatic.emphatic_td_lambda_update` (interest 1) | alpha, lambda_ | off |
| "lstd" | `lstd.lstd_update` / `lstd.lstd_weights` | lambda_, epsilon | on |

"etd" with `lambda_ = 0` is one-step emphatic TD. On-policy methods ignore `rho_tm1` (they
assume it is 1). "n_step_td", "offline_lambda_return" and "mc" update at episode ends (or n
steps late) and only have `run`, not `update`; their `run` is the tdkit episode function
applied to a stream of episodes, recording the weights as it goes.

A `Stream` is one run's experience as consecutive transitions: `xs [L + 1, F]` with
`xs[t]` the features of `S_t` and `xs[t + 1]` those of the next state, episodes back to
back. An episode ends with a TERMINAL transition (`discount_t[t] = 0`); `xs[t + 1]` is then
the first state of the next episode, whose value is multiplied by 0 and never used.
(Streams cannot hold truncated episodes: use `update` with the true final observation and
`last=True` for those.) The trace methods reset at every zero discount, the n-step windows
and lambda-returns stop there, so a stream is exactly the book's sequence of episodes.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from tdkit import _checks, emphatic, gradient_td, lstd, traces

Array = chex.Array

METHODS = ("td_lambda", "true_online_td_lambda", "n_step_td", "offline_lambda_return", "mc",
           "td", "tdc", "gtd2", "tdrc", "etd", "lstd")
OFF_POLICY = ("td", "tdc", "gtd2", "tdrc", "etd")

DEFAULT_HPARAMS: dict[str, dict[str, float]] = {
    "td_lambda": {"alpha": 0.1, "lambda_": 0.8},
    "true_online_td_lambda": {"alpha": 0.1, "lambda_": 0.8},
    "n_step_td": {"alpha": 0.1, "n": 4.0},
    "offline_lambda_return": {"alpha": 0.1, "lambda_": 0.8},
    "mc": {"alpha": 0.02},
    "td": {"alpha": 0.01},
    "tdc": {"alpha": 0.005, "beta": 0.05},
    "gtd2": {"alpha": 0.005, "beta": 0.05},
    "tdrc": {"alpha": 0.005, "eta": 1.0, "beta_reg": 1.0},
    "etd": {"alpha": 0.01, "lambda_": 0.0},
    "lstd": {"lambda_": 0.0, "epsilon": 1.0},
}
"""Default numeric hyperparameters of each method (float; `n` is rounded to an int)."""


class PredictionState(NamedTuple):
    """State of a prediction agent (leaves gain leading axes when vmapped).

    Attributes:
      w: weights `[F]` of `v(s) = w . x(s)` (for LSTD, `A^{-1} b` after the last update).
      extra: method state: the trace `[F]`, `TrueOnlineState`, the auxiliary weights `h [F]`,
        `EmphaticState`, `LSTDState`, or `()`.
      hparams: dict of float32 scalars.
    """

    w: Array
    extra: Any
    hparams: Mapping[str, Array]


class Stream(NamedTuple):
    """One run's transitions, episodes back to back (see the module docstring).

    Attributes:
      xs: features of `S_0 .. S_L`, float `[L + 1, F]`.
      r_t: rewards, float `[L]`.
      discount_t: `gamma * (1 - terminated)`, float `[L]` (0 ends an episode).
      rho_tm1: importance ratios, float `[L]` (ones on-policy).
      record: bool `[L]`, steps after which `run` records `observe(w)`.
    """

    xs: Array
    r_t: Array
    discount_t: Array
    rho_tm1: Array
    record: Array


class Predictor(NamedTuple):
    """A prediction agent as pure functions.

    Attributes:
      init: `init(w0 [F], hparams=None) -> PredictionState`; `hparams` overrides defaults
        (float scalars, may be traced).
      update: `update(state, x_tm1 [F], r_t [], discount_t [], x_t [F], rho_tm1 [], last [])
        -> PredictionState` for ONE transition (`last`: the episode ended here, by
        termination or truncation: traces and follow-on are cleared after the update);
        None for the methods that need whole episodes.
      run: `run(state, stream, observe, num_records) -> (state, records)`: processes a
        `Stream` in order and returns `observe(w)` after each step with `stream.record`,
        the first `num_records` of them stacked to `[num_records, ...]` (zeros where fewer
        steps are recorded).
      name: the method.
      off_policy: whether the method uses `rho_tm1`.
      default_hparams: dict of the default numeric hyperparameters.
    """

    init: Callable[..., PredictionState]
    update: Callable[..., PredictionState] | None
    run: Callable[..., tuple[PredictionState, Any]]
    name: str
    off_policy: bool
    default_hparams: Mapping[str, float]


def _merge(method: str, overrides: Mapping[str, Any] | None) -> dict:
    defaults = DEFAULT_HPARAMS[method]
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{method}: unknown hyperparameter(s) {unknown}; valid: "
                         f"{sorted(defaults)}")
    return {k: jnp.asarray(v, jnp.float32) for k, v in {**defaults, **overrides}.items()}


def _check_stream(fn: str, w: Array, stream: Stream) -> None:
    _checks.assert_inputs(
        fn, xs=(stream.xs, 2, float), r_t=(stream.r_t, 1, float),
        discount_t=(stream.discount_t, 1, float), rho_tm1=(stream.rho_tm1, 1, float),
        record=(stream.record, 1, None))
    _checks.assert_same_shape(fn, r_t=stream.r_t, discount_t=stream.discount_t,
                              rho_tm1=stream.rho_tm1, record=stream.record)
    expected = (stream.r_t.shape[0] + 1, w.shape[0])
    if stream.xs.shape != expected:
        raise AssertionError(
            f"[Chex] {fn}: argument `xs` must have shape [L + 1, F] = {expected} (L from "
            f"`r_t`, F from `w`), got {stream.xs.shape}")


class _Recorder(NamedTuple):
    buffer: Any
    count: Array


def _record(rec: _Recorder, observe: Callable, w: Array, flag: Array) -> _Recorder:
    num_records = jax.tree.leaves(rec.buffer)[0].shape[0]
    # A select against a one-hot row mask, not a dynamic update: under vmap the latter
    # becomes a scatter, far slower on CPU.
    slot = (jnp.arange(num_records) == rec.count) & flag
    value = observe(w)
    buffer = jax.tree.map(
        lambda b, v: jnp.where(slot.reshape((-1,) + (1,) * v.ndim), v[None], b),
        rec.buffer, value)
    return _Recorder(buffer, rec.count + flag.astype(jnp.int32))


RECORD_EVERY_STEP_LIMIT = 1 << 20
"""Streams whose `observe` outputs total at most this many numbers keep all of them and
pick the flagged steps afterwards; longer ones keep a `[num_records, ...]` buffer."""


def _scan_recording(step: Callable, carry: Any, inputs: Any, weights: Callable,
                    record: Array, observe: Callable, num_records: int):
    """`carry = step(carry, inputs[t])` over the stream, with `observe(weights(carry))`
    recorded after the steps flagged in `record [L]` (the first `num_records` of them).

    Two equivalent strategies. Usually every step's observation is a scan output and the
    flagged ones are gathered afterwards: one store per step, which is what a vmapped sweep
    can afford. When that would hold more than `RECORD_EVERY_STEP_LIMIT` numbers, a buffer of
    `num_records` rows is updated by a select at every step instead (memory `O(num_records)`,
    time `O(num_records)` per step).
    """
    example = jax.eval_shape(observe, weights(carry))
    num_steps = record.shape[0]
    per_step = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(example))
    if num_steps * per_step <= RECORD_EVERY_STEP_LIMIT:
        def body(c, x):
            c = step(c, x)
            return c, observe(weights(c))

        carry, ys = jax.lax.scan(body, carry, inputs)
        index = jnp.nonzero(record, size=num_records, fill_value=num_steps)[0]
        records = jax.tree.map(
            lambda y: jnp.take(y, index, axis=0, mode="fill", fill_value=0), ys)
        return carry, records

    def body_select(c, x):
        c, rec = c
        *step_inputs, flag = x
        c = step(c, tuple(step_inputs))
        return (c, _record(rec, observe, weights(c), flag)), None

    buffer = jax.tree.map(lambda s: jnp.zeros((num_records,) + s.shape, s.dtype), example)
    (carry, rec), _ = jax.lax.scan(
        body_select, (carry, _Recorder(buffer, jnp.zeros((), jnp.int32))), (*inputs, record))
    return carry, rec.buffer


def _run_online(update: Callable) -> Callable:
    """`run` for a method with a one-transition `update`: a `lax.scan` over the stream."""

    def run(state, stream, observe, num_records):
        _check_stream("Predictor.run", state.w, stream)

        def step(state, inputs):
            x_tm1, r, d, x, rho = inputs
            return update(state, x_tm1, r, d, x, rho, d == 0)

        inputs = (stream.xs[:-1], stream.r_t, stream.discount_t, stream.xs[1:], stream.rho_tm1)
        return _scan_recording(step, state, inputs, lambda s: s.w, stream.record, observe,
                               num_records)

    return run


def _forward_run(step: Callable, inputs: tuple, state: PredictionState, stream: Stream,
                 observe: Callable, num_records: int):
    """Forward pass `w <- step(w, *inputs[t])` over the stream, recording after flagged steps."""
    w, records = _scan_recording(lambda w, x: step(w, *x), state.w, inputs, lambda w: w,
                                 stream.record, observe, num_records)
    return state._replace(w=w), records


def _run_n_step(state, stream, observe, num_records):
    """n-step TD over a stream: `traces.run_episode_n_step_td` for episodes back to back.

    The same tdkit pieces (`n_step_prefix`, `n_step_window`, `n_step_td_step`): the update
    of `S_tau` uses the weights after the updates of `0 .. tau - 1` (the book's online order)
    and the target `G_{tau:tau+n}`, cut at the episode's terminal transition. Windows that
    run past the end of the stream bootstrap from `xs[L]`. The prefix sums do not depend on
    `n` or `alpha`; each step reads its window from them inside the scan (so under `vmap`
    over `n` and `alpha` nothing `[L]`-long is stored per setting).
    """
    _check_stream("n_step_td.run", state.w, stream)
    xs, r, d = stream.xs, stream.r_t, stream.discount_t
    alpha = state.hparams["alpha"]
    n = jnp.maximum(jnp.round(state.hparams["n"]), 1.0).astype(jnp.int32)
    num_steps = r.shape[0]
    prefix = traces.n_step_prefix(r, d)

    def step(w, t, x):
        reward_sum, window_prod, end = traces.n_step_window(prefix, t, n, num_steps)
        return traces.n_step_td_step(w, x, xs[end], reward_sum, window_prod, alpha)

    return _forward_run(step, (jnp.arange(num_steps), xs[:-1]), state, stream, observe,
                        num_records)


def _run_offline_lambda_return(state, stream, observe, num_records):
    """Off-line lambda-return over a stream: `traces.run_episode_offline_lambda_return`
    for episodes back to back (each episode's pass uses the weights current in that pass).

    `G_t = c_t + g_t . w` from `traces.lambda_return_coefficients`; the forward pass applies
    `traces.offline_lambda_return_step` in time order. The returns stop at terminal
    transitions, so the pass over episode k starts from the weights after episode k - 1,
    exactly as per-episode passes.
    """
    _check_stream("offline_lambda_return.run", state.w, stream)
    cs, gs = traces.lambda_return_coefficients(stream.xs, stream.r_t, stream.discount_t,
                                               state.hparams["lambda_"])

    def step(w, x, c, g):
        return traces.offline_lambda_return_step(w, x, c, g, state.hparams["alpha"])

    return _forward_run(step, (stream.xs[:-1], cs, gs), state, stream, observe, num_records)


def make_predictor(method: str, trace: str = "accumulating") -> Predictor:
    """Builds the prediction agent `method` (one of `METHODS`).

    Args:
      method: see the module table.
      trace: for "td_lambda": "accumulating", "replacing" (binary features) or "dutch".

    Returns:
      A `Predictor`.
    """
    if method not in METHODS:
        raise ValueError(f"make_predictor: `method` must be one of {METHODS}, got {method!r}")
    if trace not in traces.TRACE_KINDS:
        raise ValueError(
            f"make_predictor: `trace` must be one of {traces.TRACE_KINDS}, got {trace!r}")

    def init(w0, hparams=None):
        hp = _merge(method, hparams)
        w0 = jnp.asarray(w0, jnp.float32)
        _checks.assert_inputs(f"{method}.init", w0=(w0, 1, float))
        if method == "td_lambda":
            extra = traces.init_trace(w0)
        elif method == "true_online_td_lambda":
            extra = traces.init_true_online(w0)
        elif method in ("tdc", "gtd2", "tdrc"):
            extra = jnp.zeros_like(w0)
        elif method == "etd":
            extra = emphatic.init_emphatic(w0)
        elif method == "lstd":
            num_features = w0.shape[0]
            eye = jnp.eye(num_features, dtype=jnp.float32)
            extra = lstd.LSTDState(eye / hp["epsilon"], jnp.zeros_like(w0), jnp.zeros_like(w0))
            w0 = jnp.zeros_like(w0)
        else:
            extra = ()
        return PredictionState(w=w0, extra=extra, hparams=hp)

    def update(state, x_tm1, r_t, discount_t, x_t, rho_tm1, last):
        hp, w = state.hparams, state.w
        keep = 1.0 - jnp.asarray(last, w.dtype)  # clears traces after the last step
        if method == "td_lambda":
            w, z = traces.td_lambda_update(
                w, state.extra, x_tm1, r_t, discount_t, x_t, hp["alpha"], hp["lambda_"], trace)
            extra = keep * z
        elif method == "true_online_td_lambda":
            w, s = traces.true_online_td_lambda_update(
                w, state.extra, x_tm1, r_t, discount_t, x_t, hp["alpha"], hp["lambda_"])
            extra = traces.TrueOnlineState(keep * s.z, s.v_old)
        elif method == "td":
            w = gradient_td.off_policy_td_update(
                w, x_tm1, r_t, discount_t, x_t, rho_tm1, hp["alpha"])
            extra = ()
        elif method in ("tdc", "gtd2"):
            rule = gradient_td.tdc_update if method == "tdc" else gradient_td.gtd2_update
            w, extra = rule(gradient_td.GTDState(w, state.extra), x_tm1, r_t, discount_t, x_t,
                            rho_tm1, hp["alpha"], hp["beta"])
        elif method == "tdrc":
            w, extra = gradient_td.tdrc_update(
                gradient_td.GTDState(w, state.extra), x_tm1, r_t, discount_t, x_t, rho_tm1,
                hp["alpha"], hp["eta"], hp["beta_reg"])
        elif method == "etd":
            w, s = emphatic.emphatic_td_lambda_update(
                w, state.extra, x_tm1, r_t, discount_t, x_t, rho_tm1, hp["alpha"],
                hp["lambda_"])
            extra = emphatic.EmphaticState(keep * s.followon, keep * s.trace)
        else:  # lstd
            s = lstd.lstd_update(state.extra, x_tm1, r_t, discount_t, x_t, hp["lambda_"])
            extra = s._replace(z=keep * s.z)
            w = lstd.lstd_weights(extra)
        return PredictionState(w=w, extra=extra, hparams=hp)

    if method == "n_step_td":
        run, step_update = _run_n_step, None
    elif method in ("offline_lambda_return", "mc"):
        step_update = None

        def run(state, stream, observe, num_records):
            if method == "mc":
                hp = {**state.hparams, "lambda_": jnp.ones((), jnp.float32)}
                out, records = _run_offline_lambda_return(
                    state._replace(hparams=hp), stream, observe, num_records)
                return out._replace(hparams=state.hparams), records
            return _run_offline_lambda_return(state, stream, observe, num_records)
    else:
        run, step_update = _run_online(update), update

    return Predictor(init=init, update=step_update, run=run, name=method,
                     off_policy=method in OFF_POLICY, default_hparams=dict(DEFAULT_HPARAMS[method]))
