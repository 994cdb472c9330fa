"""Atari host-loop throughput: tdkit's DQN (Nature CNN) against CleanRL's `dqn_atari_jax.py`.

Both commands run the same number of environment steps (agent steps of 4 frames) on the same
ALE game, one after the other on this machine, with CleanRL's Nature DQN settings: 1 env,
batch 32, Adam lr 1e-4, MSE loss, a gradient step every 4 env steps, the target network copied
every 1000 env steps (tdkit: every 250 gradient steps), epsilon 1 -> 0.01 over the first 10%
of the steps, the same replay size and learning starts. tdkit runs
`scripts/train.py --backend gym --wrapper envs.atari.AtariNature:clip_rewards=true` (Gymnasium's
AtariPreprocessing, FrameStackObservation(4), uint8 [84, 84, 4]). Reported per command:

- environment steps/s while learning: tdkit's from metrics.csv (the chunks after learning
  starts); CleanRL's from its `SPS:` lines (`global_step / seconds since its loop started`,
  printed every 100 steps once it learns): the rate between the first and the last line;
- the whole command's wall clock (imports, compilation, the steps before learning starts and,
  for tdkit, the checkpoint at the end, which holds the replay buffer).

Differences that remain: CleanRL also ends episodes at a lost life and presses FIRE after a
reset (EpisodicLifeEnv, FireResetEnv); it keeps the replay on the host in numpy (each frame
stack stored once: 28 KB a transition) and copies each sampled batch to the device; tdkit's
replay lives on the device (obs_tm1 and obs_t: 56 KB a transition, so `--buffer-size 100000`
takes 5.6 GB there).

CleanRL is not a dependency: give its script (`--cleanrl`) and a Python with its requirements
(`--cleanrl-python`). It was set up outside the repository as follows (CleanRL pins
gymnasium 0.29.1; ale-py 0.9.1 ships the ROMs and supports it, but registers its ids only
when imported, which CleanRL's script does not do, hence the .pth line):

    git show HEAD:cleanrl/dqn_atari_jax.py > /work/cleanrl-atari/dqn_atari_jax.py   # and
        cleanrl_utils/{__init__,atari_wrappers,buffers}.py beside it
    python3.11 -m venv /work/cleanrl-atari-venv
    /work/cleanrl-atari-venv/bin/pip install gymnasium==0.29.1 ale-py==0.9.1 \\
        opencv-python-headless jax flax optax tyro tensorboard psutil torch  # torch: CPU
    echo "import ale_py" > /work/cleanrl-atari-venv/lib/python3.11/site-packages/ale_py_register.pth

    python scripts/bench_atari.py --cleanrl /work/cleanrl-atari/dqn_atari_jax.py \\
        --cleanrl-python /work/cleanrl-atari-venv/bin/python [--env BreakoutNoFrameskip-v4]
        [--steps 20000] [--learning-starts 5000] [--buffer-size 100000] [--chunk-steps 5000]
        [--rounds 1] [--device cpu|gpu] [--out runs/bench_atari.json]
"""

import argparse
import json
import os
import pathlib
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_dqn  # noqa: E402  (the timing helpers of the DQN benchmark)

ROOT = bench_dqn.ROOT
SPS_LINE = re.compile(r"^SPS: (\d+)$", re.MULTILINE)
CLEANRL_PRINT_EVERY = 100  # dqn_atari_jax.py prints "SPS:" when global_step % 100 == 0


def tdkit_args(args) -> list[str]:
    """train.py's options for CleanRL's settings (see the module doc)."""
    return [
        "--agent", "dqn", "--env", args.env, "--backend", "gym", "--num-envs", "1",
        "--wrapper", "envs.atari.AtariNature:clip_rewards=true",
        "--total-steps", str(args.steps), "--chunk-steps", str(args.chunk_steps),
        "--buffer-size", str(args.buffer_size), "--batch-size", "32",
        "--learning-starts", str(args.learning_starts), "--train-every", "4",
        "--target-period", "250", "--learning-rate", "1e-4", "--optimizer", "adam",
        "--learning-rate-decay-steps", "none", "--loss", "l2", "--hidden-sizes", "512",
        "--layer-norm", "false", "--torso", "nature", "--gamma", "0.99",
        "--epsilon-start", "1.0", "--epsilon-end", "0.01",
        "--epsilon-decay-steps", str(max(args.steps // 10, 1)),
        "--eval-episodes", "0", "--checkpoint-seconds", "1e9", "--no-progress",
        *(["--pin-cpu"] if args.pin_cpu else [])]


def cleanrl_args(args) -> list[str]:
    return ["--env-id", args.env, "--total-timesteps", str(args.steps),
            "--learning-starts", str(args.learning_starts),
            "--buffer-size", str(args.buffer_size)]


def run_tdkit(args, env, workdir, tag):
    out = pathlib.Path(workdir) / tag
    options = tdkit_args(args) + ["--out", str(out)]
    _, seconds, _ = bench_dqn._run(options, env)
    rows = bench_dqn._rows(out)
    learning = [r for r in rows if int(r["step"]) > args.learning_starts]
    steps = len(learning) * args.chunk_steps
    busy = sum(float(r["seconds"]) for r in learning)
    return {"command_seconds": seconds, "steps_per_second_while_learning": steps / busy,
            "learning_steps_measured": steps}


def run_cleanrl(args, env, workdir):
    start = time.perf_counter()
    proc = subprocess.run(
        [args.cleanrl_python, str(pathlib.Path(args.cleanrl).resolve()), *cleanrl_args(args)],
        cwd=workdir, capture_output=True, text=True,
        env={k: v for k, v in env.items() if k != "PYTHONPATH"})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"CleanRL's script failed:\n{proc.stderr[-2000:]}")
    rates = [int(s) for s in SPS_LINE.findall(proc.stdout)]
    if len(rates) < 2:
        raise RuntimeError(f"CleanRL printed {len(rates)} 'SPS:' line(s); give more --steps "
                           "after --learning-starts")
    # The k-th line is printed at global step g_k, the k-th multiple of 100 after learning
    # starts, at g_k / SPS_k seconds into its loop (SPS is truncated to an int: the times are
    # good to g_k / SPS_k^2 seconds).
    first = (args.learning_starts // CLEANRL_PRINT_EVERY + 1) * CLEANRL_PRINT_EVERY
    steps = [first + k * CLEANRL_PRINT_EVERY for k in range(len(rates))]
    times = [g / sps for g, sps in zip(steps, rates, strict=True)]
    return {"command_seconds": seconds,
            "steps_per_second_while_learning": (steps[-1] - steps[0]) / (times[-1] - times[0]),
            "learning_steps_measured": steps[-1] - steps[0], "final_sps": rates[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cleanrl", required=True, metavar="PATH",
                        help="CleanRL's dqn_atari_jax.py (with cleanrl_utils/ beside it)")
    parser.add_argument("--cleanrl-python", default=sys.executable,
                        help="the Python that runs CleanRL's script")
    parser.add_argument("--env", default="BreakoutNoFrameskip-v4",
                        help="a <Game>NoFrameskip-v4 id (CleanRL's default Breakout)")
    parser.add_argument("--steps", type=int, default=20_000,
                        help="environment steps of each command")
    parser.add_argument("--learning-starts", type=int, default=5_000)
    parser.add_argument("--buffer-size", type=int, default=100_000)
    parser.add_argument("--chunk-steps", type=int, default=5_000,
                        help="tdkit's steps per metrics row; divides --steps and "
                        "--learning-starts")
    parser.add_argument("--rounds", type=int, default=1,
                        help="CleanRL / tdkit pairs, run one after the other")
    parser.add_argument("--pin-cpu", action="store_true", help="tdkit: run on one CPU core")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--out", default="runs/bench_atari.json")
    args = parser.parse_args()
    if args.steps % args.chunk_steps or args.learning_starts % args.chunk_steps:
        parser.error("--chunk-steps must divide --steps and --learning-starts")
    if args.steps <= args.learning_starts + args.chunk_steps:
        parser.error("--steps must exceed --learning-starts by more than --chunk-steps")
    env = {**os.environ, "TDKIT_COMPILATION_CACHE": "off",
           "JAX_PLATFORMS": "cuda" if args.device == "gpu" else "cpu",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print(f"load average {os.getloadavg()[0]:.2f}; commands (run in a temporary folder):")
    print(f"  tdkit:  {shlex.join([sys.executable, 'scripts/train.py', *tdkit_args(args)])} "
          "--out DIR")
    print(f"  CleanRL: {shlex.join([args.cleanrl_python, args.cleanrl, *cleanrl_args(args)])}",
          flush=True)
    rounds = []
    with tempfile.TemporaryDirectory() as workdir:
        for r in range(args.rounds):
            cleanrl = run_cleanrl(args, env, workdir)
            tdkit = run_tdkit(args, env, workdir, f"tdkit-{r}")
            rounds.append({
                "cleanrl": cleanrl, "tdkit": tdkit,
                "speedup_while_learning": tdkit["steps_per_second_while_learning"]
                / cleanrl["steps_per_second_while_learning"],
                "speedup_command": cleanrl["command_seconds"] / tdkit["command_seconds"]})
            print(f"  round {r}: while learning tdkit "
                  f"{tdkit['steps_per_second_while_learning']:,.0f} steps/s, CleanRL "
                  f"{cleanrl['steps_per_second_while_learning']:,.0f} steps/s "
                  f"({rounds[-1]['speedup_while_learning']:.2f}x); whole commands tdkit "
                  f"{tdkit['command_seconds']:.1f} s, CleanRL {cleanrl['command_seconds']:.1f} s "
                  f"({rounds[-1]['speedup_command']:.2f}x)", flush=True)
    summary = {
        "env": args.env, "steps": args.steps, "learning_starts": args.learning_starts,
        "buffer_size": args.buffer_size, "device": args.device,
        "load_average": os.getloadavg()[0], "rounds": rounds,
        "median_speedup_while_learning": statistics.median(
            r["speedup_while_learning"] for r in rounds),
        "median_speedup_command": statistics.median(r["speedup_command"] for r in rounds)}
    print(f"{args.env}, {args.steps:,} steps, learning from {args.learning_starts:,}: tdkit "
          f"host loop {summary['median_speedup_while_learning']:.2f}x CleanRL's steps/s while "
          f"learning, {summary['median_speedup_command']:.2f}x on whole commands (median of "
          f"{len(rounds)})")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
