"""The chunk loop of a training run, written once for both backends.

    summary = run_chunks(plan, backend, run_dir, resuming=False)

A backend (`agents.backends`) only runs K steps; this loop does the rest:

- resume: restore the newest readable checkpoint (falling back past a damaged one with a
  one-line warning naming it) and continue from its chunk; metrics rows past it are dropped;
- chunks: run, stop on a non-finite loss (the last good checkpoint is kept), log one row per
  member (`metrics.csv`, and TensorBoard / W&B when asked), update the progress bar;
- checkpoints: at the first chunk end `checkpoint_seconds` after the last, at the end, when
  stopping and on Ctrl-C (the first Ctrl-C is a request the backend honours in its own way,
  which its message states; a second one aborts without saving);
- `stop_at_return`: stop once every member's best greedy evaluation reached it;
- at the end: the learning curve, then (unless interrupted) the greedy Gymnasium
  evaluation of every member (`evaluation.json`).
"""

import json
import pathlib
import signal
import sys
import time
from typing import Any

import numpy as np

from agents.plan import Plan, RunError

COLUMNS_BEFORE = ["chunk", "member", "seed"]
COLUMNS_AFTER = ["step", "episodes", "mean_return", "mean_length", "loss", "eval_return",
                 "best_eval_return", "seconds", "steps_per_second", "wall_time"]


def metric_columns(plan: Plan) -> list[str]:
    """metrics.csv's header: chunk, member, seed, the swept hyperparameters, the metrics."""
    return COLUMNS_BEFORE + plan.swept + COLUMNS_AFTER


class Interrupt:
    """Turns the first Ctrl-C into a flag the loop checks (a second one aborts).

    Args:
      message: what the first Ctrl-C does, printed when it arrives.
    """

    def __init__(self, message: str):
        self.message = message
        self.requested = False
        self._previous = None

    def __enter__(self):
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            print(f"\n{self.message}", file=sys.stderr)

        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def progress_bar(plan: Plan, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=plan.num_chunks * plan.steps_per_chunk, initial=initial,
                unit="step", unit_scale=True, disable=not enabled, dynamic_ncols=True,
                desc=f"{plan.config.agent} on {plan.config.env}")


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def chunk_rows(plan: Plan, chunk: int, members: list, seconds: float) -> list[dict]:
    """One metrics row per member of a chunk's `ChunkResult.members`."""
    rows = []
    steps_per_second = plan.steps_per_chunk * plan.num_members / seconds
    for m, values in zip(plan.members(), members, strict=True):
        rows.append({
            "chunk": chunk, "member": m["member"], "seed": m["seed"],
            **{n: m[n] if n in m else plan.spec.default_hparams[n] for n in plan.swept},
            "step": values["step"], "episodes": values["episodes"],
            "mean_return": _fmt(values["mean_return"], ".4f"),
            "mean_length": _fmt(values["mean_length"], ".2f"),
            "loss": _fmt(values["loss"], ".6g"),
            "eval_return": _fmt(values["eval_return"], ".3f"),
            "best_eval_return": _fmt(values["best_eval_return"], ".3f"),
            "seconds": f"{seconds:.3f}", "steps_per_second": f"{steps_per_second:.1f}",
            "wall_time": f"{time.time():.3f}"})
    return rows


def restore(plan: Plan, backend: Any, run_dir: pathlib.Path, checkpoints: Any
            ) -> tuple[int, Any]:
    """(chunks done, state) of the newest readable checkpoint; one-line warnings for damaged
    newer ones; RunError (exit 2) when none is readable."""
    from agents.checkpoint import NoReadableCheckpoint

    def warn(warning):
        print(f"warning: {warning}", file=sys.stderr)

    try:
        step, tree = checkpoints.restore_latest_readable(backend.template(), on_unreadable=warn)
    except NoReadableCheckpoint as error:
        raise RunError(str(error), code=2) from None
    return step, backend.from_checkpoint(tree)


def run_chunks(plan: Plan, backend: Any, run_dir: pathlib.Path, resuming: bool,
               progress: bool = True, stop_after_chunks: int | None = None,
               interrupt_cls=Interrupt) -> dict:
    """Trains `plan` chunk by chunk with `backend`, checkpointing into `run_dir`.

    Args:
      plan: the validated run.
      backend: a `JaxBackend` or `GymBackend` (or anything with their methods).
      run_dir: the run folder (config.json already written).
      resuming: continue from the newest readable checkpoint.
      progress: show a progress bar.
      stop_after_chunks: stop (as if interrupted) after this many chunks in this call.
      interrupt_cls: the Ctrl-C handler (tests substitute one).

    Returns:
      The summary: run_dir, backend, members, chunks_done, chunks_total, steps,
      train_seconds, interrupted (and `interrupted_by`: "signal" or "stop_after_chunks"),
      solved_early, evaluation (None when interrupted or `eval_episodes` is 0).

    Raises:
      RunError: no readable checkpoint to resume from (code 2), a non-finite loss (code 1).
    """
    from agents import loggers as loggers_lib
    from agents import plotting
    from agents.checkpoint import Checkpointer

    start = time.perf_counter()
    config = plan.config
    checkpoints = Checkpointer(run_dir / "checkpoints")
    done = 0
    if resuming:  # the restored state replaces the initial one: it is never computed
        done, state = restore(plan, backend, run_dir, checkpoints)
        backend.start()
    else:
        state = backend.init()
    try:
        loggers = loggers_lib.make_loggers(
            run_dir, metric_columns(plan), keep_chunks=done if resuming else None,
            tensorboard=config.tensorboard, wandb=config.wandb, config=plan.resolved_config())
    except loggers_lib.MissingDependency as error:
        backend.close()
        raise RunError(str(error), code=2) from None
    completed = saved = done
    interrupted_by = None
    solved = False
    chunks_this_call = 0
    last_save = time.perf_counter()
    bar = progress_bar(plan, done * plan.steps_per_chunk, progress)

    def save():
        nonlocal saved, last_save
        checkpoints.save(completed, backend.to_checkpoint(state))
        saved, last_save = completed, time.perf_counter()

    try:
        with interrupt_cls(backend.interrupt_message) as interrupt:
            for chunk in range(done, plan.num_chunks):
                t0 = time.perf_counter()
                new_state, result = backend.run(state, plan.iterations_per_chunk,
                                                lambda: interrupt.requested)
                seconds = time.perf_counter() - t0
                if result.nan_step is not None:
                    member, step = result.nan_step
                    last = checkpoints.latest_step()
                    kept = (f"the last good checkpoint (chunk {last}) is kept in "
                            f"{run_dir / 'checkpoints'}" if last is not None else
                            "no checkpoint was written before it")
                    raise RunError(
                        f"the loss became NaN at environment step {step} (member {member}, "
                        f"seed {plan.members()[member]['seed']}); training stopped and {kept}",
                        code=1)
                if not result.complete:  # stopped mid-chunk: its steps are dropped
                    interrupted_by = "signal"
                    break
                state, completed = new_state, chunk + 1
                chunks_this_call += 1
                rows = chunk_rows(plan, chunk, result.members, seconds)
                loggers.log(rows, completed * plan.steps_per_chunk)  # before the checkpoint
                solved = (config.stop_at_return is not None and result.best_scores is not None
                          and bool(np.all(result.best_scores >= config.stop_at_return)))
                if interrupt.requested:
                    interrupted_by = "signal"
                elif stop_after_chunks is not None and chunks_this_call >= stop_after_chunks:
                    interrupted_by = "stop_after_chunks"
                stop = interrupted_by is not None or solved
                if (stop or completed == plan.num_chunks
                        or time.perf_counter() - last_save >= config.checkpoint_seconds):
                    save()
                bar.update(plan.steps_per_chunk)
                recent = [float(r["mean_return"]) for r in rows if r["mean_return"] != ""]
                evals = [float(r["eval_return"]) for r in rows if r["eval_return"] != ""]
                bar.set_postfix({
                    "steps/s": f"{plan.steps_per_chunk * plan.num_members / seconds:,.0f}",
                    "return": f"{np.mean(recent):.1f}" if recent else "-",
                    "eval": f"{np.mean(evals):.1f}" if evals else "-"})
                if stop:
                    break
        if saved < completed:  # stopped mid-chunk: keep every completed chunk
            save()
    finally:
        bar.close()
        loggers.close()
        backend_summary = backend.summary()
        backend.close()
    interrupted = interrupted_by is not None and completed < plan.num_chunks and not solved
    summary = {"run_dir": str(run_dir), "backend": backend.name, "members": plan.num_members,
               "chunks_done": completed, "chunks_total": plan.num_chunks,
               "steps": completed * plan.steps_per_chunk,
               "train_seconds": time.perf_counter() - start, "interrupted": interrupted,
               "interrupted_by": interrupted_by if interrupted else None,
               "solved_early": solved, "evaluation": None, **backend_summary}
    if solved:
        print(f"every member reached a greedy evaluation return >= {config.stop_at_return} "
              f"on the JAX twin after {summary['steps']:,} steps; stopping early",
              file=sys.stderr)
    plotting.plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png",
                                 plan.swept, f"{config.agent} on {config.env}")
    if interrupted:
        print(f"stopped after chunk {completed} of {plan.num_chunks}; continue with: "
              f"python scripts/train.py --resume {run_dir}", file=sys.stderr)
        return summary
    if config.eval_episodes > 0:
        summary["evaluation"] = evaluate_members(
            plan, backend.policy_states(state), run_dir / "evaluation.json")
    return summary


def evaluate_members(plan: Plan, policy_states: list, out_path: pathlib.Path | None,
                     env_id: str | None = None, episodes: int | None = None,
                     video_dir: pathlib.Path | None = None) -> dict:
    """Greedy Gymnasium evaluation of every member (and, for sweeps, per configuration).

    Args:
      plan: the run.
      policy_states: one `AgentState` per member (`backend.policy_states`).
      out_path: the JSON file to write (None: none).
      env_id: the Gymnasium id (default: the run's environment); its spaces must be those
        the agent was built for.
      episodes: episodes per member (default: the run's `eval_episodes`, or 100).
      video_dir: record member 0's first episode there.

    Returns:
      `{"env_id", "episodes", "policy", "mean_return", "std_return", "members": [...],
      "configurations": [...]}`; a configuration is a swept setting with the mean, standard
      deviation and 95% confidence half-width over its seeds.
    """
    from agents.evaluation import evaluate

    env_id = env_id or plan.config.env
    episodes = episodes or plan.config.eval_episodes or 100
    per_member = []
    gym_id = env_id
    for m, agent_state in zip(plan.members(), policy_states, strict=True):
        try:
            result = evaluate(plan.agent, agent_state, env_id, episodes, seed=10_000 + m["seed"],
                              video_dir=str(video_dir) if video_dir is not None
                              and m["member"] == 0 else None, wrappers=plan.wrappers,
                              expected_spaces=(plan.observation_space, plan.action_space))
        except ValueError as error:
            raise RunError(str(error)) from None
        per_member.append({**m, **{k: result[k] for k in (
            "mean_return", "std_return", "mean_length", "episodes")}})
        gym_id = result["env_id"]
    means = [r["mean_return"] for r in per_member]
    configurations = []
    for setting in plan.settings:
        rows = [r for r in per_member if all(r[n] == setting[n] for n in plan.swept)]
        values = np.array([r["mean_return"] for r in rows])
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        configurations.append({
            **{n: setting[n] for n in plan.swept}, "seeds": [r["seed"] for r in rows],
            "mean_return": float(values.mean()), "std_return_over_seeds": std,
            "ci95": 1.96 * std / np.sqrt(len(values)) if len(values) > 1 else None})
    evaluation = {
        "env_id": gym_id, "episodes": episodes,
        "policy": "best greedy evaluation on the JAX twin during training"
        if plan.config.select_best and plan.backend == "jax" else "final parameters",
        "mean_return": float(np.mean(means)),
        "std_return": float(np.std(means)) if len(means) > 1 else per_member[0]["std_return"],
        "members": per_member, "configurations": configurations,
    }
    if out_path is not None:
        pathlib.Path(out_path).write_text(json.dumps(evaluation, indent=2) + "\n")
    return evaluation
