"""What the continuous-action learners (DDPG, TD3, SAC) share: their settings, their
optimizers, and how a learner becomes an agent on the replay driver.

    agent = continuous_agent(td3_learner(low, high, config), config, low, high)

An actor-critic learner keeps `params = {"actor": ..., "critic": ..., ...}` (and the same
structure as `target_params`, Polyak-averaged by the replay driver every `polyak_every`
learner steps) and one optax state per part. Actions are float32 `[A]` inside the box
`[action_low, action_high]`: the actor rescales its tanh output to the box once
(`tdkit.continuous`), so the replay stores environment actions and the critics see them.
Acting (`agents.exploration.ContinuousActing`) takes uniformly random actions for the first
`learning_starts` environment steps, then the learner's exploring policy; evaluation is
greedy (the deterministic actor, or the squashed Gaussian's mode).
"""

import dataclasses

import numpy as np
import optax

from agents import exploration, replay_driver
from agents.base import Agent
from agents.learner import Learner, make_optimizer


@dataclasses.dataclass(frozen=True)
class ActorCriticConfig(replay_driver.ReplayConfig):
    """The replay driver's settings (Polyak targets by default) plus the actor's and the
    critics' networks and optimizer (defaults: a 256-256 MLP each, Adam, as CleanRL and
    sbx; replay and start chosen so Pendulum-v1 is solved well within 20k steps)."""

    buffer_size: int = dataclasses.field(
        default=100_000, metadata={"help": "replay capacity (transitions)"})
    batch_size: int = dataclasses.field(
        default=256, metadata={"help": "transitions per gradient step"})
    learning_starts: int = dataclasses.field(
        default=1_000, metadata={"help": "env steps of uniformly random actions (and stored "
                                         "transitions) before learning starts"})
    target_update: str = dataclasses.field(
        default="polyak", metadata={"help": "'periodic' (copy) or 'polyak' (tau averaging)"})
    actor_hidden_sizes: tuple[int, ...] = dataclasses.field(
        default=(256, 256), metadata={"help": "hidden layer sizes of the actor MLP"})
    critic_hidden_sizes: tuple[int, ...] = dataclasses.field(
        default=(256, 256), metadata={"help": "hidden layer sizes of each critic MLP"})
    layer_norm: bool = dataclasses.field(
        default=False, metadata={"help": "LayerNorm after each hidden layer (actor and "
                                         "critics)"})
    optimizer: str = dataclasses.field(
        default="adam", metadata={"help": "any optax optimizer taking learning_rate"})
    max_grad_norm: float | None = dataclasses.field(
        default=None, metadata={"help": "clip each part's global gradient norm; None: no "
                                        "clipping"})


LEARNER_HPARAMS = {"learning_rate": 1e-3, "actor_learning_rate": 1e-3}
HPARAM_HELP = {"learning_rate": "critic step size", "actor_learning_rate": "actor step size",
               "gamma": replay_driver.HPARAM_HELP["gamma"],
               "tau": replay_driver.HPARAM_HELP["tau"],
               "importance_beta": replay_driver.HPARAM_HELP["importance_beta"]}


def validate(config: ActorCriticConfig, hparams: dict, agent: str) -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    replay_driver.validate(config, hparams, agent)
    if not hasattr(optax, config.optimizer):
        raise ValueError(f"{agent}: `optimizer` {config.optimizer!r} is not an optax optimizer")
    for field in ("actor_hidden_sizes", "critic_hidden_sizes"):
        sizes = getattr(config, field)
        if any(size <= 0 for size in sizes):
            raise ValueError(f"{agent}: `{field}` must be positive, got {sizes}")
    if config.max_grad_norm is not None and config.max_grad_norm <= 0:
        raise ValueError(f"{agent}: `max_grad_norm` must be > 0 or None, got "
                         f"{config.max_grad_norm}")
    import jax

    for name, value in hparams.items():
        if name.endswith("learning_rate") and not isinstance(value, jax.core.Tracer) \
                and float(value) <= 0:
            raise ValueError(f"{agent}: `{name}` must be > 0, got {float(value)}")


def part_optimizer(config: ActorCriticConfig, hparams, rate: str) -> optax.GradientTransformation:
    """The optimizer of one part (actor, critic), its step size `hparams[rate]`."""
    return make_optimizer(config.optimizer, hparams[rate], None, config.max_grad_norm)


def action_bounds(action_space) -> tuple[np.ndarray, np.ndarray]:
    """`(low [A], high [A])` float32 of a 1-D Gymnasium `Box`; ValueError otherwise."""
    import gymnasium

    if not (isinstance(action_space, gymnasium.spaces.Box) and len(action_space.shape) == 1):
        raise ValueError(f"continuous-action agents need a 1-D Box action space, got "
                         f"{action_space}")
    low = np.asarray(action_space.low, np.float32)
    high = np.asarray(action_space.high, np.float32)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(f"continuous-action agents need finite action bounds, got "
                         f"{action_space}")
    return low, high


def continuous_agent(learner: Learner, config: ActorCriticConfig, action_low, action_high,
                     name: str | None = None, hparam_defaults: dict | None = None) -> Agent:
    """`learner` (with a `policy`) on the replay driver, acting in the action box;
    `hparam_defaults` overrides the driver's defaults (e.g. `{"gamma": 0.98}`)."""
    acting = exploration.ContinuousActing(learner.policy, action_low, action_high,
                                          random_steps=config.learning_starts)
    return replay_driver.replay_agent(learner, config, None, name or learner.name,
                                      acting=acting, hparam_defaults=hparam_defaults)
