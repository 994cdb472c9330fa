"""A tdkit JAX environment as a `gymnasium.Env` with NumPy observations.

`gymnasium.make("tdkit/<Name>-v0")` builds one of these (see `envs.registration`). The
wrapper steps the environment's `Core` (no automatic reset: Gymnasium users call `reset`
after an episode ends; time limits come from Gymnasium's `TimeLimit` wrapper, which
`gymnasium.make` adds for the classic-control ids).

Actions are validated, and an invalid one raises `InvalidActionError` (a
`gymnasium.error.InvalidAction` and a `ValueError`):

- `Discrete` action space: an integer scalar of any integer type (Python `int`, `np.int64`, a
  0-d integer array) inside the space; a float, a bool or an array with more than one
  element is rejected.
- `Box` action space of shape `(A,)` (continuous control, e.g. `Pendulum-v1`): a float array
  of shape `(A,)` (any float dtype, e.g. a list of floats or `action_space.sample()`)
  inside the bounds, passed on as the space's dtype (float32); an integer or bool dtype,
  another shape, NaN or a value outside the bounds is rejected. Nothing is rescaled.
"""

from typing import Any

import gymnasium
import jax
import numpy as np

from envs import base


class InvalidActionError(gymnasium.error.InvalidAction, ValueError):
    """An action outside the action space or of the wrong dtype."""


class GymnasiumEnv(gymnasium.Env):
    """`gymnasium.Env` around a tdkit `Environment` (host side, one environment).

    Args:
      env: the tdkit environment.
      params: its params; default `env.default_params`.
      render_mode: None or `"rgb_array"` (for environments with a renderer).
    """

    def __init__(self, env: base.Environment, params: Any = None,
                 render_mode: str | None = None):
        self.env = env
        self.params = env.default_params if params is None else params
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.metadata = {
            "render_modes": ["rgb_array"] if env.render is not None else [],
            "render_fps": env.render_fps,
        }
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"{env.name}: `render_mode` must be one of {self.metadata['render_modes']} "
                f"or None, got {render_mode!r}")
        self.render_mode = render_mode
        self._key = None
        self._state = None

        def reset(key, params):
            key, key_reset = jax.random.split(key)
            obs, state = env.core.reset(key_reset, params)
            return key, obs, state

        def step(key, state, action, params):
            key, key_step = jax.random.split(key)
            obs, state, reward, terminated, info = env.core.step(key_step, state, action, params)
            return key, obs, state, reward, terminated, info

        self._reset = jax.jit(reset)
        self._step = jax.jit(step)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Starts an episode; returns `(obs, info)` with a NumPy observation."""
        super().reset(seed=seed)
        key = jax.random.key(int(self.np_random.integers(0, 2**31 - 1)))
        self._key, obs, self._state = self._reset(key, self.params)
        return self._to_numpy(obs), {}

    def step(self, action: Any):
        """Takes `action`; returns `(obs, reward, terminated, truncated=False, info)`."""
        if self._state is None:
            raise gymnasium.error.ResetNeeded(f"{self.env.name}: call reset() before step()")
        action = self._validate(action)
        self._key, obs, self._state, reward, terminated, info = self._step(
            self._key, self._state, action, self.params)
        info = {k: np.asarray(v) for k, v in info.items()}
        return self._to_numpy(obs), float(reward), bool(terminated), False, info

    def render(self):
        """uint8 `[H, W, 3]` image of the current state when `render_mode="rgb_array"`."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                f"{self.env.name}: render() called without a render_mode; "
                "pass render_mode='rgb_array' to gymnasium.make")
            return None
        if self._state is None:
            raise gymnasium.error.ResetNeeded(f"{self.env.name}: call reset() before render()")
        return self.env.render(self._state, self.params)

    def close(self):
        """Releases the renderer."""
        close = getattr(self.env.render, "close", None)
        if close is not None:
            close()
        super().close()

    def _validate(self, action: Any) -> np.ndarray:
        space = self.action_space
        if isinstance(space, gymnasium.spaces.Box) and np.dtype(space.dtype).kind == "f":
            return self._validate_box(action, space)
        if not isinstance(space, gymnasium.spaces.Discrete):
            action = np.asarray(action, space.dtype)
            if action not in space:
                raise InvalidActionError(f"{self.env.name}: action {action!r} not in {space}")
            return action
        array = np.asarray(action)
        if isinstance(action, (bool, np.bool_)) or array.dtype.kind not in "iu":
            raise InvalidActionError(
                f"{self.env.name}: action must be an integer in [0, {space.n - 1}] "
                f"(a {space}), got {action!r} of dtype {array.dtype}")
        if array.shape != ():
            raise InvalidActionError(
                f"{self.env.name}: action must be a scalar integer, got shape {array.shape}")
        value = int(array.reshape(()))
        if not space.start <= value < space.start + space.n:
            raise InvalidActionError(
                f"{self.env.name}: action {value} is outside the action space {space}")
        return np.int32(value)

    def _validate_box(self, action: Any, space: gymnasium.spaces.Box) -> np.ndarray:
        shape = tuple(space.shape)
        try:
            array = np.asarray(action)
        except (TypeError, ValueError) as error:  # ragged lists and the like
            raise InvalidActionError(
                f"{self.env.name}: action must be a float array of shape {shape} (a {space}), "
                f"got {action!r}") from error
        if array.dtype.kind != "f":
            raise InvalidActionError(
                f"{self.env.name}: action must be a float array of shape {shape} (a {space}), "
                f"got {action!r} of dtype {array.dtype}")
        if array.shape != shape:
            raise InvalidActionError(
                f"{self.env.name}: action must have shape {shape} (a {space}), got shape "
                f"{array.shape}")
        array = array.astype(space.dtype)
        with np.errstate(invalid="ignore"):
            inside = np.all((array >= space.low) & (array <= space.high))
        if not inside:
            raise InvalidActionError(
                f"{self.env.name}: action {array.tolist()} is outside the action space {space}")
        return array

    def _to_numpy(self, obs: Any) -> Any:
        if isinstance(self.observation_space, gymnasium.spaces.Discrete):
            return np.int64(obs)
        return np.array(obs, dtype=self.observation_space.dtype)
