"""Baird's counterexample (Sutton & Barto Section 11.2, Figure 11.1).

Seven states: indices 0..5 are the upper states 1..6, index 6 is the lower (7th) state. Two
actions: 0 = dashed (to one of the six upper states, uniformly), 1 = solid (to the lower
state). Reward 0, no terminal state (a continuing task; gamma = 0.99 in the book). Episodes
start in a uniformly random state, so the state distribution under the behaviour policy is
uniform at every step.

Observation: by default the float32 feature vector `[8]` of the book (upper state i:
`v = 2 w_i + w_8`, lower state: `v = w_7 + 2 w_8`); `observation="index"` gives the int32
state index instead. The state index is also `state.env_state`.

Behaviour policy b(dashed) = 6/7, b(solid) = 1/7; target policy pi(solid) = 1; importance
ratios rho = pi / b = (0, 7).
"""

from typing import Any, NamedTuple

import gymnasium
import jax.numpy as jnp
import numpy as np

from envs import base

NUM_STATES = 7
DASHED, SOLID = 0, 1


def _features() -> np.ndarray:
    features = np.zeros((NUM_STATES, 8))
    for i in range(6):
        features[i, i] = 2.0
        features[i, 7] = 1.0
    features[6, 6] = 1.0
    features[6, 7] = 2.0
    return features


FEATURES = _features()
"""float64 `[7, 8]`, the book's feature vector of each state (row = state index)."""

BEHAVIOUR_PROBS = np.array([6.0 / 7.0, 1.0 / 7.0])
"""float64 `[2]`, b(dashed), b(solid) (the same in every state)."""

TARGET_PROBS = np.array([0.0, 1.0])
"""float64 `[2]`, pi(dashed), pi(solid)."""

IMPORTANCE_RATIOS = TARGET_PROBS / BEHAVIOUR_PROBS
"""float64 `[2]`, rho = pi / b = (0, 7)."""

INITIAL_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 1.0])
"""float64 `[8]`, the book's w0 for Figure 11.2."""

GAMMA = 0.99


class BairdParams(NamedTuple):
    """Reward of every transition (0 in the book)."""

    reward: float = 0.0
    max_steps: int = base.NO_TIME_LIMIT


def BairdCounterexample(observation: str = "features", **params: Any) -> base.Environment:  # noqa: N802
    """Baird's seven-state, two-action counterexample.

    Args:
      observation: `"features"` (float32 `[8]`, default) or `"index"` (int32 `[]`).
      **params: overrides of `BairdParams` fields.

    Returns:
      The `Environment`. `env.extras`: `num_states` 7, `feature_matrix` float64 `[7, 8]`,
      `behaviour_probs` / `target_probs` / `importance_ratios` float64 `[2]` (state
      independent), `behaviour_policy` / `target_policy` float64 `[7, 2]`, `gamma` 0.99,
      `initial_weights` `[8]`, `true_values` zeros `[7]` (for the target policy), `model`.
    """
    name = "BairdCounterexample"
    base.check_param(name, "observation", observation in ("index", "features"),
                     "'index' or 'features'", observation)
    p = BairdParams(**params)
    base.check_param(name, "max_steps", p.max_steps >= 1, ">= 1", p.max_steps)
    features = jnp.asarray(FEATURES, jnp.float32)
    observe = (lambda s: s) if observation == "index" else (lambda s: features[s])

    def reset(key, params):
        del params
        s = base.uniform_index(key, NUM_STATES)
        return observe(s), s

    def step(key, s, action, params):
        del s
        action = base.discrete_action(f"{name}.step", action, 2)
        upper = base.uniform_index(key, NUM_STATES - 1)
        s_next = jnp.where(action == SOLID, jnp.int32(NUM_STATES - 1), upper)
        reward = jnp.asarray(params.reward, jnp.float32)
        return observe(s_next), s_next, reward, jnp.bool_(False), {}

    if observation == "index":
        space = gymnasium.spaces.Discrete(NUM_STATES)
    else:
        space = gymnasium.spaces.Box(0.0, 2.0, (8,), np.float32)
    transition = np.zeros((NUM_STATES, 2, NUM_STATES))
    transition[:, DASHED, :6] = 1.0 / 6.0
    transition[:, SOLID, 6] = 1.0
    model = base.TabularModel(
        transition, np.full((NUM_STATES, 2), float(p.reward)), np.zeros(NUM_STATES, bool))
    extras = dict(
        num_states=NUM_STATES,
        feature_matrix=FEATURES.copy(),
        behaviour_probs=BEHAVIOUR_PROBS.copy(),
        target_probs=TARGET_PROBS.copy(),
        importance_ratios=IMPORTANCE_RATIOS.copy(),
        behaviour_policy=np.tile(BEHAVIOUR_PROBS, (NUM_STATES, 1)),
        target_policy=np.tile(TARGET_PROBS, (NUM_STATES, 1)),
        gamma=GAMMA,
        initial_weights=INITIAL_WEIGHTS.copy(),
        true_values=base.policy_values(model, TARGET_PROBS, GAMMA),
        model=model,
    )
    return base.make_environment(
        "BairdCounterexample-v0", base.Core(reset, step), p, space,
        gymnasium.spaces.Discrete(2), extras=extras)
