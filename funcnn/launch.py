"""Moved: the process launcher now lives in `funcnn.scale.launch`.

`python -m funcnn.launch …` and `funcnn.launch` keep working for one version; use
`python -m funcnn.scale.launch …`. This module will be removed in the next version.
"""

import sys

from funcnn.scale.launch import *  # noqa: F403
from funcnn.scale.launch import __all__, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
