"""Each tabular environment's `extras["model"]` (NumPy) against its JAX step, sampled.

The model is written separately from the JAX dynamics, so agreement checks both: for every
non-terminal state and action, the empirical next-state distribution and mean reward of the
JAX `core.step` over many keys match `transition[s, a]` and `reward[s, a]`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

NUM_KEYS = 4000

CASES = [
    ("RandomWalk-v0", {}),
    ("RandomWalk19-v0", {}),
    ("RandomWalk-v0", {"p_right": 0.3, "left_reward": -2.0}),
    ("BoyanChain-v0", {}),
    ("BairdCounterexample-v0", {}),
    ("WindyGridworld-v0", {}),
    ("WindyGridworld-v0", {"king_moves": True, "stay_action": True, "stochastic_wind": True}),
    ("CliffWalking-v0", {}),
    ("MaximizationBias-v0", {}),
]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_model_matches_sampled_jax_dynamics(name, kwargs):
    env, params = envs.make(name, **kwargs)
    model = env.extras["model"]
    num_states, num_actions = env.extras["num_states"], env.num_actions
    assert model.transition.shape == (num_states, num_actions, num_states)
    live = np.flatnonzero(~model.terminal)
    np.testing.assert_allclose(model.transition[live].sum(axis=-1), 1.0, atol=1e-12)
    s = jnp.repeat(jnp.asarray(live, jnp.int32), num_actions)
    a = jnp.tile(jnp.arange(num_actions, dtype=jnp.int32), len(live))
    keys = jax.random.split(jax.random.key(0), NUM_KEYS)

    def sample(s, a):
        step = jax.vmap(env.core.step, in_axes=(0, None, None, None))
        _, s_next, reward, _, _ = step(keys, s, a, params)
        counts = jnp.zeros(num_states, jnp.int32).at[s_next].add(1)
        return counts, jnp.mean(reward), jnp.std(reward)

    counts, mean_reward, std_reward = jax.jit(jax.vmap(sample))(s, a)
    freq = np.asarray(counts) / NUM_KEYS
    expected = model.transition[np.asarray(s), np.asarray(a)]
    tol = 5 * np.sqrt(expected * (1 - expected) / NUM_KEYS) + 1e-6
    assert np.all(np.abs(freq - expected) <= tol)
    reward_error = np.abs(np.asarray(mean_reward) - model.reward[np.asarray(s), np.asarray(a)])
    assert np.all(reward_error <= 5 * np.asarray(std_reward) / np.sqrt(NUM_KEYS) + 1e-5)
