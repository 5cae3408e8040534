"""funcnn — a pure-JAX functional neural-network library where every equation can be checked.

Networks are pure functions over parameter pytrees (nested dicts of arrays), gradients
come from `jax.grad`, and the optimizers are hand-written state transformations.

`import funcnn` makes the whole library reachable — `funcnn.nn.dense`, `funcnn.optim.adamw`,
`funcnn.train.fit`, … The studies built on the library live in `funcnn.lab` and are imported
on their own (`from funcnn.lab import experiments`): nothing in the library imports them.

    the math      activations, initializers, losses, params, sampling
                  nn/         layers, one family per module, and whole models
                  optim/      stages, aliases (each optimizer a chain of stages), schedules
                  reference/  float64 NumPy transcriptions of all of it (no JAX)
                  datasets/   generated tasks and loaders for real data
    train/        TrainState and the step, data order, fit, evaluate, objectives,
                  checkpoint, resume
    scale/        mesh, placement, sharding rules, multi-process (`python -m
                  funcnn.scale.launch`), XLA switches, mixed precision
    verify/       the optimizer configurations held against funcnn.reference
    lab/          studies built on all of the above (scripts call into it)

Arrows point one way: `lab` → `verify`, `train` → `scale` → the math; `optim` never
imports `reference` (only `verify` pairs them); nothing in the library imports `lab`.

Fast by default: importing funcnn adds XLA:CPU's multi-output fusion option to ``XLA_FLAGS``
before anything starts JAX's backend, so AdamW's update runs as one loop per leaf on CPU with
no setup (`funcnn.scale.xla`; opt out with ``FUNCNN_CPU_FUSION=0``). Import funcnn before
your first JAX computation: if the backend already started, the option cannot take effect
and the optimizers warn once and use the textbook form.
"""

from funcnn import _cpu_fusion

_cpu_fusion.enable_at_import()  # before any submodule imports JAX (see funcnn._cpu_fusion)

from funcnn import (  # noqa: E402  (after the XLA_FLAGS edit above, on purpose)
    activations,
    datasets,
    initializers,
    losses,
    nn,
    optim,
    params,
    reference,
    sampling,
    scale,
    train,
    verify,
)

__version__ = "0.1.0"

__all__ = [
    "activations",
    "datasets",
    "initializers",
    "losses",
    "nn",
    "optim",
    "params",
    "reference",
    "sampling",
    "scale",
    "train",
    "verify",
]
