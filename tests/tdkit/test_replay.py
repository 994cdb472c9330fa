"""Tests for tdkit.replay: circular storage, sampling, priorities, IS weights, jit/vmap/scan.

Expected values come from plain NumPy/Python oracles written here, never from the buffer.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import Transition, replay

BUFFERS = {
    "uniform": lambda capacity: replay.uniform_replay(capacity),
    "prioritized": lambda capacity: replay.prioritized_replay(capacity),
}


def items(ids) -> Transition:
    """A batch of transitions whose every field encodes its integer id."""
    ids = np.asarray(ids)
    return Transition(
        obs_tm1=np.stack([ids, -ids], axis=-1).astype(np.float32),
        a_tm1=ids.astype(np.int32),
        r_t=ids.astype(np.float32),
        discount_t=np.full(ids.shape, 0.9, np.float32),
        obs_t=np.stack([ids + 1, -ids - 1], axis=-1).astype(np.float32))


@pytest.fixture(autouse=True)
def _clear_trace_counter():
    """`chex.assert_max_traces` counts per function code: reset it between tests."""
    chex.clear_trace_counter()


EXAMPLE = jax.tree.map(lambda x: x[0], items([0]))


def oracle_fill(capacity, batches, masks=None):
    """Plain Python circular buffer: returns per-slot ids (-1 empty), position, size."""
    slots, position, size = [-1] * capacity, 0, 0
    for k, ids in enumerate(batches):
        for j, i in enumerate(ids):
            if masks is not None and not masks[k][j]:
                continue
            slots[position] = i
            position = (position + 1) % capacity
            size = min(size + 1, capacity)
    return np.array(slots), position, size


def stored_ids(state) -> np.ndarray:
    return np.asarray(state.storage.a_tm1)


# -------------------------------------------------------------------------------- construction


@pytest.mark.parametrize("capacity", [0, -3, 2.5, True, None])
@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_bad_capacity_raises(kind, capacity):
    with pytest.raises(ValueError, match="capacity"):
        BUFFERS[kind](capacity)


@pytest.mark.parametrize("kwargs, name", [
    (dict(alpha=-0.1), "alpha"), (dict(beta=1.5), "beta"), (dict(beta=-0.2), "beta"),
    (dict(eps=0.0), "eps"), (dict(eps=-1e-3), "eps"),
    (dict(weight_normalization="max"), "weight_normalization"),
])
def test_bad_prioritized_parameters_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        replay.prioritized_replay(8, **kwargs)


@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_init_preallocates_zeros_with_example_dtypes(kind):
    state = BUFFERS[kind](6).init(EXAMPLE)
    assert state.storage.obs_tm1.shape == (6, 2)
    assert state.storage.obs_tm1.dtype == jnp.float32
    assert state.storage.a_tm1.shape == (6,)
    assert state.storage.a_tm1.dtype == jnp.int32
    assert int(state.position) == 0 and int(state.size) == 0
    np.testing.assert_array_equal(state.storage.r_t, np.zeros(6))


# -------------------------------------------------------------------------------- add


@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_circular_overwrite_order_and_size(kind):
    capacity = 5
    batches = [[0, 1], [2, 3], [4, 5], [6], [7, 8, 9], [10, 11, 12, 13, 14]]
    buffer = BUFFERS[kind](capacity)
    add = jax.jit(buffer.add)
    state = buffer.init(EXAMPLE)
    for k, ids in enumerate(batches):
        state = add(state, items(ids))
        want_slots, want_position, want_size = oracle_fill(capacity, batches[:k + 1])
        filled = want_slots >= 0
        np.testing.assert_array_equal(stored_ids(state)[filled], want_slots[filled])
        np.testing.assert_array_equal(
            np.asarray(state.storage.obs_t)[filled, 0], want_slots[filled] + 1)
        assert int(state.position) == want_position
        assert int(state.size) == want_size
    # After [10..14] into capacity 5 the slots hold exactly those ids, oldest first from 3.
    np.testing.assert_array_equal(stored_ids(state), [10, 11, 12, 13, 14])


@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_add_with_valid_mask_writes_only_valid_items_in_order(kind):
    capacity = 4
    batches = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    masks = [[True, False, True], [False, False, False], [True, True, True]]
    buffer = BUFFERS[kind](capacity)
    state = buffer.init(EXAMPLE)
    for ids, mask in zip(batches, masks, strict=True):
        state = jax.jit(buffer.add)(state, items(ids), np.array(mask))
    want_slots, want_position, want_size = oracle_fill(capacity, batches, masks)
    np.testing.assert_array_equal(stored_ids(state), want_slots)  # [8, 2, 6, 7]
    assert int(state.position) == want_position == 1
    assert int(state.size) == want_size == 4


def test_add_accepts_dict_pytrees():
    buffer = replay.prioritized_replay(3)
    state = buffer.init({"x": jnp.zeros((2,)), "id": jnp.int32(0)})
    state = buffer.add(state, {"x": jnp.ones((2, 2)), "id": jnp.array([7, 8], jnp.int32)})
    np.testing.assert_array_equal(state.storage["id"], [7, 8, 0])
    sample = buffer.sample(jax.random.key(0), state, 2)
    assert set(np.asarray(sample.batch["id"]).tolist()) <= {7, 8}


@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_add_rejects_bad_batches(kind):
    buffer = BUFFERS[kind](4)
    state = buffer.init(EXAMPLE)
    single = jax.tree.map(lambda x: x[0], items([1]))
    with pytest.raises(AssertionError, match=r"batch\.obs_tm1.*leading batch axis"):
        buffer.add(state, single)
    with pytest.raises(AssertionError, match=r"batch\.a_tm1.*dtype int32"):
        buffer.add(state, items([1])._replace(a_tm1=np.array([1.0], np.float32)))
    with pytest.raises(AssertionError, match="structure"):
        buffer.add(state, {"obs": np.zeros((1, 2), np.float32)})
    with pytest.raises(AssertionError, match="same leading size"):
        buffer.add(state, items([1, 2])._replace(r_t=np.zeros((3,), np.float32)))
    with pytest.raises(AssertionError, match="more than the capacity"):
        buffer.add(state, items([1, 2, 3, 4, 5]))
    with pytest.raises(AssertionError, match="`valid` must have shape"):
        buffer.add(state, items([1, 2]), np.array([True]))
    with pytest.raises(AssertionError, match="`valid` must have a bool dtype"):
        buffer.add(state, items([1, 2]), np.array([1, 0]))


# -------------------------------------------------------------------------------- sample


@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_sample_returns_only_stored_slots_and_their_contents(kind):
    buffer = BUFFERS[kind](10)
    state = buffer.add(buffer.init(EXAMPLE), items([40, 41, 42]))
    sample = jax.jit(functools.partial(buffer.sample, batch_size=500))(
        jax.random.key(1), state)
    indices = np.asarray(sample.indices)
    assert indices.dtype == np.int32 and indices.shape == (500,)
    assert indices.min() >= 0 and indices.max() < 3
    assert set(indices.tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(sample.batch.a_tm1, 40 + indices)
    np.testing.assert_array_equal(sample.batch.obs_tm1[:, 1], -(40 + indices))
    assert sample.weights.shape == (500,) and sample.weights.dtype == jnp.float32


@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_sample_from_empty_buffer_inside_jit_has_zero_weights(kind):
    buffer = BUFFERS[kind](4)
    sample = jax.jit(functools.partial(buffer.sample, batch_size=3))(
        jax.random.key(0), buffer.init(EXAMPLE))
    np.testing.assert_array_equal(sample.indices, [0, 0, 0])
    np.testing.assert_array_equal(sample.weights, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_sample_bad_input_on_host_raises(kind):
    buffer = BUFFERS[kind](8)
    key = jax.random.key(0)
    empty = buffer.init(EXAMPLE)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(key, empty, 1)
    state = buffer.add(empty, items([1, 2, 3]))
    with pytest.raises(ValueError, match=r"`batch_size`=4 is larger than .* \(3\)"):
        buffer.sample(key, state, 4)
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="batch_size"):
            buffer.sample(key, state, bad)


@pytest.mark.parametrize("beta", [1.5, -0.1, np.float32(2.0)])
def test_prioritized_sample_rejects_beta_outside_unit_interval(beta):
    buffer = replay.prioritized_replay(8)
    state = buffer.add(buffer.init(EXAMPLE), items([1, 2, 3]))
    with pytest.raises(ValueError, match="beta"):
        buffer.sample(jax.random.key(0), state, 2, beta=beta)


def test_uniform_sampling_frequencies():
    num, draws = 7, 140_000
    buffer = replay.uniform_replay(10)
    state = buffer.add(buffer.init(EXAMPLE), items(np.arange(num)))
    sample = jax.jit(functools.partial(buffer.sample, batch_size=draws))(
        jax.random.key(3), state)
    counts = np.bincount(np.asarray(sample.indices), minlength=10)
    assert counts[num:].sum() == 0
    p = 1.0 / num
    sigma = np.sqrt(draws * p * (1 - p))
    np.testing.assert_array_less(np.abs(counts[:num] - draws * p), 4 * sigma)
    np.testing.assert_array_equal(sample.weights, np.ones(draws))


def fill_with_priorities(buffer, raw):
    """Adds len(raw) items and sets their priorities to raw (the buffer adds eps)."""
    state = buffer.add(buffer.init(EXAMPLE), items(np.arange(len(raw))))
    return buffer.update_priorities(
        state, jnp.arange(len(raw), dtype=jnp.int32), jnp.asarray(raw, jnp.float32))


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_prioritized_sampling_frequencies_match_numpy_oracle(alpha):
    raw = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 0.0])
    eps, draws = 1e-6, 120_000
    buffer = replay.prioritized_replay(9, alpha=alpha, eps=eps)
    state = fill_with_priorities(buffer, raw)
    sample = jax.jit(functools.partial(buffer.sample, batch_size=draws))(
        jax.random.key(4), state)
    counts = np.bincount(np.asarray(sample.indices), minlength=9)
    want = (raw + eps) ** alpha / np.sum((raw + eps) ** alpha)
    assert counts[len(raw):].sum() == 0  # never an empty slot
    sigma = np.sqrt(draws * want * (1 - want))
    np.testing.assert_array_less(np.abs(counts[:len(raw)] - draws * want), 4 * sigma + 1)


def test_prioritized_sampling_frequencies_match_numpy_oracle_across_blocks():
    """Capacity 300 (10 blocks of 32, sub-blocks of 8): 250 stored items whose priorities
    span eight orders of magnitude, with zeros and runs of zeros that empty whole
    sub-blocks and a block."""
    capacity, size, eps, draws = 300, 250, 1e-6, 400_000
    rng = np.random.default_rng(1)
    raw = 10.0 ** rng.uniform(-4, 4, size)
    raw[rng.random(size) < 0.2] = 0.0
    raw[40:56] = 0.0  # two sub-blocks of block 1
    raw[64:96] = 0.0  # block 2
    buffer = replay.prioritized_replay(capacity, alpha=0.5, eps=eps)
    state = fill_with_priorities(buffer, raw)
    sample = jax.jit(functools.partial(buffer.sample, batch_size=draws))(
        jax.random.key(6), state)
    counts = np.bincount(np.asarray(sample.indices), minlength=capacity)
    want = (raw + eps) ** 0.5 / np.sum((raw + eps) ** 0.5)
    assert counts[size:].sum() == 0  # never an empty slot
    sigma = np.sqrt(draws * want * (1 - want))
    np.testing.assert_array_less(np.abs(counts[:size] - draws * want), 4.5 * sigma + 1)


@pytest.mark.parametrize("normalization", ["buffer", "batch"])
@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_importance_weights_match_numpy_oracle(normalization, beta):
    # Item 1 is so unlikely (P ~ 4e-4) that it is not in the batch: the two normalisations
    # then differ (the buffer's largest weight belongs to item 1).
    raw = np.array([0.3, 1e-4, 1.5, 0.7, 2.5])
    alpha, eps = 0.7, 1e-6
    buffer = replay.prioritized_replay(8, alpha=alpha, eps=eps,
                                       weight_normalization=normalization)
    state = fill_with_priorities(buffer, raw)
    sample = jax.jit(functools.partial(buffer.sample, batch_size=16))(
        jax.random.key(5), state, beta=jnp.float32(beta))
    indices = np.asarray(sample.indices)
    assert 1 not in indices
    # Oracle: w_i = (N P(i))^-beta, normalised by the largest weight (buffer or batch).
    n = len(raw)
    probs = (raw + eps) ** alpha / np.sum((raw + eps) ** alpha)
    w_all = (n * probs) ** (-beta)
    w = w_all[indices]
    w_max = w_all.max() if normalization == "buffer" else w.max()
    np.testing.assert_allclose(sample.weights, w / w_max, rtol=1e-5)
    if normalization == "batch":
        assert float(np.max(sample.weights)) == pytest.approx(1.0)
    elif beta > 0:
        assert float(np.max(sample.weights)) < 0.5


def test_default_beta_is_used_when_sample_gets_none():
    raw = np.array([0.2, 1.0, 3.0])
    buffer = replay.prioritized_replay(4, alpha=1.0, beta=0.5, eps=1e-6)
    state = fill_with_priorities(buffer, raw)
    sample = buffer.sample(jax.random.key(6), state, 3)
    p = raw + 1e-6
    want = np.sqrt(p.min() / p[np.asarray(sample.indices)])
    np.testing.assert_allclose(sample.weights, want, rtol=1e-5)


# -------------------------------------------------------------------------------- priorities


def test_update_priorities_sets_priorities_and_max():
    eps = 1e-3
    buffer = replay.prioritized_replay(6, eps=eps)
    state = buffer.add(buffer.init(EXAMPLE), items([0, 1, 2, 3]))
    np.testing.assert_array_equal(state.priorities[:4], np.ones(4))  # initial max is 1
    assert float(state.max_priority) == 1.0
    state = buffer.update_priorities(state, jnp.array([2, 0], jnp.int32),
                                     jnp.array([3.0, 0.5], jnp.float32))
    np.testing.assert_allclose(state.priorities[:4], [0.5 + eps, 1.0, 3.0 + eps, 1.0])
    np.testing.assert_allclose(state.max_priority, 3.0 + eps)
    # A lower priority later does not lower the max seen so far.
    state = buffer.update_priorities(state, jnp.array([2], jnp.int32),
                                     jnp.array([0.1], jnp.float32))
    np.testing.assert_allclose(state.max_priority, 3.0 + eps)
    np.testing.assert_allclose(state.priorities[2], 0.1 + eps)


def test_new_items_get_max_priority_seen_so_far():
    eps = 1e-6
    buffer = replay.prioritized_replay(4, eps=eps)
    state = buffer.add(buffer.init(EXAMPLE), items([0, 1]))
    state = buffer.update_priorities(state, jnp.array([0, 1], jnp.int32),
                                     jnp.array([7.0, 0.2], jnp.float32))
    state = buffer.update_priorities(state, jnp.array([0], jnp.int32),
                                     jnp.array([0.1], jnp.float32))
    state = buffer.add(state, items([2, 3, 4]))  # 4 overwrites slot 0
    np.testing.assert_allclose(state.priorities, [7.0 + eps, 0.2 + eps, 7.0 + eps, 7.0 + eps],
                               rtol=1e-6)
    np.testing.assert_array_equal(stored_ids(state), [4, 1, 2, 3])


def test_uniform_update_priorities_is_a_checked_no_op():
    buffer = replay.uniform_replay(4)
    state = buffer.add(buffer.init(EXAMPLE), items([0, 1]))
    same = buffer.update_priorities(state, jnp.array([0], jnp.int32), jnp.array([2.0]))
    assert same is state
    with pytest.raises(AssertionError, match="`priorities`"):
        buffer.update_priorities(state, jnp.array([0], jnp.int32), jnp.array([1], jnp.int32))


def test_update_priorities_bad_input():
    buffer = replay.prioritized_replay(4)
    state = buffer.add(buffer.init(EXAMPLE), items([0, 1]))
    idx = jnp.array([0, 1], jnp.int32)
    with pytest.raises(ValueError, match="`priorities` must be non-negative"):
        buffer.update_priorities(state, idx, jnp.array([1.0, -0.5]))
    with pytest.raises(ValueError, match=r"`priorities` contains NaN at positions \[1\]"):
        buffer.update_priorities(state, idx, jnp.array([1.0, jnp.nan]))
    with pytest.raises(ValueError, match="`indices` must be in"):
        buffer.update_priorities(state, jnp.array([0, 4], jnp.int32), jnp.array([1.0, 1.0]))
    with pytest.raises(AssertionError, match="`indices`"):
        buffer.update_priorities(state, jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0]))
    with pytest.raises(AssertionError, match="same shape"):
        buffer.update_priorities(state, idx, jnp.array([1.0, 1.0, 1.0]))


def test_debug_checks_catch_nan_priorities_inside_jit():
    buffer = replay.prioritized_replay(4, debug_checks=True)
    state = buffer.add(buffer.init(EXAMPLE), items([0, 1]))
    update = jax.jit(buffer.update_priorities)
    idx = jnp.array([0, 1], jnp.int32)
    ok = update(state, idx, jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(ok.priorities[:2], [1.0 + 1e-6, 2.0 + 1e-6])
    with pytest.raises(Exception, match="`priorities` contains NaN"):
        jax.block_until_ready(update(state, idx, jnp.array([jnp.nan, 2.0])))


@pytest.mark.parametrize("capacity,num_updated", [(13, 5), (70, 1), (70, 5)])
def test_block_sums_stay_consistent_with_priorities_after_random_updates(capacity,
                                                                         num_updated):
    """The two-level sum structure's invariants (checked block by block in NumPy) after
    masked adds and updates with repeated indices, for capacities that are not powers of
    two: 13 (4 blocks of 4, 3 padding leaves; every write recomputes all blocks) and 70
    (5 blocks of 16; adds of 4 and updates of 2 recompute only the blocks they touch)."""
    alpha, eps = 0.6, 1e-6
    buffer = replay.prioritized_replay(capacity, alpha=alpha, eps=eps)
    add = jax.jit(buffer.add)
    update = jax.jit(buffer.update_priorities)
    rng = np.random.default_rng(0)
    state = buffer.init(EXAMPLE)
    want_priorities = np.zeros(capacity)
    want_max = 1.0
    next_id, position, size = 0, 0, 0
    for _ in range(3 * capacity // 4):
        valid = rng.random(4) < 0.7
        state = add(state, items(np.arange(next_id, next_id + 4)), valid)
        next_id += 4
        for _ in range(int(valid.sum())):  # oracle of the circular, compacted write
            want_priorities[position] = want_max
            position, size = (position + 1) % capacity, min(size + 1, capacity)
        # Distinct slots except a repeated one with the same value: which of two DIFFERENT
        # values a scatter keeps for a repeated index is unspecified on GPUs.
        idx = rng.permutation(size)[:num_updated]
        new = rng.exponential(2.0, size=len(idx))
        if size >= 2:
            idx, new = np.concatenate([idx[:1], idx]), np.concatenate([new[:1], new])
        state = update(state, jnp.asarray(idx, jnp.int32), jnp.asarray(new, jnp.float32))
        want_priorities[idx] = new + eps
        want_max = max(want_max, float(np.max(new + eps)))
    np.testing.assert_allclose(state.priorities, want_priorities, rtol=1e-6)
    np.testing.assert_allclose(state.max_priority, want_max, rtol=1e-6)
    leaf_mass = np.asarray(state.leaf_mass)
    block_mass, block_min = np.asarray(state.block_mass), np.asarray(state.block_min)
    num_leaves, num_blocks = len(leaf_mass), len(block_mass)
    block = num_leaves // num_blocks
    assert block * num_blocks == num_leaves and block & (block - 1) == 0
    assert block * block >= capacity and (num_blocks - 1) * block < capacity <= num_leaves
    stored = np.arange(num_leaves) < size
    leaves = np.where(stored, np.pad(want_priorities, (0, num_leaves - capacity)) ** alpha, 0)
    np.testing.assert_allclose(leaf_mass, leaves, rtol=1e-6)
    rows = leaves.reshape(num_blocks, block)
    np.testing.assert_allclose(block_mass, rows.sum(-1), rtol=1e-6)
    np.testing.assert_allclose(block_min, np.where(rows > 0, rows, np.inf).min(-1),
                               rtol=1e-6)
    assert block_min.shape == (num_blocks,)


def test_prioritized_never_samples_empty_slots_with_extreme_priorities():
    capacity, size, draws = 1000, 513, 50_000  # size just past a power of two
    buffer = replay.prioritized_replay(capacity, alpha=1.0)
    raw = np.geomspace(1e-6, 1e6, size)[::-1].copy()  # the largest mass first
    state = fill_with_priorities(buffer, raw)
    sample = jax.jit(functools.partial(buffer.sample, batch_size=draws))(
        jax.random.key(7), state)
    indices = np.asarray(sample.indices)
    assert indices.min() >= 0 and indices.max() < size
    assert np.all(np.isfinite(np.asarray(sample.weights)))


# -------------------------------------------------------------------------------- jit/vmap/scan


@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_scan_inside_jit_vmapped_over_seeds(kind):
    """A vmapped (3 seeds) jitted scan of add / sample / update_priorities, vs an oracle."""
    capacity, num_envs, steps, batch_size, seeds = 5, 2, 6, 4, 3
    buffer = BUFFERS[kind](capacity)

    def run(key, seed):
        def body(state, xs):
            step, step_key = xs
            ids = seed * 100 + step * num_envs + jnp.arange(num_envs)
            batch = jax.tree.map(jnp.asarray, items(np.zeros(num_envs)))
            batch = batch._replace(
                a_tm1=ids.astype(jnp.int32),
                obs_tm1=jnp.stack([ids, -ids], -1).astype(jnp.float32))
            state = buffer.add(state, batch)
            sample = buffer.sample(step_key, state, batch_size, beta=0.5)
            state = buffer.update_priorities(
                state, sample.indices, sample.batch.obs_tm1[:, 0] / 1000.0)
            return state, (sample.indices, sample.batch.a_tm1, state.size)

        keys = jax.random.split(key, steps)
        return jax.lax.scan(body, buffer.init(EXAMPLE), (jnp.arange(steps), keys))

    run = jax.jit(jax.vmap(chex.assert_max_traces(run, n=1)))
    keys = jax.random.split(jax.random.key(0), seeds)
    seed_ids = jnp.arange(seeds, dtype=jnp.int32)
    final, (indices, sampled_ids, sizes) = run(keys, seed_ids)
    run(keys, seed_ids + 10)  # a second call reuses the compiled program

    assert indices.shape == (seeds, steps, batch_size)
    for s in range(seeds):
        batches = [[s * 100 + t * num_envs + j for j in range(num_envs)] for t in range(steps)]
        want_slots, want_position, _ = oracle_fill(capacity, batches)
        np.testing.assert_array_equal(np.asarray(final.storage.a_tm1)[s], want_slots)
        assert int(final.position[s]) == want_position
        for t in range(steps):
            slots_t, _, size_t = oracle_fill(capacity, batches[:t + 1])
            assert int(sizes[s, t]) == size_t
            idx = np.asarray(indices[s, t])
            assert idx.min() >= 0 and idx.max() < size_t
            np.testing.assert_array_equal(sampled_ids[s, t], slots_t[idx])
    if kind == "prioritized":
        # The last step's sampled items carry priority id / 1000 + eps.
        for s in range(seeds):
            idx = np.asarray(indices[s, -1])
            np.testing.assert_allclose(
                np.asarray(final.priorities)[s, idx],
                np.asarray(sampled_ids[s, -1]) / 1000.0 + 1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", sorted(BUFFERS))
def test_jitted_add_and_sample_compile_once(kind):
    buffer = BUFFERS[kind](16)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state, batch, beta):
        state = buffer.add(state, batch)
        return state, buffer.sample(key, state, 8, beta=beta)

    state = buffer.init(EXAMPLE)
    for t in range(4):
        state, sample = step(jax.random.key(t), state, jax.tree.map(jnp.asarray, items(
            [3 * t, 3 * t + 1, 3 * t + 2])), jnp.float32(0.4 + 0.1 * t))
        assert int(np.asarray(sample.indices).max()) < 3 * (t + 1)
    assert int(state.size) == 12
