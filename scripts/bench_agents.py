"""Every replay-based deep agent against DQN in one run: time to solve CartPole-v1 and steps/s.

For each agent (default: every registered agent with a replay driver whose default
environment is CartPole-v1):

1. time to solve (jitted loop, cold: imports and compilation included, JAX's persistent
   compilation cache off): `scripts/train.py --agent NAME --seed S --stop-at-return 475`,
   from the command's start to the end of the chunk whose greedy evaluation on the JAX twin
   first reached 475, confirmed by the command's 100 greedy episodes on Gymnasium's own
   CartPole-v1 (mean >= 475); the median over `--seeds` seeds;
2. steps/s with 1 and 16 seeds in one program (`--seeds 1|16 --total-steps T`, no greedy
   evaluation between chunks): environment steps of all members per second, the median over
   chunks after the first (which includes compilation).

Ratios are against DQN measured in the same run (the issue's targets: no distributional
agent slower than 2x DQN per step; C51 and QR-DQN solve in under 2x DQN's time). With
`--rounds R` the throughput runs are repeated R times, every agent once per round (DQN
first); a steps/s figure is the median over rounds, and its "x DQN" the median over rounds
of the ratio to DQN's figure of the same round, which cancels slow drifts of the machine.

    python scripts/bench_agents.py [--agents dqn c51 ...] [--seeds 2] [--steps 100000]
        [--rounds 1] [--[no-]native-cpu-reductions] [--device cpu|gpu]
        [--out runs/bench_agents.json]
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench_dqn  # noqa: E402  (the timing helpers of the DQN benchmark)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def replay_agents() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from agents import registry, replay_driver

    return [name for name, spec in registry.AGENTS.items()
            if issubclass(spec.config_cls, replay_driver.ReplayConfig)
            and spec.default_env == "CartPole-v1"]


def throughput_dir(workdir, agent, members, round_index=0) -> pathlib.Path:
    """The run folder of one `throughput` run."""
    return pathlib.Path(workdir) / f"{agent}-x{members}-round{round_index}"


def throughput(agent, members, steps, env, workdir, round_index=0, extra=()):
    out = throughput_dir(workdir, agent, members, round_index)
    bench_dqn._run(["--agent", agent, *extra, "--seeds", str(members),
                    "--total-steps", str(steps),
                    "--chunk-steps", str(max(steps // 8, 1)), "--eval-episodes", "0",
                    "--no-select-best", "--no-progress", "--out", str(out)], env)
    rates = [float(r["steps_per_second"]) for r in bench_dqn._rows(out)
             if int(r["member"]) == 0][1:]
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="*", default=None,
                        help="agent names (default: every replay agent for CartPole-v1)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds for time to solve")
    parser.add_argument("--steps", type=int, default=100_000,
                        help="environment steps per member of the throughput runs")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of throughput runs (medians over rounds)")
    parser.add_argument("--native-cpu-reductions", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="pass --native-cpu-reductions (or --no-...) to every training "
                        "run; default: each agent's own choice")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--out", default="runs/bench_agents.json")
    args = parser.parse_args()
    if args.rounds < 1 or args.seeds < 1 or args.steps < 1:
        parser.error("--rounds, --seeds and --steps must be >= 1")
    agents = args.agents or replay_agents()
    agents = ["dqn", *[a for a in agents if a != "dqn"]]
    env = {**os.environ, "TDKIT_COMPILATION_CACHE": "off",
           "JAX_PLATFORMS": "cuda" if args.device == "gpu" else "cpu",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    extra = {None: [], True: ["--native-cpu-reductions"],
             False: ["--no-native-cpu-reductions"]}[args.native_cpu_reductions]
    print(f"agents: {', '.join(agents)}; {' '.join(extra)} load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for agent in agents:
            solves = [bench_dqn.time_to_solve(seed, env, workdir, ["--agent", agent, *extra],
                                              agent)
                      for seed in range(args.seeds)]
            times = [s["seconds_to_solve"] for s in solves if s["solved"]]
            results[agent] = {
                "solved": f"{len(times)}/{args.seeds}",
                "median_seconds_to_solve": statistics.median(times) if times else None,
                "rounds_steps_per_second_1": [], "rounds_steps_per_second_16": [],
                "runs": solves}
            print(f"{agent}: solved {results[agent]['solved']}, median "
                  f"{results[agent]['median_seconds_to_solve']} s", flush=True)
        for round_index in range(args.rounds):
            for agent in agents:
                r = results[agent]
                for members in (1, 16):
                    r[f"rounds_steps_per_second_{members}"].append(
                        throughput(agent, members, args.steps, env, workdir, round_index,
                                   extra))
                print(f"round {round_index + 1}/{args.rounds} {agent}: "
                      f"{r['rounds_steps_per_second_1'][-1]:,.0f} steps/s (1 seed), "
                      f"{r['rounds_steps_per_second_16'][-1]:,.0f} steps/s (16 seeds); load "
                      f"average {os.getloadavg()[0]:.2f}", flush=True)
    base = results["dqn"]
    for r in results.values():
        for members in (1, 16):
            rounds = r[f"rounds_steps_per_second_{members}"]
            r[f"steps_per_second_{members}"] = statistics.median(rounds)
            r[f"per_step_cost_vs_dqn_{members}"] = statistics.median(
                [b / x for b, x in zip(base[f"rounds_steps_per_second_{members}"], rounds,
                                       strict=True)])
    print(f"\n{'agent':<14}{'solved':>8}{'time (s)':>10}{'x DQN':>8}{'steps/s 1':>12}"
          f"{'x DQN':>8}{'steps/s 16':>12}{'x DQN':>8}")
    for agent, r in results.items():
        t = r["median_seconds_to_solve"]
        ratio_t = (t / base["median_seconds_to_solve"]
                   if t and base["median_seconds_to_solve"] else None)
        r["time_vs_dqn"] = ratio_t
        print(f"{agent:<14}{r['solved']:>8}{t if t is None else round(t, 1)!s:>10}"
              f"{'-' if ratio_t is None else f'{ratio_t:.2f}':>8}"
              f"{r['steps_per_second_1']:>12,.0f}{r['per_step_cost_vs_dqn_1']:>8.2f}"
              f"{r['steps_per_second_16']:>12,.0f}{r['per_step_cost_vs_dqn_16']:>8.2f}")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(
        {"load_average": os.getloadavg()[0], "agents": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
