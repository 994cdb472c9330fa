"""Reproduce the textbook's TD experiments (Sutton & Barto 2018; Boyan 2002).

    python scripts/reproduce.py figure-7.2                 # the book's 100 runs
    python scripts/reproduce.py example-6.2 --runs 10 --out /tmp/results
    python scripts/reproduce.py all                        # every experiment, book run counts
    python scripts/reproduce.py all --compilation-cache ~/.cache/tdkit-xla   # faster reruns

Each experiment writes OUT/<experiment>.json ({"experiment", "runs", "seconds", "series"})
and OUT/<experiment>.png, and prints a table of what it measured next to what the book
reports. The experiments live in `agents.textbook`; this script only parses, prints and
saves.
"""

import argparse
import sys

from agents import textbook


def main(argv: list[str] | None = None) -> int:
    names = textbook.names()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="experiments: " + ", ".join(
            f"{n} ({e.default_runs} runs)" for n, e in textbook.EXPERIMENTS.items()))
    parser.add_argument("experiment", choices=names + ["all"], metavar="EXPERIMENT",
                        help="one of: " + ", ".join(names) + ", or all")
    parser.add_argument("--runs", type=int, default=None,
                        help="independent runs (default: the book's count for each experiment)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--no-plot", action="store_true", help="write the JSON files only")
    parser.add_argument("--compilation-cache", metavar="DIR", default=None,
                        help="keep XLA compilations in DIR (JAX's persistent cache), so that a "
                        "second run skips compiling")
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    if args.compilation_cache:
        import jax

        jax.config.update("jax_compilation_cache_dir", args.compilation_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

    selected = names if args.experiment == "all" else [args.experiment]
    total = 0.0
    for name in selected:
        result = textbook.run_experiment(name, runs=args.runs, seed=args.seed)
        total += result["seconds"]
        print(textbook.format_table(result))
        paths = textbook.save_result(result, args.out, plot=not args.no_plot)
        print("  wrote " + ", ".join(str(p) for p in paths.values()) + "\n", flush=True)
    if len(selected) > 1:
        print(f"total compute time {total:.1f} s for {len(selected)} experiments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
