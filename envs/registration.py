"""Names of the tdkit environments: `envs.make(name, **overrides)` and Gymnasium registration.

    env, params = envs.make("CartPole-v1")
    env, params = envs.make("RandomWalk-v0", num_states=19, left_reward=-1.0)
    env, params = envs.make("gymnax:Breakout-MinAtar")   # any gymnax id (the [gymnax] extra)

    import gymnasium, envs
    gymnasium.register_envs(envs)
    gym_env = gymnasium.make("tdkit/RandomWalk-v0")   # or "envs:tdkit/RandomWalk-v0"
"""

import difflib
import functools
from collections.abc import Callable
from typing import Any

import gymnasium

from envs import base
from envs.baird import BairdCounterexample
from envs.boyan import BoyanChain
from envs.classic_control import Acrobot, CartPole, MountainCar
from envs.gridworlds import CliffWalking, WindyGridworld
from envs.maximization_bias import MaximizationBias
from envs.pendulum import Pendulum
from envs.random_walk import RandomWalk

NAMESPACE = "tdkit"

REGISTRY: dict[str, Callable[..., base.Environment]] = {
    "RandomWalk-v0": RandomWalk,
    "RandomWalk19-v0": functools.partial(RandomWalk, num_states=19, left_reward=-1.0),
    "BoyanChain-v0": BoyanChain,
    "BairdCounterexample-v0": BairdCounterexample,
    "WindyGridworld-v0": WindyGridworld,
    "WindyGridworldKing-v0": functools.partial(WindyGridworld, king_moves=True),
    "CliffWalking-v0": CliffWalking,
    "MaximizationBias-v0": MaximizationBias,
    "CartPole-v1": CartPole,
    "MountainCar-v0": MountainCar,
    "Acrobot-v1": Acrobot,
    "Pendulum-v1": Pendulum,
}
"""Environment name -> constructor taking keyword overrides."""

# Gymnasium's TimeLimit and reward thresholds for the classic-control ids (Pendulum-v1 has
# no reward threshold).
_GYM_SPEC = {
    "CartPole-v1": dict(max_episode_steps=500, reward_threshold=475.0),
    "MountainCar-v0": dict(max_episode_steps=200, reward_threshold=-110.0),
    "Acrobot-v1": dict(max_episode_steps=500, reward_threshold=-100.0),
    "Pendulum-v1": dict(max_episode_steps=200),
}


def names() -> list[str]:
    """The registered environment names, e.g. `["RandomWalk-v0", ..., "Acrobot-v1"]`."""
    return list(REGISTRY)


def make(name: str, **overrides: Any) -> tuple[base.Environment, Any]:
    """Builds a registered environment.

    Args:
      name: e.g. `"CartPole-v1"` (a `"tdkit/"` prefix is accepted), or `"gymnax:<id>"` for
        any gymnax environment (see `envs.gymnax_env`; needs the `[gymnax]` extra).
      **overrides: constructor options (e.g. `num_states=19`, `king_moves=True`) and params
        fields (e.g. `gravity=9.8`, `max_steps=1000`); invalid values raise `ValueError`.

    Returns:
      `(env, params)`, with `params = env.default_params`.
    """
    if name.startswith("gymnax:"):
        from envs.gymnax_env import make_gymnax  # gymnax is imported only here

        return make_gymnax(name, **overrides)
    key = name.removeprefix(f"{NAMESPACE}/")
    if key not in REGISTRY:
        close = difflib.get_close_matches(key, REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"envs.make: unknown environment {name!r}.{hint} Known: {', '.join(REGISTRY)}, "
            f"or 'gymnax:<id>' for a gymnax environment")
    env = REGISTRY[key](**overrides)
    env = env._replace(name=key)
    return env, env.default_params


def make_gymnasium_env(name: str, render_mode: str | None = None, **overrides: Any):
    """Gymnasium entry point: the `gymnasium.Env` of a registered environment."""
    from envs.gym_wrapper import GymnasiumEnv

    env, params = make(name, **overrides)
    return GymnasiumEnv(env, params, render_mode=render_mode)


def register_gymnasium_envs() -> None:
    """Registers every environment as `tdkit/<name>` with Gymnasium (idempotent)."""
    for name in REGISTRY:
        env_id = f"{NAMESPACE}/{name}"
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="envs.registration:make_gymnasium_env",
            kwargs={"name": name},
            **_GYM_SPEC.get(name, {}),
        )
