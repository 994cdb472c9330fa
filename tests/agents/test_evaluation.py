"""Tests for agents.evaluation: greedy evaluation through the env factory, with wrappers, and
the one-line error for an environment the agent was not built for.

Expected returns and lengths come from a plain loop over a single Gymnasium env."""

import sys
import types

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces

from agents import registry
from agents.base import Agent
from agents.evaluation import evaluate, gymnasium_id, record_video
from envs.gym_factory import gym_spaces


def constant_agent(action: int = 0, seen_shapes: list | None = None) -> Agent:
    """Always `action`; records the observation shapes `act` is traced with."""

    def act(key, state, obs, evaluation=False):
        if seen_shapes is not None:
            seen_shapes.append(tuple(obs.shape))
        return jnp.full(obs.shape[:1], action, jnp.int32)

    return Agent(init=None, act=act, update=None, name="constant", default_hparams={})


def reference_episodes(env_id: str, episodes: int, seed: int, action: int = 0):
    """(returns, lengths) of `episodes` episodes of one env, reset with `seed` first."""
    env = gymnasium.make(env_id)
    returns, lengths = [], []
    env.reset(seed=seed)
    for _ in range(episodes):
        total, length, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(action)
            total, length, done = total + reward, length + 1, terminated or truncated
        returns.append(total)
        lengths.append(length)
        env.reset()
    env.close()
    return returns, lengths


def test_evaluate_matches_a_single_env_loop():
    result = evaluate(constant_agent(), None, "CartPole-v1", episodes=3, seed=4, num_envs=1)
    returns, lengths = reference_episodes("CartPole-v1", 3, seed=4)
    assert result["env_id"] == "CartPole-v1" and result["episodes"] == 3
    assert result["lengths"] == lengths and result["returns"] == returns
    assert result["mean_return"] == pytest.approx(np.mean(returns))


def test_evaluate_applies_the_wrappers_to_what_the_agent_sees_and_to_rewards():
    seen: list = []
    wrappers = ["FrameStackObservation:stack_size=3", "ClipReward:max_reward=0.5"]
    result = evaluate(constant_agent(seen_shapes=seen), None, "CartPole-v1", episodes=3,
                      seed=4, num_envs=1, wrappers=wrappers,
                      expected_spaces=gym_spaces("CartPole-v1", wrappers))
    _, lengths = reference_episodes("CartPole-v1", 3, seed=4)
    assert seen == [(1, 3, 4)]
    assert result["lengths"] == lengths
    assert result["returns"] == [0.5 * n for n in lengths]


def test_evaluate_maps_tdkit_ids():
    result = evaluate(constant_agent(), None, "RandomWalk-v0", episodes=2, num_envs=2)
    assert result["env_id"] == gymnasium_id("RandomWalk-v0") == "tdkit/RandomWalk-v0"
    assert result["episodes"] == 2


def test_evaluate_on_an_incompatible_env_is_a_one_line_error():
    cartpole = gym_spaces("CartPole-v1")
    with pytest.raises(ValueError) as info:
        evaluate(constant_agent(), None, "MountainCar-v0", episodes=1,
                 expected_spaces=cartpole)
    assert str(info.value) == (
        "cannot evaluate on 'MountainCar-v0': the agent was trained with observation space "
        "Box(shape=(4,), dtype=float32) and action space Discrete(2), this environment has "
        "observation space Box(shape=(2,), dtype=float32) and action space Discrete(3)")
    # A wrapper that changes the observation space, not used in training, is caught too.
    with pytest.raises(ValueError, match=(
            r"^cannot evaluate on 'CartPole-v1' with wrappers \['FlattenObservation', "
            r"'FrameStackObservation:stack_size=2'\]: .* this environment has observation "
            r"space Box\(shape=\(2, 4\), dtype=float32\)")):
        evaluate(constant_agent(), None, "CartPole-v1", episodes=1, expected_spaces=cartpole,
                 wrappers=["FlattenObservation", "FrameStackObservation:stack_size=2"])


def test_evaluate_errors_for_bad_input():
    with pytest.raises(ValueError, match="episodes"):
        evaluate(constant_agent(), None, "CartPole-v1", episodes=0)
    with pytest.raises(ValueError, match="unknown Gymnasium environment 'CartPol-v1'"):
        evaluate(constant_agent(), None, "CartPol-v1", episodes=1)
    with pytest.raises(ValueError, match="--wrapper 'Nope': unknown wrapper"):
        evaluate(constant_agent(), None, "CartPole-v1", episodes=1, wrappers=["Nope"])


def test_evaluate_a_dqn_agent_built_for_the_wrapped_spaces():
    wrappers = ["FrameStackObservation:stack_size=2", "FlattenObservation"]
    obs_space, act_space = gym_spaces("CartPole-v1", wrappers)
    spec = registry.get("dqn")
    agent = spec.build(obs_space, act_space, registry.make_config(spec))
    state = agent.init(jax.random.key(0), np.zeros(obs_space.shape, np.float32), 1)
    result = evaluate(agent, state, "CartPole-v1", episodes=2, num_envs=2, wrappers=wrappers,
                      expected_spaces=(obs_space, act_space))
    assert result["episodes"] == 2 and all(n >= 1 for n in result["lengths"])


def test_record_video_renders_the_wrapped_env(monkeypatch, tmp_path):
    # moviepy and the mp4 writer are stand-ins: the test checks which env is recorded.
    recorded = {}

    class FakeRecordVideo(gymnasium.Wrapper):
        def __init__(self, env, video_folder, episode_trigger=None, disable_logger=False):
            super().__init__(env)
            recorded.update(folder=video_folder, frames=0, inner=env)

        def step(self, action):
            result = self.env.step(action)
            recorded["frames"] += int(self.env.render() is not None)
            return result

    monkeypatch.setitem(sys.modules, "moviepy", types.ModuleType("moviepy"))
    monkeypatch.setattr(gymnasium.wrappers, "RecordVideo", FakeRecordVideo)
    seen: list = []
    record_video(constant_agent(seen_shapes=seen), None, "CartPole-v1", str(tmp_path), seed=4,
                 wrappers=["FrameStackObservation:stack_size=3"])
    _, lengths = reference_episodes("CartPole-v1", 1, seed=4)
    assert seen == [(1, 3, 4)] and recorded["frames"] == lengths[0]
    assert recorded["folder"] == str(tmp_path)
    assert recorded["inner"].observation_space.shape == (3, 4)
    assert recorded["inner"].render_mode == "rgb_array"


def test_record_video_without_moviepy_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # import fails
    with pytest.raises(RuntimeError, match="pip install moviepy"):
        record_video(constant_agent(), None, "CartPole-v1", str(tmp_path))


def test_record_video_passes_box_actions_as_arrays(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "moviepy", types.ModuleType("moviepy"))
    monkeypatch.setattr(gymnasium.wrappers, "RecordVideo", lambda env, *args, **kwargs: env)
    actions = []

    class RecordActions(gymnasium.Wrapper):
        def step(self, action):
            actions.append(action)
            return self.env.step(action)

    def act(key, state, obs, evaluation=False):
        return jnp.full((obs.shape[0], 1), 0.25, jnp.float32)

    agent = Agent(init=None, act=act, update=None, name="quarter", default_hparams={})
    record_video(agent, None, "Pendulum-v1", str(tmp_path),
                 wrappers=["TimeLimit:max_episode_steps=3", RecordActions])
    assert isinstance(gym_spaces("Pendulum-v1")[1], spaces.Box) and len(actions) == 3
    for action in actions:
        np.testing.assert_array_equal(action, np.array([0.25], np.float32))
