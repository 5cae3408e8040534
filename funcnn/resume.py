"""Moved: Checkpoint callbacks, signals and exact resume now live in `funcnn.train.resume`.

`funcnn.resume` re-exports the same objects for one version, so old imports keep working; import
`funcnn.train.resume` instead. This module will be removed in the next version.
"""

from funcnn.train.resume import *  # noqa: F403
from funcnn.train.resume import __all__  # noqa: F401
