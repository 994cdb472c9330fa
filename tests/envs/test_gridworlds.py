"""Windy gridworld and cliff walking: shortest paths, optimal return, wind and cliff rules."""

import collections

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3


def _step(env, params, s, a, key=jax.random.key(0)):
    obs, state, reward, terminated, truncated, info = env.step(
        key, envs.State(jnp.int32(s), jnp.int32(0)), jnp.int32(a), params)
    return int(obs), int(info["final_observation"]), float(reward), bool(terminated)


def _tables(env, params):
    """Next state and reward of every (state, action), from the JAX step (deterministic)."""
    num_states, num_actions = env.extras["num_states"], env.num_actions
    s = jnp.repeat(jnp.arange(num_states, dtype=jnp.int32), num_actions)
    a = jnp.tile(jnp.arange(num_actions, dtype=jnp.int32), num_states)
    _, next_s, reward, _, _ = jax.vmap(env.core.step, in_axes=(None, 0, 0, None))(
        jax.random.key(0), s, a, params)
    shape = (num_states, num_actions)
    return np.asarray(next_s).reshape(shape), np.asarray(reward).reshape(shape)


def _shortest_path(env, params):
    """Breadth-first search from the start to the goal over the JAX transitions."""
    next_s, _ = _tables(env, params)
    start, goal = env.extras["start_state"], int(env.extras["terminal_states"][0])
    dist = {start: 0}
    queue = collections.deque([start])
    while queue:
        s = queue.popleft()
        for s2 in next_s[s]:
            if int(s2) not in dist:
                dist[int(s2)] = dist[s] + 1
                queue.append(int(s2))
    return dist[goal]


@pytest.mark.parametrize("kwargs,length", [
    ({}, 15),
    ({"king_moves": True}, 7),
    ({"king_moves": True, "stay_action": True}, 7),
])
def test_windy_gridworld_shortest_path(kwargs, length):
    env, params = envs.make("WindyGridworld-v0", **kwargs)
    assert env.num_actions == {(): 4, ("king_moves",): 8,
                               ("king_moves", "stay_action"): 9}[tuple(kwargs)]
    assert _shortest_path(env, params) == length


def test_wind_of_the_column_being_left_pushes_up_and_is_clipped():
    env, params = envs.make("WindyGridworld-v0")
    cell = lambda r, c: r * 10 + c
    assert _step(env, params, cell(3, 3), RIGHT)[0] == cell(2, 4)   # wind 1 in column 3
    assert _step(env, params, cell(3, 2), RIGHT)[0] == cell(3, 3)   # column 2 is calm
    assert _step(env, params, cell(3, 6), LEFT)[0] == cell(1, 5)    # wind 2 in column 6
    assert _step(env, params, cell(1, 7), DOWN)[0] == cell(0, 7)    # 1 + 1 - 2, clipped at 0
    assert _step(env, params, cell(0, 0), UP)[0] == cell(0, 0)
    assert _step(env, params, cell(6, 9), DOWN)[0] == cell(6, 9)
    # Entering the goal ends the episode with the usual -1.
    assert _step(env, params, cell(4, 6), RIGHT)[1:] == (cell(2, 7), -1.0, False)
    obs, final, reward, terminated = _step(env, params, cell(5, 6), RIGHT)
    assert (final, reward, terminated, obs) == (cell(3, 7), -1.0, True, cell(3, 0))


def test_stochastic_wind_varies_by_one_with_probability_one_third():
    env, params = envs.make("WindyGridworld-v0", stochastic_wind=True)
    assert env.extras["stochastic_wind"]
    keys = jax.random.split(jax.random.key(0), 6000)
    step = jax.jit(jax.vmap(env.core.step, in_axes=(0, None, None, None)))
    s_next = np.asarray(step(keys, jnp.int32(3 * 10 + 6), jnp.int32(RIGHT), params)[1])
    rows = collections.Counter((s_next // 10).tolist())
    assert set(rows) == {0, 1, 2} and (s_next % 10 == 7).all()  # wind 2 + {-1, 0, 1}
    for r in (0, 1, 2):
        assert abs(rows[r] / 6000 - 1 / 3) < 5 * np.sqrt(2 / 9 / 6000)
    calm = np.asarray(step(keys, jnp.int32(3 * 10 + 1), jnp.int32(RIGHT), params)[1])
    np.testing.assert_array_equal(calm, 3 * 10 + 2)  # no wind: no randomness


@pytest.mark.parametrize("kwargs,arg", [
    ({"wind": [0, 0, 0, 1, 1, -1, 2, 2, 1, 0]}, "wind"),
    ({"wind": [0, 1, 2]}, "wind"),
    ({"wind": [0.5] * 10}, "wind"),
    ({"start": (7, 0)}, "start"),
    ({"goal": (3, 0)}, "goal"),
])
def test_windy_invalid_params_raise_value_error(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        envs.WindyGridworld(**kwargs)


def test_cliff_walking_optimal_return_is_minus_thirteen():
    env, params = envs.make("CliffWalking-v0")
    # The edge path: up, 11 x right, down.
    state = env.reset(jax.random.key(0), params)[1]
    total, terminated = 0.0, False
    for a in [UP] + [RIGHT] * 11 + [DOWN]:
        assert not terminated
        _, state, reward, terminated, _, _ = env.step(jax.random.key(0), state, a, params)
        total += float(reward)
    assert terminated and total == -13.0
    # Value iteration (gamma = 1) over the JAX transitions: the optimal return is -13.
    next_s, reward = _tables(env, params)
    goal = int(env.extras["terminal_states"][0])
    v = np.zeros(48)
    for _ in range(100):
        v = np.where(np.arange(48) == goal, 0.0, np.max(reward + v[next_s], axis=1))
    assert v[env.extras["start_state"]] == -13.0


def test_stepping_into_the_cliff_costs_100_and_returns_to_the_start():
    env, params = envs.make("CliffWalking-v0")
    start = env.extras["start_state"]
    assert start == 36
    assert _step(env, params, start, RIGHT) == (start, start, -100.0, False)
    assert _step(env, params, 2 * 12 + 5, DOWN) == (start, start, -100.0, False)
    assert _step(env, params, start, UP) == (24, 24, -1.0, False)
    assert _step(env, params, 35, DOWN)[1:] == (47, -1.0, True)
    np.testing.assert_array_equal(env.extras["cliff_states"], np.arange(37, 47))


def test_render_draws_the_agent():
    env, params = envs.make("WindyGridworld-v0")
    image = env.render(jnp.int32(3 * 10 + 5), params)
    assert image.shape == (7 * 32, 10 * 32, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[3 * 32 + 16, 5 * 32 + 16], [200, 40, 40])
    np.testing.assert_array_equal(image[3 * 32 + 16, 4 * 32 + 16], [190, 190, 255])  # wind 1


def test_cliff_walking_equals_gymnasiums_cliff_walking_v1_table():
    env, params = envs.make("CliffWalking-v0")
    gym_table = gymnasium.make("CliffWalking-v1").unwrapped.P
    next_s, reward = _tables(env, params)
    for s in range(47):  # 47 is the goal
        for a in range(4):
            (prob, gym_next, gym_reward, gym_terminated), = gym_table[s][a]
            assert prob == 1.0
            assert (next_s[s, a], reward[s, a]) == (gym_next, gym_reward), (s, a)
            assert (next_s[s, a] == 47) == gym_terminated
