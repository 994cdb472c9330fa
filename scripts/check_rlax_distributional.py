"""Parity of `tdkit.distributional` with rlax 0.1.9: values, gradients and signatures.

Needs rlax installed next to tdkit (rlax 0.1.9 works with jax 0.10), e.g.:

    python3 -m venv /work/rlax-venv && /work/rlax-venv/bin/pip install rlax==0.1.9
    PYTHONPATH=. /work/rlax-venv/bin/python scripts/check_rlax_distributional.py

`compare(rlax_module, tdkit_module)` returns the table as a list of rows (dicts), so that a
script comparing all of tdkit can import it. Exit status 1 if any row fails.
"""

import argparse
import inspect
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

TOLERANCE = 1e-5

# rlax functions that tdkit.distributional re-implements, with the same signature.
SAME_SIGNATURE = (
    "categorical_l2_project",
    "categorical_td_learning",
    "categorical_q_learning",
    "categorical_double_q_learning",
    "quantile_regression_loss",
    "quantile_q_learning",
    "quantile_expected_sarsa",
)

B, A, K, K_T, N, N_T = 64, 4, 11, 7, 8, 12  # batch, actions, atoms (tm1, t), quantiles (tm1, t)


def _inputs(seed: int = 0) -> dict[str, np.ndarray]:
    """Fixed random batched inputs (float32 / int32)."""
    rng = np.random.default_rng(seed)
    f = lambda *shape, scale=1.0: (scale * rng.standard_normal(shape)).astype(np.float32)
    midpoints = ((2 * np.arange(N) + 1) / (2 * N)).astype(np.float32)
    logits = f(B, A, K_T, scale=2.0)
    return dict(
        z_p=f(B, K_T, scale=6.0),  # unsorted, partly outside the support
        probs=np.asarray(jax.nn.softmax(f(B, K_T, scale=2.0))),
        z_q=np.broadcast_to(np.linspace(-5.0, 5.0, K, dtype=np.float32), (B, K)).copy(),
        atoms_t=np.broadcast_to(np.linspace(-3.0, 4.0, K_T, dtype=np.float32), (B, K_T)).copy(),
        v_logits_tm1=f(B, K, scale=2.0),
        v_logits_t=f(B, K_T, scale=2.0),
        q_logits_tm1=f(B, A, K, scale=2.0),
        q_logits_t=logits,
        q_t_selector=f(B, A),
        a_tm1=rng.integers(0, A, B).astype(np.int32),
        r_t=f(B, scale=2.0),
        discount_t=np.where(rng.random(B) < 0.1, 0.0, rng.random(B)).astype(np.float32),
        dist_tm1=f(B, N, A, scale=2.0),
        dist_t=f(B, N_T, A, scale=2.0),
        dist_t_selector=f(B, 5, A, scale=2.0),
        tau=np.broadcast_to(midpoints, (B, N)).copy(),
        tau_sampled=rng.uniform(0.0, 1.0, (B, N)).astype(np.float32),
        dist_src=f(B, N, scale=2.0),
        dist_target=f(B, N_T, scale=2.0),
        probs_a_t=np.asarray(jax.nn.softmax(f(B, A))),
    )


def _max_diff(x: Any, y: Any) -> float:
    leaves = jax.tree.leaves(jax.tree.map(lambda a, b: np.max(np.abs(np.asarray(a) - b)), x, y))
    return float(max(leaves))


def _row(name: str, check: str, diff: float | None, ok: bool, detail: str = "") -> dict:
    return dict(name=name, check=check, max_abs_diff=diff, ok=ok, detail=detail)


def _signature_row(name: str, rlax_fn: Callable, tdkit_fn: Callable) -> dict:
    params = lambda fn: [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]
    ours, theirs = params(tdkit_fn), params(rlax_fn)
    detail = "" if ours == theirs else f"rlax {theirs} vs tdkit {ours}"
    text = ", ".join(n if d is inspect.Parameter.empty else f"{n}={d!r}" for n, d in ours)
    return _row(name, "signature", None, ours == theirs, detail or f"({text})")


def _value_rows(name: str, rlax_fn: Callable, tdkit_fn: Callable, args: tuple,
                argnums: tuple[int, ...] = (), has_stop: bool = True, **kwargs: Any) -> list[dict]:
    """Values and Jacobians w.r.t. `argnums` (vmapped over the batch), with the default
    `stop_target_gradients` and, if the function `has_stop`, with it False."""
    rows = []
    for stop in (True, False) if has_stop else (None,):
        flag = {} if stop is None else {"stop_target_gradients": stop}
        bind = lambda fn, flag=flag: (lambda *a: fn(*a, **kwargs, **flag))
        suffix = ", stop_target_gradients=False" if stop is False else ""
        if stop is not False:
            diff = _max_diff(jax.vmap(bind(tdkit_fn))(*args), jax.vmap(bind(rlax_fn))(*args))
            rows.append(_row(name, "values", diff, diff <= TOLERANCE))
        if argnums:  # Jacobians, so that vector outputs (the projection) work too.
            jac = lambda fn, bind=bind: jax.vmap(jax.jacrev(bind(fn), argnums=argnums))(*args)
            diff = _max_diff(jac(tdkit_fn), jac(rlax_fn))
            rows.append(_row(name, f"grads wrt args {argnums}{suffix}", diff, diff <= TOLERANCE))
    return rows


def _rule_rows(rlax_module: Any, tdkit_module: Any, x: dict) -> list[dict]:
    """`categorical_rule` / `quantile_rule` through `td_loss` against rlax on the same outputs."""
    from tdkit import losses, types, values

    obs_dim, k = 3, K
    base = values.mlp((16,), num_outputs=A * k)
    value_fn = values.ValueFn(base.init, lambda p, o: base.apply(p, o).reshape(A, k))
    params = value_fn.init(jax.random.PRNGKey(1), jnp.zeros(obs_dim))
    target_params = value_fn.init(jax.random.PRNGKey(2), jnp.zeros(obs_dim))
    rng = np.random.default_rng(3)
    batch = types.Transition(
        obs_tm1=rng.standard_normal((B, obs_dim)).astype(np.float32), a_tm1=x["a_tm1"],
        r_t=x["r_t"], discount_t=x["discount_t"],
        obs_t=rng.standard_normal((B, obs_dim)).astype(np.float32))
    apply = jax.vmap(value_fn.apply, in_axes=(None, 0))
    out_tm1 = apply(params, batch.obs_tm1)
    out_t = apply(target_params, batch.obs_t)
    out_sel = apply(params, batch.obs_t)
    atoms = np.linspace(-5.0, 5.0, k, dtype=np.float32)
    taus = ((2 * np.arange(k) + 1) / (2 * k)).astype(np.float32)
    common = (batch.a_tm1, batch.r_t, batch.discount_t)
    cat = lambda lt1, a, r, d, lt: rlax_module.categorical_q_learning(atoms, lt1, a, r, d, atoms,
                                                                      lt)
    cat2 = lambda lt1, a, r, d, lt, ls: rlax_module.categorical_double_q_learning(
        atoms, lt1, a, r, d, atoms, lt, jax.nn.softmax(ls) @ atoms)
    qr = lambda q1, a, r, d, sel, q: rlax_module.quantile_q_learning(
        q1.T, taus, a, r, d, sel.T, q.T, 1.0)
    expected = {
        "categorical_rule(atoms)": jax.vmap(cat)(out_tm1, *common, out_t),
        "categorical_rule(atoms, double=True)": jax.vmap(cat2)(out_tm1, *common, out_t, out_sel),
        "quantile_rule(K)": jax.vmap(qr)(out_tm1, *common, out_t, out_t),
        "quantile_rule(K, double=True)": jax.vmap(qr)(out_tm1, *common, out_sel, out_t),
    }
    rules = {
        "categorical_rule(atoms)": tdkit_module.categorical_rule(atoms),
        "categorical_rule(atoms, double=True)": tdkit_module.categorical_rule(atoms, double=True),
        "quantile_rule(K)": tdkit_module.quantile_rule(k),
        "quantile_rule(K, double=True)": tdkit_module.quantile_rule(k, double=True),
    }
    rows = []
    for name, rule in rules.items():
        loss = losses.td_loss(value_fn, rule)
        ours = jax.vmap(loss, in_axes=(None, None, 0))(params, target_params, batch)
        diff = _max_diff(ours, expected[name])
        rows.append(_row(name, "td_loss values vs rlax", diff, diff <= TOLERANCE))
    return rows


def compare(rlax_module: Any, tdkit_module: Any) -> list[dict]:
    """Rows `{name, check, max_abs_diff, ok, detail}` comparing tdkit's distributional rules
    with rlax's on fixed random batches of 64 (values, gradients, signatures)."""
    x = _inputs()
    rows = []
    for name in SAME_SIGNATURE:
        rows.append(_signature_row(name, getattr(rlax_module, name), getattr(tdkit_module, name)))
    fn = lambda name: (getattr(rlax_module, name), getattr(tdkit_module, name))
    common = (x["a_tm1"], x["r_t"], x["discount_t"])
    rows += _value_rows("categorical_l2_project", *fn("categorical_l2_project"),
                        (x["z_p"], x["probs"], x["z_q"]), argnums=(0, 1), has_stop=False)
    rows += _value_rows(
        "categorical_td_learning", *fn("categorical_td_learning"),
        (x["z_q"], x["v_logits_tm1"], x["r_t"], x["discount_t"], x["atoms_t"], x["v_logits_t"]),
        argnums=(1, 5))
    rows += _value_rows(
        "categorical_q_learning", *fn("categorical_q_learning"),
        (x["z_q"], x["q_logits_tm1"], *common, x["atoms_t"], x["q_logits_t"]), argnums=(1, 6))
    rows += _value_rows(
        "categorical_double_q_learning", *fn("categorical_double_q_learning"),
        (x["z_q"], x["q_logits_tm1"], *common, x["atoms_t"], x["q_logits_t"], x["q_t_selector"]),
        argnums=(1, 6))
    for huber in (0.0, 1.0):
        # Gradients w.r.t. dist_src only: rlax's flag never stops dist_target here (see
        # tdkit.distributional's docstring), tdkit's does.
        rows += _value_rows(
            f"quantile_regression_loss(huber_param={huber})", *fn("quantile_regression_loss"),
            (x["dist_src"], x["tau"], x["dist_target"]), argnums=(0,), huber_param=huber)
        rows += _value_rows(
            f"quantile_q_learning(huber_param={huber})", *fn("quantile_q_learning"),
            (x["dist_tm1"], x["tau"], *common, x["dist_t_selector"], x["dist_t"]),
            argnums=(0, 6), huber_param=huber)
        rows += _value_rows(
            f"quantile_expected_sarsa(huber_param={huber})", *fn("quantile_expected_sarsa"),
            (x["dist_tm1"], x["tau"], *common, x["dist_t"], x["probs_a_t"]),
            argnums=(0, 5, 6), huber_param=huber)
    # The documented difference: rlax's quantile_regression_loss differentiates through
    # `dist_target` whatever its flag; tdkit agrees with it only for stop_target_gradients=False.
    qr_args = (x["dist_src"], x["tau"], x["dist_target"])
    rlax_qr, tdkit_qr = fn("quantile_regression_loss")
    jac = lambda f, stop: jax.vmap(jax.grad(
        lambda *a: f(*a, stop_target_gradients=stop), argnums=2))(*qr_args)
    diff = _max_diff(jac(tdkit_qr, False), jac(rlax_qr, True))
    rows.append(_row("quantile_regression_loss", "grads wrt dist_target: tdkit(False) vs "
                     "rlax(True)", diff, diff <= TOLERANCE,
                     "rlax's flag does not stop dist_target; tdkit's does (documented)"))
    # IQN = rlax's quantile_q_learning at sampled levels, N != N', Huber 1 by default.
    rows += _value_rows(
        "iqn_q_learning vs rlax.quantile_q_learning(huber_param=1.0)",
        lambda *a, **k: rlax_module.quantile_q_learning(*a, huber_param=1.0, **k),
        tdkit_module.iqn_q_learning,
        (x["dist_tm1"], x["tau_sampled"], *common, x["dist_t_selector"], x["dist_t"]),
        argnums=(0, 6))
    rows += _rule_rows(rlax_module, tdkit_module, x)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| function | check | max abs diff | ok | detail |", "|---|---|---|---|---|"]
    for r in rows:
        diff = "" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
        lines.append(f"| {r['name']} | {r['check']} | {diff} | {'yes' if r['ok'] else 'NO'} "
                     f"| {r['detail']} |")
    return "\n".join(lines)


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    import rlax

    import tdkit.distributional

    print(f"rlax {getattr(rlax, '__version__', '?')}, jax {jax.__version__}")
    rows = compare(rlax, tdkit.distributional)
    print(format_table(rows))
    failed = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(failed)}/{len(rows)} rows agree (tolerance {TOLERANCE})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
