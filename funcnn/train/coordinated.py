"""Checkpoints for a process group: every process calls, process 0 writes, all wait.

Under `funcnn.scale.distributed` (several processes, one mesh) a sharded state spans
processes. Saving gathers it to full host arrays in every process (a collective), process 0
alone writes the file atomically (`funcnn.train.checkpoint.save`), and a barrier holds the
others until the file is complete. Restoring reads the file in every process and places it
with any sharding (`funcnn.scale.place_global`), so a run may resume under another process
count. The directory must be on a filesystem every process sees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from funcnn.scale.distributed import barrier, is_coordinator, to_host
from funcnn.scale.placement import place_global
from funcnn.train import checkpoint

__all__ = ["CoordinatedCheckpointManager", "restore_checkpoint", "save_checkpoint"]


def save_checkpoint(path: str | os.PathLike, tree: Any, *, metadata: dict | None = None) -> Path:
    """Every process calls this; process 0 alone writes `path` (atomically, see
    `funcnn.train.checkpoint.save`), and all return once the file is complete.

    The arrays are gathered to full host copies first, so the file holds the global tree and
    restores under any process count or sharding (`restore_checkpoint`).
    """
    host = to_host(tree)
    path = Path(path)
    if is_coordinator():
        checkpoint.save(path, host, metadata=metadata)
    barrier(f"funcnn.save_checkpoint {path}")  # nobody reads it before process 0 renamed it
    return path


class CoordinatedCheckpointManager(checkpoint.CheckpointManager):
    """`checkpoint.CheckpointManager` for a process group: every process calls `save`; the
    state is gathered to full host arrays, process 0 alone writes (atomically) and prunes,
    and all return once the file is on disk. Reading (`restore_latest`) is every process's
    own, so the directory must be on a filesystem they share. Single-process it is exactly
    `funcnn.train.checkpoint.CheckpointManager`.
    """

    def save(self, step: int, tree: Any, *, metadata: dict | None = None) -> Path:
        """Write the checkpoint for `step` from process 0; a barrier for the whole group."""
        host = to_host(tree)
        path = self.path_for(step)
        if is_coordinator():
            path = super().save(step, host, metadata=metadata)
        barrier(f"funcnn.CoordinatedCheckpointManager.save {path}")
        return path

    def remove_all(self) -> int:
        """Delete every checkpoint in the directory (process 0), then wait for it; the count."""
        # Everyone lists the folder before anyone deletes from it, so all agree on the count.
        barrier(f"funcnn.CoordinatedCheckpointManager.list {self.directory}")
        steps = self.steps()
        barrier(f"funcnn.CoordinatedCheckpointManager.listed {self.directory}")
        if is_coordinator():
            for step in steps:
                self.path_for(step).unlink(missing_ok=True)
        barrier(f"funcnn.CoordinatedCheckpointManager.remove_all {self.directory}")
        return len(steps)


def restore_checkpoint(path: str | os.PathLike, like: Any, shardings: Any) -> Any:
    """Read a checkpoint (validated against `like`) and place it with `shardings` (one
    `Sharding` or a tree of them) — under whatever process count runs now. Every process
    reads the file, so it must be on a filesystem they share."""
    # Shapes and dtypes only: `like` may span processes, and validating needs no values.
    spec = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(np.shape(leaf), leaf.dtype), like)
    return place_global(checkpoint.restore(path, like=spec), shardings)
