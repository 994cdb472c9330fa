"""Soft actor-critic (Haarnoja et al. 2018, with the automatic temperature of the 2018
"Applications" paper) as one learner step.

    learner = sac_learner(action_low, action_high, SACConfig())
    state, info = learner.step(state, batch, weights, hparams, key)

A squashed-Gaussian actor (`tdkit.continuous.gaussian_actor`: `a = bias + scale * tanh(u)`,
`u ~ N(mean(obs), std(obs))`), C critics (`critic_mlp`) and a learnt temperature
`alpha = exp(log_alpha)`. Each step, on one batch:

1. critic step on `mean_b w_b * sum_c 0.5 * (y_b - Q_c(obs_tm1, a_tm1))^2`, with the soft
   target `y = r_t + discount_t * (min_c Q'_c(obs_t, a') - alpha * log pi(a'|obs_t))`,
   `a' ~ pi(.|obs_t)` from the current actor (`sac_critic_loss`);
2. actor step on `mean_b alpha * log pi(a|obs_tm1) - min_c Q_c(obs_tm1, a)` with the
   reparameterised `a ~ pi(.|obs_tm1)` and the updated critics (`sac_actor_loss`);
3. with `autotune`, a temperature step on `-log_alpha * (log pi(a|obs_tm1) + H_target)`
   (`sac_temperature_loss`, `H_target = -A`), with the actor step's log-probabilities.

The critics' targets are the replay driver's Polyak averages (`tau`, every step). Acting
samples from the policy; evaluation takes `bias + scale * tanh(mean)`.
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
class SACConfig(ActorCriticConfig):
    """SAC's settings (defaults: sbx's and the RL Zoo's, with learning rate 1e-3 as the Zoo
    sets for Pendulum-v1)."""

    num_critics: int = dataclasses.field(
        default=2, metadata={"help": "critics (the soft target takes their minimum)"})
    autotune: bool = dataclasses.field(
        default=True, metadata={"help": "learn the temperature towards the target entropy "
                                        "-A; False: fixed `alpha`"})
    log_std_min: float = dataclasses.field(
        default=-5.0, metadata={"help": "lower bound of the actor's log std"})
    log_std_max: float = dataclasses.field(
        default=2.0, metadata={"help": "upper bound of the actor's log std"})


LEARNER_HPARAMS = {**actor_critic.LEARNER_HPARAMS, "alpha": 1.0,
                   "alpha_learning_rate": 1e-3}
HPARAM_HELP = {**actor_critic.HPARAM_HELP,
               "alpha": "temperature (its initial value with autotune)",
               "alpha_learning_rate": "temperature step size (autotune)"}


def validate(config: SACConfig, hparams: dict, agent: str = "sac") -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    actor_critic.validate(config, hparams, agent)
    if config.num_critics <= 0:
        raise ValueError(f"{agent}: `num_critics` must be > 0, got {config.num_critics}")
    if not config.log_std_min < config.log_std_max:
        raise ValueError(f"{agent}: `log_std_min` ({config.log_std_min}) must be below "
                         f"`log_std_max` ({config.log_std_max})")
    check_hparams(hparams, agent)


def check_hparams(hparams, agent: str = "sac") -> None:
    """ValueError naming a concrete `alpha` that is not > 0."""
    alpha = hparams.get("alpha", 1.0)
    if not isinstance(alpha, jax.core.Tracer) and not float(alpha) > 0:
        raise ValueError(f"{agent}: `alpha` must be > 0, got {float(alpha)}")


def sac_learner(action_low, action_high, config: SACConfig = SACConfig(), name: str = "sac"
                ) -> Learner:
    """The SAC learner for `[O]` observations and actions `[A]` in the box.

    `step(state, batch [B], weights [B], hparams, key)`: `info = {"loss": [] (critic),
    "actor_loss": [], "alpha": [], "priorities": [B] (|y - Q_1|)}`.
    """
    low = jnp.asarray(action_low, jnp.float32)
    high = jnp.asarray(action_high, jnp.float32)
    actor = continuous.gaussian_actor(low, high, config.actor_hidden_sizes, config.log_std_min,
                                      config.log_std_max, config.layer_norm)
    critic = continuous.critic_mlp(config.critic_hidden_sizes, config.num_critics,
                                   config.layer_norm)
    q = jax.vmap(critic.apply, in_axes=(None, 0, 0))
    target_entropy = continuous.default_target_entropy(int(low.shape[0]))

    def sample(actor_params, obs, key):
        """Actions `[B, A]` and log-probabilities `[B]` for observations `[B, O]`."""
        mean, log_std = jax.vmap(actor.apply, in_axes=(None, 0))(actor_params, obs)
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(continuous.squashed_gaussian_sample, in_axes=(0, 0, 0, None, None))(
            keys, mean, log_std, low, high)

    def optimizers(hparams):
        return {"actor": actor_critic.part_optimizer(config, hparams, "actor_learning_rate"),
                "critic": actor_critic.part_optimizer(config, hparams, "learning_rate"),
                "log_alpha": optax.adam(hparams["alpha_learning_rate"])}

    def init(key, example_obs, hparams):
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.asarray(example_obs, jnp.float32)
        params = {"actor": actor.init(k_actor, obs), "critic": critic.init(k_critic, obs, low),
                  "log_alpha": jnp.log(jnp.asarray(hparams["alpha"], jnp.float32))}
        opts = optimizers(hparams)
        opt_state = {part: opts[part].init(params[part]) for part in opts}
        return LearnerState(params=params, target_params=copy_tree(params),
                            opt_state=copy_tree(opt_state), step=jnp.zeros((), jnp.int32))

    def policy(params, obs, key, hparams):
        del hparams
        if key is None:
            mean, _ = jax.vmap(actor.apply, in_axes=(None, 0))(params["actor"], obs)
            return jax.vmap(continuous.squashed_gaussian_mode, in_axes=(0, None, None))(
                mean, low, high)
        return sample(params["actor"], obs, key)[0]

    def critic_loss(critic_params, params, target_params, batch, weights, alpha, key):
        next_actions, next_log_prob = sample(params["actor"], batch.obs_t, key)
        q_t = q(target_params["critic"], batch.obs_t, next_actions)
        q_tm1 = q(critic_params, batch.obs_tm1, batch.a_tm1)
        alphas = jnp.broadcast_to(alpha, batch.r_t.shape)
        losses = jax.vmap(continuous.sac_critic_loss)(
            q_tm1, batch.r_t, batch.discount_t, q_t, next_log_prob, alphas)
        target = jax.vmap(continuous.soft_q_target)(batch.r_t, batch.discount_t, q_t,
                                                    next_log_prob, alphas)
        return jnp.mean(weights * losses), jnp.abs(target - q_tm1[:, 0])

    def actor_loss(actor_params, critic_params, obs, alpha, key):
        actions, log_prob = sample(actor_params, obs, key)
        values = q(critic_params, obs, actions)
        alphas = jnp.broadcast_to(alpha, log_prob.shape)
        return jnp.mean(jax.vmap(continuous.sac_actor_loss)(values, log_prob, alphas)), log_prob

    def temperature_loss(log_alpha, log_prob):
        return jnp.mean(jax.vmap(continuous.sac_temperature_loss, in_axes=(None, 0, None))(
            log_alpha, log_prob, jnp.float32(target_entropy)))

    def step(state, batch, weights, hparams, key):
        opts = optimizers(hparams)
        params, opt_state = state.params, state.opt_state
        k_critic, k_actor = jax.random.split(key)
        alpha = jnp.exp(params["log_alpha"])
        if not config.autotune:
            alpha = jnp.asarray(hparams["alpha"], jnp.float32)
        (loss, priorities), grad = jax.value_and_grad(critic_loss, has_aux=True)(
            params["critic"], params, state.target_params, batch, weights, alpha, k_critic)
        updates, critic_opt = opts["critic"].update(grad, opt_state["critic"], params["critic"])
        critic_params = optax.apply_updates(params["critic"], updates)
        (a_loss, log_prob), grad = jax.value_and_grad(actor_loss, has_aux=True)(
            params["actor"], critic_params, batch.obs_tm1, alpha, k_actor)
        updates, actor_opt = opts["actor"].update(grad, opt_state["actor"], params["actor"])
        actor_params = optax.apply_updates(params["actor"], updates)
        log_alpha, alpha_opt = params["log_alpha"], opt_state["log_alpha"]
        if config.autotune:
            grad = jax.grad(temperature_loss)(log_alpha, log_prob)
            updates, alpha_opt = opts["log_alpha"].update(grad, alpha_opt, log_alpha)
            log_alpha = optax.apply_updates(log_alpha, updates)
        state = state._replace(
            params={"actor": actor_params, "critic": critic_params, "log_alpha": log_alpha},
            opt_state={"actor": actor_opt, "critic": critic_opt, "log_alpha": alpha_opt},
            step=state.step + 1)
        return state, {"loss": loss, "actor_loss": a_loss, "alpha": alpha,
                       "priorities": priorities}

    return Learner(init=init, step=step, action_values=None, name=name,
                   default_hparams=dict(LEARNER_HPARAMS),
                   check_hparams=lambda hparams: check_hparams(hparams, name),
                   policy=policy, example_action=jnp.zeros_like(low))


def sac(action_low, action_high, config: SACConfig = SACConfig(), name: str = "sac") -> Agent:
    """The SAC agent: `sac_learner` on the replay driver, acting by sampling the policy
    (uniform actions for `learning_starts` steps).

    Returns:
      An `Agent`; `hparams` keys: learning_rate, actor_learning_rate, alpha,
      alpha_learning_rate, gamma, tau, importance_beta.
    """
    validate(config, LEARNER_HPARAMS, name)
    return actor_critic.continuous_agent(sac_learner(action_low, action_high, config, name),
                                         config, action_low, action_high, name)
