"""Sharded parameters: FSDP / ZeRO-3 along "data", and tensor parallelism along "model".

Both are placement only. The model and the step are unchanged; each leaf of the TrainState
gets a `NamedSharding` and `funcnn.train.make_sharded_step` compiles the step with those
shardings as its input and output layout, so XLA's SPMD partitioner inserts the collectives:

    FSDP (ZeRO-3)   mesh = scale.make_mesh(4)
                    shardings = fsdp_state_shardings(state, mesh)
                    every param and optimizer-state leaf split along "data" on its largest
                    divisible axis: XLA all-gathers a weight before its matmul and
                    reduce-scatters its gradient, so each device stores ≈ 1/n of θ, m, v.

    tensor parallel mesh = scale.make_mesh(8, model=4)          # (data=2) × (model=4)
                    shardings = rule_shardings(state, mesh, TRANSFORMER_RULES)
                    attention: W_q, W_k, W_v split by columns (heads) over "model", W_o by
                    rows; MLP: W₁ by columns, W₂ by rows (Megatron-LM, Shoeybi et al. 2019).
                    Each block's forward then needs one all-reduce over "model" after the
                    attention and one after the MLP; the batch is split over "data".

    step = train.make_sharded_step(loss_fn, optimizer, shardings, scale.data_sharding(mesh))
    state, metrics = step(scale.place_local(state, shardings), batch)

Rules are data: a sequence of `(regex, PartitionSpec)`; the first pattern that `re.search`es
a leaf's path string (`"params/block_0/attention/q/w"`, `"opt_state/0/mu/block_0/…/w"`) gives
its spec, so optimizer moments follow their parameter. Unmatched leaves are replicated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcnn.params import path_string  # the one key-path spelling, re-exported here
from funcnn.scale.mesh import DATA_AXIS, MODEL_AXIS

__all__ = [
    "TRANSFORMER_RULES",
    "Rule",
    "bytes_per_device",
    "fsdp_spec",
    "fsdp_state_shardings",
    "path_string",
    "rule_shardings",
]

Rule = tuple[str, PartitionSpec]
"""A sharding rule: `(regex over the param path, PartitionSpec)`; the first match wins."""

_D, _M = DATA_AXIS, MODEL_AXIS
# Megatron-style tensor parallelism for `nn.transformer_block` / `transformer_lm` params.
# Column split (…, out) over "model" → each device computes its own output columns (for
# attention: whole heads, since head j owns columns j·dh:(j+1)·dh); row split (in, …) of
# the following layer consumes those columns and ends in one all-reduce of partial sums.
TRANSFORMER_RULES: tuple[Rule, ...] = (
    (r"attention/[qkv]/w$", PartitionSpec(None, _M)),
    (r"attention/[qkv]/b$", PartitionSpec(_M)),
    (r"attention/o/w$", PartitionSpec(_M, None)),
    (r"mlp/dense_0/w$", PartitionSpec(None, _M)),
    (r"mlp/dense_0/b$", PartitionSpec(_M)),
    (r"mlp/dense_[1-9][0-9]*/w$", PartitionSpec(_M, None)),  # mlp: dense_0, gelu, dense_2
)
"""Megatron-style rules for transformer params: q/k/v and the MLP's first dense split by
columns, the attention output and the MLP's last dense by rows; everything else replicated."""


def fsdp_spec(shape: Sequence[int], size: int, *, min_size: int = 1024) -> PartitionSpec:
    """The FSDP spec of one leaf: split its largest axis that `size` divides along "data".

    Leaves with fewer than `min_size` elements (biases, norms, step counters) and leaves
    with no divisible axis stay replicated: splitting them saves little memory and costs a
    collective each. Ties go to the first (leading) axis.
    """
    shape = tuple(int(d) for d in shape)
    if int(np.prod(shape, dtype=np.int64)) < min_size:
        return PartitionSpec()
    divisible = [axis for axis, d in enumerate(shape) if d % size == 0 and d >= size]
    if not divisible:
        return PartitionSpec()
    axis = max(divisible, key=lambda a: (shape[a], -a))
    return PartitionSpec(*([None] * axis), DATA_AXIS)


def _is_key(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def fsdp_state_shardings(state: Any, mesh: Mesh, *, min_size: int = 1024) -> Any:
    """A tree of NamedShardings for `state` (a TrainState or any pytree): `fsdp_spec` for
    each array leaf over the mesh's "data" axis, replicated for PRNG keys."""
    size = int(mesh.shape[DATA_AXIS])

    def spec(leaf: Any) -> NamedSharding:
        if _is_key(leaf):
            return NamedSharding(mesh, PartitionSpec())
        return NamedSharding(mesh, fsdp_spec(np.shape(leaf), size, min_size=min_size))

    return jax.tree.map(spec, state)


def rule_shardings(tree: Any, mesh: Mesh, rules: Sequence[Rule]) -> Any:
    """A tree of NamedShardings from path rules (first match wins; unmatched: replicated).

    Raises ValueError naming the leaf when a rule does not fit it: a spec longer than the
    leaf's rank, or a split axis not divisible by its mesh axis size.
    """
    compiled = [(re.compile(pattern), spec) for pattern, spec in rules]

    def spec_for(path: tuple[Any, ...], leaf: Any) -> NamedSharding:
        name = path_string(path)
        shape = np.shape(leaf)
        for pattern, spec in compiled:
            if not pattern.search(name) or _is_key(leaf):
                continue
            if len(spec) > len(shape):
                raise ValueError(
                    f"rule {pattern.pattern!r} → {spec} does not fit leaf {name!r} of shape "
                    f"{shape}: the spec has more axes than the leaf."
                )
            for dim, axes in zip(shape, spec, strict=False):
                names = (axes,) if isinstance(axes, str) else tuple(axes or ())
                parts = int(np.prod([mesh.shape[a] for a in names], dtype=np.int64))
                if dim % parts:
                    raise ValueError(
                        f"rule {pattern.pattern!r} → {spec} splits leaf {name!r} of shape "
                        f"{shape} into {parts} parts along an axis of size {dim}; choose "
                        "sizes divisible by the mesh axis (e.g. num_heads % model == 0)."
                    )
            return NamedSharding(mesh, spec)
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree_util.tree_map_with_path(spec_for, tree)


def bytes_per_device(tree: Any) -> dict[Any, int]:
    """Bytes each device holds for `tree`, summed over the leaves' addressable shards."""
    totals: dict[Any, int] = {}
    for leaf in jax.tree.leaves(tree):
        if _is_key(leaf):
            leaf = jax.random.key_data(leaf)
        for shard in leaf.addressable_shards:
            totals[shard.device] = totals.get(shard.device, 0) + int(shard.data.nbytes)
    return totals
