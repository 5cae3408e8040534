"""Moved: sharding rules (FSDP, tensor parallelism) now live in `funcnn.scale.sharding`.

`funcnn.sharding` re-exports the same objects for one version, so old imports keep working.
Where the rest went: `MODEL_AXIS` → `funcnn.scale.MODEL_AXIS`; `make_mesh_2d(data=d,
model=m)` → `funcnn.scale.make_mesh(d * m, model=m)`; `make_sharded_step` →
`funcnn.train.make_sharded_step`; `place` → `funcnn.scale.place_local`. This module will be
removed in the next version.
"""

from jax.sharding import Mesh

from funcnn.scale.mesh import MODEL_AXIS, make_mesh
from funcnn.scale.placement import place_local as place
from funcnn.scale.sharding import *  # noqa: F403
from funcnn.scale.sharding import __all__ as _moved
from funcnn.train import make_sharded_step

__all__ = [*_moved, "MODEL_AXIS", "make_mesh_2d", "make_sharded_step", "place"]


def make_mesh_2d(*, data: int, model: int) -> Mesh:
    """`funcnn.scale.make_mesh(data * model, model=model)`: a (data × model) mesh."""
    return make_mesh(data * model, model=model)
