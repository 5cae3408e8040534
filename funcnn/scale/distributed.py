"""Multi-process training on JAX's own distributed runtime (`jax.distributed`).

Every process runs the same script. `funcnn.scale.launch` (one machine) or a cluster scheduler
(several machines) starts them with three environment variables; each process then calls

    distributed.initialize_from_env()          # jax.distributed.initialize(coordinator, P, p)
    mesh  = scale.make_mesh()                  # all P processes' devices along "data"
    rows  = distributed.process_rows(B)        # this process's rows of the global batch
    batch = distributed.global_batch((x[rows], y[rows]), mesh)   # one (B, …) global array
    state = scale.replicate(state, mesh)
    state, metrics = step(state, batch)        # the same train.make_step step
    train.coordinated.save_checkpoint(path, state)  # every process calls it; process 0 writes

Process p holds rows p·B/P … (p+1)·B/P − 1 of each global batch of B rows: `make_mesh()`
orders devices by process, and `jax.make_array_from_process_local_data` places a process's
local rows on its own devices in that order. XLA's all-reduce then sums the per-process
gradient sums across processes (gloo over TCP on CPU, NCCL on GPU, ICI on TPU), so the
result equals one process training on the whole batch up to float32 summation order.

Environment (set by `funcnn.scale.launch`; set them yourself on a cluster):

    FUNCNN_COORDINATOR     host:port of process 0's coordination service, e.g. 10.0.0.1:1234
    FUNCNN_NUM_PROCESSES   P, the number of processes
    FUNCNN_PROCESS_ID      p in 0 … P−1 (process 0 hosts the coordinator)

Without them `initialize_from_env` does nothing and returns False: the script runs as a
single process, unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from funcnn._validation import check_positive_int
from funcnn.scale import placement

__all__ = [
    "ENV_COORDINATOR",
    "ENV_NUM_PROCESSES",
    "ENV_PROCESS_ID",
    "barrier",
    "global_batch",
    "initialize_from_env",
    "is_coordinator",
    "process_rows",
    "to_host",
]

ENV_COORDINATOR = "FUNCNN_COORDINATOR"
"""Environment variable holding the coordinator's `host:port` (process 0 listens there)."""
ENV_NUM_PROCESSES = "FUNCNN_NUM_PROCESSES"
"""Environment variable holding the number of processes in the group."""
ENV_PROCESS_ID = "FUNCNN_PROCESS_ID"
"""Environment variable holding this process's index, 0 … num_processes − 1."""


def _env_int(name: str, environ: Mapping[str, str]) -> int:
    raw = environ.get(name)
    try:
        return int("" if raw is None else raw)  # a missing variable fails like an empty one
    except (TypeError, ValueError):
        raise ValueError(
            f"environment variable {name}={raw!r} must be an integer (set by funcnn.scale.launch, "
            f"or by you on a cluster together with {ENV_COORDINATOR})."
        ) from None


def initialize_from_env(*, timeout: int = 60, environ: Mapping[str, str] | None = None) -> bool:
    """Join the process group described by FUNCNN_* variables; False if they are absent.

    Calls `jax.distributed.initialize(coordinator, num_processes, process_id,
    initialization_timeout=timeout)`. On CPU it first selects gloo as the cross-process
    collectives implementation (XLA:CPU has none by default, so a cross-process all-reduce
    would fail). Must run before anything touches a JAX device or array. `timeout` (seconds)
    bounds the wait for every process to join: a peer that never starts is an error, not a
    hang.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    coordinator = env.get(ENV_COORDINATOR)
    if not coordinator:
        return False
    check_positive_int(timeout, "timeout")
    num_processes = _env_int(ENV_NUM_PROCESSES, env)
    process_id = _env_int(ENV_PROCESS_ID, env)
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(
            f"{ENV_PROCESS_ID}={process_id} must lie in 0 … {ENV_NUM_PROCESSES}−1 = "
            f"{num_processes - 1}."
        )
    # Read the platform from config/env, not jax.devices(): that would start the backend
    # before initialize, which JAX forbids.
    # jax.config creates its option attributes at run time, so its stub lacks jax_platforms.
    configured: str | None = jax.config.jax_platforms  # type: ignore[attr-defined]
    platforms = (configured or env.get("JAX_PLATFORMS", "") or "").lower()
    if platforms in ("", "cpu") or platforms.startswith("cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout,
    )
    return True


def is_coordinator() -> bool:
    """True in process 0 — the one that writes checkpoints, logs and plots."""
    return jax.process_index() == 0


def process_rows(global_batch_size: int) -> slice:
    """The rows of a (B, …) global batch this process feeds: p·B/P … (p+1)·B/P − 1.

    B must be divisible by the number of processes P (and, for `global_batch`, by the
    number of devices).
    """
    check_positive_int(global_batch_size, "global_batch_size")
    count, index = jax.process_count(), jax.process_index()
    if global_batch_size % count:
        raise ValueError(
            f"global_batch_size={global_batch_size} must be divisible by the {count} processes."
        )
    per = global_batch_size // count
    return slice(index * per, (index + 1) * per)


def global_batch(local: Any, mesh: Mesh) -> Any:
    """One global array per leaf from each process's local rows (B/P, …) → (B, …) split on "data".

    Thin wrapper of `jax.make_array_from_process_local_data` with `placement.data_sharding`.
    Single-process it is `placement.shard_batch`.
    """
    sharding = placement.data_sharding(mesh)
    return jax.tree.map(
        lambda leaf: jax.make_array_from_process_local_data(sharding, np.asarray(leaf)), local
    )


def to_host(tree: Any) -> Any:
    """Every leaf as a full NumPy array in every process (gathering shards across processes).

    A collective when an array spans processes: every process must call it.
    """

    def gather(leaf: Any) -> Any:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(leaf)
            return jax.random.wrap_key_data(gather(jax.random.key_data(leaf)), impl=impl)
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(gather, tree)


def barrier(name: str) -> None:
    """Wait until every process has reached the barrier called `name` (a no-op alone)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
