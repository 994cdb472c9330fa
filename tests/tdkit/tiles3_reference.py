"""Plain-Python tile coder following Sutton's tiles3 algorithm (test oracle only).

Written from the published description of `tiles3.py` (incompleteideas.net/tiles/tiles3.html):
floats are quantised to `floor(f * num_tilings)`; tiling `t` displaces dimension `d` by
`t * (2 d + 1)` quanta (asymmetric offsets 1, 3, 5, ...); the coordinate tuple
`(t, c_1, ..., c_D, *ints)` is mapped to an index by an index hash table (IHT: consecutive
indices in order of first appearance; once full, `hash(coords) % size`), or, when the table
is an int, by `hash(coords) % size` directly. Python's own `hash` is the oracle for the hash.
"""

import math


class IHT:
    """Index hash table: a dict from coordinate tuples to consecutive indices."""

    def __init__(self, size):
        self.size = size
        self.overfull_count = 0
        self.dictionary = {}

    def count(self):
        return len(self.dictionary)

    def full(self):
        return len(self.dictionary) >= self.size

    def get_index(self, obj, readonly=False):
        if obj in self.dictionary:
            return self.dictionary[obj]
        if readonly:
            return None
        if self.count() >= self.size:
            self.overfull_count += 1
            return hash(obj) % self.size
        index = self.count()
        self.dictionary[obj] = index
        return index


def hash_coords(coords, iht_or_size, readonly=False):
    if isinstance(iht_or_size, IHT):
        return iht_or_size.get_index(tuple(coords), readonly)
    if isinstance(iht_or_size, int):
        return hash(tuple(coords)) % iht_or_size
    return list(coords)


def tiles(iht_or_size, num_tilings, floats, ints=(), readonly=False):
    """One tile index per tiling, in tiling order."""
    quantised = [math.floor(f * num_tilings) for f in floats]
    result = []
    for tiling in range(num_tilings):
        coords = [tiling]
        offset = tiling
        for q in quantised:
            coords.append((q + offset) // num_tilings)
            offset += 2 * tiling
        coords.extend(ints)
        result.append(hash_coords(coords, iht_or_size, readonly))
    return result
