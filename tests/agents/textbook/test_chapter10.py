"""Chapter 10: Figure 10.2's result with two runs."""

import numpy as np
import pytest


def mean_y(series, start=None, stop=None):
    return float(np.mean(np.asarray(series["y"][start:stop], np.float64)))


@pytest.mark.slow
def test_figure_10_2_mountain_car_steps_per_episode_fall(experiment_result):
    res = experiment_result("figure-10.2", 2)
    for s in res["series"]:
        assert s["y"][0] > 500.0
        assert mean_y(s, -50) < 200.0
