"""Benchmark per-example TD gradients, their norms and clipped means (tdkit.grads).

Two value functions, both Q-learning on CartPole-sized inputs (4-dim observations, 2
actions, random transitions):

- `mlp`: the CartPole Q-network, an MLP with hidden layers [120, 84] (`tdkit.values.mlp`).
- `tile_linear`: a linear Q on a hashed tile coder (8 tilings, 4096 features, 8 active;
  `tdkit.features.tile_coding` + `tdkit.values.linear`).

Columns (milliseconds; after warm-up, every column is called once per round, so load changes
on a shared machine hit all columns alike; the median over rounds, `block_until_ready` on
outputs; the JSON also holds the minimum):

- `batched`: one jitted gradient of the mean loss over the batch (the floor);
- `per_example`: `tdkit.grads.per_example_grads` (jitted; like `norms` and `clipped_mean`
  with `in_axes=(None, None, 0)` and the loss's layerwise `structure=loss.structure`);
- `vmap_grad`: plain `jax.jit(jax.vmap(jax.grad(loss)))`;
- `loop`: a Python loop of a jitted single-example gradient;
- `norms`: `tdkit.grads.per_example_grad_norms`;
- `clipped_mean`: `tdkit.grads.clipped_mean_grad`;
- `torch_func`: torch.func `vmap(grad)` of the same loss, when torch is installed.

    python scripts/bench_per_example.py [--device cpu|gpu] [--batch-sizes 64 256 1024 4096]
        [--loss huber|l2] [--out runs/bench_per_example.json]

Ratios printed at the end are measured in the same run (the machine may be shared).

Memory note: `per_example`, `vmap_grad` and `torch_func` return B x |params| floats (45 MB
for the MLP at B = 1024). glibc serves blocks above 32 MB with a fresh `mmap`, and on the CPU
every call then pays a page fault per 4 KiB page it writes: on a 2-core VM that costs more
than computing the gradients (a jitted fill of 45 MB takes as long as `per_example`). With
`--malloc hugepages` (the default on Linux with glibc >= 2.35) the script re-runs itself with
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, so glibc asks for transparent huge pages on those
blocks (2 MiB pages, 512 times fewer faults). The setting applies to every column alike (JAX,
the loop and torch share the process); `--malloc default` measures without it. The setting
used is recorded in the JSON (`info.glibc_tunables`). Users get the same speed-up by
exporting the variable before starting Python (see docs/scaling.md).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CARTPOLE_HIGH = (4.8, 3.0, 0.418, 3.5)
NUM_ACTIONS = 2
GAMMA = 0.99
COLUMNS = ("batched", "per_example", "vmap_grad", "loop", "norms", "clipped_mean",
           "torch_func")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="where JAX (and torch) run")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    p.add_argument("--value-fns", nargs="+", choices=("mlp", "tile_linear"),
                   default=["mlp", "tile_linear"])
    p.add_argument("--loss", choices=("huber", "l2"), default="huber")
    p.add_argument("--max-norm", type=float, default=1.0, help="clipping threshold")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per cell")
    p.add_argument("--loop-repeats", type=int, default=3,
                   help="timed runs of the (slow) Python loop per cell")
    p.add_argument("--loop-max-batch", type=int, default=4096,
                   help="skip the Python loop above this batch size")
    p.add_argument("--no-torch", action="store_true", help="skip torch.func even if installed")
    p.add_argument("--malloc", choices=("hugepages", "default"), default="hugepages",
                   help="hugepages: re-run with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 on Linux "
                        "(see the memory note); default: leave the allocator alone")
    p.add_argument("--out", default="runs/bench_per_example.json", help="JSON output path")
    return p.parse_args()


HUGETLB = "glibc.malloc.hugetlb=1"


def maybe_reexec_with_hugepages(args: argparse.Namespace) -> None:
    """With `--malloc hugepages`, re-runs this script with glibc's THP tunable set.

    glibc reads GLIBC_TUNABLES once, at process start, so the variable must be in the
    environment before Python starts. Does nothing off Linux/glibc, on glibc older than 2.35
    (no such tunable), or when the tunable is already set.
    """
    if args.malloc != "hugepages" or HUGETLB in os.environ.get("GLIBC_TUNABLES", ""):
        return
    libc, version = platform.libc_ver()
    if platform.system() != "Linux" or libc != "glibc":
        return
    if tuple(int(v) for v in version.split(".")[:2]) < (2, 35):
        return
    tunables = ":".join(filter(None, [os.environ.get("GLIBC_TUNABLES"), HUGETLB]))
    env = {**os.environ, "GLIBC_TUNABLES": tunables}
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def time_round_robin(fns: dict[str, Callable[[], Any]], repeats: dict[str, int],
                     warmup: int = 2) -> dict[str, dict[str, float]]:
    """Times each `fns[name]()` (which must block until its result is ready) in rounds.

    Every round calls each function once, so a change in the machine's load affects all
    columns alike. Returns `{name: {"median": ms, "min": ms}}` over `repeats[name]` calls.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(max(repeats.values())):
        for name, fn in fns.items():
            if round_ < repeats[name]:
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: {"median": statistics.median(t), "min": min(t)} for name, t in times.items()}


# --------------------------------------------------------------------------------------
# JAX side.
# --------------------------------------------------------------------------------------


def make_value_fn(name: str):
    from tdkit import features, values

    if name == "mlp":
        return values.mlp([120, 84], NUM_ACTIONS)
    tiles = features.tile_coding(8, [-h for h in CARTPOLE_HIGH], list(CARTPOLE_HIGH), 8,
                                 iht_size=4096)
    return values.linear(tiles.num_features, NUM_ACTIONS, features=tiles)


def make_batch(key, batch_size: int):
    from tdkit.types import random_transitions

    return random_transitions(key, batch_size, [-h for h in CARTPOLE_HIGH], CARTPOLE_HIGH,
                              NUM_ACTIONS, GAMMA)


def jax_calls(name: str, batch_size: int, args: argparse.Namespace) -> dict[str, Callable]:
    """The JAX columns for one cell, as blocking zero-argument callables."""
    import jax
    import jax.numpy as jnp

    from tdkit import grads, losses

    value_fn = make_value_fn(name)
    key = jax.random.key(0)
    batch = make_batch(jax.random.fold_in(key, batch_size), batch_size)
    params = value_fn.init(key, batch.obs_tm1[0])
    if name == "tile_linear":  # Zero weights give zero gradients half the time; perturb them.
        params = jax.tree.map(lambda w: 0.1 * jax.random.normal(key, w.shape), params)
    target_params = jax.tree.map(lambda w: 0.9 * w, params)
    loss = losses.td_loss(value_fn, "q_learning", args.loss)

    def mean_loss(p, tp, b):
        return jnp.mean(jax.vmap(loss, in_axes=(None, None, 0))(p, tp, b))

    # target_params shared; the layerwise path opted into with the loss's structure.
    kw = {"in_axes": (None, None, 0), "structure": loss.structure}
    fns = {
        "batched": jax.jit(jax.grad(mean_loss)),
        "per_example": jax.jit(grads.per_example_grads(loss, **kw)),
        "vmap_grad": jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, None, 0))),
        "norms": jax.jit(grads.per_example_grad_norms(loss, **kw)),
        "clipped_mean": jax.jit(grads.clipped_mean_grad(loss, args.max_norm, **kw)),
    }
    calls = {column: (lambda fn=fn: jax.block_until_ready(fn(params, target_params, batch)))
             for column, fn in fns.items()}
    if batch_size <= args.loop_max_batch:
        single = jax.jit(jax.grad(loss))
        examples = [jax.tree.map(lambda x, i=i: x[i], batch) for i in range(batch_size)]
        jax.block_until_ready(examples)

        def loop():
            out = [single(params, target_params, example) for example in examples]
            jax.block_until_ready(out)

        calls["loop"] = loop
    return calls


# --------------------------------------------------------------------------------------
# torch.func side (optional; imported lazily).
# --------------------------------------------------------------------------------------


def torch_call(name: str, batch_size: int, args: argparse.Namespace) -> Callable | None:
    """torch.func vmap(grad) of the same per-example loss, on the same inputs, or None."""
    try:
        import torch
        from torch.func import grad, vmap
    except ImportError:
        return None
    import jax
    import numpy as np

    device = "cuda" if args.device == "gpu" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        return None
    batch = make_batch(jax.random.fold_in(jax.random.key(0), batch_size), batch_size)
    t = lambda x, dtype=torch.float32: torch.as_tensor(np.asarray(x), dtype=dtype, device=device)
    obs_tm1, obs_t = t(batch.obs_tm1), t(batch.obs_t)
    a_tm1 = t(batch.a_tm1, torch.int64)
    r_t, discount_t = t(batch.r_t), t(batch.discount_t)
    gen = torch.Generator(device="cpu").manual_seed(0)

    if name == "mlp":
        sizes = [4, 120, 84, NUM_ACTIONS]
        params = {}
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            params[f"w{i}"] = (torch.randn(d_in, d_out, generator=gen) / d_in**0.5).to(device)
            params[f"b{i}"] = torch.zeros(d_out, device=device)

        def q_values(p, obs):
            x = obs
            for i in range(len(sizes) - 1):
                x = x @ p[f"w{i}"] + p[f"b{i}"]
                if i < len(sizes) - 2:
                    x = torch.relu(x)
            return x

        inputs = (obs_tm1, obs_t)
    else:
        from tdkit import features

        tiles = features.tile_coding(8, [-h for h in CARTPOLE_HIGH], list(CARTPOLE_HIGH), 8,
                                     iht_size=4096)
        idx = lambda o: t(jax.vmap(tiles.indices)(o), torch.int64)
        params = {"w": (0.1 * torch.randn(tiles.num_features, NUM_ACTIONS, generator=gen))
                  .to(device)}

        def q_values(p, active):  # Sum of the active rows, as tdkit's sparse linear path.
            return p["w"][active].sum(0)

        inputs = (idx(batch.obs_tm1), idx(batch.obs_t))
    target = {k: 0.9 * v for k, v in params.items()}

    def loss(p, tp, x_tm1, a, r, d, x_t):
        q_tm1 = q_values(p, x_tm1)
        with torch.no_grad():
            target_value = r + d * q_values(tp, x_t).max()
        delta = target_value - torch.gather(q_tm1, 0, a.unsqueeze(0)).squeeze(0)
        if args.loss == "l2":
            return 0.5 * delta**2
        abs_delta = delta.abs()
        quad = torch.clamp(abs_delta, max=1.0)
        return 0.5 * quad**2 + (abs_delta - quad)

    fn = vmap(grad(loss), in_dims=(None, None, 0, 0, 0, 0, 0))

    def run():
        out = fn(params, target, inputs[0], a_tm1, r_t, discount_t, inputs[1])
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return run


# --------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    maybe_reexec_with_hugepages(args)
    os.environ["JAX_PLATFORMS"] = "cpu" if args.device == "cpu" else "cuda"
    import jax

    try:
        device = jax.devices()[0]
    except Exception as e:  # JAX raises RuntimeError or AssertionError without the backend.
        raise SystemExit(
            f"--device {args.device}: JAX finds no such device here ({type(e).__name__}: {e}); "
            "for gpu install jax[cuda12]") from e
    torch_version = None
    if not args.no_torch:
        try:
            import torch

            torch_version = torch.__version__
        except ImportError:
            pass
    info = {
        "device": args.device, "jax_platform": device.platform,
        "jax_device_kind": device.device_kind, "jax_version": jax.__version__,
        "torch_version": torch_version, "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "loss": args.loss, "rule": "q_learning",
        "max_norm": args.max_norm, "repeats": args.repeats,
        "loop_repeats": args.loop_repeats,
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
    }
    print(f"JAX {jax.__version__} on {device.platform} ({device.device_kind}); "
          f"torch {torch_version or ('skipped' if args.no_torch else 'not installed')}; "
          f"{os.cpu_count()} CPUs; "
          f"loss {args.loss}; GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES') or '(unset)'}; "
          f"times in ms (median of {args.repeats})")

    rows = []
    header = f"{'value_fn':<12}{'B':>6}" + "".join(f"{c:>14}" for c in COLUMNS)
    print(header)
    for name in args.value_fns:
        for batch_size in args.batch_sizes:
            calls = jax_calls(name, batch_size, args)
            if torch_version is not None:
                torch_fn = torch_call(name, batch_size, args)
                if torch_fn is not None:
                    calls["torch_func"] = torch_fn
            repeats = {c: args.loop_repeats if c == "loop" else args.repeats for c in calls}
            timed = time_round_robin(calls, repeats)
            row = {c: t["median"] for c, t in timed.items()}
            row_min = {c: t["min"] for c, t in timed.items()}
            rows.append({"value_fn": name, "batch_size": batch_size, "ms": row,
                         "min_ms": row_min})
            cells = "".join(
                f"{row[c]:>14.3f}" if c in row else f"{'-':>14}" for c in COLUMNS)
            print(f"{name:<12}{batch_size:>6}{cells}", flush=True)

    print("\nratios (same run):")
    print(f"{'value_fn':<12}{'B':>6}{'loop/perex':>14}{'torch/perex':>14}"
          f"{'vmap/perex':>14}{'norms/batch':>14}{'clip/batch':>14}")
    for r in rows:
        ms = r["ms"]
        ratios = {
            "loop_over_per_example": ms.get("loop", float("nan")) / ms["per_example"],
            "torch_over_per_example": ms.get("torch_func", float("nan")) / ms["per_example"],
            "vmap_grad_over_per_example": ms["vmap_grad"] / ms["per_example"],
            "norms_over_batched": ms["norms"] / ms["batched"],
            "clipped_mean_over_batched": ms["clipped_mean"] / ms["batched"],
        }
        r["ratios"] = ratios
        print(f"{r['value_fn']:<12}{r['batch_size']:>6}"
              + "".join(f"{v:>14.2f}" for v in ratios.values()))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
