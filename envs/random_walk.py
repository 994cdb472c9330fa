"""The random walk of Sutton & Barto Example 6.2 (5 states) and Figure 7.2 (19 states).

A Markov reward process: the environment, not the agent, moves left or right, so the action
space is `Discrete(1)` and the action (an int scalar, e.g. 0) is ignored.

Observation: the int32 state index. Non-terminal states are `1..num_states`, the terminals are
`0` (left) and `num_states + 1` (right); a walk starts in the centre (state 3 of 5, state 10 of
19). Value tables are indexed by the observation and have `num_states + 2` entries.
"""

from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from envs import base


class RandomWalkParams(NamedTuple):
    """Reward on entering the left / right terminal (0 elsewhere), probability of a right step."""

    left_reward: float = 0.0
    right_reward: float = 1.0
    p_right: float = 0.5
    max_steps: int = base.NO_TIME_LIMIT


def RandomWalk(  # noqa: N802 (a constructor)
    num_states: int = 5, start_state: int | None = None, **params: Any
) -> base.Environment:
    """A random walk over `num_states` non-terminal states with a terminal at each end.

    `RandomWalk()` is Example 6.2 (5 states, +1 on the right, true values 1/6 .. 5/6);
    `RandomWalk(num_states=19, left_reward=-1.0)` is Figure 7.2 (true values (s - 10) / 10).

    Args:
      num_states: number of non-terminal states, >= 1 (static: it fixes the observation space).
      start_state: the start state in `1..num_states`; default the centre `(num_states + 1) // 2`.
      **params: overrides of `RandomWalkParams` fields.

    Returns:
      The `Environment`. `env.extras`: `num_states` (`num_states + 2`, the table size),
      `nonterminal_states` int `[num_states]`, `terminal_states` (0, num_states + 1),
      `start_state`, `true_values` float64 `[num_states + 2]` (gamma = 1, terminals 0) and
      `model` (`TabularModel`, one action).
    """
    name = "RandomWalk"
    base.check_param(name, "num_states", isinstance(num_states, (int, np.integer))
                     and num_states >= 1, "an int >= 1", num_states)
    n = int(num_states)
    start = (n + 1) // 2 if start_state is None else start_state
    base.check_param(name, "start_state", isinstance(start, (int, np.integer)) and 1 <= start <= n,
                     f"an int in [1, {n}]", start_state)
    p = RandomWalkParams(**params)
    base.check_param(name, "p_right", 0.0 <= p.p_right <= 1.0, "in [0, 1]", p.p_right)
    base.check_param(name, "max_steps", p.max_steps >= 1, ">= 1", p.max_steps)

    def reset(key, params):
        del key, params
        s = jnp.int32(start)
        return s, s

    def step(key, s, action, params):
        base.discrete_action(f"{name}.step", action, 1)
        right = jax.random.uniform(key) < params.p_right
        s = s + jnp.where(right, 1, -1).astype(jnp.int32)
        at_left, at_right = s == 0, s == n + 1
        reward = jnp.where(at_right, params.right_reward,
                           jnp.where(at_left, params.left_reward, 0.0)).astype(jnp.float32)
        return s, s, reward, at_left | at_right, {}

    model = _model(n, p)
    extras = dict(
        num_states=n + 2,
        nonterminal_states=np.arange(1, n + 1),
        terminal_states=np.array([0, n + 1]),
        start_state=start,
        true_values=base.policy_values(model, np.ones((1,)), 1.0),
        model=model,
    )
    core = base.Core(reset, step, reset_uses_key=False)
    return base.make_environment(
        "RandomWalk-v0", core, p, gymnasium.spaces.Discrete(n + 2),
        gymnasium.spaces.Discrete(1), extras=extras)


def _model(n: int, p: RandomWalkParams) -> base.TabularModel:
    transition = np.zeros((n + 2, 1, n + 2))
    reward = np.zeros((n + 2, 1))
    for s in range(1, n + 1):
        transition[s, 0, s + 1] += p.p_right
        transition[s, 0, s - 1] += 1.0 - p.p_right
        reward[s, 0] = (p.p_right * (p.right_reward if s == n else 0.0)
                        + (1.0 - p.p_right) * (p.left_reward if s == 1 else 0.0))
    terminal = np.zeros(n + 2, bool)
    terminal[[0, n + 1]] = True
    return base.TabularModel(transition, reward, terminal)
