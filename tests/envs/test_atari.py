"""Atari through `envs.atari.AtariNature`: the observations against a frame-by-frame oracle on
the plain ALE env, frame skip and no-ops, the `--wrapper` string, lazy ALE registration, the
one-line messages without ale-py / OpenCV, and a short DQN run on the host loop."""

import json
import os
import subprocess
import sys

import gymnasium
import numpy as np
import pytest

pytest.importorskip("ale_py")
cv2 = pytest.importorskip("cv2")

import envs  # noqa: E402
from envs import atari, gym_factory  # noqa: E402

GAME = "PongNoFrameskip-v4"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _frame(screens):
    """The Nature frame by hand: the max of the last two grayscale screens (one after a
    reset), resized to 84 x 84 (area interpolation)."""
    return cv2.resize(np.max(screens, axis=0), (84, 84), interpolation=cv2.INTER_AREA)


def test_observations_are_uint8_stacks_of_max_pooled_frames_every_4th_frame():
    env = gym_factory.make_gym_env(GAME, wrappers=["envs.atari.AtariNature:noop_max=0"])
    plain = gymnasium.make(GAME)  # frameskip 1, no sticky actions: deterministic
    assert env.observation_space == gymnasium.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    assert env.action_space == plain.action_space == gymnasium.spaces.Discrete(6)
    obs, info = env.reset(seed=3)
    plain.reset(seed=3)
    ale = plain.unwrapped.ale
    assert info["episode_frame_number"] == 0  # noop_max=0: no no-ops
    first = _frame([ale.getScreenGrayscale()])
    frames = [first] * 4  # after a reset the stack repeats the first frame
    actions = np.random.default_rng(0).integers(0, 6, 300)
    rewards = []
    for t, action in enumerate(actions):
        assert obs.dtype == np.uint8 and obs.shape == (84, 84, 4) and obs.flags.c_contiguous
        np.testing.assert_array_equal(obs, np.stack(frames, axis=-1))
        obs, reward, terminated, truncated, info = env.step(action)
        expected_reward, screens = 0.0, []
        for _ in range(4):  # the action repeated on 4 frames, the last two max-pooled
            _, r, _, _, _ = plain.step(action)
            expected_reward += r
            screens = (screens + [ale.getScreenGrayscale()])[-2:]
        frames = frames[1:] + [_frame(screens)]
        assert reward == expected_reward
        assert info["episode_frame_number"] == 4 * (t + 1)
        assert not (terminated or truncated)
        rewards.append(reward)
    assert -1.0 in rewards  # the opponent scored: rewards are Pong's own
    env.close()
    plain.close()


def test_no_ops_after_reset_last_1_to_noop_max_frames():
    env = gym_factory.make_gym_env(GAME, wrappers=["envs.atari.AtariNature"])  # noop_max=30
    counts = {env.reset(seed=seed)[1]["episode_frame_number"] for seed in range(40)}
    assert counts <= set(range(1, 31)) and len(counts) > 10
    env.close()


def test_stack_size_screen_size_and_clipped_rewards():
    env = gym_factory.make_gym_env(
        GAME, wrappers=["envs.atari.AtariNature:stack_size=2,screen_size=42,clip_rewards=true"])
    assert env.observation_space.shape == (42, 42, 2)
    assert env.reset(seed=0)[0].shape == (42, 42, 2)
    clip = env.env.func  # TransformReward(np.sign), outermost inside AtariNature
    assert [clip(r) for r in (7.0, 1.0, 0.0, -4.0)] == [1.0, 1.0, 0.0, -1.0]
    env.close()


def test_wrapper_string_resolves_and_records_the_chain():
    spec = envs.parse_wrapper("envs.atari.AtariNature:clip_rewards=true,noop_max=10")
    assert spec.target == "envs.atari.AtariNature" and spec.resolve() is atari.AtariNature
    assert dict(spec.kwargs) == {"clip_rewards": True, "noop_max": 10}
    assert envs.parse_wrapper(str(spec)) == spec
    with pytest.raises(ValueError, match="AtariNature takes no argument 'frame_stack'"):
        envs.parse_wrapper("envs.atari.AtariNature:frame_stack=4")
    observation_space, action_space = envs.gym_spaces(GAME, ["envs.atari.AtariNature"])
    assert observation_space.shape == (84, 84, 4) and observation_space.dtype == np.uint8
    # Training and evaluation envs (vector envs of the same factory) see the same spaces.
    vector = envs.make_gym_vector_env(GAME, 2, wrappers=["envs.atari.AtariNature"])
    assert vector.single_observation_space == observation_space
    assert vector.reset(seed=0)[0].shape == (2, 84, 84, 4)
    vector.close()
    # The env's spec lists Gymnasium's wrappers in order: gymnasium.make rebuilds it.
    env = envs.make_gym_env(GAME, wrappers=["envs.atari.AtariNature"])
    names = [w.name for w in env.spec.additional_wrappers]
    assert names == ["AtariPreprocessing", "FrameStackObservation", "StackAxisLast"]
    rebuilt = gymnasium.make(env.spec)
    assert rebuilt.observation_space == env.observation_space
    env.close()
    rebuilt.close()


def test_ale_v5_ids_skip_frames_themselves():
    with pytest.raises(ValueError, match=r"'ALE/Pong-v5' already skips frames \(frameskip=4\); "
                                         r"use 'PongNoFrameskip-v4'"):
        envs.make_gym_env("ALE/Pong-v5", wrappers=["envs.atari.AtariNature"])
    with pytest.raises(ValueError, match="expected an ALE"):
        envs.make_gym_env("CartPole-v1", wrappers=["envs.atari.AtariNature"])
    # Made without frame skipping (sticky actions stay on): the Nature chain applies.
    env = envs.make_gym_env("ALE/Pong-v5", frameskip=1, wrappers=["envs.atari.AtariNature"])
    env.reset(seed=0)
    assert env.step(0)[4]["episode_frame_number"] > 0
    assert env.observation_space.shape == (84, 84, 4)
    env.close()
    # frame_skip=1 keeps ALE's own skip of 4 frames per step.
    env = envs.make_gym_env("ALE/Pong-v5",
                            wrappers=["envs.atari.AtariNature:frame_skip=1,noop_max=0"])
    env.reset(seed=0)
    assert [env.step(0)[4]["episode_frame_number"] for _ in range(3)] == [4, 8, 12]
    env.close()


def test_ale_ids_are_registered_on_first_use():
    code = ("import gymnasium\nfrom envs import gym_factory\n"
            "assert 'ALE/Pong-v5' not in gymnasium.registry\n"
            "print(gym_factory.resolve_gym_id('ALE/Pong-v5'), "
            "gym_factory.resolve_gym_id('BreakoutNoFrameskip-v4'), "
            "gym_factory.resolve_gym_id('Pong-v4'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ALE/Pong-v5", "BreakoutNoFrameskip-v4", "Pong-v4"]


def test_without_ale_py_atari_ids_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # `import ale_py` raises ImportError
    for env_id, spec in list(gymnasium.registry.items()):  # as if never registered
        if str(spec.entry_point).startswith("ale_py"):
            monkeypatch.delitem(gymnasium.registry, env_id)
    for env_id in ("ALE/Pong-v5", "PongNoFrameskip-v4", "BreakoutDeterministic-v4"):
        message = (f"environment '{env_id}' needs ale-py (Atari): pip install 'tdkit[atari]' "
                   "(or pip install '.[atari]')")
        for make, args in ((envs.make_gym_env, ()), (envs.gym_spaces, ()),
                           (envs.make_host_env, (2, 0.99))):
            with pytest.raises(gym_factory.MissingDependencyError) as error:
                make(env_id, *args)
            assert str(error.value) == message
    envs.make_gym_env("CartPole-v1").close()  # other ids do not need it


def test_without_opencv_the_wrapper_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ValueError, match=r"AtariNature needs OpenCV: pip install "
                                         r"'tdkit\[atari\]'") as error:
        envs.make_gym_env(GAME, wrappers=["envs.atari.AtariNature"])
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_dqn_with_the_nature_cnn_trains_and_evaluates_on_pong(tmp_path):
    """A host-loop smoke run: the replay keeps the uint8 frames, the learner sees float32."""
    from agents import dqn
    from agents import run as run_lib

    wrappers = ["envs.atari.AtariNature"]
    config = run_lib.RunConfig(
        agent="dqn", env=GAME, backend="gym", wrappers=wrappers, total_steps=300,
        chunk_steps=300, num_envs=1, eval_episodes=1, out=str(tmp_path / "run"),
        agent_config={"buffer_size": 500, "batch_size": 32, "learning_starts": 100,
                      "train_every": 4, "target_period": 10, "hidden_sizes": [512],
                      "layer_norm": False, "loss": "huber"})
    plan = run_lib.Plan(config)
    assert plan.observation_space.shape == (84, 84, 4)
    assert dqn.resolve_torso(plan.agent_config.torso, plan.observation_space.shape) == "nature"
    summary = run_lib.train(config, progress=False)
    assert summary["backend"] == "gym" and summary["steps"] == 300
    rows = run_lib.read_metrics(tmp_path / "run" / "metrics.csv")
    assert np.isfinite(float(rows[-1]["loss"]))  # 50 gradient steps after 100 transitions
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["wrappers"] == wrappers
    evaluation = summary["evaluation"]
    assert evaluation["env_id"] == GAME and evaluation["episodes"] == 1
    member = evaluation["members"][0]
    assert -21.0 <= member["mean_return"] <= 21.0 and member["mean_length"] > 100
