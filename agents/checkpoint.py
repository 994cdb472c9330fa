"""Atomic checkpoints of any pytree of arrays, with orbax-checkpoint.

orbax writes each checkpoint into a temporary directory and renames it only once every
file is on disk, so a crash (or Ctrl-C) mid-write never leaves a broken latest checkpoint:
`latest_step()` only sees finalized ones. Typed PRNG keys are stored as their raw key data
and re-wrapped on restore; the tree structure comes from a template (built by the same
`init` that produced the saved state), so NamedTuples round-trip exactly.

    ckpt = Checkpointer(run_dir / "checkpoints")
    ckpt.save(step, state)
    state = ckpt.restore(template)          # latest finalized step
"""

import pathlib
from typing import Any

import jax
import numpy as np


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


class Checkpointer:
    """Saves and restores pytrees under `directory/<step>/`, keeping the newest `max_to_keep`.

    Args:
      directory: folder of the checkpoints (created if missing).
      max_to_keep: how many finalized checkpoints to keep (>= 1).
    """

    def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2):
        import orbax.checkpoint as ocp  # Lazy: a heavy, optional dependency ([train] extra).

        if max_to_keep < 1:
            raise ValueError(f"Checkpointer: `max_to_keep` must be >= 1, got {max_to_keep}")
        self._ocp = ocp
        self.directory = pathlib.Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def save(self, step: int, tree: Any) -> None:
        """Writes `tree` as checkpoint `step` and waits until it is finalized on disk."""
        self._manager.save(int(step), args=self._ocp.args.StandardSave(_to_storable(tree)),
                           force=True)
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
          ValueError: the checkpoint does not match the template's structure or shapes.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no finalized checkpoint in {self.directory}")
        template_leaves, treedef = jax.tree.flatten(template)
        stored = self._manager.restore(step, args=self._ocp.args.StandardRestore())
        if len(stored) != len(template_leaves):
            raise ValueError(
                f"checkpoint {step} in {self.directory} has {len(stored)} arrays, the "
                f"template has {len(template_leaves)}: was it written by another config?")
        leaves = []
        for i, like in enumerate(template_leaves):
            value = np.asarray(stored[f"{i:05d}"])
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

    def close(self) -> None:
        self._manager.close()
