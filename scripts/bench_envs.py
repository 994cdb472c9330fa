"""Steps per second of the tdkit JAX environments.

Each environment runs vmapped over `--num-envs` copies inside one `lax.scan` of `--num-steps`
steps with a uniform random policy (`envs.random_rollout`, jitted). In the same run and the
same way: Gymnasium's functional JAX CartPole (`gymnasium.envs.phys2d.cartpole`, through
`envs.from_funcenv`, when importable) and, for scale, host Gymnasium `CartPole-v1` stepped one
environment at a time. Prints a table and writes the numbers to `--out` (JSON).

    python scripts/bench_envs.py --device cpu --out runs/bench_envs.json
"""

import argparse
import functools
import json
import pathlib
import platform
import statistics
import time

import gymnasium
import jax
import numpy as np

import envs


def compile_jax_env(env, params, num_envs: int, num_steps: int, device):
    """Jits and warms up a random rollout; returns `(run, compile_seconds)`."""
    rollout = jax.jit(functools.partial(
        envs.random_rollout, env, num_envs=num_envs, num_steps=num_steps,
        return_trajectory=False))
    params = jax.device_put(params, device)
    key = jax.device_put(jax.random.key(0), device)
    start = time.perf_counter()
    jax.block_until_ready(rollout(key, params))
    compile_s = time.perf_counter() - start

    def run(i: int) -> float:
        key_i = jax.random.fold_in(key, i + 1)
        start = time.perf_counter()
        jax.block_until_ready(rollout(key_i, params))
        return time.perf_counter() - start

    return run, compile_s


def time_jax_envs(candidates: dict, num_envs: int, num_steps: int, repeats: int,
                  device) -> dict:
    """Median and best steps/s of each environment (compile time excluded).

    The repeats are interleaved (round r times every environment once), so a change in the
    machine's load during the run affects all environments alike.
    """
    with jax.default_device(device):
        runs = {name: compile_jax_env(env, params, num_envs, num_steps, device)
                for name, (env, params) in candidates.items()}
        times = {name: [] for name in candidates}
        for i in range(repeats):
            for name, (run, _) in runs.items():
                times[name].append(run(i))
    steps = num_envs * num_steps
    return {name: {"steps_per_s_median": steps / statistics.median(times[name]),
                   "steps_per_s_best": steps / min(times[name]),
                   "compile_s": runs[name][1]} for name in candidates}


def time_host_cartpole(num_steps: int) -> dict:
    """Steps/s of host Gymnasium `CartPole-v1`, one environment, random actions."""
    env = gymnasium.make("CartPole-v1")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, num_steps)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    return {"steps_per_s_median": num_steps / elapsed, "steps_per_s_best": num_steps / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--num-steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--host-steps", type=int, default=20000)
    parser.add_argument("--envs", nargs="*", default=envs.names(),
                        help="tdkit environment names (default: all)")
    parser.add_argument("--out", default="runs/bench_envs.json", help="output JSON path")
    args = parser.parse_args()

    try:
        device = jax.devices(args.device)[0]
    except RuntimeError as e:
        raise SystemExit(f"bench_envs: no {args.device} device available ({e})") from e
    print(f"device: {device.platform} {device.device_kind} ({device}); jax {jax.__version__}; "
          f"{args.num_envs} envs x {args.num_steps} steps, {args.repeats} repeats")

    candidates = {f"tdkit/{name}": envs.make(name) for name in args.envs}
    try:
        from gymnasium.envs.phys2d.cartpole import CartPoleFunctional
    except ImportError as e:  # needs flax
        print(f"Gymnasium functional CartPole not importable: {e}")
    else:
        env = envs.from_funcenv(CartPoleFunctional(), name="phys2d/CartPole-v1", max_steps=500)
        candidates["gymnasium/phys2d/CartPole-v1 (functional JAX)"] = (env, env.default_params)
    results = time_jax_envs(candidates, args.num_envs, args.num_steps, args.repeats, device)
    results["gymnasium/CartPole-v1 (host, 1 env)"] = time_host_cartpole(args.host_steps)

    width = max(len(k) for k in results)
    print(f"{'environment':<{width}}  {'steps/s (median)':>18}  {'steps/s (best)':>16}")
    for k, v in results.items():
        print(f"{k:<{width}}  {v['steps_per_s_median']:>18,.0f}  {v['steps_per_s_best']:>16,.0f}")
    report = {
        "device": {"platform": device.platform, "kind": device.device_kind, "repr": str(device)},
        "jax_version": jax.__version__,
        "gymnasium_version": gymnasium.__version__,
        "machine": platform.machine(),
        "method": ("envs.random_rollout under jax.jit: vmap over num_envs, lax.scan over "
                   "num_steps, uniform random actions and step keys drawn before the scan; "
                   "automatic reset and time limit included; steps/s = num_envs * num_steps "
                   "/ seconds per rollout (compile excluded, repeats interleaved)"),
        "num_envs": args.num_envs,
        "num_steps": args.num_steps,
        "repeats": args.repeats,
        "results": results,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
