"""Checkpoints: exact round trip (typed keys, NamedTuples), unfinished writes never count."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.checkpoint import Checkpointer


class State(NamedTuple):
    params: dict
    key: jax.Array
    step: jax.Array


def _state(value):
    return State(params={"w": jnp.full((3, 2), value, jnp.float32), "b": jnp.arange(2.0)},
                 key=jax.random.split(jax.random.key(int(value)), 4),
                 step=jnp.asarray(int(value), jnp.int32))


def test_round_trip_and_latest(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", max_to_keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, _state(step))
    assert ckpt.all_steps() == [2, 3]
    restored = ckpt.restore(_state(0))
    expected = _state(3)
    assert isinstance(restored, State)
    np.testing.assert_array_equal(restored.params["w"], expected.params["w"])
    np.testing.assert_array_equal(jax.random.key_data(restored.key),
                                  jax.random.key_data(expected.key))
    assert restored.step.dtype == jnp.int32 and int(restored.step) == 3
    older = ckpt.restore(_state(0), step=2)
    assert int(older.step) == 2


def test_unfinished_write_is_ignored(tmp_path):
    """A crash mid-write leaves only orbax's temporary folder: the latest stays intact."""
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, _state(1))
    partial = tmp_path / "ckpt" / "2.orbax-checkpoint-tmp-1234"
    partial.mkdir()
    (partial / "garbage").write_bytes(b"\x00" * 10)
    fresh = Checkpointer(tmp_path / "ckpt")
    assert fresh.latest_step() == 1
    assert int(fresh.restore(_state(0)).step) == 1


def test_mismatched_template_and_missing(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError, match="no finalized checkpoint"):
        ckpt.restore(_state(0))
    ckpt.save(1, _state(1))
    with pytest.raises(ValueError, match="arrays, the template has"):
        ckpt.restore({"only": jnp.zeros(3)})
