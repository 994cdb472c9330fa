"""Command lines of `scripts/train.py` and `scripts/evaluate.py` (argparse).

Every agent setting and numeric hyperparameter becomes an option (`--learning-rate`,
`--hidden-sizes 120,84`, ...) whose help is the dataclass field's `help` metadata; `--help`
lists the agents, the environments and every agent's options with their defaults.
"""

import argparse
import dataclasses
import json
import pathlib
import sys
import types
import typing
from collections.abc import Sequence

from agents import plan as plan_lib
from agents import registry
from agents import run as run_lib

COMMON_DEFAULTS = run_lib.RunConfig()
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C'd command


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_value(text: str, annotation):
    """Parses `text` for a dataclass field annotation (int, float, bool, str, tuples, None)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if text.lower() == "none" and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _parse_value(text, inner)
    if annotation is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")
    if origin is tuple:
        return tuple(_parse_value(part, args[0]) for part in text.split(",") if part)
    return annotation(text)


def _typed(annotation):
    def parse(text: str):
        try:
            return _parse_value(text, annotation)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return parse


def _format_default(value) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def agent_options_text(spec: registry.AgentSpec) -> str:
    config = registry.make_config(spec)
    lines = [f"  {spec.name}: {spec.description} (default env: {spec.default_env})"]
    for name, default in spec.default_hparams.items():
        lines.append(f"      {_option(name):<28} {spec.hparam_help.get(name, '')} "
                     f"[default {default}; numeric, sweepable]")
    for field in dataclasses.fields(config):
        lines.append(f"      {_option(field.name):<28} {field.metadata.get('help', '')} "
                     f"[default {_format_default(getattr(config, field.name))}]")
    return "\n".join(lines)


def environments_text() -> str:
    import envs

    return ("  JAX (jitted loop, many seeds in one program): " + ", ".join(envs.names())
            + "\n  gym backend: any registered Gymnasium id (e.g. Taxi-v4, LunarLander-v3)")


def _add_agent_options(parser: argparse.ArgumentParser, spec: registry.AgentSpec) -> None:
    group = parser.add_argument_group(f"options of agent '{spec.name}'")
    config = registry.make_config(spec)
    hints = typing.get_type_hints(spec.config_cls)
    for name, default in spec.default_hparams.items():
        aliases = [_option(a) for a, target in run_lib.HPARAM_ALIASES.items() if target == name]
        group.add_argument(_option(name), *aliases, dest=f"hp.{name}", type=float, default=None,
                           metavar="X", help=f"{spec.hparam_help.get(name, '')} "
                           f"(default {default})")
    for field in dataclasses.fields(config):
        group.add_argument(_option(field.name), dest=f"cfg.{field.name}",
                           type=_typed(hints[field.name]), default=None, metavar="V",
                           help=f"{field.metadata.get('help', '')} "
                           f"(default {_format_default(getattr(config, field.name))})")


MAIN_AGENT = "pqn"
"""The main job's agent (`python scripts/train.py`): of DQN and PQN, the one that solves
CartPole-v1 fastest from a cold start on a 2-core CPU (README, "Benchmarks")."""


def build_train_parser(agent: str) -> argparse.ArgumentParser:
    spec = registry.get(agent)
    epilog = ("agents and their options (pass --agent NAME to use one):\n"
              + "\n".join(agent_options_text(s) for s in registry.AGENTS.values())
              + "\n\nenvironments:\n" + environments_text()
              + "\n\nexamples:\n  python scripts/train.py                       # PQN on "
              "CartPole-v1 until solved, evaluated on Gymnasium\n"
              "  python scripts/train.py --agent q_learning --env Taxi-v4 --total-steps "
              "200000\n  python scripts/train.py --seeds 4 --sweep lr=1e-3,3e-4\n"
              "  python scripts/train.py --resume runs/dqn-CartPole-v1-20260101-120000")
    parser = argparse.ArgumentParser(
        prog="scripts/train.py", description="Train a tdkit agent, then evaluate it greedily "
        "on the Gymnasium environment. Writes a run folder: config.json, metrics.csv, "
        "learning_curve.png, checkpoints/, evaluation.json.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = COMMON_DEFAULTS
    parser.add_argument("--agent", default=MAIN_AGENT,
                        help=f"agent name (see below; default {MAIN_AGENT})")
    parser.add_argument("--env", default=None,
                        help="environment id (default: the agent's default env)")
    parser.add_argument("--backend", default=d.backend, choices=["auto", "jax", "gym"],
                        help="jax: jitted loop on tdkit's JAX twin; gym: host loop on "
                        "Gymnasium; auto: jax when a twin exists (default auto)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"first seed ({d.seed})")
    parser.add_argument("--seeds", type=int, default=d.seeds,
                        help="seeds trained together in one program (jax backend)")
    parser.add_argument("--total-steps", type=int, default=None,
                        help="environment steps per member (default: the agent's)")
    parser.add_argument("--num-envs", type=int, default=None,
                        help="environments stepped in parallel (default: the agent's)")
    parser.add_argument("--chunk-steps", type=int, default=None,
                        help="steps between progress reports and checkpoints")
    parser.add_argument("--eval-episodes", type=int, default=d.eval_episodes,
                        help="greedy Gymnasium episodes after training (0: skip)")
    parser.add_argument("--no-select-best", action="store_true",
                        help="evaluate the final parameters instead of the best greedy "
                        "evaluation on the JAX twin during training")
    parser.add_argument("--select-episodes", type=int, default=d.select_episodes,
                        help="greedy episodes on the JAX twin after every chunk, to keep the "
                        f"best parameters (default {d.select_episodes})")
    parser.add_argument("--stop-at-return", type=_stop_at_return, default="auto", metavar="R",
                        help="stop once every member's greedy evaluation during training "
                        "reached R, then evaluate on Gymnasium; 'auto' (default): the "
                        "environment's reward threshold if it has one (475 for CartPole-v1) on "
                        "the jax backend; 'none': train for --total-steps")
    parser.add_argument("--checkpoint-seconds", type=float,
                        default=d.checkpoint_seconds, help="at most this long between "
                        "checkpoints (also saved at the end, on Ctrl-C and when stopping)")
    parser.add_argument("--pin-cpu", action="store_true",
                        help="gym backend: run on one CPU core (faster for small networks, "
                        "whose computations gain nothing from XLA's worker threads; Linux)")
    parser.add_argument("--reference-host-loop", action="store_true",
                        help="gym backend: the readable reference loop (agents.host_loop) "
                        "instead of its fast path (agents.host_fast); same maths, slower")
    parser.add_argument("--native-cpu-reductions", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="jax backend on the CPU: compile the loop's reductions as XLA's "
                        "own fused loops instead of YNNPACK calls (often faster for small "
                        "networks: DQN 1.6x, QR-DQN 2.7x steps/s with 1 seed on CartPole, "
                        "but C51, M-DQN and Rainbow 0.8-0.9x with 16 seeds; see "
                        "agents/compile_options.py); default: the "
                        "agent's own (on for qr_dqn and iqn on the jax backend, else off)")
    parser.add_argument("--wrapper", action="append", default=[],
                        metavar="[module.]Name[:key=value,...]",
                        help="wrap each Gymnasium env (training, evaluation, video) in this "
                        "wrapper, e.g. FrameStackObservation:stack_size=4 (a bare name is "
                        "looked up in gymnasium.wrappers); repeatable, applied in order; "
                        "gym backend")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files to RUN_DIR/tensorboard "
                        "(needs tensorboardX: pip install '.[tensorboard]')")
    parser.add_argument("--wandb", action="store_true",
                        help="also log to Weights & Biases (offline unless logged in or "
                        "WANDB_MODE says otherwise; files in RUN_DIR/wandb; pip install "
                        "'.[wandb]')")
    parser.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2",
                        help="train every combination of these hyperparameter values (x "
                        "seeds) in one program; repeatable")
    parser.add_argument("--devices", default=None, metavar="N|all",
                        help="shard the seed/sweep members over N devices (or all)")
    parser.add_argument("--out", default=None, help="run folder (default runs/<agent>-<env>-"
                        "<time>)")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue the run in DIR from its newest readable checkpoint "
                        "with its saved configuration; only --total-steps (to extend it), "
                        "--checkpoint-seconds, --eval-episodes and --no-progress may be "
                        "given with it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_agent_options(parser, spec)
    return parser


def parse_sweep(items: Sequence[str]) -> dict:
    sweep = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise run_lib.RunError(f"--sweep expects NAME=V1,V2,..., got '{item}'")
        full = run_lib.HPARAM_ALIASES.get(name, name)
        if any(run_lib.HPARAM_ALIASES.get(n, n) == full for n in sweep):
            raise run_lib.RunError(f"--sweep {name}: '{full}' is swept twice; give all its "
                                   f"values in one --sweep {full}=V1,V2,...")
        parsed = []
        for value in values.split(","):
            try:
                parsed.append(float(value))
            except ValueError:
                raise run_lib.RunError(
                    f"--sweep {name}: '{value}' is not a number") from None
        sweep[name] = parsed
    return sweep


def _stop_at_return(text: str):
    if text in ("auto", "none"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, 'auto' or 'none', got {text!r}") from None


def reward_threshold(env_id: str) -> float | None:
    """The Gymnasium spec's `reward_threshold` of `env_id` (tdkit ids included), or None."""
    import gymnasium

    import envs
    from envs.gym_factory import resolve_gym_id

    gymnasium.register_envs(envs)
    try:
        return gymnasium.spec(resolve_gym_id(env_id)).reward_threshold
    except Exception:  # unknown ids are reported by the run's own checks
        return None


def config_from_args(args: argparse.Namespace) -> run_lib.RunConfig:
    spec = registry.get(args.agent)
    overrides = spec.run_defaults
    hparams = {k[3:]: v for k, v in vars(args).items() if k.startswith("hp.") and v is not None}
    agent_config = {k[4:]: v for k, v in vars(args).items()
                    if k.startswith("cfg.") and v is not None}
    agent_config = {k: list(v) if isinstance(v, tuple) else v for k, v in agent_config.items()}
    def run_default(name):  # an explicit 0 stays 0 (and is rejected), never the default
        given = getattr(args, name)
        return given if given is not None else overrides.get(
            name, getattr(COMMON_DEFAULTS, name))

    env = args.env or spec.default_env
    stop_at_return = args.stop_at_return
    if stop_at_return == "auto":  # jax backend only: its greedy evaluations decide
        try:
            jax_backend = plan_lib.resolve_backend(env, args.backend, args.wrapper) == "jax"
        except plan_lib.RunError:  # reported by the run's own checks
            jax_backend = False
        stop_at_return = reward_threshold(env) if jax_backend else None
    elif stop_at_return == "none":
        stop_at_return = None
    return run_lib.RunConfig(
        agent=args.agent, env=env, backend=args.backend,
        seed=args.seed, seeds=args.seeds, total_steps=run_default("total_steps"),
        num_envs=run_default("num_envs"), chunk_steps=run_default("chunk_steps"),
        eval_episodes=args.eval_episodes, select_best=not args.no_select_best,
        select_episodes=args.select_episodes,
        stop_at_return=stop_at_return, checkpoint_seconds=args.checkpoint_seconds,
        pin_cpu=args.pin_cpu, fast_host_loop=not args.reference_host_loop,
        native_cpu_reductions=args.native_cpu_reductions,
        out=args.out, agent_config=agent_config, hparams=hparams,
        sweep=parse_sweep(args.sweep), wrappers=list(args.wrapper), devices=args.devices,
        tensorboard=args.tensorboard, wandb=args.wandb)


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def enable_compilation_cache() -> None:
    """Persists compiled XLA programs across runs (JAX's compilation cache), so a second run
    of the same configuration skips compilation. Directory: $TDKIT_COMPILATION_CACHE (default
    ~/.cache/tdkit/jax); set it to "off" to disable."""
    import os

    import jax

    path = os.environ.get("TDKIT_COMPILATION_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "tdkit", "jax"))
    if path.lower() in ("", "off", "0", "none"):
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict:
    """The options written on the command line (not their defaults), by `dest`."""
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        return vars(parser.parse_args(argv))
    finally:
        for action, default in saved:
            action.default = default


RESUME_OK = set(run_lib.RESUME_CHANGEABLE) | {"resume", "no_progress", "help"}


def train_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--agent", default=MAIN_AGENT)
    pre.add_argument("--resume", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.agent not in registry.AGENTS:
        return _fail(f"unknown agent '{known.agent}'; valid agents: "
                     f"{', '.join(sorted(registry.AGENTS))}")
    agent = known.agent
    if known.resume is not None:
        try:
            agent = run_lib.load_config(pathlib.Path(known.resume)).agent
        except run_lib.RunError as error:
            return _fail(str(error))
    parser = build_train_parser(agent)
    args = parser.parse_args(argv)
    enable_compilation_cache()
    try:
        if args.resume is not None:
            given = given_options(parser, argv)
            refused = sorted(_option(name.split(".")[-1]) for name in set(given) - RESUME_OK)
            if refused:
                return _fail(f"--resume continues the run saved in {args.resume} with its own "
                             f"configuration; it cannot change {', '.join(refused)} (allowed "
                             f"with --resume: --total-steps to extend the run, "
                             f"--checkpoint-seconds, --eval-episodes, --no-progress)")
            changes = {name: given[name] for name in run_lib.RESUME_CHANGEABLE if name in given}
            summary = run_lib.train(None, resume_dir=args.resume,
                                    progress=not args.no_progress, **changes)
        else:
            summary = run_lib.train(config_from_args(args), progress=not args.no_progress)
    except run_lib.RunError as error:
        return _fail(str(error), error.code)
    print_summary(summary)
    if summary.get("interrupted_by") == "signal":
        return EXIT_INTERRUPTED
    return 0


def print_summary(summary: dict) -> None:
    print(f"run folder: {summary['run_dir']}")
    print(f"trained {summary['steps']:,} steps x {summary['members']} member(s) in "
          f"{summary['train_seconds']:.1f} s ({summary['backend']} backend"
          + (f", {summary['cpu_dispatch']} CPU dispatch" if "cpu_dispatch" in summary else "")
          + (f", pinned to CPU {summary['pinned_cpu']}" if summary.get("pinned_cpu") is not None
             else "")
          + ")")
    evaluation = summary.get("evaluation")
    if evaluation:
        print(f"greedy evaluation on {evaluation['env_id']} ({evaluation['episodes']} episodes"
              f" per member, policy: {evaluation['policy']}):")
        for m in evaluation["members"]:
            extra = "".join(f" {k}={m[k]}" for k in m if k not in (
                "member", "seed", "mean_return", "std_return", "mean_length", "episodes"))
            print(f"  seed {m['seed']}{extra}: mean return {m['mean_return']:.1f} "
                  f"+- {m['std_return']:.1f} (mean length {m['mean_length']:.1f})")


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/evaluate.py", description="Evaluate a saved agent greedily on the "
        "Gymnasium environment (every member; per configuration for sweeps); writes "
        "RUN_DIR/evaluate-<env>-<episodes>ep.json (training's evaluation.json is kept).")
    parser.add_argument("run_dir", help="a run folder written by scripts/train.py")
    parser.add_argument("--episodes", type=int, default=100, help="episodes (default 100)")
    parser.add_argument("--env", default=None, help="Gymnasium id (default: the run's env; "
                        "its spaces must match the agent's)")
    parser.add_argument("--out", default=None, help="the JSON file to write instead")
    parser.add_argument("--video", action="store_true",
                        help="also record one episode to RUN_DIR/videos (needs moviepy)")
    args = parser.parse_args(argv)
    if args.episodes <= 0:
        return _fail(f"--episodes must be > 0, got {args.episodes}")
    try:
        evaluation = run_lib.evaluate_run(args.run_dir, env_id=args.env,
                                          episodes=args.episodes, video=args.video,
                                          out=args.out)
    except (run_lib.RunError, RuntimeError, ValueError) as error:
        code = getattr(error, "code", 2)
        return _fail(str(error), code if isinstance(code, int) else 2)
    print(json.dumps({k: evaluation[k] for k in (
        "env_id", "episodes", "mean_return", "std_return", "path")}, indent=2))
    if len(evaluation["configurations"]) > 1:
        for c in evaluation["configurations"]:
            setting = ", ".join(f"{k}={c[k]}" for k in c if k not in (
                "seeds", "mean_return", "std_return_over_seeds", "ci95"))
            ci = f" +- {c['ci95']:.1f} (95% CI)" if c["ci95"] is not None else ""
            print(f"{setting}: mean return {c['mean_return']:.1f}{ci} over seeds {c['seeds']}")
    return 0
