"""Boyan's chain (Boyan 2002): 13 states, 4 interpolated features, true values -2 (i - 1).

A Markov reward process (action space `Discrete(1)`, the int action is ignored). Boyan numbers
the states 13..1 and starts in 13; here the observation is the int32 index `i - 1` of Boyan's
state `i`, so the walk starts at index 12 and ends at index 0 (terminal). From index >= 2 it
moves down by 1 or 2 with probability 1/2 each, reward -3; from index 1 it moves to 0, reward
-2. True values (gamma = 1): `v[j] = -2 j`, exactly `FEATURES @ (-24, -16, -8, 0)`.
"""

from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from envs import base

NUM_STATES = 13


def _features() -> np.ndarray:
    """float64 `[13, 4]`: row j is x(state j + 1); x(13) = e0, x(9) = e1, x(5) = e2, x(1) = e3."""
    features = np.zeros((NUM_STATES, 4))
    for j in range(NUM_STATES):
        k, frac = divmod(12 - j, 4)  # distance from the start in blocks of 4 states
        features[j, k] = 1.0 - frac / 4.0
        if frac:
            features[j, k + 1] = frac / 4.0
    return features


FEATURES = _features()
"""float64 `[13, 4]`, the feature vector of each observation index."""

TRUE_WEIGHTS = np.array([-24.0, -16.0, -8.0, 0.0])
"""float64 `[4]`, the weights with `FEATURES @ TRUE_WEIGHTS == TRUE_VALUES`."""


class BoyanChainParams(NamedTuple):
    """Rewards of a step from index >= 2 and of the last step (index 1 to 0)."""

    step_reward: float = -3.0
    last_step_reward: float = -2.0
    max_steps: int = base.NO_TIME_LIMIT


def BoyanChain(observation: str = "index", **params: Any) -> base.Environment:  # noqa: N802
    """Boyan's 13-state chain.

    Args:
      observation: `"index"` (int32 `[]`, the state index 0..12) or `"features"` (float32 `[4]`).
      **params: overrides of `BoyanChainParams` fields.

    Returns:
      The `Environment`. `env.extras`: `num_states` 13, `nonterminal_states` 1..12,
      `terminal_states` (0,), `start_state` 12, `feature_matrix` float64 `[13, 4]`,
      `true_values` float64 `[13]`, `true_weights` (-24, -16, -8, 0), `model` (`TabularModel`).
    """
    name = "BoyanChain"
    base.check_param(name, "observation", observation in ("index", "features"),
                     "'index' or 'features'", observation)
    p = BoyanChainParams(**params)
    base.check_param(name, "max_steps", p.max_steps >= 1, ">= 1", p.max_steps)
    features = jnp.asarray(FEATURES, jnp.float32)
    observe = (lambda s: s) if observation == "index" else (lambda s: features[s])

    def reset(key, params):
        del key, params
        s = jnp.int32(NUM_STATES - 1)
        return observe(s), s

    def step(key, s, action, params):
        base.discrete_action(f"{name}.step", action, 1)
        two = jax.random.uniform(key) < 0.5
        s_next = jnp.where(s >= 2, s - jnp.where(two, 2, 1), 0).astype(jnp.int32)
        reward = jnp.where(s >= 2, params.step_reward, params.last_step_reward)
        return observe(s_next), s_next, reward.astype(jnp.float32), s_next == 0, {}

    model = _model(p)
    if observation == "index":
        space = gymnasium.spaces.Discrete(NUM_STATES)
    else:
        space = gymnasium.spaces.Box(0.0, 1.0, (4,), np.float32)
    extras = dict(
        num_states=NUM_STATES,
        nonterminal_states=np.arange(1, NUM_STATES),
        terminal_states=np.array([0]),
        start_state=NUM_STATES - 1,
        feature_matrix=FEATURES.copy(),
        true_values=base.policy_values(model, np.ones((1,)), 1.0),
        true_weights=TRUE_WEIGHTS.copy(),
        model=model,
    )
    core = base.Core(reset, step, reset_uses_key=False)
    return base.make_environment(
        "BoyanChain-v0", core, p, space, gymnasium.spaces.Discrete(1), extras=extras)


def _model(p: BoyanChainParams) -> base.TabularModel:
    transition = np.zeros((NUM_STATES, 1, NUM_STATES))
    reward = np.zeros((NUM_STATES, 1))
    for j in range(2, NUM_STATES):
        transition[j, 0, [j - 1, j - 2]] = 0.5
        reward[j, 0] = p.step_reward
    transition[1, 0, 0] = 1.0
    reward[1, 0] = p.last_step_reward
    terminal = np.zeros(NUM_STATES, bool)
    terminal[0] = True
    return base.TabularModel(transition, reward, terminal)
