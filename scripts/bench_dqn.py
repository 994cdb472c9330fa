"""DQN benchmarks: time to solve CartPole-v1 with the jitted loop, and host-loop steps/s.

1. Jitted loop (tdkit's JAX CartPole twin): for each seed, the wall clock of
   `python scripts/train.py --seed S --stop-at-return 475` from the command's start (imports
   and compilation included, with JAX's persistent compilation cache OFF, i.e. cold) to the
   end of the chunk whose greedy evaluation on the JAX twin first reached 475; "solved" is
   then confirmed by the 100-episode greedy evaluation on Gymnasium's own CartPole-v1 that
   the command runs afterwards (mean return >= 475).
2. Host loop on Gymnasium's CartPole-v1 with CleanRL's `dqn_jax.py` hyperparameters (1 env,
   lr 2.5e-4, buffer 10k, batch 128, learning starts 10k, train every 10 steps, target every
   500 steps, MLP 120-84, MSE), run with `--pin-cpu` (one core: faster for this small
   network): environment steps per second after the learning starts.

3. Optional, `--cleanrl PATH/TO/cleanrl/dqn_jax.py`: the same number of steps of CleanRL's own
   script and of the host loop with CleanRL's exploration schedule (epsilon decays over half
   the steps), one after the other on this machine, `--cleanrl-rounds` times, each timed as
   a whole command (imports and compilation included); the median ratio is reported.
   CleanRL is not a dependency; run it with the Python that has its requirements
   (`--cleanrl-python`, default this one) and a Gymnasium it supports. (Pinned to one core
   with `taskset`, CleanRL's script ran slower here: 61.8 s against 59.0 s.)

Reference figures (2-core CPU, from the issue): CleanRL dqn_jax.py about 3.4k steps/s and
150 s for 500k steps; PureJaxRL's DQN about 21 s (5 s compile + 15.5 s for 500k steps).
Machines differ several-fold, so `--cleanrl` gives the ratio that means something.

    python scripts/bench_dqn.py [--seeds 5] [--device cpu|gpu] [--out runs/bench_dqn.json]
        [--cleanrl PATH/TO/dqn_jax.py [--cleanrl-python PY] [--cleanrl-steps 500000]
         [--cleanrl-rounds 3]]
"""

import argparse
import csv
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLEANRL_STEPS_PER_SECOND = 3400.0
CLEANRL_HOST_ARGS = [
    "--backend", "gym", "--num-envs", "1", "--learning-rate", "2.5e-4", "--buffer-size",
    "10000", "--batch-size", "128", "--learning-starts", "10000", "--train-every", "10",
    "--target-period", "50", "--epsilon-decay-steps", "250000", "--epsilon-end", "0.05",
    "--hidden-sizes", "120,84", "--layer-norm", "false", "--loss", "l2",
    "--learning-rate-decay-steps", "none", "--eval-episodes", "0", "--pin-cpu",
]


def _run(args, env):
    if "--agent" not in args:  # this script measures DQN (the main job's agent is PQN)
        args = ["--agent", "dqn", *args]
    start_epoch = time.time()
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "scripts/train.py", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"train.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return start_epoch, seconds, result


def _rows(run_dir):
    with open(pathlib.Path(run_dir) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def time_to_solve(seed, env, workdir, extra_args=(), tag="jax"):
    """`train.py --seed S --stop-at-return 475 [extra_args]` timed from the command's start to
    the end of the chunk whose greedy evaluation first reached 475 (see the module doc)."""
    out = pathlib.Path(workdir) / f"{tag}-seed{seed}"
    start_epoch, seconds, _ = _run(
        ["--seed", str(seed), "--out", str(out), "--no-progress", "--stop-at-return", "475",
         *extra_args], env)
    rows = _rows(out)
    solved_rows = [r for r in rows if float(r["best_eval_return"]) >= 475.0]
    evaluation = json.loads((out / "evaluation.json").read_text())
    gym_mean = evaluation["members"][0]["mean_return"]
    first = solved_rows[0] if solved_rows else None
    return {
        "seed": seed,
        "steps_to_solve": int(first["step"]) if first else None,
        "seconds_to_solve": float(first["wall_time"]) - start_epoch if first else None,
        "command_seconds": seconds,
        "gymnasium_mean_return_100": gym_mean,
        "solved": bool(first) and gym_mean >= 475.0,
        "steps_per_second": [float(r["steps_per_second"]) for r in rows[1:]],
    }


def host_throughput(env, workdir, total_steps):
    out = pathlib.Path(workdir) / "host"
    _, seconds, _ = _run(["--out", str(out), "--no-progress", "--total-steps",
                          str(total_steps), "--chunk-steps", "5000", *CLEANRL_HOST_ARGS], env)
    rows = _rows(out)
    learning = [r for r in rows if int(r["step"]) > 10_000]
    steps = sum(5000 for _ in learning)
    busy = sum(float(r["seconds"]) for r in learning)
    return {"total_steps": total_steps, "command_seconds": seconds,
            "steps_per_second_while_learning": steps / busy,
            "steps_per_second_all": total_steps / sum(float(r["seconds"]) for r in rows)}


def cleanrl_comparison(env, workdir, script, python, total_steps, rounds):
    """Wall clock of `total_steps` steps of CleanRL's dqn_jax.py and of the host loop, run
    one after the other `rounds` times (machines drift: each pair gives a ratio)."""
    args = list(CLEANRL_HOST_ARGS)
    args[args.index("--epsilon-decay-steps") + 1] = str(total_steps // 2)
    pairs = []
    for r in range(rounds):
        start = time.perf_counter()
        proc = subprocess.run([python, str(pathlib.Path(script).resolve()), "--total-timesteps",
                               str(total_steps)], cwd=workdir, capture_output=True, text=True,
                              env={k: v for k, v in env.items() if k != "PYTHONPATH"})
        cleanrl_seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"CleanRL's script failed:\n{proc.stderr[-2000:]}")
        out = pathlib.Path(workdir) / f"host-vs-cleanrl-{r}"
        _, seconds, _ = _run(["--out", str(out), "--no-progress", "--total-steps",
                              str(total_steps), "--chunk-steps", "10000", *args], env)
        last = _rows(out)[-5:]  # the last 50k steps
        returns = [float(row["mean_return"]) for row in last if row["mean_return"]]
        pairs.append({"cleanrl_seconds": cleanrl_seconds, "tdkit_seconds": seconds,
                      "speedup": cleanrl_seconds / seconds,
                      "tdkit_mean_return_last_50k": float(np.mean(returns)) if returns else None})
        print(f"  round {r}: CleanRL {cleanrl_seconds:.1f} s, tdkit host loop {seconds:.1f} s: "
              f"{cleanrl_seconds / seconds:.2f}x (tdkit's mean return over the last 50k "
              f"steps {pairs[-1]['tdkit_mean_return_last_50k']})", flush=True)
    speedups = sorted(p["speedup"] for p in pairs)
    return {"total_steps": total_steps, "rounds": pairs,
            "median_speedup": speedups[len(speedups) // 2]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds for time to solve")
    parser.add_argument("--host-steps", type=int, default=30_000,
                        help="steps of the host-loop throughput run")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--out", default="runs/bench_dqn.json")
    parser.add_argument("--cleanrl", default=None, metavar="PATH",
                        help="CleanRL's dqn_jax.py, to time it against the host loop here")
    parser.add_argument("--cleanrl-python", default=sys.executable,
                        help="the Python that runs CleanRL's script")
    parser.add_argument("--cleanrl-steps", type=int, default=500_000,
                        help="steps of each command in the CleanRL comparison")
    parser.add_argument("--cleanrl-rounds", type=int, default=3,
                        help="CleanRL / tdkit pairs, run one after the other")
    args = parser.parse_args()
    env = {**os.environ, "TDKIT_COMPILATION_CACHE": "off",
           "JAX_PLATFORMS": "cuda" if args.device == "gpu" else "cpu",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "import jax; d = jax.devices()[0]; print(d.platform, d.device_kind)"
    probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True)
    if probe.returncode != 0:
        sys.exit(f"no {args.device} device available: {probe.stderr.strip().splitlines()[-1]}")
    device = probe.stdout.strip()
    print(f"device: {device}; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as workdir:
        solves = []
        for seed in range(args.seeds):
            result = time_to_solve(seed, env, workdir)
            solves.append(result)
            print(f"jitted loop, seed {seed}: solved={result['solved']} after "
                  f"{result['steps_to_solve']} steps, {result['seconds_to_solve']:.1f} s from "
                  f"start (command {result['command_seconds']:.1f} s incl. 100 Gymnasium "
                  f"episodes); Gymnasium mean return {result['gymnasium_mean_return_100']:.1f}")
        host = host_throughput(env, workdir, args.host_steps)
        versus = (cleanrl_comparison(env, workdir, args.cleanrl, args.cleanrl_python,
                                     args.cleanrl_steps, args.cleanrl_rounds)
                  if args.cleanrl else None)
    if versus:
        print(f"same machine, {versus['total_steps']:,} steps each (whole commands), "
              f"{len(versus['rounds'])} rounds: median {versus['median_speedup']:.2f}x CleanRL")
    ratio = host["steps_per_second_while_learning"] / CLEANRL_STEPS_PER_SECOND
    print(f"host loop, Gymnasium CartPole-v1, CleanRL hyperparameters: "
          f"{host['steps_per_second_while_learning']:,.0f} steps/s while learning "
          f"({ratio:.2f}x CleanRL's {CLEANRL_STEPS_PER_SECOND:,.0f})")
    solved = [s for s in solves if s["solved"]]
    times = sorted(s["seconds_to_solve"] for s in solved)
    summary = {
        "device": device, "load_average": os.getloadavg()[0], "seeds": args.seeds,
        "solved_seeds": len(solved),
        "median_seconds_to_solve": times[len(times) // 2] if times else None,
        "jitted": solves, "host": host, "host_vs_cleanrl": ratio, "versus_cleanrl": versus,
    }
    print(f"solved {len(solved)}/{args.seeds} seeds; median time to solve "
          f"{summary['median_seconds_to_solve']} s (PureJaxRL ~21 s, CleanRL ~150 s for "
          f"their 500k steps)")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
