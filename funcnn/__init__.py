"""funcnn — a pure-JAX functional neural-network library where every equation can be checked.

Networks are pure functions over parameter pytrees (nested dicts of arrays), gradients
come from `jax.grad`, and the optimizers are hand-written state transformations.

`import funcnn` makes the whole library reachable — `funcnn.nn.dense`, `funcnn.optim.adamw`,
`funcnn.losses.cross_entropy`, … The studies built on the library live in `funcnn.lab` and
are imported on their own (`from funcnn.lab import experiments`): nothing in the library
imports them.

    floor 1  activations, reference                      (reference: float64 NumPy, no JAX)
    floor 2  initializers, losses, optim                 (optim: stages, aliases, schedules)
    floor 3  nn, params, precision, datasets, sampling   (layers and models over param dicts)
    floor 4  models (the configured decoder, generation with a KV cache, HF weights in/out)
    floor 4  train, objectives, checkpoint, resume, parallel, distributed, sharding
                                                      (`python -m funcnn.launch` starts processes)
    floor 5  lab                                          (studies; scripts call into it)
"""

from funcnn import (
    activations,
    checkpoint,
    datasets,
    distributed,
    initializers,
    losses,
    models,
    nn,
    objectives,
    optim,
    parallel,
    params,
    precision,
    reference,
    resume,
    sampling,
    sharding,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "activations",
    "checkpoint",
    "datasets",
    "distributed",
    "initializers",
    "losses",
    "models",
    "nn",
    "objectives",
    "optim",
    "parallel",
    "params",
    "precision",
    "reference",
    "resume",
    "sampling",
    "sharding",
    "train",
]
