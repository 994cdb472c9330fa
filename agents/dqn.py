"""DQN and Double DQN (Mnih et al. 2015; van Hasselt et al. 2016) as a learner step.

    learner = dqn_learner(num_actions, DQNConfig())
    state = learner.init(key, example_obs, hparams)
    state, info = learner.step(state, batch, weights, hparams, key)   # one gradient step

The update maths only: a `tdkit.values.mlp` Q-network, the TD loss `tdkit.losses.td_loss`
(`q_learning` or `double_q_learning`, Huber or l2) weighted by importance weights, optional
per-example gradient clipping (`tdkit.grads.clipped_mean_grad`) and any optax optimizer
with an optional linear learning-rate decay (an optax schedule). Replay, n-step returns,
learning starts, target-network updates and acting belong to the replay driver
(`agents.replay_driver`); `dqn(num_actions, config)` puts the two together.
"""

import dataclasses

import jax
import optax

from agents import replay_driver
from agents.base import Agent
from agents.learner import Learner, gradient_learner, make_optimizer, td_example_loss
from tdkit import losses, values


@dataclasses.dataclass(frozen=True)
class QNetworkConfig(replay_driver.ReplayConfig):
    """The replay driver's settings plus those of an MLP Q-network and its optimizer, shared
    by the DQN family (DQN, C51, QR-DQN, ...; each agent's config extends this one).

    The defaults solve CartPole-v1 with DQN (tuned with the jitted loop, 16 envs, 240k
    steps; see README): LayerNorm, a target copied every 20 gradient steps and a learning
    rate decayed linearly to 0 over 15k gradient steps.
    """

    hidden_sizes: tuple[int, ...] = dataclasses.field(
        default=(120, 84), metadata={"help": "hidden layer sizes of the Q-network MLP"})
    layer_norm: bool = dataclasses.field(
        default=True, metadata={"help": "LayerNorm after each hidden layer"})
    optimizer: str = dataclasses.field(
        default="adam", metadata={"help": "any optax optimizer taking learning_rate"})
    double: bool = dataclasses.field(
        default=False, metadata={"help": "Double DQN target (select with online, evaluate "
                                         "with target network)"})
    max_grad_norm: float | None = dataclasses.field(
        default=None, metadata={"help": "clip the global gradient norm; None: no clipping"})
    learning_rate_decay_steps: int | None = dataclasses.field(
        default=15_000, metadata={"help": "decay the learning rate linearly to 0 over this many "
                                        "gradient steps; None: constant"})
    torso: str = dataclasses.field(
        default="auto", metadata={"help": "conv torso before the MLP: 'auto' (none for vector "
                                          "observations; for images 'minatar' below 36x36, "
                                          "else 'nature'), 'none', 'minatar', 'nature'"})


@dataclasses.dataclass(frozen=True)
class DQNConfig(QNetworkConfig):
    """Static DQN settings: the replay driver's, the Q-network's and the loss's."""

    loss: str = dataclasses.field(default="l2", metadata={"help": "'huber' or 'l2'"})
    per_example_max_norm: float | None = dataclasses.field(
        default=None, metadata={"help": "clip each example's gradient to this norm, then "
                                        "average (DP-SGD style); None: no clipping"})


LEARNER_HPARAMS = {"learning_rate": 2e-3}
DEFAULT_HPARAMS = {**LEARNER_HPARAMS, **replay_driver.HPARAMS}
HPARAM_HELP = {"learning_rate": "optimizer step size", **replay_driver.HPARAM_HELP}


TORSOS = ("auto", "none", "minatar", "nature")


def resolve_torso(torso: str, observation_shape: tuple) -> str:
    """The torso `"auto"` means for observations of `observation_shape`: 'none' for vectors,
    'minatar' for images `[H, W, C]` below 36 x 36 (MinAtar's 10 x 10), else 'nature'
    (Atari's 84 x 84). Explicit choices are returned as they are."""
    if torso != "auto":
        return torso
    if len(observation_shape) != 3:
        return "none"
    return "minatar" if min(observation_shape[:2]) < 36 else "nature"


def q_torso(config) -> values.Torso | None:
    """`tdkit.values.conv_torso` of `config.torso` (LayerNorm as `config.layer_norm`), or None
    ('none', or 'auto' not resolved for an image: the network takes vector observations).

    The agents cast observations to float32 (replay, acting), so Atari's uint8 frames reach
    the 'nature' torso as floats in [0, 255]: it divides them by 255 first (the scaling the
    torso itself applies to uint8 input)."""
    if config.torso in ("auto", "none"):
        return None
    torso = values.conv_torso(config.torso, layer_norm=config.layer_norm)
    if config.torso == "nature":
        return torso._replace(apply=lambda params, obs: torso.apply(params, obs / 255.0))
    return torso


def validate_network(config: QNetworkConfig, hparams: dict, agent: str) -> None:
    """Raises ValueError naming the setting for invalid driver, network or optimizer settings."""
    replay_driver.validate(config, hparams, agent)
    if config.torso not in TORSOS:
        raise ValueError(f"{agent}: `torso` must be one of {TORSOS}, got {config.torso!r}")
    if config.learning_rate_decay_steps is not None and config.learning_rate_decay_steps <= 0:
        raise ValueError(f"{agent}: `learning_rate_decay_steps` must be > 0, got "
                         f"{config.learning_rate_decay_steps}")
    if not hasattr(optax, config.optimizer):
        raise ValueError(f"{agent}: `optimizer` {config.optimizer!r} is not an optax optimizer")
    if any(size <= 0 for size in config.hidden_sizes):
        raise ValueError(f"{agent}: `hidden_sizes` must be positive, got {config.hidden_sizes}")
    if config.max_grad_norm is not None and config.max_grad_norm <= 0:
        raise ValueError(f"{agent}: `max_grad_norm` must be > 0 or None, got "
                         f"{config.max_grad_norm}")
    check_learning_rate(hparams, agent)


def q_optimizer(config: QNetworkConfig):
    """`optimizer(hparams)` of a `QNetworkConfig` (for `agents.learner.gradient_learner`)."""
    return lambda hparams: make_optimizer(config.optimizer, hparams["learning_rate"],
                                          config.learning_rate_decay_steps,
                                          config.max_grad_norm)


def validate(config: DQNConfig, hparams: dict, agent: str = "dqn") -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    validate_network(config, hparams, agent)
    if config.loss not in ("huber", "l2"):
        raise ValueError(f"{agent}: `loss` must be 'huber' or 'l2', got {config.loss!r}")
    if config.per_example_max_norm is not None and config.per_example_max_norm <= 0:
        raise ValueError(f"{agent}: `per_example_max_norm` must be > 0 or None, got "
                         f"{config.per_example_max_norm}")


def check_learning_rate(hparams, agent: str = "dqn") -> None:
    """ValueError unless a concrete `hparams["learning_rate"]` is > 0."""
    learning_rate = hparams.get("learning_rate", 1.0)
    if not isinstance(learning_rate, jax.core.Tracer) and float(learning_rate) <= 0:
        raise ValueError(f"{agent}: `learning_rate` must be > 0, got {float(learning_rate)}")


def dqn_learner(num_actions: int, config: DQNConfig = DQNConfig(), name: str = "dqn"
                ) -> Learner:
    """The DQN (or, with `config.double`, Double DQN) learner for `[O]` float observations.

    `step(state, batch, weights, hparams, key)` (`key` unused): `batch` a `tdkit.Transition`
    `[B]`, `weights` float32 `[B]`; the loss is `mean_b(weights[b] * loss(delta_b))` with
    `delta_b` the (double) Q-learning TD error against `state.target_params`; `info = {"loss":
    [], "priorities": |delta| [B]}`. Reads `hparams["learning_rate"]`.
    """
    value_fn = values.mlp(config.hidden_sizes, num_actions, layer_norm=config.layer_norm,
                          torso=q_torso(config))
    rule = "double_q_learning" if config.double else "q_learning"
    loss_fn = losses.td_loss(value_fn, rule, config.loss)
    loss_aux = losses.td_loss(value_fn, rule, config.loss, has_aux=True)

    return gradient_learner(
        name, value_fn.init, td_example_loss(loss_aux), jax.vmap(value_fn.apply, in_axes=(None, 0)),
        q_optimizer(config), LEARNER_HPARAMS,
        check_hparams=lambda hparams: check_learning_rate(hparams, name),
        clipping=None if config.per_example_max_norm is None else (
            config.per_example_max_norm, loss_fn, loss_fn.structure))


def dqn(num_actions: int, config: DQNConfig = DQNConfig(), name: str = "dqn") -> Agent:
    """The DQN agent: `dqn_learner` on the replay driver (`agents.replay_driver`).

    Args:
      num_actions: `A`, the number of discrete actions.
      config: structural settings.
      name: registry name.

    Returns:
      An `Agent`; `hparams` keys: learning_rate, gamma, epsilon_start, epsilon_end, tau,
      importance_beta.
    """
    validate(config, DEFAULT_HPARAMS, name)
    return replay_driver.replay_agent(dqn_learner(num_actions, config, name), config,
                                      num_actions, name)
