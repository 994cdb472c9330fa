"""Training runs: the run folder, the backend, the runner; what `scripts/train.py` calls.

    summary = train(RunConfig(agent="dqn", env="CartPole-v1"))
    summary = train(None, resume_dir="runs/dqn-CartPole-v1-...", total_steps=480_000)

A run folder holds:

    config.json             the resolved configuration: every setting and hyperparameter
                            (defaults included), what `--resume` rebuilds the run from
    metrics.csv             one row per chunk and member (seed x hyperparameter setting)
    learning_curve.{png,svg,pdf}   training and greedy evaluation return, 95% CI bands
    checkpoints/<chunk>/    atomic orbax checkpoints (the newest readable one is resumed)
    evaluation.json         greedy evaluation on the Gymnasium environment after training
    tensorboard/, wandb/    with --tensorboard / --wandb

The chunk loop is `agents.runner.run_chunks`; the backends (`agents.backends`) run K steps
on tdkit's JAX environments (`jax`) or on any Gymnasium environment on the host (`gym`).
"""

import json
import pathlib
import sys
import time
from typing import Any

from agents import backends, runner
from agents.plan import HPARAM_ALIASES, Plan, RunConfig, RunError, resolve_backend
from agents.plotting import read_metrics

__all__ = ["HPARAM_ALIASES", "Plan", "RunConfig", "RunError", "read_metrics", "train",
           "restore_for_evaluation", "evaluate_run", "load_config", "RESUME_CHANGEABLE"]

# What --resume may change: everything else is the saved run's.
RESUME_CHANGEABLE = ("total_steps", "checkpoint_seconds", "eval_episodes")


def default_out(config: RunConfig) -> pathlib.Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return pathlib.Path("runs") / f"{config.agent}-{config.env.replace('/', '_')}-{stamp}"


def load_config(run_dir: pathlib.Path) -> RunConfig:
    """The `RunConfig` saved in `run_dir/config.json`; RunError when it is not a run folder."""
    path = pathlib.Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunError(f"'{run_dir}' is not a run folder (no config.json)")
    try:
        return RunConfig.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, AttributeError) as error:
        raise RunError(f"'{path}' is not a valid tdkit run config: {error}") from None


def make_backend(plan: Plan):
    return backends.JaxBackend(plan) if plan.backend == "jax" else backends.GymBackend(plan)


def _prepare_host(config: RunConfig) -> None:
    """Inline CPU dispatch (and pinning) for the gym backend, before JAX starts."""
    try:
        backend = resolve_backend(config.env, config.backend, config.wrappers)
    except RunError:
        return  # Plan reports it
    if backend == "gym":
        from agents import host_fast

        host_fast.inline_cpu_dispatch()
        if config.pin_cpu:
            host_fast.pin_to_one_cpu()


def train(config: RunConfig | None, resume_dir: str | pathlib.Path | None = None,
          progress: bool = True, stop_after_chunks: int | None = None,
          interrupt_cls=None, **resume_changes: Any) -> dict:
    """Trains (or resumes) a run and evaluates it; returns the summary dict.

    Args:
      config: the run configuration (None when resuming: the saved one is used).
      resume_dir: a run folder to continue from its newest readable checkpoint.
      progress: show a progress bar.
      stop_after_chunks: stop (as if interrupted) after this many chunks in this call.
      interrupt_cls: the Ctrl-C handler (default `agents.runner.Interrupt`).
      **resume_changes: with `resume_dir`, new values of `RESUME_CHANGEABLE` settings
        (`total_steps` extends a run; it must cover the chunks already done).

    Returns:
      Summary: run_dir, backend, members, steps, train_seconds, chunks_done, chunks_total,
      interrupted, interrupted_by, solved_early, evaluation (or None).

    Raises:
      RunError: invalid configuration, not a run folder, no readable checkpoint, or a loss
        that became NaN.
    """
    if resume_dir is not None:
        run_dir = pathlib.Path(resume_dir)
        config = load_config(run_dir)
        unknown = sorted(set(resume_changes) - set(RESUME_CHANGEABLE))
        if unknown:
            raise RunError(f"--resume cannot change {', '.join(unknown)}")
        for name, value in resume_changes.items():
            setattr(config, name, value)
    elif resume_changes:
        raise RunError("settings to change are only taken with --resume")
    _prepare_host(config)  # before Plan, which starts JAX
    plan = Plan(config)
    if resume_dir is None:
        run_dir = pathlib.Path(config.out) if config.out else default_out(config)
        if (run_dir / "config.json").exists():
            raise RunError(f"'{run_dir}' already holds a run; use --resume {run_dir} or "
                           f"another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        config.out = str(run_dir)
    elif "total_steps" in resume_changes:
        _check_extension(plan, run_dir)
    (run_dir / "config.json").write_text(json.dumps(plan.resolved_config(), indent=2) + "\n")
    return runner.run_chunks(plan, make_backend(plan), run_dir, resume_dir is not None,
                             progress=progress, stop_after_chunks=stop_after_chunks,
                             interrupt_cls=interrupt_cls or runner.Interrupt)


def _check_extension(plan: Plan, run_dir: pathlib.Path) -> None:
    from agents.checkpoint import Checkpointer

    done = Checkpointer(run_dir / "checkpoints").latest_step() or 0
    if plan.num_chunks < done:
        raise RunError(
            f"--total-steps {plan.config.total_steps} is less than the "
            f"{done * plan.steps_per_chunk:,} steps this run has already trained")


def restore_for_evaluation(run_dir: pathlib.Path):
    """(plan, backend, state) of a finished or interrupted run, from its newest readable
    checkpoint (one-line warnings for damaged newer ones; RunError when none reads)."""
    from agents.checkpoint import Checkpointer

    run_dir = pathlib.Path(run_dir)
    plan = Plan(load_config(run_dir))
    backend = make_backend(plan)
    checkpoints = Checkpointer(run_dir / "checkpoints")
    if not checkpoints.all_steps():
        raise RunError(f"'{run_dir}' has no checkpoint")
    _, state = runner.restore(plan, backend, run_dir, checkpoints)
    return plan, backend, state


def evaluation_filename(env_id: str, episodes: int) -> str:
    """`evaluate-<env>-<episodes>ep.json`: scripts/evaluate.py's own file in the run folder
    (training's `evaluation.json` is never overwritten)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in env_id)
    return f"evaluate-{safe}-{episodes}ep.json"


def evaluate_run(run_dir: str | pathlib.Path, env_id: str | None = None, episodes: int = 100,
                 video: bool = False, out: str | pathlib.Path | None = None) -> dict:
    """Greedy Gymnasium evaluation of a saved run (every member; per configuration for
    sweeps), written to `out` (default `RUN_DIR/evaluate-<env>-<episodes>ep.json`).

    Returns the evaluation dict with `path`, the file written."""
    run_dir = pathlib.Path(run_dir)
    plan, backend, state = restore_for_evaluation(run_dir)
    env_id = env_id or plan.config.env
    path = pathlib.Path(out) if out else run_dir / evaluation_filename(env_id, episodes)
    evaluation = runner.evaluate_members(
        plan, backend.policy_states(state), path, env_id=env_id, episodes=episodes,
        video_dir=run_dir / "videos" if video else None)
    print(f"wrote {path}", file=sys.stderr)
    return {**evaluation, "path": str(path)}
