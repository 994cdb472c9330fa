"""Checkpoints: exact round trip (typed keys, NamedTuples), unfinished writes never count."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.checkpoint import Checkpointer, NoReadableCheckpoint, UnreadableCheckpointWarning


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


# ----------------------------------------------------------------------------------------
# Damaged checkpoints: fall back to the newest one that reads.
# ----------------------------------------------------------------------------------------


def _big_state(value):
    """With a random array, so that its data file is incompressible and the largest one."""
    return _state(value)._replace(params={
        "w": jnp.full((3, 2), value, jnp.float32),
        "b": jax.random.normal(jax.random.key(int(value)), (2000,))})


def _saved_1_2_3(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    for step in (1, 2, 3):
        ckpt.save(step, _big_state(step))
    return ckpt


def _largest_data_file(step_dir):
    """orbax (OCDBT + zarr) writes the array chunks into files under `.../d/`."""
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(files, key=lambda p: p.stat().st_size)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    lambda d: _truncate(_largest_data_file(d)),
    lambda d: _largest_data_file(d).unlink(),
    lambda d: (d / "default" / "_METADATA").unlink(),
    lambda d: _truncate(d / "default" / "_METADATA"),
    lambda d: _flip_a_byte(_largest_data_file(d)),  # decodes silently: the checksum finds it
], ids=["truncated-data", "deleted-data", "deleted-metadata", "truncated-metadata",
        "flipped-byte"])
def test_damaged_latest_falls_back_with_one_warning(tmp_path, capfd, damage):
    ckpt = _saved_1_2_3(tmp_path)
    assert ckpt.all_steps() == [1, 2, 3]  # max_to_keep=3 by default
    damage(tmp_path / "ckpt" / "3")
    fresh = Checkpointer(tmp_path / "ckpt")
    with pytest.warns(UserWarning) as record:
        step, restored = fresh.restore_latest_readable(_big_state(0))
    assert step == 2 and int(restored.step) == 2
    assert len(record) == 1
    message = str(record[0].message)
    assert isinstance(record[0].message, UnreadableCheckpointWarning)
    assert "\n" not in message and len(message) < 400
    assert message.startswith(f"checkpoint 3 in {tmp_path / 'ckpt'} is unreadable (")
    assert message.endswith("); using checkpoint 2")
    assert "Traceback" not in capfd.readouterr().err


def test_fallback_reports_through_the_callback_and_the_run_continues(tmp_path):
    ckpt = _saved_1_2_3(tmp_path)
    _truncate(_largest_data_file(tmp_path / "ckpt" / "3"))
    _largest_data_file(tmp_path / "ckpt" / "2").unlink()
    reports = []
    step, _ = ckpt.restore_latest_readable(_big_state(0), on_unreadable=reports.append)
    assert step == 1
    assert [(r.step, r.fallback) for r in reports] == [(3, 1), (2, 1)]
    assert all(r.reason.split(":")[0].isidentifier() for r in reports)  # "ValueError: ..."
    # Continuing from 1 rewrites 2 and 3; the damaged copies are replaced, not kept.
    ckpt.save(2, _big_state(20))
    assert ckpt.all_steps() == [1, 2]
    assert ckpt.restore_latest_readable(_big_state(0))[0] == 2
    assert int(ckpt.restore(_big_state(0)).step) == 20


def test_no_readable_checkpoint_is_one_line(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(NoReadableCheckpoint, match="no finalized checkpoint in"):
        ckpt.restore_latest_readable(_big_state(0))
    ckpt = _saved_1_2_3(tmp_path)
    for step in (1, 2, 3):
        _truncate(_largest_data_file(tmp_path / "ckpt" / str(step)))
    with pytest.raises(NoReadableCheckpoint) as error:
        ckpt.restore_latest_readable(_big_state(0))
    message = str(error.value)
    assert "\n" not in message and len(message) < 400
    assert message.startswith(f"no readable checkpoint in {tmp_path / 'ckpt'} (tried 3, 2, 1;")
    assert error.value.code == 2


def test_wrong_template_is_not_readable_either(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, _state(1))
    with pytest.raises(NoReadableCheckpoint, match="arrays, the template has 1"):
        ckpt.restore_latest_readable({"only": jnp.zeros(3)})
