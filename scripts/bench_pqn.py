"""PQN on CartPole-v1: tdkit's `--agent pqn` against purejaxql's own `pqn_gymnax.py`, side by side.

Both run here, one after the other, `--rounds` times (alternating, so that drift in the
machine's load hits both); the table reports medians. JAX's persistent compilation cache is
off on both sides (cold compiles).

1. Time to a greedy return of 500 (1 seed; round r uses seed r on both sides). Both evaluate
   128 greedy episodes every 12 updates (purejaxql's TEST_NUM_ENVS and TEST_INTERVAL 0.05 of
   244 updates; tdkit `--select-episodes 128 --chunk-steps 24576`) and count 500 as reached
   when every one of them lasts 500 steps.
   - tdkit: `scripts/train.py --agent pqn --stop-at-return 500`, from the command's start to
     the end of the chunk whose evaluation first reached 500 (metrics.csv's wall_time), over
     at most 20 evaluations (491,520 steps: purejaxql's last test is after update 240). The
     command then also runs 100 greedy episodes on Gymnasium's CartPole-v1 (reported).
   - purejaxql: its training is one compiled program that cannot stop early, so it always
     trains 500k steps. This script runs purejaxql's `make_train` with the config its CLI
     composes (`+alg=pqn_cartpole`) in purejaxql's own virtual environment (the
     `--run-purejaxql` mode below: `jax.jit(jax.vmap(make_train(config)))`, lowered and
     compiled, then run), reads `test/returned_episode_returns` from the returned metrics,
     and takes the time to 500 as: from the command's start to the end of compilation, plus
     the training run's time prorated to the first update whose test reached 500.
2. Compile time. purejaxql: `jax.jit(...).lower(rngs).compile()`. tdkit: the first chunk's
   seconds minus the median of the later chunks' (a chunk is one compiled call).
3. Environment steps per second after compilation, with 1 and 8 seeds in one program,
   training only (no greedy evaluation), `--steps` steps per seed. tdkit: the median over
   chunks after the first (`bench_agents.throughput`); purejaxql: `TEST_DURING_TRAINING=false`,
   all seeds' steps over the run of the compiled program.

Same hyperparameters on both sides (tdkit's PQN defaults are purejaxql's
`config/alg/pqn_cartpole.yaml`: 32 envs x 64 steps, 4 epochs x 16 minibatches, 2x256
LayerNorm MLP, RAdam 1e-4 decayed linearly over 15,616 gradient steps, grad norm 10, reward
scale 0.1, gamma 0.99, lambda 0.95, epsilon 1 -> 0.2 over 100k steps); shortened runs keep
the decays of the 500k-step run on both sides (purejaxql's TOTAL_TIMESTEPS_DECAY). Differences
that are not speed: purejaxql treats the time limit (truncation at 500 steps) as termination
(`done`), tdkit bootstraps from the true final observation; purejaxql keeps an unused BatchNorm
on the input ("dummy normalize"); tdkit's `--stop-at-return` ends a run once it is solved.

Setup, once, outside this repository (no purejaxql code is committed here):

    git clone https://github.com/mttga/purejaxql ../purejaxql      # measured at 47af6d7
    python3.11 -m venv ../purejaxql-venv
    ../purejaxql-venv/bin/pip install "jax[cpu]==0.4.38" flax==0.10.2 optax==0.2.4 \\
        chex==0.1.88 gymnax==0.0.6 six "numpy<2.3" hydra-core omegaconf safetensors wandb

(purejaxql pins jax <= 0.4.38; gymnax 0.0.6 imports `six` without declaring it; for a GPU
use "jax[cuda12]==0.4.38". The defaults of `--purejaxql-dir` and `--purejaxql-venv` are
$PUREJAXQL_DIR and $PUREJAXQL_VENV, else ../purejaxql and ../purejaxql-venv next to this
checkout.) Then:

    python scripts/bench_pqn.py [--rounds 3] [--steps 196608] [--device cpu|gpu]
        [--purejaxql-dir PATH] [--purejaxql-venv PATH] [--out runs/bench_pqn.json]

The purejaxql runs are `PYTHON scripts/bench_pqn.py --run-purejaxql DIR OUT.json OVERRIDE...`
with purejaxql's Python (stdlib-only imports until then); the table prints every command.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_agents  # noqa: E402  (throughput of a tdkit agent)
import bench_dqn  # noqa: E402  (train.py runs and metrics.csv rows)

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET = 500.0
UPDATE_STEPS = 64 * 32  # environment steps per PQN update: NUM_STEPS x NUM_ENVS
CHUNK_STEPS = 12 * UPDATE_STEPS  # purejaxql tests every int(0.05 * 244) = 12 updates
SOLVE_STEPS = 20 * CHUNK_STEPS  # its 500k-step run's 20 tests (the last after update 240)
TEST_EPISODES = 128  # purejaxql's TEST_NUM_ENVS
PIP_INSTALL = ('"jax[cpu]==0.4.38" flax==0.10.2 optax==0.2.4 chex==0.1.88 gymnax==0.0.6 six '
               '"numpy<2.3" hydra-core omegaconf safetensors wandb')


# --- purejaxql's side: runs in purejaxql's virtual environment ------------------------------

def run_purejaxql(argv: list[str]) -> int:
    """`--run-purejaxql DIR OUT.json OVERRIDE...`: purejaxql's `make_train` on the config its
    CLI composes from DIR/purejaxql/config with the hydra OVERRIDEs, compiled then run; writes
    the timings and per-update metrics `[S, U]` to OUT.json."""
    started = time.time()
    purejaxql_dir, out_path, *overrides = argv
    source = os.path.join(os.path.abspath(purejaxql_dir), "purejaxql")
    sys.path.insert(0, source)
    import jax
    import numpy as np
    import pqn_gymnax
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    imported = time.time()
    with initialize_config_dir(config_dir=os.path.join(source, "config"), version_base=None):
        config = OmegaConf.to_container(compose(config_name="config", overrides=overrides))
    config = {**config, **config["alg"]}  # as pqn_gymnax.single_run
    rngs = jax.random.split(jax.random.PRNGKey(config["SEED"]), config["NUM_SEEDS"])
    train = jax.jit(jax.vmap(pqn_gymnax.make_train(config)))
    t0 = time.perf_counter()
    compiled = train.lower(rngs).compile()
    compile_seconds = time.perf_counter() - t0
    compiled_at = time.time()
    t0 = time.perf_counter()
    outs = jax.block_until_ready(compiled(rngs))
    run_seconds = time.perf_counter() - t0
    metrics = jax.device_get(outs["metrics"])
    tests = metrics.get("test/returned_episode_returns")
    result = {
        "jax": jax.__version__, "device": str(jax.devices()[0].device_kind),
        "overrides": overrides, "seeds": int(config["NUM_SEEDS"]),
        "num_updates": int(config["NUM_UPDATES"]),
        "steps_per_update": int(config["NUM_STEPS"] * config["NUM_ENVS"]),
        "started_at": started, "imported_at": imported, "compiled_at": compiled_at,
        "compile_seconds": compile_seconds, "run_seconds": run_seconds,
        "env_step": np.asarray(metrics["env_step"]).tolist(),
        "test_returns": None if tests is None else np.asarray(tests, float).tolist()}
    pathlib.Path(out_path).write_text(json.dumps(result) + "\n")
    return 0


# --- both sides, driven from tdkit's environment ------------------------------------------

def bench_env(device: str) -> dict:
    """tdkit's subprocess environment (as in the other benchmarks): cold compiles."""
    return {**os.environ, "TDKIT_COMPILATION_CACHE": "off",
            "JAX_PLATFORMS": "cuda" if device == "gpu" else "cpu",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def peer_env(device: str) -> dict:
    """purejaxql's: its own Python, no tdkit on the path, W&B off, no compilation cache."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "JAX_COMPILATION_CACHE_DIR", "TDKIT_COMPILATION_CACHE")
    return {**{k: v for k, v in os.environ.items() if k not in drop},
            "WANDB_MODE": "disabled", "JAX_PLATFORMS": "cuda" if device == "gpu" else "cpu"}


def compile_estimate(chunk_seconds: list[float]) -> float | None:
    """The first chunk's seconds minus the median later chunk's (None with one chunk)."""
    if len(chunk_seconds) < 2:
        return None
    return chunk_seconds[0] - statistics.median(chunk_seconds[1:])


def tdkit_solve_args(seed: int, out, solve_steps: int = SOLVE_STEPS,
                     chunk_steps: int = CHUNK_STEPS, select_episodes: int = TEST_EPISODES,
                     eval_episodes: int = 100) -> list[str]:
    return ["--agent", "pqn", "--seed", str(seed), "--total-steps", str(solve_steps),
            "--chunk-steps", str(chunk_steps), "--select-episodes", str(select_episodes),
            "--stop-at-return", str(TARGET), "--eval-episodes", str(eval_episodes),
            "--no-progress", "--out", str(out)]


def tdkit_time_to_target(seed: int, env: dict, workdir, **solve) -> dict:
    """One `train.py --agent pqn --stop-at-return 500` run, timed from the command's start to
    the end of the chunk whose greedy evaluation on the JAX twin first reached 500."""
    out = pathlib.Path(workdir) / f"tdkit-solve-seed{seed}"
    args = tdkit_solve_args(seed, out, **solve)
    start_epoch, seconds, _ = bench_dqn._run(args, env)
    rows = [r for r in bench_dqn._rows(out) if int(r["member"]) == 0]
    first = next((r for r in rows if float(r["eval_return"]) >= TARGET), None)
    evaluation_path = out / "evaluation.json"
    gym_mean = (json.loads(evaluation_path.read_text())["members"][0]["mean_return"]
                if evaluation_path.exists() else None)
    return {"seed": seed, "command": "python scripts/train.py " + " ".join(args),
            "reached": first is not None,
            "steps_to_target": int(first["step"]) if first else None,
            "seconds_to_target": float(first["wall_time"]) - start_epoch if first else None,
            "command_seconds": seconds,
            "compile_seconds": compile_estimate([float(r["seconds"]) for r in rows]),
            "eval_returns": [float(r["eval_return"]) for r in rows],
            "gymnasium_mean_return": gym_mean}


def tdkit_throughput(seeds: int, steps: int, env: dict, workdir) -> dict:
    """`bench_agents.throughput` (training only, 8 chunks) plus its compile estimate."""
    rate = bench_agents.throughput("pqn", seeds, steps, env, workdir)
    out = bench_agents.throughput_dir(workdir, "pqn", seeds)
    seconds = [float(r["seconds"]) for r in bench_dqn._rows(out) if int(r["member"]) == 0]
    command = (f"python scripts/train.py --agent pqn --seeds {seeds} --total-steps {steps} "
               f"--chunk-steps {max(steps // 8, 1)} --eval-episodes 0 --no-select-best "
               f"--no-progress --out {out}")
    return {"seeds": seeds, "steps": steps, "steps_per_second": rate,
            "compile_seconds": compile_estimate(seconds), "command": command}


def purejaxql_command(python, purejaxql_dir, out, overrides) -> list[str]:
    return [str(python), str(pathlib.Path(__file__).resolve()), "--run-purejaxql",
            str(purejaxql_dir), str(out), *overrides]


def purejaxql_run(python, purejaxql_dir, overrides, env, workdir, tag):
    out = pathlib.Path(workdir) / f"purejaxql-{tag}.json"
    command = purejaxql_command(python, purejaxql_dir, out, overrides)
    start_epoch = time.time()
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"purejaxql run {' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return start_epoch, seconds, json.loads(out.read_text()), " ".join(command)


def purejaxql_time_to_target(python, purejaxql_dir, seed, env, workdir,
                             solve_steps: int | None = None) -> dict:
    """purejaxql's CartPole run (500k steps unless `solve_steps`); the time to its first test
    return of 500, prorated over the run of the compiled program (see the module doc)."""
    overrides = ["+alg=pqn_cartpole", f"SEED={seed}", "NUM_SEEDS=1"]
    if solve_steps is not None:
        overrides.append(f"alg.TOTAL_TIMESTEPS={solve_steps}")
    start_epoch, seconds, result, command = purejaxql_run(
        python, purejaxql_dir, overrides, env, workdir, f"solve-seed{seed}")
    tests = result["test_returns"][0]
    first = next((i for i, value in enumerate(tests) if value >= TARGET), None)
    fraction = None if first is None else (first + 1) / result["num_updates"]
    return {"seed": seed, "command": command, "reached": first is not None,
            "steps_to_target": None if first is None else result["env_step"][0][first],
            "seconds_to_target": None if first is None else
            result["compiled_at"] - start_epoch + fraction * result["run_seconds"],
            "command_seconds": seconds, "compile_seconds": result["compile_seconds"],
            "run_seconds": result["run_seconds"], "import_seconds":
            result["imported_at"] - start_epoch, "jax": result["jax"],
            "test_returns_every_12_updates": tests[11::12]}


def purejaxql_throughput(python, purejaxql_dir, seeds, steps, env, workdir) -> dict:
    overrides = ["+alg=pqn_cartpole", f"NUM_SEEDS={seeds}", f"alg.TOTAL_TIMESTEPS={steps}",
                 "alg.TEST_DURING_TRAINING=false"]
    _, seconds, result, command = purejaxql_run(python, purejaxql_dir, overrides, env,
                                                workdir, f"x{seeds}")
    steps_done = result["num_updates"] * result["steps_per_update"] * result["seeds"]
    return {"seeds": seeds, "steps": steps, "command": command,
            "steps_per_second": steps_done / result["run_seconds"],
            "compile_seconds": result["compile_seconds"], "command_seconds": seconds}


def check_purejaxql(venv, purejaxql_dir) -> pathlib.Path:
    """purejaxql's Python; exits with a one-line error when the venv or the source is missing."""
    python = pathlib.Path(venv) / "bin" / "python"
    howto = (f"create it with: python3.11 -m venv {venv} && {venv}/bin/pip install "
             f"{PIP_INSTALL} (see the docstring of scripts/bench_pqn.py)")
    if not python.exists():
        sys.exit(f"error: no purejaxql virtual environment at {venv} (no bin/python); {howto}")
    probe = subprocess.run([str(python), "-c", "import jax, flax, optax, gymnax, hydra, six"],
                           capture_output=True, text=True, env=peer_env("cpu"))
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        sys.exit(f"error: the purejaxql virtual environment at {venv} is incomplete ({last}); "
                 f"{howto}")
    if not (pathlib.Path(purejaxql_dir) / "purejaxql" / "pqn_gymnax.py").exists():
        sys.exit(f"error: no purejaxql source at {purejaxql_dir} (expected "
                 f"purejaxql/pqn_gymnax.py there); get it with: git clone "
                 f"https://github.com/mttga/purejaxql {purejaxql_dir}")
    return python


# --- the table ----------------------------------------------------------------------------

def median_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


ROWS = [  # label, key, which, lower is better
    ("greedy 500 reached (rounds)", "reached", "solve", None),
    ("env steps to greedy 500", "steps_to_target", "solve", True),
    ("seconds to greedy 500 (from start)", "seconds_to_target", "solve", True),
    ("whole command (s) [1]", "command_seconds", "solve", True),
    ("compile (s): train + tests, 1 seed", "compile_seconds", "solve", True),
]


def summary_rows(results: dict, throughput_seeds) -> list[tuple]:
    """`(metric, tdkit, purejaxql, ratio)` per row; ratio > 1 favours tdkit; None where a
    side has no value."""
    rows = []
    for label, key, which, lower in ROWS:
        t, p = results["tdkit"][which], results["purejaxql"][which]
        if key == "reached":
            rows.append((label, f"{sum(r['reached'] for r in t)}/{len(t)}",
                         f"{sum(r['reached'] for r in p)}/{len(p)}", None))
            continue
        rows.append((label, median_of(t, key), median_of(p, key), lower))
    for seeds in throughput_seeds:
        t, p = results["tdkit"][f"x{seeds}"], results["purejaxql"][f"x{seeds}"]
        rows.append((f"steps/s, {seeds} seed{'s' * (seeds > 1)} (all seeds)",
                     median_of(t, "steps_per_second"), median_of(p, "steps_per_second"), False))
        rows.append((f"compile (s): train only, {seeds} seed{'s' * (seeds > 1)}",
                     median_of(t, "compile_seconds"), median_of(p, "compile_seconds"), True))
    out = []
    for label, t, p, lower in rows:
        ratio = None
        if lower is not None and t and p:
            ratio = p / t if lower else t / p
        out.append((label, t, p, ratio))
    return out


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}"


def format_table(rows: list[tuple]) -> str:
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'metric':<{width}}{'tdkit':>12}{'purejaxql':>12}{'ratio':>9}"]
    for label, t, p, ratio in rows:
        lines.append(f"{label:<{width}}{_cell(t):>12}{_cell(p):>12}"
                     f"{'-' if ratio is None else f'{ratio:.2f}x':>9}")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="repeat everything this many times; medians are reported")
    parser.add_argument("--steps", type=int, default=8 * CHUNK_STEPS,
                        help="steps per seed of each steps/s run (a multiple of 16384: 8 "
                        "chunks of whole updates; default 196608)")
    parser.add_argument("--throughput-seeds", type=int, nargs="+", default=[1, 8],
                        help="seeds of the steps/s runs (default 1 8)")
    parser.add_argument("--solve-steps", type=int, default=None,
                        help="shorten the time-to-500 runs to this many steps (default: "
                        "purejaxql's 500k, tdkit 491,520; for smoke runs)")
    parser.add_argument("--eval-episodes", type=int, default=100,
                        help="tdkit's greedy Gymnasium episodes after its time-to-500 run")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--purejaxql-dir", default=os.environ.get(
        "PUREJAXQL_DIR", str(ROOT.parent / "purejaxql")),
        help="purejaxql's checkout (holding purejaxql/pqn_gymnax.py)")
    parser.add_argument("--purejaxql-venv", default=os.environ.get(
        "PUREJAXQL_VENV", str(ROOT.parent / "purejaxql-venv")),
        help="purejaxql's virtual environment (see the module doc)")
    parser.add_argument("--out", default="runs/bench_pqn.json")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.steps < 8 * UPDATE_STEPS or args.steps % (8 * UPDATE_STEPS):
        parser.error(f"--steps must be a positive multiple of {8 * UPDATE_STEPS}, got "
                     f"{args.steps}")
    if args.solve_steps is not None and args.solve_steps < 20 * UPDATE_STEPS:
        parser.error(f"--solve-steps must be >= {20 * UPDATE_STEPS} (purejaxql tests every "
                     f"int(0.05 x updates) updates), got {args.solve_steps}")
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--run-purejaxql"]:
        return run_purejaxql(argv[1:])
    args = parse_args(argv)
    python = check_purejaxql(args.purejaxql_venv, args.purejaxql_dir)
    env, penv = bench_env(args.device), peer_env(args.device)
    tdkit_solve = {"eval_episodes": args.eval_episodes}
    if args.solve_steps is not None:
        tdkit_solve["solve_steps"] = args.solve_steps
    print(f"load average {os.getloadavg()[0]:.2f}; purejaxql {args.purejaxql_dir} with "
          f"{python}", flush=True)
    results = {side: {"solve": [], **{f"x{s}": [] for s in args.throughput_seeds}}
               for side in ("tdkit", "purejaxql")}
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as workdir:
            t = tdkit_time_to_target(r, env, workdir, **tdkit_solve)
            p = purejaxql_time_to_target(python, args.purejaxql_dir, r, penv, workdir,
                                         args.solve_steps)
            results["tdkit"]["solve"].append(t)
            results["purejaxql"]["solve"].append(p)
            print(f"round {r}: to 500: tdkit {_cell(t['seconds_to_target'])} s "
                  f"({t['steps_to_target']} steps), purejaxql {_cell(p['seconds_to_target'])}"
                  f" s ({p['steps_to_target']} steps)", flush=True)
            for seeds in args.throughput_seeds:
                t = tdkit_throughput(seeds, args.steps, env, workdir)
                p = purejaxql_throughput(python, args.purejaxql_dir, seeds, args.steps, penv,
                                         workdir)
                results["tdkit"][f"x{seeds}"].append(t)
                results["purejaxql"][f"x{seeds}"].append(p)
                print(f"round {r}: {seeds} seed(s): tdkit {t['steps_per_second']:,.0f} "
                      f"steps/s, purejaxql {p['steps_per_second']:,.0f} steps/s", flush=True)
    rows = summary_rows(results, args.throughput_seeds)
    print(f"\nmedians over {args.rounds} round(s); ratio: how many times faster (fewer "
          f"steps) tdkit is, > 1 favours tdkit; jax {results['purejaxql']['solve'][0]['jax']} "
          f"for purejaxql")
    print(format_table(rows))
    print("[1] tdkit stops at 500, then runs its Gymnasium evaluation; purejaxql always "
          "trains its whole run.\n    purejaxql's seconds to 500 are prorated over its "
          "compiled run (it cannot stop early).")
    print("\ncommands (round 0; run folders and JSON files are in a temporary folder):")
    for side in ("tdkit", "purejaxql"):
        for key in ("solve", *(f"x{s}" for s in args.throughput_seeds)):
            print(f"  {side} {key}: {results[side][key][0]['command']}")
    gym = [r["gymnasium_mean_return"] for r in results["tdkit"]["solve"]]
    print(f"tdkit's Gymnasium CartPole-v1 mean return ({args.eval_episodes} greedy episodes) "
          f"per round: {gym}")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(
        {"load_average": os.getloadavg()[0], "device": args.device, "rounds": args.rounds,
         "table": [dict(zip(("metric", "tdkit", "purejaxql", "ratio"), row, strict=True))
                   for row in rows],
         "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
