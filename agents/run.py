"""Training runs: configuration, run folder, chunked training, checkpoints, metrics, evaluation.

`train(config)` is what `scripts/train.py` calls. A run folder holds:

    config.json          the full configuration (what `--resume` rebuilds the run from)
    metrics.csv          one row per chunk and member (seed x hyperparameter setting)
    learning_curve.png   mean return per configuration with a 95% confidence band
    checkpoints/<chunk>/ atomic orbax checkpoints of the whole training state
    evaluation.json      greedy evaluation on the Gymnasium environment

JAX backend: the whole loop state (agents, replay buffers, environment states, keys) is
checkpointed between chunks, and every chunk is a deterministic function of that state, so a
resumed run ends with exactly the parameters of an uninterrupted one. Gym backend (host loop):
the agent state is checkpointed; the Gymnasium environments restart on resume.
"""

import csv
import dataclasses
import json
import math
import pathlib
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from agents import registry
from agents.base import AgentState

HPARAM_ALIASES = {"lr": "learning_rate"}


class RunError(Exception):
    """A user error detected before or during a run; the CLI prints it on one line and exits
    with `code` (2 for invalid input, 1 for a run that failed, e.g. a NaN loss)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a training run (saved as config.json)."""

    agent: str = "dqn"
    env: str = "CartPole-v1"
    backend: str = "auto"
    seed: int = 0
    seeds: int = 1
    total_steps: int = 50_000
    num_envs: int = 8
    chunk_steps: int = 5_000
    eval_episodes: int = 100
    select_best: bool = True
    select_episodes: int = 64
    stop_at_return: float | None = None
    checkpoint_seconds: float = 30.0
    pin_cpu: bool = False
    out: str | None = None
    agent_config: dict = dataclasses.field(default_factory=dict)
    hparams: dict = dataclasses.field(default_factory=dict)
    sweep: dict = dataclasses.field(default_factory=dict)
    devices: str | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------
# Resolution and validation (all before any compilation).
# ----------------------------------------------------------------------------------------


def resolve_backend(env_id: str, backend: str) -> str:
    """'jax' when tdkit has a JAX version of `env_id` (and backend allows it), else 'gym'."""
    import gymnasium

    import envs

    if backend not in ("auto", "jax", "gym"):
        raise RunError(f"--backend must be jax, gym or auto, got '{backend}'")
    jax_names = envs.names()
    short = env_id.removeprefix("tdkit/")
    if backend in ("auto", "jax") and short in jax_names:
        return "jax"
    if backend == "jax":
        raise RunError(f"no JAX version of '{env_id}'; JAX environments: {', '.join(jax_names)}")
    gymnasium.register_envs(envs)
    if env_id not in gymnasium.envs.registry and f"tdkit/{short}" not in gymnasium.envs.registry:
        import difflib

        known = list(jax_names) + sorted(gymnasium.envs.registry)
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise RunError(
            f"unknown environment '{env_id}'{hint}; valid: tdkit's {', '.join(jax_names)} "
            f"or any registered Gymnasium id")
    return "gym"


def env_spaces(env_id: str, backend: str):
    """(observation_space, action_space) of one environment."""
    import gymnasium

    import envs

    if backend == "jax":
        env, _ = envs.make(env_id)
        return env.observation_space, env.action_space
    gymnasium.register_envs(envs)
    env = gymnasium.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def expand_sweep(spec: registry.AgentSpec, base: Mapping[str, Any],
                 sweep: Mapping[str, Sequence[float]]) -> list[dict]:
    """All combinations of the swept hyperparameters over `base` (one dict per setting)."""
    import itertools

    settings = [dict(base)]
    names = list(sweep)
    for name in names:
        if name not in spec.default_hparams:
            raise RunError(
                f"agent '{spec.name}' has no numeric hyperparameter '{name}' to sweep; valid: "
                f"{', '.join(sorted(spec.default_hparams))}")
    if names:
        settings = [
            {**base, **dict(zip(names, combo, strict=True))}
            for combo in itertools.product(*(sweep[n] for n in names))]
    return settings


def normalise_hparams(spec: registry.AgentSpec, hparams: Mapping[str, Any]) -> dict:
    out = {}
    for name, value in hparams.items():
        name = HPARAM_ALIASES.get(name, name)
        if name not in spec.default_hparams:
            raise RunError(
                f"agent '{spec.name}' has no hyperparameter '{name}'; valid: "
                f"{', '.join(sorted(spec.default_hparams))}")
        out[name] = float(value)
    return out


class Plan:
    """A validated run: agent, environment, members (settings x seeds) and chunking."""

    def __init__(self, config: RunConfig):
        if config.seeds < 1:
            raise RunError(f"--seeds must be >= 1, got {config.seeds}")
        if config.total_steps <= 0 or config.num_envs <= 0 or config.chunk_steps <= 0:
            raise RunError("--total-steps, --num-envs and --chunk-steps must be > 0")
        if config.eval_episodes < 0:
            raise RunError(f"--eval-episodes must be >= 0, got {config.eval_episodes}")
        if config.select_best and config.select_episodes < 1:
            raise RunError(f"--select-episodes must be >= 1, got {config.select_episodes}")
        self.config = config
        try:
            self.spec = registry.get(config.agent)
        except ValueError as error:
            raise RunError(str(error)) from None
        self.backend = resolve_backend(config.env, config.backend)
        self.observation_space, self.action_space = env_spaces(config.env, self.backend)
        try:
            self.spec.check(self.observation_space, self.action_space)
            self.agent_config = registry.make_config(self.spec, config.agent_config)
        except (ValueError, TypeError) as error:
            raise RunError(str(error)) from None
        base = normalise_hparams(self.spec, config.hparams)
        sweep = {HPARAM_ALIASES.get(k, k): [float(v) for v in vs]
                 for k, vs in config.sweep.items()}
        self.settings = expand_sweep(self.spec, base, sweep)
        self.swept = sorted(sweep)
        if self.backend == "gym" and (len(self.settings) > 1 or config.seeds > 1):
            raise RunError("--seeds > 1 and --sweep need the JAX backend (a tdkit JAX env)")
        try:
            self.agent = self.spec.build(
                self.observation_space, self.action_space, self.agent_config)
            # Validate every setting on the host before compiling anything.
            for setting in self.settings:
                from agents.base import merge_hparams

                merged = merge_hparams(self.spec.default_hparams, setting)
                self.spec.validate(self.agent_config, merged)
        except ValueError as error:
            raise RunError(str(error)) from None
        self.num_members = len(self.settings) * config.seeds
        self.select_episodes = config.select_episodes if config.select_best else 0
        self.sharding = None
        if config.devices is not None:
            if self.backend != "jax":
                raise RunError("--devices needs the JAX backend (a tdkit JAX environment)")
            from tdkit import parallel

            try:
                self.sharding = parallel.member_sharding(config.devices, self.num_members)
            except ValueError as error:
                raise RunError(f"--devices: {error}") from None
        self.iterations_per_chunk = max(1, config.chunk_steps // config.num_envs)
        steps_per_chunk = self.iterations_per_chunk * config.num_envs
        self.num_chunks = max(1, math.ceil(config.total_steps / steps_per_chunk))
        self.steps_per_chunk = steps_per_chunk

    def members(self) -> list[dict]:
        """One dict per member: `{"member", "seed", **setting}` (settings outer, seeds inner)."""
        out = []
        for setting in self.settings:
            for s in range(self.config.seeds):
                out.append({"member": len(out), "seed": self.config.seed + s, **setting})
        return out

    def member_hparams(self) -> dict[str, jax.Array]:
        """Full hyperparameters per member, `{name: [M]}` float32 (traced under vmap)."""
        names = list(self.spec.default_hparams)
        rows = [{**self.spec.default_hparams, **m} for m in self.members()]
        return {n: jnp.asarray([r[n] for r in rows], jnp.float32) for n in names}

    def member_keys(self) -> jax.Array:
        seeds = jnp.asarray([m["seed"] for m in self.members()], jnp.uint32)
        return jax.vmap(jax.random.key)(seeds)


# ----------------------------------------------------------------------------------------
# Run folder.
# ----------------------------------------------------------------------------------------


def default_out(config: RunConfig) -> pathlib.Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return pathlib.Path("runs") / f"{config.agent}-{config.env.replace('/', '_')}-{stamp}"


def load_config(run_dir: pathlib.Path) -> RunConfig:
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunError(f"'{run_dir}' is not a run folder (no config.json)")
    try:
        data = json.loads(path.read_text())
        return RunConfig(**data)
    except (json.JSONDecodeError, TypeError) as error:
        raise RunError(f"'{path}' is not a valid tdkit run config: {error}") from None


class MetricsWriter:
    """metrics.csv with one row per chunk and member; rows past `keep_chunks` are dropped
    on resume so the file matches the checkpoint."""

    def __init__(self, path: pathlib.Path, columns: list[str], keep_chunks: int | None):
        self.path = path
        self.columns = columns
        rows = []
        if keep_chunks is not None and path.is_file():
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["chunk"]) < keep_chunks]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, rows: list[dict]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerows(rows)


def read_metrics(path: pathlib.Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def plot_learning_curve(metrics_path: pathlib.Path, out_path: pathlib.Path, swept: list[str],
                        title: str) -> bool:
    """Mean return per configuration with a 95% confidence band over seeds. False when
    matplotlib is not installed (the optional [plot] extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in read_metrics(metrics_path) if r["mean_return"] != ""]
    groups: dict[tuple, dict[int, list[tuple[int, float]]]] = {}
    for r in rows:
        label = tuple((n, r[n]) for n in swept)
        groups.setdefault(label, {}).setdefault(int(r["seed"]), []).append(
            (int(r["step"]), float(r["mean_return"])))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, by_seed in groups.items():
        steps = sorted({s for series in by_seed.values() for s, _ in series})
        curves = np.full((len(by_seed), len(steps)), np.nan)
        index = {s: i for i, s in enumerate(steps)}
        for row, series in enumerate(by_seed.values()):
            for s, value in series:
                curves[row, index[s]] = value
        mean = np.nanmean(curves, axis=0)
        count = np.sum(~np.isnan(curves), axis=0)
        sem = np.nanstd(curves, axis=0) / np.sqrt(np.maximum(count, 1))
        name = ", ".join(f"{n}={v}" for n, v in label) or "mean"
        ax.plot(steps, mean, label=f"{name} ({len(by_seed)} seeds)")
        if len(by_seed) > 1:
            ax.fill_between(steps, mean - 1.96 * sem, mean + 1.96 * sem, alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episode return (training)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if groups:  # no episode ended yet: an empty plot, without a legend
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------------


class _Interrupt:
    """Turns the first Ctrl-C into a flag checked between chunks (a second one aborts)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            print("\ninterrupt: finishing the current chunk, then saving a checkpoint "
                  "(Ctrl-C again to abort without saving)", file=sys.stderr)

        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _select(tree: Any, member: int) -> Any:
    return jax.tree.map(lambda x: x[member], tree)


def train(config: RunConfig, resume_dir: str | pathlib.Path | None = None,
          progress: bool = True, stop_after_chunks: int | None = None) -> dict:
    """Trains (or resumes) a run and evaluates it; returns the summary dict.

    Args:
      config: the run configuration (ignored when `resume_dir` is given: the saved one is used).
      resume_dir: a run folder to continue from its latest checkpoint.
      progress: show a progress bar.
      stop_after_chunks: stop (as if interrupted) after this many chunks in this call; for
        tests of resuming.

    Returns:
      Summary: run_dir, steps, seconds, chunks_done, interrupted, evaluation (or None).

    Raises:
      RunError: invalid configuration, not a run folder, or a loss that became NaN.
    """
    if resume_dir is not None:
        run_dir = pathlib.Path(resume_dir)
        config = load_config(run_dir)
    if resolve_backend(config.env, config.backend) == "gym":
        from agents import host_loop

        host_loop.inline_cpu_dispatch()  # these must come before Plan, which starts JAX
        if config.pin_cpu:
            host_loop.pin_to_one_cpu()
    plan = Plan(config)
    if resume_dir is None:
        run_dir = pathlib.Path(config.out) if config.out else default_out(config)
        if (run_dir / "config.json").exists():
            raise RunError(f"'{run_dir}' already holds a run; use --resume {run_dir} or "
                           f"another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        config.out = str(run_dir)
        saved = config.to_json()
        saved["agent_config"] = {**registry.config_defaults(plan.spec), **config.agent_config}
        (run_dir / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
    if plan.backend == "jax":
        return _train_jax(plan, run_dir, resume_dir is not None, progress, stop_after_chunks)
    from agents import host_loop

    return host_loop.train_host(plan, run_dir, resume_dir is not None, progress,
                                stop_after_chunks)


def metric_columns(plan: Plan) -> list[str]:
    return (["chunk", "member", "seed"] + plan.swept
            + ["step", "episodes", "mean_return", "mean_length", "loss", "eval_return",
               "best_eval_return", "seconds", "steps_per_second", "wall_time"])


def progress_bar(plan: Plan, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=plan.num_chunks * plan.steps_per_chunk, initial=initial,
                unit="step", unit_scale=True, disable=not enabled, dynamic_ncols=True,
                desc=f"{plan.config.agent} on {plan.config.env}")


def _train_jax(plan: Plan, run_dir: pathlib.Path, resuming: bool, progress: bool,
               stop_after_chunks: int | None) -> dict:
    import envs
    from agents.checkpoint import Checkpointer
    from agents.jax_loop import make_jax_loop

    start = time.perf_counter()
    config = plan.config
    env, env_params = envs.make(config.env)
    loop = make_jax_loop(plan.agent, env, env_params, config.num_envs,
                         eval_episodes=plan.select_episodes)
    members = plan.members()
    hparams = plan.member_hparams()
    init = jax.jit(jax.vmap(loop.init))
    sharding = plan.sharding
    run_chunk = jax.jit(jax.vmap(lambda s: loop.run(s, plan.iterations_per_chunk)))
    state = init(plan.member_keys(), hparams)
    if sharding is not None:
        from tdkit import parallel

        state = parallel.shard_leading(state, sharding)
    checkpoints = Checkpointer(run_dir / "checkpoints")
    done_chunks = 0
    if resuming:
        latest = checkpoints.latest_step()
        if latest is None:
            raise RunError(f"'{run_dir}' has no checkpoint to resume from")
        state = checkpoints.restore(state)
        if sharding is not None:
            state = parallel.shard_leading(state, sharding)
        done_chunks = latest
    writer = MetricsWriter(run_dir / "metrics.csv", metric_columns(plan), done_chunks)
    interrupted = solved = False
    chunks_this_call = 0
    completed = done_chunks
    last_save = time.perf_counter()
    bar = progress_bar(plan, done_chunks * plan.steps_per_chunk, progress)
    with _Interrupt() as interrupt:
        for chunk in range(done_chunks, plan.num_chunks):
            t0 = time.perf_counter()
            new_state, metrics = run_chunk(state)
            metrics = jax.device_get(metrics)
            seconds = time.perf_counter() - t0
            loss = np.where(metrics.learned, metrics.loss, 0.0)
            bad = ~np.isfinite(loss)
            if bad.any():
                member, it = np.argwhere(bad)[0]
                step = int(metrics.step[member, it])
                last = checkpoints.latest_step()
                kept = (f"the last good checkpoint (chunk {last}) is kept in "
                        f"{run_dir / 'checkpoints'}" if last is not None else
                        "no checkpoint was written before it")
                bar.close()
                raise RunError(
                    f"the loss became NaN at environment step {step} (member {member}, seed "
                    f"{members[member]['seed']}); training stopped and {kept}", code=1)
            state = new_state
            completed = chunk + 1
            chunks_this_call += 1
            solved = (config.stop_at_return is not None and config.select_best and bool(
                np.all(np.asarray(state.best_score) >= config.stop_at_return)))
            stop = interrupt.requested or solved or (
                stop_after_chunks is not None and chunks_this_call >= stop_after_chunks)
            if (stop or completed == plan.num_chunks
                    or time.perf_counter() - last_save >= config.checkpoint_seconds):
                checkpoints.save(completed, state)
                last_save = time.perf_counter()
            rows = _chunk_rows(plan, chunk, metrics, state, seconds)
            writer.append(rows)
            bar.update(plan.steps_per_chunk)
            recent = [float(r["mean_return"]) for r in rows if r["mean_return"] != ""]
            bar.set_postfix({
                "steps/s": f"{plan.steps_per_chunk * plan.num_members / seconds:,.0f}",
                "return": f"{np.mean(recent):.1f}" if recent else "-",
                "eval": f"{np.mean([float(r['eval_return']) for r in rows]):.1f}"
                if config.select_best else "-"})
            if stop:
                interrupted = not solved and completed < plan.num_chunks
                break
    bar.close()
    train_seconds = time.perf_counter() - start
    done = completed
    summary = {"run_dir": str(run_dir), "backend": "jax", "members": plan.num_members,
               "chunks_done": done, "chunks_total": plan.num_chunks,
               "steps": done * plan.steps_per_chunk, "train_seconds": train_seconds,
               "interrupted": interrupted, "solved_early": solved, "evaluation": None}
    if solved:
        print(f"every member reached a greedy evaluation return >= {config.stop_at_return} "
              f"on the JAX twin after {done * plan.steps_per_chunk:,} steps; stopping early",
              file=sys.stderr)
    plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png", plan.swept,
                        f"{config.agent} on {config.env}")
    if interrupted:
        print(f"stopped after chunk {done} of {plan.num_chunks}; continue with: "
              f"python scripts/train.py --resume {run_dir}", file=sys.stderr)
        return summary
    if config.eval_episodes > 0:
        summary["evaluation"] = evaluate_members(plan, state, run_dir)
    return summary


def policy_state(plan: Plan, loop_state: Any, member: int) -> AgentState:
    """The agent state of one member, with the selected (best-evaluated) parameters."""
    agent_state = _select(loop_state.agent, member)
    if plan.config.select_best and hasattr(loop_state, "best_params"):
        agent_state = agent_state._replace(params=_select(loop_state.best_params, member))
    return agent_state


def evaluate_members(plan: Plan, loop_state: Any, run_dir: pathlib.Path,
                     env_id: str | None = None, episodes: int | None = None,
                     video: bool = False) -> dict:
    """Greedy Gymnasium evaluation of every member; writes run_dir/evaluation.json."""
    from agents.evaluation import evaluate

    env_id = env_id or plan.config.env
    episodes = episodes or plan.config.eval_episodes or 100
    per_member = []
    for m in plan.members():
        result = evaluate(plan.agent, policy_state(plan, loop_state, m["member"]), env_id,
                          episodes, seed=10_000 + m["seed"],
                          video_dir=str(run_dir / "videos") if video and m["member"] == 0
                          else None)
        per_member.append({**m, **{k: result[k] for k in (
            "mean_return", "std_return", "mean_length", "episodes")}})
        gym_id = result["env_id"]
    means = [r["mean_return"] for r in per_member]
    evaluation = {
        "env_id": gym_id, "episodes": episodes, "policy": "best greedy evaluation on the JAX "
        "twin during training" if plan.config.select_best and plan.backend == "jax" else
        "final parameters",
        "mean_return": float(np.mean(means)), "std_return": float(np.std(means))
        if len(means) > 1 else per_member[0]["std_return"],
        "members": per_member,
    }
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    return evaluation


def _chunk_rows(plan: Plan, chunk: int, metrics: Any, state: Any, seconds: float) -> list:
    rows = []
    for m in plan.members():
        i = m["member"]
        finished = int(metrics.finished[i].sum())
        learned = metrics.learned[i]
        row = {
            "chunk": chunk, "member": i, "seed": m["seed"],
            **{n: m[n] if n in m else plan.spec.default_hparams[n] for n in plan.swept},
            "step": int(metrics.step[i, -1]), "episodes": finished,
            "mean_return": f"{metrics.return_sum[i].sum() / finished:.4f}" if finished else "",
            "mean_length": f"{metrics.length_sum[i].sum() / finished:.2f}" if finished else "",
            "loss": f"{metrics.loss[i][learned].mean():.6g}" if learned.any() else "",
            "eval_return": f"{float(state.last_score[i]):.3f}"
            if plan.config.select_best else "",
            "best_eval_return": f"{float(state.best_score[i]):.3f}"
            if plan.config.select_best else "",
            "seconds": f"{seconds:.3f}",
            "steps_per_second": f"{plan.steps_per_chunk * plan.num_members / seconds:.1f}",
            "wall_time": f"{time.time():.3f}",
        }
        rows.append(row)
    return rows


def restore_for_evaluation(run_dir: pathlib.Path):
    """(plan, loop_state) of a finished or interrupted run, for `scripts/evaluate.py`."""
    config = load_config(run_dir)
    plan = Plan(config)
    from agents.checkpoint import Checkpointer

    checkpoints = Checkpointer(run_dir / "checkpoints")
    if checkpoints.latest_step() is None:
        raise RunError(f"'{run_dir}' has no checkpoint")
    if plan.backend == "jax":
        import envs
        from agents.jax_loop import make_jax_loop

        env, env_params = envs.make(config.env)
        loop = make_jax_loop(plan.agent, env, env_params, config.num_envs,
                             eval_episodes=plan.select_episodes)
        template = jax.eval_shape(jax.vmap(loop.init), plan.member_keys(),
                                  plan.member_hparams())
    else:
        from agents import host_loop

        template = host_loop.state_template(plan)
    template = jax.tree.map(
        lambda s: jax.random.wrap_key_data(jnp.zeros(s.shape + (2,), jnp.uint32))
        if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key) else jnp.zeros(s.shape, s.dtype),
        template)
    return plan, checkpoints.restore(template)
