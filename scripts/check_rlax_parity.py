"""Checks that every function tdkit shares with rlax has rlax's signature and values.

rlax is NOT a dependency of tdkit. For EVERY function that rlax exports and tdkit also has
(top level, `tdkit.distributional`, `tdkit.transforms`, `tdkit.nonlinear_bellman` when they
exist; tdkit's own modules as a fallback, flagged "not exported"), it compares

- the signature: parameter names, order, kinds and defaults (`inspect.signature`);
- the values on fixed-seed random inputs (batched with `jax.vmap` for the single-example
  functions; episode ends inside trajectories; gradients for `clip_gradient`),

and prints a table (function, signature equal or the difference, max |tdkit - rlax|) and the
rlax value-learning functions that tdkit lacks. tdkit's returns default to
`stop_target_gradients=True` where rlax defaults to False (a documented difference, shown as
"documented"); values do not depend on that flag.

rlax and tdkit may need different jax versions, so the work is split in two:

    # 1. in a venv with rlax (tdkit not needed there): signatures and outputs to one .npz
    python3 -m venv /work/rlax-venv3 && /work/rlax-venv3/bin/pip install rlax==0.1.9 jax==0.10.2
    /work/rlax-venv3/bin/python scripts/check_rlax_parity.py --dump /tmp/rlax.npz
    # 2. in tdkit's venv: compare
    python scripts/check_rlax_parity.py --compare /tmp/rlax.npz

or both in one go, `python scripts/check_rlax_parity.py --rlax-python /work/rlax-venv3/bin/python`
(step 1 in a subprocess), or plain `python scripts/check_rlax_parity.py` where rlax imports
next to tdkit. Exit status: 0 when every shared function matches, 1 otherwise, 2 when rlax
cannot be reached.
"""

import argparse
import importlib
import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

# On max |tdkit - rlax| / max(1, max |rlax|). Values are compared in float64 by default, where
# two correct implementations agree to ~1e-13 even through ill-conditioned transforms
# (`signed_parabolic` with eps=1e-3 amplifies float32 round-off ~500 times).
TOLERANCES = {"float64": 1e-9, "float32": 1e-5}
FLOAT: type = np.float64  # Set by `configure`.

# rlax modules whose functions count as value learning (for the "tdkit lacks" list).
VALUE_LEARNING_MODULES = (
    "value_learning", "multistep", "vtrace", "nonlinear_bellman", "transforms", "clipping",
    "losses", "base.batched_index")
NOT_VALUE_LEARNING = ("pixel_control_loss",)  # In rlax/_src/losses.py, but an auxiliary task.

# Where tdkit's counterparts are looked up, in order; the rest are fallbacks (not exported).
TDKIT_NAMESPACES = ("tdkit", "tdkit.distributional", "tdkit.transforms",
                    "tdkit.nonlinear_bellman")
TDKIT_FALLBACKS = ("tdkit.td", "tdkit.multistep", "tdkit.returns", "tdkit.losses",
                   "tdkit.autodiff")

# Documented differences: (parameter, tdkit default, rlax default).
DOCUMENTED_DEFAULTS = {("stop_target_gradients", "True", "False")}
# Documented value differences: reported with their max difference, not counted as failures.
_TWO_HOT = ("tdkit.transforms drops rlax's +1e-5 in the 2-hot bin-width denominator, so "
            "transform_from_2hot inverts it exactly (rlax is off by up to 1e-5 / bin width)")
DOCUMENTED_VALUES = {"transform_to_2hot": _TWO_HOT, "twohot_pair": _TWO_HOT,
                     "muzero_pair": _TWO_HOT}


# ------------------------------------------------------------------------- signatures

def describe_default(value: Any) -> str:
    """A version-independent text for a default value (functions by name, not address)."""
    if value is inspect.Parameter.empty:
        return "<required>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(describe_default(v) for v in value)
        return f"{type(value).__name__}({inner})" if type(value) is not tuple else f"({inner})"
    name = getattr(value, "__name__", None)
    if name is not None:
        return name
    return type(value).__name__


def _trivial(sig: inspect.Signature) -> bool:
    return all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values())


def _inner_function(fn: Any, name: str, depth: int = 0) -> Any:
    """The function a decorator hides (`jax.custom_gradient`, `functools.wraps` wrappers)."""
    if depth > 4:
        return None
    candidates = [getattr(fn, "__wrapped__", None), getattr(fn, "fun", None)]
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            candidates.append(cell.cell_contents)
        except ValueError:
            continue
    for cand in candidates:
        if not callable(cand) or cand is fn:
            continue
        try:
            sig = inspect.signature(cand, follow_wrapped=False)
        except (TypeError, ValueError):
            sig = None
        if sig is not None and not _trivial(sig) and getattr(cand, "__name__", "") == name:
            return cand
        deeper = _inner_function(cand, name, depth + 1)
        if deeper is not None:
            return deeper
    return None


def signature_record(fn: Callable[..., Any], name: str | None = None) -> list[list[str]]:
    """`[[name, kind, default], ...]` of `fn`'s parameters, as rlax users would call it.

    A `functools.wraps` wrapper `(tx_pair, *args, **kwargs)` around `f(r_t, ...)` is spliced
    into `(tx_pair, r_t, ...)`; a `jax.custom_gradient` / `custom_vjp` shows the function it
    wraps (found by `name`, the exported name, default `fn.__name__`).
    """
    name = name or getattr(fn, "__name__", "")
    try:
        sig = inspect.signature(fn, follow_wrapped=False)
    except (TypeError, ValueError):
        return [["?", "unknown", "?"]]
    params = list(sig.parameters.values())
    var = [p for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if var:
        inner = getattr(fn, "__wrapped__", None)
        if inner is None or _trivial(sig):
            inner = _inner_function(fn, name) or inner
        if inner is not None and inner is not fn:
            head = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            tail = signature_record(inner, name)
            return [[p.name, p.kind.name, describe_default(p.default)] for p in head] + tail
    return [[p.name, p.kind.name, describe_default(p.default)] for p in params]


def format_signature(record: list[list[str]]) -> str:
    parts = []
    for name, kind, default in record:
        prefix = "*" if kind == "VAR_POSITIONAL" else "**" if kind == "VAR_KEYWORD" else ""
        parts.append(prefix + name + ("" if default == "<required>" else f"={default}"))
    return "(" + ", ".join(parts) + ")"


def signature_difference(rlax_record: list[list[str]],
                         tdkit_record: list[list[str]]) -> tuple[str, str]:
    """`(status, detail)`: status "equal", "documented" (only documented default changes) or
    "differs"; detail says what differs."""
    rlax_record = [list(p) for p in rlax_record]
    tdkit_record = [list(p) for p in tdkit_record]
    if rlax_record == tdkit_record:
        return "equal", ""
    r_names = [p[0] for p in rlax_record]
    t_names = [p[0] for p in tdkit_record]
    if r_names != t_names:
        missing = [n for n in r_names if n not in t_names]
        extra = [n for n in t_names if n not in r_names]
        details = []
        if missing:
            details.append("tdkit lacks " + ", ".join(missing))
        if extra:
            details.append("tdkit adds " + ", ".join(extra))
        if not missing and not extra:
            details.append("order: rlax " + ", ".join(r_names) + " / tdkit " + ", ".join(t_names))
        elif [n for n in r_names if n in t_names] != [n for n in t_names if n in r_names]:
            details.append("and a different order")
        return "differs", "; ".join(details)
    details, documented = [], True
    pairs = zip(rlax_record, tdkit_record, strict=True)
    for (name, r_kind, r_default), (_, t_kind, t_default) in pairs:
        if r_kind != t_kind:
            details.append(f"{name}: kind rlax {r_kind} / tdkit {t_kind}")
            documented = False
        if r_default != t_default:
            details.append(f"{name}: default rlax {r_default} / tdkit {t_default}")
            documented &= (name, t_default, r_default) in DOCUMENTED_DEFAULTS
    return ("documented" if documented else "differs"), "; ".join(details)


def is_function(obj: Any) -> bool:
    return callable(obj) and not inspect.isclass(obj) and not inspect.ismodule(obj)


def find_counterparts(names: Iterable[str], namespaces: list[tuple[str, Any]],
                      fallbacks: list[tuple[str, Any]] = ()) -> dict[str, tuple[str, Any, bool]]:
    """`{name: (where, function, exported)}` for each name found as a function."""
    found = {}
    for name in names:
        for exported, spaces in ((True, namespaces), (False, fallbacks)):
            hit = next(((where, getattr(mod, name)) for where, mod in spaces
                        if is_function(getattr(mod, name, None))), None)
            if hit is not None:
                found[name] = (hit[0], hit[1], exported)
                break
    return found


def rlax_function_names(rlax_module: Any) -> dict[str, str]:
    """`{name: source module}` for every function in `rlax.__all__`."""
    out = {}
    for name in getattr(rlax_module, "__all__", dir(rlax_module)):
        obj = getattr(rlax_module, name, None)
        if is_function(obj):
            module = getattr(obj, "__module__", "") or ""
            if module.startswith("jax") or module == "functools":  # custom_vjp, partial
                inner = _inner_function(obj, name)
                module = getattr(inner, "__module__", module) if inner else module
                if module == "functools":
                    module = getattr(getattr(obj, "func", None), "__module__", module)
            out[name] = module
    return out


def is_value_learning(name: str, module: str) -> bool:
    short = module.rsplit(".", 1)[-1]
    return name not in NOT_VALUE_LEARNING and (
        short in VALUE_LEARNING_MODULES or f"{short}.{name}" in VALUE_LEARNING_MODULES)


# ------------------------------------------------------------------------- inputs

class Ref(NamedTuple):
    """A library constant, resolved in each library (e.g. `SIGNED_HYPERBOLIC_PAIR`)."""

    name: str


class Case(NamedTuple):
    function: str
    args: tuple
    kwargs: dict
    batched: bool = True  # vmap over the leading axis of every array argument.
    # "call": the outputs of fn(*args, **kwargs); "grad": d/d(args[0]) of
    # sum(args[-1] * fn(*args[:-1])); "pair": fn(*args[:-2]) is a TxPair, the outputs are
    # pair.apply(args[-2]) and pair.apply_inv(args[-1]).
    kind: str = "call"


B, T, A, K, N = 16, 7, 4, 11, 8


class _Gen:
    def __init__(self, label: str):
        self.rng = np.random.default_rng(zlib.crc32(label.encode()))

    def f(self, *shape, scale=1.0):
        return (scale * self.rng.standard_normal((B,) + shape)).astype(FLOAT)

    def i(self, *shape, high=A):
        return self.rng.integers(0, high, size=(B,) + shape).astype(np.int32)

    def d(self, *shape):
        return self.rng.choice(np.array([0.0, 0.9, 0.99], FLOAT), size=(B,) + shape)

    def u(self, *shape, low=0.1, high=1.0):
        return self.rng.uniform(low, high, size=(B,) + shape).astype(FLOAT)

    def probs(self, *shape):
        return self.rng.dirichlet(np.ones(shape[-1]), size=(B,) + shape[:-1]).astype(FLOAT)

    def mask(self, *shape):
        return self.rng.random((B,) + shape) < 0.8

    def lin(self, k, lo, hi):
        return np.broadcast_to(np.linspace(lo, hi, k, dtype=FLOAT), (B, k)).copy()

    def taus(self, n):
        mid = ((2 * np.arange(n) + 1) / (2 * n)).astype(FLOAT)
        return np.broadcast_to(mid, (B, n)).copy()


def cases() -> dict[str, Case]:
    """Inputs for every function that either library may share, labelled per case."""
    out: dict[str, Case] = {}

    def add(label, function, *args, batched=True, kind="call", **kwargs):
        out[label] = Case(function, args, kwargs, batched, kind)

    def g(label):
        return _Gen(label)

    x = g("one-step")
    add("td_learning", "td_learning", x.f(), x.f(), x.d(), x.f())
    add("sarsa", "sarsa", x.f(A), x.i(), x.f(), x.d(), x.f(A), x.i())
    add("expected_sarsa", "expected_sarsa", x.f(A), x.i(), x.f(), x.d(), x.f(A), x.probs(A))
    add("q_learning", "q_learning", x.f(A), x.i(), x.f(), x.d(), x.f(A))
    add("double_q_learning", "double_q_learning", x.f(A), x.i(), x.f(), x.d(), x.f(A), x.f(A))
    add("persistent_q_learning", "persistent_q_learning", x.f(A), x.i(), x.f(), x.d(), x.f(A),
        0.3)
    add("qv_learning", "qv_learning", x.f(A), x.i(), x.f(), x.d(), x.f())
    add("qv_max", "qv_max", x.f(), x.f(), x.d(), x.f(A))

    x = g("sequences")
    add("td_lambda", "td_lambda", x.f(T), x.f(T), x.d(T), x.f(T), x.u(T))
    add("sarsa_lambda", "sarsa_lambda", x.f(T, A), x.i(T), x.f(T), x.d(T), x.f(T, A), x.i(T),
        0.7)
    add("q_lambda", "q_lambda", x.f(T, A), x.i(T), x.f(T), x.d(T), x.f(T, A), 0.7)
    add("retrace", "retrace", x.f(T, A), x.f(T, A), x.i(T), x.i(T), x.f(T), x.d(T),
        x.probs(T, A), x.u(T), 0.9)
    add("retrace_continuous", "retrace_continuous", x.f(T), x.f(T - 1), x.f(T), x.f(T), x.d(T),
        x.f(T - 1, scale=0.5), 0.9)
    add("lambda_returns", "lambda_returns", x.f(T), x.d(T), x.f(T), x.u(T))
    add("discounted_returns", "discounted_returns", x.f(T), x.d(T), x.f(T))
    for n in (1, 3, T + 2):
        add(f"n_step_bootstrapped_returns[n={n}]", "n_step_bootstrapped_returns", x.f(T),
            x.d(T), x.f(T), n, x.u(T))
    add("general_off_policy_returns_from_action_values",
        "general_off_policy_returns_from_action_values", x.f(T, A), x.i(T), x.f(T), x.d(T),
        x.u(T), x.probs(T, A))
    add("general_off_policy_returns_from_q_and_v", "general_off_policy_returns_from_q_and_v",
        x.f(T - 1), x.f(T), x.f(T), x.d(T), x.u(T - 1))
    add("importance_corrected_td_errors", "importance_corrected_td_errors", x.f(T), x.d(T),
        x.u(T, high=2.0), x.u(T), x.f(T + 1))
    add("truncated_generalized_advantage_estimation",
        "truncated_generalized_advantage_estimation", x.f(T), x.d(T), x.u(T), x.f(T + 1))
    v = lambda: (x.f(T), x.f(T), x.f(T), x.d(T), x.u(T, high=2.0))
    add("vtrace", "vtrace", *v(), x.u(T), 1.2)
    add("vtrace[sample_mask]", "vtrace", *v(), x.u(T), 1.2, True, x.mask(T))
    add("vtrace_td_error_and_advantage", "vtrace_td_error_and_advantage", *v(), x.u(T), 1.0,
        0.8)
    add("vtrace_td_error_and_advantage[sample_mask]", "vtrace_td_error_and_advantage", *v(),
        x.u(T), 1.0, 0.8, True, x.mask(T))
    add("leaky_vtrace", "leaky_vtrace", *v(), 0.6, x.u(T), 1.2, True, x.mask(T))
    add("leaky_vtrace_td_error_and_advantage", "leaky_vtrace_td_error_and_advantage", *v(), 0.6,
        x.u(T), 1.0, 0.8, True, x.mask(T))

    x = g("elementwise")
    add("huber_loss", "huber_loss", x.f(5, scale=3.0), 1.5, batched=False)
    add("l2_loss", "l2_loss", x.f(5), x.f(5), batched=False)
    add("expectile_loss", "expectile_loss", x.f(5), x.f(5), 0.8, batched=False)
    add("likelihood", "likelihood", x.u(5, low=0.05, high=0.95), x.u(5, low=0.0), batched=False)
    add("log_loss", "log_loss", x.u(5, low=0.05, high=0.95), x.u(5, low=0.0), batched=False)
    add("batched_index", "batched_index", x.f(T, A), x.i(T), batched=False)
    add("batched_index[keepdims]", "batched_index", x.f(T, A), x.i(T), True, batched=False)
    add("clip_gradient[grad]", "clip_gradient", x.f(5), -0.5, 0.7, x.f(5, scale=2.0),
        batched=False, kind="grad")

    x = g("transforms")
    for name in ("identity", "sigmoid", "signed_logp1", "signed_expm1"):
        add(name, name, x.f(5, scale=3.0), batched=False)
    add("logit", "logit", x.u(5, low=0.01, high=0.99), batched=False)
    add("signed_hyperbolic", "signed_hyperbolic", x.f(5, scale=10.0), 1e-3, batched=False)
    add("signed_parabolic", "signed_parabolic", x.f(5, scale=3.0), 1e-3, batched=False)
    add("power", "power", x.f(5, scale=3.0), 0.5, batched=False)
    add("transform_to_2hot", "transform_to_2hot", x.f(5, scale=4.0), -3.0, 3.0, K,
        batched=False)
    add("transform_from_2hot", "transform_from_2hot", x.probs(5, K), -3.0, 3.0, K,
        batched=False)

    add("twohot_pair", "twohot_pair", -3.0, 3.0, K, x.f(5, scale=4.0), x.probs(5, K),
        batched=False, kind="pair")
    add("muzero_pair", "muzero_pair", -3.0, 3.0, K, Ref("SIGNED_HYPERBOLIC_PAIR"),
        x.f(5, scale=4.0), x.probs(5, K), batched=False, kind="pair")
    add("unbiased_transform_pair", "unbiased_transform_pair", -3.0, 3.0, K,
        Ref("SIGNED_HYPERBOLIC_PAIR"), x.f(5, scale=4.0), x.probs(5, K), batched=False,
        kind="pair")
    add("compose_tx", "compose_tx", Ref("SIGNED_HYPERBOLIC_PAIR"), Ref("SIGNED_LOGP1_PAIR"),
        x.f(5, scale=4.0), x.f(5, scale=2.0), batched=False, kind="pair")

    x = g("nonlinear_bellman")
    pair = Ref("SIGNED_HYPERBOLIC_PAIR")
    add("transformed_lambda_returns", "transformed_lambda_returns", pair, x.f(T), x.d(T),
        x.f(T), x.u(T))
    add("transformed_n_step_returns", "transformed_n_step_returns", pair, x.f(T), x.d(T),
        x.f(T), 3, x.u(T))
    add("transformed_general_off_policy_returns_from_action_values",
        "transformed_general_off_policy_returns_from_action_values", pair, x.f(T, A), x.i(T),
        x.f(T), x.d(T), x.u(T), x.probs(T, A))
    add("transformed_q_lambda", "transformed_q_lambda", x.f(T, A), x.i(T), x.f(T), x.d(T),
        x.f(T, A), x.u(T), True, pair)
    add("transformed_retrace", "transformed_retrace", x.f(T, A), x.f(T, A), x.i(T), x.i(T),
        x.f(T), x.d(T), x.probs(T, A), x.u(T), 0.9, 1e-8, True, pair)
    add("transformed_n_step_q_learning", "transformed_n_step_q_learning", x.f(T, A), x.i(T),
        x.f(T, A), x.i(T), x.f(T), x.d(T), 3, True, pair)

    x = g("distributional")
    add("categorical_l2_project", "categorical_l2_project", x.f(K, scale=4.0), x.probs(K),
        x.lin(K, -3.0, 3.0))
    add("categorical_td_learning", "categorical_td_learning", x.lin(K, -3.0, 3.0), x.f(K),
        x.f(), x.d(), x.lin(K, -3.0, 3.0), x.f(K))
    add("categorical_q_learning", "categorical_q_learning", x.lin(K, -3.0, 3.0), x.f(A, K),
        x.i(), x.f(), x.d(), x.lin(K, -3.0, 3.0), x.f(A, K))
    add("categorical_double_q_learning", "categorical_double_q_learning", x.lin(K, -3.0, 3.0),
        x.f(A, K), x.i(), x.f(), x.d(), x.lin(K, -3.0, 3.0), x.f(A, K), x.f(A))
    add("quantile_regression_loss", "quantile_regression_loss", x.f(N), x.taus(N), x.f(N + 3),
        1.0)
    add("quantile_q_learning", "quantile_q_learning", x.f(N, A), x.taus(N), x.i(), x.f(),
        x.d(), x.f(N, A), x.f(N, A), 1.0)
    add("quantile_expected_sarsa", "quantile_expected_sarsa", x.f(N, A), x.taus(N), x.i(),
        x.f(), x.d(), x.f(N, A), x.probs(A), 1.0)
    return out


# ------------------------------------------------------------------------- running

def _resolve(value: Any, lookup: Callable[[str], Any]) -> Any:
    return lookup(value.name) if isinstance(value, Ref) else value


def run_case(fn: Callable[..., Any], case: Case, lookup: Callable[[str], Any]) -> list:
    """The output leaves of `fn` on `case` (numpy arrays)."""
    import jax
    import jax.numpy as jnp

    args = [_resolve(a, lookup) for a in case.args]
    kwargs = {k: _resolve(v, lookup) for k, v in case.kwargs.items()}
    if case.kind == "grad":
        weights = args.pop()
        out = jax.grad(lambda x0: jnp.sum(weights * fn(x0, *args[1:], **kwargs)))(args[0])
        return [np.asarray(out)]
    if case.kind == "pair":
        pair = fn(*args[:-2], **kwargs)
        return [np.asarray(pair.apply(jnp.asarray(args[-2]))),
                np.asarray(pair.apply_inv(jnp.asarray(args[-1])))]
    flat = list(args) + [kwargs[k] for k in kwargs]
    arrays = [i for i, a in enumerate(flat) if isinstance(a, np.ndarray)]

    def call(*array_values):
        values = list(flat)
        for i, a in zip(arrays, array_values, strict=True):
            values[i] = a
        return fn(*values[:len(args)], **dict(zip(kwargs, values[len(args):], strict=True)))

    array_args = [jnp.asarray(flat[i]) for i in arrays]
    out = jax.vmap(call)(*array_args) if case.batched else call(*array_args)
    return [np.asarray(leaf) for leaf in jax.tree.leaves(out)]


def _encode(value: Any, key: str, arrays: dict) -> dict:
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"array": key}
    if isinstance(value, Ref):
        return {"ref": value.name}
    return {"value": value}


def _decode(item: dict, arrays: Any) -> Any:
    if "array" in item:
        return np.asarray(arrays[item["array"]])
    if "ref" in item:
        return Ref(item["ref"])
    return item["value"]


def configure(precision: str) -> None:
    """CPU unless JAX_PLATFORMS says otherwise; float64 (x64) or float32 inputs."""
    import jax

    global FLOAT
    if precision not in TOLERANCES:
        raise ValueError(f"precision must be one of {sorted(TOLERANCES)}, got {precision!r}")
    if not os.environ.get("JAX_PLATFORMS"):
        jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_enable_x64", precision == "float64")
    FLOAT = np.float64 if precision == "float64" else np.float32


def dump(path: str, precision: str = "float64") -> None:
    """Runs in a venv with rlax: writes rlax's signatures, inputs and outputs to `path`."""
    import jax
    import rlax

    configure(precision)
    functions = {name: {"module": module,
                        "signature": signature_record(getattr(rlax, name), name)}
                 for name, module in rlax_function_names(rlax).items()}
    arrays: dict[str, np.ndarray] = {}
    meta_cases = {}
    for label, case in cases().items():
        entry = {"function": case.function, "batched": case.batched, "kind": case.kind,
                 "args": [_encode(a, f"{label}|in|{i}", arrays) for i, a in enumerate(case.args)],
                 "kwargs": {k: _encode(v, f"{label}|kw|{k}", arrays)
                            for k, v in case.kwargs.items()}}
        if case.function not in functions:
            continue
        try:
            leaves = run_case(getattr(rlax, case.function), case, lambda n: getattr(rlax, n))
            for j, leaf in enumerate(leaves):
                arrays[f"{label}|out|{j}"] = leaf
            entry["num_outputs"] = len(leaves)
        except Exception as e:  # Recorded, reported by compare.
            entry["error"] = f"{type(e).__name__}: {e}"[:200]
        meta_cases[label] = entry
    meta = {"rlax_version": rlax.__version__, "jax_version": jax.__version__,
            "precision": precision,
            "functions": functions, "cases": meta_cases}
    np.savez(path, __meta__=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {len(functions)} rlax signatures and {len(meta_cases)} cases "
          f"(rlax {rlax.__version__}, jax {jax.__version__}) to {path}")


def _tdkit_spaces() -> tuple[list, list]:
    spaces, fallbacks = [], []
    for target, names in ((spaces, TDKIT_NAMESPACES), (fallbacks, TDKIT_FALLBACKS)):
        for name in names:
            try:
                target.append((name, importlib.import_module(name)))
            except ImportError:
                continue
    return spaces, fallbacks


def max_diff(ours: list, theirs: list) -> tuple[float, float]:
    """`(max |ours - theirs|, max |theirs|)` over finite entries; NaN if shapes or
    non-finite entries disagree."""
    if len(ours) != len(theirs):
        return math.nan, 1.0
    worst, scale = 0.0, 1.0
    for a, b in zip(ours, theirs, strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            return math.nan, 1.0
        finite = np.isfinite(b)
        if not np.array_equal(np.isfinite(a), finite) or not np.array_equal(a[~finite],
                                                                            b[~finite]):
            return math.nan, 1.0
        if finite.any():
            worst = max(worst, float(np.max(np.abs(a[finite] - b[finite]))))
            scale = max(scale, float(np.max(np.abs(b[finite]))))
    return worst, scale


def compare(path: str) -> int:
    """Runs in tdkit's venv: compares tdkit with the rlax dump at `path`; prints the table."""
    import jax

    data = np.load(path)
    meta = json.loads(str(data["__meta__"]))
    precision = meta.get("precision", "float32")
    configure(precision)
    tolerance = TOLERANCES[precision]
    functions = meta["functions"]
    spaces, fallbacks = _tdkit_spaces()
    found = find_counterparts(sorted(functions), spaces, fallbacks)

    def lookup(name):
        for _, module in spaces + fallbacks:
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"tdkit has no {name}")

    rows, failures = [], 0
    for name in sorted(found):
        where, fn, exported = found[name]
        status, detail = signature_difference(functions[name]["signature"],
                                              signature_record(fn, name))
        labels = [lb for lb, c in meta["cases"].items() if c["function"] == name]
        diffs, notes = [], []
        for label in labels:
            entry = meta["cases"][label]
            if "error" in entry:
                notes.append(f"rlax failed: {entry['error']}")
                continue
            case = Case(name, tuple(_decode(a, data) for a in entry["args"]),
                        {k: _decode(v, data) for k, v in entry["kwargs"].items()},
                        entry["batched"], entry["kind"])
            theirs = [data[f"{label}|out|{j}"] for j in range(entry["num_outputs"])]
            try:
                diffs.append(max_diff(run_case(fn, case, lookup), theirs))
            except Exception as e:
                notes.append(f"tdkit failed on {label}: {type(e).__name__}: {str(e)[:120]}")
        if diffs:
            worst = max(d for d, _ in diffs) if not any(math.isnan(d) for d, _ in diffs) \
                else math.nan
            values_ok = all(not math.isnan(d) and d <= tolerance * s for d, s in diffs)
            value_text = f"{worst:.1e}" + ("" if len(diffs) == 1 else f" ({len(diffs)} cases)")
        else:
            values_ok, value_text = not notes, "no input spec" if not notes else "-"
        if not values_ok and name in DOCUMENTED_VALUES and diffs and all(
                not math.isnan(d) and d <= 1e-4 * s for d, s in diffs):
            values_ok = True
            value_text = f"{value_text} documented"
            notes.append(DOCUMENTED_VALUES[name])
        ok = values_ok and status != "differs"
        failures += not ok
        if not exported:
            notes.append(f"found in {where}, not exported at tdkit's top level")
            where = f"{where}*"
        sig_text = {"equal": "equal", "documented": f"documented ({detail})"}.get(
            status, f"DIFFERS: {detail}")
        rows.append((name, where, sig_text, value_text if values_ok else f"FAIL {value_text}",
                     "; ".join(notes)))

    print(f"rlax {meta['rlax_version']} (jax {meta['jax_version']}) vs tdkit (jax "
          f"{jax.__version__}): {len(rows)} shared functions, tolerance "
          f"{tolerance:g} x max(1, |rlax|) in {precision}\n")
    headers = ("function", "tdkit", "signature", "max |tdkit - rlax|")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    widths[2] = min(widths[2], 60)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)).rstrip())
        if row[4]:
            print(" " * (widths[0] + 2) + "note: " + row[4])
    lacking = sorted(n for n, info in functions.items()
                     if n not in found and is_value_learning(n, info["module"]))
    others = sorted(n for n, info in functions.items()
                    if n not in found and not is_value_learning(n, info["module"]))
    print(f"\nrlax value-learning functions tdkit lacks: {len(lacking)}"
          + (": " + ", ".join(lacking) if lacking else ""))
    print(f"other rlax functions (policy gradients, exploration, MPO, ...) not in tdkit: "
          f"{len(others)}")
    print(f"\n{len(rows) - failures} of {len(rows)} shared functions match"
          + (f"; {failures} do not" if failures else ""))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dump", metavar="FILE",
                      help="(rlax venv) write rlax's signatures and outputs to FILE (.npz)")
    mode.add_argument("--compare", metavar="FILE", help="(tdkit venv) compare with FILE")
    mode.add_argument("--rlax-python", metavar="PYTHON",
                      help="run --dump with this interpreter, then compare here")
    parser.add_argument("--precision", choices=sorted(TOLERANCES), default="float64",
                        help="dtype of the random inputs (default float64: tight tolerance)")
    args = parser.parse_args(argv)
    if args.dump:
        dump(args.dump, args.precision)
        return 0
    if args.compare:
        return compare(args.compare)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rlax.npz")
        if args.rlax_python:
            env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
            proc = subprocess.run([args.rlax_python, os.path.abspath(__file__), "--dump", path,
                                   "--precision", args.precision], env=env)
            if proc.returncode != 0:
                print(f"--dump with {args.rlax_python} failed", file=sys.stderr)
                return 2
        else:
            try:
                importlib.import_module("rlax")
            except ImportError:
                print("rlax is not importable here: run --dump FILE in an rlax venv and "
                      "--compare FILE here, or pass --rlax-python (see the docstring)",
                      file=sys.stderr)
                return 2
            dump(path, args.precision)
        return compare(path)


if __name__ == "__main__":
    sys.exit(main())
