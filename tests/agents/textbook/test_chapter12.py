"""Chapter 12: Figures 12.3, 12.6 and 12.8 with a few runs."""

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("name", ["figure-12.3", "figure-12.6", "figure-12.8"])
def test_figures_12_intermediate_lambda_is_best(name, experiment_result):
    res = experiment_result(name, 10)
    best = {s["params"]["lambda"]: min(y for y in s["y"] if y is not None)
            for s in res["series"]}
    lam_best = min(best, key=best.get)
    assert 0.4 <= lam_best <= 0.9
    assert best[0.0] > best[lam_best] + 0.03 and best[1.0] > best[lam_best] + 0.1
