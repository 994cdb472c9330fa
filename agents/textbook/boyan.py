"""Boyan's chain (Boyan 2002): LSTD(0) against the linear TD family.

RMS value error vs episodes of LSTD(0), TD(0), TDC, GTD2, TDRC and ETD(0), every method
on the same episodes of each run (`prediction.Predictor`s swept over one stream per run).
"""

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.textbook import prediction
from agents.textbook.results import fmt, make_series
from agents.textbook.streams import feature_streams, fused_streams, sweep_predictor

Array = jax.Array

BOYAN_METHODS = (
    ("lstd", "LSTD(0)", {"lambda_": 0.0, "epsilon": 0.1}),
    ("td", "TD(0)", {"alpha": 0.1}),
    ("tdc", "TDC", {"alpha": 0.3, "beta": 0.3}),
    ("gtd2", "GTD2", {"alpha": 0.3, "beta": 0.1}),
    ("tdrc", "TDRC", {"alpha": 0.1, "eta": 1.0, "beta_reg": 1.0}),
    ("etd", "ETD(0)", {"alpha": 0.03, "lambda_": 0.0}),
)
"""(method, label, hyperparameters) of the Boyan-chain comparison; the step sizes are the
best final errors of a small grid (alpha, beta in {0.3, 0.1, 0.03}, 30 runs)."""


def boyan_lstd(key: Array, runs: int, methods=BOYAN_METHODS) -> list[dict]:
    """Boyan chain: RMS value error over the 12 non-terminal states vs episodes, per method.

    Every method sees the same episodes in each run (4 interpolated features, gamma = 1,
    on-policy so rho = 1); LSTD(0) and the TD family share the fixed point w* =
    (-24, -16, -8, 0), where the error is 0.
    """
    episodes = 100
    env, params = envs.make("BoyanChain-v0", observation="features")
    v_true = np.asarray(env.extras["true_values"], np.float32)
    X = np.asarray(env.extras["feature_matrix"], np.float32)
    inner = np.asarray(env.extras["nonterminal_states"])
    w0 = np.zeros(X.shape[1], np.float32)

    def rmse(w):
        xp = np if isinstance(w, np.ndarray) else jnp
        return xp.sqrt(xp.mean((X[inner] @ w - v_true[inner]) ** 2))

    def compute(data):
        streams = feature_streams(data, None)
        return [sweep_predictor(prediction.make_predictor(m), w0, [], streams, rmse, episodes,
                                fixed=hp).mean(axis=0) for m, _, hp in methods]

    # 100 episodes of about 8 steps each.
    errors = fused_streams(env, params, key, runs, episodes, compute, 1024)
    x = np.arange(episodes + 1)
    start = float(rmse(w0))
    swept = lambda hp: {k: hp[k] for k in ("alpha",) if k in hp}
    return [make_series(label, {"method": m, "quantity": "rmse", **swept(hp)}, x,
                        np.concatenate([[start], err]))
            for (m, label, hp), err in zip(methods, errors, strict=True)]


def summary_boyan(result):
    return [(f"{s['label']}: RMS error after 10 / 100 episodes",
             f"{fmt(s['y'][10])} / {fmt(s['y'][-1])}",
             "LSTD fastest; all share the fixed point w* (error 0)")
            for s in result["series"]]
