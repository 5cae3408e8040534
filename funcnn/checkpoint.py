"""Moved: Atomic, checksummed checkpoints now live in `funcnn.train.checkpoint`.

`funcnn.checkpoint` re-exports the same objects for one version, so old imports keep working; import
`funcnn.train.checkpoint` instead. This module will be removed in the next version.
"""

from funcnn.train.checkpoint import *  # noqa: F403
from funcnn.train.checkpoint import __all__  # noqa: F401
