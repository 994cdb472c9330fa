"""Rainbow (Hessel et al. 2018) as a learner step: C51 + double + dueling + noisy + n-step +
prioritized replay, every part switchable.

    learner = rainbow_learner(num_actions, RainbowConfig())
    agent = rainbow(num_actions, RainbowConfig())    # the learner on the replay driver

The network is a categorical (C51) Q-network with logits `[A, K]`: `tdkit.networks.noisy_mlp`
(factorised Gaussian noise in every layer, `noisy`) with a dueling head (`dueling`), or the
plain/dueling MLP without noise. The loss of a transition is C51's cross-entropy
(`tdkit.categorical_double_q_learning` with `double`, else `categorical_q_learning`); the
replay driver adds n-step returns (`n_step`) and prioritized replay (`prioritized`, with the
cross-entropies as priorities, as in Dopamine). Noise: one sample per gradient step for the
online network, an independent one for the target network and one for the double-Q selector
(each shared by the batch); acting draws its own noise per step (exploration by noise) and
greedy evaluation uses the noise-free network.
"""

import dataclasses

import jax
import jax.numpy as jnp

from agents import replay_driver
from agents.base import Agent
from agents.c51 import C51Config, expected_values
from agents.c51 import validate as validate_c51
from agents.dqn import LEARNER_HPARAMS, check_learning_rate, q_optimizer, q_torso
from agents.learner import Learner, gradient_learner
from tdkit import distributional, networks, values


@dataclasses.dataclass(frozen=True)
class RainbowConfig(C51Config):
    """Static Rainbow settings: C51's plus the switchable parts (Rainbow's defaults on)."""

    double: bool = dataclasses.field(
        default=True, metadata={"help": "Double-DQN action selection"})
    n_step: int = dataclasses.field(default=3, metadata={"help": "n-step returns"})
    prioritized: bool = dataclasses.field(
        default=True, metadata={"help": "prioritized replay (priorities: cross-entropies)"})
    dueling: bool = dataclasses.field(default=True, metadata={"help": "dueling head"})
    noisy: bool = dataclasses.field(
        default=True, metadata={"help": "noisy linear layers (factorised Gaussian)"})
    sigma0: float = dataclasses.field(
        default=0.5, metadata={"help": "initial noise scale of the noisy layers"})


def validate(config: RainbowConfig, hparams: dict, agent: str = "rainbow") -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    validate_c51(config, hparams, agent)
    if config.sigma0 < 0:
        raise ValueError(f"{agent}: `sigma0` must be >= 0, got {config.sigma0}")


def _network(num_actions: int, config: RainbowConfig):
    if config.noisy:
        return networks.noisy_mlp(config.hidden_sizes, num_actions, config.num_atoms,
                                  config.dueling, config.layer_norm, config.sigma0,
                                  torso=q_torso(config))
    if config.dueling:
        return networks.dueling_mlp(config.hidden_sizes, num_actions, config.num_atoms,
                                    config.layer_norm, torso=q_torso(config))
    return values.mlp(config.hidden_sizes, num_actions, num_atoms=config.num_atoms,
                      layer_norm=config.layer_norm, torso=q_torso(config))


def rainbow_learner(num_actions: int, config: RainbowConfig = RainbowConfig(),
                    name: str = "rainbow") -> Learner:
    """The Rainbow learner for `[O]` float observations (`step` as `dqn_learner`'s;
    priorities are the per-example cross-entropies)."""
    validate(config, {**LEARNER_HPARAMS, **replay_driver.HPARAMS}, name)
    atoms = jnp.linspace(config.v_min, config.v_max, config.num_atoms, dtype=jnp.float32)
    net = _network(num_actions, config)

    def logits(params, obs, key):
        return net.apply(params, obs, key) if config.noisy else net.apply(params, obs)

    def example_loss(params, target_params, transition, weight, key):
        k_online, k_target, k_select = jax.random.split(key, 3)
        t = transition
        logits_tm1 = logits(params, t.obs_tm1, k_online)
        logits_t = logits(target_params, t.obs_t, k_target)
        if config.double:
            selector = expected_values(jax.lax.stop_gradient(
                logits(params, t.obs_t, k_select)), atoms)
            loss = distributional.categorical_double_q_learning(
                atoms, logits_tm1, t.a_tm1, t.r_t, t.discount_t, atoms, logits_t, selector)
        else:
            loss = distributional.categorical_q_learning(
                atoms, logits_tm1, t.a_tm1, t.r_t, t.discount_t, atoms, logits_t)
        return weight * loss, loss

    def action_values(params, obs, key=None):
        batch = jax.vmap(logits, in_axes=(None, 0, None))(params, obs, key)
        return expected_values(batch, atoms)

    return gradient_learner(
        name, net.init, example_loss,
        action_values if config.noisy else (lambda params, obs: action_values(params, obs)),
        q_optimizer(config), LEARNER_HPARAMS,
        check_hparams=lambda hparams: check_learning_rate(hparams, name),
        noisy_acting=config.noisy)


def rainbow(num_actions: int, config: RainbowConfig = RainbowConfig(), name: str = "rainbow"
            ) -> Agent:
    """The Rainbow agent: `rainbow_learner` on the replay driver."""
    return replay_driver.replay_agent(rainbow_learner(num_actions, config, name), config,
                                      num_actions, name)
