"""Host adapter: any Gymnasium vector env -> batched `Transition`s with correct discounts.

`HostAdapter` wraps a Gymnasium 1.x vector env (`SyncVectorEnv`, `AsyncVectorEnv`, or a
vector wrapper around them), in any autoreset mode, and turns each `step(actions)` into a
fixed-shape batch of N transitions:

- `discount_t = gamma * (1 - terminated)`: zero only at termination; at truncation (a
  time limit) the transition keeps `gamma` and its `obs_t` is the TRUE final observation,
  never the reset observation.
- No transition spans two episodes. In `NEXT_STEP` mode (Gymnasium's default) the step
  after an episode end only resets that sub-env (its action is ignored); that entry is
  marked `valid=False` and must be skipped (`tdkit.replay` buffers take the mask:
  `buffer.add(state, step.transition, step.valid)`). In `SAME_STEP` and `DISABLED` modes
  every entry is valid (in `DISABLED` mode the adapter resets finished sub-envs itself).
- `next_obs` is what the agent acts on next (the reset observation after an episode end);
  it is separate from `transition.obs_t`.
- Returns and lengths of the episodes that ended at this step come back for logging.

Observations are numpy arrays of the observation space's dtype as JAX would store it
(`jax.dtypes.canonicalize_dtype`: float64 -> float32 and int64 -> int32 unless
`jax_enable_x64` is on); actions in `transition.a_tm1` likewise, rewards and discounts are
float32. Observation spaces: `Box`, `Discrete`, `MultiDiscrete`, `MultiBinary`. Actions:
integers `[N]` for `Discrete` (`[N, ...]` for `MultiDiscrete` / `MultiBinary`), floats
`[N, A]` for a continuous `Box` (e.g. `Pendulum-v1`, MuJoCo's `HalfCheetah-v5`): float32
from the agent, already inside the bounds; they are passed to Gymnasium in the space's float
dtype and never rescaled or clipped (with `check=True` an action outside is an error).

    env = make_host_env("CartPole-v1", num_envs=8, gamma=0.99, seed=0)
    obs = env.reset()                                   # [N, O...]
    step = env.step(actions)                            # actions [N] (or [N, A]) from the agent
    replay_state = buffer.add(replay_state, step.transition, step.valid)
    obs = step.next_obs
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

import gymnasium
import jax
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from envs.gym_factory import make_gym_vector_env
from tdkit.types import Transition

_OBS_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_INT_ACTION_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


class EpisodeStats(NamedTuple):
    """Episodes that ended at this step, one entry per sub-env.

    Attributes:
      finished: bool `[N]`, an episode of sub-env i ended (terminated or truncated).
      returns: float32 `[N]`, its undiscounted return (0 where not finished).
      lengths: int32 `[N]`, its number of transitions (0 where not finished).
    """

    finished: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray


class HostStep(NamedTuple):
    """What `HostAdapter.step` returns.

    Attributes:
      transition: `Transition` of numpy arrays with a leading `[N]`: `obs_tm1 [N, O...]`,
        `a_tm1 [N, ...]`, `r_t [N]` float32, `discount_t [N]` float32, `obs_t [N, O...]`
        (the true next observation, also at termination and truncation).
      valid: bool `[N]`; False only for the reset step of `NEXT_STEP` autoreset, whose
        transition spans two episodes and must be dropped.
      next_obs: `[N, O...]`, the observation to act on next.
      episodes: `EpisodeStats` of the episodes that ended at this step.
      info: the vector env's `info` dict of this step, unchanged.
    """

    transition: Transition
    valid: np.ndarray
    next_obs: np.ndarray
    episodes: EpisodeStats
    info: dict


def _canonical(dtype: Any) -> np.dtype:
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


class HostAdapter:
    """Wraps a Gymnasium vector env (or one plain `gymnasium.Env`) for TD learning.

    Args:
      env: a `gymnasium.vector.VectorEnv` whose `metadata["autoreset_mode"]` is set (as in
        `SyncVectorEnv` and `AsyncVectorEnv`), or a single `gymnasium.Env`, which is wrapped
        in a `SyncVectorEnv` with `SAME_STEP` autoreset (N = 1).
      gamma: the discount factor in [0, 1].
      seed: optional int; seeds the first `reset()` that gets no seed of its own (sub-env
        i gets `seed + i`) and the action space used by `random_actions()`.

    Attributes:
      env: the wrapped vector env.
      num_envs: N.
      autoreset_mode: the env's `gymnasium.vector.AutoresetMode`.
      single_observation_space, single_action_space: the spaces of one sub-env.
    """

    def __init__(self, env: Any, gamma: float, seed: int | None = None):
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (
                0.0 <= float(gamma) <= 1.0):
            raise ValueError(f"HostAdapter: `gamma` must be a number in [0, 1], got {gamma!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"HostAdapter: `seed` must be an int or None, got {seed!r}")
        if isinstance(env, gymnasium.Env):
            single = env
            env = SyncVectorEnv([lambda: single], autoreset_mode=AutoresetMode.SAME_STEP)
        if not isinstance(env, VectorEnv):
            raise ValueError(
                "HostAdapter: `env` must be a gymnasium.vector.VectorEnv or a gymnasium.Env, "
                f"got {type(env).__name__}")
        mode = env.metadata.get("autoreset_mode")
        if mode is None:
            raise ValueError(
                "HostAdapter: `env.metadata['autoreset_mode']` is not set; it must say which "
                "gymnasium.vector.AutoresetMode the vector env uses")
        obs_space = env.single_observation_space
        if not isinstance(obs_space, _OBS_SPACES):
            raise ValueError(
                "HostAdapter: the observation space must be one of Box, Discrete, "
                f"MultiDiscrete, MultiBinary, got {obs_space}")
        self.env = env
        self.gamma = float(gamma)
        self.num_envs = int(env.num_envs)
        self.autoreset_mode = AutoresetMode(mode)
        self.single_observation_space = obs_space
        self.single_action_space = env.single_action_space
        self._obs_dtype = _canonical(obs_space.dtype)
        self._action_dtype = _canonical(env.single_action_space.dtype)
        self._seed = seed
        if seed is not None:
            env.action_space.seed(seed)
        self._obs: np.ndarray | None = None
        self._reset_pending = np.zeros(self.num_envs, bool)  # NEXT_STEP: next step resets
        self._returns = np.zeros(self.num_envs, np.float64)
        self._lengths = np.zeros(self.num_envs, np.int64)
        # One sub-env of a SyncVectorEnv in SAME_STEP mode is stepped directly, with the
        # vector env's own calls in the same order (see `_step_single`).
        self._single = (env.envs[0] if type(env) is SyncVectorEnv and self.num_envs == 1
                        and self.autoreset_mode == AutoresetMode.SAME_STEP else None)
        self._obs_ndim = 1 + len(obs_space.shape or ())
        self._gamma32 = np.float32(self.gamma)
        self._env_action_dtype = env.action_space.dtype
        self._ones = _read_only(np.ones(1, bool))
        self._no_episode = EpisodeStats(finished=_read_only(np.zeros(1, bool)),
                                        returns=_read_only(np.zeros(1, np.float32)),
                                        lengths=_read_only(np.zeros(1, np.int32)))

    # ---------------------------------------------------------------------------- API

    def reset(self, seed: int | None = None, options: dict | None = None) -> np.ndarray:
        """Resets every sub-env and the episode counters.

        Args:
          seed: int or None; sub-env i is seeded with `seed + i`. If None, the adapter's
            `seed` is used on the first reset, and sub-envs continue their own RNG after.
          options: passed to the vector env's `reset`.

        Returns:
          The observations to act on, shape `[N, O...]`.
        """
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        obs, _ = self.env.reset(seed=seed, options=options)
        self._obs = self._cast_obs(obs)
        self._reset_pending[:] = False
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._obs.copy()

    def step(self, actions: Any, check: bool = True) -> HostStep:
        """Steps every sub-env once.

        Args:
          actions: `[N, ...]` array (numpy or JAX) in the single action space: integers for
            `Discrete` / `MultiDiscrete` / `MultiBinary`, floats for a float `Box`.
          check: validate `actions` (shape, dtype, range). A training loop whose agent
            produces actions of the right form by construction may pass False to save the
            checks on every step; the env then receives `actions` as they are.

        Returns:
          `HostStep(transition [N], valid [N], next_obs [N, O...], episodes, info)`.

        Raises:
          TypeError: `actions` has the wrong dtype kind for the action space.
          ValueError: `actions` has the wrong shape or an action is outside the space.
          RuntimeError: `reset()` was not called first.
        """
        if self._obs is None:
            raise RuntimeError("HostAdapter.step: call reset() before step()")
        env_actions = (self._check_actions(actions) if check
                       else np.asarray(actions).astype(self.env.action_space.dtype))
        if self._single is not None:
            return self._step_single(env_actions)
        obs, reward, terminated, truncated, info = self.env.step(env_actions)
        obs = self._cast_obs(obs)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool)
        ended = terminated | truncated
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            valid = ~self._reset_pending
            self._reset_pending = ended.copy()
        else:
            valid = np.ones(self.num_envs, bool)
        obs_t, next_obs = obs, obs
        if ended.any() and self.autoreset_mode == AutoresetMode.SAME_STEP:
            obs_t = obs.copy()
            final_obs, has_final = info.get("final_obs"), info.get("_final_obs")
            for i in np.flatnonzero(ended):
                if final_obs is None or has_final is None or not has_final[i]:
                    raise RuntimeError(
                        f"HostAdapter.step: sub-env {i} ended in SAME_STEP mode but "
                        "info['final_obs'] does not hold its final observation")
                obs_t[i] = np.asarray(final_obs[i], self._obs_dtype)
        elif ended.any() and self.autoreset_mode == AutoresetMode.DISABLED:
            reset_obs, _ = self.env.reset(options={"reset_mask": ended.copy()})
            next_obs = obs.copy()
            next_obs[ended] = self._cast_obs(reset_obs)[ended]
        reward = np.asarray(reward, np.float32)
        transition = Transition(
            obs_tm1=self._obs,
            a_tm1=np.asarray(env_actions).astype(self._action_dtype),
            r_t=reward,
            discount_t=(np.float32(self.gamma) * (1.0 - terminated)).astype(np.float32),
            obs_t=obs_t)
        self._returns += np.where(valid, reward, 0.0)
        self._lengths += valid
        finished = ended & valid
        episodes = EpisodeStats(
            finished=finished,
            returns=np.where(finished, self._returns, 0.0).astype(np.float32),
            lengths=np.where(finished, self._lengths, 0).astype(np.int32))
        self._returns[finished] = 0.0
        self._lengths[finished] = 0
        self._obs = next_obs
        return HostStep(transition, valid, next_obs.copy(), episodes, info)

    def _step_single(self, env_actions: np.ndarray) -> HostStep:
        """`step` of a one-env SyncVectorEnv in SAME_STEP mode (see `_step_single_into`)."""
        transitions, lasts = self.transition_block(1)
        next_obs, episodes, infos = self._step_single_into(env_actions, transitions, lasts, 0)
        transition = Transition(*(field[0] for field in transitions))
        return HostStep(transition, self._ones, next_obs.copy(),
                        episodes or self._no_episode, infos)

    def _step_single_into(self, env_actions: np.ndarray, transitions: Transition,
                          lasts: np.ndarray, k: int) -> tuple:
        """One step of the single sub-env, written into row k, without the vector env's
        per-step overhead: the sub-env gets the same calls in the same order (`step`, and
        `reset` after an episode end) and `info` is built with the vector env's own
        `_add_info`, so the result equals the general path's (tests compare them step by
        step). Returns `(next_obs, EpisodeStats or None, info)`."""
        vector_env = self.env
        obs, reward, terminated, truncated, env_info = self._single.step(env_actions[0])
        obs_tm1, a_tm1, r_t, discount_t, obs_t = transitions
        obs_tm1[k] = self._obs
        a_tm1[k] = env_actions
        reward = np.float32(reward)  # the vector env's float64 reward, cast as in `step`
        r_t[k] = reward
        discount_t[k] = 0.0 if terminated else self._gamma32
        obs_t = obs_t[k]
        obs_t[0] = obs
        self._returns[0] += reward
        self._lengths[0] += 1
        infos = {}
        lasts[k] = ended = terminated or truncated
        if ended:
            infos = vector_env._add_info(infos, {"final_obs": obs, "final_info": env_info}, 0)
            obs, env_info = self._single.reset()
            self._obs = np.array(obs, dtype=self._obs_dtype, ndmin=self._obs_ndim)
            episodes = EpisodeStats(finished=np.ones(1, bool),
                                    returns=self._returns.astype(np.float32),
                                    lengths=self._lengths.astype(np.int32))
            self._returns[0] = 0.0
            self._lengths[0] = 0
        else:
            self._obs = obs_t
            episodes = None
        if env_info:
            infos = vector_env._add_info(infos, env_info, 0)
        return self._obs, episodes, infos

    def transition_block(self, num_steps: int) -> tuple[Transition, np.ndarray]:
        """Empty arrays for `num_steps` steps of the N envs, for `step_into`.

        Returns:
          `(transitions, lasts)`: a `Transition` of numpy arrays with a leading `[K, N]`
          (dtypes as in `step`) and bool `lasts [K, N]`.
        """
        shape = (num_steps, self.num_envs)
        obs_shape = shape + tuple(self.single_observation_space.shape or ())
        action_shape = shape + tuple(self.single_action_space.shape or ())
        return Transition(
            obs_tm1=np.empty(obs_shape, self._obs_dtype),
            a_tm1=np.empty(action_shape, self._action_dtype),
            r_t=np.empty(shape, np.float32), discount_t=np.empty(shape, np.float32),
            obs_t=np.empty(obs_shape, self._obs_dtype)), np.empty(shape, bool)

    def step_into(self, actions: np.ndarray, transitions: Transition, lasts: np.ndarray,
                  k: int) -> tuple[np.ndarray, EpisodeStats | None]:
        """`step`, writing the transitions into row k of a `transition_block` instead.

        For training loops that hand K steps at a time to the agent: the rows need no
        per-step arrays and no stacking. Row k gets exactly `step`'s `transition` and
        `episodes.finished` (the `lasts`). Actions are not checked (`check=False`), and the
        env's `info` is not returned.

        `next_obs` may be a view of `transitions.obs_t[k]`, and the next call reads the
        previous observation from there: do not write into a block's rows (or reuse it)
        while its steps are still being taken.

        Args:
          actions: `[N, ...]` numpy actions of the right dtype and range.
          transitions, lasts: arrays from `transition_block(K)`.
          k: the row, `0 <= k < K`.

        Returns:
          `(next_obs [N, O...], episodes)`; `episodes` is the `EpisodeStats` of this step
          if an episode ended, else None.

        Raises:
          ValueError: the adapter is in `NEXT_STEP` autoreset mode (whose reset steps are
            not transitions).
        """
        if self._single is None:
            if self.autoreset_mode == AutoresetMode.NEXT_STEP:
                raise ValueError("HostAdapter.step_into needs SAME_STEP or DISABLED autoreset")
            step = self.step(actions, check=False)
            for block, row in zip(transitions, step.transition, strict=True):
                block[k] = row
            lasts[k] = step.episodes.finished
            return step.next_obs, step.episodes if step.episodes.finished.any() else None
        if self._obs is None:
            raise RuntimeError("HostAdapter.step_into: call reset() before step_into()")
        next_obs, episodes, _ = self._step_single_into(
            actions.astype(self._env_action_dtype), transitions, lasts, k)
        return (next_obs.copy() if episodes is not None else next_obs), episodes

    def random_actions(self) -> np.ndarray:
        """Uniformly random actions `[N, ...]` (seeded by `seed`), in the canonical dtype."""
        return np.asarray(self.env.action_space.sample()).astype(self._action_dtype)

    def close(self) -> None:
        """Closes the vector env (and its worker processes)."""
        self.env.close()

    def __enter__(self) -> "HostAdapter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------------------- helpers

    def _cast_obs(self, obs: Any) -> np.ndarray:
        return np.array(obs, dtype=self._obs_dtype, copy=True)

    def _check_actions(self, actions: Any) -> np.ndarray:
        """Validates `actions` against the single action space; returns the env's array."""
        fn = "HostAdapter.step"
        space = self.single_action_space
        arr = np.asarray(actions)
        want_shape = (self.num_envs,) + tuple(space.shape or ())
        if arr.shape != want_shape:
            raise ValueError(
                f"{fn}: argument `actions` must have shape {want_shape} (one action per "
                f"sub-env, N={self.num_envs}, for {space}), got {arr.shape}")
        is_int_space = isinstance(space, _INT_ACTION_SPACES) or (
            isinstance(space, spaces.Box) and np.dtype(space.dtype).kind in "iu")
        if is_int_space and arr.dtype.kind not in "iu":
            raise TypeError(
                f"{fn}: argument `actions` must have an integer dtype for {space}, "
                f"got {arr.dtype}")
        if isinstance(space, spaces.Box) and not is_int_space and arr.dtype.kind != "f":
            raise TypeError(
                f"{fn}: argument `actions` must have a float dtype for {space}, "
                f"got {arr.dtype}")
        outside = self._outside(space, arr)
        if outside.any():
            bad = np.flatnonzero(outside)
            raise ValueError(
                f"{fn}: argument `actions` is outside the action space {space} for "
                f"sub-env(s) {bad.tolist()}: {arr[bad].tolist()}")
        return arr.astype(self.env.action_space.dtype)

    def _outside(self, space: spaces.Space, arr: np.ndarray) -> np.ndarray:
        """bool `[N]`: the action of sub-env i is not in `space`."""
        axes = tuple(range(1, arr.ndim))
        if isinstance(space, spaces.Discrete):
            return (arr < space.start) | (arr >= space.start + space.n)
        if isinstance(space, spaces.MultiDiscrete):
            bad = (arr < space.start) | (arr >= space.start + space.nvec)
            return bad.any(axis=axes) if axes else bad
        if isinstance(space, spaces.MultiBinary):
            bad = (arr != 0) & (arr != 1)
            return bad.any(axis=axes) if axes else bad
        if isinstance(space, spaces.Box):
            with np.errstate(invalid="ignore"):
                inside = (arr >= space.low) & (arr <= space.high)
            return ~inside.all(axis=axes) if axes else ~inside
        return np.array([not space.contains(a) for a in arr])


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def make_host_env(
    env_id: str,
    num_envs: int,
    gamma: float,
    asynchronous: bool = False,
    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    context: str | None = "spawn",
    *,
    wrappers: Sequence[Any] = (),
    **env_kwargs: Any,
) -> HostAdapter:
    """Builds N copies of a Gymnasium env and wraps them in a `HostAdapter`.

    The vector env comes from `envs.gym_factory.make_gym_vector_env`, the factory that also
    makes the envs of evaluation and video, so the spaces agree.

    Args:
      env_id: a registered id, e.g. "CartPole-v1" (tdkit ids work unprefixed:
        "RandomWalk-v0"; "module:Env-v0" imports `module` first).
      num_envs: N, a positive int.
      gamma: the discount factor in [0, 1].
      asynchronous: one worker process per sub-env (`AsyncVectorEnv`) instead of stepping
        them in turn in this process (`SyncVectorEnv`).
      autoreset_mode: defaults to `SAME_STEP`, where every step yields N valid
        transitions; `NEXT_STEP` (Gymnasium's default) wastes one step per episode end
        (marked `valid=False`); `DISABLED` makes the adapter reset finished sub-envs.
      seed: seeds the first `reset()` (sub-env i gets `seed + i`) and `random_actions()`.
      max_episode_steps: optional time limit (truncation) replacing the registered one.
      context: multiprocessing start method for `asynchronous=True`. "spawn" (default) is
        safe with JAX's threads, unlike "fork"; scripts then need the usual
        `if __name__ == "__main__":` guard.
      wrappers: Gymnasium wrappers applied in order to each sub-env: strings
        `[module.]Name[:key=value,...]` (as given to `--wrapper`), `WrapperSpec`s or
        callables `env -> env` (see `envs.gym_factory`).
      **env_kwargs: passed to `gymnasium.make`.

    Returns:
      A `HostAdapter`; call `reset()` before `step()`, and `close()` when done.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs <= 0:
        raise ValueError(f"make_host_env: `num_envs` must be a positive int, got {num_envs!r}")
    vector_env = make_gym_vector_env(
        env_id, num_envs, wrappers=wrappers, autoreset_mode=autoreset_mode,
        vectorization_mode="async" if asynchronous else "sync", context=context,
        max_episode_steps=max_episode_steps, **env_kwargs)
    try:
        return HostAdapter(vector_env, gamma, seed=seed)
    except ValueError:
        vector_env.close()
        raise
