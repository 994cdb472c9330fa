"""Chapter 7, n-step bootstrapping: Figure 7.2 (n-step TD on the 19-state random walk).

The protocol of Figure 7.2 (mean RMS error over the first 10 episodes and over runs, for
every grid setting, all settings of a run on the same episodes) is shared with the
lambda figures of Chapter 12 (`nineteen_state_sweep`, `summary_grid`).
"""

from collections.abc import Sequence

import jax
import numpy as np

from agents.textbook import prediction
from agents.textbook.results import argmin, fmt, make_series
from agents.textbook.streams import (
    feature_streams,
    fused_streams,
    random_walk_task,
    sweep_predictor,
)

Array = jax.Array

N_VALUES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
ALPHAS_7_2 = [round(0.1 * i, 1) for i in range(11)]


def nineteen_state_sweep(key: Array, runs: int, predictor: prediction.Predictor,
                         axes: Sequence[tuple[str, Sequence[float]]]) -> np.ndarray:
    """Figure 7.2 protocol: mean RMS over episodes 1..10 and runs, for each grid setting.

    Returns:
      `[K_1, ..., K_m]`, one error per setting of the grid `axes` (outermost first).
    """
    episodes = 10
    env, params, table, _, rms = random_walk_task(19)
    w0 = np.zeros(table, np.float32)

    def compute(data):
        err = sweep_predictor(predictor, w0, axes, feature_streams(data, table), rms, episodes)
        return err.mean(axis=(0, -1))

    # 10 episodes of 100 +- 81 steps: 2048 steps are nearly always enough.
    return np.asarray(fused_streams(env, params, key, runs, episodes, compute, 2048))


def figure_7_2(key: Array, runs: int) -> list[dict]:
    """Figure 7.2: n-step TD on the 19-state walk, error vs alpha for each n."""
    err = nineteen_state_sweep(key, runs, prediction.make_predictor("n_step_td"),
                               [("n", N_VALUES), ("alpha", ALPHAS_7_2)])
    return [make_series(f"n={n}", {"method": "n_step_td", "n": n}, ALPHAS_7_2, err[i])
            for i, n in enumerate(N_VALUES)]


def summary_grid(key: str, book_best: str):
    """`summary(result)` of an error-vs-alpha figure with one series per value of `key`."""
    def summary(result):
        rows = []
        best = None
        for s in result["series"]:
            alpha, err = argmin(s)
            rows.append((f"{s['label']}: min error (at alpha)", f"{fmt(err)} ({alpha:g})", ""))
            if best is None or err < best[0]:
                best = (err, s["params"][key], alpha)
        alpha0 = result["series"][0]["y"][0]
        rows.append(("error at alpha = 0", fmt(alpha0, 6), "sqrt(0.3) = 0.547723 (exact)"))
        rows.append((f"best (error, {key}, alpha)", f"{fmt(best[0])}, {best[1]:g}, {best[2]:g}",
                     book_best))
        return rows
    return summary


summary_7_2 = summary_grid("n", "about 0.26-0.28 near n = 4, alpha = 0.4")
