"""The host loop: any Gymnasium environment stepped on the host, the agent jitted.

    loop = HostLoop(agent, adapter)           # adapter: envs.host.HostAdapter (N envs)
    state = loop.init(key, hparams)
    state, obs, stats = loop.run(state, obs, num_iterations)

Per iteration the environments step on the host (numpy) and ONE jitted call does the agent's
`update` on the new transitions followed by its `act` on the next observations, so there is
one device dispatch per environment step and no recompilation (the transition shapes never
change: the adapter runs in SAME_STEP autoreset mode, every transition is valid, and
`obs_t` is the true final observation at episode ends). Losses stay on the device until the
end of a chunk.

With `update_every=K > 1` the transitions of K steps are kept on the host and the K updates
run in one jitted call (the agent's `update_block` where it has one, else a `lax.scan` of
`update`); between them `act` sees the state as of the last update (its
key folded with the step index), given only the fields in `agent.act_fields` (by default
all but the replay and optimizer states).
That is exact for agents whose acting parameters change only every K steps (DQN with
`train_every=K`: the learning step is the last of each block) up to an exploration schedule
that lags by at most K - 1 steps; it is wrong for Sarsa-style agents whose `act` needs the
action chosen by the previous `update`, which keep `update_every=1`.

On the CPU, call `inline_cpu_dispatch()` before JAX first runs (the gym backend of
`agents.run.train` does): the loop is sequential, and JAX's asynchronous CPU dispatch then
costs more in thread hand-offs than the small `act` and `update` computations themselves.
"""

import pathlib
import sys
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agents.base import Agent, AgentState, merge_hparams, scan_updates


def inline_cpu_dispatch() -> bool:
    """Makes JAX run CPU computations inline on the calling thread, if JAX has not started.

    The host loop is sequential: every environment step waits for `act`, and the first
    `act` after a block of updates waits for them. With JAX's default asynchronous CPU
    dispatch each call hands its work to a worker thread and wakes the Python thread when it
    is done; for a small network those wake-ups across cores cost more than the computation.
    DQN on Gymnasium's CartPole-v1 with CleanRL's hyperparameters ran at 5-6k environment
    steps/s with asynchronous dispatch and 9-10k inline, on a 2-core VM. Inline dispatch
    does not change any result.

    This sets `jax_cpu_enable_async_dispatch = False`, which JAX reads once, when it creates
    its CPU client, so it has an effect only before JAX's first computation.

    Returns:
      True if CPU computations will run inline (now set, or set earlier); False if JAX's
      backends were already initialised with asynchronous dispatch (nothing is changed).
    """
    if not _async_cpu_dispatch():
        return True
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # private API moved: the update is harmless anyway
        started = False
    if started:
        return False
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True


def _async_cpu_dispatch() -> bool:
    return bool(jax.config.values.get("jax_cpu_enable_async_dispatch", True))


class HostLoopState(NamedTuple):
    """What the host loop checkpoints: the agent state with a leading member axis of 1."""

    agent: AgentState


class ChunkStats(NamedTuple):
    """Host-side statistics of one chunk."""

    episode_returns: list
    episode_lengths: list
    losses: np.ndarray
    steps: int


class HostLoop:
    """Drives an `Agent` on a `envs.host.HostAdapter`.

    Args:
      agent: the `Agent`.
      adapter: a `HostAdapter` in SAME_STEP (or DISABLED) autoreset mode.
    """

    def __init__(self, agent: Agent, adapter: Any, update_every: int = 1):
        from gymnasium.vector import AutoresetMode

        if adapter.autoreset_mode == AutoresetMode.NEXT_STEP:
            raise ValueError("HostLoop needs an adapter in SAME_STEP or DISABLED autoreset mode")
        if isinstance(update_every, bool) or not isinstance(update_every, int) or (
                update_every < 1):
            raise ValueError(f"HostLoop: `update_every` must be an int >= 1, got {update_every!r}")
        self.agent = agent
        self.adapter = adapter
        self.num_envs = adapter.num_envs
        self.update_every = update_every

        def act_only(state, obs, index):
            return agent.act(jax.random.fold_in(state.key, index), state, obs)

        def update_many(state, transitions, lasts):
            if agent.update_block is not None:
                return agent.update_block(state, transitions, lasts)
            return scan_updates(agent.update, state, transitions, lasts)

        self._act = jax.jit(act_only)
        self._update_many = jax.jit(update_many, donate_argnums=0)
        self._update_one = jax.jit(agent.update, donate_argnums=0)

        def first_act(state, obs):
            key, k_act = jax.random.split(state.key)
            return state._replace(key=key), agent.act(k_act, state, obs)

        def update_then_act(state, transition, last, next_obs):
            state, metrics = agent.update(state, transition, last)
            key, k_act = jax.random.split(state.key)
            state = state._replace(key=key)
            return state, agent.act(k_act, state, next_obs), metrics

        self._first_act = jax.jit(first_act)
        self._step = jax.jit(update_then_act, donate_argnums=0)

    def init(self, key: jax.Array, example_obs: Any, hparams: dict | None = None) -> AgentState:
        return self.agent.init(key, example_obs, self.num_envs, hparams)

    def run(self, state: AgentState, obs: np.ndarray, num_iterations: int,
            should_stop=lambda: False):
        """Runs `num_iterations` environment steps of all N envs.

        Returns:
          `(state, obs, ChunkStats)`; `obs` is the observation to continue from.
        """
        if self.update_every > 1:
            return self._run_blocks(state, obs, num_iterations, should_stop)
        state, actions = self._first_act(state, obs)
        returns, lengths, losses = [], [], []
        for _ in range(num_iterations):
            step = self.adapter.step(np.asarray(actions))
            # NumPy arrays go straight into the jitted step (no per-field device transfer).
            state, actions, metrics = self._step(
                state, step.transition, step.episodes.finished, step.next_obs)
            losses.append((metrics["loss"], metrics["learned"]))
            finished = step.episodes.finished
            if finished.any():
                returns.extend(step.episodes.returns[finished].tolist())
                lengths.extend(step.episodes.lengths[finished].tolist())
            obs = step.next_obs
            if should_stop():
                break
        losses = jax.device_get(losses)
        learned = np.array([float(loss) for loss, ok in losses if ok])
        return state, obs, ChunkStats(returns, lengths, learned, len(losses) * self.num_envs)

    def _run_blocks(self, state, obs, num_iterations, should_stop):
        """`update_every = K > 1`: one `act` dispatch per step, one update dispatch per K."""
        returns, lengths, losses = [], [], []
        pending, pending_last = [], []
        steps = 0

        fields = self.agent.act_fields or tuple(
            f for f in AgentState._fields if f not in ("replay", "opt_state"))

        def light(state):  # what act reads (and its key); fewer arrays, cheaper dispatch
            return state._replace(**{f: () for f in AgentState._fields
                                     if f not in fields and f != "key"})

        acting = light(state)
        for _ in range(num_iterations):
            actions = np.asarray(self._act(acting, obs, np.int32(len(pending))))
            step = self.adapter.step(actions, check=False)  # the agent's actions are valid
            pending.append(step.transition)
            pending_last.append(step.episodes.finished)
            steps += 1
            finished = step.episodes.finished
            if finished.any():
                returns.extend(step.episodes.returns[finished].tolist())
                lengths.extend(step.episodes.lengths[finished].tolist())
            obs = step.next_obs
            if len(pending) == self.update_every:
                batch = jax.tree.map(lambda *xs: np.stack(xs), *pending)
                state, metrics = self._update_many(state, batch, np.stack(pending_last))
                losses.append((metrics["loss"], metrics["learned"]))
                pending, pending_last = [], []
                acting = light(state)
            if should_stop():
                break
        for transition, last in zip(pending, pending_last, strict=True):
            state, metrics = self._update_one(state, transition, last)
            losses.append((metrics["loss"][None], metrics["learned"][None]))
        losses = jax.device_get(losses)
        learned = np.array([float(loss) for block, oks in losses
                            for loss, ok in zip(block, oks, strict=True) if ok])
        return state, obs, ChunkStats(returns, lengths, learned, steps * self.num_envs)


def train_host(plan, run_dir: pathlib.Path, resuming: bool, progress: bool,
               stop_after_chunks: int | None) -> dict:
    """The gym backend of `agents.run.train` (one member)."""
    from agents import run as run_lib
    from agents.checkpoint import Checkpointer
    from envs.host import make_host_env

    start = time.perf_counter()
    config = plan.config
    hparams = {**plan.spec.default_hparams, **plan.settings[0]}
    adapter = make_host_env(config.env, num_envs=config.num_envs,
                            gamma=float(hparams["gamma"]), seed=config.seed)
    loop = HostLoop(plan.agent, adapter, plan.spec.host_update_every(plan.agent_config))
    obs = adapter.reset(seed=config.seed)
    state = loop.init(jax.random.key(config.seed), obs[0], hparams)
    checkpoints = Checkpointer(run_dir / "checkpoints")
    done_chunks = 0
    if resuming:
        latest = checkpoints.latest_step()
        if latest is None:
            raise run_lib.RunError(f"'{run_dir}' has no checkpoint to resume from")
        state = checkpoints.restore(HostLoopState(_add_axis(state))).agent
        state = jax.tree.map(lambda x: x[0], state)
        done_chunks = latest
    writer = run_lib.MetricsWriter(
        run_dir / "metrics.csv", run_lib.metric_columns(plan), done_chunks)
    bar = run_lib.progress_bar(plan, done_chunks * plan.steps_per_chunk, progress)
    interrupted = False
    chunks_this_call = 0
    with run_lib._Interrupt() as interrupt:
        for chunk in range(done_chunks, plan.num_chunks):
            t0 = time.perf_counter()
            new_state, obs, stats = loop.run(
                state, obs, plan.iterations_per_chunk, lambda: interrupt.requested)
            seconds = time.perf_counter() - t0
            if not np.all(np.isfinite(stats.losses)):
                step = int(new_state.step)
                last = checkpoints.latest_step()
                bar.close()
                raise run_lib.RunError(
                    f"the loss became NaN near environment step {step}; training stopped and "
                    + (f"the last good checkpoint (chunk {last}) is kept in "
                       f"{run_dir / 'checkpoints'}" if last is not None else
                       "no checkpoint was written before it"), code=1)
            state = new_state
            if stats.steps < plan.steps_per_chunk:  # interrupted mid-chunk: do not save
                interrupted = True
                break
            checkpoints.save(chunk + 1, HostLoopState(_add_axis(state)))
            n = len(stats.episode_returns)
            writer.append([{
                "chunk": chunk, "member": 0, "seed": config.seed,
                **{name: hparams[name] for name in plan.swept},
                "step": int(state.step), "episodes": n,
                "mean_return": f"{np.mean(stats.episode_returns):.4f}" if n else "",
                "mean_length": f"{np.mean(stats.episode_lengths):.2f}" if n else "",
                "loss": f"{stats.losses.mean():.6g}" if stats.losses.size else "",
                "eval_return": "", "best_eval_return": "", "seconds": f"{seconds:.3f}",
                "steps_per_second": f"{stats.steps / seconds:.1f}",
                "wall_time": f"{time.time():.3f}"}])
            bar.update(plan.steps_per_chunk)
            bar.set_postfix({"steps/s": f"{stats.steps / seconds:,.0f}",
                             "return": f"{np.mean(stats.episode_returns):.1f}" if n else "-"})
            chunks_this_call += 1
            if interrupt.requested or (stop_after_chunks is not None
                                       and chunks_this_call >= stop_after_chunks):
                interrupted = chunk + 1 < plan.num_chunks
                break
    bar.close()
    adapter.close()
    done = checkpoints.latest_step() or 0
    summary = {"run_dir": str(run_dir), "backend": "gym", "members": 1, "chunks_done": done,
               "chunks_total": plan.num_chunks, "steps": done * plan.steps_per_chunk,
               "train_seconds": time.perf_counter() - start, "interrupted": interrupted,
               "cpu_dispatch": "async" if _async_cpu_dispatch() else "inline",
               "evaluation": None}
    run_lib.plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png",
                                plan.swept, f"{config.agent} on {config.env}")
    if interrupted:
        print(f"stopped after chunk {done} of {plan.num_chunks}; continue with: "
              f"python scripts/train.py --resume {run_dir}", file=sys.stderr)
        return summary
    if config.eval_episodes > 0:
        summary["evaluation"] = run_lib.evaluate_members(
            plan, HostLoopState(_add_axis(state)), run_dir)
    return summary


def state_template(plan) -> HostLoopState:
    """Shapes of the checkpointed state of a gym-backend run (for restoring)."""
    hparams = merge_hparams(plan.spec.default_hparams, plan.settings[0])
    example = plan.observation_space.sample()
    state = jax.eval_shape(
        lambda key: plan.agent.init(key, example, plan.config.num_envs, hparams),
        jax.random.key(0))
    return HostLoopState(jax.tree.map(
        lambda s: jax.ShapeDtypeStruct((1,) + s.shape, s.dtype), state))


def _add_axis(tree: Any) -> Any:
    return jax.tree.map(lambda x: jnp.asarray(x)[None], tree)
