"""The rollout driver: turns a `Learner` into an on-policy batch `Agent` on `[T, N]` rollouts.

    agent = rollout_agent(learner, RolloutConfig(rollout_length=T), num_actions)

The driver collects T loop iterations of the N environments (acting epsilon-greedily on the
learner's action values) and hands the `[T, N]` rollout to `learner.step` once it is full,
in the update of its last iteration: the shape of PQN (Gallici et al. 2025) and of
PureJaxRL's and purejaxql's on-policy learners. No replay, no n-step window: a rollout
learner builds its multi-step targets (n-step or lambda-returns, `tdkit.returns`) over the
rollout itself, where `transitions.discount_t` carries termination (truncation keeps the
discount, and `obs_t` is the true final observation) and `lasts` marks every episode end,
terminated or truncated, at which returns must be cut.

Target parameters, if the learner keeps a frozen target, are copied every
`target_period` learner steps (`None`: never; the learner then bootstraps from `params`).
"""

import dataclasses
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from agents import exploration
from agents.base import Agent, AgentState, FastPath, scan_updates
from agents.learner import Learner, LearnerState, start_learner
from tdkit.types import Transition

Array = chex.Array


class Rollout(NamedTuple):
    """T loop iterations of N environments.

    Attributes:
      transitions: a `tdkit.Transition` with leading `[T, N]` (`obs_t` the true next
        observation; `discount_t = gamma * (1 - terminated)`).
      lasts: bool `[T, N]`, the transition ends an episode (terminated or truncated).
    """

    transitions: Transition
    lasts: Array


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """Static settings of the rollout driver (agents' configs extend this dataclass)."""

    rollout_length: int = dataclasses.field(
        default=128, metadata={"help": "loop iterations (N env steps each) per rollout"})
    epsilon_decay_steps: int = dataclasses.field(
        default=20_000, metadata={"help": "env steps of the linear epsilon decay"})
    target_period: int | None = dataclasses.field(
        default=None, metadata={"help": "learner steps between target copies; None: no "
                                        "frozen target"})
    per_env_epsilon: bool = dataclasses.field(
        default=False, metadata={"help": "each env explores at its own rate (Ape-X: "
                                         "epsilon ** (1 + 7 i / (N - 1)))"})


HPARAMS = {"gamma": 0.99, **exploration.HPARAMS}
HPARAM_HELP = {"gamma": "discount factor", **exploration.HPARAM_HELP}


def validate(config: RolloutConfig, hparams: dict, agent: str) -> None:
    """Raises ValueError naming the setting for invalid driver settings."""
    for name in ("rollout_length", "epsilon_decay_steps"):
        if getattr(config, name) <= 0:
            raise ValueError(f"{agent}: `{name}` must be > 0, got {getattr(config, name)}")
    if config.target_period is not None and config.target_period <= 0:
        raise ValueError(f"{agent}: `target_period` must be > 0 or None, got "
                         f"{config.target_period}")
    hp = {k: float(v) for k, v in hparams.items() if not isinstance(v, jax.core.Tracer)}
    for name in ("gamma", "epsilon_start", "epsilon_end"):
        if name in hp and not 0.0 <= hp[name] <= 1.0:
            raise ValueError(f"{agent}: `{name}` must be in [0, 1], got {hp[name]}")


def rollout_agent(learner: Learner, config: RolloutConfig, num_actions: int,
                  name: str | None = None, hparam_defaults: dict | None = None) -> Agent:
    """An on-policy `Agent` of `learner` on `[T, N]` rollouts.

    Args:
      learner: a `Learner` whose `step(state, rollout, None, hparams, key)` takes a
        `Rollout` and returns `info["loss"]`.
      config: a `RolloutConfig` (or a dataclass extending it).
      num_actions: A, for epsilon-greedy acting on `learner.action_values`.
      name: the agent's name (default: the learner's).
      hparam_defaults: the agent's own defaults of the driver's hyperparameters (e.g.
        `{"epsilon_end": 0.2}`), or None.

    Returns:
      An `Agent`; `hparams` are the learner's plus `gamma`, `epsilon_start`, `epsilon_end`.
      `update` reports `learned` True on the iterations that complete a rollout.
    """
    name = name or learner.name
    unknown = sorted(set(hparam_defaults or {}) - set(HPARAMS))
    if unknown:
        raise ValueError(f"{name}: `hparam_defaults` has no driver hyperparameter(s) {unknown}; "
                         f"valid: {sorted(HPARAMS)}")
    default_hparams = {**learner.default_hparams, **HPARAMS, **(hparam_defaults or {})}
    validate(config, default_hparams, name)
    length = config.rollout_length
    acting = exploration.EpsilonGreedy(learner.action_values, num_actions,
                                       config.epsilon_decay_steps, learner.noisy_acting,
                                       per_env=config.per_env_epsilon)

    def init(key, example_obs, num_envs, hparams=None):
        hp, learner_state, k_state, example = start_learner(
            learner, key, example_obs, default_hparams, hparams,
            lambda given: validate(config, given, name))
        rollout = Rollout(
            transitions=jax.tree.map(lambda x: jnp.zeros((length, num_envs) + x.shape,
                                                         x.dtype), example),
            lasts=jnp.zeros((length, num_envs), bool))
        return AgentState(
            params=learner_state.params, target_params=learner_state.target_params,
            opt_state=learner_state.opt_state, replay=(), step=jnp.zeros((), jnp.int32),
            key=k_state, hparams=hp,
            extra={"rollout": rollout, "index": jnp.zeros((), jnp.int32),
                   "updates": learner_state.step})

    def learn(learner_state, rollout, hp, key):
        learner_state, info = learner.step(learner_state, rollout, None, hp, key)
        if config.target_period is not None:
            learner_state = learner_state._replace(target_params=optax.periodic_update(
                learner_state.params, learner_state.target_params, learner_state.step,
                config.target_period))
        return learner_state, jnp.asarray(info["loss"], jnp.float32)

    def skip(learner_state, *unused):
        del unused
        return learner_state, jnp.zeros((), jnp.float32)

    def update(state, transition, last):
        num_envs = transition.r_t.shape[0]
        chex.assert_shape(last, (num_envs,))
        index = state.extra["index"]
        rollout = Rollout(
            transitions=jax.tree.map(lambda buf, x: buf.at[index].set(x),
                                     state.extra["rollout"].transitions, transition),
            lasts=state.extra["rollout"].lasts.at[index].set(last))
        full = index == length - 1
        key, k_learn = jax.random.split(state.key)
        learner_state = LearnerState(state.params, state.target_params, state.opt_state,
                                     state.extra["updates"])
        learner_state, loss = jax.lax.cond(full, learn, skip, learner_state, rollout,
                                           state.hparams, k_learn)
        step = state.step + num_envs
        state = state._replace(
            params=learner_state.params, target_params=learner_state.target_params,
            opt_state=learner_state.opt_state, step=step, key=key,
            extra={"rollout": rollout, "index": jnp.where(full, 0, index + 1),
                   "updates": learner_state.step})
        return state, {"loss": loss, "learned": full,
                       "epsilon": acting.epsilon_at(step, state.hparams)}

    def update_block(state, transitions, lasts):
        """K updates at once, equal to scanning `update` over them (`FastPath.update_block`).

        With K <= T at most one rollout completes inside the block, at block position
        `k* = T - 1 - index`: the transitions up to it are written in one scatter, the
        learner steps (if the rollout completed), and the rest start the next rollout. The
        PRNG keys are split exactly as K calls of `update` split them.
        """
        num_updates, num_envs = lasts.shape
        if num_updates > length:
            return scan_updates(update, state, transitions, lasts)
        chex.assert_tree_shape_prefix(transitions, (num_updates, num_envs))
        index = state.extra["index"]
        k = jnp.arange(num_updates, dtype=jnp.int32)
        positions = (index + k) % length
        full_at = positions == length - 1
        k_full = length - 1 - index  # >= num_updates: no rollout completes in this block

        def write(rollout, written):
            slots = jnp.where(written, positions, length)  # out of range: dropped
            return Rollout(
                transitions=jax.tree.map(lambda buf, x: buf.at[slots].set(x, mode="drop"),
                                         rollout.transitions, transitions),
                lasts=rollout.lasts.at[slots].set(lasts, mode="drop"))

        def split(key, _):
            key, k_learn = jax.random.split(key)
            return key, k_learn

        key, learn_keys = jax.lax.scan(split, state.key, None, length=num_updates)
        rollout = write(state.extra["rollout"], k <= k_full)
        learner_state = LearnerState(state.params, state.target_params, state.opt_state,
                                     state.extra["updates"])
        learner_state, loss = jax.lax.cond(
            k_full < num_updates, learn, skip, learner_state, rollout, state.hparams,
            learn_keys[jnp.minimum(k_full, num_updates - 1)])
        rollout = write(rollout, k > k_full)
        steps = state.step + (k + 1) * num_envs
        state = state._replace(
            params=learner_state.params, target_params=learner_state.target_params,
            opt_state=learner_state.opt_state, step=steps[-1], key=key,
            extra={"rollout": rollout, "index": (index + num_updates) % length,
                   "updates": learner_state.step})
        return state, {"loss": jnp.where(full_at, loss, 0.0), "learned": full_at,
                       "epsilon": acting.epsilon_at(steps, state.hparams)}

    return Agent(init=init, act=acting.act, update=update, name=name,
                 default_hparams=dict(default_hparams),
                 fast_path=FastPath(update_every=length, update_block=update_block,
                                    epsilon_greedy=acting.acting))
