"""Scale: running the same model and step on many devices and processes.

Everything here is placement or process plumbing; the model and the training step do not
change. `funcnn.train` uses this package (fit's `mesh=`); nothing here imports
`funcnn.train`.

    mesh       one constructor, `make_mesh(n)` or `make_mesh(n, model=k)`, and the two axis
               names DATA_AXIS = "data", MODEL_AXIS = "model"
    placement  shardings for data parallelism: shard_batch, replicate, shard_opt_state,
               place_local (one process) and place_global (any number of processes)
    sharding   sharding rules: FSDP (ZeRO-3) and Megatron-style tensor parallelism
    distributed  multi-process runs on jax.distributed (initialize_from_env, global_batch)
    launch     `python -m funcnn.scale.launch --processes N -- script.py …`
    xla        XLA switches (multi-output loop fusion on XLA:CPU)
    precision  mixed-precision policies (float32 master weights, bfloat16 compute)
"""

from funcnn.scale import distributed, launch, mesh, placement, precision, sharding, xla
from funcnn.scale.mesh import DATA_AXIS, MODEL_AXIS, make_mesh, simulate_cpu_devices
from funcnn.scale.placement import (
    batch_mesh,
    constrain_batches,
    data_sharding,
    place_global,
    place_local,
    replicate,
    replicated_sharding,
    shard_batch,
    shard_opt_state,
)
from funcnn.scale.sharding import (
    TRANSFORMER_RULES,
    Rule,
    bytes_per_device,
    fsdp_spec,
    fsdp_state_shardings,
    path_string,
    rule_shardings,
)

__all__ = [
    "DATA_AXIS",
    "MODEL_AXIS",
    "TRANSFORMER_RULES",
    "Rule",
    "batch_mesh",
    "bytes_per_device",
    "constrain_batches",
    "data_sharding",
    "distributed",
    "fsdp_spec",
    "fsdp_state_shardings",
    "launch",
    "make_mesh",
    "mesh",
    "path_string",
    "place_global",
    "place_local",
    "placement",
    "precision",
    "replicate",
    "replicated_sharding",
    "rule_shardings",
    "shard_batch",
    "shard_opt_state",
    "sharding",
    "simulate_cpu_devices",
    "xla",
]
