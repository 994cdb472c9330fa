"""End-to-end tests of scripts/reproduce.py (the thin CLI over agents.textbook)."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "reproduce.py"


def load_script():
    spec = importlib.util.spec_from_file_location("reproduce_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cli_writes_json_png_and_prints_the_table(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "example-6.2", "--runs", "2", "--seed", "3",
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(  # works without installing too
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "example-6.2.json").read_text())
    assert data["experiment"] == "example-6.2" and data["runs"] == 2
    assert set(data) == {"experiment", "runs", "seconds", "series"}
    assert len(data["series"]) == 7
    png = (out / "example-6.2.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "Example 6.2" in proc.stdout and "0.235702" in proc.stdout
    assert str(out / "example-6.2.json") in proc.stdout


def test_main_without_plot_writes_only_json(tmp_path, capsys):
    assert load_script().main(["figure-11.6", "--out", str(tmp_path), "--no-plot"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure-11.6.json"]
    assert "sqrt(VE)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["figure-99"], "invalid choice"),
    (["example-6.2", "--runs", "0"], "--runs must be >= 1"),
])
def test_bad_arguments_exit_with_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script().main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
