"""Chapter 7: Figure 7.2's result with a few runs."""

import pytest


@pytest.mark.slow
def test_figure_7_2_intermediate_n_is_best(experiment_result):
    res = experiment_result("figure-7.2", 10)
    best = {s["params"]["n"]: min(y for y in s["y"] if y is not None) for s in res["series"]}
    n_best = min(best, key=best.get)
    assert n_best in (2, 4, 8)
    assert best[1] > best[n_best] + 0.03 and best[512] > best[n_best] + 0.1
    assert res["series"][0]["y"][0] == pytest.approx(0.3 ** 0.5, abs=1e-6)  # alpha = 0
