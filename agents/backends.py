"""The two backends of a training run; each supplies only "run K steps" to the runner.

    backend = JaxBackend(plan)  or  GymBackend(plan)
    state = backend.init()          # or, resuming: backend.start() and a restored state
    state, result = backend.run(state, num_iterations, should_stop)   # one chunk

- `JaxBackend`: a tdkit JAX environment; the whole loop state (agents, replay buffers,
  environment states, keys) of every member (seeds x hyperparameter settings) trains in one
  `jax.jit(jax.vmap(loop.run))` per chunk (`agents.jax_loop`), and is checkpointed whole, so
  a resumed run ends with exactly the parameters of an uninterrupted one. After each chunk
  the greedy policy is evaluated on the JAX twin and the best parameters kept.
- `GymBackend`: one member on any Gymnasium environment stepped on the host
  (`agents.host_loop.HostLoop`, or `agents.host_fast.FastHostLoop` when the agent offers a
  `FastPath` and the run allows it); the agent state is checkpointed, the environments
  restart on resume.

The runner (`agents.runner`) owns everything else: resume, NaN stop, checkpoint cadence,
metrics, plots, Ctrl-C and evaluation.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agents.base import AgentState
from agents.compile_options import training_compiler_options
from agents.plan import Plan


class ChunkResult(NamedTuple):
    """What one chunk reports to the runner.

    Attributes:
      complete: False when the chunk stopped early (Ctrl-C on the gym backend); its steps
        are then dropped.
      members: one dict per member: `step` (environment steps so far), `episodes`,
        `mean_return`, `mean_length`, `loss` (mean over gradient steps; None where none was
        taken or no episode ended), `eval_return`, `best_eval_return` (None without).
      nan_step: `(member, environment step)` of the first non-finite loss, or None.
      best_scores: float `[M]`, the best greedy evaluation so far per member (None without).
    """

    complete: bool
    members: list
    nan_step: tuple | None
    best_scores: np.ndarray | None


def zeros_like_template(template: Any) -> Any:
    """Concrete zeros (PRNG keys as zero key data) shaped like a `jax.eval_shape` result, for
    restoring checkpoints into."""
    return jax.tree.map(
        lambda s: jax.random.wrap_key_data(jnp.zeros(s.shape + (2,), jnp.uint32))
        if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key) else jnp.zeros(s.shape, s.dtype),
        template)


class JaxBackend:
    """Every member in one jitted, vmapped program on tdkit's JAX environment."""

    name = "jax"
    interrupt_message = ("interrupt: finishing the current chunk, then saving a checkpoint "
                         "(Ctrl-C again to abort without saving)")

    def __init__(self, plan: Plan):
        import envs
        from agents.jax_loop import make_jax_loop

        self.plan = plan
        config = plan.config
        env, env_params = envs.make(config.env)
        self.loop = make_jax_loop(plan.agent, env, env_params, config.num_envs,
                                  eval_episodes=plan.select_episodes)
        self._init = jax.jit(jax.vmap(self.loop.init))
        iterations = plan.iterations_per_chunk
        self._run = jax.jit(jax.vmap(lambda s: self.loop.run(s, iterations)),
                            compiler_options=training_compiler_options(
                                plan.native_cpu_reductions))

    def start(self) -> None:
        """Nothing to prepare besides the state (the programs compile on first use)."""

    def init(self) -> Any:
        """The initial loop state of every member."""
        state = self._init(self.plan.member_keys(), self.plan.member_hparams())
        return self._shard(state)

    def _shard(self, state):
        if self.plan.sharding is None:
            return state
        from tdkit import parallel

        return parallel.shard_leading(state, self.plan.sharding)

    def template(self) -> Any:
        """Zeros shaped like the checkpointed state (no computation)."""
        return zeros_like_template(jax.eval_shape(
            jax.vmap(self.loop.init), self.plan.member_keys(), self.plan.member_hparams()))

    def to_checkpoint(self, state: Any) -> Any:
        return state

    def from_checkpoint(self, tree: Any) -> Any:
        return self._shard(tree)

    def run(self, state: Any, num_iterations: int, should_stop) -> tuple[Any, ChunkResult]:
        del num_iterations, should_stop  # a chunk is one compiled call; Ctrl-C waits for it
        state, metrics = self._run(state)
        metrics = jax.device_get(metrics)
        loss = np.where(metrics.learned, metrics.loss, 0.0)
        bad = ~np.isfinite(loss)
        nan_step = None
        if bad.any():
            member, it = np.argwhere(bad)[0]
            nan_step = (int(member), int(metrics.step[member, it]))
        select = self.plan.config.select_best
        last_score = np.asarray(state.last_score) if select else None
        best_score = np.asarray(state.best_score) if select else None
        members = []
        for i in range(self.plan.num_members):
            finished = int(metrics.finished[i].sum())
            learned = metrics.learned[i]
            members.append({
                "step": int(metrics.step[i, -1]), "episodes": finished,
                "mean_return": float(metrics.return_sum[i].sum() / finished)
                if finished else None,
                "mean_length": float(metrics.length_sum[i].sum() / finished)
                if finished else None,
                "loss": float(metrics.loss[i][learned].mean()) if learned.any() else None,
                "eval_return": float(last_score[i]) if select else None,
                "best_eval_return": float(best_score[i]) if select else None})
        return state, ChunkResult(True, members, nan_step, best_score)

    def policy_states(self, state: Any) -> list[AgentState]:
        """Per member, the agent state to evaluate (the best-evaluated parameters when the
        run selects them)."""
        out = []
        for member in range(self.plan.num_members):
            agent_state = jax.tree.map(lambda x, m=member: x[m], state.agent)
            if self.plan.config.select_best:
                agent_state = agent_state._replace(
                    params=jax.tree.map(lambda x, m=member: x[m], state.best_params))
            out.append(agent_state)
        return out

    def summary(self) -> dict:
        return {}

    def close(self) -> None:
        pass


class HostLoopState(NamedTuple):
    """What the gym backend checkpoints: the agent state with a leading member axis of 1."""

    agent: AgentState


class GymBackend:
    """One member on a Gymnasium environment stepped on the host.

    The fast path (`agents.host_fast`) runs when `plan.config.fast_host_loop` is set (the
    default); otherwise the reference loop (`agents.host_loop`). The environments are made
    by `init` (not for evaluating a saved run).
    """

    name = "gym"
    interrupt_message = ("interrupt: stopping at once; the unfinished chunk's steps are "
                         "dropped and the completed chunks are kept in the checkpoint "
                         "(Ctrl-C again to abort without saving)")

    def __init__(self, plan: Plan):
        self.plan = plan
        self.hparams = {**plan.spec.default_hparams, **plan.settings[0]}
        self.adapter = self.loop = self.obs = None

    def start(self) -> None:
        """Makes the environments and the loop (also when resuming: they restart)."""
        from agents.host_fast import FastHostLoop
        from agents.host_loop import HostLoop
        from envs.host import make_host_env

        if self.adapter is not None:
            return
        config = self.plan.config
        self.adapter = make_host_env(config.env, num_envs=config.num_envs,
                                     gamma=float(self.hparams["gamma"]), seed=config.seed,
                                     wrappers=self.plan.wrappers)
        if config.fast_host_loop:
            self.loop = FastHostLoop(self.plan.agent, self.adapter)
        else:
            self.loop = HostLoop(self.plan.agent, self.adapter)
        self.obs = self.adapter.reset(seed=config.seed)

    def init(self) -> AgentState:
        """The initial agent state (after `start`)."""
        self.start()
        config = self.plan.config
        return self.loop.init(jax.random.key(config.seed), self.obs[0], self.hparams)

    def template(self) -> HostLoopState:
        from agents.base import merge_hparams

        plan = self.plan
        hparams = merge_hparams(plan.spec.default_hparams, plan.settings[0])
        example = plan.observation_space.sample()
        state = jax.eval_shape(
            lambda key: plan.agent.init(key, example, plan.config.num_envs, hparams),
            jax.random.key(0))
        return zeros_like_template(HostLoopState(jax.tree.map(
            lambda s: jax.ShapeDtypeStruct((1,) + s.shape, s.dtype), state)))

    def to_checkpoint(self, state: AgentState) -> HostLoopState:
        return HostLoopState(jax.tree.map(lambda x: jnp.asarray(x)[None], state))

    def from_checkpoint(self, tree: HostLoopState) -> AgentState:
        return jax.tree.map(lambda x: x[0], tree.agent)

    def run(self, state: AgentState, num_iterations: int, should_stop
            ) -> tuple[AgentState, ChunkResult]:
        state, self.obs, stats = self.loop.run(state, self.obs, num_iterations, should_stop)
        nan_step = None
        if not np.all(np.isfinite(stats.losses)):
            nan_step = (0, int(state.step))
        n = len(stats.episode_returns)
        member = {
            "step": int(state.step), "episodes": n,
            "mean_return": float(np.mean(stats.episode_returns)) if n else None,
            "mean_length": float(np.mean(stats.episode_lengths)) if n else None,
            "loss": float(stats.losses.mean()) if stats.losses.size else None,
            "eval_return": None, "best_eval_return": None}
        complete = stats.steps == num_iterations * self.plan.config.num_envs
        return state, ChunkResult(complete, [member], nan_step, None)

    def policy_states(self, state: Any) -> list[AgentState]:
        if isinstance(state, HostLoopState):
            state = self.from_checkpoint(state)
        return [state]

    def summary(self) -> dict:
        from agents import host_fast

        return {"cpu_dispatch": "async" if host_fast.async_cpu_dispatch() else "inline",
                "pinned_cpu": host_fast.pinned_cpu() if self.plan.config.pin_cpu else None,
                "host_loop": "fast" if self.plan.config.fast_host_loop else "reference"}

    def close(self) -> None:
        if self.adapter is not None:
            self.adapter.close()
