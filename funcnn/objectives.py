"""Moved: Loss and metric builders for fit and evaluate now live in `funcnn.train.objectives`.

`funcnn.objectives` re-exports the same objects for one version, so old imports keep working; import
`funcnn.train.objectives` instead. This module will be removed in the next version.
"""

from funcnn.train.objectives import *  # noqa: F403
from funcnn.train.objectives import __all__  # noqa: F401
