"""C51 (Bellemare, Dabney and Munos 2017): categorical distributional DQN, as a learner step.

    learner = c51_learner(num_actions, C51Config())
    agent = c51(num_actions, C51Config())            # the learner on the replay driver

The Q-network outputs logits `[A, K]` over a fixed support of K atoms in `[v_min, v_max]`;
the loss of a transition is the cross-entropy between the projected target distribution
`Proj(r_t + discount_t * atoms, p_target(obs_t, a*))` and the predicted one
(`tdkit.distributional.categorical_rule` through `tdkit.td_loss`), with `a*` greedy on the
target network's expected values (or, with `double`, on the online network's). Actions are
epsilon-greedy on the expected values `sum_k softmax(logits)_k atoms_k`. Priorities for
prioritized replay are the per-example cross-entropies (as in Dopamine's Rainbow).
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
from agents.learner import Learner, gradient_learner, td_example_loss
from tdkit import distributional, losses, values


@dataclasses.dataclass(frozen=True)
class C51Config(QNetworkConfig):
    """Static C51 settings: the Q-network's and the support of the return distribution.

    CartPole-v1's discounted returns lie in [0, 100) for gamma = 0.99, hence the default
    support.
    """

    num_atoms: int = dataclasses.field(default=51, metadata={"help": "atoms K of the support"})
    v_min: float = dataclasses.field(default=0.0, metadata={"help": "smallest atom"})
    v_max: float = dataclasses.field(default=100.0, metadata={"help": "largest atom"})


def validate(config: C51Config, hparams: dict, agent: str = "c51") -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    validate_network(config, hparams, agent)
    if config.num_atoms < 2:
        raise ValueError(f"{agent}: `num_atoms` must be >= 2, got {config.num_atoms}")
    if not config.v_min < config.v_max:
        raise ValueError(f"{agent}: `v_min` ({config.v_min}) must be less than `v_max` "
                         f"({config.v_max})")


def expected_values(logits, atoms):
    """`sum_k softmax(logits)[..., k] * atoms[k]`: logits `[..., K]`, atoms `[K]` -> `[...]`."""
    return jax.nn.softmax(logits, axis=-1) @ atoms


def c51_learner(num_actions: int, config: C51Config = C51Config(), name: str = "c51"
                ) -> Learner:
    """The C51 learner for `[O]` float observations (`step` as `dqn_learner`'s; priorities
    are the per-example cross-entropies)."""
    validate(config, {**LEARNER_HPARAMS, **replay_driver.HPARAMS}, name)
    atoms = jnp.linspace(config.v_min, config.v_max, config.num_atoms, dtype=jnp.float32)
    value_fn = values.mlp(config.hidden_sizes, num_actions, num_atoms=config.num_atoms,
                          layer_norm=config.layer_norm, torso=q_torso(config))
    loss = losses.td_loss(value_fn, distributional.categorical_rule(atoms, config.double),
                          has_aux=True)

    def action_values(params, obs):
        return expected_values(jax.vmap(value_fn.apply, in_axes=(None, 0))(params, obs), atoms)

    return gradient_learner(name, value_fn.init, td_example_loss(loss), action_values,
                            q_optimizer(config), LEARNER_HPARAMS,
                            check_hparams=lambda hparams: check_learning_rate(hparams, name))


def c51(num_actions: int, config: C51Config = C51Config(), name: str = "c51") -> Agent:
    """The C51 agent: `c51_learner` on the replay driver."""
    return replay_driver.replay_agent(c51_learner(num_actions, config, name), config,
                                      num_actions, name)
