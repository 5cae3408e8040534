"""Layers: each a `Layer(init, apply, name)` over a readable parameter dict.

Modules hold one family each; this package re-exports the public names.
"""

from funcnn.nn.core import (
    Layer,
    activation,
    flatten,
    parallel,
    residual,
    serial,
)

__all__ = [
    "Layer",
    "activation",
    "flatten",
    "parallel",
    "residual",
    "serial",
]
