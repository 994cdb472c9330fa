"""Smoke tests of scripts/bench_continuous.py: timing arithmetic, tables, the missing-peer
error, tiny tdkit runs through the script, and (when its venv exists) the sbx runner."""

import importlib.util
import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_continuous.py"
SBX_VENV = pathlib.Path(os.environ.get("TDKIT_SBX_VENV", "/work/sbx-venv"))


def load_script():
    spec = importlib.util.spec_from_file_location("bench_continuous_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_script()


def host_env():
    return {**os.environ, "TDKIT_COMPILATION_CACHE": "off", "JAX_PLATFORMS": "cpu",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                         os.environ.get("PYTHONPATH")]))}


def test_protocol_puts_chunk_boundaries_on_the_measured_window(bench):
    p = bench.Protocol(learning_starts=5_000, warmup=1_000, steps=10_000)
    assert (p.measure_from, p.total, p.chunk) == (6_000, 16_000, 2_000)
    p = bench.Protocol(learning_starts=300, warmup=100, steps=1_200)
    assert (p.measure_from, p.total, p.chunk) == (400, 1_600, 400)


def test_cleanrl_rate_is_taken_between_the_sps_lines_of_the_measured_window(bench):
    # SPS lines at steps 400, 500, ..., 1000 (learning starts 300), 50 steps/s up to step 600
    # then 100 steps/s; episode lines in between are ignored.
    p = bench.Protocol(learning_starts=300, warmup=300, steps=400)
    times = {400: 0.0, 500: 2.0, 600: 4.0, 700: 5.0, 800: 6.0, 900: 7.0, 1000: 8.0}
    lines = []
    for step, t in times.items():
        lines.append((t, "SPS: 123\n"))
        lines.append((t + 0.5, f"global_step={step + 99}, episodic_return=[-1.0]\n"))
    assert bench.cleanrl_learning_rate(lines, p) == pytest.approx(400 / 4.0)
    with pytest.raises(ValueError, match="no SPS line at step 1250"):
        bench.cleanrl_learning_rate(lines, bench.Protocol(300, 950, 400))


def test_throughput_table_gives_tdkit_over_sbx_of_the_same_algorithm(bench):
    results = {
        "tdkit td3": [{"steps_per_second": s, "command_seconds": 10.0} for s in (300, 500, 400)],
        "sbx td3": [{"steps_per_second": 200.0, "command_seconds": 30.0}],
        "cleanrl td3": [{"steps_per_second": 100.0, "command_seconds": 50.0}],
        "tdkit sac": [{"steps_per_second": 90.0, "command_seconds": 12.0}],
    }
    lines, medians = bench.throughput_table("title", results)
    assert medians == {"tdkit td3": 400, "sbx td3": 200.0, "cleanrl td3": 100.0,
                       "tdkit sac": 90.0}
    assert lines[0] == "title"
    assert lines[2].split() == ["tdkit", "td3", "400", "2.00", "10.0"]
    assert lines[4].split() == ["cleanrl", "td3", "100", "-", "50.0"]
    assert lines[5].split() == ["tdkit", "sac", "90", "-", "12.0"]  # no sbx sac row


def test_solve_table_counts_solved_seeds_and_divides_by_both_sbx_rows(bench):
    results = {
        "tdkit td3 jax loop": [{"steps": 6000, "seconds": 10.0, "gym_mean_return": -150.0},
                               {"steps": None, "seconds": None, "gym_mean_return": -900.0}],
        "sbx td3 zoo": [{"steps": 12000, "seconds": 40.0}],
        "sbx td3 tdkit settings": [{"steps": 7000, "seconds": 20.0}],
    }
    lines, times = bench.solve_table("title", results)
    assert times == {"tdkit td3 jax loop": 10.0, "sbx td3 zoo": 40.0,
                     "sbx td3 tdkit settings": 20.0}
    assert lines[2].split() == ["tdkit", "td3", "jax", "loop", "1/2", "6,000", "10.0",
                                "-525", "0.25", "0.50"]
    assert lines[3].split() == ["sbx", "td3", "zoo", "1/1", "12,000", "40.0", "-", "-", "-"]
    assert len(lines) == 5  # no footnote: every tdkit row was evaluated
    unevaluated = {"tdkit td3 gym loop": [{"evaluated": False, "steps": None, "seconds": None,
                                           "gym_mean_return": -160.0}]}
    lines, _ = bench.solve_table("title", unevaluated)
    assert lines[2].split()[4:7] == ["n/a", "-", "-"] and lines[3].startswith("  n/a: no greedy")


def test_a_missing_peer_venv_is_a_one_line_error(bench, tmp_path):
    missing = tmp_path / "no-such-venv"
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--parts", "c", "--sbx-venv", str(missing), "--cleanrl-venv", "none"])
    message = str(exit_info.value.code)
    assert message.startswith(f"error: no sbx venv at {missing}") and "\n" not in message
    assert "--sbx-venv none" in message and "pip install sbx-rl" in message


@pytest.mark.parametrize("argv,message", [
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--learning-starts", "100"], "--learning-starts must be >= 256"),
])
def test_bad_arguments_are_usage_errors(bench, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_part_a_without_peers_prints_the_table_and_writes_json(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--parts", "a", "--rounds", "1", "--steps", "200",
                       "--learning-starts", "300", "--warmup-steps", "100",
                       "--sbx-venv", "none", "--cleanrl-venv", "none",
                       "--workdir", str(tmp_path / "work"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "(a) host loop, Gymnasium Pendulum-v1" in text and "steps 400-600" in text
    summary = json.loads(out.read_text())
    assert set(summary["a"]) == {"tdkit td3", "tdkit sac"}
    assert all(rate > 0 for rate in summary["a"].values())
    assert "--backend gym" in summary["commands"]["(a) tdkit td3"]
    assert "--learning-starts 300" in summary["commands"]["(a) tdkit sac"]
    assert "(a) tdkit sac: {" in text and "commands (first round):" in text


@pytest.mark.slow
def test_tdkit_time_to_solve_reads_the_first_chunk_at_the_return(bench, tmp_path):
    result = bench.tdkit_time_to_solve("td3", "jax", 0, host_env(), tmp_path, 300, 600,
                                       solve_return=-2000.0)  # any policy reaches -2000
    assert result["evaluated"] and result["steps"] == 300
    assert 0 < result["seconds"] < result["command_seconds"]
    assert result["gym_mean_return"] < 0 and "--stop-at-return -2000.0" in result["command"]


@pytest.mark.slow
@pytest.mark.skipif(not (SBX_VENV / "bin" / "python").exists(),
                    reason=f"no sbx venv at {SBX_VENV} (TDKIT_SBX_VENV)")
def test_sbx_runner_times_the_measured_steps_and_stops_at_the_return(bench, tmp_path):
    peers = bench.Peers(str(SBX_VENV / "bin" / "python"), None, None)
    p = bench.Protocol(learning_starts=300, warmup=100, steps=200)
    result = bench.sbx_throughput(peers, "td3", "Pendulum-v1", p, 0, host_env(), tmp_path)
    assert result["steps_per_second"] > 0 and "--measure-from 400" in result["command"]
    solve = bench.sbx_time_to_solve(peers, "sac", "tdkit settings", 0, host_env(), tmp_path,
                                    200, 400, solve_return=-2000.0)
    assert solve["steps"] == 200 and solve["evals"][0][0] == 200
    assert 0 < solve["seconds"] < solve["command_seconds"]
