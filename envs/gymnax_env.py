"""gymnax environments as tdkit `Environment`s (optional extra: `pip install '.[gymnax]'`).

    env, params = envs.make("gymnax:Breakout-MinAtar")       # any gymnax id after "gymnax:"
    env, params = envs.make("gymnax:CartPole-v1", gravity=20.0, max_steps=200)
    env, params = make_gymnax("Breakout-MinAtar", use_minimal_action_set=False)

The `Core` is gymnax's `reset_env` / `step_env` (no automatic reset, no time limit) and
`envs.base.autoreset` adds tdkit's time limit `params.max_steps` (default: gymnax's
`max_steps_in_episode`), reported as `truncated`, never as `terminated`, with the true last
observation in `info["final_observation"]`. With the same key, `env.step` equals gymnax's own
auto-resetting `step` (the step key is split into step and reset keys the same way).

Time limits: since gymnax 1.0, `step_env` reports only true termination; gymnax applies the
time limit (`is_truncated`) in its auto-resetting `step`, which tdkit does not use. An
environment written in the gymnax 0.x style, whose `step_env` ends episodes at
`max_steps_in_episode` itself (its `is_terminal` includes `state.time >=
max_steps_in_episode`), is detected when it is made (one probe step at the last step of an
episode); its `step_env` and `reset_env` then get `max_steps_in_episode` set to
`envs.base.NO_TIME_LIMIT`, so tdkit's counter alone ends episodes at the limit.

Observations are float32 `[O...]` (MinAtar: `[10, 10, C]`), or int32 `[]` for gymnax's
`Discrete` observation spaces (FrozenLake); Gymnasium spaces: `observation_space` a `Box`
(or `Discrete`), `action_space` `Discrete(A)` with int32 scalar actions (checked and clipped
as in `envs.base.discrete_action`), or a float32 `Box` of shape `(A,)` for continuous-control
environments (float32 `[A]` actions, checked as in `envs.base.box_action`).

Params are a `GymnaxParams(env_params, max_steps)` NamedTuple: gymnax's params pytree and
tdkit's time limit; pass them as an argument, `jax.vmap` over them like tdkit's own.
gymnax is imported only when a gymnax environment is made.
"""

import dataclasses
import difflib
from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from envs import base

PREFIX = "gymnax:"
"""`envs.make` hands names starting with this prefix to `make_gymnax`."""

MIN_VERSION = (1, 0)


class GymnaxParams(NamedTuple):
    """Params of a gymnax environment in tdkit.

    Attributes:
      env_params: gymnax's params (a `flax.struct` dataclass pytree, e.g. CartPole's
        `EnvParams`), passed to `reset_env` / `step_env`.
      max_steps: tdkit's time limit (an episode is truncated after this many steps);
        `make_gymnax` sets it to gymnax's `max_steps_in_episode`.
    """

    env_params: Any
    max_steps: int


def _import_gymnax(name: str):
    try:
        import gymnax
    except ImportError as error:
        reason = "" if error.name == "gymnax" else f" ({type(error).__name__}: {error})"
        raise ImportError(
            f"envs.make({name!r}) needs gymnax: pip install '.[gymnax]'{reason}") from None
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("gymnax")
    except PackageNotFoundError:  # pragma: no cover  (a source checkout on the path)
        return gymnax
    major_minor = tuple(int(p) for p in installed.split(".")[:2] if p.isdigit())
    if major_minor < MIN_VERSION:
        raise ImportError(f"envs.make({name!r}) needs gymnax >= 1.0, found {installed}: "
                          f"pip install '.[gymnax]'")
    return gymnax


def _fields(params: Any) -> list[str]:
    if dataclasses.is_dataclass(params):
        return [f.name for f in dataclasses.fields(params)]
    return list(getattr(params, "_fields", ()))


def _replace(params: Any, **changes: Any) -> Any:
    if dataclasses.is_dataclass(params):
        return dataclasses.replace(params, **changes)
    return params._replace(**changes)


def _gym_space(space: Any, what: str, name: str) -> gymnasium.spaces.Space:
    """gymnax `Discrete` / `Box` -> Gymnasium `Discrete` / float32 `Box`."""
    kind = type(space).__name__
    if kind == "Discrete":
        return gymnasium.spaces.Discrete(int(space.n))
    if kind == "Box":
        shape = tuple(int(d) for d in space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return gymnasium.spaces.Box(low, high, shape, np.float32)
    raise ValueError(f"{name}: gymnax {what} space {space!r} is not supported (tdkit "
                     f"environments take one array: a Box or Discrete space)")


def _probe_time_limit_in_step(gymnax_env: Any, env_params: Any, max_steps: int,
                              action: Any) -> bool:
    """Whether `step_env` itself ends an episode at `max_steps_in_episode` (gymnax 0.x).

    Steps once from the reset state moved to time `max_steps - 1`, with gymnax's time limit
    and without it; a legacy environment is terminated only in the first case.
    """
    if "max_steps_in_episode" not in _fields(env_params):
        return False
    key = jax.random.key(0)
    _, state = gymnax_env.reset_env(key, env_params)
    if "time" not in _fields(state):
        return False
    state = _replace(state, time=jnp.asarray(max_steps - 1, jnp.asarray(state.time).dtype))
    no_limit = _replace(env_params, max_steps_in_episode=base.NO_TIME_LIMIT)

    @jax.jit
    def terminated(p):
        return jnp.asarray(gymnax_env.step_env(key, state, action, p)[3], jnp.bool_)

    return bool(terminated(env_params)) and not bool(terminated(no_limit))


def make_gymnax(env_id: str, **overrides: Any) -> tuple[base.Environment, GymnaxParams]:
    """Builds the tdkit `Environment` of the gymnax environment `env_id`.

    Args:
      env_id: a gymnax id (`gymnax.registered_envs`, e.g. `"Breakout-MinAtar"`,
        `"CartPole-v1"`); a `"gymnax:"` prefix is accepted.
      **overrides: fields of gymnax's params (e.g. `gravity=20.0`), `max_steps` (tdkit's
        time limit; `max_steps_in_episode` is the same setting under gymnax's name and also
        sets that field, which a few environments use in observations), and any other
        keyword is a constructor argument of the gymnax environment (e.g.
        `use_minimal_action_set=False` for MinAtar).

    Returns:
      `(env, params)`: the `Environment` (named `"gymnax:<id>"`; `env.extras["gymnax_env"]`
      is the gymnax environment object) and its `GymnaxParams` (`env.default_params`).

    Raises:
      ImportError: gymnax (>= 1.0) is not installed (one line naming the extra).
      ValueError: an unknown id (with close matches), an unknown option or a bad
        `max_steps`, or observation / action spaces tdkit cannot represent.
    """
    env_id = env_id.removeprefix(PREFIX)
    name = f"{PREFIX}{env_id}"
    gymnax = _import_gymnax(name)
    known = list(gymnax.registered_envs)
    if env_id not in known:
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(PREFIX + c) for c in close)}?" if close else ""
        raise ValueError(f"envs.make: unknown gymnax environment {env_id!r}.{hint} "
                         f"Known: {', '.join(known)}")

    limit = {k: overrides.pop(k) for k in ("max_steps", "max_steps_in_episode")
             if k in overrides}
    if len(set(limit.values())) > 1:
        raise ValueError(f"{name}: `max_steps` and `max_steps_in_episode` name the same time "
                         f"limit; got {limit['max_steps']!r} and "
                         f"{limit['max_steps_in_episode']!r}")
    gymnax_env, env_params = gymnax.make(env_id)
    field_names = _fields(env_params)
    constructor = {k: v for k, v in overrides.items() if k not in field_names}
    if constructor:
        try:
            gymnax_env, env_params = gymnax.make(env_id, **constructor)
        except TypeError as error:
            raise ValueError(
                f"{name}: unknown option(s) {sorted(constructor)}: not a params field "
                f"({', '.join(['max_steps'] + field_names)}) nor a constructor argument "
                f"of gymnax's {type(gymnax_env).__name__} ({error})") from None
    fields = {k: v for k, v in overrides.items() if k in field_names}

    default_limit = getattr(env_params, "max_steps_in_episode", base.NO_TIME_LIMIT)
    max_steps = next(iter(limit.values()), default_limit)
    base.check_param(
        name, "max_steps", isinstance(max_steps, (int, float, np.integer, np.floating))
        and not isinstance(max_steps, bool) and max_steps > 0
        and float(max_steps).is_integer(), "a positive integer", max_steps)
    max_steps = int(max_steps)
    if limit and "max_steps_in_episode" in field_names:
        fields["max_steps_in_episode"] = type(default_limit)(max_steps)
    env_params = _replace(env_params, **fields) if fields else env_params

    observation_space = _gym_space(gymnax_env.observation_space(env_params), "observation",
                                   name)
    action_space = _gym_space(gymnax_env.action_space(env_params), "action", name)
    discrete_obs = isinstance(observation_space, gymnasium.spaces.Discrete)
    obs_dtype = jnp.int32 if discrete_obs else jnp.float32

    if isinstance(action_space, gymnasium.spaces.Discrete):
        num_actions = int(action_space.n)

        def as_action(action):
            return base.discrete_action(f"{name}.step", action, num_actions)

        probe_action = jnp.int32(0)
    else:
        def as_action(action):
            return base.box_action(f"{name}.step", action, action_space.shape)

        probe_action = jnp.zeros(action_space.shape, jnp.float32)

    legacy = _probe_time_limit_in_step(gymnax_env, env_params, max_steps, probe_action)

    def gymnax_params(params: GymnaxParams) -> Any:
        if legacy:  # step_env must not end episodes at the time limit: tdkit does
            return _replace(params.env_params, max_steps_in_episode=base.NO_TIME_LIMIT)
        return params.env_params

    # The state dtypes that `step_env` returns: reset states (which may hold Python
    # scalars, weakly typed under jit) are cast to them, so that the state has one type
    # (one compilation; a valid `lax.scan` carry).
    key0 = jax.random.key(0)
    state_types = jax.eval_shape(
        lambda: gymnax_env.step_env(key0, gymnax_env.reset_env(key0, env_params)[1],
                                    probe_action, env_params)[1])

    def canonical(state):
        return jax.tree.map(lambda x, t: jnp.asarray(x, t.dtype), state, state_types)

    def reset(key, params: GymnaxParams):
        obs, state = gymnax_env.reset_env(key, gymnax_params(params))
        return jnp.asarray(obs, obs_dtype), canonical(state)

    def step(key, state, action, params: GymnaxParams):
        obs, state, reward, terminated, info = gymnax_env.step_env(
            key, state, as_action(action), gymnax_params(params))
        return (jnp.asarray(obs, obs_dtype), canonical(state),
                jnp.asarray(reward, jnp.float32), jnp.asarray(terminated, jnp.bool_),
                dict(info))

    params = GymnaxParams(env_params, max_steps)
    env = base.make_environment(
        name, base.Core(reset, step), params, observation_space, action_space,
        extras={"gymnax_id": env_id, "gymnax_env": gymnax_env,
                "time_limit_removed_from_step_env": legacy})
    return env, params
