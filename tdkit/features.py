"""Feature maps for linear value functions: pure JAX, jittable and vmappable.

A feature map turns ONE observation into a feature vector, `phi(obs) -> [F]` (float32 by
default). `FeatureMap(num_features, fn)` holds the function and its output size, and is
itself callable, so `phi(obs)` works and `jax.vmap(phi)` maps a batch `[B, O...] -> [B, F]`.
Constructors (all parameters are checked at construction, ValueError naming the argument):

- `one_hot(num_states)`, `state_aggregation(num_states, group_size)`: integer states.
- `polynomial(order, low, high)`, `fourier(order, low, high)` (Konidaris et al. 2011),
  `rbf(centers, widths)`: continuous observations `[D]`.
- `tile_coding(num_tilings, low, high, tiles_per_dim, iht_size=None)`: Sutton's tiles3
  tilings (asymmetric offsets), either collision-free or hashed exactly as tiles3 does;
  `grid_tiles(...)`: a plain grid tile coder with uniform offsets.

The tiles3 algorithm itself is available on scaled floats, with the same tile indices as
Sutton's `tiles3.py` for the same inputs:

- `tile_coordinates(num_tilings, floats, ints)`: tiles3's coordinate tuples (`ihtORsize=None`).
- `tiles(iht_size, num_tilings, floats, ints)`: tiles3 with an int size (stateless hashing,
  `hash(coords) % size` computed bit-exactly as 64-bit CPython >= 3.8 does).
- `tiles_iht(iht, num_tilings, floats, ints)`: tiles3 with an index hash table (IHT), whose
  state (`IndexHashTable`) is explicit: consecutive indices in order of first appearance,
  `hash(coords) % size` once the table is full, exactly as tiles3's `IHT`.
- `hash_coordinates(coordinates, size)`: `hash(tuple(coordinates)) % size`.

Which tile coder to use (for instance for the book's Mountain Car, 8 tilings of 8 x 8 tiles,
one weight set per action): `tile_coding(8, low, high, 8)` with the default `iht_size=None`,
fast under `jit` and stateless. It takes tiles3's tilings of the floats
`f = (obs - low) * 8 / (high - low)` and gives each (tiling, tile) its own index: no
collisions and no hashing (8 * 9 * 9 = 648 features, with a `[648, A]` weight matrix for A
actions). A tiles3 IHT that is not full is also a one-to-one labelling of tiles, so on the
same floats linear learning is the same up to a permutation of the weights. (The book's
code tiles `8 obs / (high - low)`, without subtracting `low`: the same tile shape and
offsets, shifted; call `tiles_iht` on those floats to reproduce it index for index.)
The hashed variants matter when the number of tiles is too large to enumerate (many
dimensions). The stateless `tiles(size, ...)` is fast under `jit` but collides more than
one might expect: for the book's Mountain Car call `tiles(4096, 8, [8 x / 1.7, 8 v / 0.14],
[a])`, 1104 of the 1917 visited tiles share an index with another (861 colliding pairs; 179
pairs among the 639 tiles of one action without `[a]`), whereas tiles3's IHT(4096) has no
collision at all there (it never fills). For exact tiles3 IHT behaviour use `tiles_iht`.
"""

import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from tdkit import _checks

Array = chex.Array

_INT32_MAX = 2**31 - 1


class FeatureMap(NamedTuple):
    """A feature map `phi(obs) -> [F]` and its number of features `F`.

    Instances are callable: `phi(obs)` is `phi.fn(obs)`, and `jax.vmap(phi)` maps a batch.
    To compile, close over it (`jax.jit(lambda o: phi(o))`) or jit `phi.fn`: `jax.jit(phi)`
    itself fails because jit keeps a weak reference and tuples cannot be weakly referenced.

    Attributes:
      num_features: `F`, the length of the feature vector.
      fn: `obs -> [F]` features for ONE observation (shape documented by the constructor).
      indices: for tile coders, `obs -> [num_tilings]` int32 indices of the active features
        (`fn(obs) == sum of one_hot(indices(obs), F)`, so `w @ fn(obs) == w[indices(obs)].sum()`,
        the sparse form of Sutton's tile-coding code); None for other feature maps.
    """

    num_features: int
    fn: Callable[[Array], Array]
    indices: Callable[[Array], Array] | None = None

    def __call__(self, obs: Array) -> Array:
        return self.fn(obs)


def _feature_map(
    num_features: int, fn: Callable[[Array], Array], indices: Callable | None = None,
) -> FeatureMap:
    """Jits the functions: an eager call runs one compiled program (inlined under an outer jit)."""
    return FeatureMap(num_features, jax.jit(fn), None if indices is None else jax.jit(indices))


# ----------------------------------------------------------------------------------------
# Construction-time checks (ValueError naming the argument).


def _positive_int(fn: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{fn}: `{name}` must be a positive integer, got {value!r}")
    return int(value)


def _non_negative_int(fn: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{fn}: `{name}` must be a non-negative integer, got {value!r}")
    return int(value)


def _ranges(fn: str, low: Any, high: Any) -> tuple[np.ndarray, np.ndarray]:
    """`low`, `high`: 1-D, same length D >= 1, finite, `high > low` in every dimension."""
    arrays = {}
    for name, value in (("low", low), ("high", high)):
        try:
            a = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{fn}: `{name}` must be a sequence of numbers, got {value!r}") from e
        if a.ndim == 0:
            a = a.reshape(1)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(
                f"{fn}: `{name}` must be a non-empty 1-D sequence (one bound per dimension), "
                f"got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{fn}: `{name}` must be finite, got {a.tolist()}")
        arrays[name] = a
    low, high = arrays["low"], arrays["high"]
    if low.shape != high.shape:
        raise ValueError(
            f"{fn}: `low` and `high` must have the same length, got {low.size} and {high.size}")
    if np.any(high <= low):
        raise ValueError(
            f"{fn}: `high` must be greater than `low` in every dimension (the range is empty), "
            f"got low={low.tolist()}, high={high.tolist()}")
    return low, high


def _per_dim_ints(fn: str, name: str, value: Any, dims: int) -> tuple[int, ...]:
    values = [value] * dims if np.ndim(value) == 0 else list(np.asarray(value).reshape(-1))
    if len(values) != dims:
        raise ValueError(
            f"{fn}: `{name}` must be a positive integer or one per dimension ({dims}), "
            f"got {value!r}")
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{fn}: `{name}` must contain positive integers, got {value!r}")
    return tuple(int(v) for v in values)


def _float_dtype(fn: str, dtype: Any) -> Any:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"{fn}: `dtype` must be a floating dtype, got {dtype!r}")
    return dt


# ----------------------------------------------------------------------------------------
# Trace-time observation checks (chex AssertionError naming `obs`).


def _int_state(fn: str, obs: Array) -> Array:
    obs = jnp.asarray(obs)
    _checks.assert_inputs(fn, obs=(obs, 0, int))
    return obs


def _vector_obs(fn: str, obs: Array, dims: int) -> Array:
    """Checks `obs` has shape `[dims]` and a numeric dtype; returns it as a float array."""
    obs = jnp.asarray(obs)
    chex.assert_shape(
        obs, (dims,), custom_message=f"{fn}: argument `obs` must have shape ({dims},)")
    if np.dtype(obs.dtype).kind not in "iuf":
        raise AssertionError(
            f"[Chex] {fn}: argument `obs` must have a float or int dtype, got {obs.dtype}")
    return obs.astype(jnp.float64 if obs.dtype == jnp.float64 else jnp.float32)


def _scaled(obs: Array, low: np.ndarray, high: np.ndarray, scale: Any = 1.0) -> Array:
    """`(obs - low) * (scale / (high - low))`: the box `[low, high]` mapped to `[0, scale]`.

    The factor is computed in float64 on the host and rounded once, so eager and jitted calls
    agree bit for bit (XLA would turn a division by a constant into a multiplication anyway).
    """
    factor = np.asarray(scale, np.float64) / (high - low)
    return (obs - jnp.asarray(low, obs.dtype)) * jnp.asarray(factor, obs.dtype)


# ----------------------------------------------------------------------------------------
# Tabular and aggregation features.


def one_hot(num_states: int, dtype: Any = jnp.float32) -> FeatureMap:
    """Tabular features: `phi(s) = e_s`, one feature per state.

    Args:
      num_states: `F`, the number of states.
      dtype: floating dtype of the features.

    Returns:
      A `FeatureMap` with `F = num_states` mapping an int state, shape `[]`, to `[F]`. A
      state outside `[0, F)` (for instance a terminal state numbered `F`) maps to zeros.
    """
    n = _positive_int("one_hot", "num_states", num_states)
    dtype = _float_dtype("one_hot", dtype)

    def fn(obs):
        obs = _int_state("one_hot", obs)
        return jax.nn.one_hot(obs, n, dtype=dtype)

    return _feature_map(n, fn)


def state_aggregation(num_states: int, group_size: int, dtype: Any = jnp.float32) -> FeatureMap:
    """State aggregation: states `[k g, (k + 1) g)` share feature `k` (book section 9.3).

    For continuous observations, `grid_tiles(1, low, high, bins)` aggregates by bins.

    Args:
      num_states: number of integer states `0 .. num_states - 1`.
      group_size: `g`, states per group; the last group may be smaller.
      dtype: floating dtype of the features.

    Returns:
      A `FeatureMap` with `F = ceil(num_states / group_size)` mapping an int state, shape
      `[]`, to a one-hot `[F]`. A state outside `[0, num_states)` maps to zeros.
    """
    n = _positive_int("state_aggregation", "num_states", num_states)
    g = _positive_int("state_aggregation", "group_size", group_size)
    dtype = _float_dtype("state_aggregation", dtype)
    num_groups = -(-n // g)

    def fn(obs):
        obs = _int_state("state_aggregation", obs)
        inside = (obs >= 0) & (obs < n)
        group = jnp.where(inside, obs // g, -1)
        return jax.nn.one_hot(group, num_groups, dtype=dtype)

    return _feature_map(num_groups, fn)


# ----------------------------------------------------------------------------------------
# Polynomial, Fourier and radial basis features.


def _exponents(order: int, dims: int) -> np.ndarray:
    """All `c` in `{0..order}^D`, lexicographic (the first dimension varies slowest)."""
    return np.array(list(itertools.product(range(order + 1), repeat=dims)), np.int32)


def polynomial(order: int, low: Any, high: Any, dtype: Any = jnp.float32) -> FeatureMap:
    """Polynomial basis: `phi_i(s) = prod_j s_j ** c_ij` for every `c_i` in `{0..order}^D`.

    The observation is first scaled to `s = (obs - low) / (high - low)` (in `[0, 1]^D`
    inside the box; it is not clipped). Feature `i` uses the exponents
    `itertools.product(range(order + 1), repeat=D)[i]`, so feature 0 is the constant 1.

    Args:
      order: `n >= 0`, the largest exponent of each dimension.
      low, high: `[D]` bounds of the observation box (scalars for `D = 1`).
      dtype: floating dtype of the features.

    Returns:
      A `FeatureMap` with `F = (n + 1)^D` mapping `obs`, shape `[D]`, to `[F]`.
    """
    n = _non_negative_int("polynomial", "order", order)
    low, high = _ranges("polynomial", low, high)
    dtype = _float_dtype("polynomial", dtype)
    dims = low.size
    exponents = _exponents(n, dims)

    def fn(obs):
        s = _scaled(_vector_obs("polynomial", obs, dims), low, high)
        powers = s[None, :] ** jnp.asarray(exponents)  # [F, D]; 0 ** 0 == 1
        return jnp.prod(powers, axis=1).astype(dtype)

    return _feature_map(exponents.shape[0], fn)


def fourier(
    order: int, low: Any, high: Any, basis: str = "cos", dtype: Any = jnp.float32,
) -> FeatureMap:
    """Fourier basis (Konidaris, Osentoski and Thomas 2011; book section 9.5.2).

    With `s = (obs - low) / (high - low)` in `[0, 1]^D` (not clipped) and `c_i` running over
    `{0..order}^D` (lexicographic, `c_0 = 0`):

    - `basis="cos"`: `phi_i(s) = cos(pi c_i . s)`, `F = (order + 1)^D` (Konidaris et al.).
    - `basis="cos_sin"`: the cosines followed by `sin(pi c_i . s)` for `i >= 1` (the sine of
      `c_0 = 0` is always zero and is left out), `F = 2 (order + 1)^D - 1`.

    Konidaris et al. scale the step size of feature `i` by `1 / ||c_i||` (`1` for `c_0`).

    Args:
      order: `n >= 0`, the largest frequency of each dimension.
      low, high: `[D]` bounds of the observation box (scalars for `D = 1`).
      basis: "cos" or "cos_sin".
      dtype: floating dtype of the features.

    Returns:
      A `FeatureMap` mapping `obs`, shape `[D]`, to `[F]`.
    """
    n = _non_negative_int("fourier", "order", order)
    low, high = _ranges("fourier", low, high)
    dtype = _float_dtype("fourier", dtype)
    if basis not in ("cos", "cos_sin"):
        raise ValueError(f"fourier: `basis` must be 'cos' or 'cos_sin', got {basis!r}")
    dims = low.size
    coefficients = _exponents(n, dims)  # [F, D]
    num_features = coefficients.shape[0] * (2 if basis == "cos_sin" else 1) - (
        1 if basis == "cos_sin" else 0)

    def fn(obs):
        s = _scaled(_vector_obs("fourier", obs, dims), low, high)
        angles = jnp.pi * (jnp.asarray(coefficients, s.dtype) @ s)  # [(n + 1)^D]
        if basis == "cos":
            return jnp.cos(angles).astype(dtype)
        return jnp.concatenate([jnp.cos(angles), jnp.sin(angles[1:])]).astype(dtype)

    return _feature_map(num_features, fn)


def rbf(centers: Any, widths: Any, dtype: Any = jnp.float32) -> FeatureMap:
    """Radial basis functions: `phi_i(obs) = exp(-||obs - c_i||^2 / (2 sigma_i^2))`.

    Args:
      centers: `[F, D]` centres `c_i`.
      widths: standard deviations `sigma_i > 0`, a scalar (shared) or `[F]`.
      dtype: floating dtype of the features.

    Returns:
      A `FeatureMap` mapping `obs`, shape `[D]`, to `[F]`.
    """
    try:
        c = np.asarray(centers, np.float64)
        w = np.asarray(widths, np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"rbf: `centers` and `widths` must be numeric arrays: {e}") from e
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"rbf: `centers` must be a non-empty [F, D] array, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("rbf: `centers` must be finite")
    if w.shape not in ((), (c.shape[0],)):
        raise ValueError(
            f"rbf: `widths` must be a scalar or have shape ({c.shape[0]},) (one per centre), "
            f"got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"rbf: `widths` must be positive and finite, got {w.tolist()}")
    dtype = _float_dtype("rbf", dtype)
    num_features, dims = c.shape
    inv_two_var = 1.0 / (2.0 * np.broadcast_to(w, (num_features,)) ** 2)

    def fn(obs):
        x = _vector_obs("rbf", obs, dims)
        sq_dist = jnp.sum((x[None, :] - jnp.asarray(c, x.dtype)) ** 2, axis=1)
        return jnp.exp(-sq_dist * jnp.asarray(inv_two_var, x.dtype)).astype(dtype)

    return _feature_map(num_features, fn)


# ----------------------------------------------------------------------------------------
# CPython's hash of a tuple of ints, in 32-bit JAX integer arithmetic.
#
# 64-bit CPython >= 3.8 hashes a tuple with an xxHash-like loop on 64-bit unsigned integers
# (Objects/tupleobject.c, `tuplehash`). An int `v` with |v| < 2^61 - 1 hashes to itself,
# except that -1 hashes to -2. Unsigned 64-bit values are held as (hi, lo) uint32 pairs so
# that the hash runs with jax_enable_x64 off (the default).

_M32 = 0xFFFFFFFF
_XXPRIME_1 = 11400714785074694791
_XXPRIME_2 = 14029467366897019727
_XXPRIME_5 = 2870177450012600261
_TUPLE_LENGTH_SALT = _XXPRIME_5 ^ 3527539
_HASH_OF_MINUS_ONE_TUPLE = 1546275796  # tuplehash never returns -1

_U64 = tuple  # (hi, lo), uint32 arrays


def _u32(value: int) -> Array:
    return jnp.asarray(value & _M32, jnp.uint32)


def _mul32_wide(a: Array, b: Array) -> _U64:
    """Full 64-bit product of two uint32 arrays, by 16-bit limbs."""
    a0, a1 = a & 0xFFFF, a >> 16
    b0, b1 = b & 0xFFFF, b >> 16
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> 16) + (p01 & 0xFFFF) + (p10 & 0xFFFF)
    lo = (p00 & 0xFFFF) | (mid << 16)
    hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16)
    return hi, lo


def _mul64_const(x: _U64, c: int) -> _U64:
    """`x * c mod 2^64` for a Python int constant `c`."""
    hi, lo = x
    c_hi, c_lo = _u32(c >> 32), _u32(c)
    p_hi, p_lo = _mul32_wide(lo, c_lo)
    return p_hi + hi * c_lo + lo * c_hi, p_lo


def _add64(x: _U64, y: _U64) -> _U64:
    lo = x[1] + y[1]
    carry = (lo < x[1]).astype(jnp.uint32)
    return x[0] + y[0] + carry, lo


def _rotl31(x: _U64) -> _U64:
    hi, lo = x
    return (hi << 31) | (lo >> 1), (lo << 31) | (hi >> 1)


def _mod64(x: _U64, m: int) -> Array:
    """`x mod m` for an unsigned 64-bit `x` and a Python int `1 <= m < 2^31`; uint32."""
    hi, lo = x
    if m & (m - 1) == 0:
        return lo & _u32(m - 1)
    step = 32 - m.bit_length()  # (m - 1) * 2^step + (2^step - 1) < 2^32
    rem = jnp.zeros_like(lo)
    pos = 64
    while pos > 0:
        width = min(step, pos)
        pos -= width
        if pos >= 32:
            chunk = hi >> (pos - 32)
        elif pos + width <= 32:
            chunk = lo >> pos
        else:
            chunk = (lo >> pos) | (hi << (32 - pos))
        chunk = chunk & _u32((1 << width) - 1)
        rem = ((rem << width) | chunk) % _u32(m)
    return rem


@functools.partial(jax.jit, static_argnums=1)  # One program, also when called eagerly.
def _python_hash_mod(coordinates: Array, size: int) -> tuple[Array, Array]:
    """`hash(tuple(c)) % size` (Python semantics) for int32 `[..., K]`; also the low hash bits.

    Returns:
      (`[...]` int32 in `[0, size)`, `[...]` uint32 low 32 bits of the hash).
    """
    coordinates = coordinates.astype(jnp.int32)
    num = coordinates.shape[-1]
    batch = coordinates.shape[:-1]
    acc = (jnp.full(batch, _u32(_XXPRIME_5 >> 32)), jnp.full(batch, _u32(_XXPRIME_5)))
    for i in range(num):
        v = coordinates[..., i]
        v = jnp.where(v == -1, -2, v)  # hash(-1) == -2
        lane = (jnp.where(v < 0, _u32(_M32), _u32(0)),
                jax.lax.bitcast_convert_type(v, jnp.uint32))
        acc = _add64(acc, _mul64_const(lane, _XXPRIME_2))
        acc = _rotl31(acc)
        acc = _mul64_const(acc, _XXPRIME_1)
    salt = num ^ _TUPLE_LENGTH_SALT
    acc = _add64(acc, (jnp.full(batch, _u32(salt >> 32)), jnp.full(batch, _u32(salt))))
    hi, lo = acc
    # As a signed Py_hash_t: negative when the top bit is set; then
    # h mod m = (u - 2^64) mod m = (u mod m - 2^64 mod m) mod m.
    rem = _mod64(acc, size)
    correction = _u32((2**64) % size)
    rem = jnp.where((hi >> 31) == 1, (rem + _u32(size) - correction) % _u32(size), rem)
    minus_one = (hi == _u32(_M32)) & (lo == _u32(_M32))
    rem = jnp.where(minus_one, _u32(_HASH_OF_MINUS_ONE_TUPLE % size), rem)
    lo = jnp.where(minus_one, _u32(_HASH_OF_MINUS_ONE_TUPLE), lo)
    return rem.astype(jnp.int32), lo


def _check_size(fn: str, name: str, size: Any) -> int:
    size = _positive_int(fn, name, size)
    if size > _INT32_MAX:
        raise ValueError(f"{fn}: `{name}` must be at most 2^31 - 1, got {size}")
    return size


def hash_coordinates(coordinates: Array, size: int) -> Array:
    """tiles3's `hashcoords` for an int size: `hash(tuple(coordinates)) % size`.

    Bit-exact with 64-bit CPython >= 3.8 (xxHash-based tuple hash) for int32 coordinates,
    including negative values and Python's non-negative `%`.

    Args:
      coordinates: `[..., K]` int coordinate tuples (int32 range).
      size: Python int in `[1, 2^31)`.

    Returns:
      `[...]` int32 in `[0, size)`.
    """
    size = _check_size("hash_coordinates", "size", size)
    coordinates = jnp.asarray(coordinates)
    if coordinates.ndim < 1 or np.dtype(coordinates.dtype).kind not in "iu":
        raise AssertionError(
            "[Chex] hash_coordinates: argument `coordinates` must be an int array of rank >= 1 "
            f"([..., K]), got {coordinates.dtype}{list(coordinates.shape)}")
    return _python_hash_mod(coordinates, size)[0]


# ----------------------------------------------------------------------------------------
# tiles3: coordinates, stateless hashing, and the index hash table.


def _floor_times(f: Array, n: int) -> Array:
    """`floor(f * n)` as tiles3 computes it, in Python floats (IEEE float64), for a Python int `n`.

    For float64 `f` this is the plain `floor(f * n)`. For float32 `f` the float64 product is
    exact, but the float32 product can round up onto an integer just above it. Unless `n` is a
    power of two (then the product is exact), `f` is split into two halves whose products
    with `n` are exact (Dekker), summed with an error-free transformation (Knuth's TwoSum),
    and the floor is corrected by the sign of the rounding error. This needs `n < 2^12`;
    larger `n` use the float32 product. Subnormal inputs count as 0 (XLA flushes them).
    """
    if f.dtype == jnp.float64 or n & (n - 1) == 0 or n >= 2**12:
        return jnp.floor(f * n)
    bits = jax.lax.bitcast_convert_type(f, jnp.uint32)
    head = jax.lax.bitcast_convert_type(bits & jnp.uint32(0xFFFFF000), f.dtype)
    tail = f - head  # exact
    a, b = head * n, tail * n  # both exact: at most 12 + 12 significant bits
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)  # a + b == s + err exactly
    fl = jnp.floor(s)
    return fl - ((fl == s) & (err < 0)).astype(f.dtype)


def tile_coordinates(num_tilings: int, floats: Array, ints: Array | None = None) -> Array:
    """tiles3's coordinate tuples (`tiles(None, num_tilings, floats, ints)`).

    With `q_d = floor(floats[d] * num_tilings)`, tiling `t` has the coordinates
    `(t, (q_0 + t) // n, (q_1 + 3 t) // n, ..., (q_d + (2 d + 1) t) // n, *ints)`: each
    tiling is offset by `t / n` of a tile along dimension 0, `3 t / n` along dimension 1, ...
    (Sutton's asymmetric offsets). A unit of `floats` is one tile width.

    Args:
      num_tilings: `n`, a Python int (tiles3 recommends a power of two >= 4 D).
      floats: `[D]` float (or int) values, already scaled so that one unit is one tile.
      ints: optional `[K]` int values appended to every tuple (for instance an action).

    Returns:
      `[n, 1 + D + K]` int32.
    """
    fn = "tile_coordinates"
    n = _positive_int(fn, "num_tilings", num_tilings)
    floats = jnp.asarray(floats)
    _checks.assert_inputs(fn, floats=(floats, 1, None))
    kind = np.dtype(floats.dtype).kind
    if kind not in "iuf":
        raise AssertionError(
            f"[Chex] {fn}: argument `floats` must have a float or int dtype, got {floats.dtype}")
    if kind == "f":
        f = floats.astype(jnp.float64 if floats.dtype == jnp.float64 else jnp.float32)
        quantised = _floor_times(f, n).astype(jnp.int32)
    else:
        quantised = floats.astype(jnp.int32) * n
    dims = floats.shape[0]
    tiling = jnp.arange(n, dtype=jnp.int32)
    offsets = tiling[:, None] * (2 * jnp.arange(dims, dtype=jnp.int32) + 1)[None, :]
    coords = jnp.floor_divide(quantised[None, :] + offsets, n)  # [n, D]
    parts = [tiling[:, None], coords]
    if ints is not None:
        ints = jnp.asarray(ints)
        _checks.assert_inputs(fn, ints=(ints, 1, int))
        parts.append(jnp.broadcast_to(ints.astype(jnp.int32)[None, :], (n, ints.shape[0])))
    return jnp.concatenate(parts, axis=1)


def tiles(iht_size: int, num_tilings: int, floats: Array, ints: Array | None = None) -> Array:
    """tiles3's `tiles(iht_size, num_tilings, floats, ints)` with an int size (stateless).

    Each tiling's coordinate tuple (see `tile_coordinates`) is hashed to
    `hash(tuple(coords)) % iht_size`, bit-exactly as 64-bit CPython >= 3.8 does, so the
    indices equal Sutton's `tiles3.tiles(iht_size, ...)` for the same inputs. For float32
    inputs the quantisation `floor(f * num_tilings)` is computed exactly, as tiles3 computes
    it for `float(np.float32(f))`; float64 inputs (with x64 enabled) use the same float64
    arithmetic as tiles3. Distinct tiles may share an index.

    Args:
      iht_size: number of indices, a Python int in `[1, 2^31)`.
      num_tilings: `n`, a Python int.
      floats: `[D]` values scaled so that one unit is one tile.
      ints: optional `[K]` ints (for instance the action).

    Returns:
      `[n]` int32 tile indices in `[0, iht_size)`, one per tiling in tiling order.
    """
    size = _check_size("tiles", "iht_size", iht_size)
    return _python_hash_mod(tile_coordinates(num_tilings, floats, ints), size)[0]


class IndexHashTable(NamedTuple):
    """State of a tiles3 index hash table (IHT) of `size` indices.

    tiles3's IHT is a Python dict from coordinate tuples to consecutive indices. Here the dict
    is explicit state: the tuple given index `i` is `keys[i]`, and an open-addressing table
    `slots` (linear probing on the low bits of the tuple's Python hash, at most half full)
    finds a tuple's index in O(1) expected time.

    Attributes:
      keys: `[size, K]` int32; row `i < count` is the coordinate tuple with index `i`.
      slots: `[C]` int32, `C` a power of two >= 2 size; an index into `keys`, or -1 if empty.
      count: `[]` int32, the number of stored tuples (tiles3's `iht.count()`).
      overfull_count: `[]` int32, the number of lookups answered by hashing because the
        table was full (tiles3's `iht.overfullCount`).
    """

    keys: Array
    slots: Array
    count: Array
    overfull_count: Array


def index_hash_table(size: int, num_floats: int, num_ints: int = 0) -> IndexHashTable:
    """An empty index hash table, tiles3's `IHT(size)`, for tuples of `1 + D + K` ints.

    Args:
      size: number of indices, a Python int in `[1, 2^30]`.
      num_floats: `D`, the number of floats passed to `tiles_iht`.
      num_ints: `K`, the number of ints passed to `tiles_iht`.

    Returns:
      An `IndexHashTable` with `count == 0`.
    """
    size = _positive_int("index_hash_table", "size", size)
    if size > 2**30:
        raise ValueError(f"index_hash_table: `size` must be at most 2^30, got {size}")
    dims = _non_negative_int("index_hash_table", "num_floats", num_floats)
    num_ints = _non_negative_int("index_hash_table", "num_ints", num_ints)
    capacity = 1 << (2 * size - 1).bit_length()
    return IndexHashTable(
        keys=jnp.zeros((size, 1 + dims + num_ints), jnp.int32),
        slots=jnp.full((capacity,), -1, jnp.int32),
        count=jnp.zeros((), jnp.int32),
        overfull_count=jnp.zeros((), jnp.int32))


def tiles_iht(
    iht: IndexHashTable,
    num_tilings: int,
    floats: Array,
    ints: Array | None = None,
    readonly: bool = False,
) -> tuple[Array, IndexHashTable]:
    """tiles3's `tiles(iht, num_tilings, floats, ints, readonly)` with explicit IHT state.

    For every tiling in order: a tuple already in the table gets its stored index; a new
    tuple gets the next index `count` while `count < size`; once the table is full it gets
    `hash(tuple(coords)) % size` (and `overfull_count` grows). A sequence of calls threading
    the table through gives the same indices as the same calls on one tiles3 `IHT(size)`.
    Calls for a batch that share one table are sequential by nature (use `jax.lax.scan`);
    independent tables can be `jax.vmap`ped.

    Args:
      iht: the table, from `index_hash_table(size, D, K)`.
      num_tilings: `n`, a Python int.
      floats: `[D]` values scaled so that one unit is one tile.
      ints: optional `[K]` ints (for instance the action).
      readonly: a Python bool; if True, new tuples are not added and get index -1
        (tiles3 returns None) and the table is returned unchanged.

    Returns:
      (`[n]` int32 indices, the updated `IndexHashTable`).
    """
    fn = "tiles_iht"
    coords = tile_coordinates(num_tilings, floats, ints)  # [n, K]
    size, width = iht.keys.shape
    if coords.shape[1] != width:
        raise AssertionError(
            f"[Chex] {fn}: the table stores tuples of {width} ints (1 + len(floats) + "
            f"len(ints)), got {coords.shape[1]}; build it with index_hash_table(size, "
            f"{jnp.shape(floats)[0]}, {coords.shape[1] - 1 - jnp.shape(floats)[0]})")
    fallback, low_hash = _python_hash_mod(coords, size)
    capacity = iht.slots.shape[0]
    mask = jnp.int32(capacity - 1)

    def step(table, xs):
        key, h, overflow_index = xs
        start = jax.lax.bitcast_convert_type(h, jnp.int32) & mask

        def occupied_by_other(slot):
            stored = table.slots[slot]
            same = jnp.all(table.keys[jnp.maximum(stored, 0)] == key)
            return (stored >= 0) & ~same

        slot = jax.lax.while_loop(occupied_by_other, lambda s: (s + 1) & mask, start)
        stored = table.slots[slot]
        found = stored >= 0
        if readonly:
            return table, jnp.where(found, stored, -1)
        full = table.count >= size
        insert = ~found & ~full
        index = jnp.where(found, stored, jnp.where(full, overflow_index, table.count))
        row = jnp.minimum(table.count, size - 1)
        table = IndexHashTable(
            keys=table.keys.at[row].set(jnp.where(insert, key, table.keys[row])),
            slots=table.slots.at[slot].set(jnp.where(insert, table.count, stored)),
            count=table.count + insert.astype(jnp.int32),
            overfull_count=table.overfull_count + (~found & full).astype(jnp.int32))
        return table, index

    iht, indices = jax.lax.scan(step, iht, (coords, low_hash, fallback))
    return indices, iht


# ----------------------------------------------------------------------------------------
# Tile-coding feature maps.


def _dense(indices: Array, num_features: int, dtype: Any) -> Array:
    return jnp.zeros((num_features,), dtype).at[indices].add(jnp.ones(indices.shape, dtype))


def tile_coding(
    num_tilings: int,
    low: Any,
    high: Any,
    tiles_per_dim: int | Sequence[int],
    iht_size: int | None = None,
    dtype: Any = jnp.float32,
) -> FeatureMap:
    """Tile coding with Sutton's tiles3 tilings (asymmetric offsets; book section 9.5.4).

    The observation is clipped to `[low, high]` and scaled to
    `f_d = (obs_d - low_d) * (tiles_per_dim[d] / (high_d - low_d))` (the factor rounded once
    to the dtype of `obs`), so each tiling has
    `tiles_per_dim[d]` tiles across the box (plus one more, partly outside, from its offset).
    Tiling `t` displaces dimension `d` by `(2 d + 1) t / num_tilings` of a tile (see
    `tile_coordinates`).

    - `iht_size=None` (default): every (tiling, tile) has its own index (no collisions, no
      hashing), `F = num_tilings * prod(tiles_per_dim + 1)`. The indices are a one-to-one
      relabelling of tiles3's tiles for the floats `f`.
    - `iht_size=m`: the indices are exactly `tiles(m, num_tilings, f)`, tiles3's stateless
      hashing, `F = m`; distinct tiles may share an index.

    Args:
      num_tilings: `n`, the number of tilings.
      low, high: `[D]` bounds of the observation box (scalars for `D = 1`).
      tiles_per_dim: tiles per dimension across the box, an int or `[D]` ints.
      iht_size: None, or the number of hashed indices (a Python int).
      dtype: floating dtype of the features.

    Returns:
      A `FeatureMap` mapping `obs`, shape `[D]`, to `[F]` (a 1 at each of the `n` active
      tiles; an index hit by two tilings holds 2), with `indices(obs) -> [n]` int32.
    """
    fn_name = "tile_coding"
    n = _positive_int(fn_name, "num_tilings", num_tilings)
    low, high = _ranges(fn_name, low, high)
    dims = low.size
    per_dim = np.array(_per_dim_ints(fn_name, "tiles_per_dim", tiles_per_dim, dims))
    dtype = _float_dtype(fn_name, dtype)
    if iht_size is not None:
        num_features = _check_size(fn_name, "iht_size", iht_size)
    else:
        positions = per_dim + 1
        num_features = n * int(np.prod(positions))
        if num_features > _INT32_MAX:
            raise ValueError(
                f"{fn_name}: {num_features} tiles do not fit int32 indices; pass `iht_size` "
                "to hash them")
        # Tiling t's coordinate along d is in [(t (2d + 1)) // n, that + tiles_per_dim[d]].
        first = (np.arange(n)[:, None] * (2 * np.arange(dims) + 1)[None, :]) // n  # [n, D]
        strides = np.cumprod(np.concatenate([[1], positions[::-1][:-1]]))[::-1]
        tiling_base = np.arange(n) * int(np.prod(positions))

    def scaled_floats(obs):
        x = _vector_obs(fn_name, obs, dims)
        x = jnp.clip(x, jnp.asarray(low, x.dtype), jnp.asarray(high, x.dtype))
        return _scaled(x, low, high, per_dim)

    def indices(obs):
        f = scaled_floats(obs)
        if iht_size is not None:
            return tiles(num_features, n, f)
        coords = tile_coordinates(n, f)[:, 1:] - jnp.asarray(first, jnp.int32)  # [n, D]
        coords = jnp.clip(coords, 0, jnp.asarray(per_dim, jnp.int32))
        return (jnp.asarray(tiling_base, jnp.int32)
                + coords @ jnp.asarray(strides, jnp.int32)).astype(jnp.int32)

    return _feature_map(
        num_features, lambda obs: _dense(indices(obs), num_features, dtype), indices)


def grid_tiles(
    num_tilings: int,
    low: Any,
    high: Any,
    tiles_per_dim: int | Sequence[int],
    dtype: Any = jnp.float32,
) -> FeatureMap:
    """A plain grid tile coder with uniform offsets (book Figure 9.11, left).

    The observation is clipped to `[low, high]` and scaled to
    `f_d = (obs_d - low_d) * (tiles_per_dim[d] / (high_d - low_d))`; tiling `t` is displaced
    by `t / num_tilings` of a tile along EVERY dimension: its tile along `d` is
    `floor(f_d + t / num_tilings)`. With one tiling this is state aggregation by bins
    (`obs == high` falls in the last bin). Every (tiling, tile) has its own index.

    Args:
      num_tilings: `n`, the number of tilings.
      low, high: `[D]` bounds of the observation box (scalars for `D = 1`).
      tiles_per_dim: tiles per dimension across the box, an int or `[D]` ints.
      dtype: floating dtype of the features.

    Returns:
      A `FeatureMap` mapping `obs`, shape `[D]`, to `[F]` with `n` ones,
      `F = prod(tiles_per_dim)` for `n = 1` and `n * prod(tiles_per_dim + 1)` for `n > 1`;
      `indices(obs) -> [n]` int32.
    """
    fn_name = "grid_tiles"
    n = _positive_int(fn_name, "num_tilings", num_tilings)
    low, high = _ranges(fn_name, low, high)
    dims = low.size
    per_dim = np.array(_per_dim_ints(fn_name, "tiles_per_dim", tiles_per_dim, dims))
    dtype = _float_dtype(fn_name, dtype)
    positions = per_dim + (1 if n > 1 else 0)
    num_features = n * int(np.prod(positions))
    if num_features > _INT32_MAX:
        raise ValueError(f"{fn_name}: {num_features} tiles do not fit int32 indices")
    strides = np.cumprod(np.concatenate([[1], positions[::-1][:-1]]))[::-1]
    # Tiling 0 never reaches position tiles_per_dim except at obs == high: close its last bin.
    top = np.full((n, dims), per_dim)
    top[0] = per_dim - 1

    def indices(obs):
        x = _vector_obs(fn_name, obs, dims)
        x = jnp.clip(x, jnp.asarray(low, x.dtype), jnp.asarray(high, x.dtype))
        f = _scaled(x, low, high, per_dim)
        # floor(f + t / n) == (floor(f n) + t) // n: exact integer offsets.
        q = _floor_times(f, n).astype(jnp.int32)
        coords = jnp.floor_divide(q[None, :] + jnp.arange(n, dtype=jnp.int32)[:, None], n)
        coords = jnp.clip(coords, 0, jnp.asarray(top, jnp.int32))
        base = jnp.arange(n, dtype=jnp.int32) * int(np.prod(positions))
        return (base + coords @ jnp.asarray(strides, jnp.int32)).astype(jnp.int32)

    return _feature_map(
        num_features, lambda obs: _dense(indices(obs), num_features, dtype), indices)


__all__ = [
    "FeatureMap",
    "IndexHashTable",
    "fourier",
    "grid_tiles",
    "hash_coordinates",
    "index_hash_table",
    "one_hot",
    "polynomial",
    "rbf",
    "state_aggregation",
    "tile_coding",
    "tile_coordinates",
    "tiles",
    "tiles_iht",
]
