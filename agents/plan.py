"""A training run's configuration, validated before anything compiles: `RunConfig` and `Plan`.

    config = RunConfig(agent="dqn", env="CartPole-v1", seeds=4, sweep={"lr": [1e-3, 3e-4]})
    plan = Plan(config)          # agent, environment spaces, members, chunking; or RunError

`RunConfig` is what `config.json` records; `Plan` resolves it (backend, spaces, the agent,
every member's hyperparameters) and rejects bad input with a one-line `RunError`.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from agents import registry
from agents.base import merge_hparams

HPARAM_ALIASES = {"lr": "learning_rate"}


class RunError(Exception):
    """A user error detected before or during a run; the CLI prints it on one line and exits
    with `code` (2 for invalid input, 1 for a run that failed, e.g. a NaN loss)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a training run (saved as config.json)."""

    agent: str = "dqn"
    env: str = "CartPole-v1"
    backend: str = "auto"
    seed: int = 0
    seeds: int = 1
    total_steps: int = 50_000
    num_envs: int = 8
    chunk_steps: int = 5_000
    eval_episodes: int = 100
    select_best: bool = True
    select_episodes: int = 64
    stop_at_return: float | None = None
    checkpoint_seconds: float = 30.0
    pin_cpu: bool = False
    fast_host_loop: bool = True
    native_cpu_reductions: bool | None = None
    out: str | None = None
    agent_config: dict = dataclasses.field(default_factory=dict)
    hparams: dict = dataclasses.field(default_factory=dict)
    sweep: dict = dataclasses.field(default_factory=dict)
    wrappers: list = dataclasses.field(default_factory=list)
    devices: str | None = None
    tensorboard: bool = False
    wandb: bool = False

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunConfig":
        """The config of a `config.json` (keys that only describe the run are ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


# ----------------------------------------------------------------------------------------
# Resolution and validation (all before any compilation).
# ----------------------------------------------------------------------------------------


def resolve_backend(env_id: str, backend: str, wrappers: Sequence[str] = ()) -> str:
    """'jax' when tdkit has a JAX version of `env_id` (and backend allows it), else 'gym'.
    Gymnasium wrappers exist only on the host: with `wrappers`, 'auto' means 'gym'."""
    import gymnasium

    import envs

    if backend not in ("auto", "jax", "gym"):
        raise RunError(f"--backend must be jax, gym or auto, got '{backend}'")
    if wrappers and backend == "jax":
        raise RunError("--wrapper wraps Gymnasium environments: it needs --backend gym (or "
                       "auto), not jax")
    if env_id.startswith("gymnax:"):
        if backend == "gym" or wrappers:
            raise RunError(f"'{env_id}' is a JAX environment: it needs --backend jax (or "
                           "auto) and no --wrapper")
        try:
            envs.make(env_id)  # checks the id and that gymnax is installed
        except (ImportError, ValueError) as error:
            raise RunError(str(error)) from None
        return "jax"
    jax_names = envs.names()
    short = env_id.removeprefix("tdkit/")
    if backend in ("auto", "jax") and short in jax_names and not wrappers:
        return "jax"
    if backend == "jax":
        raise RunError(f"no JAX version of '{env_id}'; JAX environments: {', '.join(jax_names)}")
    gymnasium.register_envs(envs)
    from envs import gym_factory

    try:  # registers the ids of optional packages on first use (ale-py: ALE/Pong-v5, ...)
        gym_factory.resolve_gym_id(env_id)
    except gym_factory.MissingDependencyError as error:
        raise RunError(str(error)) from None
    except ValueError:
        pass  # unknown: the message below
    if env_id not in gymnasium.envs.registry and f"tdkit/{short}" not in gymnasium.envs.registry:
        import difflib

        known = list(jax_names) + sorted(gymnasium.envs.registry)
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise RunError(
            f"unknown environment '{env_id}'{hint}; valid: tdkit's {', '.join(jax_names)} "
            f"or any registered Gymnasium id")
    return "gym"


def env_spaces(env_id: str, backend: str, wrappers: Sequence[str] = ()):
    """(observation_space, action_space) of one environment (after `wrappers`)."""
    import envs
    from envs import gym_factory

    if backend == "jax":
        env, _ = envs.make(env_id)
        return env.observation_space, env.action_space
    try:
        return gym_factory.gym_spaces(env_id, wrappers)
    except ValueError as error:
        raise RunError(str(error)) from None


def expand_sweep(spec: registry.AgentSpec, base: Mapping[str, Any],
                 sweep: Mapping[str, Sequence[float]]) -> list[dict]:
    """All combinations of the swept hyperparameters over `base` (one dict per setting)."""
    import itertools

    settings = [dict(base)]
    names = list(sweep)
    for name in names:
        if name not in spec.default_hparams:
            raise RunError(
                f"agent '{spec.name}' has no numeric hyperparameter '{name}' to sweep; valid: "
                f"{', '.join(sorted(spec.default_hparams))}")
    if names:
        settings = [
            {**base, **dict(zip(names, combo, strict=True))}
            for combo in itertools.product(*(sweep[n] for n in names))]
    return settings


def normalise_hparams(spec: registry.AgentSpec, hparams: Mapping[str, Any]) -> dict:
    out = {}
    for name, value in hparams.items():
        name = HPARAM_ALIASES.get(name, name)
        if name not in spec.default_hparams:
            raise RunError(
                f"agent '{spec.name}' has no hyperparameter '{name}'; valid: "
                f"{', '.join(sorted(spec.default_hparams))}")
        out[name] = float(value)
    return out


class Plan:
    """A validated run: agent, environment, members (settings x seeds) and chunking."""

    def __init__(self, config: RunConfig):
        if config.seeds < 1:
            raise RunError(f"--seeds must be >= 1, got {config.seeds}")
        for name in ("total_steps", "num_envs", "chunk_steps"):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise RunError(f"--{name.replace('_', '-')} must be an integer > 0, got {value}")
        if config.checkpoint_seconds < 0:
            raise RunError(f"--checkpoint-seconds must be >= 0, got {config.checkpoint_seconds}")
        if config.eval_episodes < 0:
            raise RunError(f"--eval-episodes must be >= 0, got {config.eval_episodes}")
        if config.select_best and config.select_episodes < 1:
            raise RunError(f"--select-episodes must be >= 1, got {config.select_episodes}")
        self.config = config
        try:
            self.spec = registry.get(config.agent)
        except ValueError as error:
            raise RunError(str(error)) from None
        try:
            from envs import gym_factory

            self.wrappers = gym_factory.wrapper_strings(config.wrappers)
        except ValueError as error:
            raise RunError(str(error)) from None
        self.backend = resolve_backend(config.env, config.backend, self.wrappers)
        if config.native_cpu_reductions and self.backend != "jax":
            raise RunError("--native-cpu-reductions compiles the jitted loop: it needs the jax "
                           "backend")
        # None: the agent's own default (registry run_defaults), for the jitted loop only.
        self.native_cpu_reductions = (
            bool(config.native_cpu_reductions) if config.native_cpu_reductions is not None
            else self.backend == "jax"
            and bool(self.spec.run_defaults.get("native_cpu_reductions", False)))
        if config.stop_at_return is not None and self.backend != "jax":
            raise RunError("--stop-at-return needs the jax backend (the greedy evaluations "
                           "during training run on the JAX environment); the gym backend "
                           "trains for --total-steps")
        self.observation_space, self.action_space = env_spaces(
            config.env, self.backend, self.wrappers)
        try:
            self.spec.check(self.observation_space, self.action_space)
            self.agent_config = registry.make_config(self.spec, config.agent_config)
        except (ValueError, TypeError) as error:
            raise RunError(str(error)) from None
        base = normalise_hparams(self.spec, config.hparams)
        sweep = {}
        for name, swept_values in config.sweep.items():
            full = HPARAM_ALIASES.get(name, name)
            if full in sweep:
                raise RunError(f"--sweep {name}: '{full}' is swept twice; give all its values "
                               f"in one --sweep {full}=V1,V2,...")
            sweep[full] = [float(v) for v in swept_values]
            if not sweep[full]:
                raise RunError(f"--sweep {name}: no values")
        for name in sorted(set(sweep) & set(base)):
            raise RunError(f"'{name}' is both set (--{name.replace('_', '-')}) and swept "
                           f"(--sweep {name}=...); give one")
        self.sweep = sweep
        self.settings = expand_sweep(self.spec, base, sweep)
        self.swept = sorted(sweep)
        if self.backend == "gym" and (len(self.settings) > 1 or config.seeds > 1):
            raise RunError("--seeds > 1 and --sweep need the JAX backend (a tdkit JAX env)")
        try:
            self.agent = self.spec.build(
                self.observation_space, self.action_space, self.agent_config)
            # Validate every setting on the host before compiling anything.
            for setting in self.settings:
                merged = merge_hparams(self.spec.default_hparams, setting)
                self.spec.validate(self.agent_config, merged)
        except ValueError as error:
            raise RunError(str(error)) from None
        self.num_members = len(self.settings) * config.seeds
        self.select_episodes = config.select_episodes if config.select_best else 0
        self.sharding = None
        if config.devices is not None:
            if self.backend != "jax":
                raise RunError("--devices needs the JAX backend (a tdkit JAX environment)")
            from tdkit import parallel

            try:
                self.sharding = parallel.member_sharding(config.devices, self.num_members)
            except ValueError as error:
                raise RunError(f"--devices: {error}") from None
        self.iterations_per_chunk = max(1, config.chunk_steps // config.num_envs)
        steps_per_chunk = self.iterations_per_chunk * config.num_envs
        self.num_chunks = max(1, math.ceil(config.total_steps / steps_per_chunk))
        self.steps_per_chunk = steps_per_chunk

    def resolved_config(self) -> dict:
        """The configuration as `config.json` records it: every run setting, every agent
        setting and every numeric hyperparameter with its value (defaults included; swept
        ones under the names of `metrics.csv`'s columns), so the run can be rebuilt."""
        config = self.config.to_json()
        config["agent_config"] = {**registry.config_defaults(self.spec),
                                  **self.config.agent_config}
        swept = set(self.swept)
        config["hparams"] = {name: float(self.settings[0].get(name, default))
                             for name, default in self.spec.default_hparams.items()
                             if name not in swept}
        config["sweep"] = {name: list(values) for name, values in self.sweep.items()}
        config["wrappers"] = list(self.wrappers)
        config["backend_resolved"] = self.backend
        config["native_cpu_reductions"] = self.native_cpu_reductions
        return config

    def members(self) -> list[dict]:
        """One dict per member: `{"member", "seed", **setting}` (settings outer, seeds inner)."""
        out = []
        for setting in self.settings:
            for s in range(self.config.seeds):
                out.append({"member": len(out), "seed": self.config.seed + s, **setting})
        return out

    def member_hparams(self) -> dict[str, jax.Array]:
        """Full hyperparameters per member, `{name: [M]}` float32 (traced under vmap)."""
        names = list(self.spec.default_hparams)
        rows = [{**self.spec.default_hparams, **m} for m in self.members()]
        return {n: jnp.asarray([r[n] for r in rows], jnp.float32) for n in names}

    def member_keys(self) -> jax.Array:
        seeds = jnp.asarray([m["seed"] for m in self.members()], jnp.uint32)
        return jax.vmap(jax.random.key)(seeds)


