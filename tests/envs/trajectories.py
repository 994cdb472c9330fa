"""Shared by the tests of the JAX twins of Gymnasium environments."""

import jax


def jax_trajectory(env, params, key, actions):
    """Runs `env.step` over `actions` `[T]` (or `[T, A]`); returns the state before each step
    and the step's outputs."""

    def body(state, inputs):
        key_t, action = inputs
        obs, next_state, reward, terminated, truncated, info = env.step(
            key_t, state, action, params)
        return next_state, (state, obs, reward, terminated, truncated, info["final_observation"])

    _, state = env.reset(key, params)
    keys = jax.random.split(key, actions.shape[0])
    _, out = jax.jit(lambda s: jax.lax.scan(body, s, (keys, actions)))(state)
    return jax.device_get(out)
