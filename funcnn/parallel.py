"""Data parallelism on JAX's SPMD machinery: one Mesh, a `data` axis, NamedShardings.

The whole recipe is placement; the training step itself does not change:

    mesh  = make_mesh(4)                       # devices along the "data" axis
    state = replicate(state, mesh)             # θ and optimizer state: a full copy per device
    batch = shard_batch(batch, mesh)           # (B, …) split into B/4 rows per device
    state, metrics = step(state, batch)        # the same `train.make_step` step

`jax.jit` sees a batch split along its leading axis and replicated params, so XLA runs each
device's share of the forward/backward pass and inserts the all-reduce that turns the
per-device gradient sums into the full-batch mean gradient. Results equal single-device
training up to float32 summation order. `fit` does the same when its data is sharded with
`shard_batch`: every fused step's minibatch is constrained to the `data` axis.

Or, without touching the data: `with data_parallel(make_mesh(4)): train.fit(...)` replicates
the state and data and splits every fused minibatch along "data" (what
`scripts/train.py --devices 4` does).

`shard_opt_state` optionally splits optimizer-state leaves along the axis too (ZeRO stage 1
style): each device stores 1/n of every moment buffer whose leading dimension divides.

Several processes or hosts: `funcnn.distributed.initialize_from_env()` first in every process
(started by `python -m funcnn.launch` or a cluster scheduler); `jax.devices()` then lists all
processes' devices and the same `make_mesh()` spans them. Each process feeds its own slice of
the global batch with `distributed.global_batch` (`jax.make_array_from_process_local_data`).
Sharded parameters (FSDP, tensor parallelism on a 2-D mesh) live in `funcnn.sharding`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcnn._validation import check_positive_int

__all__ = [
    "DATA_AXIS",
    "active_mesh",
    "batch_mesh",
    "constrain_batches",
    "data_parallel",
    "data_sharding",
    "make_mesh",
    "place",
    "replicate",
    "replicated_sharding",
    "shard_batch",
    "shard_opt_state",
    "simulate_cpu_devices",
]

DATA_AXIS = "data"


def make_mesh(devices: int | Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D `Mesh` with axis "data" over `devices`.

    devices: None → all of `jax.devices()`; an int n → the first n of them; or an explicit
    sequence of devices.
    """
    available = jax.devices()
    if devices is None:
        chosen = available
    elif isinstance(devices, int):
        check_positive_int(devices, "devices")
        if devices > len(available):
            raise ValueError(
                f"devices={devices} but only {len(available)} are available ({available}). "
                "On CPU, simulate more with XLA_FLAGS=--xla_force_host_platform_device_count=N "
                "set before JAX starts."
            )
        chosen = available[:devices]
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("devices must not be an empty sequence.")
    return Mesh(np.asarray(chosen), (DATA_AXIS,))


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

    On a mesh spanning several processes (`funcnn.distributed`) every process must pass the
    same values; each places only the copies its own devices hold.
    """
    sharding = replicated_sharding(mesh)
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return place(tree, sharding)


def place(tree: Any, shardings: Any) -> Any:
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


def shard_opt_state(opt_state: Any, mesh: Mesh) -> Any:
    """Optimizer state with each leaf of leading dimension divisible by n split along "data".

    Scalars (step counts, learning rates) and leaves whose first dimension does not divide
    stay replicated. The update math is unchanged; XLA gathers what each step needs. Saves
    (1 − 1/n) of the moment memory per device.
    """
    n = _mesh_size(mesh)

    def place(leaf: Any) -> Any:
        shape = np.shape(leaf)
        split = len(shape) >= 1 and shape[0] % n == 0
        return jax.device_put(leaf, data_sharding(mesh) if split else replicated_sharding(mesh))

    return jax.tree.map(place, opt_state)


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


_ACTIVE_MESHES: list[Mesh] = []


@contextlib.contextmanager
def data_parallel(mesh: Mesh) -> Iterator[Mesh]:
    """Within the block, `train.fit` runs data-parallel over `mesh`: it replicates the state
    and the data and splits every minibatch along "data" (batch_size must divide evenly)."""
    _ACTIVE_MESHES.append(mesh)
    try:
        yield mesh
    finally:
        _ACTIVE_MESHES.pop()


def active_mesh() -> Mesh | None:
    """The mesh of the innermost `data_parallel` block, or None outside one."""
    return _ACTIVE_MESHES[-1] if _ACTIVE_MESHES else None


def simulate_cpu_devices(n: int) -> None:
    """Ask XLA for n host (CPU) devices, via XLA_FLAGS, before JAX starts its backend.

    For trying data parallelism on one machine; real accelerators are listed as they are.
    Has no effect once JAX has created its backends (the first array or compilation), so
    call it first thing.
    """
    check_positive_int(n, "n")
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
