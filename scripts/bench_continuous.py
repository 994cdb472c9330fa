"""Continuous control side by side: tdkit's TD3 and SAC against sbx and CleanRL, one machine.

Parts (`--parts a b c d`, all by default), each run `--rounds` times (the systems one after
the other in every round, seed = round; the median over rounds is reported):

a. Host-loop throughput on Gymnasium's Pendulum-v1, 1 env: tdkit TD3/SAC (`train.py
   --backend gym`), sbx TD3/SAC, CleanRL's `td3_continuous_action_jax.py`, all with a
   256-256 MLP actor and critics, batch 256, Adam 1e-3, one gradient step per env step,
   `--learning-starts` uniformly random steps (5k) then `--warmup-steps` (1k, absorbs every
   jit compilation) then `--steps` MEASURED steps (10k): the table's steps/s is env steps
   (with their updates) per second over the measured steps only, i.e. of the learning phase
   after compilation; "command s" is the whole command (imports, compilation, random phase).
b. Wall time to a mean greedy return >= -200 on Pendulum-v1, from the command's start
   (imports and compilation included, JAX's persistent cache off), with a greedy evaluation
   of 10 episodes every `--eval-every` steps (1k) and at most `--solve-budget` steps (30k):
   tdkit with its defaults on the jitted loop (JAX twin), `--stop-at-return -200
   --select-episodes 10` (its evaluation runs on the JAX twin; the final policy is then
   checked on 20 Gymnasium episodes, column "gym"; train.py's host loop does not evaluate
   during training, so `--stop-at-return` is refused there and it has no row here); sbx
   with the RL Zoo's Pendulum-v1 settings ("zoo": TD3 gamma 0.98, buffer 200k, learning
   starts 10k, normal action noise 0.1, lr 1e-3, net [400, 300], train_freq 1 episode,
   gradient_steps -1; SAC lr 1e-3, the rest sbx's defaults) and with tdkit's defaults
   ("tdkit settings": learning starts 1k, buffer 100k, 256-256, one update per step),
   evaluated like the Zoo's EvalCallback: 10 deterministic Gymnasium episodes (run side by side in a
   DummyVecEnv) from a callback at every `--eval-every`-th env step, i.e. with the parameters
   of sbx's last training call (Zoo TD3 trains at episode ends). CleanRL's script has no
   evaluation during training: (a) and (d) only.
c. tdkit's jitted loop on the JAX Pendulum with 1 and 8 seeds in one program:
   `bench_agents.throughput` (env steps of all members per second, median over chunks after
   the first), against sbx's host-loop steps/s from (a).
d. Host-loop throughput as in (a) on HalfCheetah-v5 (MuJoCo) for tdkit and sbx; CleanRL only
   when its venv has mujoco (its Gymnasium 0.29 has HalfCheetah-v4, not v5).

Ratios are tdkit / sbx (the same algorithm): above 1 is better for steps/s, below 1 is
better for seconds. The exact commands of the first round are printed at the end (the sbx
runner is written into the work folder; `--workdir DIR` keeps it and every run folder).

Setup (peers live OUTSIDE this repository, each in its own venv; pass `none` to skip one):

    python -m venv /work/sbx-venv
    /work/sbx-venv/bin/pip install sbx-rl "gymnasium[mujoco]"   # sbx 0.28, SB3 2.9, Gymnasium 1.x

    python -m venv /work/cleanrl/venv                # CleanRL's Gymnasium pin; JAX as tdkit's
    /work/cleanrl/venv/bin/pip install "gymnasium==0.29.1" jax flax optax tyro tensorboard torch
    mkdir -p /work/cleanrl-cont/cleanrl_utils        # the script and its buffer module, from
    #   github.com/vwxyzjn/cleanrl: cleanrl/td3_continuous_action_jax.py and
    #   cleanrl_utils/buffers.py (+ an empty cleanrl_utils/__init__.py)

    python scripts/bench_continuous.py [--parts a b c d] [--rounds 3] [--steps 10000]
        [--sbx-venv /work/sbx-venv|none] [--cleanrl-venv /work/cleanrl/venv|none]
        [--cleanrl-script /work/cleanrl-cont/td3_continuous_action_jax.py]
        [--device cpu|gpu] [--workdir DIR] [--out runs/bench_continuous.json]
"""

import argparse
import dataclasses
import json
import math
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_agents  # noqa: E402  (the jitted-loop throughput helper)
import bench_dqn  # noqa: E402  (train.py runs and metrics.csv rows)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOLVE_RETURN = -200.0
EVAL_EPISODES = 10
CONFIRM_EPISODES = 20
GAMMA = {"td3": 0.98, "sac": 0.99}

# The sbx side: our own small runner (sbx's public API only), run with the sbx venv's Python.
SBX_RUNNER = r'''
"""sbx TD3/SAC: timed learning phase and/or EvalCallback-like solve check; last line RESULT."""
import argparse, json, time
START = time.time()
import gymnasium as gym
import numpy as np
import sbx
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv

p = argparse.ArgumentParser()
p.add_argument("--algo", choices=["td3", "sac"]); p.add_argument("--env")
p.add_argument("--seed", type=int, default=0); p.add_argument("--total-steps", type=int)
p.add_argument("--learning-starts", type=int); p.add_argument("--buffer-size", type=int)
p.add_argument("--batch-size", type=int, default=256); p.add_argument("--net-arch")
p.add_argument("--gamma", type=float); p.add_argument("--learning-rate", type=float)
p.add_argument("--train-freq", default="1"); p.add_argument("--gradient-steps", type=int)
p.add_argument("--action-noise", type=float, default=0.1)
p.add_argument("--measure-from", type=int, default=None)
p.add_argument("--eval-every", type=int, default=0)
p.add_argument("--eval-episodes", type=int, default=10)
p.add_argument("--stop-at-return", type=float, default=None)
a = p.parse_args()
env = gym.make(a.env)
kwargs = dict(learning_starts=a.learning_starts, buffer_size=a.buffer_size,
              batch_size=a.batch_size, gamma=a.gamma, learning_rate=a.learning_rate,
              gradient_steps=a.gradient_steps, seed=a.seed, verbose=0,
              train_freq=(1, "episode") if a.train_freq == "episode" else int(a.train_freq),
              policy_kwargs=dict(net_arch=[int(n) for n in a.net_arch.split(",")]))
if a.algo == "td3":
    dim = env.action_space.shape[0]
    kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), a.action_noise * np.ones(dim))
model = {"td3": sbx.TD3, "sac": sbx.SAC}[a.algo]("MlpPolicy", env, **kwargs)
eval_env = None
if a.eval_every:
    eval_env = DummyVecEnv([lambda: Monitor(gym.make(a.env))] * a.eval_episodes)
    eval_env.seed(a.seed + 1000)
out = {"setup_seconds": None, "measure_seconds": None, "measured_steps": None, "evals": [],
       "eval_seconds": 0.0, "solve_step": None, "solve_wall_time": None}


class Timer(BaseCallback):
    def _on_training_start(self):
        out["setup_seconds"] = time.time() - START

    def _on_step(self):
        n = self.num_timesteps
        if n == a.measure_from:
            out["t0"] = time.perf_counter()
        if a.eval_every and n % a.eval_every == 0:
            t = time.perf_counter()
            mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=a.eval_episodes,
                                      deterministic=True)
            out["eval_seconds"] += time.perf_counter() - t
            out["evals"].append([n, float(mean)])
            if a.stop_at_return is not None and mean >= a.stop_at_return:
                out["solve_step"], out["solve_wall_time"] = n, time.time()
                return False
        return True


model.learn(a.total_steps, callback=Timer())
if "t0" in out:
    out["measure_seconds"] = time.perf_counter() - out.pop("t0")
    out["measured_steps"] = model.num_timesteps - a.measure_from
print("RESULT " + json.dumps(out), flush=True)
'''


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A throughput run: random steps, warm-up steps (compilation), measured steps."""

    learning_starts: int = 5_000
    warmup: int = 1_000
    steps: int = 10_000
    batch_size: int = 256
    hidden: str = "256,256"

    @property
    def measure_from(self) -> int:
        return self.learning_starts + self.warmup

    @property
    def total(self) -> int:
        return self.measure_from + self.steps

    @property
    def chunk(self) -> int:
        """tdkit's chunk: a chunk boundary falls on `measure_from` and on `total`."""
        return math.gcd(self.measure_from, self.steps)


@dataclasses.dataclass
class Peers:
    sbx_python: str | None
    cleanrl_python: str | None
    cleanrl_script: str | None
    cleanrl_mujoco: bool = False


def command_text(argv, cwd=None, env_vars=()) -> str:
    """A shell line that reruns `argv` (in `cwd`, with `env_vars` set)."""
    line = " ".join([*env_vars, shlex.join(map(str, argv))])
    return f"(cd {shlex.quote(str(cwd))} && {line})" if cwd else line


TDKIT_VARS = ("TDKIT_COMPILATION_CACHE=off", "JAX_PLATFORMS=cpu")
PEER_VARS = ("JAX_PLATFORMS=cpu",)


def _train_py(args, env_vars=TDKIT_VARS):
    return command_text([sys.executable, "scripts/train.py", *map(str, args)], ROOT, env_vars)


def _peer_env(env):
    return {**{k: v for k, v in env.items() if k != "PYTHONPATH"}, "JAX_PLATFORMS": "cpu",
            "PYTHONUNBUFFERED": "1"}


def _rate(rows, protocol):
    """Env steps per second over the chunks after `protocol.measure_from` (member 0)."""
    measured = [r for r in rows if int(r["member"]) == 0
                and int(r["step"]) > protocol.measure_from]
    return protocol.steps / sum(float(r["seconds"]) for r in measured)


# ----------------------------------------------------------------------------- tdkit
def tdkit_throughput(algo, env_id, protocol, seed, env, workdir):
    """(a)/(d): tdkit's host loop on Gymnasium with the shared protocol."""
    out = pathlib.Path(workdir) / f"tdkit-{algo}-{env_id}-host-s{seed}"
    args = ["--agent", algo, "--env", env_id, "--backend", "gym", "--num-envs", "1",
            "--seed", seed, "--total-steps", protocol.total,
            "--learning-starts", protocol.learning_starts, "--buffer-size", protocol.total,
            "--batch-size", protocol.batch_size, "--actor-hidden-sizes", protocol.hidden,
            "--critic-hidden-sizes", protocol.hidden, "--train-every", 1,
            "--gradient-steps", 1, "--learning-rate", "1e-3", "--actor-learning-rate", "1e-3",
            "--gamma", GAMMA[algo], "--chunk-steps", protocol.chunk, "--eval-episodes", 0,
            "--no-select-best", "--no-progress", "--out", out]
    _, seconds, _ = bench_dqn._run([str(a) for a in args], env)
    return {"steps_per_second": _rate(bench_dqn._rows(out), protocol),
            "command_seconds": seconds, "command": _train_py(args)}


def tdkit_time_to_solve(algo, backend, seed, env, workdir, eval_every, budget,
                        solve_return=SOLVE_RETURN):
    """(b): `train.py --agent ALGO --backend B --stop-at-return -200`, tdkit's defaults."""
    out = pathlib.Path(workdir) / f"tdkit-{algo}-{backend}-solve-s{seed}"
    args = ["--agent", algo, "--env", "Pendulum-v1", "--backend", backend, "--seed", seed,
            "--total-steps", budget, "--chunk-steps", eval_every,
            "--stop-at-return", solve_return, "--select-episodes", EVAL_EPISODES,
            "--eval-episodes", CONFIRM_EPISODES, "--no-progress", "--out", out]
    start_epoch, seconds, _ = bench_dqn._run([str(a) for a in args], env)
    env_vars = (TDKIT_VARS[0], f"JAX_PLATFORMS={env['JAX_PLATFORMS']}")
    rows = [r for r in bench_dqn._rows(out) if int(r["member"]) == 0]
    first = next((r for r in rows if r["best_eval_return"]
                  and float(r["best_eval_return"]) >= solve_return), None)
    evaluation = json.loads((out / "evaluation.json").read_text())
    return {"evaluated": any(r["eval_return"] for r in rows),
            "steps": int(first["step"]) if first else None,
            "seconds": float(first["wall_time"]) - start_epoch if first else None,
            "gym_mean_return": evaluation["members"][0]["mean_return"],
            "command_seconds": seconds, "command": _train_py(args, env_vars)}


# ----------------------------------------------------------------------------- sbx
def _sbx(peers, args, env, workdir):
    runner = pathlib.Path(workdir) / "sbx_runner.py"
    if not runner.exists():
        runner.write_text(SBX_RUNNER.lstrip())
    argv = [peers.sbx_python, str(runner), *map(str, args)]
    start_epoch, start = time.time(), time.perf_counter()
    proc = subprocess.run(argv, cwd=workdir, env=_peer_env(env), capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"sbx runner failed ({command_text(argv)}):\n{proc.stderr[-2000:]}")
    return (start_epoch, seconds, json.loads(lines[-1][len("RESULT "):]),
            command_text(argv, env_vars=PEER_VARS))


def sbx_throughput(peers, algo, env_id, protocol, seed, env, workdir):
    """(a)/(d): sbx with the shared protocol (one gradient step per env step)."""
    args = ["--algo", algo, "--env", env_id, "--seed", seed, "--total-steps", protocol.total,
            "--learning-starts", protocol.learning_starts, "--buffer-size", protocol.total,
            "--batch-size", protocol.batch_size, "--net-arch", protocol.hidden,
            "--gamma", GAMMA[algo], "--learning-rate", "1e-3", "--train-freq", 1,
            "--gradient-steps", 1, "--measure-from", protocol.measure_from]
    _, seconds, result, command = _sbx(peers, args, env, workdir)
    return {"steps_per_second": result["measured_steps"] / result["measure_seconds"],
            "command_seconds": seconds, "command": command}


SBX_SOLVE_SETTINGS = {
    # The RL Zoo's hyperparams/td3.yml and sac.yml for Pendulum.
    ("td3", "zoo"): ["--learning-starts", 10_000, "--buffer-size", 200_000, "--gamma", 0.98,
                     "--learning-rate", "1e-3", "--net-arch", "400,300", "--train-freq",
                     "episode", "--gradient-steps", -1, "--action-noise", 0.1],
    ("sac", "zoo"): ["--learning-starts", 100, "--buffer-size", 1_000_000, "--gamma", 0.99,
                     "--learning-rate", "1e-3", "--net-arch", "256,256", "--train-freq", 1,
                     "--gradient-steps", 1],
    # tdkit's defaults (agents/td3.py, agents/sac.py, agents/actor_critic.py).
    ("td3", "tdkit settings"): ["--learning-starts", 1_000, "--buffer-size", 100_000,
                                "--gamma", 0.98, "--learning-rate", "1e-3", "--net-arch",
                                "256,256", "--train-freq", 1, "--gradient-steps", 1,
                                "--action-noise", 0.1],
    ("sac", "tdkit settings"): ["--learning-starts", 1_000, "--buffer-size", 100_000,
                                "--gamma", 0.99, "--learning-rate", "1e-3", "--net-arch",
                                "256,256", "--train-freq", 1, "--gradient-steps", 1],
}


def sbx_time_to_solve(peers, algo, settings, seed, env, workdir, eval_every, budget,
                      solve_return=SOLVE_RETURN):
    """(b): sbx with EvalCallback-like evaluations, stopping at the first mean >= -200."""
    args = ["--algo", algo, "--env", "Pendulum-v1", "--seed", seed, "--total-steps", budget,
            *SBX_SOLVE_SETTINGS[(algo, settings)], "--eval-every", eval_every,
            "--eval-episodes", EVAL_EPISODES, "--stop-at-return", solve_return]
    start_epoch, seconds, result, command = _sbx(peers, args, env, workdir)
    solved = result["solve_step"] is not None
    return {"steps": result["solve_step"],
            "seconds": result["solve_wall_time"] - start_epoch if solved else None,
            "setup_seconds": result["setup_seconds"], "eval_seconds": result["eval_seconds"],
            "evals": result["evals"],
            "command_seconds": seconds, "command": command}


# ----------------------------------------------------------------------------- CleanRL
def cleanrl_learning_rate(stamped_lines, protocol):
    """Steps/s of CleanRL's script over the measured steps, from its "SPS:" lines.

    The script prints "SPS: ..." after the update of every step that is a multiple of 100
    and above `learning_starts`; `stamped_lines` are `(seconds, line)` as they arrived. The
    rate is taken between the line of step `measure_from` (a multiple of 100) and the last.
    """
    first_step = (protocol.learning_starts // 100 + 1) * 100
    stamps = [t for t, line in stamped_lines if line.startswith("SPS:")]
    steps = [first_step + 100 * k for k in range(len(stamps))]
    if protocol.measure_from % 100 or protocol.measure_from not in steps:
        raise ValueError(f"no SPS line at step {protocol.measure_from} (lines for steps "
                         f"{steps[:1]}..{steps[-1:]})")
    i = steps.index(protocol.measure_from)
    return (steps[-1] - steps[i]) / (stamps[-1] - stamps[i])


def cleanrl_throughput(peers, env_id, protocol, seed, env, workdir):
    """(a)/(d): CleanRL's td3_continuous_action_jax.py (256-256 and batch 256 are its own)."""
    run_dir = pathlib.Path(workdir) / f"cleanrl-{env_id}-s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [peers.cleanrl_python, "-u", peers.cleanrl_script, "--env-id", env_id,
            "--seed", str(seed), "--total-timesteps", str(protocol.total),
            "--learning-starts", str(protocol.learning_starts),
            "--buffer-size", str(protocol.total), "--batch-size", str(protocol.batch_size),
            "--learning-rate", "1e-3", "--gamma", str(GAMMA["td3"])]
    start = time.perf_counter()
    with open(run_dir / "stderr.txt", "w") as err:
        proc = subprocess.Popen(argv, cwd=run_dir, env=_peer_env(env), stdout=subprocess.PIPE,
                                stderr=err, text=True, bufsize=1)
        stamped = [(time.perf_counter(), line) for line in proc.stdout]
        proc.wait()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"CleanRL's script failed ({command_text(argv, run_dir)}):\n"
                           f"{(run_dir / 'stderr.txt').read_text()[-2000:]}")
    return {"steps_per_second": cleanrl_learning_rate(stamped, protocol),
            "command_seconds": seconds, "command": command_text(argv, run_dir, PEER_VARS)}


# ----------------------------------------------------------------------------- tables
def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def throughput_table(title, results):
    """`results`: {system: [per-round dicts with steps_per_second, command_seconds]}; the
    system names are "<library> <algo>" and tdkit rows get "x sbx" of the same algo."""
    lines = [title, f"  {'system':<16}{'steps/s':>10}{'x sbx':>8}{'command s':>11}"]
    medians = {name: _median([r["steps_per_second"] for r in runs])
               for name, runs in results.items()}
    for name, runs in results.items():
        library, algo = name.split(" ", 1)
        sbx = medians.get(f"sbx {algo}")
        ratio = medians[name] / sbx if library == "tdkit" and sbx else None
        lines.append(f"  {name:<16}{_fmt(medians[name], ',.0f'):>10}{_fmt(ratio, '.2f'):>8}"
                     f"{_fmt(_median([r['command_seconds'] for r in runs]), '.1f'):>11}")
    return lines, medians


def solve_table(title, results):
    """`results`: {system: [per-round dicts with steps, seconds]}; tdkit rows get their
    seconds over the median seconds of "sbx ALGO zoo" and "sbx ALGO tdkit settings"."""
    lines = [title, f"  {'system':<28}{'solved':>7}{'steps':>8}{'seconds':>9}"
                    f"{'gym':>8}{'/ sbx zoo':>10}{'/ sbx same':>11}"]
    times = {name: _median([r["seconds"] for r in runs]) for name, runs in results.items()}
    unevaluated = False
    for name, runs in results.items():
        algo = name.split(" ")[1]
        solved = f"{sum(r['seconds'] is not None for r in runs)}/{len(runs)}"
        if not any(r.get("evaluated", True) for r in runs):
            solved, unevaluated = "n/a", True
        gym = _median([r.get("gym_mean_return") for r in runs])
        ratios = [times[name] / times[ref] if name.startswith("tdkit") and times[name]
                  and times.get(ref) else None
                  for ref in (f"sbx {algo} zoo", f"sbx {algo} tdkit settings")]
        lines.append(f"  {name:<28}{solved:>7}"
                     f"{_fmt(_median([r['steps'] for r in runs]), ',.0f'):>8}"
                     f"{_fmt(times[name], '.1f'):>9}{_fmt(gym, '.0f'):>8}"
                     f"{_fmt(ratios[0], '.2f'):>10}{_fmt(ratios[1], '.2f'):>11}")
    if unevaluated:
        lines.append("  n/a: no greedy evaluation during training, so --stop-at-return never "
                     "fired (train.py's gym backend evaluates only after training)")
    return lines, times


# ----------------------------------------------------------------------------- main
def find_peers(args, parts) -> Peers:
    """The peers' Pythons; SystemExit with one line when one is asked for and missing."""
    def python_of(venv, module, flag, recipe):
        if venv == "none":
            return None
        python = pathlib.Path(venv) / "bin" / "python"
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True,
                               text=True) if python.exists() else None
        if probe is None or probe.returncode != 0:
            sys.exit(f"error: no {module} venv at {venv} ({flag} none skips it; setup: "
                     f"{recipe}; see this script's docstring)")
        return str(python)

    sbx = python_of(args.sbx_venv, "sbx", "--sbx-venv",
                    f"python -m venv {args.sbx_venv} && {args.sbx_venv}/bin/pip install "
                    "sbx-rl 'gymnasium[mujoco]'")
    cleanrl = None
    mujoco = False
    if {"a", "d"} & set(parts):
        cleanrl = python_of(args.cleanrl_venv, "flax, tyro, torch, gymnasium",
                            "--cleanrl-venv",
                            f"python -m venv {args.cleanrl_venv} && {args.cleanrl_venv}/bin/"
                            "pip install gymnasium==0.29.1 jax flax optax tyro tensorboard "
                            "torch")
        if cleanrl and not pathlib.Path(args.cleanrl_script).is_file():
            sys.exit(f"error: no CleanRL script at {args.cleanrl_script} (--cleanrl-script; "
                     "see this script's docstring)")
        mujoco = bool(cleanrl) and subprocess.run(
            [cleanrl, "-c", "import mujoco"], capture_output=True).returncode == 0
    return Peers(sbx, cleanrl, args.cleanrl_script if cleanrl else None, mujoco)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list("abcd"), default=list("abcd"))
    parser.add_argument("--rounds", type=int, default=3,
                        help="repetitions (seed = round; medians are reported)")
    parser.add_argument("--steps", type=int, default=10_000,
                        help="measured steps of the throughput runs (a, d), and steps per "
                             "member of the jitted-loop runs (c)")
    parser.add_argument("--learning-starts", type=int, default=5_000,
                        help="random steps before learning in (a) and (d)")
    parser.add_argument("--warmup-steps", type=int, default=1_000,
                        help="learning steps before the measured ones (compilation)")
    parser.add_argument("--eval-every", type=int, default=1_000,
                        help="(b): steps between greedy evaluations")
    parser.add_argument("--solve-budget", type=int, default=30_000,
                        help="(b): most steps per run")
    parser.add_argument("--solve-return", type=float, default=SOLVE_RETURN,
                        help="(b): the mean greedy return that counts as solved")
    parser.add_argument("--mujoco-env", default="HalfCheetah-v5", help="(d)'s environment")
    parser.add_argument("--sbx-venv", default="/work/sbx-venv", help="sbx's venv, or none")
    parser.add_argument("--cleanrl-venv", default="/work/cleanrl/venv",
                        help="CleanRL's venv, or none")
    parser.add_argument("--cleanrl-script",
                        default="/work/cleanrl-cont/td3_continuous_action_jax.py")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                        help="tdkit's jitted-loop runs (b, c); host loops run on the CPU")
    parser.add_argument("--workdir", default=None, help="keep run folders here")
    parser.add_argument("--out", default="runs/bench_continuous.json")
    args = parser.parse_args(argv)
    for name in ("rounds", "steps", "learning_starts", "eval_every", "solve_budget"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup_steps < 0:
        parser.error("--warmup-steps must be >= 0")
    if args.learning_starts < 256:
        parser.error("--learning-starts must be >= 256 (the batch size)")
    return args


def main(argv=None):
    args = parse_args(argv)
    parts = sorted(set(args.parts))
    peers = find_peers(args, parts)
    protocol = Protocol(args.learning_starts, args.warmup_steps, args.steps)
    if peers.cleanrl_python and (protocol.measure_from % 100 or args.learning_starts % 100):
        sys.exit("error: CleanRL's timing needs --learning-starts and --warmup-steps in "
                 "multiples of 100")
    host_env = {**os.environ, "TDKIT_COMPILATION_CACHE": "off", "JAX_PLATFORMS": "cpu",
                "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    jit_env = {**host_env, "JAX_PLATFORMS": "cuda" if args.device == "gpu" else "cpu"}
    print(f"parts {' '.join(parts)}; {args.rounds} round(s); load average "
          f"{os.getloadavg()[0]:.2f}; sbx {peers.sbx_python or 'skipped'}; CleanRL "
          f"{peers.cleanrl_script or 'skipped'}", flush=True)
    throughput = {"a": {}, "d": {}}
    solves, jitted = {}, {"1": [], "8": []}
    commands = {}

    def record(part, store, name, result):
        store.setdefault(name, []).append(result)
        commands.setdefault(f"({part}) {name}", result["command"])
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()
                 if k not in ("command", "evals")}
        print(f"  ({part}) {name}: {json.dumps(shown)}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(args.workdir or tmp)
        for r in range(args.rounds):
            round_dir = workdir / f"round{r}"
            round_dir.mkdir(parents=True, exist_ok=True)
            print(f"round {r} (seed {r})", flush=True)
            for part, env_id in (("a", "Pendulum-v1"), ("d", args.mujoco_env)):
                if part not in parts:
                    continue
                store = throughput[part]
                for algo in ("td3", "sac"):
                    record(part, store, f"tdkit {algo}", tdkit_throughput(
                        algo, env_id, protocol, r, host_env, round_dir))
                    if peers.sbx_python:
                        record(part, store, f"sbx {algo}", sbx_throughput(
                            peers, algo, env_id, protocol, r, host_env, round_dir))
                cleanrl_env = env_id if part == "a" else env_id.replace("-v5", "-v4")
                if peers.cleanrl_python and (part == "a" or peers.cleanrl_mujoco):
                    record(part, store, "cleanrl td3", cleanrl_throughput(
                        peers, cleanrl_env, protocol, r, host_env, round_dir))
            if "b" in parts:
                for algo in ("td3", "sac"):
                    for backend, env in (("jax", jit_env),):
                        name = f"tdkit {algo} {backend} loop"
                        if r and not any(run["evaluated"] for run in solves[name]):
                            continue  # it ran its whole budget without evaluating: once is enough
                        record("b", solves, name, tdkit_time_to_solve(
                            algo, backend, r, env, round_dir, args.eval_every,
                            args.solve_budget, args.solve_return))
                    for settings in ("zoo", "tdkit settings") if peers.sbx_python else ():
                        record("b", solves, f"sbx {algo} {settings}", sbx_time_to_solve(
                            peers, algo, settings, r, host_env, round_dir, args.eval_every,
                            args.solve_budget, args.solve_return))
            if "c" in parts:
                for members in (1, 8):
                    rate = bench_agents.throughput("td3", members, args.steps, jit_env,
                                                   round_dir)
                    jitted[str(members)].append(rate)
                    print(f"  (c) tdkit td3 jitted loop, {members} seed(s): {rate:,.0f} "
                          "steps/s", flush=True)
                commands.setdefault("(c) tdkit td3 jitted loop, S seeds", _train_py(
                    ["--agent", "td3", "--seeds", "S", "--total-steps", args.steps,
                     "--chunk-steps", max(args.steps // 8, 1), "--eval-episodes", 0,
                     "--no-select-best", "--no-progress", "--out", "OUT"],
                    (TDKIT_VARS[0], f"JAX_PLATFORMS={jit_env['JAX_PLATFORMS']}")))

    report = [""]
    summary = {"load_average": os.getloadavg()[0], "rounds": args.rounds,
               "protocol": dataclasses.asdict(protocol), "device": args.device}
    if "a" in parts:
        lines, summary["a"] = throughput_table(
            f"(a) host loop, Gymnasium Pendulum-v1, 1 env, {protocol.hidden} MLPs, batch "
            f"{protocol.batch_size}, 1 update/step: steps/s over steps "
            f"{protocol.measure_from:,}-{protocol.total:,} (after {protocol.learning_starts:,}"
            f" random + {protocol.warmup:,} warm-up steps); median of {args.rounds}",
            throughput["a"])
        report += lines
    if "b" in parts:
        lines, summary["b"] = solve_table(
            f"(b) seconds from command start to a mean greedy return >= {args.solve_return:.0f} "
            f"on Pendulum-v1 ({EVAL_EPISODES} episodes every {args.eval_every:,} steps, at "
            f"most {args.solve_budget:,} steps); median over solved seeds, {args.rounds} "
            f"seed(s)", solves)
        report += lines
    if "c" in parts:
        one, eight = _median(jitted["1"]), _median(jitted["8"])
        sbx = summary.get("a", {}).get("sbx td3")
        summary["c"] = {"1": one, "8": eight, "sbx_td3_host": sbx}
        report += [f"(c) tdkit td3 jitted loop on the JAX Pendulum ({args.device}), env steps "
                   f"of all seeds per second: 1 seed {_fmt(one, ',.0f')}, 8 seeds "
                   f"{_fmt(eight, ',.0f')}"
                   + (f"; x sbx td3 host loop ({sbx:,.0f}): {one / sbx:.2f} and "
                      f"{eight / sbx:.2f}" if sbx and one and eight else "")]
    if "d" in parts:
        lines, summary["d"] = throughput_table(
            f"(d) host loop, {args.mujoco_env}, same protocol as (a)"
            + ("" if peers.cleanrl_mujoco or not peers.cleanrl_python else
               " (CleanRL: no mujoco in its venv)")
            + (" (CleanRL on -v4)" if peers.cleanrl_mujoco else ""), throughput["d"])
        report += lines
    report += ["", "commands (first round):"] + [f"  {name}: {cmd}"
                                                 for name, cmd in commands.items()]
    print("\n".join(report))
    summary["runs"] = {"a": throughput["a"], "b": solves, "c": jitted, "d": throughput["d"]}
    summary["commands"] = commands
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
