"""Benchmark scale-out: sharded per-example gradients and many DQN seeds in one program.

1. Per-example gradient throughput (examples/s) of the CartPole Q-network (MLP [120, 84] on
   4-dim observations, 2 actions; `tdkit.losses.td_loss` with the `q_learning` rule on
   `tdkit.values.mlp`, random transitions) for batch sizes up to 65,536:
   `unsharded` is `jax.jit(tdkit.grads.per_example_grads(loss, **kw))` on one device,
   `sharded` is `tdkit.parallel.sharded_per_example_grads(loss, D, **kw)` with the batch
   split over D devices (`kw`: `in_axes=(None, None, 0)`, `structure=loss.structure`).
   On `--device cpu` the D devices are forced host devices
   (`XLA_FLAGS=--xla_force_host_platform_device_count=D`, set here before JAX starts); they
   share the machine's cores, so the speed-up is bounded by the cores, not by D. The norms
   (`per_example_grad_norms`, which never builds the `[B, |params|]` gradients) are timed
   the same way. Inputs are placed on their devices before timing; medians over
   `--repeats` calls (round robin, after warm-up), `block_until_ready` on outputs.
2. Seconds per seed of DQN (`agents.dqn.dqn`, default config) on the JAX CartPole with
   1, 4, 16, 64 seeds trained by one `jax.jit(jax.vmap(loop.run))` program
   (`agents.jax_loop.make_jax_loop`, one environment per seed, `--dqn-steps` environment
   steps per seed, no evaluation), on one device. Compilation is timed separately
   (ahead-of-time `lower().compile()`), then one run. `--shard-seeds` adds the same program
   with the seeds sharded over the D devices (`tdkit.parallel.member_sharding`).

    python scripts/bench_parallel.py [--device cpu|gpu] [--devices 4]
        [--batch-sizes 1024 4096 16384 65536] [--seeds 1 4 16 64] [--dqn-steps 20000]
        [--shard-seeds] [--skip-grads] [--skip-dqn] [--out runs/bench_parallel.json]

Prints two tables and writes JSON (`info` records the device used).
"""

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CARTPOLE_HIGH = (4.8, 3.0, 0.418, 3.5)
NUM_ACTIONS = 2
GAMMA = 0.99


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="where JAX runs")
    p.add_argument("--devices", type=int, default=4,
                   help="D, devices of the sharded runs (on cpu: forced host devices)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    p.add_argument("--repeats", type=int, default=5, help="timed calls per gradient cell")
    p.add_argument("--loss", choices=("huber", "l2"), default="huber")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--dqn-steps", type=int, default=20_000,
                   help="environment steps per seed in the DQN runs")
    p.add_argument("--shard-seeds", action="store_true",
                   help="also time the DQN runs with seeds sharded over the D devices")
    p.add_argument("--skip-grads", action="store_true", help="skip the gradient benchmark")
    p.add_argument("--skip-dqn", action="store_true", help="skip the DQN benchmark")
    p.add_argument("--out", default="runs/bench_parallel.json", help="JSON output path")
    args = p.parse_args()
    if args.devices < 1:
        p.error(f"--devices must be >= 1, got {args.devices}")
    if any(b < 1 for b in args.batch_sizes) or any(s < 1 for s in args.seeds):
        p.error("--batch-sizes and --seeds must be >= 1")
    if args.dqn_steps < 1 or args.repeats < 1:
        p.error("--dqn-steps and --repeats must be >= 1")
    return args


def time_round_robin(fns: dict[str, Callable[[], Any]], repeats: int,
                     warmup: int = 2) -> dict[str, dict[str, float]]:
    """Times each blocking `fns[name]()` in rounds (one call of each per round), in seconds."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"median": statistics.median(t), "min": min(t)} for name, t in times.items()}


def make_batch(key, batch_size: int):
    from tdkit.types import random_transitions

    return random_transitions(key, batch_size, [-h for h in CARTPOLE_HIGH], CARTPOLE_HIGH,
                              NUM_ACTIONS, GAMMA)


def bench_grads(args: argparse.Namespace, num_devices: int) -> list[dict]:
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    from tdkit import grads, losses, parallel, values

    value_fn = values.mlp([120, 84], NUM_ACTIONS)
    loss = losses.td_loss(value_fn, "q_learning", args.loss)
    key = jax.random.key(0)
    device = jax.devices()[0]
    mesh = parallel.make_mesh(num_devices)
    replicated = NamedSharding(mesh, PartitionSpec())
    kw = {"in_axes": (None, None, 0), "structure": loss.structure}  # target_params shared
    fns = {
        "unsharded": jax.jit(grads.per_example_grads(loss, **kw)),
        "sharded": parallel.sharded_per_example_grads(loss, mesh, **kw),
        "norms_unsharded": jax.jit(grads.per_example_grad_norms(loss, **kw)),
        "norms_sharded": parallel.sharded_per_example_grad_norms(loss, mesh, **kw),
    }
    print(f"\nper-example gradients: MLP [120, 84], q_learning {args.loss}; examples/s "
          f"(median of {args.repeats}); sharded over {num_devices} {device.platform} "
          f"device(s)")
    print(f"{'B':>7}{'unsharded':>14}{'sharded':>14}{'speed-up':>10}"
          f"{'norms 1 dev':>14}{'norms sharded':>15}{'speed-up':>10}")
    rows = []
    for batch_size in args.batch_sizes:
        if batch_size % num_devices:
            print(f"{batch_size:>7}  skipped: not a multiple of {num_devices} devices")
            continue
        batch = make_batch(jax.random.fold_in(key, batch_size), batch_size)
        params = value_fn.init(key, batch.obs_tm1[0])
        target_params = jax.tree.map(lambda w: 0.9 * w, params)
        one = jax.device_put((params, target_params, batch), device)
        spread = (jax.device_put(params, replicated), jax.device_put(target_params, replicated),
                  parallel.shard_leading(batch, mesh))
        inputs = {"unsharded": one, "sharded": spread, "norms_unsharded": one,
                  "norms_sharded": spread}
        calls = {name: (lambda fn=fn, a=inputs[name]: jax.block_until_ready(fn(*a)))
                 for name, fn in fns.items()}
        timed = time_round_robin(calls, args.repeats)
        seconds = {name: t["median"] for name, t in timed.items()}
        rate = {name: batch_size / s for name, s in seconds.items()}
        rows.append({"batch_size": batch_size, "devices": num_devices,
                     "seconds": seconds, "min_seconds": {n: t["min"] for n, t in timed.items()},
                     "examples_per_second": rate,
                     "speedup": rate["sharded"] / rate["unsharded"],
                     "norms_speedup": rate["norms_sharded"] / rate["norms_unsharded"]})
        print(f"{batch_size:>7}{rate['unsharded']:>14,.0f}{rate['sharded']:>14,.0f}"
              f"{rows[-1]['speedup']:>9.2f}x{rate['norms_unsharded']:>14,.0f}"
              f"{rate['norms_sharded']:>15,.0f}{rows[-1]['norms_speedup']:>9.2f}x",
              flush=True)
        del one, spread
    return rows


def bench_dqn(args: argparse.Namespace, num_devices: int) -> list[dict]:
    import jax

    import envs
    from agents import dqn, jax_loop
    from tdkit import parallel

    env, env_params = envs.make("CartPole-v1")
    config = dqn.DQNConfig()
    agent = dqn.dqn(NUM_ACTIONS, config)
    loop = jax_loop.make_jax_loop(agent, env, env_params, num_envs=1, eval_episodes=0)
    iterations = args.dqn_steps
    init = jax.jit(jax.vmap(loop.init))
    run = jax.jit(jax.vmap(lambda s: loop.run(s, iterations)))
    layouts = ["one device"] + ([f"sharded x{num_devices}"] if args.shard_seeds else [])
    print(f"\nDQN on the JAX CartPole-v1 (default DQNConfig: MLP {list(config.hidden_sizes)}, "
          f"batch {config.batch_size}), {args.dqn_steps:,} env steps per seed, seeds vmapped "
          f"in one program")
    print(f"{'seeds':>6}{'layout':>14}{'compile s':>11}{'run s':>10}{'s / seed':>10}"
          f"{'env steps/s':>14}{'mean return':>13}")
    rows = []
    for num_seeds in args.seeds:
        keys = jax.vmap(jax.random.key)(jax.numpy.arange(num_seeds, dtype=jax.numpy.uint32))
        for layout in layouts:
            if layout != "one device" and num_seeds % num_devices:
                print(f"{num_seeds:>6}{layout:>14}  skipped: not a multiple of "
                      f"{num_devices} devices")
                continue
            state = init(keys)
            if layout != "one device":
                state = parallel.shard_leading(
                    state, parallel.member_sharding(num_devices, num_seeds))
            start = time.perf_counter()
            compiled = run.lower(state).compile()
            compile_s = time.perf_counter() - start
            start = time.perf_counter()
            state, metrics = jax.block_until_ready(compiled(state))
            run_s = time.perf_counter() - start
            metrics = jax.device_get(metrics)
            finished = metrics.finished.sum()
            mean_return = float(metrics.return_sum.sum() / max(finished, 1))
            row = {"seeds": num_seeds, "layout": layout, "env_steps_per_seed": args.dqn_steps,
                   "compile_seconds": compile_s, "run_seconds": run_s,
                   "seconds_per_seed": run_s / num_seeds,
                   "env_steps_per_second": num_seeds * args.dqn_steps / run_s,
                   "mean_episode_return": mean_return}
            rows.append(row)
            print(f"{num_seeds:>6}{layout:>14}{compile_s:>11.1f}{run_s:>10.1f}"
                  f"{row['seconds_per_seed']:>10.2f}{row['env_steps_per_second']:>14,.0f}"
                  f"{mean_return:>13.1f}", flush=True)
            del state, metrics, compiled
    return rows


def main() -> None:
    args = parse_args()
    if args.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_"
                                   f"platform_device_count={args.devices}").strip()
    else:
        os.environ["JAX_PLATFORMS"] = "cuda"
    import jax

    try:
        devices = jax.devices()
    except Exception as e:  # JAX raises RuntimeError or AssertionError without the backend.
        raise SystemExit(
            f"--device {args.device}: JAX finds no such device here ({type(e).__name__}: {e}); "
            "for gpu install jax[cuda12]") from e
    if args.devices > len(devices):
        raise SystemExit(f"--devices {args.devices}: only {len(devices)} {devices[0].platform} "
                         f"device(s) exist")
    device = devices[0]
    info = {"device": args.device, "jax_platform": device.platform,
            "jax_device_kind": device.device_kind, "num_devices": args.devices,
            "devices_available": len(devices), "jax_version": jax.__version__,
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "xla_flags": os.environ.get("XLA_FLAGS"), "loss": args.loss,
            "repeats": args.repeats}
    print(f"JAX {jax.__version__} on {device.platform} ({device.device_kind}); "
          f"{len(devices)} device(s) available, sharded runs use {args.devices}; "
          f"{os.cpu_count()} CPUs")
    result = {"info": info, "per_example_grads": [], "dqn_seeds": []}
    if not args.skip_grads:
        result["per_example_grads"] = bench_grads(args, args.devices)
    if not args.skip_dqn:
        result["dqn_seeds"] = bench_dqn(args, args.devices)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
