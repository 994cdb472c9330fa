"""Gymnasium registration: ids, `make` routes, unknown ids, `check_env` on every id."""

import os
import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs

IDS = [f"tdkit/{name}" for name in envs.names()]
# Gymnasium's own CartPole-v1 has the same infinite velocity bounds and the same warnings;
# its own Pendulum-v1 gets the same advice about the [-2, 2] torque bounds.
_EXPECTED_WARNINGS = ("A Box observation space minimum value is -infinity",
                      "A Box observation space maximum value is infinity",
                      "we recommend using a symmetric and normalized space")


def test_every_environment_is_registered_with_gymnasiums_versions():
    for env_id in IDS:
        assert env_id in gymnasium.registry
    assert "tdkit/CartPole-v1" in gymnasium.registry
    assert "tdkit/MountainCar-v0" in gymnasium.registry
    assert "tdkit/Acrobot-v1" in gymnasium.registry
    assert gymnasium.spec("tdkit/CartPole-v1").max_episode_steps == 500
    assert gymnasium.spec("tdkit/MountainCar-v0").max_episode_steps == 200
    assert gymnasium.spec("tdkit/Acrobot-v1").max_episode_steps == 500
    assert gymnasium.spec("tdkit/RandomWalk-v0").max_episode_steps is None


def test_registering_twice_is_harmless():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        envs.register_gymnasium_envs()
        gymnasium.register_envs(envs)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id):
    env = gymnasium.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    unexpected = [str(w.message) for w in caught
                  if not any(e in str(w.message) for e in _EXPECTED_WARNINGS)]
    assert unexpected == []
    env.close()


def test_make_returns_numpy_observations():
    env = gymnasium.make("tdkit/CartPole-v1")
    obs, info = env.reset(seed=0)
    assert type(obs) is np.ndarray and obs.dtype == np.float32 and obs.shape == (4,)
    obs, reward, terminated, truncated, info = env.step(1)
    assert type(obs) is np.ndarray and type(reward) is float
    assert type(terminated) is bool and type(truncated) is bool
    env = gymnasium.make("tdkit/RandomWalk-v0", num_states=19, left_reward=-1.0)
    obs, _ = env.reset(seed=0)
    assert type(obs) is np.int64 and obs == 10
    assert env.observation_space == gymnasium.spaces.Discrete(21)


def test_gymnasium_time_limit_truncates_mountain_car_at_200():
    env = gymnasium.make("tdkit/MountainCar-v0")
    env.reset(seed=0)
    for t in range(200):
        _, _, terminated, truncated, _ = env.step(1)  # no push: never reaches the goal
        assert not terminated
        assert truncated == (t == 199)


def test_unknown_id_lists_close_matches():
    with pytest.raises(gymnasium.error.NameNotFound, match="Did you mean: `RandomWalk`"):
        gymnasium.make("tdkit/RandomWalkk-v0")
    with pytest.raises(ValueError, match="'CartPole-v1'"):
        envs.make("CartPol-v1")


def test_make_accepts_the_namespace_prefix_and_overrides():
    env, params = envs.make("tdkit/WindyGridworld-v0", king_moves=True, stochastic_wind=True)
    assert env.name == "WindyGridworld-v0" and env.num_actions == 8
    assert env.extras["stochastic_wind"]
    env, params = envs.make("RandomWalk19-v0")
    assert env.name == "RandomWalk19-v0" and params.left_reward == -1.0


@pytest.mark.slow
def test_module_prefixed_id_works_without_importing_envs_and_tdkit_does_not_import_envs():
    code = (
        "import sys, gymnasium\n"
        "import tdkit\n"
        "assert 'envs' not in sys.modules, 'import tdkit imported envs'\n"
        "env = gymnasium.make('envs:tdkit/RandomWalk-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "assert obs == 3, obs\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
