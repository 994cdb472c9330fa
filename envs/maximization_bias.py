"""The maximization-bias MDP of Sutton & Barto Example 6.7 (Figure 6.5).

States (int32 observation): 0 = A (start), 1 = B, 2 = terminal. The action space is
`Discrete(num_b_actions)` (10) in every state so that Q tables are `[3, 10]`:
- in A only actions 0 (left: to B, reward 0) and 1 (right: to the terminal, reward 0) are
  valid; every action >= 1 is treated as right (clipped to 1). Agents restrict their choice
  in A with `env.extras["valid_actions"]` (bool `[3, A]`; the terminal row is all True so a
  masked max over it is finite).
- in B every action ends the episode with reward ~ Normal(b_reward_mean, b_reward_std)
  = Normal(-0.1, 1).
"""

from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from envs import base

STATE_A, STATE_B, TERMINAL = 0, 1, 2
LEFT, RIGHT = 0, 1


class MaximizationBiasParams(NamedTuple):
    """Mean and standard deviation of the reward of any action in B."""

    b_reward_mean: float = -0.1
    b_reward_std: float = 1.0
    max_steps: int = base.NO_TIME_LIMIT


def MaximizationBias(num_b_actions: int = 10, **params: Any) -> base.Environment:  # noqa: N802
    """Example 6.7: Q-learning prefers "left" from A although "right" is optimal.

    Args:
      num_b_actions: number of actions in B and size of the action space (static), >= 2.
      **params: overrides of `MaximizationBiasParams` fields.

    Returns:
      The `Environment`. `env.extras`: `num_states` 3, `start_state` 0,
      `terminal_states` (2,), `valid_actions` bool `[3, A]`, `num_valid_actions` int `[3]`,
      `optimal_action_values` float64 `[3, A]` (A: (-0.1, 0, 0...), B: -0.1), `model`.
    """
    name = "MaximizationBias"
    base.check_param(name, "num_b_actions", isinstance(num_b_actions, (int, np.integer))
                     and num_b_actions >= 2, "an int >= 2", num_b_actions)
    p = MaximizationBiasParams(**params)
    base.check_param(name, "b_reward_std", p.b_reward_std >= 0, ">= 0", p.b_reward_std)
    base.check_param(name, "max_steps", p.max_steps >= 1, ">= 1", p.max_steps)
    num_actions = int(num_b_actions)

    def reset(key, params):
        del key, params
        s = jnp.int32(STATE_A)
        return s, s

    def step(key, s, action, params):
        action = base.discrete_action(f"{name}.step", action, num_actions)
        in_a = s == STATE_A
        s_next = jnp.where(in_a & (action == LEFT), STATE_B, TERMINAL).astype(jnp.int32)
        b_reward = params.b_reward_mean + params.b_reward_std * jax.random.normal(key)
        reward = jnp.where(in_a, 0.0, b_reward).astype(jnp.float32)
        return s_next, s_next, reward, s_next == TERMINAL, {}

    valid = np.ones((3, num_actions), bool)
    valid[STATE_A, 2:] = False
    transition = np.zeros((3, num_actions, 3))
    transition[STATE_A, LEFT, STATE_B] = 1.0
    transition[STATE_A, 1:, TERMINAL] = 1.0
    transition[STATE_B, :, TERMINAL] = 1.0
    reward = np.zeros((3, num_actions))
    reward[STATE_B] = p.b_reward_mean
    optimal = reward.copy()
    optimal[STATE_A, LEFT] = p.b_reward_mean  # gamma = 1: left then any action in B
    terminal = np.array([False, False, True])
    extras = dict(
        num_states=3, start_state=STATE_A, terminal_states=np.array([TERMINAL]),
        valid_actions=valid, num_valid_actions=valid.sum(axis=1),
        optimal_action_values=optimal,
        model=base.TabularModel(transition, reward, terminal))
    core = base.Core(reset, step, reset_uses_key=False)
    return base.make_environment(
        "MaximizationBias-v0", core, p, gymnasium.spaces.Discrete(3),
        gymnasium.spaces.Discrete(num_actions), extras=extras)
