"""Why `tdkit.values.conv_torso` computes convolutions as matmuls on patches on the CPU.

Times the parameter gradient of a batched loss through the Nature-DQN torso (or MinAtar's)
for each way of computing the convolution (`conv="xla"`: XLA's convolution op;
`conv="patches"`: strided slices and one matmul per layer), in three places:

- at the top level of a jitted program;
- inside a `lax.cond` branch (where the replay driver's learning step runs);
- inside a `lax.scan` body (where the jitted loop runs every step), per iteration.

On XLA:CPU a convolution's gradient runs about 10x slower in the last two places than at the
top level; the patches form runs at the same speed in all three. Each figure is the median
of `--repeats` timed calls after one warm-up call.

    python scripts/bench_conv.py [--torso nature|minatar] [--batch 32] [--repeats 20]
        [--device cpu|gpu] [--out runs/bench_conv.json]
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

SHAPES = {"nature": (84, 84, 4), "minatar": (10, 10, 4)}
SCAN_LENGTH = 4


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torso", choices=tuple(SHAPES), default="nature")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--out", default="runs/bench_conv.json")
    args = p.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        p.error("--batch and --repeats must be >= 1")
    return args


def median_ms(fn, *args, repeats: int) -> float:
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _zeros(params, images):
    import jax
    import jax.numpy as jnp

    del images
    return jax.tree.map(jnp.zeros_like, params)


def measure(args) -> dict:
    import jax
    import jax.numpy as jnp

    from tdkit import values

    images = jax.random.uniform(jax.random.key(0), (args.batch,) + SHAPES[args.torso])
    results = {}
    for conv in ("xla", "patches"):
        torso = values.conv_torso(args.torso, conv=conv)
        params, _ = torso.init(jax.random.key(1), images[0])

        def loss(p, x, torso=torso):
            return jnp.sum(jnp.tanh(jax.vmap(torso.apply, (None, 0))(p, x)))

        grad = jax.grad(loss)
        in_cond = jax.jit(lambda on, p, x, grad=grad: jax.lax.cond(on, grad, _zeros, p, x))
        # The images are rescaled every iteration, so that XLA cannot hoist the
        # gradient out of the loop as loop-invariant.
        in_scan = jax.jit(lambda p, x, grad=grad: jax.lax.scan(
            lambda c, _: (c * 0.999, grad(p, x * c)), 1.0, None, length=SCAN_LENGTH)[1])
        results[conv] = {
            "top_level_ms": median_ms(jax.jit(grad), params, images, repeats=args.repeats),
            "in_cond_ms": median_ms(in_cond, True, params, images, repeats=args.repeats),
            "in_scan_ms_per_iteration": median_ms(
                in_scan, params, images, repeats=args.repeats) / SCAN_LENGTH,
        }
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu" if args.device == "cpu" else "cuda")
    import jax

    results = measure(args)
    print(f"{args.torso} torso, batch {args.batch}, parameter gradient, median of "
          f"{args.repeats} ({jax.devices()[0].platform}):")
    print(f"  {'conv':8s} {'top level':>10s} {'in cond':>10s} {'in scan':>10s}")
    for conv, row in results.items():
        print(f"  {conv:8s} {row['top_level_ms']:8.2f}ms {row['in_cond_ms']:8.2f}ms "
              f"{row['in_scan_ms_per_iteration']:8.2f}ms")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torso": args.torso, "batch": args.batch,
                               "repeats": args.repeats, "results": results}, indent=2))
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
