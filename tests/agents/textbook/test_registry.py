"""Every registered experiment runs end to end with a few runs and returns the result schema.

The statistical facts of each experiment are checked in the chapter tests
(test_chapter6.py, ...); the exact values (Baird's DP weights, sqrt(0.3) at alpha = 0, ...)
in tests/tdkit.
"""

import json
import math

import pytest

from agents import textbook

SCHEMA_RUNS = {"figure-6.5": 50}


def test_names_are_the_registry_in_order():
    assert textbook.names() == list(textbook.EXPERIMENTS)
    assert textbook.names()[0] == "example-6.2" and textbook.names()[-1] == "boyan-lstd"
    assert len(textbook.names()) == 13


@pytest.mark.slow
@pytest.mark.parametrize("name", textbook.names())
def test_result_schema(name, tmp_path, experiment_result):
    runs = SCHEMA_RUNS.get(name, 2)
    res = experiment_result(name, runs)
    assert set(res) == {"experiment", "runs", "seconds", "series"}
    assert res["experiment"] == name and res["runs"] == runs and res["seconds"] > 0
    assert res["series"]
    labels = [s["label"] for s in res["series"]]
    assert len(set(labels)) == len(labels)
    for s in res["series"]:
        assert set(s) == {"label", "params", "x", "y"}
        assert isinstance(s["label"], str) and s["label"]
        assert set(s["params"]) <= set(textbook.PARAM_KEYS) and "method" in s["params"]
        assert len(s["x"]) == len(s["y"]) > 1
        assert all(isinstance(v, float) for v in s["x"])
        assert all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in s["y"])
    if name.startswith(("figure-11", "boyan")):
        assert all("quantity" in s["params"] for s in res["series"])
    paths = textbook.save_result(res, tmp_path, plot=False)
    assert json.loads(paths["json"].read_text()) == res
    table = textbook.format_table(res)
    assert textbook.EXPERIMENTS[name].title in table and "book" in table


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown experiment"):
        textbook.run_experiment("figure-99")
    with pytest.raises(ValueError, match="runs"):
        textbook.run_experiment("example-6.2", runs=0)
    with pytest.raises(ValueError, match="runs"):
        textbook.run_experiment("example-6.2", runs=True)
