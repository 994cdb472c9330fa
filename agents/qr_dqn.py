"""QR-DQN (Dabney, Rowland, Bellemare and Munos 2018): quantile regression DQN, as a learner step.

    learner = qr_dqn_learner(num_actions, QRDQNConfig())
    agent = qr_dqn(num_actions, QRDQNConfig())       # the learner on the replay driver

The Q-network outputs K quantile values `[A, K]` at the fixed levels `(2i + 1) / (2K)`; the
loss of a transition is the quantile Huber loss between the predicted quantiles of `a_tm1`
and the target samples `r_t + discount_t * theta_target(obs_t, a*)`
(`tdkit.distributional.quantile_rule` through `tdkit.td_loss`), `a*` greedy on the target
network's mean quantile (or, with `double`, the online network's). Actions are
epsilon-greedy on the mean over quantiles; priorities are the per-example losses.
"""

import dataclasses

import jax

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
from agents.learner import Learner, gradient_learner, td_example_loss
from tdkit import distributional, losses, values


@dataclasses.dataclass(frozen=True)
class QRDQNConfig(QNetworkConfig):
    """Static QR-DQN settings: the Q-network's, the number of quantiles and the Huber kappa."""

    num_quantiles: int = dataclasses.field(
        default=32, metadata={"help": "quantiles K per action"})
    huber_param: float = dataclasses.field(
        default=1.0, metadata={"help": "Huber threshold kappa of the quantile loss (0: the "
                                       "plain quantile loss)"})


def validate(config: QRDQNConfig, hparams: dict, agent: str = "qr_dqn") -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    validate_network(config, hparams, agent)
    if config.num_quantiles < 1:
        raise ValueError(f"{agent}: `num_quantiles` must be >= 1, got {config.num_quantiles}")
    if config.huber_param < 0:
        raise ValueError(f"{agent}: `huber_param` must be >= 0, got {config.huber_param}")


def qr_dqn_learner(num_actions: int, config: QRDQNConfig = QRDQNConfig(),
                   name: str = "qr_dqn") -> Learner:
    """The QR-DQN learner for `[O]` float observations (`step` as `dqn_learner`'s;
    priorities are the per-example losses)."""
    validate(config, {**LEARNER_HPARAMS, **replay_driver.HPARAMS}, name)
    value_fn = values.mlp(config.hidden_sizes, num_actions, num_atoms=config.num_quantiles,
                          layer_norm=config.layer_norm, torso=q_torso(config))
    rule = distributional.quantile_rule(config.num_quantiles, config.huber_param, config.double)
    loss = losses.td_loss(value_fn, rule, has_aux=True)

    def action_values(params, obs):
        return jax.vmap(value_fn.apply, in_axes=(None, 0))(params, obs).mean(axis=-1)

    return gradient_learner(name, value_fn.init, td_example_loss(loss), action_values,
                            q_optimizer(config), LEARNER_HPARAMS,
                            check_hparams=lambda hparams: check_learning_rate(hparams, name))


def qr_dqn(num_actions: int, config: QRDQNConfig = QRDQNConfig(), name: str = "qr_dqn"
           ) -> Agent:
    """The QR-DQN agent: `qr_dqn_learner` on the replay driver."""
    return replay_driver.replay_agent(qr_dqn_learner(num_actions, config, name), config,
                                      num_actions, name)
