"""Atomic, verified checkpoints of any pytree of arrays, with orbax-checkpoint.

orbax writes each checkpoint into a temporary directory and renames it only once every
file is on disk, so a crash (or Ctrl-C) mid-write never leaves a broken latest checkpoint:
`latest_step()` only sees finalized ones, and old checkpoints are deleted only after the new
one is finalized. Typed PRNG keys are stored as their raw key data and re-wrapped on
restore; the tree structure comes from a template (built by the same `init` that produced
the saved state), so NamedTuples round-trip exactly.

A finalized checkpoint can still be damaged later (a full disk, a copy cut short, a file
deleted by hand). Every array is saved with its CRC32 (in orbax's step metadata), and a
restore checks it, so damage is found even where the storage format would decode it
silently. `restore_latest_readable` then falls back to the newest checkpoint that reads:

    ckpt = Checkpointer(run_dir / "checkpoints")
    ckpt.save(step, state)
    step, state = ckpt.restore_latest_readable(template)   # warns once per damaged step
    state = ckpt.restore(template, step=2)                  # one given step, no fallback
"""

import logging
import pathlib
import sys
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

_CHECKSUMS = "tdkit_crc32"  # key of the per-array checksums in orbax's custom metadata


class NoReadableCheckpoint(Exception):
    """No finalized checkpoint in the directory can be restored (none exists, or every one is
    damaged or does not match the template). The message is one line; like `RunError`, it
    carries `code` = 2, the exit status a command line should use."""

    code = 2


class UnreadableCheckpointWarning(UserWarning):
    """Checkpoint `step` could not be restored and `fallback` was used instead.

    str() is one line: "checkpoint 7 in DIR is unreadable (ValueError: ...); using
    checkpoint 6". Attributes: step, fallback, reason, directory."""

    def __init__(self, step: int, fallback: int, reason: str, directory: pathlib.Path):
        super().__init__(f"checkpoint {step} in {directory} is unreadable ({reason}); "
                         f"using checkpoint {fallback}")
        self.step, self.fallback, self.reason, self.directory = step, fallback, reason, directory


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(tree: Any) -> dict:
    leaves = jax.tree.leaves(tree)
    out = {}
    for i, leaf in enumerate(leaves):
        if _is_key(leaf):
            leaf = jax.random.key_data(leaf)
        out[f"{i:05d}"] = np.asarray(leaf)
    return out


def _crc32(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8).reshape(-1))


def _one_line_reason(error: BaseException, limit: int = 160) -> str:
    """`ValueError: first line of the message` (cut to `limit` characters)."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _drop_closed_loop_reports() -> None:
    """When an orbax restore fails, tensorstore reads still in flight finish after orbax has
    closed its event loop, and each reports "RuntimeError: Event loop is closed" through
    `sys.unraisablehook`: a 6-line traceback on stderr, at some later moment, about nothing
    the user can act on. This wraps the current hook (once) to drop exactly those reports;
    everything else still reaches the previous hook."""
    previous = sys.unraisablehook
    if getattr(previous, "_tdkit_drops_closed_loop", False):
        return

    def hook(unraisable):
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return
        previous(unraisable)

    hook._tdkit_drops_closed_loop = True
    sys.unraisablehook = hook


class _QuietAbsl:
    """Silences orbax's absl logger (e.g. "ERROR:absl:Failed to json parse Metadata file:
    <the whole file>") while a possibly damaged checkpoint is read; the caller reports it."""

    def __enter__(self):
        self._logger = logging.getLogger("absl")
        self._level = self._logger.level
        self._logger.setLevel(logging.CRITICAL)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)


class Checkpointer:
    """Saves and restores pytrees under `directory/<step>/`, keeping the newest `max_to_keep`.

    Args:
      directory: folder of the checkpoints (created if missing).
      max_to_keep: how many finalized checkpoints to keep (>= 1). The default 3 leaves two
        older checkpoints to fall back to when the newest is damaged.
    """

    def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 3):
        import orbax.checkpoint as ocp  # Lazy: a heavy, optional dependency ([train] extra).

        if max_to_keep < 1:
            raise ValueError(f"Checkpointer: `max_to_keep` must be >= 1, got {max_to_keep}")
        self._ocp = ocp
        self.directory = pathlib.Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def save(self, step: int, tree: Any) -> None:
        """Writes `tree` as checkpoint `step` and waits until it is finalized on disk.

        Checkpoints at `step` or later are deleted first: they belong to a future the run
        abandoned when it resumed from an older checkpoint (e.g. after falling back from a
        damaged one). Older checkpoints are deleted (beyond `max_to_keep`) only after the new
        one is finalized.
        """
        step = int(step)
        for stale in self.all_steps():
            if stale >= step:
                self._manager.delete(stale)
        storable = _to_storable(tree)
        checksums = {name: _crc32(array) for name, array in storable.items()}
        self._manager.save(step, args=self._ocp.args.StandardSave(storable), force=True,
                           custom_metadata={_CHECKSUMS: checksums})
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        """The newest finalized step, or None."""
        self._manager.reload()
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """All finalized steps, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def restore(self, template: Any, step: int | None = None) -> Any:
        """Restores checkpoint `step` (default: the latest) into the structure of `template`.

        Raises:
          FileNotFoundError: there is no finalized checkpoint.
          ValueError: the checkpoint does not match the template's structure or shapes, or
            an array fails its checksum (the checkpoint is damaged).
          Anything orbax or tensorstore raise for a damaged checkpoint (mostly ValueError
            and OSError); `restore_latest_readable` turns these into a fallback.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no finalized checkpoint in {self.directory}")
        template_leaves, treedef = jax.tree.flatten(template)
        _drop_closed_loop_reports()
        stored = self._manager.restore(step, args=self._ocp.args.StandardRestore())
        if len(stored) != len(template_leaves):
            raise ValueError(
                f"checkpoint {step} in {self.directory} has {len(stored)} arrays, the "
                f"template has {len(template_leaves)}: was it written by another config?")
        checksums = self._checksums(step)
        leaves = []
        for i, like in enumerate(template_leaves):
            name = f"{i:05d}"
            value = np.asarray(stored[name])
            if name in checksums and _crc32(value) != checksums[name]:
                raise ValueError(f"checkpoint {step}: array {i} does not match its checksum "
                                 "(the files are damaged)")
            if _is_key(like):
                leaves.append(jax.random.wrap_key_data(
                    value, impl=jax.random.key_impl(like)))
                continue
            if value.shape != np.shape(like):
                raise ValueError(
                    f"checkpoint {step}: array {i} has shape {value.shape}, the template "
                    f"expects {np.shape(like)}")
            leaves.append(jax.numpy.asarray(value, dtype=np.asarray(like).dtype))
        return jax.tree.unflatten(treedef, leaves)

    def restore_latest_readable(
            self, template: Any,
            on_unreadable: Callable[[UnreadableCheckpointWarning], None] | None = None,
    ) -> tuple[int, Any]:
        """Restores the newest finalized checkpoint that reads, falling back past damaged ones.

        Each step is tried newest first; any exception while restoring it (orbax or
        tensorstore errors, a truncated or missing file, a failed checksum, a mismatch with
        the template) moves on to the next older step. Once one reads, every skipped step is
        reported once through `on_unreadable` (default: `warnings.warn`), e.g.
        "checkpoint 7 in DIR is unreadable (ValueError: ...); using checkpoint 6".

        Args:
          template: a pytree with the structure, shapes and dtypes of the saved state.
          on_unreadable: called with one `UnreadableCheckpointWarning` per skipped step
            (its str() is the one-line message); None warns with it instead.

        Returns:
          (step, tree): the step restored and the state in the structure of `template`.

        Raises:
          NoReadableCheckpoint: no finalized checkpoint exists, or none can be restored
            (one-line message naming the steps tried and why the newest failed).
        """
        steps = self.all_steps()
        if not steps:
            raise NoReadableCheckpoint(f"no finalized checkpoint in {self.directory}")
        failures: list[tuple[int, str]] = []
        for step in reversed(steps):
            try:
                with _QuietAbsl():
                    tree = self.restore(template, step=step)
            except Exception as error:  # every failure means "unreadable"
                failures.append((step, _one_line_reason(error)))
                continue
            for bad, reason in failures:
                report = UnreadableCheckpointWarning(bad, step, reason, self.directory)
                if on_unreadable is None:
                    warnings.warn(report, stacklevel=2)
                else:
                    on_unreadable(report)
            return step, tree
        tried = ", ".join(str(step) for step, _ in failures)
        raise NoReadableCheckpoint(
            f"no readable checkpoint in {self.directory} (tried {tried}; checkpoint "
            f"{failures[0][0]}: {failures[0][1]})")

    def _checksums(self, step: int) -> dict[str, int]:
        """The CRC32 of each stored array, or {} (written before checksums, or the metadata
        file itself is damaged: the arrays are then trusted as orbax decodes them)."""
        try:
            with _QuietAbsl():
                metadata = self._manager.metadata(step)
            return dict((getattr(metadata, "custom_metadata", None) or {}).get(_CHECKSUMS, {}))
        except Exception:  # missing metadata only disables the check
            return {}

    def close(self) -> None:
        self._manager.close()
