"""Greedy evaluation of a trained agent on a Gymnasium environment (on the host)."""

from typing import Any

import gymnasium
import jax
import numpy as np

from agents.base import Agent, AgentState


def gymnasium_id(env_id: str) -> str:
    """The Gymnasium id to evaluate on: Gymnasium's own id when it exists (`CartPole-v1`),
    else tdkit's registration (`tdkit/RandomWalk-v0`)."""
    if env_id in gymnasium.envs.registry:
        return env_id
    import envs  # noqa: F401  (registers the tdkit/ ids)

    return env_id if env_id.startswith("tdkit/") else f"tdkit/{env_id}"


def evaluate(agent: Agent, state: AgentState, env_id: str, episodes: int, seed: int = 0,
             num_envs: int = 10, video_dir: str | None = None) -> dict[str, Any]:
    """Runs `episodes` greedy episodes of `agent` on Gymnasium's `env_id`.

    Args:
      agent: the `Agent`.
      state: ONE agent state (no seed axis); `agent.act(..., evaluation=True)` picks actions.
      env_id: a Gymnasium id (tdkit ids are mapped with `gymnasium_id`).
      episodes: number of episodes, > 0.
      seed: seed of the environments' resets.
      num_envs: environments stepped together (a vector env with SAME_STEP autoreset).
      video_dir: if given, also records the first episode as an mp4 into this folder
        (needs moviepy).

    Returns:
      `{"env_id", "episodes", "returns": [E], "lengths": [E], "mean_return", "std_return",
      "mean_length"}`.
    """
    if episodes <= 0:
        raise ValueError(f"evaluate: `episodes` must be > 0, got {episodes}")
    gym_id = gymnasium_id(env_id)
    num_envs = min(num_envs, episodes)
    env = gymnasium.make_vec(
        gym_id, num_envs=num_envs, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP})
    act = jax.jit(lambda key, state, obs: agent.act(key, state, obs, evaluation=True))
    quota = [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]
    returns, lengths = [], []
    running_return = np.zeros(num_envs)
    running_length = np.zeros(num_envs, np.int64)
    done_count = np.zeros(num_envs, np.int64)
    obs, _ = env.reset(seed=seed)
    key = jax.random.key(seed)
    try:
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
        record_video(agent, state, gym_id, video_dir, seed)
    return {
        "env_id": gym_id, "episodes": len(returns), "returns": returns, "lengths": lengths,
        "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
    }


def record_video(agent: Agent, state: AgentState, gym_id: str, video_dir: str,
                 seed: int = 0) -> None:
    """Records one greedy episode to `video_dir` with Gymnasium's RecordVideo (moviepy)."""
    try:
        import moviepy  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            "--video needs moviepy: pip install moviepy (or pip install '.[video]')") from error
    env = gymnasium.wrappers.RecordVideo(
        gymnasium.make(gym_id, render_mode="rgb_array"), video_dir,
        episode_trigger=lambda episode: episode == 0, disable_logger=True)
    act = jax.jit(lambda key, state, obs: agent.act(key, state, obs, evaluation=True))
    obs, _ = env.reset(seed=seed)
    key = jax.random.key(seed)
    done = False
    while not done:
        key, k_act = jax.random.split(key)
        action = int(np.asarray(act(k_act, state, np.asarray(obs)[None]))[0])
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    env.close()
