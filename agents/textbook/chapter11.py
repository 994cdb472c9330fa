"""Chapter 11, off-policy methods with approximation: Baird's counterexample.

- Figure 11.2: semi-gradient off-policy TD (sample updates) and semi-gradient DP (expected
  updates) diverge.
- Figure 11.5: TDC, sample and expected updates: the projected Bellman error goes to 0.
- Figure 11.6: expected one-step emphatic TD converges.

Sample updates run `prediction.Predictor`s on behaviour-policy streams with importance
ratios; expected updates iterate `tdkit.dp` under the uniform state distribution.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.textbook import prediction
from agents.textbook.results import find_series, fmt, make_series
from agents.textbook.streams import feature_streams, sample_streams, sweep_predictor
from tdkit import dp, gradient_td

Array = jax.Array


class BairdTask(NamedTuple):
    """Baird's counterexample for the experiments: environment, target-policy model
    (`P [7, 7]`, `r [7]`, `gamma`), features `X [7, 8]`, uniform behaviour distribution
    `mu`, true values and the book's initial weights."""

    env: Any
    params: Any
    P: Array
    r: Array
    gamma: float
    X: Array
    mu: Array
    v_true: Array
    w0: Array


def baird_task() -> BairdTask:
    """The `BairdTask` built from `envs.make("BairdCounterexample-v0")` and its extras."""
    env, params = envs.make("BairdCounterexample-v0")
    ex = env.extras
    model = ex["model"]
    P = np.einsum("sa,sat->st", ex["target_policy"], model.transition)
    r = np.einsum("sa,sa->s", ex["target_policy"], model.reward)
    f32 = lambda a: np.asarray(a, np.float32)
    num_states = int(ex["num_states"])
    return BairdTask(env, params, f32(P), f32(r), float(ex["gamma"]), f32(ex["feature_matrix"]),
                  f32(np.full(num_states, 1.0 / num_states)), f32(ex["true_values"]),
                  f32(ex["initial_weights"]))


def baird_streams(b: BairdTask, key: Array, runs: int, num_steps: int) -> prediction.Stream:
    """Behaviour-policy experience (b(solid) = 1/7) with importance ratios (0 or 7): `runs`
    streams of `num_steps` steps, features as observations (traceable)."""
    probs = np.asarray(b.env.extras["behaviour_probs"], np.float32)
    ratios = np.asarray(b.env.extras["importance_ratios"], np.float32)

    def actions(k):
        action = jax.random.choice(k, probs.shape[0], p=probs).astype(jnp.int32)
        return action, jnp.asarray(ratios)[action]

    data = sample_streams(b.env, b.params, jax.random.split(key, runs), num_steps,
                          actions=actions)
    return feature_streams(data, None, gamma=b.gamma)


def _baird_observe(b: BairdTask) -> Callable:
    """`w -> (w [8], sqrt(VE), sqrt(PBE))` under the uniform behaviour state distribution."""
    def observe(w):
        return (w, dp.rms_value_error(w, b.X, b.v_true, b.mu),
                dp.rms_projected_bellman_error(w, b.P, b.r, b.gamma, b.X, b.mu))
    return observe


def _baird_series(method: str, label: str, ws: Array, extra: Mapping[str, Array],
                  params: Mapping[str, Any]) -> list[dict]:
    ws = np.asarray(ws)
    x = np.arange(ws.shape[0])
    out = [make_series(f"{label} w{i + 1}", {"method": method, "quantity": f"w{i + 1}",
                                              **params}, x, ws[:, i]) for i in range(8)]
    for quantity, values in extra.items():
        out.append(make_series(f"{label} sqrt({quantity})",
                               {"method": method, "quantity": quantity, **params}, x, values))
    return out


def _baird_sample_run(b: BairdTask, key: Array, runs: int, method: str,
                      hparams: Mapping[str, float], num_steps: int = 1000):
    """Mean over runs of (w, sqrt VE, sqrt PBE) before and after each of `num_steps` steps."""
    predictor = prediction.make_predictor(method)
    observe = _baird_observe(b)

    @jax.jit
    def compute(key):
        streams = baird_streams(b, key, runs, num_steps)
        records = sweep_predictor(predictor, b.w0, [], streams, observe, num_steps,
                                  fixed=hparams)
        first = jax.tree.map(lambda v: jnp.broadcast_to(v, (runs, 1) + v.shape), observe(b.w0))
        return jax.tree.map(lambda f, rec: jnp.concatenate([f, rec], axis=1).mean(axis=0),
                            first, records)

    return jax.device_get(compute(key))


def figure_11_2(key: Array, runs: int) -> list[dict]:
    """Figure 11.2: semi-gradient off-policy TD (left) and semi-gradient DP (right) diverge."""
    b = baird_task()
    ws, _, _ = _baird_sample_run(b, key, runs, "td", {"alpha": 0.01})

    @jax.jit
    def expected():
        _, hist = dp.iterate(
            lambda w: dp.expected_td_update(w, b.P, b.r, b.gamma, b.X, b.mu, 0.01), b.w0, 1000)
        return hist

    return (_baird_series("td", "TD", ws, {}, {"alpha": 0.01})
            + _baird_series("semi_gradient_dp", "DP", jax.device_get(expected()), {},
                            {"alpha": 0.01}))


def figure_11_5(key: Array, runs: int) -> list[dict]:
    """Figure 11.5: TDC (left, sample updates; right, expected updates), alpha 0.005, beta 0.05."""
    b = baird_task()
    hp = {"alpha": 0.005, "beta": 0.05}
    ws, ve, pbe = _baird_sample_run(b, key, runs, "tdc", hp)
    observe = _baird_observe(b)

    @jax.jit
    def expected():
        _, hist = dp.iterate(
            lambda s: dp.expected_tdc_update(s, b.P, b.r, b.gamma, b.X, b.mu, 0.005, 0.05),
            gradient_td.gtd_init(b.w0), 1000)
        return jax.vmap(observe)(hist.w)

    e_ws, e_ve, e_pbe = jax.device_get(expected())
    return (_baird_series("tdc", "TDC", ws, {"VE": ve, "PBE": pbe}, {"alpha": 0.005})
            + _baird_series("expected_tdc", "Expected TDC", e_ws, {"VE": e_ve, "PBE": e_pbe},
                            {"alpha": 0.005}))


def figure_11_6(key: Array, runs: int) -> list[dict]:
    """Figure 11.6: expected one-step emphatic TD, alpha 0.03 (emphasis from M = 0 at t = 0)."""
    del key, runs  # deterministic expected updates
    b = baird_task()
    observe = _baird_observe(b)

    @jax.jit
    def expected():
        def sweep(state):
            w, f = state
            f = dp.expected_followon_update(f, b.P, b.gamma, b.mu)
            return dp.expected_emphatic_td_update(w, f, b.P, b.r, b.gamma, b.X, 0.03), f

        _, (ws, _) = dp.iterate(sweep, (b.w0, jnp.zeros_like(b.mu)), 1000)
        return jax.vmap(observe)(ws)

    ws, ve, _ = jax.device_get(expected())
    return _baird_series("expected_etd", "Expected ETD", ws, {"VE": ve}, {"alpha": 0.03})


def _weights_at_end(result, method):
    return [find_series(result, method=method, quantity=f"w{i}")["y"][-1] for i in range(1, 9)]


def summary_11_2(result):
    dp_w = _weights_at_end(result, "semi_gradient_dp")
    td_w = _weights_at_end(result, "td")
    return [("DP after 1000 sweeps: w1..w6", fmt(dp_w[0], 6), "114.434 (exact)"),
            ("DP after 1000 sweeps: w7", fmt(dp_w[6], 6), "6.850 (exact)"),
            ("DP after 1000 sweeps: w8", fmt(dp_w[7], 6), "335.001 (exact)"),
            ("TD after 1000 steps: max |w|", fmt(max(abs(w) for w in td_w)),
             "diverges (weights grow without bound)")]


def summary_11_5(result):
    rows = []
    for method, label in (("tdc", "TDC"), ("expected_tdc", "Expected TDC")):
        pbe = find_series(result, method=method, quantity="PBE")["y"]
        ve = find_series(result, method=method, quantity="VE")["y"]
        rows.append((f"{label}: sqrt(PBE) at 0 / 1000", f"{fmt(pbe[0])} / {fmt(pbe[-1])}",
                     "goes to 0"))
        rows.append((f"{label}: sqrt(VE) at 1000", fmt(ve[-1]), "stays near 2"))
    return rows


def summary_11_6(result):
    ve = find_series(result, method="expected_etd", quantity="VE")["y"]
    return [("Expected ETD: sqrt(VE) at 0 / 1000", f"{fmt(ve[0])} / {fmt(ve[-1])}",
             "goes to 0 (converges)")]
