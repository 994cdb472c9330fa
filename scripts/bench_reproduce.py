"""Benchmark of the reproductions: time of each experiment at the book's run counts.

    python scripts/bench_reproduce.py                      # every experiment, then `all`
    python scripts/bench_reproduce.py figure-7.2 figure-10.2 --no-all

Each experiment runs in a fresh Python process, so its time includes every compilation
(`seconds` of `agents.textbook.run_experiment`: the computation, compilation included,
without interpreter start-up and imports). Then `scripts/reproduce.py all` (plots included)
is timed end to end as one command. The table compares with plain-NumPy reference times
(2-core CPU, the same run counts) where they are known; the target is 10x faster including
compilation, and `reproduce.py all` under 2 minutes. The machine's load average is printed,
since other processes change the figures.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Plain NumPy loops on a 2-core CPU at the book's run counts (seconds).
REFERENCE_SECONDS = {
    "figure-7.2": 3.7,
    "figure-12.3": 5.0,
    "example-6.6": 115.0,  # 200 runs
    "figure-10.2": 3 * 180.0,  # 180 s per step size, three step sizes
}
TARGET_SPEEDUP = 10.0
TARGET_ALL_SECONDS = 120.0

_CHILD = """
import json, sys
from agents import textbook
result = textbook.run_experiment(sys.argv[1], runs=None if sys.argv[2] == "-" else
                                 int(sys.argv[2]), seed=0)
print(json.dumps({"seconds": result["seconds"], "runs": result["runs"]}))
"""


def time_experiment(name: str, runs: int | None) -> dict:
    """Runs one experiment in a fresh process; returns its seconds and wall time."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, name, "-" if runs is None else
                           str(runs)], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"experiment": name, "runs": out["runs"], "seconds": out["seconds"],
            "process_seconds": wall}


def time_all(runs: int | None) -> float:
    """Wall time of `python scripts/reproduce.py all` (plots included)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "all", "--out", out]
        if runs is not None:
            cmd += ["--runs", str(runs)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"reproduce.py all failed:\n{proc.stderr}")
    return wall


def main(argv: list[str] | None = None) -> int:
    from agents import textbook

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                        help="experiments to time (default: all of them)")
    parser.add_argument("--runs", type=int, default=None,
                        help="override the book's run counts (default: the book's)")
    parser.add_argument("--no-all", action="store_true",
                        help="skip timing `reproduce.py all` as one command")
    parser.add_argument("--json", default=None, help="also write the timings to this file")
    args = parser.parse_args(argv)
    names = args.experiments or textbook.names()
    unknown = sorted(set(names) - set(textbook.EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; valid: "
                     f"{', '.join(textbook.EXPERIMENTS)}")

    load_before = os.getloadavg()
    rows = []
    print(f"{'experiment':<13} {'runs':>6} {'seconds':>8} {'process':>8} {'reference':>9} "
          f"{'speedup':>8}  target (10x)", flush=True)
    for name in names:
        row = time_experiment(name, args.runs)
        ref = REFERENCE_SECONDS.get(name) if args.runs is None else None
        row["reference_seconds"] = ref
        row["speedup"] = None if ref is None else ref / row["seconds"]
        rows.append(row)
        ok = "-" if ref is None else ("met" if row["speedup"] >= TARGET_SPEEDUP else "missed")
        ref_text = "-" if ref is None else f"{ref:.1f}"
        speedup_text = "-" if ref is None else f"{row['speedup']:.1f}x"
        print(f"{name:<13} {row['runs']:>6} {row['seconds']:>8.2f} {row['process_seconds']:>8.2f} "
              f"{ref_text:>9} {speedup_text:>8}  {ok}", flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"{'sum':<13} {'':>6} {total:>8.2f}")
    summary = {"experiments": rows, "sum_seconds": total, "load_before": load_before}
    if not args.no_all:
        wall = time_all(args.runs)
        summary["all_wall_seconds"] = wall
        verdict = "met" if wall < TARGET_ALL_SECONDS else "missed"
        print(f"reproduce.py all (one process, plots included): {wall:.1f} s wall "
              f"(target < {TARGET_ALL_SECONDS:.0f} s: {verdict})")
    summary["load_after"] = os.getloadavg()
    print("load average (1, 5, 15 min): before " + ", ".join(f"{v:.2f}" for v in load_before)
          + "; after " + ", ".join(f"{v:.2f}" for v in summary["load_after"]) + f"; "
          f"{os.cpu_count()} CPUs")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
