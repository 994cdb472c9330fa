"""The replay driver: turns a `Learner` into an off-policy `Agent` on a replay buffer.

    agent = replay_agent(learner, config, name="dqn")        # agents.base.Agent

The driver owns everything between the environment and the learner step, written once for
every replay-based agent (DQN, Double DQN, and the distributional agents to come):

- replay insertion (`tdkit.replay`, uniform or prioritized with the learner's priorities),
  n-step transitions (`tdkit.nstep`);
- the schedule: `learning_starts`, a training round every `train_every` loop iterations of
  `gradient_steps` learner steps (each sampling after the previous one);
- the target network after every learner step: copied every `target_period` steps
  (`optax.periodic_update`) or Polyak-averaged with `hparams["tau"]`
  (`optax.incremental_update`);
- keeping the replay storage out of `lax.cond` (XLA would copy the whole buffer on every
  call): with one gradient step the batch is sampled before the branch;
- `update_block`, K updates in one call equal to K calls of `update`;
- epsilon-greedy acting on the learner's action values (`agents.exploration`).

The `AgentState` keeps the learner's state in its `params`, `target_params` and
`opt_state` fields and the learner's step count in `extra["updates"]`.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import optax

from agents import exploration
from agents.base import Agent, AgentState, FastPath, scan_updates
from agents.learner import Learner, LearnerState, start_learner
from tdkit import nstep, replay


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """Static settings of the replay driver (agents' configs extend this dataclass)."""

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
    polyak_every: int = dataclasses.field(
        default=1, metadata={"help": "gradient steps between Polyak updates (polyak; TD3: the "
                                     "policy delay)"})
    epsilon_decay_steps: int = dataclasses.field(
        default=20_000, metadata={"help": "env steps of the linear epsilon decay"})
    n_step: int = dataclasses.field(default=1, metadata={"help": "n-step returns"})
    prioritized: bool = dataclasses.field(
        default=False, metadata={"help": "prioritized replay (priorities from the learner, "
                                         "e.g. |TD error|)"})
    priority_exponent: float = dataclasses.field(
        default=0.6, metadata={"help": "prioritized replay alpha"})


HPARAMS = {
    "gamma": 0.99,
    **exploration.HPARAMS,
    "tau": 0.005,
    "importance_beta": 0.4,
}
ACTOR_CRITIC_HPARAMS = {k: v for k, v in HPARAMS.items() if k not in exploration.HPARAMS}
"""The driver's hyperparameters without epsilon-greedy acting (continuous-action agents)."""
HPARAM_HELP = {
    "gamma": "discount factor",
    **exploration.HPARAM_HELP,
    "tau": "Polyak averaging rate of the target network (target_update=polyak)",
    "importance_beta": "prioritized replay importance-sampling exponent",
}


def validate(config: ReplayConfig, hparams: dict, agent: str) -> None:
    """Raises ValueError naming the setting for invalid driver settings."""
    for name in ("buffer_size", "batch_size", "train_every", "gradient_steps", "target_period",
                 "polyak_every", "epsilon_decay_steps", "n_step"):
        if getattr(config, name) <= 0:
            raise ValueError(f"{agent}: `{name}` must be > 0, got {getattr(config, name)}")
    if config.batch_size > config.buffer_size:
        raise ValueError(f"{agent}: `batch_size` ({config.batch_size}) must not exceed "
                         f"`buffer_size` ({config.buffer_size})")
    if config.learning_starts < config.batch_size:
        raise ValueError(f"{agent}: `learning_starts` ({config.learning_starts}) must be at "
                         f"least `batch_size` ({config.batch_size})")
    if config.target_update not in ("periodic", "polyak"):
        raise ValueError(f"{agent}: `target_update` must be 'periodic' or 'polyak', got "
                         f"{config.target_update!r}")
    if not 0.0 < config.priority_exponent:
        raise ValueError(f"{agent}: `priority_exponent` must be > 0, got "
                         f"{config.priority_exponent}")
    hp = {k: float(v) for k, v in hparams.items() if not isinstance(v, jax.core.Tracer)}
    if not 0.0 <= hp.get("gamma", 0.5) <= 1.0:
        raise ValueError(f"{agent}: `gamma` must be in [0, 1], got {hp['gamma']}")
    for name in ("epsilon_start", "epsilon_end", "tau", "importance_beta"):
        if name in hp and not 0.0 <= hp[name] <= 1.0:
            raise ValueError(f"{agent}: `{name}` must be in [0, 1], got {hp[name]}")


_PRIORITY_FIELDS = (
    "priorities", "max_priority", "leaf_mass", "block_mass", "block_min")
# The learner's key is `fold_in(sample key, LEARNER_STREAM)`: a stream of its own, apart from
# the sampling key's splits (`split(k)` is `fold_in(k, 0), fold_in(k, 1)`).
LEARNER_STREAM = 0x1EA4


def _written_after(sample: replay.ReplaySample, replay_state):
    """`replay_state` with its write position made to depend on every array `sample`
    gathered from the storage, its value unchanged (`isnan(s) | ~isnan(s)` is always true).

    A write that follows a read of the same buffer in one XLA program updates it in place
    only when XLA can order the write after the read, and on the CPU it orders them only
    through data (`lax.optimization_barrier` is gone before the copies are decided):
    without this dependence XLA copies the whole storage (1.1 GB for 20k Atari
    transitions) on every call. The next `add` computes its slots from the position.
    """
    sums = [jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(sample.batch)]
    always = jnp.all(jnp.stack([jnp.isnan(s) | ~jnp.isnan(s) for s in sums]))
    position = replay_state.position + (~always).astype(replay_state.position.dtype)
    return replay_state._replace(position=position)


def replay_agent(learner: Learner, config: ReplayConfig, num_actions: int | None,
                 name: str | None = None, acting=None,
                 hparam_defaults: dict | None = None) -> Agent:
    """An off-policy `Agent` of `learner` on a replay buffer.

    Args:
      learner: a `Learner` whose `step` takes a `Transition` batch `[B]` and weights `[B]`
        and returns `info["loss"]` and `info["priorities"]` (`[B]`).
      config: a `ReplayConfig` (or a dataclass extending it).
      num_actions: A, for epsilon-greedy acting on `learner.action_values` (None with
        `acting`).
      name: the agent's name (default: the learner's).
      acting: None (epsilon-greedy on `learner.action_values`) or another acting, e.g.
        `agents.exploration.ContinuousActing` of a continuous-action learner's `policy`;
        the agent then has no epsilon hyperparameters.
      hparam_defaults: the agent's own defaults of driver hyperparameters (e.g.
        `{"gamma": 0.98}`), or None.

    Returns:
      An `Agent` with a `FastPath` (blocks of `train_every` updates, exploration drawn in
      advance); `hparams` are the learner's
      plus `gamma`, `epsilon_start`, `epsilon_end` (epsilon-greedy acting only), `tau` and
      `importance_beta`.
    """
    name = name or learner.name
    if acting is None:
        driver_hparams = HPARAMS
        acting = exploration.EpsilonGreedy(learner.action_values, num_actions,
                                           config.epsilon_decay_steps, learner.noisy_acting)
    else:
        driver_hparams = ACTOR_CRITIC_HPARAMS
    unknown = sorted(set(hparam_defaults or {}) - set(driver_hparams))
    if unknown:
        raise ValueError(f"{name}: `hparam_defaults` has no driver hyperparameter(s) {unknown}; "
                         f"valid: {sorted(driver_hparams)}")
    default_hparams = {**learner.default_hparams, **driver_hparams, **(hparam_defaults or {})}
    validate(config, default_hparams, name)
    buffer = (replay.prioritized_replay(config.buffer_size, alpha=config.priority_exponent)
              if config.prioritized else replay.uniform_replay(config.buffer_size))
    accumulator = nstep.nstep_accumulator(config.n_step)

    def acting_metrics(step, hparams):
        if isinstance(acting, exploration.EpsilonGreedy):
            return {"epsilon": acting.epsilon_at(step, hparams)}
        return {}

    def init(key, example_obs, num_envs, hparams=None):
        hp, learner_state, k_state, example = start_learner(
            learner, key, example_obs, default_hparams, hparams,
            lambda given: validate(config, given, name))
        # The replay keeps observations in their own dtype (Atari's uint8 frames take 4x
        # less memory than float32); the learner gets them as float32 (`step_on_sample`).
        obs = jnp.zeros_like(jnp.asarray(example_obs))
        example = example._replace(obs_tm1=obs, obs_t=obs)
        batch_example = jax.tree.map(lambda x: jnp.stack([x] * num_envs), example)
        return AgentState(
            params=learner_state.params, target_params=learner_state.target_params,
            opt_state=learner_state.opt_state, replay=buffer.init(example),
            step=jnp.zeros((), jnp.int32), key=k_state, hparams=hp,
            extra={"nstep": accumulator.init(batch_example) if config.n_step > 1 else (),
                   "updates": learner_state.step})

    def priorities_of(replay_state):
        if not config.prioritized:
            return {}
        return {field: getattr(replay_state, field) for field in _PRIORITY_FIELDS}

    def sample_and_step(carry, key, hp):
        """Samples with `key`, takes one learner step and writes its priorities."""
        learner_state, replay_state = carry
        sample = buffer.sample(key, replay_state, config.batch_size, beta=hp["importance_beta"])
        learner_state, loss, _, priorities = step_on_sample(learner_state, sample, hp, key)
        if config.prioritized:
            replay_state = buffer.update_priorities(replay_state, sample.indices, priorities)
        return (learner_state, replay_state), loss

    # A "learner carry" is (LearnerState, priority arrays): what a training round changes.
    def learn(carry, replay_state, hp, key):
        """`gradient_steps` learner steps (each samples after the previous one)."""
        learner_state, priorities = carry
        replay_state = replay_state._replace(**priorities)
        keys = jax.random.split(key, config.gradient_steps)
        (learner_state, replay_state), loss = jax.lax.scan(
            lambda c, k: sample_and_step(c, k, hp), (learner_state, replay_state), keys)
        return (learner_state, priorities_of(replay_state)), loss.mean(), jnp.ones((), bool)

    def step_on_sample(learner_state, sample, hp, key):
        """One learner step (and target update) on a batch sampled outside `lax.cond` with
        `key`; returns the per-example priorities instead of writing them."""
        batch, _, weights = sample
        batch = batch._replace(obs_tm1=batch.obs_tm1.astype(jnp.float32),
                               obs_t=batch.obs_t.astype(jnp.float32))
        if not config.prioritized:
            weights = jnp.ones_like(weights)
        learner_state, info = learner.step(learner_state, batch, weights, hp,
                                           jax.random.fold_in(key, LEARNER_STREAM))
        if config.target_update == "periodic":
            target = optax.periodic_update(learner_state.params, learner_state.target_params,
                                           learner_state.step, config.target_period)
        else:
            target = optax.incremental_update(learner_state.params, learner_state.target_params,
                                              hp["tau"])
            if config.polyak_every > 1:
                due = learner_state.step % config.polyak_every == 0
                target = jax.tree.map(lambda new, old: jnp.where(due, new, old), target,
                                      learner_state.target_params)
        priorities = (info["priorities"].astype(jnp.float32) if config.prioritized
                      else jnp.zeros((config.batch_size,), jnp.float32))
        return (learner_state._replace(target_params=target), info["loss"],
                jnp.ones((), bool), priorities)

    def skip_sample(learner_state, *unused):
        del unused
        return (learner_state, jnp.zeros((), jnp.float32), jnp.zeros((), bool),
                jnp.zeros((config.batch_size,), jnp.float32))

    def skip(carry, *unused):
        del unused
        return carry, jnp.zeros((), jnp.float32), jnp.zeros((), bool)

    def learn_if(should_learn, carry, replay_state, hp, key):
        """`learn` when `should_learn`, else nothing (`carry` unchanged, loss 0); returns
        `(carry, loss, learned, replay_state)`, the replay to write next (priorities included).

        With one gradient step neither the replay storage nor the priority arrays go
        through `lax.cond` (XLA would copy them on every call; under `vmap` the branches
        become a select over them): the batch is sampled before the branch, from the same
        key `learn` would use, only the learner state goes in, and the new priorities are
        written after it, to out-of-range (dropped) slots when no step was taken. The
        returned replay's write position depends on the sampled values (`_written_after`),
        so that the next write is ordered after the sample's read and XLA updates the
        storage in place instead of copying the whole buffer. With several gradient steps
        each sample depends on the previous step's priorities, so the buffer is an operand
        of a `lax.cond`.
        """
        if config.gradient_steps > 1:
            carry, loss, learned = jax.lax.cond(should_learn, learn, skip, carry,
                                                replay_state, hp, key)
            return carry, loss, learned, replay_state._replace(**carry[1])
        learner_state, priorities = carry
        replay_state = replay_state._replace(**priorities)
        (k_sample,) = jax.random.split(key, 1)
        sample = buffer.sample(k_sample, replay_state, config.batch_size,
                               beta=hp["importance_beta"])
        replay_state = _written_after(sample, replay_state)
        learner_state, loss, learned, new_priorities = jax.lax.cond(
            should_learn, step_on_sample, skip_sample, learner_state, sample, hp, k_sample)
        if config.prioritized:
            slots = jnp.where(learned, sample.indices, config.buffer_size)
            replay_state = buffer.update_priorities(replay_state, slots, new_priorities)
        return (learner_state, priorities_of(replay_state)), loss, learned, replay_state

    def carry_of(state, replay_state):
        return (LearnerState(state.params, state.target_params, state.opt_state,
                             state.extra["updates"]), priorities_of(replay_state))

    def with_carry(state, carry, replay_state, **changes):
        learner_state, priorities = carry
        if config.prioritized:
            replay_state = replay_state._replace(**priorities)
        return state._replace(
            params=learner_state.params, target_params=learner_state.target_params,
            opt_state=learner_state.opt_state, replay=replay_state,
            extra={**state.extra, "updates": learner_state.step}, **changes)

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
        state = state._replace(step=step, key=key, extra={**state.extra, "nstep": window})
        should_learn = (replay_state.size >= config.learning_starts) & (
            (step // num_envs) % config.train_every == 0)
        carry, loss, learned, replay_state = learn_if(
            should_learn, carry_of(state, replay_state), replay_state, state.hparams, k_learn)
        state = with_carry(state, carry, replay_state)
        return state, {"loss": loss, "learned": learned,
                       **acting_metrics(state.step, state.hparams)}

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

        def segment(loop_carry):
            start, replay_state, carry, losses = loop_carry
            # The segment ends at the next learning step (or the block's end).
            end = jnp.min(jnp.where(due & (index >= start), index, num_updates - 1))
            valid = (item_update >= start) & (item_update <= end)
            replay_state = buffer.add(replay_state, flat, valid)
            carry = (carry[0], priorities_of(replay_state))  # after the write
            carry, loss, _, replay_state = learn_if(due[end], carry, replay_state,
                                                    state.hparams, learn_keys[end])
            losses = jnp.where(index == end, loss, losses)
            return end + 1, replay_state, carry, losses

        loop_carry = (jnp.zeros((), jnp.int32), state.replay, carry_of(state, state.replay),
                      jnp.zeros((num_updates,), jnp.float32))
        if num_updates <= config.train_every:
            # At most one learning step is due: one segment up to it (no loop), then the
            # rest of the block is written.
            end, replay_state, carry, losses = segment(loop_carry)
            replay_state = buffer.add(replay_state, flat, item_update >= end)
        else:
            _, replay_state, carry, losses = jax.lax.while_loop(
                lambda c: c[0] < num_updates, segment, loop_carry)
        # The replay (priorities included) is as the last write left it.
        state = with_carry(state, (carry[0], priorities_of(replay_state)), replay_state,
                           step=steps[-1], key=key)
        return state, {"loss": losses, "learned": due, **acting_metrics(steps, state.hparams)}

    return Agent(init=init, act=acting.act, update=update, name=name,
                 default_hparams=dict(default_hparams),
                 fast_path=FastPath(update_every=config.train_every,
                                    update_block=update_block, epsilon_greedy=acting.acting))
