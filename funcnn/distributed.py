"""Moved: multi-process runs now live in `funcnn.scale.distributed`.

`funcnn.distributed` re-exports the same objects for one version, so old imports keep
working. Where the rest went: `place` → `funcnn.scale.place_global`, `replicate` →
`funcnn.scale.replicate`, and the checkpoints of a process group (`save_checkpoint`,
`restore_checkpoint`, `CoordinatedCheckpointManager`) → `funcnn.train.coordinated`. This
module will be removed in the next version.
"""

from funcnn.scale.distributed import *  # noqa: F403
from funcnn.scale.distributed import __all__ as _moved
from funcnn.scale.placement import place_global as place
from funcnn.scale.placement import replicate
from funcnn.train.coordinated import (
    CoordinatedCheckpointManager,
    restore_checkpoint,
    save_checkpoint,
)

__all__ = [
    *_moved,
    "CoordinatedCheckpointManager",
    "place",
    "replicate",
    "restore_checkpoint",
    "save_checkpoint",
]
