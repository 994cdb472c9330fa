"""TD3 (Fujimoto et al. 2018) and DDPG (Lillicrap et al. 2016) as one learner step.

    learner = td3_learner(action_low, action_high, TD3Config())
    state, info = learner.step(state, batch, weights, hparams, key)

A deterministic actor `mu(obs)` (`tdkit.continuous.deterministic_actor`, inside the action
box) and C critics `Q_c(obs, a)` (`tdkit.continuous.critic_mlp`). Each step:

1. critic step on `mean_b w_b * sum_c 0.5 * (y_b - Q_c(obs_tm1, a_tm1))^2` with
   `y = r_t + discount_t * min_c Q'_c(obs_t, a')` (`tdkit.continuous.td3_critic_loss`), where
   `a' = mu'(obs_t)` plus clipped Gaussian noise (`target_policy_smoothing`) and `Q'`, `mu'`
   the target networks;
2. every `policy_delay` steps, an actor step on `mean_b -Q_1(obs_tm1, mu(obs_tm1))`
   (`deterministic_policy_loss`, the actor's parameters only).

The target networks are the replay driver's Polyak averages (`target_update="polyak"`,
`tau`), taken every `polyak_every` learner steps (TD3: every `policy_delay`). DDPG is TD3
with its three changes switched off: one critic, no target smoothing, no delay
(`DDPG_OVERRIDES`). Acting adds Gaussian noise `exploration_noise * scale` to `mu(obs)`
(CleanRL's units, `scale` the half-width of the box) and clips to the box.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from agents import actor_critic
from agents.actor_critic import ActorCriticConfig
from agents.base import Agent
from agents.learner import Learner, LearnerState, copy_tree
from tdkit import continuous


@dataclasses.dataclass(frozen=True)
class TD3Config(ActorCriticConfig):
    """TD3's settings (defaults: the paper's and CleanRL's, gamma 0.98 from the RL Zoo's
    Pendulum settings)."""

    num_critics: int = dataclasses.field(
        default=2, metadata={"help": "critics (clipped double Q over all of them)"})
    policy_delay: int = dataclasses.field(
        default=2, metadata={"help": "critic steps per actor step"})
    polyak_every: int = dataclasses.field(
        default=2, metadata={"help": "gradient steps between Polyak updates (TD3: the policy "
                                     "delay)"})
    target_smoothing: bool = dataclasses.field(
        default=True, metadata={"help": "add clipped noise to the target action"})


DDPG_OVERRIDES = {"num_critics": 1, "policy_delay": 1, "polyak_every": 1,
                  "target_smoothing": False}
LEARNER_HPARAMS = {**actor_critic.LEARNER_HPARAMS, "exploration_noise": 0.1,
                   "policy_noise": 0.2, "noise_clip": 0.5}
HPARAM_HELP = {**actor_critic.HPARAM_HELP,
               "exploration_noise": "std of the acting noise, relative to the box half-width",
               "policy_noise": "std of the target smoothing noise (relative)",
               "noise_clip": "clip of the target smoothing noise (relative)"}
DRIVER_DEFAULTS = {"gamma": 0.98}


def validate(config: TD3Config, hparams: dict, agent: str = "td3") -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    actor_critic.validate(config, hparams, agent)
    for name in ("num_critics", "policy_delay"):
        if getattr(config, name) <= 0:
            raise ValueError(f"{agent}: `{name}` must be > 0, got {getattr(config, name)}")
    check_hparams(hparams, agent)


def check_hparams(hparams, agent: str = "td3") -> None:
    """ValueError naming a concrete noise hyperparameter below 0."""
    for name in ("exploration_noise", "policy_noise", "noise_clip"):
        value = hparams.get(name, 0.0)
        if not isinstance(value, jax.core.Tracer) and float(value) < 0:
            raise ValueError(f"{agent}: `{name}` must be >= 0, got {float(value)}")


def td3_learner(action_low, action_high, config: TD3Config = TD3Config(), name: str = "td3"
                ) -> Learner:
    """The TD3 (or DDPG, with `DDPG_OVERRIDES`) learner for `[O]` observations and actions
    `[A]` in `[action_low, action_high]` (float32 `[A]`).

    `step(state, batch [B], weights [B], hparams, key)`: `info = {"loss": [] (critic),
    "actor_loss": [] (0 on steps without an actor step), "priorities": [B] (|y - Q_1|)}`.
    """
    low = jnp.asarray(action_low, jnp.float32)
    high = jnp.asarray(action_high, jnp.float32)
    actor = continuous.deterministic_actor(low, high, config.actor_hidden_sizes,
                                           config.layer_norm)
    critic = continuous.critic_mlp(config.critic_hidden_sizes, config.num_critics,
                                   config.layer_norm)
    mu = jax.vmap(actor.apply, in_axes=(None, 0))
    q = jax.vmap(critic.apply, in_axes=(None, 0, 0))
    scale = (high - low) / 2.0

    def optimizers(hparams):
        return {"actor": actor_critic.part_optimizer(config, hparams, "actor_learning_rate"),
                "critic": actor_critic.part_optimizer(config, hparams, "learning_rate")}

    def init(key, example_obs, hparams):
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.asarray(example_obs, jnp.float32)
        params = {"actor": actor.init(k_actor, obs), "critic": critic.init(k_critic, obs, low)}
        opts = optimizers(hparams)
        opt_state = {part: opts[part].init(params[part]) for part in opts}
        return LearnerState(params=params, target_params=copy_tree(params),
                            opt_state=copy_tree(opt_state), step=jnp.zeros((), jnp.int32))

    def policy(params, obs, key, hparams):
        actions = mu(params["actor"], obs)
        if key is None:
            return actions
        noise = hparams["exploration_noise"] * scale * jax.random.normal(key, actions.shape)
        return jnp.clip(actions + noise, low, high)

    def critic_loss(critic_params, target_params, batch, weights, hparams, key):
        next_actions = mu(target_params["actor"], batch.obs_t)
        if config.target_smoothing:
            keys = jax.random.split(key, weights.shape[0])
            next_actions = jax.vmap(continuous.target_policy_smoothing,
                                    in_axes=(0, 0, None, None, None, None))(
                keys, next_actions, hparams["policy_noise"], hparams["noise_clip"], low, high)
        q_t = q(target_params["critic"], batch.obs_t, next_actions)
        q_tm1 = q(critic_params, batch.obs_tm1, batch.a_tm1)
        loss_fn = continuous.td3_critic_loss if config.num_critics > 1 or \
            config.target_smoothing else continuous.ddpg_critic_loss
        losses = jax.vmap(loss_fn)(q_tm1, batch.r_t, batch.discount_t, q_t)
        target = batch.r_t + batch.discount_t * (
            q_t.min(axis=-1) if loss_fn is continuous.td3_critic_loss else q_t[:, 0])
        return jnp.mean(weights * losses), jnp.abs(target - q_tm1[:, 0])

    def actor_loss(actor_params, critic_params, obs):
        values = q(critic_params, obs, mu(actor_params, obs))
        return jnp.mean(jax.vmap(continuous.deterministic_policy_loss)(values))

    def step(state, batch, weights, hparams, key):
        opts = optimizers(hparams)
        params, opt_state = state.params, state.opt_state
        (loss, priorities), grad = jax.value_and_grad(critic_loss, has_aux=True)(
            params["critic"], state.target_params, batch, weights, hparams, key)
        updates, critic_opt = opts["critic"].update(grad, opt_state["critic"], params["critic"])
        params = {**params, "critic": optax.apply_updates(params["critic"], updates)}

        def actor_step(operand):
            actor_params, actor_opt = operand
            value, grad = jax.value_and_grad(actor_loss)(actor_params, params["critic"],
                                                          batch.obs_tm1)
            updates, actor_opt = opts["actor"].update(grad, actor_opt, actor_params)
            return optax.apply_updates(actor_params, updates), actor_opt, value

        def no_actor_step(operand):
            return (*operand, jnp.zeros((), jnp.float32))

        actor_params, actor_opt, a_loss = jax.lax.cond(
            (state.step + 1) % config.policy_delay == 0, actor_step, no_actor_step,
            (params["actor"], opt_state["actor"]))
        state = state._replace(params={**params, "actor": actor_params},
                               opt_state={"actor": actor_opt, "critic": critic_opt},
                               step=state.step + 1)
        return state, {"loss": loss, "actor_loss": a_loss, "priorities": priorities}

    return Learner(init=init, step=step, action_values=None, name=name,
                   default_hparams=dict(LEARNER_HPARAMS),
                   check_hparams=lambda hparams: check_hparams(hparams, name),
                   policy=policy, example_action=jnp.zeros_like(low))


def td3(action_low, action_high, config: TD3Config = TD3Config(), name: str = "td3") -> Agent:
    """The TD3 agent (DDPG with `TD3Config(**DDPG_OVERRIDES)`): `td3_learner` on the replay
    driver, acting with Gaussian noise (uniform actions for `learning_starts` steps).

    Returns:
      An `Agent`; `hparams` keys: learning_rate, actor_learning_rate, exploration_noise,
      policy_noise, noise_clip, gamma (0.98), tau, importance_beta.
    """
    validate(config, {**LEARNER_HPARAMS, **DRIVER_DEFAULTS}, name)
    return actor_critic.continuous_agent(td3_learner(action_low, action_high, config, name),
                                         config, action_low, action_high, name,
                                         hparam_defaults=DRIVER_DEFAULTS)
