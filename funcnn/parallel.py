"""Moved: data-parallel placement now lives in `funcnn.scale` (`scale.mesh`, `scale.placement`).

`funcnn.parallel` re-exports the same objects for one version, so old imports keep working;
import `funcnn.scale` instead. `place` is `funcnn.scale.place_global`. `data_parallel` and
`active_mesh` are gone: a module-level stack of meshes silently changed what `fit` did, so
the mesh is now an argument, `train.fit(..., mesh=mesh)`. This module will be removed in the
next version.
"""

from funcnn.scale.mesh import DATA_AXIS, make_mesh, simulate_cpu_devices
from funcnn.scale.placement import (
    batch_mesh,
    constrain_batches,
    data_sharding,
    replicate,
    replicated_sharding,
    shard_batch,
    shard_opt_state,
)
from funcnn.scale.placement import place_global as place

__all__ = [
    "DATA_AXIS",
    "batch_mesh",
    "constrain_batches",
    "data_sharding",
    "make_mesh",
    "place",
    "replicate",
    "replicated_sharding",
    "shard_batch",
    "shard_opt_state",
    "simulate_cpu_devices",
]
