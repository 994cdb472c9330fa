"""The run folder as a new user meets it: damaged checkpoints, Ctrl-C, zero budgets, --resume
with other options, config.json, evaluate.py's own file, incompatible envs, sweeps, logging."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from agents import cli, runner
from agents import run as run_lib
from agents.checkpoint import Checkpointer
from tests.agents.test_cli import _InterruptAfter

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = ["--agent", "dqn", "--hidden-sizes", "8", "--buffer-size", "256", "--batch-size", "16",
        "--learning-starts", "32", "--num-envs", "4", "--chunk-steps", "100",
        "--no-progress"]


def _train(out, *extra):
    return cli.train_main([*TINY, "--total-steps", "300", "--eval-episodes", "2",
                           "--out", str(out), *extra])


def _damage(step_dir: pathlib.Path) -> None:
    """Truncates every array file of a checkpoint (orbax writes them under `d/` folders; some
    of them are copies it does not read back, so damaging only one is not always damage)."""
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files, f"no array files under {step_dir}"
    for path in files:
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 3-chunk DQN run (checkpoints 1, 2, 3 kept); tests copy it before changing it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert _train(out, "--checkpoint-seconds", "0") == 0
    assert Checkpointer(out / "checkpoints").all_steps() == [1, 2, 3]
    return out


def _copy(run_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    return target


@pytest.mark.slow
def test_resume_and_evaluate_fall_back_past_a_damaged_latest_checkpoint(
        finished_run, tmp_path, capsys):
    run_dir = _copy(finished_run, tmp_path)
    _damage(run_dir / "checkpoints" / "3")
    # evaluate.py: one warning line naming checkpoint 3, then the evaluation of checkpoint 2
    assert cli.evaluate_main([str(run_dir), "--episodes", "2"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "checkpoint 3" in warnings[0], err
    assert "using checkpoint 2" in warnings[0] and "Traceback" not in err
    # --resume: the same warning, then chunk 3 is trained again from checkpoint 2
    code = cli.train_main(["--resume", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "checkpoint 3" in err and "Traceback" not in err
    assert Checkpointer(run_dir / "checkpoints").latest_step() == 3
    rows = run_lib.read_metrics(run_dir / "metrics.csv")
    assert [int(r["chunk"]) for r in rows] == [0, 1, 2]


@pytest.mark.slow
def test_no_readable_checkpoint_is_one_line_and_exit_code_2(finished_run, tmp_path, capsys):
    run_dir = _copy(finished_run, tmp_path)
    for step in (1, 2, 3):
        _damage(run_dir / "checkpoints" / str(step))
    for main, args in ((cli.evaluate_main, [str(run_dir)]),
                       (cli.train_main, ["--resume", str(run_dir), "--no-progress"])):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "no readable checkpoint" in errors[0], err
        assert "Traceback" not in err
    (run_dir / "checkpoints" / "3").rename(run_dir / "checkpoints" / "tmp-gone")
    shutil.rmtree(run_dir / "checkpoints")  # a missing folder: still one line
    assert cli.evaluate_main([str(run_dir)]) == 2
    assert "has no checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_config_json_records_every_resolved_setting(finished_run):
    config = json.loads((finished_run / "config.json").read_text())
    spec_defaults = {"learning_rate": 0.002, "gamma": 0.99, "epsilon_start": 1.0,
                     "epsilon_end": 0.05, "tau": 0.005, "importance_beta": 0.4}
    assert config["hparams"] == spec_defaults  # none given: all defaults, written out
    assert config["agent_config"]["hidden_sizes"] == [8]
    assert config["agent_config"]["target_period"] == 20  # a default, written out
    assert config["total_steps"] == 300 and config["num_envs"] == 4
    # rebuilding the run from config.json alone gives the same plan
    plan = run_lib.Plan(run_lib.RunConfig.from_json(config))
    assert plan.num_chunks == 3 and plan.settings == [spec_defaults]


@pytest.mark.slow
def test_sweep_names_match_metrics_columns_and_evaluation_reports_configurations(
        tmp_path, capsys):
    out = tmp_path / "sweep"
    assert _train(out, "--sweep", "lr=1e-3,3e-4", "--seeds", "2",
                  "--eval-episodes", "0") == 0
    config = json.loads((out / "config.json").read_text())
    assert config["sweep"] == {"learning_rate": [1e-3, 3e-4]}
    assert "learning_rate" not in config["hparams"] and config["hparams"]["gamma"] == 0.99
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "learning_rate" in header
    capsys.readouterr()
    assert cli.evaluate_main([str(out), "--episodes", "2"]) == 0
    evaluation = json.loads((out / "evaluate-CartPole-v1-2ep.json").read_text())
    assert len(evaluation["members"]) == 4
    configurations = evaluation["configurations"]
    assert [c["learning_rate"] for c in configurations] == [1e-3, 3e-4]
    assert all(c["seeds"] == [0, 1] and c["ci95"] is not None for c in configurations)
    assert "learning_rate=0.001: mean return" in capsys.readouterr().out
    assert not (out / "evaluation.json").exists()  # training's file is never written here


@pytest.mark.slow
def test_evaluating_on_an_incompatible_env_is_one_line(finished_run, capsys):
    assert cli.evaluate_main([str(finished_run), "--env", "MountainCar-v0",
                              "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot evaluate on 'MountainCar-v0'" in err, err


@pytest.mark.slow
def test_resume_extends_with_total_steps_and_refuses_other_options(
        finished_run, tmp_path, capsys):
    run_dir = _copy(finished_run, tmp_path)
    assert cli.train_main(["--resume", str(run_dir), "--lr", "0.1", "--seed", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot change --learning-rate, --seed" in err, err
    assert cli.train_main(["--resume", str(run_dir), "--total-steps", "100"]) == 2
    assert "less than the 300 steps" in capsys.readouterr().err
    assert cli.train_main(["--resume", str(run_dir), "--total-steps", "500",
                           "--no-progress", "--eval-episodes", "1"]) == 0
    assert Checkpointer(run_dir / "checkpoints").latest_step() == 5
    assert json.loads((run_dir / "config.json").read_text())["total_steps"] == 500
    rows = run_lib.read_metrics(run_dir / "metrics.csv")
    assert [int(r["chunk"]) for r in rows] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("option", ["--total-steps", "--num-envs", "--chunk-steps"])
def test_zero_budgets_are_rejected_not_replaced_by_defaults(option, tmp_path, capsys):
    code = cli.train_main([option, "0", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"{option} must be an integer > 0, got 0" in err, err
    assert not (tmp_path / "run").exists()


def test_repeated_sweep_of_one_name_is_an_error(tmp_path, capsys):
    for args in (["--sweep", "lr=1e-3", "--sweep", "lr=3e-4"],
                 ["--sweep", "lr=1e-3", "--sweep", "learning_rate=3e-4"]):
        assert cli.train_main([*args, "--out", str(tmp_path / "run")]) == 2
        assert "is swept twice" in capsys.readouterr().err
    assert cli.train_main(["--lr", "1e-3", "--sweep", "lr=1e-3,3e-4",
                           "--out", str(tmp_path / "run")]) == 2
    assert "both set" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_gym_message_says_what_it_does(tmp_path, monkeypatch,
                                                                 capsys):
    # Ctrl-C 'arrives' at the second check of the flag (inside the second chunk)
    monkeypatch.setattr(runner, "Interrupt", lambda message: _InterruptAfter(1))
    code = cli.train_main(["--agent", "q_learning", "--env", "Taxi-v4", "--total-steps",
                           "300", "--chunk-steps", "100", "--eval-episodes", "0",
                           "--no-progress", "--out", str(tmp_path / "taxi")])
    assert code == cli.EXIT_INTERRUPTED == 130
    assert "continue with: python scripts/train.py --resume" in capsys.readouterr().err
    from agents.backends import GymBackend, JaxBackend

    assert "unfinished chunk's steps are dropped" in GymBackend.interrupt_message
    assert "finishing the current chunk" in JaxBackend.interrupt_message


@pytest.mark.slow
def test_a_real_sigint_exits_130_after_saving(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "scripts/train.py", *TINY, "--total-steps", "1000000",
         "--eval-episodes", "0", "--out", str(out)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    metrics = out / "metrics.csv"
    while time.time() < deadline and process.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 130, err
    assert "interrupt: finishing the current chunk" in err and "Traceback" not in err
    assert Checkpointer(out / "checkpoints").latest_step() is not None


@pytest.mark.slow
def test_tensorboard_event_files_are_written(tmp_path):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "tb"
    assert _train(out, "--tensorboard", "--eval-episodes", "0") == 0
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert b"mean/loss" in events[0].read_bytes() or b"member_0/loss" in events[0].read_bytes()


def test_readme_install_commands_are_editable():
    text = (ROOT / "README.md").read_text()
    for marker in ("main-command", "test-command"):
        block = text.split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
        assert "pip install -e " in block, block


@pytest.mark.slow
def test_a_wrapper_runs_on_the_gym_backend_and_is_recorded(tmp_path):
    out = tmp_path / "wrapped"
    code = cli.train_main([*TINY, "--total-steps", "200", "--eval-episodes", "1",
                           "--wrapper", "ClipReward:min_reward=0,max_reward=0.5",
                           "--out", str(out)])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["backend_resolved"] == "gym"
    assert config["wrappers"] == ["ClipReward:min_reward=0,max_reward=0.5"]
    rows = run_lib.read_metrics(out / "metrics.csv")
    assert all(float(r["mean_return"]) <= 0.5 * float(r["mean_length"]) + 1e-6
               for r in rows if r["mean_return"])  # training saw the clipped rewards
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["mean_return"] <= 0.5 * evaluation["members"][0]["mean_length"] + 1e-6


def test_a_bad_wrapper_is_one_line(tmp_path, capsys):
    assert cli.train_main(["--wrapper", "NoSuchWrapper", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--wrapper 'NoSuchWrapper'" in err, err
    assert cli.train_main(["--wrapper", "ClipReward:min_reward=0", "--backend", "jax",
                           "--out", str(tmp_path / "r")]) == 2
    assert "needs --backend gym" in capsys.readouterr().err
