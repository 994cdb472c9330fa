"""Windy gridworld (Sutton & Barto Example 6.5, Exercises 6.9, 6.10) and cliff walking
(Example 6.6).

Observation: the int32 cell index `row * width + col`, rows counted from the top. Actions
(int scalars, clipped into range): 0 up, 1 right, 2 down, 3 left (Gymnasium's CliffWalking
order); with king's moves also 4 up-right, 5 down-right, 6 down-left, 7 up-left; with the
stay action the last action does not move. Reward -1 per step; no time limit by default.
"""

from typing import Any, NamedTuple

import gymnasium
import jax.numpy as jnp
import numpy as np

from envs import base

# (drow, dcol) for up, right, down, left, up-right, down-right, down-left, up-left.
_MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1], [-1, 1], [1, 1], [1, -1], [-1, -1]],
                  np.int32)
_STAY = np.zeros((1, 2), np.int32)
WIND = (0, 0, 0, 1, 1, 1, 2, 2, 1, 0)
"""The book's upward wind strength of each of the 10 columns."""


def _moves(king_moves: bool, stay_action: bool) -> np.ndarray:
    moves = _MOVES if king_moves else _MOVES[:4]
    return np.concatenate([moves, _STAY]) if stay_action else moves


def _cell(rc: tuple[int, int], height: int, width: int, name: str, arg: str) -> int:
    ok = (len(rc) == 2 and 0 <= rc[0] < height and 0 <= rc[1] < width)
    base.check_param(name, arg, ok, f"a (row, col) inside the {height} x {width} grid", rc)
    return int(rc[0]) * width + int(rc[1])


# ---------------------------------------------------------------------------------------------
# Windy gridworld
# ---------------------------------------------------------------------------------------------


class WindyGridworldParams(NamedTuple):
    """Wind (int32 `[width]`, upward, >= 0) and reward per step."""

    wind: np.ndarray = np.array(WIND, np.int32)
    step_reward: float = -1.0
    max_steps: int = base.NO_TIME_LIMIT


def WindyGridworld(  # noqa: N802 (a constructor)
    king_moves: bool = False,
    stay_action: bool = False,
    stochastic_wind: bool = False,
    height: int = 7,
    width: int = 10,
    start: tuple[int, int] = (3, 0),
    goal: tuple[int, int] = (3, 7),
    **params: Any,
) -> base.Environment:
    """The windy gridworld: the wind of the column the agent is LEAVING pushes it up.

    The next cell is `(row + drow - wind[col], col + dcol)`, clipped to the grid. Reaching the
    goal ends the episode (the reward of that step is still -1). Shortest path: 15 steps with
    4 moves, 7 with king's moves.

    Args:
      king_moves: 8 moves (Exercise 6.9) instead of 4.
      stay_action: add a last action that does not move (the 9th king's move).
      stochastic_wind: Exercise 6.10: in a column with wind, the wind strength is the
        column's value plus -1, 0 or +1 with probability 1/3 each (windless columns stay
        calm). Static, so the deterministic default draws no random numbers.
      height, width: grid size (static).
      start, goal: (row, col) cells.
      **params: overrides of `WindyGridworldParams` fields; `wind` must be `width` ints >= 0.

    Returns:
      The `Environment`. `env.extras`: `num_states` (height * width), `start_state`,
      `terminal_states` (goal,), `grid_shape`, `moves` int `[A, 2]` (drow, dcol),
      `stochastic_wind`, `model`.
    """
    name = "WindyGridworld"
    base.check_param(name, "height", height >= 1, ">= 1", height)
    base.check_param(name, "width", width >= 2, ">= 2", width)
    start_s = _cell(start, height, width, name, "start")
    goal_s = _cell(goal, height, width, name, "goal")
    base.check_param(name, "goal", goal_s != start_s, "different from `start`", goal)
    if "wind" in params:
        params["wind"] = np.asarray(params["wind"])
    p = WindyGridworldParams(**params)
    wind = np.asarray(p.wind)
    base.check_param(name, "wind", wind.shape == (width,) and np.issubdtype(wind.dtype, np.integer),
                     f"{width} integers (one per column)", p.wind)
    base.check_param(name, "wind", bool(np.all(wind >= 0)), "non-negative (upward)", p.wind)
    p = p._replace(wind=wind.astype(np.int32))
    moves_np = _moves(king_moves, stay_action)
    moves = jnp.asarray(moves_np)
    num_actions = len(moves_np)

    def reset(key, params):
        del key, params
        s = jnp.int32(start_s)
        return s, s

    def step(key, s, action, params):
        action = base.discrete_action(f"{name}.step", action, num_actions)
        row, col = s // width, s % width
        wind_here = jnp.asarray(params.wind, jnp.int32)[col]
        if stochastic_wind:
            noise = base.uniform_index(key, 3) - 1
            wind_here = wind_here + jnp.where(wind_here > 0, noise, 0)
        row = jnp.clip(row + moves[action, 0] - wind_here, 0, height - 1)
        col = jnp.clip(col + moves[action, 1], 0, width - 1)
        s_next = (row * width + col).astype(jnp.int32)
        reward = jnp.asarray(params.step_reward, jnp.float32)
        return s_next, s_next, reward, s_next == goal_s, {}

    def model_next(s, a, wind_col):
        row, col = divmod(s, width)
        row = min(max(row + moves_np[a, 0] - wind_col, 0), height - 1)
        col = min(max(col + moves_np[a, 1], 0), width - 1)
        return row * width + col

    num_states = height * width
    transition = np.zeros((num_states, num_actions, num_states))
    for s in range(num_states):
        if s == goal_s:
            continue
        w = int(wind[s % width])
        outcomes = [w - 1, w, w + 1] if (stochastic_wind and w > 0) else [w]
        for a in range(num_actions):
            for w_eff in outcomes:
                transition[s, a, model_next(s, a, w_eff)] += 1.0 / len(outcomes)
    reward = np.where(np.arange(num_states)[:, None] == goal_s, 0.0, float(p.step_reward))
    reward = np.broadcast_to(reward, (num_states, num_actions)).copy()
    terminal = np.arange(num_states) == goal_s
    extras = dict(
        num_states=num_states, start_state=start_s, terminal_states=np.array([goal_s]),
        grid_shape=(height, width), moves=moves_np.copy(), stochastic_wind=bool(stochastic_wind),
        model=base.TabularModel(transition, reward, terminal))

    def render(s, params):
        return _render_grid(int(s), height, width, start_s, goal_s,
                            wind=np.asarray(params.wind), cliff=())

    core = base.Core(reset, step, reset_uses_key=False, step_uses_key=stochastic_wind)
    return base.make_environment(
        "WindyGridworld-v0", core, p, gymnasium.spaces.Discrete(num_states),
        gymnasium.spaces.Discrete(num_actions), extras=extras, render=render, render_fps=4)


# ---------------------------------------------------------------------------------------------
# Cliff walking
# ---------------------------------------------------------------------------------------------


class CliffWalkingParams(NamedTuple):
    """Reward per ordinary step and for stepping into the cliff."""

    step_reward: float = -1.0
    cliff_reward: float = -100.0
    max_steps: int = base.NO_TIME_LIMIT


def CliffWalking(height: int = 4, width: int = 12, **params: Any) -> base.Environment:  # noqa: N802
    """Cliff walking with Sutton & Barto semantics.

    Start bottom-left, goal bottom-right, the cliff is the bottom row between them. A step into
    the cliff gives `cliff_reward` (-100) and sends the agent back to the start; the episode
    goes on. Every other step gives `step_reward` (-1); reaching the goal ends the episode.
    The optimal return is -13 on the default 4 x 12 grid.

    Args:
      height, width: grid size (static), height >= 2, width >= 3.
      **params: overrides of `CliffWalkingParams` fields.

    Returns:
      The `Environment`. `env.extras`: `num_states`, `start_state`, `terminal_states`,
      `cliff_states`, `grid_shape`, `moves` int `[4, 2]`, `model`.
    """
    name = "CliffWalking"
    base.check_param(name, "height", height >= 2, ">= 2", height)
    base.check_param(name, "width", width >= 3, ">= 3", width)
    p = CliffWalkingParams(**params)
    base.check_param(name, "max_steps", p.max_steps >= 1, ">= 1", p.max_steps)
    moves_np = _moves(False, False)
    moves = jnp.asarray(moves_np)
    start_s = (height - 1) * width
    goal_s = height * width - 1
    cliff = tuple(range(start_s + 1, goal_s))

    def reset(key, params):
        del key, params
        s = jnp.int32(start_s)
        return s, s

    def step(key, s, action, params):
        del key
        action = base.discrete_action(f"{name}.step", action, 4)
        row = jnp.clip(s // width + moves[action, 0], 0, height - 1)
        col = jnp.clip(s % width + moves[action, 1], 0, width - 1)
        fell = (row == height - 1) & (col > 0) & (col < width - 1)
        s_next = jnp.where(fell, start_s, row * width + col).astype(jnp.int32)
        reward = jnp.where(fell, params.cliff_reward, params.step_reward).astype(jnp.float32)
        return s_next, s_next, reward, s_next == goal_s, {}

    num_states = height * width
    transition = np.zeros((num_states, 4, num_states))
    reward = np.zeros((num_states, 4))
    for s in range(num_states):
        if s == goal_s:
            continue
        for a in range(4):
            row = min(max(s // width + moves_np[a, 0], 0), height - 1)
            col = min(max(s % width + moves_np[a, 1], 0), width - 1)
            s_next = row * width + col
            if s_next in cliff:
                transition[s, a, start_s] = 1.0
                reward[s, a] = p.cliff_reward
            else:
                transition[s, a, s_next] = 1.0
                reward[s, a] = p.step_reward
    terminal = np.arange(num_states) == goal_s
    extras = dict(
        num_states=num_states, start_state=start_s, terminal_states=np.array([goal_s]),
        cliff_states=np.array(cliff), grid_shape=(height, width), moves=moves_np.copy(),
        model=base.TabularModel(transition, reward, terminal))

    def render(s, params):
        del params
        return _render_grid(int(s), height, width, start_s, goal_s, wind=None, cliff=cliff)

    core = base.Core(reset, step, reset_uses_key=False, step_uses_key=False)
    return base.make_environment(
        "CliffWalking-v0", core, p, gymnasium.spaces.Discrete(num_states),
        gymnasium.spaces.Discrete(4), extras=extras, render=render, render_fps=4)


# ---------------------------------------------------------------------------------------------
# Rendering (host, NumPy)
# ---------------------------------------------------------------------------------------------

_CELL = 32


def _render_grid(s: int, height: int, width: int, start: int, goal: int,
                 wind: np.ndarray | None, cliff: tuple[int, ...]) -> np.ndarray:
    """uint8 `[height * 32, width * 32, 3]`: wind shading, cliff, start, goal, agent."""
    image = np.full((height * _CELL, width * _CELL, 3), 255, np.uint8)

    def fill(cell: int, colour: tuple[int, int, int], margin: int = 1) -> None:
        r, c = divmod(cell, width)
        image[r * _CELL + margin:(r + 1) * _CELL - margin,
              c * _CELL + margin:(c + 1) * _CELL - margin] = colour

    for cell in range(height * width):
        colour = (235, 235, 235)
        if wind is not None and wind[cell % width] > 0:
            shade = int(max(120, 235 - 45 * int(wind[cell % width])))
            colour = (shade, shade, 255)
        fill(cell, colour)
    for cell in cliff:
        fill(cell, (60, 60, 60))
    fill(start, (120, 200, 120))
    fill(goal, (230, 190, 60))
    fill(s, (200, 40, 40), margin=8)
    return image
