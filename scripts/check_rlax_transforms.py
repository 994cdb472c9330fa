"""Checks tdkit's value transforms and transformed returns against rlax (values and signatures).

rlax is not a dependency of tdkit and may need a different jax, so the check runs in two
steps that share this file:

1. `rlax_outputs(path)`, run where rlax is installed, draws fixed random inputs (trajectories
   with episode ends inside), evaluates every case below with rlax and writes the inputs,
   rlax's outputs and rlax's signatures to `path` (an `.npz`).
2. `compare(path)`, run where tdkit is installed, evaluates the same cases with tdkit on the
   stored inputs and prints one row per case and per signature.

    /path/to/rlax-venv/bin/python scripts/check_rlax_transforms.py dump /tmp/rlax_tx.npz
    python scripts/check_rlax_transforms.py compare /tmp/rlax_tx.npz
    python scripts/check_rlax_transforms.py both --rlax-python /path/to/rlax-venv/bin/python

A case is `fn(L, x)`: `L` is the library under test (a namespace with rlax's names) and `x`
the stored inputs, so both libraries run exactly the same code.
"""

import argparse
import functools
import inspect
import json
import subprocess
import sys
import types

import numpy as np

B, T, A = 16, 9, 4
TOL = 1e-5
PAIRS = ("IDENTITY_PAIR", "SIGNED_LOGP1_PAIR", "SIGNED_HYPERBOLIC_PAIR", "HYPERBOLIC_SIN_PAIR")
TRANSFORMED_RETURNS = (
    "transformed_lambda_returns",
    "transformed_n_step_returns",
    "transformed_general_off_policy_returns_from_action_values",
)
SIGNATURE_NAMES = (
    "identity", "sigmoid", "logit", "signed_logp1", "signed_expm1", "signed_hyperbolic",
    "signed_parabolic", "hyperbolic_sin", "hyperbolic_arcsin", "power", "transform_to_2hot",
    "transform_from_2hot", "transform_to_2hot_nonlinear", "transform_from_2hot_nonlinear",
    "twohot_pair", "compose_tx", "muzero_pair", "unbiased_transform_pair",
    "transformed_lambda_returns", "transformed_n_step_returns",
    "transformed_general_off_policy_returns_from_action_values", "transformed_q_lambda",
    "transformed_retrace", "transformed_n_step_q_learning",
)
# Differences in the signatures that are intended (tdkit's convention for returns).
DOCUMENTED_SIGNATURE_DIFFERENCES = {
    name: "stop_target_gradients defaults to True (tdkit's returns convention; rlax: False)"
    for name in TRANSFORMED_RETURNS
}
# rlax adds 1e-5 to the bin width in transform_to_2hot; tdkit interpolates exactly. The
# probabilities then differ by at most 1e-5 / bin_width, decoded values by at most 1e-5;
# these extra tolerances apply to the cases whose name contains the key.
TWO_HOT_NOTE = "documented: rlax adds 1e-5 to the 2-hot bin width"
# (The muzero round trip decodes through signed_parabolic, whose slope 1 / h'(x) is at most
# 2 sqrt(|x| + 1), so there the 1e-5 bias in the squashed value is scaled by that.)
TWO_HOT_BOUNDS = {
    "transform_to_2hot(rlax test": lambda r: 1e-5 / 0.5,
    "transform_to_2hot(21 bins": lambda r: 1e-5 / 1.0,
    "transform_to_2hot(601 bins": lambda r: 1e-5 / 1.0,
    "transform_from_2hot(transform_to_2hot)": lambda r: 1e-5,
    "twohot_pair": lambda r: 1e-5,
    "muzero_pair(-10, 10, 41)": lambda r: 1e-5 / 0.5,
    "muzero_pair(-300, 300, 601) round trip": lambda r: 1e-5 * 2 * np.sqrt(np.abs(r) + 1),
}


def make_inputs(seed: int = 0) -> dict:
    """Fixed random inputs, float32 / int32, with episode ends (discount 0) inside."""
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)
    x = {
        "x": np.concatenate([f(200) * 4, [0.0, 1e-4, -1e-4, 60.0, -60.0, 1e3, -1e3]]).astype(
            np.float32),
        "x_small": np.clip(f(200) * 3, -10, 10).astype(np.float32),
        "unit": rng.uniform(0.01, 0.99, size=200).astype(np.float32),
        "two_hot_scalars": np.array([-5.0, -3.0, -1.0, -0.4, 0.0, 0.3, 1.0, 4.5, 10.0],
                                    np.float32),
        "probs5": rng.dirichlet(np.ones(5), size=(B, T)).astype(np.float32),
        "probs41": rng.dirichlet(np.ones(41), size=(B, T)).astype(np.float32),
        "bins": np.sort(rng.normal(size=12) * 5).astype(np.float32),
        "probs12": rng.dirichlet(np.ones(12), size=B).astype(np.float32),
        "q_tm1": f(B, T, A),
        "q_t": f(B, T, A),
        "v_t": f(B, T),
        "r_t": f(B, T),
        "a_tm1": rng.integers(0, A, size=(B, T)).astype(np.int32),
        "a_t": rng.integers(0, A, size=(B, T)).astype(np.int32),
        "discount_t": rng.choice([0.0, 0.9, 0.99], size=(B, T)).astype(np.float32),
        "lambda_t": rng.uniform(0.0, 1.0, size=(B, T)).astype(np.float32),
        "c_t": rng.uniform(0.0, 1.0, size=(B, T)).astype(np.float32),
        "pi_t": rng.dirichlet(np.ones(A), size=(B, T)).astype(np.float32),
        "mu_t": rng.uniform(0.05, 1.0, size=(B, T)).astype(np.float32),
    }
    x["discount_t"][:, 3] = 0.0  # every trajectory has an episode end inside
    return x


def _vmap(fn, *args):
    import jax
    return jax.vmap(fn)(*args)


def cases() -> dict:
    """name -> `fn(L, x)`; every name is evaluated by both libraries."""
    c = {}
    for name in ("identity", "sigmoid", "signed_logp1", "signed_hyperbolic", "signed_parabolic",
                 "hyperbolic_arcsin"):
        c[name] = lambda L, x, name=name: getattr(L, name)(x["x"])
    c["signed_expm1"] = lambda L, x: L.signed_expm1(x["x_small"])
    c["hyperbolic_sin"] = lambda L, x: L.hyperbolic_sin(x["x_small"])
    c["logit"] = lambda L, x: L.logit(x["unit"])
    c["signed_hyperbolic(eps=0.1)"] = lambda L, x: L.signed_hyperbolic(x["x"], eps=0.1)
    c["signed_parabolic(eps=0.1)"] = lambda L, x: L.signed_parabolic(x["x"], eps=0.1)
    for p in (2.0, 0.5, 3.0):
        c[f"power(p={p})"] = lambda L, x, p=p: L.power(x["x_small"], p)
    c["transform_to_2hot(rlax test, 5 bins on [-1, 1])"] = lambda L, x: L.transform_to_2hot(
        x["two_hot_scalars"], -1.0, 1.0, 5)
    c["transform_to_2hot(21 bins on [-10, 10])"] = lambda L, x: L.transform_to_2hot(
        x["x"], -10.0, 10.0, 21)
    c["transform_to_2hot(601 bins on [-300, 300])"] = lambda L, x: L.transform_to_2hot(
        x["x"] * 30, -300.0, 300.0, 601)
    c["transform_from_2hot([B, T, 5])"] = lambda L, x: L.transform_from_2hot(
        x["probs5"], -1.0, 1.0, 5)
    c["transform_from_2hot(transform_to_2hot) 21 bins"] = lambda L, x: L.transform_from_2hot(
        L.transform_to_2hot(x["x"], -10.0, 10.0, 21), -10.0, 10.0, 21)
    c["transform_to_2hot_nonlinear"] = lambda L, x: L.transform_to_2hot_nonlinear(
        x["x"], x["bins"])
    c["transform_from_2hot_nonlinear([B, K])"] = lambda L, x: L.transform_from_2hot_nonlinear(
        x["probs12"], x["bins"])
    for pair in PAIRS:
        c[f"{pair}.apply"] = lambda L, x, pair=pair: getattr(L, pair).apply(x["x_small"])
        c[f"{pair}.apply_inv"] = lambda L, x, pair=pair: getattr(L, pair).apply_inv(
            x["x_small"] / 3)
    c["DISCOUNT_TRANSFORM_PAIR.apply"] = lambda L, x: L.DISCOUNT_TRANSFORM_PAIR.apply(x["unit"])
    c["DISCOUNT_TRANSFORM_PAIR.apply_inv"] = lambda L, x: L.DISCOUNT_TRANSFORM_PAIR.apply_inv(
        x["unit"] * 3)
    c["twohot_pair(-10, 10, 21).apply_inv"] = lambda L, x: L.twohot_pair(
        -10.0, 10.0, 21).apply_inv(L.twohot_pair(-10.0, 10.0, 21).apply(x["x"]))
    c["compose_tx(SIGNED_HYPERBOLIC, SIGNED_LOGP1).apply"] = lambda L, x: L.compose_tx(
        L.SIGNED_HYPERBOLIC_PAIR, L.SIGNED_LOGP1_PAIR).apply(x["x"])
    c["muzero_pair(-300, 300, 601) round trip"] = lambda L, x: (lambda P: P.apply_inv(P.apply(
        x["x"] * 30)))(L.muzero_pair(-300.0, 300.0, 601, L.SIGNED_HYPERBOLIC_PAIR))
    c["unbiased_transform_pair(-20, 20, 81).apply"] = lambda L, x: L.unbiased_transform_pair(
        -20.0, 20.0, 81, L.SIGNED_HYPERBOLIC_PAIR).apply(x["x"])

    for pair in PAIRS:
        tag = pair.removesuffix("_PAIR").lower()
        c[f"transformed_lambda_returns[{tag}, lambda 0.8]"] = lambda L, x, pair=pair: _vmap(
            lambda r, d, v: L.transformed_lambda_returns(getattr(L, pair), r, d, v, 0.8),
            x["r_t"], x["discount_t"], x["v_t"])
        c[f"transformed_lambda_returns[{tag}, lambda [T]]"] = lambda L, x, pair=pair: _vmap(
            lambda r, d, v, lam: L.transformed_lambda_returns(getattr(L, pair), r, d, v, lam),
            x["r_t"], x["discount_t"], x["v_t"], x["lambda_t"])
        for n in (1, 3, T + 2):
            c[f"transformed_n_step_returns[{tag}, n={n}]"] = lambda L, x, pair=pair, n=n: _vmap(
                lambda r, d, v, lam: L.transformed_n_step_returns(
                    getattr(L, pair), r, d, v, n, lam),
                x["r_t"], x["discount_t"], x["v_t"], x["lambda_t"])
        c[f"transformed_general_off_policy_returns_from_action_values[{tag}]"] = (
            lambda L, x, pair=pair: _vmap(
                lambda q, a, r, d, ct, pi: L.transformed_general_off_policy_returns_from_action_values(  # noqa: E501
                    getattr(L, pair), q, a, r, d, ct, pi),
                x["q_t"], x["a_t"], x["r_t"], x["discount_t"], x["c_t"], x["pi_t"]))
        c[f"transformed_q_lambda[{tag}]"] = lambda L, x, pair=pair: _vmap(
            functools.partial(L.transformed_q_lambda, lambda_=0.75, tx_pair=getattr(L, pair)),
            x["q_tm1"], x["a_tm1"], x["r_t"], x["discount_t"], x["q_t"])
        c[f"transformed_retrace[{tag}]"] = lambda L, x, pair=pair: _vmap(
            functools.partial(L.transformed_retrace, lambda_=0.9, tx_pair=getattr(L, pair)),
            x["q_tm1"], x["q_t"], x["a_tm1"], x["a_t"], x["r_t"], x["discount_t"], x["pi_t"],
            x["mu_t"])
        for n in (2, 4):
            c[f"transformed_n_step_q_learning[{tag}, n={n}]"] = (
                lambda L, x, pair=pair, n=n: _vmap(
                    functools.partial(L.transformed_n_step_q_learning, n=n,
                                      tx_pair=getattr(L, pair)),
                    x["q_tm1"], x["a_tm1"], x["q_t"], x["a_t"], x["r_t"], x["discount_t"]))
    c["transformed_lambda_returns[muzero_pair(-10, 10, 41)]"] = lambda L, x: _vmap(
        lambda r, d, v: L.transformed_lambda_returns(
            L.muzero_pair(-10.0, 10.0, 41, L.SIGNED_HYPERBOLIC_PAIR), r, d, v, 0.8),
        x["r_t"], x["discount_t"], x["probs41"])
    return c


def _signature(fn) -> list:
    """[(name, kind, repr(default))] of the arguments a caller passes.

    rlax builds its transformed returns with a decorator whose wrapper takes `tx_pair` first
    and then the wrapped function's arguments; `inspect.signature` shows only the wrapped
    ones, so `tx_pair` is put back in front here.
    """
    params = [(p.name, p.kind.name, _fmt_default(p.default))
              for p in inspect.signature(fn).parameters.values()]
    if hasattr(fn, "__wrapped__") and "tx_pair" not in [p[0] for p in params]:
        params = [("tx_pair", "POSITIONAL_OR_KEYWORD", "<required>")] + params
    return params


def _fmt_default(default) -> str:
    if default is inspect.Parameter.empty:
        return "<required>"
    if isinstance(default, tuple) and hasattr(default, "apply"):  # a TxPair
        return f"TxPair({default.apply.__name__}, {default.apply_inv.__name__})"
    return repr(default)


def _rlax_namespace():
    import rlax
    from rlax._src import nonlinear_bellman, transforms
    ns = {}
    for mod in (transforms, nonlinear_bellman, rlax):  # top level last: public names win
        ns.update({k: v for k, v in vars(mod).items() if not k.startswith("_")})
    return types.SimpleNamespace(**ns)


def _tdkit_namespace():
    from tdkit import nonlinear_bellman, transforms
    ns = {}
    for mod in (transforms, nonlinear_bellman):
        ns.update({k: v for k, v in vars(mod).items() if not k.startswith("_")})
    return types.SimpleNamespace(**ns)


def _run_cases(L, x: dict) -> tuple[dict, dict]:
    outputs, errors = {}, {}
    for name, fn in cases().items():
        try:
            outputs[name] = np.asarray(fn(L, x))
        except Exception as e:  # noqa: BLE001  (recorded and reported by compare)
            errors[name] = f"{type(e).__name__}: {e}"
    return outputs, errors


def _float64(x: dict) -> dict:
    return {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in x.items()}


def _run_both_precisions(L, x: dict) -> tuple[dict, dict, dict]:
    """float32 outputs, float64 outputs (enables jax x64 for the rest of the process), errors."""
    import jax
    out32, errors = _run_cases(L, x)
    jax.config.update("jax_enable_x64", True)
    out64, errors64 = _run_cases(L, _float64(x))
    errors.update({k: v for k, v in errors64.items() if k not in errors})
    return out32, out64, errors


def rlax_outputs(path: str, seed: int = 0) -> None:
    """Run where rlax is installed: writes inputs, rlax outputs and signatures to `path`.

    Every case runs twice: in float32 (the values compared) and in float64 (a reference
    that tells float32 rounding apart from a difference in the maths).
    """
    import jax
    import rlax
    L = _rlax_namespace()
    x = make_inputs(seed)
    meta = {
        "rlax_version": rlax.__version__,
        "jax_version": jax.__version__,
        "signatures": {n: _signature(getattr(L, n)) for n in SIGNATURE_NAMES},
        "TxPair_fields": list(L.TxPair._fields),
    }
    out32, out64, errors = _run_both_precisions(L, x)
    meta["errors"] = errors
    out = {f"in/{k}": v for k, v in x.items()}
    out.update({f"out/{k}": v for k, v in out32.items()})
    out.update({f"out64/{k}": v for k, v in out64.items()})
    out["meta"] = np.array(json.dumps(meta))
    np.savez(path, **out)
    print(f"rlax {rlax.__version__} (jax {jax.__version__}): {len(out32)} cases written to "
          f"{path}, {len(errors)} failed")


def _max_excess(ours, theirs, atol, rtol) -> float:
    """max(|ours - theirs| - atol - rtol |theirs|): <= 0 when allclose."""
    return float(np.max(np.abs(ours - theirs) - atol - rtol * np.abs(theirs)))


def compare(path: str, atol: float = TOL, rtol: float = TOL) -> int:
    """Run where tdkit is installed: prints the parity table; returns 0 when all agree.

    A case agrees when the float32 outputs are allclose (`atol`, `rtol`). Where they are
    not, it still agrees when the float64 outputs are allclose (plus the documented 2-hot
    bound): the difference is then float32 rounding, and the row says which library's
    float32 value is nearer rlax's float64 value.
    """
    data = np.load(path)
    meta = json.loads(str(data["meta"]))
    x = {k[3:]: data[k] for k in data.files if k.startswith("in/")}
    tdkit32, tdkit64, tdkit_errors = _run_both_precisions(_tdkit_namespace(), x)
    rows, failed = [], 0
    for name in cases():
        if name in meta["errors"] or name in tdkit_errors:
            rows.append((name, "FAILED", meta["errors"].get(name) or tdkit_errors[name]))
            failed += 1
            continue
        r32, r64 = data[f"out/{name}"], data[f"out64/{name}"]
        t32, t64 = tdkit32[name].astype(np.float64), tdkit64[name]
        if t32.shape != r32.shape:
            rows.append((name, "SHAPE", f"tdkit {t32.shape} vs rlax {r32.shape}"))
            failed += 1
            continue
        diff = f"max |tdkit - rlax| = {np.max(np.abs(t32 - r32)):.1e}"
        bound = next((b for key, b in TWO_HOT_BOUNDS.items() if key in name), None)
        extra = 0.0 if bound is None else bound(r64)
        if _max_excess(t32, r32, atol + extra, rtol) <= 0:
            rows.append((name, "ok", diff + (f" ({TWO_HOT_NOTE})" if bound else "")))
        elif _max_excess(t64, r64, atol + extra, rtol) <= 0:
            rows.append((name, "ok (f32)", diff + "; float64 agree; float32 error vs rlax "
                         f"f64: tdkit {np.max(np.abs(t32 - r64)):.1e}, rlax "
                         f"{np.max(np.abs(r32 - r64)):.1e}"
                         + (f" ({TWO_HOT_NOTE})" if bound else "")))
        else:
            rows.append((name, "DIFF", diff + f"; float64 {np.max(np.abs(t64 - r64)):.1e}"))
            failed += 1
    L = _tdkit_namespace()
    for name in SIGNATURE_NAMES:
        ours, theirs = _signature(getattr(L, name)), [tuple(p) for p in meta["signatures"][name]]
        if ours == theirs:
            rows.append((f"signature {name}", "same", _fmt_signature(ours)))
        elif name in DOCUMENTED_SIGNATURE_DIFFERENCES and [p[:2] for p in ours] == [
                p[:2] for p in theirs]:
            rows.append((f"signature {name}", "documented",
                         DOCUMENTED_SIGNATURE_DIFFERENCES[name] + "; " + _fmt_signature(ours)))
        else:
            rows.append((f"signature {name}", "DIFF", f"tdkit {ours} vs rlax {theirs}"))
            failed += 1
    fields = list(L.TxPair._fields)
    rows.append(("TxPair fields", "same" if fields == meta["TxPair_fields"] else "DIFF",
                 str(fields)))
    failed += fields != meta["TxPair_fields"]
    width = max(len(r[0]) for r in rows)
    print(f"tdkit vs rlax {meta['rlax_version']} (rlax on jax {meta['jax_version']}), "
          f"atol {atol:g}, rtol {rtol:g}")
    for name, status, detail in rows:
        print(f"{name:<{width}}  {status:<10}  {detail}")
    print(f"{len(rows) - failed}/{len(rows)} rows agree")
    return 1 if failed else 0


def _fmt_signature(params) -> str:
    star = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}
    return "(" + ", ".join(star.get(k, "") + (n if d == "<required>" else f"{n}={d}")
                           for n, k, d in params) + ")"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("dump", "compare", "both"))
    parser.add_argument("path", nargs="?", default="/tmp/rlax_transforms.npz")
    parser.add_argument("--rlax-python", default=None,
                        help="python of an environment with rlax (for `both`)")
    args = parser.parse_args(argv)
    if args.step == "dump":
        rlax_outputs(args.path)
        return 0
    if args.step == "both":
        if not args.rlax_python:
            parser.error("`both` needs --rlax-python")
        subprocess.run([args.rlax_python, __file__, "dump", args.path], check=True)
    return compare(args.path)


if __name__ == "__main__":
    sys.exit(main())
