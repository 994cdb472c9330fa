"""Adapter: a Gymnasium functional JAX environment (`gymnasium.experimental.functional.FuncEnv`)
as a tdkit `Environment` (time limit, automatic reset, `info["final_observation"]`).

    from gymnasium.envs.phys2d.cartpole import CartPoleFunctional
    env = envs.from_funcenv(CartPoleFunctional(), max_steps=500)
    obs, state = env.reset(key, env.default_params)

The FuncEnv methods are called the way Gymnasium's own `FunctionalJaxEnv` calls them
(`initial(rng=...)`, `transition(state, action, rng)`, `observation(state, rng)`,
`reward(state, action, next_state, rng)`, `terminal(state, rng)`), with `params=` added only
when the FuncEnv has params. Actions are passed through unchanged (no clipping); rewards are
cast to float32 and `terminated` to bool, observations are returned as the FuncEnv makes them.
"""

from typing import Any, NamedTuple

import jax.numpy as jnp

from envs import base


class FuncEnvParams(NamedTuple):
    """Params of an adapted FuncEnv: the FuncEnv's own params (or None) and the time limit."""

    env_params: Any = None
    max_steps: int = base.NO_TIME_LIMIT


def from_funcenv(
    func_env: Any,
    name: str | None = None,
    max_steps: int | None = None,
    env_params: Any = None,
) -> base.Environment:
    """Wraps a `gymnasium.experimental.functional.FuncEnv` into an `Environment`.

    Args:
      func_env: the FuncEnv instance.
      name: the environment's name; default the FuncEnv's class name.
      max_steps: time limit (e.g. 500 for CartPole-v1); default none.
      env_params: the FuncEnv's params; default `func_env.default_params` (None for FuncEnvs
        whose methods take their defaults from a class, e.g. Gymnasium's CartPole).

    Returns:
      The `Environment`; `env.default_params` is a `FuncEnvParams`.
    """
    if max_steps is not None:
        base.check_param("from_funcenv", "max_steps", max_steps >= 1, ">= 1", max_steps)
    if env_params is None:
        env_params = getattr(func_env, "default_params", None)

    def kw(params: FuncEnvParams) -> dict:
        return {} if params.env_params is None else {"params": params.env_params}

    def reset(key, params):
        state = func_env.initial(rng=key, **kw(params))
        return func_env.observation(state, key, **kw(params)), state

    def step(key, state, action, params):
        next_state = func_env.transition(state, action, key, **kw(params))
        obs = func_env.observation(next_state, key, **kw(params))
        reward = func_env.reward(state, action, next_state, key, **kw(params))
        terminated = func_env.terminal(next_state, key, **kw(params))
        return (obs, next_state, jnp.asarray(reward, jnp.float32),
                jnp.asarray(terminated, jnp.bool_).reshape(()), {})

    params = FuncEnvParams(env_params, base.NO_TIME_LIMIT if max_steps is None else max_steps)
    return base.make_environment(
        name or type(func_env).__name__, base.Core(reset, step), params,
        func_env.observation_space, func_env.action_space, extras={})
