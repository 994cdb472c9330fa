"""IQN (Dabney, Ostrovski, Silver and Munos 2018): implicit quantile networks, as a learner step.

    learner = iqn_learner(num_actions, IQNConfig())
    agent = iqn(num_actions, IQNConfig())            # the learner on the replay driver

The network `tdkit.networks.iqn_mlp` maps an observation and quantile fractions `tau [N]` to
quantile values `[N, A]`. For each transition (its own key) the learner samples
`tau ~ U(0, 1)^N` for the prediction and `tau' ~ U(0, 1)^N'` for the target network at
`obs_t`; the target action maximises the mean of `N''` further target samples (or of the
online network's, with `double`), and the loss is the quantile Huber loss
`tdkit.iqn_q_learning`. Acting is epsilon-greedy on the mean over `num_quantile_samples`
fixed fractions, the midpoints `(2i + 1) / (2K)` (deterministic, so evaluation is too).
Priorities are the per-example losses.
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
from tdkit import distributional, networks


@dataclasses.dataclass(frozen=True)
class IQNConfig(QNetworkConfig):
    """Static IQN settings: the network's and the numbers of sampled quantile fractions."""

    num_tau_samples: int = dataclasses.field(
        default=16, metadata={"help": "fractions N sampled for the prediction"})
    num_tau_prime_samples: int = dataclasses.field(
        default=16, metadata={"help": "fractions N' sampled for the target"})
    num_quantile_samples: int = dataclasses.field(
        default=16, metadata={"help": "fractions K for choosing actions (target and acting)"})
    embedding_dim: int = dataclasses.field(
        default=64, metadata={"help": "size of the cosine embedding of tau"})
    huber_param: float = dataclasses.field(
        default=1.0, metadata={"help": "Huber threshold kappa of the quantile loss"})


def validate(config: IQNConfig, hparams: dict, agent: str = "iqn") -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    validate_network(config, hparams, agent)
    for name in ("num_tau_samples", "num_tau_prime_samples", "num_quantile_samples",
                 "embedding_dim"):
        if getattr(config, name) < 1:
            raise ValueError(f"{agent}: `{name}` must be >= 1, got {getattr(config, name)}")
    if config.huber_param < 0:
        raise ValueError(f"{agent}: `huber_param` must be >= 0, got {config.huber_param}")


def iqn_learner(num_actions: int, config: IQNConfig = IQNConfig(), name: str = "iqn"
                ) -> Learner:
    """The IQN learner for `[O]` float observations (`step` as `dqn_learner`'s, with the
    fractions drawn from each example's own key; priorities are the per-example losses)."""
    validate(config, {**LEARNER_HPARAMS, **replay_driver.HPARAMS}, name)
    net = networks.iqn_mlp(config.hidden_sizes, num_actions, config.embedding_dim,
                           config.layer_norm, torso=q_torso(config))
    acting_taus = jnp.asarray(distributional.quantile_midpoints(config.num_quantile_samples))

    def example_loss(params, target_params, transition, weight, key):
        k_tm1, k_t, k_select = jax.random.split(key, 3)
        tau_tm1 = jax.random.uniform(k_tm1, (config.num_tau_samples,))
        tau_t = jax.random.uniform(k_t, (config.num_tau_prime_samples,))
        tau_select = jax.random.uniform(k_select, (config.num_quantile_samples,))
        t = transition
        dist_q_tm1 = net.apply(params, t.obs_tm1, tau_tm1)
        dist_q_t = net.apply(target_params, t.obs_t, tau_t)
        selector = net.apply(params if config.double else target_params, t.obs_t, tau_select)
        loss = distributional.iqn_q_learning(
            dist_q_tm1, tau_tm1, t.a_tm1, t.r_t, t.discount_t,
            jax.lax.stop_gradient(selector), dist_q_t, config.huber_param)
        return weight * loss, loss

    def action_values(params, obs):
        quantiles = jax.vmap(net.apply, in_axes=(None, 0, None))(params, obs, acting_taus)
        return quantiles.mean(axis=1)

    return gradient_learner(
        name, lambda key, obs: net.init(key, obs), example_loss, action_values,
        q_optimizer(config), LEARNER_HPARAMS,
        check_hparams=lambda hparams: check_learning_rate(hparams, name), per_example_keys=True)


def iqn(num_actions: int, config: IQNConfig = IQNConfig(), name: str = "iqn") -> Agent:
    """The IQN agent: `iqn_learner` on the replay driver."""
    return replay_driver.replay_agent(iqn_learner(num_actions, config, name), config,
                                      num_actions, name)
