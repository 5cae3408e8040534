"""Moved: XLA switches (multi-output fusion on XLA:CPU) now live in `funcnn.scale.xla`.

`funcnn.fusion` re-exports the same objects for one version, so old imports keep working; import
`funcnn.scale.xla` instead. This module will be removed in the next version.
"""

from funcnn.scale.xla import *  # noqa: F403
from funcnn.scale.xla import __all__  # noqa: F401
