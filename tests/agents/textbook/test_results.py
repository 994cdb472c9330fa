"""The result schema: series, look-up, strict JSON, the table and the figure."""

import json
import math

import numpy as np
import pytest

from agents.textbook import report, results


def fake_result():
    """A result of the registered experiment figure-11.6 with hand-made series."""
    return {"experiment": "figure-11.6", "runs": 1, "seconds": 0.5, "series": [
        results.make_series(f"Expected ETD w{i}", {"method": "expected_etd",
                                                   "quantity": f"w{i}", "alpha": 0.03},
                            [0, 1, 2], [1.0, 2.0, float(i)]) for i in range(1, 9)] + [
        results.make_series("Expected ETD sqrt(VE)", {"method": "expected_etd",
                                                      "quantity": "VE", "alpha": 0.03},
                            np.arange(3), np.array([4.0, 2.0, 0.5]))]}


def test_make_series_writes_floats_and_non_finite_values_as_null():
    s = results.make_series("a", {"method": "td", "n": np.int64(4), "alpha": np.float32(0.5)},
                            np.arange(3), [1.0, math.inf, math.nan])
    assert s == {"label": "a", "params": {"method": "td", "n": 4, "alpha": 0.5},
                 "x": [0.0, 1.0, 2.0], "y": [1.0, None, None]}
    assert type(s["params"]["n"]) is int and type(s["params"]["alpha"]) is float
    json.dumps(s, allow_nan=False)


def test_make_series_rejects_unknown_keys_and_length_mismatch():
    with pytest.raises(ValueError, match="params keys"):
        results.make_series("x", {"beta": 1.0}, [0.0], [1.0])
    with pytest.raises(ValueError, match="same length"):
        results.make_series("x", {"method": "td"}, [0.0, 1.0], [1.0])


def test_find_series_matches_floats_and_requires_one_match():
    res = fake_result()
    assert results.find_series(res, quantity="w3")["y"] == [1.0, 2.0, 3.0]
    assert results.find_series(res, quantity="VE", alpha=0.03 + 1e-12)["label"].endswith("(VE)")
    with pytest.raises(ValueError, match="9 series match"):
        results.find_series(res, method="expected_etd")
    with pytest.raises(ValueError, match="0 series match"):
        results.find_series(res, quantity="PBE")


def test_summary_helpers():
    assert results.fmt(None) == "nan" and results.fmt(math.inf) == "nan"
    assert results.fmt(0.2357022, 6) == "0.235702"
    assert results.argmin({"x": [0.0, 0.1, 0.2], "y": [0.5, None, 0.25]}) == (0.2, 0.25)


def test_table_and_files(tmp_path):
    res = fake_result()
    table = report.format_table(res)
    assert table.splitlines()[0].startswith("Figure 11.6: expected emphatic TD")
    assert "4 / 0.5" in table and "goes to 0 (converges)" in table
    paths = report.save_result(res, tmp_path / "out")
    assert json.loads(paths["json"].read_text()) == res
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
