"""The functional environment API: `reset(key, params)` and `step(key, state, action, params)`.

An `Environment` is a NamedTuple of pure functions plus metadata. Its `reset` and `step` take
the arguments of gymnax environments (`reset(key, params)`, `step(key, state, action, params)`),
and `step` returns Gymnasium's split of `done` into `terminated` and `truncated`:

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

`step` resets automatically: when an episode ends (`terminated` or `truncated`), the returned
`obs` and `state` already belong to the next episode and `info["final_observation"]` holds the
true last observation of the finished one (it equals `obs` on every other step). Truncation
(the time limit `params.max_steps`, counted in `state.time`) is reported as `truncated`, never
as `terminated`, so a TD target bootstraps from `info["final_observation"]` at a time limit.

Everything runs under `jax.jit`, `jax.vmap` (over keys, states, actions and over params: params
are a pytree of static-shape values) and `jax.lax.scan`. Close over the `Environment`; pass
`params` as an argument.

Dtypes: rewards float32, `terminated`/`truncated` bool, observations float32 for continuous
environments and int32 scalars (the state index) for tabular ones. Actions:

- `Discrete(A)` action space: an integer scalar `[]`; another dtype or rank is rejected at
  trace time (chex `AssertionError`), an out-of-range value is clipped into `[0, A - 1]`.
- `Box` action space of shape `(A,)` (continuous control, e.g. `Pendulum-v1`): a float32
  `[A]` (any float dtype is cast to float32); an integer or bool dtype, another rank or
  another shape is rejected at trace time (chex `AssertionError` naming `action`). The
  environment applies its own dynamics to the value (Pendulum clips the torque into its
  bounds, as Gymnasium does); nothing rescales actions: an agent whose policy outputs
  `[-1, 1]` rescales into the space's bounds itself.
"""

import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from tdkit import _checks

Array = chex.Array
PRNGKey = chex.PRNGKey

NO_TIME_LIMIT = 2**31 - 1
"""The `max_steps` default of environments without a time limit (never reached in practice)."""


class State(NamedTuple):
    """State of an `Environment`: the environment's own state plus the episode step counter.

    Attributes:
      env_state: the environment's state pytree (e.g. `CartPoleState`); `[N, ...]` when vmapped.
      time: int32 `[]`, steps taken in the current episode (0 right after a reset).
    """

    env_state: Any
    time: Array


class Core(NamedTuple):
    """The dynamics of one environment, without time limit and without automatic reset.

    Attributes:
      reset: `reset(key, params) -> (obs, env_state)`.
      step: `step(key, env_state, action, params) -> (obs, env_state, reward, terminated, info)`,
        where `obs` is the observation of the new state and `info` a dict of arrays with the same
        structure on every step.
      reset_uses_key, step_uses_key: whether the function draws random numbers. The automatic
        reset splits the step key in two only when both do (saving a split per step for
        environments with deterministic dynamics or a fixed start state).
    """

    reset: Callable[..., tuple[Any, Any]]
    step: Callable[..., tuple[Any, Any, Array, Array, dict]]
    reset_uses_key: bool = True
    step_uses_key: bool = True


class Environment(NamedTuple):
    """A functional environment: pure `reset`/`step` plus what is needed to use them.

    Attributes:
      name: registry name, e.g. `"CartPole-v1"`.
      reset: `reset(key, params) -> (obs, state)`; `obs` `[O...]`, `state` a `State`.
      step: `step(key, state, action, params) -> (obs, state, reward, terminated, truncated,
        info)` with automatic reset; `reward` float32 `[]`, `terminated`/`truncated` bool `[]`,
        `info["final_observation"]` `[O...]` the observation before any reset.
      default_params: the params pytree (a NamedTuple with a `max_steps` field).
      observation_space: Gymnasium space of one observation.
      action_space: Gymnasium space of one action: `Discrete(A)` (an int `[]`) or, for
        continuous control, `Box` of shape `(A,)` (a float32 `[A]`).
      core: the `Core` dynamics (no time limit, no reset); the Gymnasium wrapper uses them.
      extras: environment constants for experiments, e.g. `num_states`, `true_values`,
        `feature_matrix`, `behaviour_probs`; see each environment's docstring.
      render: `render(env_state, params) -> uint8 [H, W, 3]` on the host, or None.
      render_fps: frames per second advertised to Gymnasium.
    """

    name: str
    reset: Callable[..., tuple[Any, State]]
    step: Callable[..., tuple[Any, State, Array, Array, Array, dict]]
    default_params: Any
    observation_space: gymnasium.spaces.Space
    action_space: gymnasium.spaces.Space
    core: Core
    extras: Mapping[str, Any]
    render: Callable[[Any, Any], np.ndarray] | None = None
    render_fps: int = 30

    @property
    def num_actions(self) -> int | None:
        """`A` for a `Discrete(A)` action space, else None."""
        if isinstance(self.action_space, gymnasium.spaces.Discrete):
            return int(self.action_space.n)
        return None

    @property
    def action_shape(self) -> tuple[int, ...]:
        """The shape of one action: `()` for `Discrete(A)`, `(A,)` for a `Box` space."""
        return tuple(self.action_space.shape or ())

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """`O...`, the shape of one observation (`()` for a tabular state index)."""
        return tuple(self.observation_space.shape)

    @property
    def observation_dtype(self) -> np.dtype:
        """The observation dtype: float32, or int32 for a tabular state index."""
        if isinstance(self.observation_space, gymnasium.spaces.Discrete):
            return np.dtype(np.int32)
        return np.dtype(self.observation_space.dtype)


def autoreset(core: Core) -> tuple[Callable, Callable]:
    """Builds the time-limited, automatically resetting `reset` and `step` from a `Core`.

    The step counter `State.time` counts steps since the last reset; an episode is truncated
    when it reaches `params.max_steps` (as Gymnasium's `TimeLimit`: `truncated` may be True
    together with `terminated` on the same step).

    Args:
      core: the dynamics.

    Returns:
      `(reset, step)` with the signatures documented on `Environment`.
    """

    def reset(key: PRNGKey, params: Any) -> tuple[Any, State]:
        obs, env_state = core.reset(key, params)
        return obs, State(env_state, jnp.zeros((), jnp.int32))

    def step(key: PRNGKey, state: State, action: Array, params: Any):
        if core.reset_uses_key and core.step_uses_key:
            key_step, key_reset = jax.random.split(key)
        else:  # at most one of them draws random numbers: no need to split
            key_step = key_reset = key
        obs_st, env_state_st, reward, terminated, info = core.step(
            key_step, state.env_state, action, params)
        time = state.time + 1
        terminated = jnp.asarray(terminated, jnp.bool_)
        truncated = time >= params.max_steps
        done = jnp.logical_or(terminated, truncated)
        obs_re, env_state_re = core.reset(key_reset, params)
        env_state = jax.tree.map(
            lambda re, st: jnp.where(done, re, st), env_state_re, env_state_st)
        obs = jax.tree.map(lambda re, st: jnp.where(done, re, st), obs_re, obs_st)
        info = dict(info)
        info["final_observation"] = obs_st
        time = jnp.where(done, jnp.zeros_like(time), time)
        return (obs, State(env_state, time), jnp.asarray(reward, jnp.float32), terminated,
                truncated, info)

    return reset, step


def make_environment(
    name: str,
    core: Core,
    default_params: Any,
    observation_space: gymnasium.spaces.Space,
    action_space: gymnasium.spaces.Space,
    extras: Mapping[str, Any] | None = None,
    render: Callable[[Any, Any], np.ndarray] | None = None,
    render_fps: int = 30,
) -> Environment:
    """Wraps a `Core` into an `Environment` with time limit and automatic reset.

    Args:
      name: registry name.
      core: the dynamics.
      default_params: params pytree with a `max_steps` field.
      observation_space: space of one observation.
      action_space: space of one action.
      extras: environment constants (stored as a read-only mapping).
      render: host renderer `render(env_state, params) -> uint8 [H, W, 3]`, or None.
      render_fps: frames per second for Gymnasium.

    Returns:
      The `Environment`.
    """
    if not hasattr(default_params, "max_steps"):
        raise ValueError(f"make_environment: `default_params` of {name} must have `max_steps`")
    reset, step = autoreset(core)
    return Environment(
        name=name, reset=reset, step=step, default_params=default_params,
        observation_space=observation_space, action_space=action_space, core=core,
        extras=types.MappingProxyType(dict(extras or {})), render=render,
        render_fps=render_fps)


def discrete_action(fn: str, action: Array, num_actions: int) -> Array:
    """Checks a discrete action at trace time and clips it into `[0, num_actions - 1]`.

    Args:
      fn: name of the calling function, for the error message.
      action: int `[]`; a float, bool or non-scalar action raises a chex `AssertionError`.
      num_actions: `A`.

    Returns:
      int32 `[]`, the clipped action.
    """
    _checks.assert_inputs(fn, action=(action, 0, int))
    return jnp.clip(jnp.asarray(action, jnp.int32), 0, num_actions - 1)


def box_action(fn: str, action: Array, action_shape: tuple[int, ...]) -> Array:
    """Checks a continuous (`Box`) action at trace time and returns it as float32.

    No clipping or rescaling: the environment's dynamics decide what to do with values
    outside the bounds (Pendulum clips the torque, as Gymnasium does).

    Args:
      fn: name of the calling function, for the error message.
      action: float `[A]`; an integer or bool dtype, another rank or another shape raises a
        chex `AssertionError` naming `action`.
      action_shape: `(A,)`, the shape of the action space.

    Returns:
      float32 `[A]`, the action.
    """
    _checks.assert_inputs(fn, action=(action, len(action_shape), float))
    chex.assert_shape(
        action, tuple(action_shape),
        custom_message=f"{fn}: argument `action` must have shape {tuple(action_shape)}")
    return jnp.asarray(action, jnp.float32)


def uniform_index(key: PRNGKey, n: int | Array) -> Array:
    """A uniform int32 `[]` in `[0, n)` from ONE draw of random bits (cheaper than `randint`).

    `floor(u * n)` for a float32 `u ~ U[0, 1)`: each value has probability `1 / n` up to the
    float32 resolution of `u` (2^-24), which is negligible for the small `n` of tabular
    environments.
    """
    u = jax.random.uniform(key, (), jnp.float32)
    return jnp.minimum(jnp.floor(u * n).astype(jnp.int32), n - 1)


def check_param(name: str, arg: str, ok: bool, expected: str, got: Any) -> None:
    """Raises `ValueError` naming the environment, the argument and what was expected."""
    if not ok:
        raise ValueError(f"{name}: `{arg}` must be {expected}, got {got!r}")


class TabularModel(NamedTuple):
    """The exact dynamics of a tabular environment under its default params (for DP).

    Attributes:
      transition: float64 `[S, A, S]`, `P(s' | s, a)`; rows of terminal states are zero.
      reward: float64 `[S, A]`, expected reward of taking `a` in `s`.
      terminal: bool `[S]`, terminal states (entering one ends the episode).
    """

    transition: np.ndarray
    reward: np.ndarray
    terminal: np.ndarray


def policy_values(model: TabularModel, policy: np.ndarray, gamma: float) -> np.ndarray:
    """Solves `v = r_pi + gamma P_pi v` exactly (NumPy, float64), with `v = 0` at terminals.

    Args:
      model: the tabular dynamics.
      policy: float `[S, A]` action probabilities (or `[A]`, the same in every state).
      gamma: discount in [0, 1]; with gamma = 1 every state must reach a terminal state.

    Returns:
      float64 `[S]`, the state values of `policy`.
    """
    num_states, num_actions, _ = model.transition.shape
    policy = np.broadcast_to(np.asarray(policy, np.float64), (num_states, num_actions))
    p_pi = np.einsum("sa,sat->st", policy, model.transition)
    r_pi = np.einsum("sa,sa->s", policy, model.reward)
    live = ~model.terminal
    p_pi = p_pi * live[:, None] * live[None, :]
    a = np.eye(num_states) - gamma * p_pi
    return np.where(live, np.linalg.solve(a, np.where(live, r_pi, 0.0)), 0.0)


class RolloutStats(NamedTuple):
    """Every step of `random_rollout(..., return_trajectory=True)`, leading axes `[T, N]`."""

    obs: Any
    reward: Array
    terminated: Array
    truncated: Array
    final_observation: Any


class RolloutSummary(NamedTuple):
    """Totals of `random_rollout(..., return_trajectory=False)`, each float32 or int32 `[N]`.

    `obs_checksum` (the sum of all observation entries) depends on every step, so XLA cannot
    skip any of the simulation when only the summary is used (as in a benchmark).
    """

    total_reward: Array
    num_episodes: Array
    obs_checksum: Array


def random_action(key: PRNGKey, action_space: gymnasium.spaces.Space, shape: tuple) -> Array:
    """Uniform random actions from a `Discrete` or `Box` space, shape `[*shape, *action_shape]`."""
    if isinstance(action_space, gymnasium.spaces.Discrete):
        start = int(action_space.start)
        return jax.random.randint(key, shape, start, start + int(action_space.n), jnp.int32)
    if isinstance(action_space, gymnasium.spaces.Box):
        return jax.random.uniform(
            key, tuple(shape) + tuple(action_space.shape), jnp.float32,
            jnp.asarray(action_space.low), jnp.asarray(action_space.high))
    raise ValueError(f"random_action: unsupported action space {action_space}")


def random_rollout(
    env: Environment,
    key: PRNGKey,
    params: Any,
    num_envs: int,
    num_steps: int,
    return_trajectory: bool = True,
) -> RolloutStats | RolloutSummary:
    """Runs `num_envs` copies of `env` for `num_steps` steps with a uniform random policy.

    One `jax.lax.scan` over time of a `jax.vmap` over environments; jit the call (with
    `num_envs`, `num_steps` and `return_trajectory` static) to run it fast.

    Args:
      env: the environment.
      key: PRNG key.
      params: shared params of all `N` environments.
      num_envs: `N`.
      num_steps: `T`.
      return_trajectory: return every step (`RolloutStats`, leading axes `[T, N]`) if True,
        else only per-environment totals (`RolloutSummary`, `[N]`; cheaper).

    Returns:
      `RolloutStats` or `RolloutSummary`.
    """
    key_reset, key_step, key_act = jax.random.split(key, 3)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key_reset, num_envs), params)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    # All keys and actions are drawn up front (two RNG calls instead of several per step).
    step_keys = jax.random.split(key_step, (num_steps, num_envs))
    actions = random_action(key_act, env.action_space, (num_steps, num_envs))

    def obs_sum(obs):
        leaves = jax.tree.leaves(obs)
        return sum(jnp.sum(x.reshape(num_envs, -1).astype(jnp.float32), axis=1) for x in leaves)

    def body(carry, inputs):
        state, summary = carry
        keys, action = inputs
        obs, state, reward, terminated, truncated, info = step(keys, state, action, params)
        if return_trajectory:
            return (state, summary), RolloutStats(
                obs, reward, terminated, truncated, info["final_observation"])
        summary = RolloutSummary(
            summary.total_reward + reward,
            summary.num_episodes + (terminated | truncated).astype(jnp.int32),
            summary.obs_checksum + obs_sum(obs))
        return (state, summary), None

    zeros = jnp.zeros((num_envs,), jnp.float32)
    summary0 = RolloutSummary(zeros, jnp.zeros((num_envs,), jnp.int32), zeros)
    (_, summary), traj = jax.lax.scan(body, (state, summary0), (step_keys, actions))
    return traj if return_trajectory else summary
