"""Feature maps: hand-computed values, tiles3 equality against a plain-Python oracle,
jit/vmap, and bad input."""

import itertools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tdkit import features
from tests.tdkit import tiles3_reference as ref

# ----------------------------------------------------------------------------------------
# Every feature map: the FeatureMap contract, jit and vmap.

FEATURE_MAPS = {
    "one_hot": (lambda: features.one_hot(5), np.array([0, 3, 4, 2], np.int32)),
    "state_aggregation": (lambda: features.state_aggregation(10, 3),
                          np.array([0, 3, 9, 5], np.int32)),
    "polynomial": (lambda: features.polynomial(3, [-1.0, 0.0], [1.0, 2.0]),
                   np.array([[0.1, 0.5], [-1.0, 2.0], [0.7, 1.1], [0.0, 0.0]], np.float32)),
    "fourier": (lambda: features.fourier(2, [-1.0, 0.0], [1.0, 2.0], basis="cos_sin"),
                np.array([[0.1, 0.5], [-1.0, 2.0], [0.7, 1.1], [0.0, 0.0]], np.float32)),
    "rbf": (lambda: features.rbf([[0.0, 0.0], [1.0, 1.0], [0.5, -0.5]], 0.5),
            np.array([[0.1, 0.5], [-1.0, 2.0], [0.7, 1.1], [0.0, 0.0]], np.float32)),
    "tile_coding": (lambda: features.tile_coding(8, [-1.2, -0.07], [0.5, 0.07], 8),
                    np.array([[-0.5, 0.0], [-1.2, -0.07], [0.5, 0.07], [0.1, 0.03]],
                             np.float32)),
    "tile_coding_hashed": (
        lambda: features.tile_coding(4, [-1.2, -0.07], [0.5, 0.07], 8, iht_size=512),
        np.array([[-0.5, 0.0], [-1.2, -0.07], [0.5, 0.07], [0.1, 0.03]], np.float32)),
    "grid_tiles": (lambda: features.grid_tiles(4, [0.0, 0.0], [1.0, 2.0], [3, 2]),
                   np.array([[0.1, 0.5], [0.0, 2.0], [0.7, 1.1], [1.0, 0.0]], np.float32)),
}


@pytest.mark.parametrize("name", sorted(FEATURE_MAPS))
def test_feature_map_contract_under_jit_and_batched(name):
    chex.clear_trace_counter()
    make, batch = FEATURE_MAPS[name]
    phi = make()
    assert isinstance(phi, features.FeatureMap)
    one = phi(batch[0])
    chex.assert_shape(one, (phi.num_features,))
    assert one.dtype == jnp.float32
    eager = np.stack([np.asarray(phi(o)) for o in batch])

    @jax.jit
    @chex.assert_max_traces(n=1)
    def batched(obs):
        return jax.vmap(phi)(obs)

    np.testing.assert_allclose(batched(batch), eager, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(batched(batch[::-1]), eager[::-1], rtol=1e-6, atol=1e-7)
    # jax.jit needs a weak reference, which a NamedTuple cannot give: jit `phi.fn`.
    np.testing.assert_allclose(jax.jit(phi.fn)(batch[1]), eager[1], rtol=1e-6, atol=1e-7)
    if phi.indices is not None:  # Sparse form: the dense vector sums one-hots of the indices.
        idx = np.asarray(jax.jit(jax.vmap(phi.indices))(batch))
        dense = np.stack([np.bincount(row, minlength=phi.num_features) for row in idx])
        np.testing.assert_array_equal(eager, dense)


# ----------------------------------------------------------------------------------------
# Hand-computed values.


def test_one_hot_values():
    phi = features.one_hot(4)
    np.testing.assert_array_equal(phi(jnp.int32(2)), [0, 0, 1, 0])
    # A terminal state numbered past the last state has no features, so its value is 0.
    np.testing.assert_array_equal(phi(jnp.int32(4)), [0, 0, 0, 0])


def test_state_aggregation_values():
    phi = features.state_aggregation(1000, 100)  # The book's 1000-state random walk.
    assert phi.num_features == 10
    for state, group in [(0, 0), (99, 0), (100, 1), (550, 5), (999, 9)]:
        expected = np.zeros(10)
        expected[group] = 1.0
        np.testing.assert_array_equal(phi(jnp.int32(state)), expected)
    uneven = features.state_aggregation(10, 3)  # Groups {0,1,2} {3,4,5} {6,7,8} {9}.
    assert uneven.num_features == 4
    np.testing.assert_array_equal(uneven(jnp.int32(9)), [0, 0, 0, 1])
    np.testing.assert_array_equal(uneven(jnp.int32(10)), [0, 0, 0, 0])
    np.testing.assert_array_equal(uneven(jnp.int32(-1)), [0, 0, 0, 0])


def test_polynomial_values():
    # obs = (0, 1) in the box [-1, 1] x [0, 4] is s = (0.5, 0.25).
    phi = features.polynomial(2, [-1.0, 0.0], [1.0, 4.0])
    s1, s2 = 0.5, 0.25
    # Exponents (c1, c2) in lexicographic order: (0,0) (0,1) (0,2) (1,0) ... (2,2).
    expected = [1, s2, s2**2, s1, s1 * s2, s1 * s2**2, s1**2, s1**2 * s2, s1**2 * s2**2]
    assert phi.num_features == 9
    np.testing.assert_allclose(phi(jnp.array([0.0, 1.0])), expected, rtol=1e-6)
    np.testing.assert_allclose(phi(jnp.array([0, 1])), expected, rtol=1e-6)  # Int states.


def test_fourier_values():
    # s = (0.5, 0.25); coefficients (0,0) (0,1) (1,0) (1,1).
    phi = features.fourier(1, [-1.0, 0.0], [1.0, 4.0])
    r = math.sqrt(0.5)
    np.testing.assert_allclose(phi(jnp.array([0.0, 1.0])), [1, r, 0, -r], atol=1e-6)
    both = features.fourier(1, [-1.0, 0.0], [1.0, 4.0], basis="cos_sin")
    assert both.num_features == 7
    np.testing.assert_allclose(both(jnp.array([0.0, 1.0])), [1, r, 0, -r, r, 1, r], atol=1e-6)


def test_fourier_matches_a_plain_loop():
    low, high, order = np.array([-1.2, -0.07]), np.array([0.5, 0.07]), 3
    phi = jax.jit(features.fourier(order, low, high).fn)
    rng = np.random.default_rng(0)
    for obs in rng.uniform(low, high, size=(5, 2)).astype(np.float32):
        s = (obs.astype(np.float64) - low) / (high - low)
        expected = [math.cos(math.pi * (c1 * s[0] + c2 * s[1]))
                    for c1 in range(order + 1) for c2 in range(order + 1)]
        np.testing.assert_allclose(phi(obs), expected, atol=2e-5)


def test_rbf_values():
    phi = features.rbf([[0.0, 0.0], [1.0, 1.0]], [1.0, 0.5])
    # Both centres are at squared distance 1 from (1, 0): exp(-1 / 2) and exp(-1 / 0.5).
    np.testing.assert_allclose(phi(jnp.array([1.0, 0.0])), [math.exp(-0.5), math.exp(-2.0)],
                               rtol=1e-6)


def test_grid_tiles_values():
    # 1-D, [0, 1], 2 tiles, 2 tilings: tiling 0 is floor(2x) (closed last bin), tiling 1 is
    # floor(2x + 1/2) in {0, 1, 2}; 3 positions per tiling.
    phi = features.grid_tiles(2, 0.0, 1.0, 2)
    assert phi.num_features == 6
    for x, expected in [(0.3, [0, 4]), (0.2, [0, 3]), (0.75, [1, 5]), (1.0, [1, 5]),
                        (0.0, [0, 3]), (2.0, [1, 5]), (-1.0, [0, 3])]:
        np.testing.assert_array_equal(phi.indices(jnp.array([x], jnp.float32)), expected)
    # One tiling is state aggregation by bins.
    bins = features.grid_tiles(1, 0.0, 1.0, 4)
    assert bins.num_features == 4
    for x, b in [(0.0, 0), (0.2499, 0), (0.25, 1), (0.99, 3), (1.0, 3)]:
        np.testing.assert_array_equal(bins.indices(jnp.array([x], jnp.float32)), [b])


def test_grid_tiles_match_a_plain_loop():
    low, high, per_dim, n = np.array([0.0, -1.0]), np.array([1.0, 1.0]), [3, 2], 4
    phi = jax.jit(features.grid_tiles(n, low, high, per_dim).indices)
    positions = [p + 1 for p in per_dim]
    rng = np.random.default_rng(1)
    for obs in rng.uniform(low, high, size=(50, 2)).astype(np.float32):
        expected = []
        for t in range(n):
            coords = [min(math.floor(per_dim[d] * (float(obs[d]) - low[d]) / (high[d] - low[d])
                                     + t / n), per_dim[d] - (t == 0)) for d in range(2)]
            expected.append(t * positions[0] * positions[1]
                            + coords[0] * positions[1] + coords[1])
        np.testing.assert_array_equal(phi(obs), expected)


# ----------------------------------------------------------------------------------------
# tiles3: the same tile indices as the reference algorithm.


def _grid_2d():
    """Inputs on and around tile boundaries, negative ones included (float32-exact)."""
    axis = np.concatenate([np.arange(-3.0, 3.0, 0.37), np.arange(-2.0, 2.0, 0.125)])
    return np.array(list(itertools.product(axis, axis[::3])), np.float32)


def _ref_floats(row):
    return [float(v) for v in row]


@pytest.mark.parametrize("num_tilings", [1, 3, 4, 8, 16])
def test_tile_coordinates_equal_tiles3(num_tilings):
    inputs = _grid_2d()
    got = np.asarray(jax.jit(jax.vmap(
        lambda f: features.tile_coordinates(num_tilings, f, jnp.array([2, -1]))))(inputs))
    expected = [[ref.tiles(None, num_tilings, _ref_floats(row), [2, -1])] for row in inputs]
    np.testing.assert_array_equal(got, np.array(expected)[:, 0])


@pytest.mark.parametrize("num_tilings", [1, 4, 8, 16])
@pytest.mark.parametrize("size", [4096, 1000, 7, 2_147_483_647])
def test_tiles_with_an_int_size_equal_tiles3(num_tilings, size):
    inputs = _grid_2d()[::2]
    actions = np.arange(inputs.shape[0], dtype=np.int32) % 3
    fn = jax.jit(jax.vmap(lambda f, a: features.tiles(size, num_tilings, f, a[None])))
    got = np.asarray(fn(inputs, actions))
    expected = [ref.tiles(size, num_tilings, _ref_floats(row), [int(a)])
                for row, a in zip(inputs, actions, strict=True)]
    np.testing.assert_array_equal(got, expected)


def test_tiles_three_dimensions_without_ints_and_int_floats():
    rng = np.random.default_rng(2)
    floats = rng.uniform(-50, 50, size=(200, 3)).astype(np.float32)
    got = np.asarray(jax.jit(jax.vmap(lambda f: features.tiles(2048, 8, f)))(floats))
    np.testing.assert_array_equal(
        got, [ref.tiles(2048, 8, _ref_floats(row)) for row in floats])
    ints_as_floats = rng.integers(-20, 20, size=(50, 2)).astype(np.int32)
    got = np.asarray(jax.jit(jax.vmap(lambda f: features.tiles(4096, 4, f)))(ints_as_floats))
    np.testing.assert_array_equal(
        got, [ref.tiles(4096, 4, [int(v) for v in row]) for row in ints_as_floats])


@pytest.mark.parametrize("num_tilings", [3, 5, 7, 12])
def test_tiles_quantisation_is_exact_next_to_tile_boundaries(num_tilings):
    # k / n rounded to float32, and its neighbours: the float32 product f * n rounds onto
    # the boundary for many of them, where floor(f * n) would be one too large.
    k = np.arange(-2000, 2000)
    centre = (k / num_tilings).astype(np.float32)
    values = np.concatenate([centre, np.nextafter(centre, np.float32(-np.inf)),
                             np.nextafter(centre, np.float32(np.inf))])
    values = values[np.abs(values) > 1e-30]  # XLA flushes subnormals to zero.
    got = np.asarray(jax.jit(jax.vmap(
        lambda f: features.tile_coordinates(num_tilings, f[None])))(values))
    expected = np.array([ref.tiles(None, num_tilings, [float(v)]) for v in values])
    np.testing.assert_array_equal(got, expected)


def test_tiles_float64_inputs_equal_tiles3_under_x64():
    rng = np.random.default_rng(3)
    values = rng.uniform(-10, 10, size=(300, 2))
    # Multiples of 1/5, where tiles3's float64 product f * 5 rounds onto or off a boundary.
    values[:100] = np.round(values[:100] * 5) / 5
    with jax.enable_x64(True):
        for n in (5, 8):
            got = np.asarray(jax.jit(jax.vmap(lambda f, n=n: features.tiles(4096, n, f)))(
                jnp.asarray(values, jnp.float64)))
            np.testing.assert_array_equal(
                got, [ref.tiles(4096, n, [float(v) for v in row]) for row in values])


def test_hash_coordinates_equals_python_hash():
    rng = np.random.default_rng(4)
    coords = rng.integers(-(2**31), 2**31, size=(3000, 4), dtype=np.int64).astype(np.int32)
    coords[:300] = rng.integers(-3, 3, size=(300, 4))  # -1 hashes to -2 in Python.
    coords[300] = [-(2**31), 2**31 - 1, -1, 0]
    for size in (1, 3, 4096, 65_521, 2**31 - 1):
        got = np.asarray(jax.jit(lambda c, size=size: features.hash_coordinates(c, size))(coords))
        expected = [hash(tuple(int(v) for v in row)) % size for row in coords]
        np.testing.assert_array_equal(got, expected, err_msg=f"size={size}")
    # Tuples of other lengths, down to one element.
    for width in (1, 7):
        c = coords[:200, :1].repeat(width, axis=1) + np.arange(width, dtype=np.int32)
        np.testing.assert_array_equal(
            features.hash_coordinates(c, 4093), [hash(tuple(map(int, r))) % 4093 for r in c])


def test_tiles_iht_equals_tiles3_iht_including_overflow():
    # A 64-entry table fills up after a few calls; later new tuples are hashed.
    rng = np.random.default_rng(5)
    floats = rng.uniform(-3, 3, size=(60, 2)).astype(np.float32)
    floats[30:] = floats[:30]  # Revisit earlier inputs: stored tuples keep their index.
    actions = (np.arange(60) % 3).astype(np.int32)
    table, oracle = features.index_hash_table(64, num_floats=2, num_ints=1), ref.IHT(64)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(table, f, a):
        return features.tiles_iht(table, 8, f, a[None])

    for f, a in zip(floats, actions, strict=True):
        indices, table = step(table, f, a)
        np.testing.assert_array_equal(indices, ref.tiles(oracle, 8, _ref_floats(f), [int(a)]))
    assert int(table.count) == oracle.count() == 64
    assert int(table.overfull_count) == oracle.overfull_count > 0
    keys = np.asarray(table.keys)
    for key, index in oracle.dictionary.items():
        np.testing.assert_array_equal(keys[index], key)


def test_tiles_iht_mountain_car_never_fills_and_readonly():
    # The book's setup: IHT(4096), 8 tilings, floats scaled by 8 / range, the action as int.
    rng = np.random.default_rng(6)
    obs = rng.uniform([-1.2, -0.07], [0.5, 0.07], size=(200, 2))
    floats = (obs * [8 / 1.7, 8 / 0.14]).astype(np.float32)
    actions = rng.integers(0, 3, size=200).astype(np.int32)
    table, oracle = features.index_hash_table(4096, 2, 1), ref.IHT(4096)

    def run(table, xs):
        f, a = xs
        return features.tiles_iht(table, 8, f, a[None])[::-1]

    table, got = jax.jit(lambda t, xs: jax.lax.scan(run, t, xs))(table, (floats, actions))
    expected = [ref.tiles(oracle, 8, _ref_floats(f), [int(a)])
                for f, a in zip(floats, actions, strict=True)]
    np.testing.assert_array_equal(got, expected)
    assert int(table.count) == oracle.count() and int(table.overfull_count) == 0
    # readonly: known tuples keep their index, unknown ones get -1 (None), nothing is added.
    probe = np.array([floats[0], [100.0, 100.0]], np.float32)
    for f in probe:
        got, after = features.tiles_iht(table, 8, f, jnp.array([actions[0]]), readonly=True)
        expected = ref.tiles(oracle, 8, _ref_floats(f), [int(actions[0])], readonly=True)
        np.testing.assert_array_equal(got, [-1 if e is None else e for e in expected])
        assert int(after.count) == int(table.count)


def test_tiles_iht_vmaps_over_independent_tables():
    rng = np.random.default_rng(7)
    floats = rng.uniform(-2, 2, size=(3, 10, 1)).astype(np.float32)  # 3 tables, 10 calls.
    tables = jax.vmap(lambda _: features.index_hash_table(16, 1))(jnp.arange(3))
    step = jax.jit(jax.vmap(lambda t, f: features.tiles_iht(t, 4, f)))
    oracles = [ref.IHT(16) for _ in range(3)]
    for i in range(10):
        got, tables = step(tables, floats[:, i])
        for j in range(3):
            np.testing.assert_array_equal(
                got[j], ref.tiles(oracles[j], 4, _ref_floats(floats[j, i])))
    np.testing.assert_array_equal(tables.count, [o.count() for o in oracles])


def test_tile_coding_hashed_equals_tiles3_on_scaled_inputs():
    # Box [-2, 2] x [-1, 1] with 4 x 2 tiles: the scaled floats are obs + (2, 1), exactly.
    phi = features.tile_coding(8, [-2.0, -1.0], [2.0, 1.0], [4, 2], iht_size=4096)
    axis = np.arange(-2.0, 2.0 + 1 / 32, 1 / 32)  # On and between the tiles3 boundaries.
    inputs = np.array([(x, y) for x in axis for y in axis[::4] if abs(y) <= 1], np.float32)
    got = np.asarray(jax.jit(jax.vmap(phi.indices))(inputs))
    expected = [ref.tiles(4096, 8, [float(x) + 2.0, float(y) + 1.0]) for x, y in inputs]
    np.testing.assert_array_equal(got, expected)


def test_tile_coding_collision_free_relabels_tiles3_one_to_one():
    low, high, n = [-1.2, -0.07], [0.5, 0.07], 8
    phi = features.tile_coding(n, low, high, 8)
    assert phi.num_features == 8 * 9 * 9
    rng = np.random.default_rng(8)
    inputs = np.concatenate([rng.uniform(low, high, size=(3000, 2)),
                             [low, high, [low[0], high[1]]]]).astype(np.float32)
    got = np.asarray(jax.jit(jax.vmap(phi.indices))(inputs))
    # The scaling in float32 as documented, (obs - low) * (8 / (high - low)) with the factor
    # rounded once, then the reference tiles3 coordinates.
    factor = (8 / (np.array(high) - np.array(low))).astype(np.float32)
    scaled = (inputs - np.array(low, np.float32)) * factor
    coords = [ref.tiles(None, n, _ref_floats(f)) for f in scaled]
    index_of = {}
    for row, tuples in zip(got, coords, strict=True):
        for t, (index, key) in enumerate(zip(row, tuples, strict=True)):
            assert 81 * t <= index < 81 * (t + 1)  # Each tiling has its own block.
            assert index_of.setdefault(tuple(key), index) == index  # Same tile, same index.
    assert len(set(index_of.values())) == len(index_of)  # Different tiles, different indices.
    assert len(index_of) > 600  # Nearly all of the 648 tiles were visited.


# ----------------------------------------------------------------------------------------
# Bad input.

BAD_PARAMETERS = [
    (lambda: features.one_hot(0), "one_hot: `num_states` must be a positive integer"),
    (lambda: features.one_hot(2.5), "`num_states` must be a positive integer"),
    (lambda: features.state_aggregation(10, 0), "`group_size` must be a positive integer"),
    (lambda: features.polynomial(-1, 0.0, 1.0), "polynomial: `order` must be a non-negative"),
    (lambda: features.polynomial(2, [0.0, 1.0], [1.0, 1.0]), "the range is empty"),
    (lambda: features.fourier(2, [], []), "`low` must be a non-empty 1-D sequence"),
    (lambda: features.fourier(2, [0.0], [1.0, 2.0]), "`low` and `high` must have the same"),
    (lambda: features.fourier(2, 0.0, 1.0, basis="sin"), "`basis` must be 'cos' or 'cos_sin'"),
    (lambda: features.fourier(2, 0.0, np.inf), "`high` must be finite"),
    (lambda: features.rbf([0.0, 1.0], 1.0), "`centers` must be a non-empty \\[F, D\\] array"),
    (lambda: features.rbf([[0.0], [1.0]], [1.0, 0.0]), "`widths` must be positive"),
    (lambda: features.rbf([[0.0], [1.0]], [1.0, 1.0, 1.0]), "`widths` must be a scalar or"),
    (lambda: features.tile_coding(0, 0.0, 1.0, 4), "tile_coding: `num_tilings` must be a"),
    (lambda: features.tile_coding(4, 1.0, 1.0, 4), "tile_coding: `high` must be greater"),
    (lambda: features.tile_coding(4, [0.0, 0.0], [1.0, 1.0], [4, 0]), "`tiles_per_dim`"),
    (lambda: features.tile_coding(4, [0.0, 0.0], [1.0, 1.0], [4, 4, 4]), "`tiles_per_dim`"),
    (lambda: features.tile_coding(4, 0.0, 1.0, 4, iht_size=0), "`iht_size` must be a positive"),
    (lambda: features.tile_coding(4, 0.0, 1.0, 4, iht_size=2**31), "`iht_size` must be at"),
    (lambda: features.grid_tiles(4, 2.0, 1.0, 4), "grid_tiles: `high` must be greater"),
    (lambda: features.tiles(0, 4, jnp.zeros(2)), "tiles: `iht_size` must be a positive"),
    (lambda: features.tile_coordinates(-2, jnp.zeros(2)), "`num_tilings` must be a positive"),
    (lambda: features.index_hash_table(0, 2), "index_hash_table: `size` must be a positive"),
    (lambda: features.one_hot(3, dtype=jnp.int32), "`dtype` must be a floating dtype"),
]


@pytest.mark.parametrize("make, message", BAD_PARAMETERS)
def test_bad_parameters_raise_value_error_naming_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


BAD_OBSERVATIONS = [
    (features.one_hot(4), jnp.array([1, 2]), "one_hot: argument `obs` must have rank 0"),
    (features.one_hot(4), jnp.float32(1.0), "one_hot: argument `obs` must have a int dtype"),
    (features.state_aggregation(4, 2), jnp.zeros((2,), jnp.int32), "argument `obs` must have"),
    (features.polynomial(2, [0.0, 0.0], [1.0, 1.0]), jnp.zeros(3), "must have shape \\(2,\\)"),
    (features.fourier(2, 0.0, 1.0), jnp.float32(0.5), "fourier: argument `obs` must have shape"),
    (features.rbf([[0.0, 0.0]], 1.0), jnp.zeros((4, 2)), "rbf: argument `obs` must have shape"),
    (features.tile_coding(8, [0.0, 0.0], [1.0, 1.0], 4), jnp.zeros((5, 2)), "tile_coding:"),
    (features.grid_tiles(2, 0.0, 1.0, 4), jnp.zeros(2), "grid_tiles: argument `obs`"),
    (features.polynomial(1, 0.0, 1.0), jnp.array([True]), "must have a float or int dtype"),
]


@pytest.mark.parametrize("phi, obs, message", BAD_OBSERVATIONS)
def test_observations_of_the_wrong_shape_raise_chex_errors(phi, obs, message):
    with pytest.raises(AssertionError, match=message):
        phi(obs)
    with pytest.raises(AssertionError, match=message):
        jax.jit(phi.fn)(obs)


def test_tiles_bad_arrays_raise_chex_errors():
    with pytest.raises(AssertionError, match="tile_coordinates: argument `floats` must have"):
        features.tiles(64, 4, jnp.zeros((2, 2)))
    with pytest.raises(AssertionError, match="argument `ints` must have a int dtype"):
        features.tiles(64, 4, jnp.zeros(2), jnp.zeros(1))
    with pytest.raises(AssertionError, match="the table stores tuples of 4 ints"):
        features.tiles_iht(features.index_hash_table(64, 2, 1), 4, jnp.zeros(2))
    with pytest.raises(AssertionError, match="hash_coordinates: argument `coordinates`"):
        features.hash_coordinates(jnp.zeros(3), 64)
