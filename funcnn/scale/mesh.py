"""The device mesh: one constructor, two named axes.

A `jax.sharding.Mesh` arranges devices in a grid whose axes have names; a `PartitionSpec`
then says which array axis is split over which mesh axis. funcnn uses two names, defined
here and nowhere else:

    DATA_AXIS  = "data"    the batch is split along it (data parallelism, FSDP)
    MODEL_AXIS = "model"   weights are split along it (tensor parallelism)

`make_mesh(n)` lays n devices along "data" (a 1-D mesh); `make_mesh(n, model=k)` makes an
(n/k × k) grid ("data", "model") in which k consecutive devices form one "model" group.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from funcnn._validation import check_positive_int

__all__ = ["DATA_AXIS", "MODEL_AXIS", "make_mesh", "simulate_cpu_devices"]

DATA_AXIS = "data"
"""Name of the mesh axis that the batch (and, under FSDP, every large leaf) is split over."""
MODEL_AXIS = "model"
"""Name of the mesh axis that tensor parallelism splits weights over."""


def make_mesh(
    devices: int | Sequence[jax.Device] | None = None, *, model: int | None = None
) -> Mesh:
    """A mesh over `devices`: 1-D ("data",), or 2-D ("data", "model") when `model` is given.

    devices: None → all of `jax.devices()`; an int n → the first n of them; or an explicit
             sequence of devices.
    model:   None → every device along "data", mesh shape (n,). An int k → shape (n/k, k):
             row i holds devices i·k … i·k + k − 1, so the k devices of one "model" group are
             adjacent (on GPUs/TPUs: the fast links) and the per-layer all-reduces of tensor
             parallelism stay inside a group. n must be divisible by k.

    Raises ValueError when more devices are asked for than exist, or k does not divide n.
    """
    available = jax.devices()
    if devices is None:
        chosen = list(available)
    elif isinstance(devices, int):
        check_positive_int(devices, "devices")
        if devices > len(available):
            raise ValueError(
                f"devices={devices} but only {len(available)} are available ({available}). "
                "On CPU, simulate more with XLA_FLAGS=--xla_force_host_platform_device_count=N "
                "set before JAX starts (see simulate_cpu_devices)."
            )
        chosen = list(available[:devices])
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("devices must not be an empty sequence.")
    if model is None:
        return Mesh(np.asarray(chosen), (DATA_AXIS,))
    check_positive_int(model, "model")
    if len(chosen) % model:
        raise ValueError(
            f"model={model} must divide the number of devices ({len(chosen)}): the mesh is "
            "(devices / model) × model."
        )
    grid = np.asarray(chosen).reshape(len(chosen) // model, model)
    return Mesh(grid, (DATA_AXIS, MODEL_AXIS))


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
