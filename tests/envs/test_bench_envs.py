"""Smoke test of scripts/bench_envs.py with tiny sizes: it runs and writes its JSON."""

import json
import pathlib
import runpy
import sys

import pytest


@pytest.mark.slow
def test_bench_envs_writes_json(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", [
        "bench_envs.py", "--device", "cpu", "--num-envs", "2", "--num-steps", "5",
        "--repeats", "1", "--host-steps", "10", "--envs", "CartPole-v1", "RandomWalk-v0",
        "--out", str(out)])
    script = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "bench_envs.py"
    runpy.run_path(str(script), run_name="__main__")
    report = json.loads(out.read_text())
    assert report["device"]["platform"] == "cpu"
    assert set(report["results"]) == {
        "tdkit/CartPole-v1", "tdkit/RandomWalk-v0",
        "gymnasium/phys2d/CartPole-v1 (functional JAX)", "gymnasium/CartPole-v1 (host, 1 env)"}
    for numbers in report["results"].values():
        assert numbers["steps_per_s_median"] > 0
    assert "device: cpu" in capsys.readouterr().out
