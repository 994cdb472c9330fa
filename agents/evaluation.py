"""Greedy evaluation of a trained agent on a Gymnasium environment (on the host).

Environments come from `envs.gym_factory`, the factory that also makes the training envs, so
the same `wrappers` give the same spaces in training, evaluation and video.
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from agents.base import Agent, AgentState
from envs.gym_factory import (
    describe_space,
    make_gym_env,
    make_gym_vector_env,
    resolve_gym_id,
    spaces_compatible,
)

gymnasium_id = resolve_gym_id
"""Alias of `envs.gym_factory.resolve_gym_id` (`RandomWalk-v0` -> `tdkit/RandomWalk-v0`)."""


def check_spaces(env_id: str, expected_spaces: tuple[spaces.Space, spaces.Space],
                 observation_space: spaces.Space, action_space: spaces.Space,
                 wrappers: Sequence[Any] = ()) -> None:
    """Raises a one-line ValueError unless an agent built for `expected_spaces` (its
    `(observation_space, action_space)`) can act on an env with these spaces (see
    `envs.gym_factory.spaces_compatible`; Box bounds may differ)."""
    expected_obs, expected_act = expected_spaces
    if spaces_compatible(expected_obs, observation_space) and spaces_compatible(
            expected_act, action_space):
        return
    with_wrappers = f" with wrappers {[str(w) for w in wrappers]}" if wrappers else ""
    raise ValueError(
        f"cannot evaluate on {env_id!r}{with_wrappers}: the agent was trained with "
        f"observation space {describe_space(expected_obs)} and action space "
        f"{describe_space(expected_act)}, this environment has observation space "
        f"{describe_space(observation_space)} and action space {describe_space(action_space)}")


def evaluate(agent: Agent, state: AgentState, env_id: str, episodes: int, seed: int = 0,
             num_envs: int = 100, video_dir: str | None = None, *,
             wrappers: Sequence[Any] = (),
             expected_spaces: tuple[spaces.Space, spaces.Space] | None = None
             ) -> dict[str, Any]:
    """Runs `episodes` greedy episodes of `agent` on Gymnasium's `env_id`.

    Args:
      agent: the `Agent`.
      state: ONE agent state (no seed axis); `agent.act(..., evaluation=True)` picks actions.
      env_id: a Gymnasium id (tdkit ids are mapped with `resolve_gym_id`).
      episodes: number of episodes, > 0.
      seed: seed of the environments' resets.
      num_envs: environments stepped together (a vector env with SAME_STEP autoreset; at
        most `episodes`: 100 classic-control episodes take one pass of 100 envs).
      video_dir: if given, also records the first episode as an mp4 into this folder
        (needs moviepy).
      wrappers: Gymnasium wrappers applied to each env, in order, as in training (strings
        `[module.]Name[:key=value,...]`, `WrapperSpec`s or callables; see
        `envs.gym_factory`).
      expected_spaces: optional `(observation_space, action_space)` the agent was built
        for; an env whose spaces differ raises a one-line ValueError before any step.

    Returns:
      `{"env_id", "episodes", "returns": [E], "lengths": [E], "mean_return", "std_return",
      "mean_length"}`.

    Raises:
      ValueError: `episodes <= 0`, an unknown env id or wrapper, or spaces that differ
        from `expected_spaces`.
    """
    if episodes <= 0:
        raise ValueError(f"evaluate: `episodes` must be > 0, got {episodes}")
    gym_id = resolve_gym_id(env_id)
    num_envs = min(num_envs, episodes)
    env = make_gym_vector_env(gym_id, num_envs, wrappers=wrappers,
                              autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        if expected_spaces is not None:
            check_spaces(env_id, expected_spaces, env.single_observation_space,
                         env.single_action_space, wrappers)
        act = jax.jit(lambda key, state, obs: agent.act(key, state, obs, evaluation=True))
        quota = [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]
        returns, lengths = [], []
        running_return = np.zeros(num_envs)
        running_length = np.zeros(num_envs, np.int64)
        done_count = np.zeros(num_envs, np.int64)
        obs, _ = env.reset(seed=seed)
        key = jax.random.key(seed)
        while (done_count < quota).any():
            key, k_act = jax.random.split(key)
            action = np.asarray(act(k_act, state, obs))
            obs, reward, terminated, truncated, _ = env.step(action)
            running_return += reward
            running_length += 1
            for i in np.flatnonzero(terminated | truncated):
                if done_count[i] < quota[i]:
                    returns.append(float(running_return[i]))
                    lengths.append(int(running_length[i]))
                done_count[i] += 1
                running_return[i] = 0.0
                running_length[i] = 0
    finally:
        env.close()
    if video_dir is not None:
        record_video(agent, state, gym_id, video_dir, seed, wrappers=wrappers)
    return {
        "env_id": gym_id, "episodes": len(returns), "returns": returns, "lengths": lengths,
        "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
    }


def record_video(agent: Agent, state: AgentState, gym_id: str, video_dir: str,
                 seed: int = 0, *, wrappers: Sequence[Any] = ()) -> None:
    """Records one greedy episode to `video_dir` with Gymnasium's RecordVideo (moviepy).

    The env is `make_gym_env(gym_id, wrappers=wrappers, render_mode="rgb_array")` (the
    agent sees what it sees in training), with `RecordVideo` outermost.
    """
    try:
        import moviepy  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            "--video needs moviepy: pip install moviepy (or pip install '.[video]')") from error
    from gymnasium.wrappers import RecordVideo

    env = RecordVideo(
        make_gym_env(gym_id, wrappers=wrappers, render_mode="rgb_array"), video_dir,
        episode_trigger=lambda episode: episode == 0, disable_logger=True)
    discrete = isinstance(env.action_space, spaces.Discrete)
    act = jax.jit(lambda key, state, obs: agent.act(key, state, obs, evaluation=True))
    try:
        obs, _ = env.reset(seed=seed)
        key = jax.random.key(seed)
        done = False
        while not done:
            key, k_act = jax.random.split(key)
            action = np.asarray(act(k_act, state, np.asarray(obs)[None]))[0]
            obs, _, terminated, truncated, _ = env.step(int(action) if discrete else action)
            done = terminated or truncated
    finally:
        env.close()
