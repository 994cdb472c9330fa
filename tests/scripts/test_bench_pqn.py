"""Smoke tests of scripts/bench_pqn.py: the table, the errors, tdkit's side with tiny runs, and
purejaxql's side only where its virtual environment exists ($PUREJAXQL_VENV / $PUREJAXQL_DIR,
else ../purejaxql-venv and ../purejaxql next to this checkout)."""

import importlib.util
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_pqn.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_pqn_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_script()


def test_compile_estimate_is_first_chunk_minus_median_of_the_rest():
    assert bench.compile_estimate([12.0, 1.0, 3.0, 2.0]) == 10.0
    assert bench.compile_estimate([5.0]) is None


def test_table_medians_and_ratios_favour_tdkit_above_one():
    def solve(reached, steps, seconds, command, compile_s):
        return {"reached": reached, "steps_to_target": steps, "seconds_to_target": seconds,
                "command_seconds": command, "compile_seconds": compile_s}

    results = {
        "tdkit": {"solve": [solve(True, 100, 10.0, 20.0, 4.0), solve(True, 300, 30.0, 40.0, 6.0),
                            solve(False, None, None, 50.0, 5.0)],
                  "x1": [{"steps_per_second": 3000.0, "compile_seconds": 2.0}]},
        "purejaxql": {"solve": [solve(True, 200, 40.0, 60.0, 10.0)] * 3,
                      "x1": [{"steps_per_second": 1000.0, "compile_seconds": 8.0}]},
    }
    rows = {label: (t, p, ratio) for label, t, p, ratio in bench.summary_rows(results, [1])}
    assert rows["greedy 500 reached (rounds)"] == ("2/3", "3/3", None)
    assert rows["env steps to greedy 500"] == (200, 200, 1.0)  # median of 100 and 300
    assert rows["seconds to greedy 500 (from start)"] == (20.0, 40.0, 2.0)
    assert rows["whole command (s) [1]"] == (40.0, 60.0, 1.5)
    assert rows["compile (s): train + tests, 1 seed"] == (5.0, 10.0, 2.0)
    assert rows["steps/s, 1 seed (all seeds)"] == (3000.0, 1000.0, 3.0)
    assert rows["compile (s): train only, 1 seed"] == (2.0, 8.0, 4.0)
    table = bench.format_table(bench.summary_rows(results, [1]))
    assert table.splitlines()[0].split() == ["metric", "tdkit", "purejaxql", "ratio"]
    assert "3,000" in table and "2.00x" in table and "2/3" in table


def test_missing_venv_is_a_one_line_error_saying_how_to_create_it(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--purejaxql-venv", str(tmp_path / "absent")])
    message = str(exit_info.value.code)
    assert message.startswith("error: no purejaxql virtual environment at")
    assert "python3.11 -m venv" in message and "gymnax==0.0.6" in message
    assert "\n" not in message


@pytest.mark.parametrize("argv,message", [
    (["--steps", "1000"], "--steps must be a positive multiple of 16384"),
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--solve-steps", "2048"], "--solve-steps must be >= 40960"),
])
def test_bad_arguments_exit_with_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_tdkit_side_with_tiny_runs(tmp_path):
    env = bench.bench_env("cpu")
    solve = bench.tdkit_time_to_target(0, env, tmp_path, solve_steps=4096, chunk_steps=2048,
                                       select_episodes=4, eval_episodes=2)
    assert solve["command"].startswith("python scripts/train.py --agent pqn --seed 0")
    assert len(solve["eval_returns"]) == 2 or solve["reached"]
    assert solve["command_seconds"] > 0 and solve["gymnasium_mean_return"] > 0
    assert solve["reached"] == (solve["steps_to_target"] is not None)
    rate = bench.tdkit_throughput(1, 16384, env, tmp_path)
    assert rate["steps_per_second"] > 0 and rate["compile_seconds"] is not None


def _purejaxql():
    venv = pathlib.Path(os.environ.get("PUREJAXQL_VENV", ROOT.parent / "purejaxql-venv"))
    source = pathlib.Path(os.environ.get("PUREJAXQL_DIR", ROOT.parent / "purejaxql"))
    if not ((venv / "bin" / "python").exists()
            and (source / "purejaxql" / "pqn_gymnax.py").exists()):
        pytest.skip(f"no purejaxql virtual environment at {venv} with its source at {source}")
    return venv / "bin" / "python", source


@pytest.mark.slow
def test_purejaxql_side_when_its_venv_exists(tmp_path):
    python, source = _purejaxql()
    rate = bench.purejaxql_throughput(python, source, 1, 16384, bench.peer_env("cpu"),
                                      tmp_path)
    assert rate["steps_per_second"] > 0 and rate["compile_seconds"] > 0
    assert "--run-purejaxql" in rate["command"] and "NUM_SEEDS=1" in rate["command"]
