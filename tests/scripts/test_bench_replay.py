"""Smoke test of scripts/bench_replay.py: both buffers timed on a tiny capacity."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_replay.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_replay_script", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_replay_times_uniform_and_prioritized(tmp_path):
    out = tmp_path / "bench_replay.json"
    results = _load().main(["--capacity", "300", "--batch", "8", "--adds", "2",
                            "--repeats", "1", "--out", str(out)])
    assert set(results) == {"uniform", "prioritized", "prioritized_over_uniform"}
    assert results["uniform"] > 0 and results["prioritized"] > 0
    assert results["prioritized_over_uniform"] == pytest.approx(
        results["prioritized"] / results["uniform"])
    assert json.loads(out.read_text())["results"] == results


def test_bench_replay_rejects_a_batch_larger_than_the_buffer():
    with pytest.raises(SystemExit):
        _load().main(["--capacity", "10", "--batch", "11"])
