"""funcnn — a pure-JAX functional neural-network library where every equation can be checked.

Networks are pure functions over parameter pytrees (nested dicts of arrays), gradients
come from `jax.grad`, and the optimizers are hand-written state transformations.

`import funcnn` makes the whole library reachable — `funcnn.nn.dense`, `funcnn.optim.adamw`,
`funcnn.train.fit`, … The studies built on the library live in `funcnn.lab` and are imported
on their own (`from funcnn.lab import experiments`): nothing in the library imports them.

    the math      activations, initializers, losses, params, sampling
                  nn/         layers, one family per module
                  optim/      stages, aliases (each optimizer a chain of stages), schedules
                  reference/  float64 NumPy transcriptions of all of it (no JAX)
                  datasets/   generated tasks and loaders for real data
    models/       whole models built from nn: the configured decoder (GPT-2, Llama, nanoGPT),
                  generation with a KV cache, Hugging Face weights in and out
    train/        TrainState and the step, data order, fit, evaluate, objectives,
                  checkpoint, resume
    scale/        mesh, placement, sharding rules, multi-process (`python -m
                  funcnn.scale.launch`), XLA switches, mixed precision
    verify/       the optimizer configurations held against funcnn.reference
    lab/          studies built on all of the above (scripts call into it)

Arrows point one way: `lab` → `verify`, `train` → `scale` → the math, `models` → `nn`; `optim`
never imports `reference` (only `verify` pairs them); nothing in the library imports `lab`.

XLA:CPU's multi-output fusion (AdamW's update as one loop per leaf) is opt-in: start Python
with ``FUNCNN_CPU_FUSION=1`` (importing funcnn then adds the option to ``XLA_FLAGS`` before
anything starts JAX's backend) or call `funcnn.scale.xla.enable_cpu_multi_output_fusion()`
first. It is not on by default because jaxlib 0.10's XLA:CPU aborts the whole process while
compiling sibling scatters under it (`a.at[i].set(u), b.at[i].set(w)`, a KV-cache write),
and importing a library must never make valid JAX code crash (`funcnn._cpu_fusion`).
"""

from funcnn import _cpu_fusion

_cpu_fusion.enable_at_import()  # FUNCNN_CPU_FUSION=1 only; before any submodule imports JAX

from funcnn import (  # noqa: E402  (after the XLA_FLAGS edit above, on purpose)
    activations,
    datasets,
    initializers,
    losses,
    models,
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
    "models",
    "nn",
    "optim",
    "params",
    "reference",
    "sampling",
    "scale",
    "train",
    "verify",
]
