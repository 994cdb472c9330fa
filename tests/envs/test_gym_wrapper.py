"""The Gymnasium form: action validation, seeding, rendering."""

import gymnasium
import numpy as np
import pytest

import envs
from envs.gym_wrapper import GymnasiumEnv, InvalidActionError


@pytest.fixture(scope="module")
def cartpole():
    env = gymnasium.make("tdkit/CartPole-v1")
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("action", [2, -1, np.int64(5)])
def test_out_of_range_action_raises(cartpole, action):
    with pytest.raises(InvalidActionError, match="outside the action space"):
        cartpole.step(action)


@pytest.mark.parametrize("action", [1.0, np.float32(0.0), True, "1", None])
def test_wrong_dtype_action_raises(cartpole, action):
    with pytest.raises(InvalidActionError, match="must be an integer"):
        cartpole.step(action)


def test_non_scalar_action_raises(cartpole):
    with pytest.raises(InvalidActionError, match="scalar"):
        cartpole.step(np.array([1]))


def test_invalid_action_error_is_gymnasiums_and_a_value_error():
    assert issubclass(InvalidActionError, gymnasium.error.InvalidAction)
    assert issubclass(InvalidActionError, ValueError)


def test_integer_actions_of_any_integer_type_are_accepted(cartpole):
    for action in (1, np.int64(0), np.uint8(1), np.array(0, np.int32)):
        cartpole.reset(seed=0)
        cartpole.step(action)


def test_seeded_reset_is_reproducible_and_seeds_differ():
    env = gymnasium.make("tdkit/Acrobot-v1")
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    c, _ = env.reset(seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_step_before_reset_raises():
    env = GymnasiumEnv(envs.make("CliffWalking-v0")[0])
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(0)


@pytest.mark.parametrize("env_id,shape", [
    ("tdkit/WindyGridworld-v0", (224, 320, 3)),
    ("tdkit/CliffWalking-v0", (128, 384, 3)),
    ("tdkit/CartPole-v1", (400, 600, 3)),
    ("tdkit/MountainCar-v0", (400, 600, 3)),
    ("tdkit/Acrobot-v1", (500, 500, 3)),
])
def test_rgb_array_render(env_id, shape):
    env = gymnasium.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == shape and image.dtype == np.uint8
    assert image.min() < image.max()
    env.close()


def test_render_mode_is_rejected_where_there_is_no_renderer():
    with pytest.raises(ValueError, match="render_mode"):
        gymnasium.make("tdkit/RandomWalk-v0", render_mode="rgb_array")
