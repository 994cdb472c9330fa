"""Chapter 12, eligibility traces: Figures 12.3, 12.6 and 12.8 on the 19-state random walk.

Error vs alpha for each lambda under the protocol of Figure 7.2
(`chapter7.nineteen_state_sweep`): the off-line lambda-return algorithm, TD(lambda) with
accumulating traces and true online TD(lambda).
"""

import jax

from agents.textbook import prediction
from agents.textbook.chapter7 import nineteen_state_sweep, summary_grid
from agents.textbook.results import make_series

Array = jax.Array

LAMBDAS = [0.0, 0.4, 0.8, 0.9, 0.95, 0.975, 0.99, 1.0]
ALPHAS_12 = [round(0.05 * i, 2) for i in range(21)]


def lambda_figure(method: str, key: Array, runs: int) -> list[dict]:
    """Error vs alpha for each lambda of `LAMBDAS`, for the prediction method `method`."""
    err = nineteen_state_sweep(key, runs, prediction.make_predictor(method),
                               [("lambda_", LAMBDAS), ("alpha", ALPHAS_12)])
    return [make_series(f"lambda={lam}", {"method": method, "lambda": lam}, ALPHAS_12,
                        err[i]) for i, lam in enumerate(LAMBDAS)]


def figure_12_3(key: Array, runs: int) -> list[dict]:
    """Figure 12.3: off-line lambda-return algorithm, error vs alpha for each lambda."""
    return lambda_figure("offline_lambda_return", key, runs)


def figure_12_6(key: Array, runs: int) -> list[dict]:
    """Figure 12.6: TD(lambda) with accumulating traces, error vs alpha for each lambda."""
    return lambda_figure("td_lambda", key, runs)


def figure_12_8(key: Array, runs: int) -> list[dict]:
    """Figure 12.8: true online TD(lambda), error vs alpha for each lambda."""
    return lambda_figure("true_online_td_lambda", key, runs)


summary_12_3 = summary_grid("lambda", "intermediate lambda (about 0.8) best")
summary_12_6 = summary_grid("lambda", "intermediate lambda (about 0.8) best; large alpha "
                            "degrades badly")
summary_12_8 = summary_grid("lambda", "intermediate lambda (about 0.8) best; slightly better "
                            "than off-line lambda-return")
