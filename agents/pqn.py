"""PQN and Q(lambda) on rollouts (Gallici et al. 2025, "Simplifying Deep Temporal Difference
Learning") as a learner step on the rollout driver.

    learner = q_lambda_learner(num_actions, PQNConfig())
    state, info = learner.step(state, rollout, None, hparams, key)   # epochs x minibatches

No replay and (by default) no target network: the N environments decorrelate the data, and
LayerNorm keeps the bootstrapped regression stable. One learner step takes the `[T, N]`
rollout of the driver (`agents.rollout_driver.Rollout`), computes every target once with the
parameters that collected it, then takes `num_epochs` passes over the `T * N` transitions
in `num_minibatches` shuffled minibatches (one optimizer step each) on

    loss = 0.5 * mean_b (G_b - q(obs_tm1_b)[a_tm1_b]) ** 2.

The targets `G` are Q(lambda) returns over the rollout of each environment
(`tdkit.lambda_returns`, backwards):

    G_t = r_t + discount_t * ((1 - lambda_t) * max_a q(obs_t)[a] + lambda_t * G_{t+1}),
    G_{T-1} = r_{T-1} + discount_{T-1} * max_a q(obs_t[T-1])[a],

with `lambda_t = lambda * (1 - last_t)`: the return is cut at every episode end, where it
bootstraps from the TRUE final observation `obs_t` (`discount_t` is 0 only on termination,
so a time-limit truncation still bootstraps; purejaxql's reference code treats it as
termination). `trace="peng"` is Peng's Q(lambda) (PQN); `trace="watkins"` also cuts the
return after every non-greedy action (`tdkit.watkins_lambda`). With the driver's
`target_period` set, the targets come from the frozen target parameters instead.

`pqn(num_actions, config)` is this learner on the rollout driver; the defaults are
purejaxql's CartPole configuration (`config/alg/pqn_cartpole.yaml`): 32 envs x 64 steps,
4 epochs x 16 minibatches, two 256-unit LayerNorm layers, RAdam at 1e-4 decayed linearly,
global-norm clipping at 10, rewards scaled by 0.1, gamma 0.99, lambda 0.95, epsilon 1 to
0.2 over 100k steps.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from agents import rollout_driver
from agents.base import Agent
from agents.dqn import TORSOS, q_torso
from agents.learner import Learner, LearnerState, copy_tree, make_optimizer
from tdkit import returns, values

TRACES = ("peng", "watkins")


@dataclasses.dataclass(frozen=True)
class PQNConfig(rollout_driver.RolloutConfig):
    """The rollout driver's settings plus the Q-network's, the optimizer's and the update
    schedule's (defaults: purejaxql's `pqn_cartpole.yaml`)."""

    rollout_length: int = dataclasses.field(
        default=64, metadata={"help": "loop iterations (N env steps each) per rollout"})
    epsilon_decay_steps: int = dataclasses.field(
        default=100_000, metadata={"help": "env steps of the linear epsilon decay"})
    hidden_sizes: tuple[int, ...] = dataclasses.field(
        default=(256, 256), metadata={"help": "hidden layer sizes of the Q-network MLP"})
    layer_norm: bool = dataclasses.field(
        default=True, metadata={"help": "LayerNorm after each hidden layer"})
    optimizer: str = dataclasses.field(
        default="radam", metadata={"help": "any optax optimizer taking learning_rate"})
    max_grad_norm: float | None = dataclasses.field(
        default=10.0, metadata={"help": "clip the global gradient norm; None: no clipping"})
    learning_rate_decay_steps: int | None = dataclasses.field(
        default=15_616, metadata={"help": "decay the learning rate linearly to 0 over this "
                                          "many gradient steps; None: constant"})
    num_epochs: int = dataclasses.field(
        default=4, metadata={"help": "passes over each rollout"})
    num_minibatches: int = dataclasses.field(
        default=16, metadata={"help": "minibatches per pass (must divide T * N)"})
    trace: str = dataclasses.field(
        default="peng", metadata={"help": "'peng' (PQN) or 'watkins' (cut after exploratory "
                                          "actions)"})
    torso: str = dataclasses.field(
        default="auto", metadata={"help": "conv torso before the MLP: 'auto' (none for vector "
                                          "observations; for images 'minatar' below 36x36, "
                                          "else 'nature'), 'none', 'minatar', 'nature'"})


LEARNER_HPARAMS = {"learning_rate": 1e-4, "lambda_": 0.95, "reward_scale": 0.1}
DRIVER_DEFAULTS = {"epsilon_end": 0.2}  # purejaxql's CartPole EPS_FINISH
DEFAULT_HPARAMS = {**LEARNER_HPARAMS, **rollout_driver.HPARAMS, **DRIVER_DEFAULTS}
HPARAM_HELP = {"learning_rate": "optimizer step size",
               "lambda_": "Q(lambda) trace-decay parameter",
               "reward_scale": "rewards are multiplied by this in the targets",
               **rollout_driver.HPARAM_HELP}


def validate(config: PQNConfig, hparams: dict, agent: str = "pqn") -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    rollout_driver.validate(config, hparams, agent)
    for name in ("num_epochs", "num_minibatches"):
        if getattr(config, name) <= 0:
            raise ValueError(f"{agent}: `{name}` must be > 0, got {getattr(config, name)}")
    if config.torso not in TORSOS:
        raise ValueError(f"{agent}: `torso` must be one of {TORSOS}, got {config.torso!r}")
    if config.trace not in TRACES:
        raise ValueError(f"{agent}: `trace` must be one of {TRACES}, got {config.trace!r}")
    if not hasattr(optax, config.optimizer):
        raise ValueError(f"{agent}: `optimizer` {config.optimizer!r} is not an optax optimizer")
    if any(size <= 0 for size in config.hidden_sizes):
        raise ValueError(f"{agent}: `hidden_sizes` must be positive, got {config.hidden_sizes}")
    for name in ("max_grad_norm", "learning_rate_decay_steps"):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ValueError(f"{agent}: `{name}` must be > 0 or None, got {value}")
    check_hparams(hparams, agent)


def check_hparams(hparams, agent: str = "pqn") -> None:
    """ValueError naming a concrete hyperparameter outside its range."""
    concrete = {k: float(v) for k, v in hparams.items()
                if not isinstance(v, jax.core.Tracer)}
    if concrete.get("learning_rate", 1.0) <= 0:
        raise ValueError(f"{agent}: `learning_rate` must be > 0, got "
                         f"{concrete['learning_rate']}")
    if not 0.0 <= concrete.get("lambda_", 0.0) <= 1.0:
        raise ValueError(f"{agent}: `lambda_` must be in [0, 1], got {concrete['lambda_']}")


def rollout_targets(q_t, a_next, r_t, discount_t, lasts, lambda_, trace="peng"):
    """Q(lambda) targets of ONE environment's rollout, cut at episode ends.

    Args:
      q_t: float `[T, A]`, action values of the next observations `obs_t` (the true final
        observation where an episode ended).
      a_next: int `[T]`, the action taken from `obs_t[t]` (the rollout's `a_tm1[t + 1]`; the
        last entry is unused). Only read with `trace="watkins"`.
      r_t: float `[T]` rewards; discount_t: float `[T]` (0 on termination); lasts: bool `[T]`,
        the transition ends an episode (terminated or truncated).
      lambda_: scalar in [0, 1].
      trace: "peng" or "watkins".

    Returns:
      float `[T]` targets, under `stop_gradient`.
    """
    keep = 1.0 - lasts.astype(q_t.dtype)
    if trace == "watkins":
        lam = returns.watkins_lambda(q_t, a_next, lambda_) * keep
    else:
        lam = lambda_ * keep
    return returns.lambda_returns(r_t, discount_t, jnp.max(q_t, axis=-1), lam)


def q_lambda_learner(num_actions: int, config: PQNConfig = PQNConfig(), name: str = "pqn"
                     ) -> Learner:
    """The PQN / Q(lambda) rollout learner for `[O]` float observations.

    `step(state, rollout, None, hparams, key)`: `rollout` an `agents.rollout_driver.Rollout`
    `[T, N]` with `T * N` divisible by `config.num_minibatches`; `key` shuffles the
    minibatches. `state.step` counts learner steps (rollouts), the optimizer's own count
    the `num_epochs * num_minibatches` gradient steps of each. `info = {"loss": []}`, the
    mean minibatch loss. Reads `hparams["learning_rate"]`, `["lambda_"]`, `["reward_scale"]`.
    """
    value_fn = values.mlp(config.hidden_sizes, num_actions, layer_norm=config.layer_norm,
                          torso=q_torso(config))
    q_batch = jax.vmap(value_fn.apply, in_axes=(None, 0))
    bootstrap_from_target = config.target_period is not None

    def optimizer(hparams):
        return make_optimizer(config.optimizer, hparams["learning_rate"],
                              config.learning_rate_decay_steps, config.max_grad_norm)

    def init(key, example_obs, hparams):
        params = value_fn.init(key, jnp.asarray(example_obs, jnp.float32))
        return LearnerState(params=params, target_params=copy_tree(params),
                            opt_state=copy_tree(optimizer(hparams).init(params)),
                            step=jnp.zeros((), jnp.int32))

    def targets_of(params, rollout, hparams):
        tr = rollout.transitions
        length, num_envs = rollout.lasts.shape
        q_t = q_batch(params, tr.obs_t.reshape((length * num_envs,) + tr.obs_t.shape[2:]))
        q_t = jax.lax.stop_gradient(q_t.reshape(length, num_envs, -1))
        a_next = jnp.concatenate([tr.a_tm1[1:], tr.a_tm1[-1:]], axis=0)
        per_env = jax.vmap(rollout_targets, in_axes=(1, 1, 1, 1, 1, None, None), out_axes=1)
        return per_env(q_t, a_next, hparams["reward_scale"] * tr.r_t, tr.discount_t,
                       rollout.lasts, hparams["lambda_"], config.trace)

    def minibatch_loss(params, obs, actions, targets):
        q = q_batch(params, obs)
        qa = jnp.take_along_axis(q, actions[:, None], axis=-1)[:, 0]
        return 0.5 * jnp.mean(jnp.square(targets - qa))

    def step(state, rollout, weights, hparams, key):
        del weights  # on-policy: every transition counts once
        length, num_envs = rollout.lasts.shape
        size = length * num_envs
        if size % config.num_minibatches:
            raise ValueError(
                f"{name}: `num_minibatches` ({config.num_minibatches}) must divide "
                f"rollout_length * num_envs ({length} * {num_envs} = {size})")
        targets = targets_of(state.target_params if bootstrap_from_target else state.params,
                             rollout, hparams).reshape(size)
        tr = rollout.transitions
        obs = tr.obs_tm1.reshape((size,) + tr.obs_tm1.shape[2:])
        actions = tr.a_tm1.reshape(size)
        opt = optimizer(hparams)

        def gradient_step(carry, minibatch):
            params, opt_state = carry
            loss, grad = jax.value_and_grad(minibatch_loss)(params, *minibatch)
            updates, opt_state = opt.update(grad, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        def epoch(carry, epoch_key):
            order = jax.random.permutation(epoch_key, size).reshape(config.num_minibatches, -1)
            return jax.lax.scan(gradient_step, carry, (obs[order], actions[order],
                                                       targets[order]))

        (params, opt_state), loss = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(key, config.num_epochs))
        return (state._replace(params=params, opt_state=opt_state, step=state.step + 1),
                {"loss": loss.mean()})

    return Learner(init=init, step=step, action_values=q_batch, name=name,
                   default_hparams=dict(LEARNER_HPARAMS),
                   check_hparams=lambda hparams: check_hparams(hparams, name))


def pqn(num_actions: int, config: PQNConfig = PQNConfig(), name: str = "pqn") -> Agent:
    """The PQN agent: `q_lambda_learner` on the rollout driver (`agents.rollout_driver`).

    Returns:
      An `Agent`; `hparams` keys: learning_rate, lambda_, reward_scale, gamma,
      epsilon_start, epsilon_end (PQN's default 0.2).
    """
    validate(config, DEFAULT_HPARAMS, name)
    return rollout_driver.rollout_agent(q_lambda_learner(num_actions, config, name), config,
                                        num_actions, name, hparam_defaults=DRIVER_DEFAULTS)
