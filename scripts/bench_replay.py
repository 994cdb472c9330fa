"""What prioritized replay costs per training step, against uniform replay.

Times one jitted replay step, with the buffer state donated as the replay driver does:
`add` of `--adds` items (one per environment), `sample` of `--batch` items and, for
prioritized replay, `update_priorities` of the sampled items. The buffer holds `--capacity`
items, all stored. Each figure is the median over `--repeats` rounds of 100 calls, after
warm-up.

    python scripts/bench_replay.py [--capacity 50000] [--batch 128] [--adds 1]
        [--repeats 5] [--device cpu|gpu] [--out runs/bench_replay.json]

The step uses only the public `tdkit.replay` API, so the same command measures an older
checkout (`git checkout <commit> -- tdkit/replay.py`), e.g. the binary sum tree that
`prioritized_replay` used before its two-level structure.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CALLS_PER_ROUND = 100


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capacity", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--adds", type=int, default=1, help="items added per step")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--out", default="runs/bench_replay.json")
    args = p.parse_args(argv)
    for name in ("capacity", "batch", "adds", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.batch > args.capacity or args.adds > args.capacity:
        p.error("--batch and --adds must be <= --capacity")
    return args


def step_ms(kind: str, args) -> float:
    """Median milliseconds of one add + sample (+ update_priorities) step."""
    import jax
    import jax.numpy as jnp

    from tdkit import replay

    buffer = (replay.prioritized_replay(args.capacity) if kind == "prioritized"
              else replay.uniform_replay(args.capacity))
    example = {"obs": jnp.zeros(4), "action": jnp.int32(0), "reward": jnp.float32(0)}
    state = buffer.add(buffer.init(example), {
        "obs": jax.random.normal(jax.random.key(0), (args.capacity, 4)),
        "action": jnp.zeros(args.capacity, jnp.int32),
        "reward": jnp.zeros(args.capacity)})
    new = {"obs": jnp.ones((args.adds, 4)), "action": jnp.zeros(args.adds, jnp.int32),
           "reward": jnp.ones(args.adds)}

    def step(state, key):
        key, sample_key = jax.random.split(key)
        state = buffer.add(state, new)
        sample = buffer.sample(sample_key, state, args.batch)
        if kind == "prioritized":  # stand-in |TD errors| that depend on the sampled items
            errors = jnp.abs(sample.batch["obs"][:, 0]) * sample.weights
            state = buffer.update_priorities(state, sample.indices, errors)
        else:  # consume the sample so that XLA keeps it
            state = state._replace(position=state.position + 0 * sample.batch["action"][0])
        return state, key

    step = jax.jit(step, donate_argnums=0)
    key = jax.random.key(1)
    for _ in range(CALLS_PER_ROUND):
        state, key = step(state, key)
    rounds = []
    for _ in range(args.repeats):
        jax.block_until_ready(state)
        start = time.perf_counter()
        for _ in range(CALLS_PER_ROUND):
            state, key = step(state, key)
        jax.block_until_ready(state)
        rounds.append((time.perf_counter() - start) / CALLS_PER_ROUND)
    return 1e3 * statistics.median(rounds)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu" if args.device == "cpu" else "cuda")
    import jax

    results = {kind: step_ms(kind, args) for kind in ("uniform", "prioritized")}
    results["prioritized_over_uniform"] = results["prioritized"] / results["uniform"]
    print(f"capacity {args.capacity}, batch {args.batch}, {args.adds} added per step, median "
          f"of {args.repeats} x {CALLS_PER_ROUND} steps ({jax.devices()[0].platform}):")
    print(f"  uniform      {results['uniform']:.3f} ms per step")
    print(f"  prioritized  {results['prioritized']:.3f} ms per step "
          f"({results['prioritized_over_uniform']:.1f}x uniform)")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"capacity": args.capacity, "batch": args.batch,
                               "adds": args.adds, "repeats": args.repeats,
                               "results": results}, indent=2))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
