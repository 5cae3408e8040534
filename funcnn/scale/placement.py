"""Placement: which device holds which part of each array, as `NamedSharding`s on a mesh.

Data parallelism is placement only; the training step itself does not change:

    mesh  = scale.make_mesh(4)                 # devices along the "data" axis
    state = replicate(state, mesh)             # θ and optimizer state: a full copy per device
    batch = shard_batch(batch, mesh)           # (B, …) split into B/4 rows per device
    state, metrics = step(state, batch)        # the same `train.make_step` step

`jax.jit` sees a batch split along its leading axis and replicated params, so XLA runs each
device's share of the forward/backward pass and inserts the all-reduce that turns the
per-device gradient sums into the full-batch mean gradient. Results equal single-device
training up to float32 summation order. `train.fit` does the same when its data is sharded
with `shard_batch`, or when it is given `mesh=`: every fused step's minibatch is constrained
to the "data" axis.

`shard_opt_state` optionally splits optimizer-state leaves along the axis too (ZeRO stage 1
style): each device stores 1/n of every moment buffer whose leading dimension divides.

Two ways to put a tree with given shardings on devices:

    place_local(tree, shardings)    `jax.device_put`: one process (device arrays are resharded
                                    without a round trip through the host)
    place_global(tree, shardings)   from a host tree identical in every process, each process
                                    building only the shards its own devices hold: any number
                                    of processes (`funcnn.scale.distributed`)

Several processes or hosts: `funcnn.scale.distributed.initialize_from_env()` first in every
process (started by `python -m funcnn.scale.launch` or a cluster scheduler); `jax.devices()`
then lists all processes' devices and the same `make_mesh()` spans them. Sharded parameters
(FSDP, tensor parallelism on a 2-D mesh) live in `funcnn.scale.sharding`.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcnn.scale.mesh import DATA_AXIS

__all__ = [
    "batch_mesh",
    "constrain_batches",
    "data_sharding",
    "place_global",
    "place_local",
    "replicate",
    "replicated_sharding",
    "shard_batch",
    "shard_opt_state",
]


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Split an array's leading (batch) axis along "data"; other axes stay whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy of the array on every device of `mesh`."""
    return NamedSharding(mesh, PartitionSpec())


def _mesh_size(mesh: Mesh) -> int:
    return int(mesh.shape[DATA_AXIS])


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Place every leaf (B, …) of `batch` with B/n rows on each of the mesh's n devices.

    Raises ValueError if a leaf is a scalar or B is not divisible by n (pad or drop the
    remainder first: uneven shards would silently weight devices differently).
    """
    n = _mesh_size(mesh)
    for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
        shape = np.shape(leaf)
        if not shape or shape[0] % n:
            raise ValueError(
                f"shard_batch: leaf {jax.tree_util.keystr(path)} has shape {shape}; its leading "
                f"(batch) axis must be divisible by the {n} devices of the mesh."
            )
    return jax.device_put(batch, data_sharding(mesh))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """A full copy of every leaf of `tree` (params, optimizer state, TrainState) per device.

    On a mesh spanning several processes (`funcnn.scale.distributed`) every process must pass the
    same values; each places only the copies its own devices hold.
    """
    sharding = replicated_sharding(mesh)
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return place_global(tree, sharding)


def place_global(tree: Any, shardings: Any) -> Any:
    """Put a host tree (identical in every process) on devices with the given sharding(s).

    `shardings` is one `Sharding` for every leaf or a tree of them. Each process supplies
    only the shards its own devices hold (`jax.make_array_from_callback`), so this works for
    any process count, and for replicated, data-sharded or FSDP layouts alike. PRNG key
    arrays keep their implementation.
    """

    def put(leaf: Any, sharding: jax.sharding.Sharding) -> jax.Array:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            data = put(jax.random.key_data(leaf), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    if not isinstance(shardings, jax.sharding.Sharding):
        return jax.tree.map(put, tree, shardings)
    return jax.tree.map(lambda leaf: put(leaf, shardings), tree)


def place_local(tree: Any, shardings: Any) -> Any:
    """`jax.device_put` of every leaf with its sharding (one `Sharding` or a tree of them).

    Single process only: every device of the shardings must belong to this process. For a
    mesh spanning several processes use `place_global`, which builds each process's shards.
    """
    return jax.device_put(tree, shardings)


def shard_opt_state(opt_state: Any, mesh: Mesh) -> Any:
    """Optimizer state with each leaf of leading dimension divisible by n split along "data".

    Scalars (step counts, learning rates) and leaves whose first dimension does not divide
    stay replicated. The update math is unchanged; XLA gathers what each step needs. Saves
    (1 − 1/n) of the moment memory per device.
    """
    n = _mesh_size(mesh)

    def put(leaf: Any) -> Any:
        shape = np.shape(leaf)
        split = len(shape) >= 1 and shape[0] % n == 0
        return jax.device_put(leaf, data_sharding(mesh) if split else replicated_sharding(mesh))

    return jax.tree.map(put, opt_state)


def batch_mesh(data: Any) -> Mesh | None:
    """The mesh whose "data" axis splits the leading axis of every leaf of `data`, else None.

    `train.fit` uses this to keep its fused minibatches sharded the same way.
    """
    meshes: set[Mesh] = set()
    for leaf in jax.tree.leaves(data):
        sharding = getattr(leaf, "sharding", None)
        if not isinstance(sharding, NamedSharding) or not isinstance(sharding.mesh, Mesh):
            return None  # unsharded, or an abstract mesh (no devices: nothing to place on)
        spec = tuple(sharding.spec)
        if not spec or spec[0] != DATA_AXIS:
            return None
        meshes.add(sharding.mesh)
    return meshes.pop() if len(meshes) == 1 else None


def constrain_batches(batches: Any, mesh: Mesh | None, *, batch_axis: int = 0) -> Any:
    """Inside jit: require `batch_axis` of every leaf to be split along "data" (no-op if None).

    For stacked minibatches (steps, B, …) pass batch_axis=1.
    """
    if mesh is None:
        return batches
    spec = PartitionSpec(*([None] * batch_axis), DATA_AXIS)
    return jax.lax.with_sharding_constraint(batches, NamedSharding(mesh, spec))
