"""Smoke test of scripts/bench_conv.py: both ways of computing the convolution, timed in all
three places, on a tiny batch of MinAtar images."""

import importlib.util
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_conv.py"


def test_bench_conv_times_both_ways_in_all_three_places(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_conv_script", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench_conv.json"
    results = bench.main(["--torso", "minatar", "--batch", "2", "--repeats", "1",
                          "--out", str(out)])
    assert set(results) == {"xla", "patches"}
    for row in results.values():
        assert set(row) == {"top_level_ms", "in_cond_ms", "in_scan_ms_per_iteration"}
        assert all(value > 0 for value in row.values())
    assert json.loads(out.read_text())["results"] == results
