"""DQN and Double DQN (Mnih et al. 2015; van Hasselt et al. 2016), built from tdkit pieces.

Value network `tdkit.values.mlp`, loss `tdkit.losses.td_loss` (`q_learning` or
`double_q_learning`, Huber or l2), replay `tdkit.replay` (uniform or prioritized with
priorities from the per-example TD errors), n-step transitions `tdkit.nstep`, optional
per-example gradient clipping `tdkit.grads.clipped_mean_grad`, any optax optimizer, and a
target network updated periodically (`optax.periodic_update`) or by Polyak averaging
(`optax.incremental_update`).
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import optax

from agents.base import Agent, AgentState, EpsilonGreedyActing, merge_hparams, scan_updates
from tdkit import grads as tdgrads
from tdkit import losses, nstep, policies, replay, values
from tdkit.types import Transition


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """Structural (static) DQN settings; numeric ones are in `DEFAULT_HPARAMS`.

    The defaults solve CartPole-v1 (tuned with the jitted loop, 16 envs, 240k steps; see
    README): LayerNorm, l2 loss, a target copied every 20 gradient steps and a
    learning rate decayed linearly to 0 over 15k gradient steps.
    """

    hidden_sizes: tuple[int, ...] = dataclasses.field(
        default=(120, 84), metadata={"help": "hidden layer sizes of the Q-network MLP"})
    layer_norm: bool = dataclasses.field(
        default=True, metadata={"help": "LayerNorm after each hidden layer"})
    optimizer: str = dataclasses.field(
        default="adam", metadata={"help": "any optax optimizer taking learning_rate"})
    buffer_size: int = dataclasses.field(
        default=50_000, metadata={"help": "replay capacity (transitions)"})
    batch_size: int = dataclasses.field(
        default=128, metadata={"help": "transitions per gradient step"})
    learning_starts: int = dataclasses.field(
        default=1_000, metadata={"help": "stored transitions before learning starts"})
    train_every: int = dataclasses.field(
        default=1, metadata={"help": "loop iterations (N env steps each) per training round"})
    gradient_steps: int = dataclasses.field(
        default=1, metadata={"help": "gradient steps per training round"})
    target_update: str = dataclasses.field(
        default="periodic", metadata={"help": "'periodic' (copy) or 'polyak' (tau averaging)"})
    target_period: int = dataclasses.field(
        default=20, metadata={"help": "gradient steps between target copies (periodic)"})
    epsilon_decay_steps: int = dataclasses.field(
        default=20_000, metadata={"help": "env steps of the linear epsilon decay"})
    double: bool = dataclasses.field(
        default=False, metadata={"help": "Double DQN target (select with online, evaluate "
                                         "with target network)"})
    loss: str = dataclasses.field(default="l2", metadata={"help": "'huber' or 'l2'"})
    n_step: int = dataclasses.field(default=1, metadata={"help": "n-step returns"})
    prioritized: bool = dataclasses.field(
        default=False, metadata={"help": "prioritized replay (priorities = |TD error|)"})
    priority_exponent: float = dataclasses.field(
        default=0.6, metadata={"help": "prioritized replay alpha"})
    per_example_max_norm: float | None = dataclasses.field(
        default=None, metadata={"help": "clip each example's gradient to this norm, then "
                                        "average (DP-SGD style); None: no clipping"})
    max_grad_norm: float | None = dataclasses.field(
        default=None, metadata={"help": "clip the global gradient norm; None: no clipping"})
    learning_rate_decay_steps: int | None = dataclasses.field(
        default=15_000, metadata={"help": "decay the learning rate linearly to 0 over this many "
                                        "gradient steps; None: constant"})


DEFAULT_HPARAMS = {
    "learning_rate": 2e-3,
    "gamma": 0.99,
    "epsilon_start": 1.0,
    "epsilon_end": 0.05,
    "tau": 0.005,
    "importance_beta": 0.4,
}
HPARAM_HELP = {
    "learning_rate": "optimizer step size",
    "gamma": "discount factor",
    "epsilon_start": "initial exploration rate",
    "epsilon_end": "final exploration rate",
    "tau": "Polyak averaging rate of the target network (target_update=polyak)",
    "importance_beta": "prioritized replay importance-sampling exponent",
}


def validate(config: DQNConfig, hparams: dict) -> None:
    """Raises ValueError for invalid settings, naming the setting."""
    positive = ["buffer_size", "batch_size", "train_every", "gradient_steps", "target_period",
                "epsilon_decay_steps", "n_step", "learning_rate_decay_steps"]
    for name in positive:
        if getattr(config, name) is not None and getattr(config, name) <= 0:
            raise ValueError(f"dqn: `{name}` must be > 0, got {getattr(config, name)}")
    if config.batch_size > config.buffer_size:
        raise ValueError(f"dqn: `batch_size` ({config.batch_size}) must not exceed "
                         f"`buffer_size` ({config.buffer_size})")
    if config.learning_starts < config.batch_size:
        raise ValueError(f"dqn: `learning_starts` ({config.learning_starts}) must be at least "
                         f"`batch_size` ({config.batch_size})")
    if config.target_update not in ("periodic", "polyak"):
        raise ValueError(f"dqn: `target_update` must be 'periodic' or 'polyak', got "
                         f"{config.target_update!r}")
    if config.loss not in ("huber", "l2"):
        raise ValueError(f"dqn: `loss` must be 'huber' or 'l2', got {config.loss!r}")
    if not hasattr(optax, config.optimizer):
        raise ValueError(f"dqn: `optimizer` {config.optimizer!r} is not an optax optimizer")
    for name in ("per_example_max_norm", "max_grad_norm"):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ValueError(f"dqn: `{name}` must be > 0 or None, got {value}")
    hp = {k: float(v) for k, v in hparams.items() if not isinstance(v, jax.core.Tracer)}
    if hp.get("learning_rate", 1.0) <= 0:
        raise ValueError(f"dqn: `learning_rate` must be > 0, got {hp['learning_rate']}")
    if not 0.0 <= hp.get("gamma", 0.5) <= 1.0:
        raise ValueError(f"dqn: `gamma` must be in [0, 1], got {hp['gamma']}")
    for name in ("epsilon_start", "epsilon_end", "tau", "importance_beta"):
        if name in hp and not 0.0 <= hp[name] <= 1.0:
            raise ValueError(f"dqn: `{name}` must be in [0, 1], got {hp[name]}")


def _set_learning_rate(opt_state, learning_rate):
    """Sets the injected learning rate of `optax.inject_hyperparams` (possibly chained)."""
    if isinstance(opt_state, tuple) and not hasattr(opt_state, "hyperparams"):
        parts = [_set_learning_rate(s, learning_rate) for s in opt_state]
        return type(opt_state)(*parts) if hasattr(opt_state, "_fields") else tuple(parts)
    if hasattr(opt_state, "hyperparams"):
        hyperparams = dict(opt_state.hyperparams)
        hyperparams["learning_rate"] = jnp.asarray(
            learning_rate, hyperparams["learning_rate"].dtype)
        return opt_state._replace(hyperparams=hyperparams)
    return opt_state


def dqn(num_actions: int, config: DQNConfig = DQNConfig(), name: str = "dqn") -> Agent:
    """Builds a DQN agent for `num_actions` discrete actions and `[O]` float observations.

    Args:
      num_actions: `A`, the number of discrete actions.
      config: structural settings.
      name: registry name.

    Returns:
      An `Agent`; `hparams` keys: learning_rate, gamma, epsilon_start, epsilon_end, tau,
      importance_beta.
    """
    validate(config, DEFAULT_HPARAMS)
    value_fn = values.mlp(config.hidden_sizes, num_actions, layer_norm=config.layer_norm)
    rule = "double_q_learning" if config.double else "q_learning"
    loss_fn = losses.td_loss(value_fn, rule, config.loss)
    loss_aux = losses.td_loss(value_fn, rule, config.loss, has_aux=True)
    buffer = (replay.prioritized_replay(config.buffer_size, alpha=config.priority_exponent)
              if config.prioritized else replay.uniform_replay(config.buffer_size))
    accumulator = nstep.nstep_accumulator(config.n_step)
    q_values = jax.vmap(value_fn.apply, in_axes=(None, 0))
    if config.per_example_max_norm is not None:
        clipped_grad = tdgrads.clipped_mean_grad(
            loss_fn, config.per_example_max_norm, in_axes=(None, None, 0, 0))

    def make_optimizer(learning_rate):
        opt = optax.inject_hyperparams(getattr(optax, config.optimizer))(
            learning_rate=learning_rate)
        if config.max_grad_norm is not None:
            opt = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), opt)
        return opt

    def init(key, example_obs, num_envs, hparams=None):
        hp = merge_hparams(DEFAULT_HPARAMS, hparams)
        validate(config, {**DEFAULT_HPARAMS, **(hparams or {})})  # as given (also under jit)
        k_params, k_state = jax.random.split(key)
        example_obs = jnp.asarray(example_obs, jnp.float32)
        params = value_fn.init(k_params, example_obs)
        # Copies: no leaf may share a buffer with another (donation in the host loop).
        opt_state = jax.tree.map(jnp.copy, make_optimizer(hp["learning_rate"]).init(params))
        example = Transition(
            obs_tm1=example_obs, a_tm1=jnp.zeros((), jnp.int32), r_t=jnp.zeros(()),
            discount_t=jnp.zeros(()), obs_t=example_obs)
        batch_example = jax.tree.map(lambda x: jnp.stack([x] * num_envs), example)
        return AgentState(
            params=params, target_params=jax.tree.map(jnp.copy, params), opt_state=opt_state,
            replay=buffer.init(example), step=jnp.zeros((), jnp.int32), key=k_state,
            hparams=hp, extra={"nstep": accumulator.init(batch_example) if config.n_step > 1
                               else (),
                               "updates": jnp.zeros((), jnp.int32)})

    def epsilon_at(step, hp):  # the linear schedule at environment step(s) `step`
        frac = jnp.minimum(step.astype(jnp.float32) / config.epsilon_decay_steps, 1.0)
        return hp["epsilon_start"] + (hp["epsilon_end"] - hp["epsilon_start"]) * frac

    def epsilon(state):
        return epsilon_at(state.step, state.hparams)

    def act(key, state, obs, evaluation=False):
        q = q_values(state.params, jnp.asarray(obs, jnp.float32))
        eps = jnp.zeros((), jnp.float32) if evaluation else epsilon(state)
        return policies.batched_epsilon_greedy(key, q, eps)

    def draws(key, state, num_steps, num_envs):  # `EpsilonGreedyActing.draws`
        index = jnp.arange(num_steps, dtype=jnp.int32)
        eps = epsilon_at(state.step + index * num_envs, state.hparams)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)
        return jax.vmap(policies.batched_epsilon_greedy_draws, in_axes=(0, None, None, 0))(
            keys, num_envs, num_actions, eps)

    def greedy(params, obs, noise):  # `EpsilonGreedyActing.greedy`
        return policies.greedy_from_noise(
            q_values(params, jnp.asarray(obs, jnp.float32)), noise)

    def gradient_step(carry, key):
        params, target_params, opt_state, replay_state, updates, hp = carry
        sample = buffer.sample(key, replay_state, config.batch_size, beta=hp["importance_beta"])
        (params, target_params, opt_state, replay_state, updates), loss = step_on_sample(
            (params, target_params, opt_state, replay_state, updates), sample, hp)
        return (params, target_params, opt_state, replay_state, updates, hp), loss

    def step_on_sample(learner, sample, hp):
        """One gradient step on a sampled batch; the replay state is only used (and changed)
        for its priorities."""
        params, target_params, opt_state, replay_state, updates = learner
        batch, indices, weights = sample
        if not config.prioritized:
            weights = jnp.ones_like(weights)

        def mean_loss(p):
            per_example, td_error = jax.vmap(loss_aux, in_axes=(None, None, 0, 0))(
                p, target_params, batch, weights)
            return per_example.mean(), td_error

        if config.per_example_max_norm is None:
            (loss, td_error), grad = jax.value_and_grad(mean_loss, has_aux=True)(params)
        else:
            loss, td_error = mean_loss(params)
            grad = clipped_grad(params, target_params, batch, weights)
        if config.learning_rate_decay_steps is not None:
            frac = jnp.minimum(updates.astype(jnp.float32) / config.learning_rate_decay_steps,
                               1.0)
            opt_state = _set_learning_rate(opt_state, hp["learning_rate"] * (1.0 - frac))
        grad_updates, opt_state = make_optimizer(hp["learning_rate"]).update(
            grad, opt_state, params)
        params = optax.apply_updates(params, grad_updates)
        updates = updates + 1
        if config.prioritized:
            replay_state = buffer.update_priorities(replay_state, indices, jnp.abs(td_error))
        if config.target_update == "periodic":
            target_params = optax.periodic_update(
                params, target_params, updates, config.target_period)
        else:
            target_params = optax.incremental_update(params, target_params, hp["tau"])
        return (params, target_params, opt_state, replay_state, updates), loss

    def learn(learner, replay_state, hparams, key):
        """`gradient_steps` steps (more than one: each samples after the previous one)."""
        params, target_params, opt_state, priorities, updates = learner
        if config.prioritized:
            replay_state = replay_state._replace(**priorities)
        carry = (params, target_params, opt_state, replay_state, updates, hparams)
        keys = jax.random.split(key, config.gradient_steps)
        (params, target_params, opt_state, replay_state, updates, _), loss = jax.lax.scan(
            gradient_step, carry, keys)
        learner = (params, target_params, opt_state, _priorities(replay_state), updates)
        return learner, loss.mean(), jnp.ones((), jnp.bool_)

    def skip(learner, *unused):
        del unused
        return learner, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.bool_)

    def learn_sampled(learner, replay_lite, sample, hparams):
        """One gradient step on a batch sampled outside `lax.cond`; `replay_lite` is the
        replay state without its storage (the priorities are all a step changes)."""
        params, target_params, opt_state, priorities, updates = learner
        replay_lite = replay_lite._replace(**priorities)
        (params, target_params, opt_state, replay_lite, updates), loss = step_on_sample(
            (params, target_params, opt_state, replay_lite, updates), sample, hparams)
        learner = (params, target_params, opt_state, _priorities(replay_lite), updates)
        return learner, loss, jnp.ones((), jnp.bool_)

    def learn_if(should_learn, learner, replay_state, hparams, key):
        """`learn` when `should_learn`, else `skip` (`learner` unchanged, loss 0).

        The replay storage never goes through `lax.cond`: XLA would copy it (the whole
        buffer) on every call. With one gradient step the batch is sampled before the
        branch, from the same key `learn` would use, and only the priorities go in; with
        several, each sample depends on the previous step's priorities, so the buffer is
        an operand of the branch.
        """
        if config.gradient_steps > 1:
            return jax.lax.cond(should_learn, learn, skip, learner, replay_state, hparams, key)
        (k_sample,) = jax.random.split(key, 1)
        sample = buffer.sample(k_sample, replay_state, config.batch_size,
                               beta=hparams["importance_beta"])
        return jax.lax.cond(should_learn, learn_sampled, skip, learner,
                            replay_state._replace(storage=()), sample, hparams)

    def _priorities(replay_state):
        if not config.prioritized:
            return {}
        return {name: getattr(replay_state, name)
                for name in ("priorities", "max_priority", "sum_tree", "min_tree")}

    def update(state, transition, last):
        num_envs = transition.r_t.shape[0]
        chex.assert_shape(last, (num_envs,))
        if config.n_step == 1:  # One-step transitions go straight into the replay.
            window = state.extra["nstep"]
            replay_state = buffer.add(state.replay, transition)
        else:
            window, nstep_transition, valid = accumulator.push(
                state.extra["nstep"], transition, last)
            replay_state = buffer.add(
                state.replay, nstep_transition, jnp.broadcast_to(valid, (num_envs,)))
        step = state.step + num_envs
        key, k_learn = jax.random.split(state.key)
        state = state._replace(replay=replay_state, step=step, key=key,
                               extra={**state.extra, "nstep": window})
        iteration = step // num_envs
        should_learn = (replay_state.size >= config.learning_starts) & (
            iteration % config.train_every == 0)
        learner = (state.params, state.target_params, state.opt_state,
                   _priorities(replay_state), state.extra["updates"])
        learner, loss, learned = learn_if(
            should_learn, learner, replay_state, state.hparams, k_learn)
        params, target_params, opt_state, priorities, updates = learner
        if config.prioritized:
            replay_state = replay_state._replace(**priorities)
        state = state._replace(
            params=params, target_params=target_params, opt_state=opt_state,
            replay=replay_state, extra={**state.extra, "updates": updates})
        return state, {"loss": loss, "learned": learned, "epsilon": epsilon(state)}

    def update_block(state, transitions, lasts):
        """K updates at once, equal to scanning `update` over them (`Agent.update_block`).

        With one-step returns the K transitions go into the replay in segments that end at
        the learning steps due inside the block (known in advance: they depend only on the
        iteration count and the replay size), each segment in one write, each learning step
        on the replay as it was at its transition. With `train_every = K` aligned blocks
        that is one write and one learning step, instead of K scan iterations of small ops.
        The PRNG keys are split exactly as K calls of `update` split them.
        """
        if config.n_step > 1:  # the n-step window is sequential: scan
            return scan_updates(update, state, transitions, lasts)
        num_updates, num_envs = lasts.shape
        chex.assert_tree_shape_prefix(transitions, (num_updates, num_envs))
        flat = jax.tree.map(lambda x: x.reshape((num_updates * num_envs,) + x.shape[2:]),
                            transitions)
        capacity = jax.tree.leaves(state.replay.storage)[0].shape[0]

        def split(key, _):
            key, k_learn = jax.random.split(key)
            return key, k_learn

        key, learn_keys = jax.lax.scan(split, state.key, None, length=num_updates)
        index = jnp.arange(num_updates, dtype=jnp.int32)
        steps = state.step + (index + 1) * num_envs  # state.step after each update
        sizes = jnp.minimum(state.replay.size + (index + 1) * num_envs, capacity)
        due = (sizes >= config.learning_starts) & (
            (steps // num_envs) % config.train_every == 0)
        item_update = jnp.repeat(index, num_envs)  # which update each flat item belongs to

        def segment(carry):
            start, replay_state, learner, losses = carry
            # The segment ends at the next learning step (or the block's end).
            end = jnp.min(jnp.where(due & (index >= start), index, num_updates - 1))
            valid = (item_update >= start) & (item_update <= end)
            replay_state = buffer.add(replay_state, flat, valid)
            learner = (*learner[:3], _priorities(replay_state), learner[4])  # after the write
            learner, loss, _ = learn_if(
                due[end], learner, replay_state, state.hparams, learn_keys[end])
            if config.prioritized:
                replay_state = replay_state._replace(**learner[3])
            losses = jnp.where(index == end, loss, losses)
            return end + 1, replay_state, learner, losses

        learner = (state.params, state.target_params, state.opt_state,
                   _priorities(state.replay), state.extra["updates"])
        carry = (jnp.zeros((), jnp.int32), state.replay, learner,
                 jnp.zeros((num_updates,), jnp.float32))
        if num_updates <= config.train_every:
            # At most one learning step is due: one segment up to it (no loop), then the
            # rest of the block is written.
            end, replay_state, learner, losses = segment(carry)
            replay_state = buffer.add(replay_state, flat, item_update >= end)
        else:
            _, replay_state, learner, losses = jax.lax.while_loop(
                lambda carry: carry[0] < num_updates, segment, carry)
        params, target_params, opt_state, _, updates = learner
        state = state._replace(
            params=params, target_params=target_params, opt_state=opt_state,
            replay=replay_state, step=steps[-1], key=key,
            extra={**state.extra, "updates": updates})
        return state, {"loss": losses, "learned": due,
                       "epsilon": epsilon_at(steps, state.hparams)}

    return Agent(init=init, act=act, update=update, name=name,
                 default_hparams=dict(DEFAULT_HPARAMS),
                 update_block=update_block,
                 epsilon_greedy=EpsilonGreedyActing(draws=draws, greedy=greedy))
