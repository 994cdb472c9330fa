"""The adapter for Gymnasium's functional JAX environments (`FuncEnv`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.envs.phys2d.cartpole import CartPoleFunctional, CartPoleParams
from gymnasium.envs.phys2d.pendulum import PendulumFunctional

import envs


def test_adapted_cartpole_follows_the_funcenv_step_for_step():
    func_env = CartPoleFunctional()
    env = envs.from_funcenv(func_env, max_steps=500)
    params = env.default_params
    assert env.num_actions == 2 and env.observation_shape == (4,)
    key = jax.random.key(0)
    obs, state = env.reset(key, params)
    # Oracle: the FuncEnv's own functions called directly.
    fe_state = func_env.initial(rng=key)
    np.testing.assert_array_equal(obs, func_env.observation(fe_state, key))
    step = jax.jit(lambda k, s, a: env.step(k, s, a, params))
    for t in range(40):
        action = jnp.int32(t % 3 == 0)
        obs, state, reward, terminated, truncated, info = step(jax.random.key(t), state, action)
        expected = func_env.transition(fe_state, action, None)
        np.testing.assert_allclose(info["final_observation"], expected, rtol=1e-6, atol=1e-7)
        assert bool(terminated) == bool(func_env.terminal(expected, None))
        assert float(reward) == float(func_env.reward(fe_state, action, expected, None))
        assert reward.dtype == jnp.float32 and terminated.dtype == jnp.bool_
        fe_state = expected
        if terminated:
            assert not np.array_equal(obs, info["final_observation"])  # reset
            break
        np.testing.assert_array_equal(obs, info["final_observation"])
    assert terminated, "the episode should end within 40 steps of this policy"


def test_adapted_funcenv_time_limit_and_vmapped_rollout():
    env = envs.from_funcenv(CartPoleFunctional(), name="phys2d/CartPole", max_steps=3)
    assert env.name == "phys2d/CartPole"
    traj = jax.jit(lambda k: envs.random_rollout(
        env, k, env.default_params, num_envs=8, num_steps=9))(jax.random.key(1))
    trunc = np.asarray(traj.truncated)
    np.testing.assert_array_equal(trunc[[2, 5, 8]], True)  # every 3 steps, in all 8 envs
    assert trunc.sum() == 3 * 8
    assert not np.asarray(traj.terminated).any()


def test_explicit_funcenv_params_can_be_vmapped():
    env = envs.from_funcenv(CartPoleFunctional(), env_params=CartPoleParams(), max_steps=500)
    params = env.default_params
    stacked = jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v) for v in x]), params,
                           params._replace(env_params=CartPoleParams(gravity=30.0)))
    traj = jax.jit(jax.vmap(lambda p: envs.random_rollout(
        env, jax.random.key(0), p, num_envs=2, num_steps=10)))(stacked)
    assert not np.allclose(traj.obs[0], traj.obs[1])


def test_box_action_funcenv():
    env = envs.from_funcenv(PendulumFunctional(), max_steps=200)
    assert env.num_actions is None
    traj = jax.jit(lambda k: envs.random_rollout(
        env, k, env.default_params, num_envs=4, num_steps=5))(jax.random.key(0))
    assert np.isfinite(np.asarray(traj.reward)).all()


def test_invalid_max_steps():
    with pytest.raises(ValueError, match="max_steps"):
        envs.from_funcenv(CartPoleFunctional(), max_steps=0)
