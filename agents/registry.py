"""Agent registry: names, settings, hyperparameters and what environments each can handle."""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gymnasium
import numpy as np

from agents import actor_critic
from agents import c51 as c51_lib
from agents import dqn as dqn_lib
from agents import iqn as iqn_lib
from agents import linear as linear_lib
from agents import munchausen as munchausen_lib
from agents import pqn as pqn_lib
from agents import qr_dqn as qr_dqn_lib
from agents import rainbow as rainbow_lib
from agents import sac as sac_lib
from agents import tabular as tabular_lib
from agents import td3 as td3_lib
from agents.base import Agent


class AgentSpec(NamedTuple):
    """How to build one agent.

    Attributes:
      name: registry name.
      description: one line for `--help`.
      config_cls: frozen dataclass of static settings (field metadata "help").
      config_overrides: this agent's defaults for `config_cls` fields.
      default_hparams: numeric hyperparameters (may be swept) and their defaults.
      hparam_help: meaning of each numeric hyperparameter.
      build: `build(observation_space, action_space, config) -> Agent`.
      check: `check(observation_space, action_space) -> None`, raises ValueError with a clear
        message when the agent cannot handle the environment.
      validate: `validate(config, hparams) -> None`, raises ValueError for invalid settings
        (before any compilation).
      default_env: the environment `scripts/train.py --agent NAME` uses without `--env`.
      run_defaults: this agent's defaults for the run (total_steps, num_envs, chunk_steps;
        optionally native_cpu_reductions, the jitted loop's compile option that
        `RunConfig.native_cpu_reductions=None` takes, False when absent).
    """

    name: str
    description: str
    config_cls: type
    config_overrides: Mapping[str, Any]
    default_hparams: Mapping[str, float]
    hparam_help: Mapping[str, str]
    build: Callable[..., Agent]
    check: Callable[[gymnasium.Space, gymnasium.Space], None]
    validate: Callable[[Any, Mapping[str, Any]], None]
    default_env: str
    run_defaults: Mapping[str, int | bool]


def _require_discrete_actions(agent: str, action_space: gymnasium.Space) -> None:
    if not isinstance(action_space, gymnasium.spaces.Discrete):
        raise ValueError(
            f"agent '{agent}' needs a Discrete action space, but the environment has "
            f"{action_space} (continuous or structured actions are not supported)")


def _check_dqn(agent: str):
    def check(observation_space, action_space):
        _require_discrete_actions(agent, action_space)
        if not (isinstance(observation_space, gymnasium.spaces.Box)
                and len(observation_space.shape) in (1, 3)):
            raise ValueError(
                f"agent '{agent}' needs vector observations (a 1-D Box) or images (a "
                f"[H, W, C] Box, through a conv torso), but the environment has "
                f"{observation_space}; for discrete states use a tabular agent")
    return check


def _with_torso(config, observation_space):
    """`config` with its `torso` resolved for the observations ('auto': conv for images);
    configs without a `torso` setting are returned as they are."""
    from agents.dqn import resolve_torso

    if not hasattr(config, "torso"):
        return config
    torso = resolve_torso(config.torso, tuple(observation_space.shape))
    if torso == "none" and len(observation_space.shape) == 3:
        raise ValueError(f"image observations {observation_space} need a conv torso: "
                         f"`torso` 'auto', 'minatar' or 'nature', not 'none'")
    return dataclasses.replace(config, torso=torso)


def _check_continuous(agent: str):
    def check(observation_space, action_space):
        if not (isinstance(action_space, gymnasium.spaces.Box)
                and len(action_space.shape) == 1):
            raise ValueError(
                f"agent '{agent}' needs a continuous (1-D Box) action space, but the "
                f"environment has {action_space}; for discrete actions use e.g. 'dqn' or 'pqn'")
        actor_critic.action_bounds(action_space)
        if not (isinstance(observation_space, gymnasium.spaces.Box)
                and len(observation_space.shape) == 1):
            raise ValueError(
                f"agent '{agent}' needs vector observations (a 1-D Box), but the environment "
                f"has {observation_space}")
    return check


def _continuous_spec(name: str, description: str, module, config_cls, make_agent,
                     config_overrides=None) -> AgentSpec:
    from agents import replay_driver
    def build(observation_space, action_space, config):
        del observation_space
        low, high = actor_critic.action_bounds(action_space)
        return make_agent(low, high, config, name)

    driver_defaults = getattr(module, "DRIVER_DEFAULTS", {})
    return AgentSpec(
        name=name, description=description, config_cls=config_cls,
        config_overrides=dict(config_overrides or {}),
        default_hparams={**module.LEARNER_HPARAMS, **replay_driver.ACTOR_CRITIC_HPARAMS,
                         **driver_defaults},
        hparam_help=module.HPARAM_HELP, build=build, check=_check_continuous(name),
        validate=lambda config, hparams: module.validate(config, hparams, name),
        default_env="Pendulum-v1",
        run_defaults={"total_steps": 20_000, "num_envs": 1, "chunk_steps": 2_000})


def _check_tabular(agent: str):
    def check(observation_space, action_space):
        _require_discrete_actions(agent, action_space)
        if not isinstance(observation_space, gymnasium.spaces.Discrete):
            raise ValueError(
                f"agent '{agent}' is tabular and needs a Discrete observation space (state "
                f"indices), but the environment has {observation_space}; use 'sarsa_lambda' "
                f"(tile coding) or 'dqn' for continuous observations")
    return check


def _check_linear(observation_space, action_space):
    _require_discrete_actions("sarsa_lambda", action_space)
    linear_lib.observation_bounds(observation_space)


def _build_linear(observation_space, action_space, config):
    return linear_lib.sarsa_lambda_agent(observation_space, int(action_space.n), config)


def _build_pqn(observation_space, action_space, config):
    return pqn_lib.pqn(int(action_space.n), _with_torso(config, observation_space), "pqn")


REPLAY_RUN_DEFAULTS = {"total_steps": 240_000, "num_envs": 16, "chunk_steps": 10_000}
"""The run defaults of replay agents on CartPole-v1 (`scripts/train.py --agent dqn`)."""

# Agents whose jitted loop compiles with `--native-cpu-reductions` by default: on CartPole-v1
# (`scripts/bench_agents.py --rounds 3` with and without the option, README, 2026-12-05)
# they ran faster with it both with 1 seed and with 16 (QR-DQN 2.73x and 2.02x, IQN 1.82x
# and 1.03x); with 16 seeds DQN gained 1.04x and C51, M-DQN and Rainbow lost (0.81-0.86x).
NATIVE_CPU_REDUCTIONS_BY_DEFAULT = ("qr_dqn", "iqn")


def replay_agent_spec(name: str, description: str, learner: Callable[..., Any],
                      config_cls: type, learner_hparams: Mapping[str, float],
                      learner_help: Mapping[str, str],
                      validate: Callable[[Any, Mapping[str, Any]], None] | None = None,
                      config_overrides: Mapping[str, Any] | None = None,
                      default_env: str = "CartPole-v1",
                      run_defaults: Mapping[str, int | bool] | None = None) -> AgentSpec:
    """The registry entry of a replay-based agent: `learner(num_actions, config, name)`
    (an `agents.learner.Learner`) on the replay driver, for Discrete actions and vector
    observations.

    Args:
      name, description: as in `AgentSpec`.
      learner: `learner(num_actions, config, name) -> Learner`.
      config_cls: a frozen dataclass extending `agents.replay_driver.ReplayConfig`.
      learner_hparams, learner_help: the learner's numeric hyperparameters (the driver adds
        gamma, epsilon_start, epsilon_end, tau, importance_beta).
      validate: `validate(config, hparams)` of all the agent's settings, the driver's
        included (e.g. through `agents.dqn.validate_network`); None: the driver's alone.
        (`replay_agent` checks the driver's settings again when it builds the agent.)
      config_overrides, default_env, run_defaults: as in `AgentSpec`.
    """
    from agents import replay_driver

    def build(observation_space, action_space, config):
        num_actions = int(action_space.n)
        config = _with_torso(config, observation_space)
        return replay_driver.replay_agent(learner(num_actions, config, name), config,
                                          num_actions, name)

    def check_all(config, hparams):
        if validate is None:
            replay_driver.validate(config, hparams, name)
        else:
            validate(config, hparams)

    return AgentSpec(
        name=name, description=description, config_cls=config_cls,
        config_overrides=dict(config_overrides or {}),
        default_hparams={**learner_hparams, **replay_driver.HPARAMS},
        hparam_help={**learner_help, **replay_driver.HPARAM_HELP},
        build=build, check=_check_dqn(name), validate=check_all, default_env=default_env,
        run_defaults=dict(run_defaults or REPLAY_RUN_DEFAULTS))


def _build_tabular(rule: str):
    def build(observation_space, action_space, config):
        return tabular_lib.tabular_agent(
            rule, int(observation_space.n), int(action_space.n), config)
    return build


def _specs() -> dict[str, AgentSpec]:
    specs = {}
    for name, double in (("dqn", False), ("double_dqn", True)):
        specs[name] = replay_agent_spec(
            name, ("Double DQN" if double else "DQN") + ": MLP Q-network, replay "
            "(uniform/prioritized), target network, n-step returns",
            learner=dqn_lib.dqn_learner, config_cls=dqn_lib.DQNConfig,
            learner_hparams=dqn_lib.LEARNER_HPARAMS,
            learner_help={"learning_rate": dqn_lib.HPARAM_HELP["learning_rate"]},
            validate=lambda config, hparams, n=name: dqn_lib.validate(config, hparams, n),
            config_overrides={"double": double})
    learning_rate_help = {"learning_rate": dqn_lib.HPARAM_HELP["learning_rate"]}
    dopamine_family = [  # name, description, module, learner, config class
        ("c51", "C51: categorical distributional DQN (logits over a fixed support)",
         c51_lib, c51_lib.c51_learner, c51_lib.C51Config),
        ("qr_dqn", "QR-DQN: quantile regression DQN (quantile Huber loss)",
         qr_dqn_lib, qr_dqn_lib.qr_dqn_learner, qr_dqn_lib.QRDQNConfig),
        ("iqn", "IQN: implicit quantile networks (sampled quantile fractions, cosine "
         "embedding)", iqn_lib, iqn_lib.iqn_learner, iqn_lib.IQNConfig),
        ("mdqn", "Munchausen DQN: soft target with the scaled log-policy bonus",
         munchausen_lib, munchausen_lib.mdqn_learner, munchausen_lib.MDQNConfig),
        ("rainbow", "Rainbow: C51 + double + dueling + noisy nets + n-step + prioritized "
         "(each switchable)", rainbow_lib, rainbow_lib.rainbow_learner,
         rainbow_lib.RainbowConfig),
    ]
    for name, description, module, learner, config_cls in dopamine_family:
        specs[name] = replay_agent_spec(
            name, description, learner=learner, config_cls=config_cls,
            learner_hparams=dqn_lib.LEARNER_HPARAMS, learner_help=learning_rate_help,
            validate=module.validate,
            run_defaults={**REPLAY_RUN_DEFAULTS,
                          "native_cpu_reductions": name in NATIVE_CPU_REDUCTIONS_BY_DEFAULT})
    specs["pqn"] = AgentSpec(
        name="pqn",
        description="PQN: Peng's (or Watkins') Q(lambda) on [T, N] rollouts of many envs, "
        "LayerNorm MLP, no replay, no target network (Gallici et al. 2025)",
        config_cls=pqn_lib.PQNConfig, config_overrides={},
        default_hparams=pqn_lib.DEFAULT_HPARAMS, hparam_help=pqn_lib.HPARAM_HELP,
        build=_build_pqn, check=_check_dqn("pqn"),
        validate=lambda config, hparams: pqn_lib.validate(config, hparams, "pqn"),
        default_env="CartPole-v1",
        run_defaults={"total_steps": 500_000, "num_envs": 32, "chunk_steps": 2048 * 4})
    specs["ddpg"] = _continuous_spec(
        "ddpg", "DDPG: deterministic actor, one critic, Polyak targets (TD3 without its "
        "three changes)", td3_lib, td3_lib.TD3Config, td3_lib.td3,
        config_overrides=td3_lib.DDPG_OVERRIDES)
    specs["td3"] = _continuous_spec(
        "td3", "TD3: twin critics (clipped double Q), target policy smoothing, delayed "
        "actor and target updates", td3_lib, td3_lib.TD3Config, td3_lib.td3)
    specs["sac"] = _continuous_spec(
        "sac", "SAC: squashed-Gaussian actor, twin critics, soft target, automatic "
        "temperature", sac_lib, sac_lib.SACConfig, sac_lib.sac)
    for rule in tabular_lib.RULES:
        specs[rule] = AgentSpec(
            name=rule,
            description=f"tabular {rule.replace('_', ' ')} with an epsilon-greedy policy",
            config_cls=tabular_lib.TabularConfig, config_overrides={},
            default_hparams=tabular_lib.DEFAULT_HPARAMS, hparam_help=tabular_lib.HPARAM_HELP,
            build=_build_tabular(rule), check=_check_tabular(rule),
            validate=tabular_lib.validate, default_env="Taxi-v4",
            run_defaults={"total_steps": 200_000, "num_envs": 1, "chunk_steps": 20_000})
    specs["sarsa_lambda"] = AgentSpec(
        name="sarsa_lambda",
        description="linear semi-gradient Sarsa(lambda) with tile coding (replacing or "
        "accumulating traces)",
        config_cls=linear_lib.LinearConfig, config_overrides={},
        default_hparams=linear_lib.DEFAULT_HPARAMS, hparam_help=linear_lib.HPARAM_HELP,
        build=_build_linear, check=_check_linear, validate=linear_lib.validate,
        default_env="MountainCar-v0",
        run_defaults={"total_steps": 200_000, "num_envs": 1, "chunk_steps": 20_000})
    return specs


AGENTS: dict[str, AgentSpec] = _specs()


def get(name: str) -> AgentSpec:
    """The spec of agent `name`; ValueError listing the valid names otherwise."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent '{name}'; valid agents: {', '.join(sorted(AGENTS))}")
    return AGENTS[name]


def make_config(spec: AgentSpec, overrides: Mapping[str, Any] | None = None):
    """The agent's config dataclass with its defaults and `overrides` applied."""
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    values = {**spec.config_overrides, **(overrides or {})}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"agent '{spec.name}' has no setting(s) {unknown}; valid: "
                         f"{sorted(fields)}")
    return spec.config_cls(**values)


def config_defaults(spec: AgentSpec) -> dict[str, Any]:
    """Static settings with this agent's defaults, as a JSON-friendly dict."""
    config = make_config(spec)
    return {f.name: _jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
