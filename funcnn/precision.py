"""Moved: Mixed-precision policies now live in `funcnn.scale.precision`.

`funcnn.precision` re-exports the same objects for one version, so old imports keep working; import
`funcnn.scale.precision` instead. This module will be removed in the next version.
"""

from funcnn.scale.precision import *  # noqa: F403
from funcnn.scale.precision import __all__  # noqa: F401
