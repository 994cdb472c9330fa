"""The host loop's fast path: the same loop as `agents.host_loop.HostLoop`, with speed tricks.

    loop = FastHostLoop(agent, adapter)        # update_every from agent.fast_path (or given)
    state = loop.init(key, example_obs, hparams)
    state, obs, stats = loop.run(state, obs, num_iterations)

`agents.host_loop.HostLoop` is the reference: one `act` and one `update` call per
environment step, easy to read. This module computes the same thing faster for small
networks on the CPU, where each jitted call's dispatch costs more than its computation:

- per iteration ONE jitted call does the agent's `update` on the new transitions followed by
  its `act` on the next observations (with `update_every = 1` the result equals the
  reference loop's, key for key);
- between dispatches the agent state stays packed into one flat array per dtype plus the
  replay arrays (`StatePacker`): JAX's dispatch costs about a microsecond per array
  argument on the CPU, and a DQN state has about fifty;
- with `update_every = K > 1` (an agent's `FastPath.update_every`, e.g. DQN's
  `train_every`) the adapter writes K steps into one block of arrays
  (`HostAdapter.step_into`) and the K updates run in one jitted call (the agent's
  `FastPath.update_block` where it has one, else a `lax.scan` of `update`). Between two
  block updates the acting parameters are those of the last update, which is exact for
  agents whose acting parameters change only every K steps and wrong for Sarsa-style agents
  whose `act` needs the action chosen by the previous `update` (they keep K = 1). After each
  block update the loop splits an acting key off the agent's key, and step k of the block
  acts with `fold_in(act_key, k)` and the exploration schedule at its own step
  (`state.step + k N`): an agent with `FastPath.epsilon_greedy` gets the exploration of the
  whole block from the block update, so steps where every environment explores need no
  dispatch at all and the others one small greedy call; any other agent gets one `act`
  call per step; the first action of a block comes out of the block's update call itself;
- `inline_cpu_dispatch()` (before JAX first runs) makes JAX run CPU computations on the
  calling thread, and `pin_to_one_cpu()` (`train.py --pin-cpu`) keeps the process on one
  core, saving XLA's hand-offs to worker threads.

The fast path probes `Agent.fast_path` (`agents.base.FastPath`); agents without one run
here with K = 1 and plain `act`/`update`.
"""

import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agents.base import Agent, AgentState, FastPath, scan_updates
from agents.host_loop import ChunkStats


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
    if not async_cpu_dispatch():
        return True
    if _jax_started():
        return False
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True


def pin_to_one_cpu() -> int | None:
    """Pins this process (every thread, and those it starts later) to one CPU, the idlest
    over 50 ms, if JAX has not started and the process may run on several.

    With inline dispatch the host loop runs one computation at a time, but XLA still hands
    parts of each (its dot and fusion kernels) to worker threads on the other cores, and for
    a small network those hand-offs cost more than they save: DQN on Gymnasium's
    CartPole-v1 with CleanRL's hyperparameters (MLP 120-84, batch 128) trained 500k steps in
    27 s pinned against 33 s unpinned on a 2-core VM, with the same result. For large
    networks, whose kernels gain from several cores, do not pin. Linux only.

    Returns:
      The CPU now used, or None if nothing was changed (JAX already started, one CPU
      already, or no `os.sched_setaffinity`).
    """
    import os

    if not hasattr(os, "sched_setaffinity") or _jax_started():
        return None
    allowed = os.sched_getaffinity(0)
    if len(allowed) <= 1:
        return None
    cpu = _idlest_cpu(allowed)
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for thread in threads:
        try:
            os.sched_setaffinity(thread, {cpu})
        except OSError:  # a thread that ended meanwhile
            pass
    os.sched_setaffinity(0, {cpu})
    return cpu


def _idlest_cpu(allowed: set, seconds: float = 0.05) -> int:
    """Of the `allowed` CPUs, the one with the most idle time over `seconds` (from
    /proc/stat; the lowest-numbered one where that cannot be read): a pinned process cannot
    move away from a busy core."""

    def idle_times():
        times = {}
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    times[int(name[3:])] = int(fields[3]) + int(fields[4])  # idle + iowait
        return times

    try:
        before = idle_times()
        time.sleep(seconds)
        after = idle_times()
        return max(sorted(allowed), key=lambda cpu: after.get(cpu, 0) - before.get(cpu, 0))
    except (OSError, ValueError, IndexError):
        return min(allowed)


def _jax_started() -> bool:
    try:
        from jax._src import xla_bridge

        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # private API moved: assume a fresh process
        return False


def pinned_cpu() -> int | None:
    import os

    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    return next(iter(allowed)) if len(allowed) == 1 else None


def async_cpu_dispatch() -> bool:
    return bool(jax.config.values.get("jax_cpu_enable_async_dispatch", True))


class FastHostLoop:
    """Drives an `Agent` on a `envs.host.HostAdapter`, fast (see the module docstring).

    Args:
      agent: the `Agent`.
      adapter: a `HostAdapter` in SAME_STEP (or DISABLED) autoreset mode.
      update_every: K, steps per update dispatch; None: the agent's
        `FastPath.update_every` (1 without a fast path).
    """

    def __init__(self, agent: Agent, adapter: Any, update_every: int | None = None):
        from gymnasium.vector import AutoresetMode

        if adapter.autoreset_mode == AutoresetMode.NEXT_STEP:
            raise ValueError("FastHostLoop needs an adapter in SAME_STEP or DISABLED autoreset "
                             "mode")
        if update_every is None:
            update_every = agent.fast_path.update_every if agent.fast_path is not None else 1
        if isinstance(update_every, bool) or not isinstance(update_every, int) or (
                update_every < 1):
            raise ValueError(
                f"FastHostLoop: `update_every` must be an int >= 1, got {update_every!r}")
        self.agent = agent
        self.adapter = adapter
        self.num_envs = adapter.num_envs
        self.update_every = update_every

        self._jitted = None  # (state signature, _Functions): see `_functions`
        self._init = jax.jit(
            lambda key, obs, items: agent.init(key, obs, self.num_envs, dict(items)),
            static_argnums=2)

    def init(self, key: jax.Array, example_obs: Any, hparams: dict | None = None) -> AgentState:
        """The agent's initial state, built by one compiled program (op by op, a network's
        initializers would compile dozens of small programs)."""
        # Static (hashable) hyperparameters: the agent checks them while tracing.
        items = tuple(sorted((name, float(value)) for name, value in (hparams or {}).items()))
        return self._init(key, np.asarray(example_obs), items)

    def run(self, state: AgentState, obs: np.ndarray, num_iterations: int,
            should_stop=lambda: False):
        """Runs `num_iterations` environment steps of all N envs.

        Returns:
          `(state, obs, ChunkStats)`; `obs` is the observation to continue from.
        """
        if self.update_every > 1:
            return self._run_blocks(state, obs, num_iterations, should_stop)
        jitted = self._functions(state)
        packed, actions = jitted.first_act(state, obs)
        returns, lengths, losses = [], [], []
        adapter = self.adapter
        for _ in range(num_iterations):
            step = adapter.step(np.asarray(actions), check=False)  # valid by construction
            # NumPy arrays go straight into the jitted step (no per-field device transfer).
            finished = step.episodes.finished
            packed, actions, metrics = jitted.step(packed, step.transition, finished,
                                                   step.next_obs)
            losses.append(metrics)
            if finished.any():
                returns.extend(step.episodes.returns[finished].tolist())
                lengths.extend(step.episodes.lengths[finished].tolist())
            obs = step.next_obs
            if should_stop():
                break
        state = jitted.unpack(packed)
        losses = jax.device_get(losses)
        learned = np.array([float(loss) for loss, ok in losses if ok])
        return state, obs, ChunkStats(returns, lengths, learned, len(losses) * self.num_envs)

    def _run_blocks(self, state, obs, num_iterations, should_stop):
        """`update_every = K > 1`: one update dispatch per K steps, at most one act dispatch
        per step (none on steps where an epsilon-greedy agent explores in every env); the
        adapter writes each step's transitions straight into the block's arrays."""
        jitted = self._functions(state)
        K = self.update_every
        packed, act_key, draws, first = jitted.pack(state, obs)
        explore_all, explore_any, random_actions, explore, noise = _host_plan(draws, K)
        returns, lengths, losses = [], [], []
        step_into, greedy, act, update = (self.adapter.step_into, jitted.greedy, jitted.act,
                                          jitted.update)
        transition_block = self.adapter.transition_block
        transitions, lasts = transition_block(K)
        k = blocks = 0
        for _ in range(num_iterations):
            if k == 0:  # computed with the block's update
                actions = np.asarray(first)
            elif draws is None:
                actions = np.asarray(act(packed, act_key, obs, np.int32(k)))
            elif explore_all[k]:
                actions = random_actions[k]
            else:
                actions = np.asarray(greedy(packed, obs, noise[k]))
                if explore_any[k]:
                    actions = np.where(explore[k], random_actions[k], actions)
            obs, episodes = step_into(actions, transitions, lasts, k)
            if episodes is not None:
                returns.extend(episodes.returns[episodes.finished].tolist())
                lengths.extend(episodes.lengths[episodes.finished].tolist())
            k += 1
            if k == K:
                packed, metrics, act_key, draws, first = update(packed, transitions, lasts,
                                                                obs)
                losses.append(metrics)
                explore_all, explore_any, random_actions, explore, noise = _host_plan(draws, K)
                transitions, lasts = transition_block(K)  # fresh: never reused
                k = 0
                blocks += 1
            if should_stop():
                break
        steps = blocks * K + k
        state = jitted.unpack(packed)
        for i in range(k):  # a block cut short: update on its steps one by one
            transition = jax.tree.map(lambda x, i=i: x[i], transitions)
            state, metrics = jitted.update_one(state, transition, lasts[i])
            losses.append((metrics["loss"][None], metrics["learned"][None]))
        losses = jax.device_get(losses)
        learned = np.array([float(loss) for block, oks in losses
                            for loss, ok in zip(block, oks, strict=True) if ok])
        return state, obs, ChunkStats(returns, lengths, learned, steps * self.num_envs)

    def _functions(self, state):
        """The loops' jitted functions for states shaped like `state` (built once)."""
        signature = jax.tree.structure(state), tuple(
            (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(state))
        if self._jitted is not None and self._jitted[0] == signature:
            return self._jitted[1]
        agent, K, N = self.agent, self.update_every, self.num_envs
        packer = StatePacker(state)
        fast_path = agent.fast_path or FastPath()
        acting = fast_path.epsilon_greedy

        def first_act(state, obs):  # K = 1
            key, k_act = jax.random.split(state.key)
            return packer.pack(state._replace(key=key)), agent.act(k_act, state, obs)

        def update_then_act(packed, transition, last, next_obs):  # K = 1
            state, metrics = agent.update(packer.unpack(packed), transition, last)
            key, k_act = jax.random.split(state.key)
            state = state._replace(key=key)
            return (packer.pack(state), agent.act(k_act, state, next_obs),
                    (metrics["loss"], metrics["learned"]))

        def update_many(state, transitions, lasts):
            if fast_path.update_block is not None:
                return fast_path.update_block(state, transitions, lasts)
            return scan_updates(agent.update, state, transitions, lasts)

        def plan(state, obs):
            """Splits the block's acting key off the agent's key (as the K = 1 loop splits
            one off after every update: acting never reuses a key of the update's chain),
            draws the exploration of the next K steps and acts on the first (`obs`), which
            saves that step's dispatch."""
            key, act_key = jax.random.split(state.key)
            state = state._replace(key=key)
            if acting is None:
                return state, act_key, None, agent.act(
                    jax.random.fold_in(act_key, 0), state, obs)
            draws = acting.draws(act_key, state, K, N)
            greedy = acting.greedy(state.params, obs, draws.noise[0])
            return (state, act_key, draws,
                    jnp.where(draws.explore[0], draws.random_actions[0], greedy))

        def pack_and_plan(state, obs):
            state, act_key, draws, first = plan(state, obs)
            return packer.pack(state), act_key, draws, first

        def update(packed, transitions, lasts, next_obs):
            state, metrics = update_many(packer.unpack(packed), transitions, lasts)
            state, act_key, draws, first = plan(state, next_obs)
            return (packer.pack(state), (metrics["loss"], metrics["learned"]), act_key,
                    draws, first)

        def greedy(packed, obs, noise):
            return acting.greedy(packer.unpack(packed).params, obs, noise)

        def act(packed, act_key, obs, index):  # step `index` of a block, as in `draws`
            state = packer.unpack(packed)
            key = jax.random.fold_in(act_key, index)
            return agent.act(key, state._replace(step=state.step + index * N), obs)

        jitted = _Functions(
            first_act=jax.jit(first_act), step=jax.jit(update_then_act, donate_argnums=0),
            pack=jax.jit(pack_and_plan), unpack=jax.jit(packer.unpack),
            update=jax.jit(update, donate_argnums=0), greedy=jax.jit(greedy),
            act=jax.jit(act), update_one=jax.jit(agent.update, donate_argnums=0))
        self._jitted = (signature, jitted)
        return jitted


class _Functions(NamedTuple):
    """The host loop's jitted functions; the state crosses them packed (`StatePacker`)."""

    first_act: Any  # (state, obs) -> (packed, actions)                          K = 1
    step: Any  # (packed, transition, last, next_obs) -> (packed, actions, metrics)
    pack: Any  # (state, obs) -> (packed, act key, draws or None, first actions)     K > 1
    unpack: Any  # packed -> state
    update: Any  # (packed, transitions, lasts, next obs) -> (packed, metrics, act key,
    #              draws, first actions)
    greedy: Any  # (packed groups, obs, noise) -> actions (epsilon-greedy agents)
    act: Any  # (packed, act key, obs, index in the block) -> actions (other agents)
    update_one: Any  # (state, transition, last) -> (state, metrics): a block's leftover


def _host_plan(draws, num_steps):
    """A block's exploration on the host: per step, whether every / any env explores, the
    random actions, the explore mask and the tie-breaking noise (numpy); for agents without
    draws, nothing explores in advance."""
    if draws is None:
        return [False] * num_steps, [False] * num_steps, None, None, None
    explore = np.asarray(draws.explore)
    return (explore.all(axis=1).tolist(), explore.any(axis=1).tolist(),
            np.asarray(draws.random_actions), explore, np.asarray(draws.noise))


# State arrays with at least this many elements are passed as they are, never packed.
LARGE_LEAF_SIZE = 1 << 16


class StatePacker:
    """Packs an `AgentState` into one flat array per dtype, plus its large arrays.

    JAX's dispatch of a jitted call costs about a microsecond per array argument or result
    on the CPU, and a DQN state has about fifty arrays, most of them small (parameters,
    optimizer moments, counters, hyperparameters). Packed, a block update passes a handful:
    the flat groups (float32, int32, the PRNG key's uint32 data, ...) and the large arrays,
    which stay as they are and are updated in place (donated): the replay's arrays (its
    storage, priorities; its scalars, position and size, go into the groups) and any other
    array of at least `LARGE_LEAF_SIZE` elements. Packing copies every packed array on
    every call, which for a large network costs more than the dispatch it saves: the
    Nature-DQN CNN's 3136x512 layer alone, with its target and Adam moments, is 26 MB.

    `pack` and `unpack` are traceable (call them inside `jax.jit`); `unpack(pack(s))`
    equals `s` leaf for leaf, PRNG keys included.

    Args:
      example: an `AgentState` with the shapes and dtypes to pack.
    """

    def __init__(self, example: AgentState):
        with_paths, self._treedef = jax.tree.flatten_with_path(example)
        # per leaf: ("large", index) or ("packed", group, offset, size, shape, dtype, impl)
        self._layout = []
        sizes: dict = {}
        num_large = 0
        for path, leaf in with_paths:
            shape, dtype = jnp.shape(leaf), jnp.result_type(leaf)
            if (getattr(path[0], "name", None) == "replay" and len(shape) >= 1) or (
                    int(np.prod(shape, dtype=np.int64)) >= LARGE_LEAF_SIZE):
                self._layout.append(("large", num_large))
                num_large += 1
                continue
            impl = None
            if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
                impl = jax.random.key_impl(leaf)
                data = jax.eval_shape(jax.random.key_data, leaf)
                shape, dtype = data.shape, data.dtype
            group = np.dtype(dtype)
            size = int(np.prod(shape, dtype=np.int64))
            self._layout.append(("packed", group, sizes.get(group, 0), size, shape,
                                 jnp.result_type(leaf), impl))
            sizes[group] = sizes.get(group, 0) + size
        self.groups = tuple(sizes)
        self._index = {group: i for i, group in enumerate(self.groups)}

    def pack(self, state: AgentState) -> tuple:
        """`((one 1-D array per dtype group), (the large arrays, in tree order))`."""
        leaves = jax.tree.leaves(state)
        if len(leaves) != len(self._layout):
            raise ValueError(f"StatePacker.pack: the state has {len(leaves)} arrays, the "
                             f"packer was built for {len(self._layout)}")
        parts = {group: [] for group in self.groups}
        large = []
        for leaf, entry in zip(leaves, self._layout, strict=True):
            if entry[0] == "large":
                large.append(leaf)
                continue
            _, group, _, _, _, dtype, impl = entry
            if jnp.result_type(leaf) != dtype:
                raise ValueError(f"StatePacker.pack: a state array has dtype "
                                 f"{jnp.result_type(leaf)}, the packer expects {dtype}")
            x = jax.random.key_data(leaf) if impl is not None else leaf
            parts[group].append(jnp.ravel(x))
        return tuple(jnp.concatenate(parts[group]) for group in self.groups), tuple(large)

    def unpack(self, packed: tuple) -> AgentState:
        """The `AgentState` of `pack`'s output."""
        groups, large = packed
        leaves = []
        for entry in self._layout:
            if entry[0] == "large":
                leaves.append(large[entry[1]])
                continue
            _, group, offset, size, shape, _, impl = entry
            x = jax.lax.slice_in_dim(groups[self._index[group]], offset, offset + size)
            x = x.reshape(shape)
            leaves.append(x if impl is None else jax.random.wrap_key_data(x, impl=impl))
        return jax.tree.unflatten(self._treedef, leaves)


