"""Device-resident replay buffers: uniform and prioritized (Schaul et al., 2016).

A buffer is a `ReplayBuffer(init, add, sample, update_priorities)` of pure functions; its
state is a NamedTuple of arrays that lives on the device, preallocated with a leading
`[C]` (capacity) axis on every leaf of the stored pytree (a `Transition` or any other
NamedTuple / dict of arrays). Every function works inside `jax.jit`, `lax.scan` and under
`jax.vmap` over seeds (one buffer per seed). `capacity` and `batch_size` are static (Python
ints); positions, sizes, priorities, `beta` and keys may be traced.

    buffer = tdkit.replay.prioritized_replay(capacity=100_000)
    state = buffer.init(example_transition)              # one transition, no leading axis
    state = buffer.add(state, transitions)               # [N, ...], N envs (or 1)
    batch, indices, weights = buffer.sample(key, state, 32, beta=0.4)
    state = buffer.update_priorities(state, indices, jnp.abs(td_errors))

Sampling is always WITH replacement from the stored items (as in DQN): it never returns
the index of an empty slot. When the buffer is empty inside `jit`, `sample` returns slot 0
(zeros) with weight 0, so a weighted loss is a no-op. Outside `jit` (concrete state),
sampling from an empty buffer, or more items than are stored, raises ValueError.

In a host training loop, jit the function that calls `add` with the replay state donated
(`jax.jit(fn, donate_argnums=...)`): otherwise XLA copies the whole storage on every add.
Inside `lax.scan` the carry is updated in place.
"""

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from tdkit import _checks

Array = chex.Array


class ReplayState(NamedTuple):
    """State of a uniform replay buffer.

    Attributes:
      storage: the stored pytree, every leaf with a leading `[C]` axis.
      position: int32 `[]`, the slot the next item is written to.
      size: int32 `[]`, the number of stored items (at most C).
    """

    storage: chex.ArrayTree
    position: Array
    size: Array


class PrioritizedReplayState(NamedTuple):
    """State of a prioritized replay buffer.

    The sampling masses `p_i^alpha` live in a two-level sum structure: `S` (a power of two,
    the smallest >= sqrt(C)) slots per block, `M = ceil(C / S)` blocks and `P = M * S`
    leaves (slots `C, ..., P - 1` are padding of mass 0). Slot `i` is leaf `i`, in block
    `i // S`.

    Attributes:
      storage: the stored pytree, every leaf with a leading `[C]` axis.
      position: int32 `[]`, the slot the next item is written to.
      size: int32 `[]`, the number of stored items (at most C).
      priorities: float32 `[C]`, the priority `p_i = |delta_i| + eps` of each slot (0 for
        empty slots).
      max_priority: float32 `[]`, the largest priority seen so far (1 initially); new items
        get it, so each is replayed at least once with high probability.
      leaf_mass: float32 `[P]`, `p_i^alpha` for stored slots, 0 for empty slots and padding.
      block_mass: float32 `[M]`, the sum of each block's `S` leaves (recomputed from the
        leaves, never updated by differences, so it does not drift).
      block_min: float32 `[M]`, the min of each block's stored leaves (+inf if none).
    """

    storage: chex.ArrayTree
    position: Array
    size: Array
    priorities: Array
    max_priority: Array
    leaf_mass: Array
    block_mass: Array
    block_min: Array


class ReplaySample(NamedTuple):
    """A sampled batch.

    Attributes:
      batch: the stored pytree with a leading `[B]` axis.
      indices: int32 `[B]`, the slots sampled (pass them to `update_priorities`).
      weights: float32 `[B]`, importance-sampling weights in (0, 1] (all 1 for uniform
        replay; 0 for every element when the buffer is empty).
    """

    batch: chex.ArrayTree
    indices: Array
    weights: Array


class ReplayBuffer(NamedTuple):
    """A replay buffer as pure functions.

    Attributes:
      init: `init(example) -> state`; `example` is ONE item (no leading axis).
      add: `add(state, batch, valid=None) -> state`; `batch` has a leading `[N]` axis.
      sample: `sample(key, state, batch_size, beta=None) -> ReplaySample`.
      update_priorities: `update_priorities(state, indices, priorities) -> state` (a checked
        no-op for uniform replay, so agents can call it whatever the buffer).
    """

    init: Callable[[chex.ArrayTree], Any]
    add: Callable[..., Any]
    sample: Callable[..., ReplaySample]
    update_priorities: Callable[[Any, Array, Array], Any]


# --------------------------------------------------------------------------------------
# Shared pieces.


def _is_traced(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_capacity(fn: str, capacity: Any) -> None:
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity <= 0:
        raise ValueError(f"{fn}: `capacity` must be a positive int, got {capacity!r}")


def _check_batch_size(fn: str, batch_size: Any) -> None:
    if (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
            or batch_size <= 0):
        raise ValueError(
            f"{fn}: `batch_size` must be a positive Python int (static under jit), "
            f"got {batch_size!r}")


def _check_beta(fn: str, beta: Any) -> None:
    """Range check when `beta` is concrete; rank/dtype check always."""
    if isinstance(beta, bool):
        raise ValueError(f"{fn}: `beta` must be a number in [0, 1], got {beta!r}")
    if isinstance(beta, (int, float)):
        if not 0.0 <= float(beta) <= 1.0:
            raise ValueError(f"{fn}: `beta` must be a number in [0, 1], got {beta!r}")
        return
    _checks.assert_inputs(fn, beta=(beta, 0, float))
    if not _is_traced(beta) and not 0.0 <= float(beta) <= 1.0:
        raise ValueError(f"{fn}: `beta` must be a number in [0, 1], got {float(beta)!r}")


def _check_can_sample(fn: str, size: Array, batch_size: int) -> None:
    """On the host (concrete `size`), refuses an empty buffer or a batch larger than it."""
    if _is_traced(size):
        return
    size = int(size)
    if size == 0:
        raise ValueError(f"{fn}: the buffer is empty; add items before sampling")
    if batch_size > size:
        raise ValueError(
            f"{fn}: `batch_size`={batch_size} is larger than the number of stored items "
            f"({size}); add more items first (inside jit it would sample with replacement)")


def _canonical_dtype(x: Any) -> np.dtype:
    return jax.dtypes.canonicalize_dtype(jnp.result_type(x))


def _init_storage(fn: str, capacity: int, example: chex.ArrayTree) -> chex.ArrayTree:
    leaves = jax.tree.leaves(example)
    if not leaves:
        raise ValueError(f"{fn}: `example` must be a pytree with at least one array leaf")
    return jax.tree.map(
        lambda x: jnp.zeros((capacity,) + jnp.shape(x), _canonical_dtype(x)), example)


def _check_batch(fn: str, storage: chex.ArrayTree, batch: chex.ArrayTree) -> int:
    """Checks that `batch` is `[N, ...]` copies of the stored item; returns N."""
    if jax.tree.structure(batch) != jax.tree.structure(storage):
        raise AssertionError(
            f"[Chex] {fn}: argument `batch` must have the structure of the stored items "
            f"{jax.tree.structure(storage)}, got {jax.tree.structure(batch)}")
    paths_and_slots = jax.tree_util.tree_leaves_with_path(storage)
    leading = set()
    for (path, slot), x in zip(paths_and_slots, jax.tree.leaves(batch), strict=True):
        name = f"batch{jax.tree_util.keystr(path)}"
        shape = jnp.shape(x)
        if len(shape) != slot.ndim or shape[1:] != slot.shape[1:]:
            raise AssertionError(
                f"[Chex] {fn}: argument `{name}` must have shape [N, *{slot.shape[1:]}] "
                f"(a leading batch axis N), got {shape}")
        if _canonical_dtype(x) != slot.dtype:
            raise AssertionError(
                f"[Chex] {fn}: argument `{name}` must have dtype {slot.dtype} (as in "
                f"`init`'s example), got {jnp.result_type(x)}")
        leading.add(shape[0])
    if len(leading) > 1:
        raise AssertionError(
            f"[Chex] {fn}: every leaf of `batch` must have the same leading size N, "
            f"got {sorted(leading)}")
    n = leading.pop()
    capacity = jax.tree.leaves(storage)[0].shape[0]
    if n > capacity:
        raise AssertionError(
            f"[Chex] {fn}: argument `batch` has N={n} items, more than the capacity "
            f"{capacity}")
    return n


def _write(
    fn: str,
    storage: chex.ArrayTree,
    position: Array,
    size: Array,
    batch: chex.ArrayTree,
    valid: Array | None,
) -> tuple[chex.ArrayTree, Array, Array, Array]:
    """Circular write of the (valid) items of `batch`; returns storage, slots, position, size.

    Slots of invalid items are `C` (out of range), so scatters with `mode="drop"` skip them.
    """
    n = _check_batch(fn, storage, batch)
    capacity = jax.tree.leaves(storage)[0].shape[0]
    if valid is None:
        offsets = jnp.arange(n, dtype=jnp.int32)
        count = jnp.int32(n)
        slots = (position + offsets) % capacity
    else:
        _checks.assert_inputs(fn, valid=(valid, 1, None))
        if jnp.shape(valid) != (n,):
            raise AssertionError(
                f"[Chex] {fn}: argument `valid` must have shape ({n},) (one flag per item "
                f"of `batch`), got {jnp.shape(valid)}")
        if jnp.result_type(valid) != jnp.bool_:
            raise AssertionError(
                f"[Chex] {fn}: argument `valid` must have a bool dtype, got "
                f"{jnp.result_type(valid)}")
        valid_i = valid.astype(jnp.int32)
        offsets = jnp.cumsum(valid_i) - 1
        count = jnp.sum(valid_i)
        slots = jnp.where(valid, (position + offsets) % capacity, capacity)
    slots = slots.astype(jnp.int32)
    storage = jax.tree.map(
        lambda s, x: s.at[slots].set(jnp.asarray(x, s.dtype), mode="drop"), storage, batch)
    position = ((position + count) % capacity).astype(jnp.int32)
    size = jnp.minimum(size + count, capacity).astype(jnp.int32)
    return storage, slots, position, size


def _gather(storage: chex.ArrayTree, indices: Array) -> chex.ArrayTree:
    return jax.tree.map(lambda s: s[indices], storage)


def _check_update_args(fn: str, indices: Array, priorities: Array) -> None:
    _checks.assert_inputs(fn, indices=(indices, 1, int), priorities=(priorities, 1, float))
    _checks.assert_same_shape(fn, indices=indices, priorities=priorities)


# --------------------------------------------------------------------------------------
# Uniform replay.


def uniform_replay(capacity: int) -> ReplayBuffer:
    """A uniform replay buffer of `capacity` items (C), overwritten first-in first-out.

    Args:
      capacity: the number of items C kept, a positive Python int.

    Returns:
      `ReplayBuffer(init, add, sample, update_priorities)` with state `ReplayState`:

      - `init(example) -> ReplayState`: `example` is ONE item (a pytree of arrays without a
        leading axis); storage is zeros `[C, ...]` with the example's (canonical) dtypes.
      - `add(state, batch, valid=None) -> ReplayState`: writes the `N <= C` items of
        `batch` (every leaf `[N, ...]`) at `position, position + 1, ...` modulo C,
        overwriting the oldest. With `valid` (bool `[N]`), only valid items are written
        (compacted, in order) and only they count towards `size`.
      - `sample(key, state, batch_size, beta=None) -> ReplaySample`: `batch_size` (B)
        indices uniform over the stored items, with replacement; weights all 1 (0 if the
        buffer is empty inside jit). `beta` is accepted and ignored, so that the call is
        the same for both buffers.
      - `update_priorities(state, indices, priorities) -> ReplayState`: checks shapes
        (`[B]` int, `[B]` float) and returns `state` unchanged.
    """
    _check_capacity("uniform_replay", capacity)
    capacity = int(capacity)

    def init(example: chex.ArrayTree) -> ReplayState:
        return ReplayState(
            storage=_init_storage("uniform_replay.init", capacity, example),
            position=jnp.int32(0), size=jnp.int32(0))

    def add(state: ReplayState, batch: chex.ArrayTree, valid: Array | None = None
            ) -> ReplayState:
        storage, _, position, size = _write(
            "uniform_replay.add", state.storage, state.position, state.size, batch, valid)
        return ReplayState(storage=storage, position=position, size=size)

    def sample(key: chex.PRNGKey, state: ReplayState, batch_size: int, beta: Any = None
               ) -> ReplaySample:
        fn = "uniform_replay.sample"
        _check_batch_size(fn, batch_size)
        _check_can_sample(fn, state.size, batch_size)
        indices = jax.random.randint(
            key, (batch_size,), 0, jnp.maximum(state.size, 1), dtype=jnp.int32)
        weights = jnp.full((batch_size,), 1.0, jnp.float32) * (state.size > 0)
        return ReplaySample(_gather(state.storage, indices), indices, weights)

    def update_priorities(state: ReplayState, indices: Array, priorities: Array
                          ) -> ReplayState:
        _check_update_args("uniform_replay.update_priorities", indices, priorities)
        return state

    return ReplayBuffer(init=init, add=add, sample=sample, update_priorities=update_priorities)


# --------------------------------------------------------------------------------------
# Prioritized replay.


def _host_check_priorities(priorities: np.ndarray) -> None:
    priorities = np.asarray(priorities)
    if np.isnan(priorities).any():
        raise ValueError(
            "prioritized_replay.update_priorities: argument `priorities` contains NaN at "
            f"positions {np.flatnonzero(np.isnan(priorities)).tolist()}")
    if (priorities < 0).any():
        raise ValueError(
            "prioritized_replay.update_priorities: argument `priorities` must be "
            f"non-negative (|TD errors|), got min {priorities.min()}")


def _pick(masses: Array, residual: Array) -> tuple[Array, Array]:
    """For each draw, the first index whose cumulative mass exceeds `residual [B]` (never one
    of zero mass; the last positive one if rounding reaches the end) and the residual left
    within it, `[B]` each. `masses` (>= 0, some positive) is `[K]`, shared by the draws, or
    `[B, K]`, one row per draw."""
    cum = jnp.cumsum(masses, axis=-1)
    last = masses.shape[-1] - 1 - jnp.argmax(masses[..., ::-1] > 0, axis=-1)
    shared = masses.ndim == 1
    below = (cum[None, :] if shared else cum) <= residual[:, None]
    index = jnp.minimum(jnp.sum(below, axis=-1), last)
    before = cum - masses
    before = before[index] if shared else jnp.take_along_axis(
        before, index[:, None], axis=-1)[:, 0]
    return index, jnp.maximum(residual - before, 0.0)


def prioritized_replay(
    capacity: int,
    alpha: float = 0.6,
    beta: float = 0.4,
    eps: float = 1e-6,
    weight_normalization: str = "buffer",
    debug_checks: bool = False,
) -> ReplayBuffer:
    """Proportional prioritized replay (Schaul et al., 2016) of `capacity` items (C).

    Item `i` is sampled with probability `P(i) = p_i^alpha / sum_k p_k^alpha` over the
    stored items, where `p_i = |delta_i| + eps` after `update_priorities` and new items get
    the largest priority seen so far (1 initially). Importance-sampling weights are
    `w_i = (N * P(i))^-beta / max_j w_j` with N the number of stored items:

    - `weight_normalization="buffer"` (default): `max_j` runs over ALL stored items, i.e.
      `w_i = (min_k P(k) / P(i))^beta`. The weight of an item does not depend on what
      else was drawn in the batch (as in OpenAI Baselines).
    - `weight_normalization="batch"`: `max_j` runs over the sampled batch (as in Dopamine,
      and one reading of Schaul et al.'s Algorithm 1), so each batch's largest weight is 1.

    Sampling uses a two-level sum structure held in JAX arrays
    (`PrioritizedReplayState.leaf_mass`, `block_mass`; S ~ sqrt(C) slots per block): a draw
    picks a block from the cumulative block masses, then a slot from the cumulative masses
    within that block. `sample` and `update_priorities` cost O(B (S + C / S)) work in a
    fixed, small number of vectorised operations (a binary sum tree needs log2(C) dependent
    steps, each a separate operation, which on a CPU costs more than the work itself), and
    block sums are recomputed from their leaves, so they never drift. A block min gives
    `min_k p_k^alpha` for the "buffer" normalisation.
    Repeated indices in one `update_priorities` call (a batch sampled with replacement)
    must carry the same priority each time: which of several different values a scatter
    keeps is unspecified on GPUs.
    Empty slots have probability 0, a draw never lands in a block or slot of zero mass, and
    indices are clipped to the stored range, so an empty slot is never returned.

    Args:
      capacity: the number of items C kept, a positive Python int.
      alpha: priority exponent >= 0 (0 is uniform).
      beta: default importance-sampling exponent in [0, 1], used when `sample` gets no
        `beta` (pass `beta` to `sample` to anneal it; it may be traced).
      eps: > 0, added to every priority so that no item has probability 0.
      weight_normalization: "buffer" or "batch" (see above).
      debug_checks: if True, `update_priorities` checks inside jit (with a host callback,
        which syncs the device and needs JAX's CPU backend, so on a GPU keep "cpu" in
        `JAX_PLATFORMS`) that priorities are not NaN or negative and raises an
        error naming `priorities` if they are. Off by default; outside jit (concrete
        priorities) the check always runs.

    Returns:
      `ReplayBuffer(init, add, sample, update_priorities)` with state
      `PrioritizedReplayState`:

      - `init(example) -> PrioritizedReplayState`: `example` is ONE item.
      - `add(state, batch, valid=None) -> PrioritizedReplayState`: as `uniform_replay`;
        the written slots get priority `max_priority`.
      - `sample(key, state, batch_size, beta=None) -> ReplaySample(batch [B, ...],
        indices [B], weights [B])`, with replacement.
      - `update_priorities(state, indices [B] int, priorities [B] float) ->
        PrioritizedReplayState`: sets `p_i = priorities + eps` (pass `|td_errors|`) and
        raises `max_priority`. For a repeated index one of its values is kept; inside jit,
        indices outside [0, C) are ignored (outside jit they raise ValueError).
    """
    fn = "prioritized_replay"
    _check_capacity(fn, capacity)
    capacity = int(capacity)
    for name, value in (("alpha", alpha), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{fn}: `{name}` must be a number, got {value!r}")
    if not alpha >= 0.0:
        raise ValueError(f"{fn}: `alpha` must be >= 0, got {alpha!r}")
    if not eps > 0.0:
        raise ValueError(f"{fn}: `eps` must be > 0, got {eps!r}")
    _check_beta(fn, beta)
    if weight_normalization not in ("buffer", "batch"):
        raise ValueError(
            f"{fn}: `weight_normalization` must be 'buffer' or 'batch', got "
            f"{weight_normalization!r}")
    alpha, default_beta, eps = float(alpha), float(beta), float(eps)

    block = 1 << max(0, (int(np.ceil(np.sqrt(capacity))) - 1).bit_length())  # S
    num_blocks = -(-capacity // block)  # M
    num_leaves = num_blocks * block  # P
    sub_block = 1 << ((block.bit_length()) // 2)  # R, a power of two dividing S
    lanes = jnp.arange(block, dtype=jnp.int32)

    def block_stats(rows):
        """`rows [..., S]` of leaf masses -> (sum, min over the stored, i.e. positive, ones)."""
        return rows.sum(-1), jnp.min(jnp.where(rows > 0, rows, jnp.inf), axis=-1)

    def set_leaves(state, slots, valid):
        """Writes `priorities[slots] ** alpha` into the leaves and recomputes the sums and
        mins of the blocks they fall in from their leaves (invalid entries are dropped)."""
        slots = jnp.asarray(slots, jnp.int32)
        masses = state.priorities[jnp.where(valid, slots, 0)] ** alpha
        leaf_mass = state.leaf_mass.at[jnp.where(valid, slots, num_leaves)].set(
            masses, mode="drop")
        if slots.shape[0] * block >= num_leaves:  # (static) cheaper to redo every block
            block_mass, block_min = block_stats(leaf_mass.reshape(num_blocks, block))
        else:
            blocks = jnp.where(valid, slots // block, 0)
            rows = leaf_mass[blocks[:, None] * block + lanes]  # [B, S]
            sums, mins = block_stats(rows)
            # A repeated block gets the same recomputed values each time.
            dest = jnp.where(valid, blocks, num_blocks)
            block_mass = state.block_mass.at[dest].set(sums, mode="drop")
            block_min = state.block_min.at[dest].set(mins, mode="drop")
        return state._replace(leaf_mass=leaf_mass, block_mass=block_mass, block_min=block_min)

    def init(example: chex.ArrayTree) -> PrioritizedReplayState:
        return PrioritizedReplayState(
            storage=_init_storage(f"{fn}.init", capacity, example),
            position=jnp.int32(0), size=jnp.int32(0),
            priorities=jnp.zeros((capacity,), jnp.float32),
            max_priority=jnp.float32(1.0),
            leaf_mass=jnp.zeros((num_leaves,), jnp.float32),
            block_mass=jnp.zeros((num_blocks,), jnp.float32),
            block_min=jnp.full((num_blocks,), jnp.inf, jnp.float32))

    def add(state: PrioritizedReplayState, batch: chex.ArrayTree, valid: Array | None = None
            ) -> PrioritizedReplayState:
        storage, slots, position, size = _write(
            f"{fn}.add", state.storage, state.position, state.size, batch, valid)
        state = state._replace(
            storage=storage, position=position, size=size,
            priorities=state.priorities.at[slots].set(state.max_priority, mode="drop"))
        return set_leaves(state, slots, slots < capacity)

    def sample(key: chex.PRNGKey, state: PrioritizedReplayState, batch_size: int,
               beta: Any = None) -> ReplaySample:
        name = f"{fn}.sample"
        _check_batch_size(name, batch_size)
        beta = default_beta if beta is None else beta
        _check_beta(name, beta)
        _check_can_sample(name, state.size, batch_size)
        mass = jax.random.uniform(key, (batch_size,), jnp.float32) * jnp.sum(state.block_mass)
        b, residual = _pick(state.block_mass, mass)  # a block, then within it:
        rows = state.leaf_mass[b[:, None] * block + lanes]  # [B, S]
        # Within the block: a sub-block of R ~ sqrt(S) leaves, then a leaf (two short
        # cumulative sums instead of one over S, which XLA:CPU computes slowly).
        sub, residual = _pick(rows.reshape(batch_size, block // sub_block, sub_block).sum(-1),
                              residual)
        sub_rows = jnp.take_along_axis(
            rows, sub[:, None] * sub_block + jnp.arange(sub_block, dtype=jnp.int32), axis=-1)
        leaf, _ = _pick(sub_rows, residual)
        leaf = sub * sub_block + leaf
        indices = jnp.clip(b * block + leaf, 0, jnp.maximum(state.size - 1, 0))
        p_sampled = state.leaf_mass[indices]
        if weight_normalization == "buffer":
            p_ref = jnp.min(state.block_min)
        else:
            p_ref = jnp.min(p_sampled)
        # (N P(i))^-beta / (N P_ref)^-beta == (p_ref^alpha / p_i^alpha)^beta.
        weights = (p_ref / p_sampled) ** beta
        weights = jnp.where(state.size > 0, weights, 0.0).astype(jnp.float32)
        return ReplaySample(_gather(state.storage, indices), indices, weights)

    def update_priorities(state: PrioritizedReplayState, indices: Array, priorities: Array
                          ) -> PrioritizedReplayState:
        name = f"{fn}.update_priorities"
        _check_update_args(name, indices, priorities)
        if not _is_traced(priorities):
            _host_check_priorities(priorities)
        elif debug_checks:
            jax.debug.callback(_host_check_priorities, priorities)
        if not _is_traced(indices):
            idx = np.asarray(indices)
            if idx.size and (idx.min() < 0 or idx.max() >= capacity):
                raise ValueError(
                    f"{name}: argument `indices` must be in [0, {capacity}), got values in "
                    f"[{idx.min()}, {idx.max()}]")
        # Inside jit, out-of-range indices (not from `sample`) are ignored.
        in_range = (indices >= 0) & (indices < capacity)
        indices = jnp.where(in_range, indices, capacity).astype(jnp.int32)
        new = priorities.astype(jnp.float32) + eps
        # For a repeated index the scatter keeps one value; the trees read it back, so the
        # trees and `priorities` always agree.
        state = state._replace(
            priorities=state.priorities.at[indices].set(new, mode="drop"),
            max_priority=jnp.maximum(state.max_priority, jnp.max(new)))
        return set_leaves(state, indices, in_range)

    return ReplayBuffer(init=init, add=add, sample=sample, update_priorities=update_priorities)
