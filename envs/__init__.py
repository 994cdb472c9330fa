"""Environments: pure-JAX functional environments and their Gymnasium registration.

    import envs
    env, params = envs.make("CartPole-v1")
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

`step` resets automatically; `info["final_observation"]` is the true last observation of an
episode that just ended (see `envs.base`). Importing `envs` registers every environment with
Gymnasium as `tdkit/<Name>` (`gymnasium.make("tdkit/RandomWalk-v0")`), returning NumPy
observations. `envs.make_host_env` / `envs.HostAdapter` wrap any Gymnasium vector env for
TD learning on the host (see `envs.host`). `envs.make_gym_env` / `envs.make_gym_vector_env` /
`envs.gym_spaces` make every Gymnasium env tdkit uses, with the same `--wrapper` wrappers for
training, evaluation and video (see `envs.gym_factory`).
"""

from envs.baird import BairdCounterexample
from envs.base import (
    Core,
    Environment,
    State,
    TabularModel,
    policy_values,
    random_rollout,
)
from envs.boyan import BoyanChain
from envs.classic_control import Acrobot, CartPole, MountainCar
from envs.funcenv import from_funcenv
from envs.gridworlds import CliffWalking, WindyGridworld
from envs.gym_factory import (
    WrapperSpec,
    gym_spaces,
    make_gym_env,
    make_gym_vector_env,
    parse_wrapper,
    resolve_gym_id,
)
from envs.host import EpisodeStats, HostAdapter, HostStep, make_host_env
from envs.maximization_bias import MaximizationBias
from envs.pendulum import Pendulum
from envs.random_walk import RandomWalk
from envs.registration import make, names, register_gymnasium_envs

register_gymnasium_envs()

__all__ = [
    "Acrobot",
    "BairdCounterexample",
    "BoyanChain",
    "CartPole",
    "CliffWalking",
    "Core",
    "Environment",
    "EpisodeStats",
    "HostAdapter",
    "HostStep",
    "MaximizationBias",
    "MountainCar",
    "Pendulum",
    "RandomWalk",
    "State",
    "TabularModel",
    "WindyGridworld",
    "WrapperSpec",
    "from_funcenv",
    "gym_spaces",
    "make",
    "make_gym_env",
    "make_gym_vector_env",
    "make_host_env",
    "names",
    "parse_wrapper",
    "policy_values",
    "random_rollout",
    "register_gymnasium_envs",
    "resolve_gym_id",
]
