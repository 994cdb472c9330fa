"""The training front door end to end on tiny budgets: train, resume, evaluate, bad input."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from agents import cli
from agents import run as run_lib
from agents.checkpoint import Checkpointer

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY_DQN = {"hidden_sizes": [8], "buffer_size": 256, "batch_size": 16, "learning_starts": 32}


def _config(out, **kwargs):
    base = dict(agent="dqn", env="CartPole-v1", total_steps=400, num_envs=4, chunk_steps=100,
                eval_episodes=2, out=str(out), agent_config=dict(TINY_DQN))
    return run_lib.RunConfig(**{**base, **kwargs})


def _script(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


def _final_params(run_dir):
    plan, backend, state = run_lib.restore_for_evaluation(pathlib.Path(run_dir))
    return state.agent.params


@pytest.mark.slow
def test_train_writes_the_run_folder_and_resume_equals_uninterrupted(tmp_path):
    summary = run_lib.train(_config(tmp_path / "full"), progress=False)
    run_dir = pathlib.Path(summary["run_dir"])
    for name in ("config.json", "metrics.csv", "learning_curve.png", "learning_curve.svg",
                 "learning_curve.pdf", "evaluation.json"):
        assert (run_dir / name).is_file(), name
    assert Checkpointer(run_dir / "checkpoints").latest_step() == 4
    rows = run_lib.read_metrics(run_dir / "metrics.csv")
    assert [int(r["chunk"]) for r in rows] == [0, 1, 2, 3]
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["env_id"] == "CartPole-v1" and evaluation["episodes"] == 2
    assert {"mean_return", "std_return"} <= set(evaluation)

    partial = run_lib.train(_config(tmp_path / "part"), progress=False, stop_after_chunks=2)
    assert partial["interrupted"] and partial["chunks_done"] == 2
    resumed = run_lib.train(run_lib.RunConfig(), resume_dir=tmp_path / "part", progress=False)
    assert resumed["chunks_done"] == 4 and not resumed["interrupted"]
    jax.tree.map(np.testing.assert_array_equal, _final_params(tmp_path / "full"),
                 _final_params(tmp_path / "part"))
    rows = run_lib.read_metrics(tmp_path / "part" / "metrics.csv")
    assert [int(r["chunk"]) for r in rows] == [0, 1, 2, 3]

    # scripts/evaluate.py writes its own file; training's evaluation.json is kept.
    before = (run_dir / "evaluation.json").read_text()
    result = _script("scripts/evaluate.py", str(run_dir), "--episodes", "3")
    assert result.returncode == 0, result.stderr
    assert (run_dir / "evaluation.json").read_text() == before
    evaluation = json.loads((run_dir / "evaluate-CartPole-v1-3ep.json").read_text())
    assert evaluation["episodes"] == 3 and evaluation["env_id"] == "CartPole-v1"


@pytest.mark.slow
def test_sweep_and_seeds_write_one_row_per_member(tmp_path):
    config = _config(tmp_path / "sweep", seeds=2, sweep={"lr": [1e-3, 3e-4]}, total_steps=200,
                     eval_episodes=0)
    run_lib.train(config, progress=False)
    rows = run_lib.read_metrics(tmp_path / "sweep" / "metrics.csv")
    assert len(rows) == 2 * 4  # 2 chunks x 4 members
    members = {(r["seed"], r["learning_rate"]) for r in rows}
    assert members == {("0", "0.001"), ("1", "0.001"), ("0", "0.0003"), ("1", "0.0003")}


@pytest.mark.slow
def test_gym_backend_trains_a_tabular_agent(tmp_path):
    config = run_lib.RunConfig(agent="q_learning", env="Taxi-v4", total_steps=300, num_envs=1,
                               chunk_steps=100, eval_episodes=2, out=str(tmp_path / "taxi"))
    summary = run_lib.train(config, progress=False)
    assert summary["backend"] == "gym" and summary["chunks_done"] == 3
    assert (tmp_path / "taxi" / "evaluation.json").is_file()
    _, backend, state = run_lib.restore_for_evaluation(tmp_path / "taxi")
    assert backend.name == "gym" and state.params["table"].shape == (500, 6)


class _InterruptAfter:
    """Stands in for runner.Interrupt: Ctrl-C 'arrives' at the n-th check of the flag."""

    def __init__(self, checks):
        self.checks = checks

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def requested(self):
        self.checks -= 1
        return self.checks < 0


@pytest.mark.slow
def test_gym_backend_checkpoints_on_time_and_keeps_completed_chunks_on_ctrl_c(tmp_path):
    base = dict(agent="q_learning", env="Taxi-v4", total_steps=300, num_envs=1,
                chunk_steps=100, eval_episodes=0, checkpoint_seconds=1e9)
    # No time-based save within the run: only the final chunk is checkpointed.
    run_lib.train(run_lib.RunConfig(**base, out=str(tmp_path / "full")), progress=False)
    assert Checkpointer(tmp_path / "full" / "checkpoints").all_steps() == [3]
    # Ctrl-C in the middle of chunk 2: that chunk is dropped, chunk 1 is saved at once.
    summary = run_lib.train(run_lib.RunConfig(**base, out=str(tmp_path / "cut")),
                            progress=False, interrupt_cls=lambda message: _InterruptAfter(150))
    assert summary["interrupted"] and summary["chunks_done"] == 1
    assert summary["interrupted_by"] == "signal"
    assert Checkpointer(tmp_path / "cut" / "checkpoints").all_steps() == [1]
    resumed = run_lib.train(run_lib.RunConfig(), resume_dir=tmp_path / "cut", progress=False)
    assert resumed["chunks_done"] == 3 and not resumed["interrupted"]
    rows = run_lib.read_metrics(tmp_path / "cut" / "metrics.csv")
    assert [int(r["chunk"]) for r in rows] == [0, 1, 2]


@pytest.mark.slow
def test_gym_backend_runs_cpu_computations_inline(tmp_path):
    # A fresh process: the gym backend switches JAX's CPU dispatch to inline before JAX starts.
    result = _script("scripts/train.py", "--agent", "q_learning", "--env", "Taxi-v4",
                     "--total-steps", "200", "--chunk-steps", "100", "--eval-episodes", "1",
                     "--no-progress", "--out", str(tmp_path / "taxi"))
    assert result.returncode == 0, result.stderr
    assert "(gym backend, inline CPU dispatch)" in result.stdout


@pytest.mark.slow
def test_gym_backend_pins_one_cpu_on_request(tmp_path):
    import os

    result = _script("scripts/train.py", "--agent", "q_learning", "--env", "Taxi-v4",
                     "--total-steps", "200", "--chunk-steps", "100", "--eval-episodes", "0",
                     "--no-progress", "--pin-cpu", "--out", str(tmp_path / "taxi"))
    assert result.returncode == 0, result.stderr
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) > 1:
        assert "inline CPU dispatch, pinned to CPU" in result.stdout
    assert json.loads((tmp_path / "taxi" / "config.json").read_text())["pin_cpu"] is True


def test_pin_to_one_cpu_is_a_no_op_once_jax_has_started():
    import os

    import jax

    from agents import host_fast

    jax.numpy.zeros(1).block_until_ready()
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert host_fast.pin_to_one_cpu() is None
    if before is not None:
        assert os.sched_getaffinity(0) == before


def test_inline_cpu_dispatch_is_a_no_op_once_jax_has_started():
    import jax

    from agents import host_fast

    jax.numpy.zeros(1).block_until_ready()  # JAX's backends are up in this process
    before = jax.config.values["jax_cpu_enable_async_dispatch"]
    assert host_fast.inline_cpu_dispatch() is (not before)
    assert jax.config.values["jax_cpu_enable_async_dispatch"] == before


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = _config(tmp_path / "nan", total_steps=2000, hparams={"learning_rate": 1e30},
                     agent_config={**TINY_DQN, "optimizer": "sgd"}, eval_episodes=0)
    with pytest.raises(run_lib.RunError, match="loss became NaN at environment step") as error:
        run_lib.train(config, progress=False)
    assert error.value.code == 1
    checkpoints = Checkpointer(tmp_path / "nan" / "checkpoints")
    last = checkpoints.latest_step()
    if last is not None:  # every kept checkpoint holds finite parameters
        _, _, state = run_lib.restore_for_evaluation(tmp_path / "nan")
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.agent.params))


@pytest.mark.parametrize("args, message", [
    (["--agent", "dqm"], "unknown agent 'dqm'; valid agents:"),
    (["--env", "CartPol-v1"], "unknown environment 'CartPol-v1'"),
    (["--agent", "q_learning", "--env", "CartPole-v1"], "needs a Discrete observation space"),
    (["--env", "MountainCarContinuous-v0"], "needs a Discrete action space"),
    (["--learning-rate", "-0.1"], "`learning_rate` must be > 0"),
    (["--agent", "dqn", "--batch-size", "512", "--buffer-size", "256"],
     "must not exceed `buffer_size`"),
    (["--sweep", "lr=fast"], "'fast' is not a number"),
    (["--sweep", "width=1,2"], "no numeric hyperparameter 'width'"),
    (["--backend", "gym", "--native-cpu-reductions"],
     "--native-cpu-reductions compiles the jitted loop: it needs the jax backend"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message, capsys, tmp_path):
    code = cli.train_main([*args, "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run" / "checkpoints").exists()  # no work was done


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert cli.train_main(["--resume", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_unknown_agent_from_the_command_line_has_no_traceback():
    result = _script("scripts/train.py", "--agent", "nope", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown agent 'nope'")
    assert "Traceback" not in result.stderr


def test_help_lists_agents_environments_and_hyperparameters(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.train_main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ("dqn", "double_dqn", "q_learning", "sarsa", "expected_sarsa",
                 "double_q_learning", "CartPole-v1", "MountainCar-v0", "--learning-rate",
                 "--target-period", "--alpha", "default 0.002"):
        assert name in text, name


@pytest.mark.slow
def test_default_main_job_solves_cartpole(tmp_path):
    """`python scripts/train.py` with its defaults: greedy mean return >= 475 over 100 episodes
    of Gymnasium's own CartPole-v1 (seed 0)."""
    args = cli.build_train_parser(cli.MAIN_AGENT).parse_args(["--out", str(tmp_path / "main")])
    summary = run_lib.train(cli.config_from_args(args), progress=False)
    evaluation = summary["evaluation"]
    assert summary["solved_early"]  # stopped once the greedy policy reached 475
    assert evaluation["env_id"] == "CartPole-v1" and evaluation["episodes"] == 100
    assert evaluation["members"][0]["mean_return"] >= 475.0, evaluation


def test_stop_at_return_defaults_to_the_environments_reward_threshold():
    def stop(*argv):
        args = cli.build_train_parser(cli.MAIN_AGENT).parse_args(list(argv))
        return cli.config_from_args(args).stop_at_return

    assert stop() == 475.0  # CartPole-v1's reward threshold
    assert stop("--env", "Acrobot-v1") == -100.0
    assert stop("--agent", "td3", "--env", "Pendulum-v1") is None  # no threshold
    assert stop("--stop-at-return", "none") is None
    assert stop("--backend", "gym") is None  # the host loop does not evaluate during training
    assert stop("--stop-at-return", "300") == 300.0
    with pytest.raises(SystemExit):
        stop("--stop-at-return", "soon")


@pytest.mark.slow
def test_sweep_members_match_the_same_configurations_run_one_by_one(tmp_path):
    common = dict(total_steps=200, chunk_steps=100, eval_episodes=0, select_best=False)
    run_lib.train(_config(tmp_path / "sweep", sweep={"lr": [1e-3, 3e-4]}, **common),
                  progress=False)
    _, _, swept = run_lib.restore_for_evaluation(tmp_path / "sweep")
    for member, lr in enumerate([1e-3, 3e-4]):
        out = tmp_path / f"single-{member}"
        run_lib.train(_config(out, hparams={"learning_rate": lr}, **common), progress=False)
        _, _, single = run_lib.restore_for_evaluation(out)
        jax.tree.map(lambda a, b, m=member: np.testing.assert_allclose(
            a[m], b[0], rtol=1e-4, atol=1e-5), swept.agent.params, single.agent.params)
