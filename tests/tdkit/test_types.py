"""tdkit.types: Transition helpers."""

import jax
import numpy as np
import pytest

from tdkit.types import random_transitions


def test_random_transitions_shapes_bounds_and_discounts():
    t = random_transitions(jax.random.key(0), 4000, [-1.0, 0.0], [1.0, 2.0], 3, gamma=0.9,
                           terminal_prob=0.25)
    assert t.obs_tm1.shape == (4000, 2) and t.obs_t.shape == (4000, 2)
    assert t.a_tm1.dtype == np.int32 and set(np.unique(t.a_tm1)) == {0, 1, 2}
    obs = np.asarray(t.obs_tm1)
    assert obs[:, 0].min() >= -1.0 and obs[:, 0].max() <= 1.0
    assert obs[:, 1].min() >= 0.0 and obs[:, 1].max() <= 2.0
    np.testing.assert_allclose(np.unique(np.asarray(t.discount_t)), [0.0, 0.9], rtol=1e-6)
    assert 0.2 < np.mean(np.asarray(t.discount_t) == 0.0) < 0.3
    with pytest.raises(ValueError, match="`obs_low` and `obs_high` must be"):
        random_transitions(jax.random.key(0), 4, [0.0], [1.0, 2.0], 2)
