"""Munchausen DQN (Vieillard, Pietquin and Geist 2020), as a learner step.

    learner = mdqn_learner(num_actions, MDQNConfig())
    agent = mdqn(num_actions, MDQNConfig())          # the learner on the replay driver

DQN's network and replay with the Munchausen target (`tdkit.td.munchausen_q_learning`): the
bootstrap is the soft value of the target network's softmax policy at temperature `tau`,
and the reward gets the bonus `alpha * clip(tau * log pi_target(a_tm1 | obs_tm1), l0, 0)`.
Acting stays epsilon-greedy on the online network's values (as in the paper's M-DQN).
"""

import dataclasses

import jax
import jax.numpy as jnp

from agents import replay_driver
from agents.base import Agent
from agents.dqn import (
    LEARNER_HPARAMS,
    QNetworkConfig,
    check_learning_rate,
    q_optimizer,
    q_torso,
    validate_network,
)
from agents.learner import Learner, gradient_learner
from tdkit import losses, td, values


@dataclasses.dataclass(frozen=True)
class MDQNConfig(QNetworkConfig):
    """Static M-DQN settings: the Q-network's and the Munchausen target's (paper values)."""

    entropy_temperature: float = dataclasses.field(
        default=0.03, metadata={"help": "tau, the softmax temperature of the target policy"})
    munchausen_coefficient: float = dataclasses.field(
        default=0.9, metadata={"help": "alpha, the weight of the log-policy bonus"})
    clip_value_min: float = dataclasses.field(
        default=-1.0, metadata={"help": "l0 <= 0, the lower clip of tau * log pi"})
    loss: str = dataclasses.field(default="huber", metadata={"help": "'huber' or 'l2'"})


def validate(config: MDQNConfig, hparams: dict, agent: str = "mdqn") -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    validate_network(config, hparams, agent)
    if config.entropy_temperature <= 0:
        raise ValueError(f"{agent}: `entropy_temperature` must be > 0, got "
                         f"{config.entropy_temperature}")
    if config.clip_value_min > 0:
        raise ValueError(f"{agent}: `clip_value_min` must be <= 0, got {config.clip_value_min}")
    if config.loss not in ("huber", "l2"):
        raise ValueError(f"{agent}: `loss` must be 'huber' or 'l2', got {config.loss!r}")


def mdqn_learner(num_actions: int, config: MDQNConfig = MDQNConfig(), name: str = "mdqn"
                 ) -> Learner:
    """The M-DQN learner for `[O]` float observations (`step` as `dqn_learner`'s)."""
    validate(config, {**LEARNER_HPARAMS, **replay_driver.HPARAMS}, name)
    value_fn = values.mlp(config.hidden_sizes, num_actions, layer_norm=config.layer_norm,
                          torso=q_torso(config))
    elementwise = losses.l2_loss if config.loss == "l2" else losses.huber_loss

    def example_loss(params, target_params, transition, weight, key):
        del key
        t = transition
        delta = td.munchausen_q_learning(
            value_fn.apply(params, t.obs_tm1), t.a_tm1, t.r_t, t.discount_t,
            value_fn.apply(target_params, t.obs_t), value_fn.apply(target_params, t.obs_tm1),
            config.entropy_temperature, config.munchausen_coefficient, config.clip_value_min)
        return weight * elementwise(delta), jnp.abs(delta)

    return gradient_learner(
        name, value_fn.init, example_loss, jax.vmap(value_fn.apply, in_axes=(None, 0)),
        q_optimizer(config), LEARNER_HPARAMS,
        check_hparams=lambda hparams: check_learning_rate(hparams, name))


def mdqn(num_actions: int, config: MDQNConfig = MDQNConfig(), name: str = "mdqn") -> Agent:
    """The M-DQN agent: `mdqn_learner` on the replay driver."""
    return replay_driver.replay_agent(mdqn_learner(num_actions, config, name), config,
                                      num_actions, name)
