"""Inspecting parameter pytrees: a summary table, parameter counts, weight-decay masks,
readable leaf paths and a finiteness check.

    print(summary(params))        # one row per leaf: path, shape, dtype, count; a total
    decay_mask(params)            # {"dense_0": {"b": False, "w": True}, ...}
    path_string(key_path)         # ("dense_0", "w") → "dense_0/w"
    all_finite(state)             # no NaN/±Inf in any floating leaf (traceable)

`decay_mask` selects the leaves that weight decay should touch — matmul and embedding
weights (ndim ≥ 2), never biases or norm gains — the rule nanoGPT uses; `describe_mask`
reports what a mask decays, as nanoGPT prints it.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._validation import check_nonnegative_int

__all__ = [
    "all_finite",
    "count_params",
    "decay_mask",
    "describe_mask",
    "param_paths",
    "path_string",
    "summary",
]


def path_string(key_path: tuple[Any, ...]) -> str:
    """A `jax.tree_util` key path as "a/b/0/c": dict keys, sequence indices and NamedTuple
    field names joined by "/" (`("dense_0", "w")` → "dense_0/w"; a TrainState's
    `.params["dense_0"]["w"]` → "params/dense_0/w"). The one spelling of a leaf's path in
    funcnn: summaries, masks and sharding rules all match against it."""
    return jax.tree_util.keystr(key_path, simple=True, separator="/")


def all_finite(tree: Any) -> jax.Array:
    """⋀ over the floating leaves of `tree` of "no NaN or ±Inf" — a 0-d bool array.

    Integer, boolean and PRNG-key leaves pass (they cannot be non-finite); an empty tree is
    finite. Works under `jit` (one fused reduction) and on the host (`bool(all_finite(t))`).
    """
    checks = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def param_paths(params: Any) -> list[tuple[str, Any]]:
    """[(path, leaf)] in tree order, with readable paths like "dense_0/w"."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return [(path_string(path), leaf) for path, leaf in flat]


def count_params(params: Any) -> int:
    """Total number of scalars Σ_leaves ∏ leaf.shape."""
    return sum(math.prod(np.shape(leaf)) for leaf in jax.tree.leaves(params))


def _dtype_name(leaf: Any) -> str:
    return str(leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype)


def summary(params: Any) -> str:
    """A table with one row per leaf — path, shape, dtype, count — and a total line.

    >>> import jax
    >>> from funcnn import nn
    >>> params, _ = nn.mlp([3, 4, 2]).init(jax.random.key(0), (-1, 3))
    >>> print(summary(params))
    path       shape      dtype    count
    ------------------------------------
    dense_0/b  (4,)       float32      4
    dense_0/w  (3, 4)     float32     12
    dense_2/b  (2,)       float32      2
    dense_2/w  (4, 2)     float32      8
    ------------------------------------
    total      4 tensors              26
    """
    rows = [
        (path, str(tuple(np.shape(leaf))), _dtype_name(leaf), math.prod(np.shape(leaf)))
        for path, leaf in param_paths(params)
    ]
    header = ("path", "shape", "dtype", "count")
    total = (
        "total",
        f"{len(rows)} tensor{'s' if len(rows) != 1 else ''}",
        "",
        sum(r[3] for r in rows),
    )
    table = [header, *[(p, s, d, f"{n:,}") for p, s, d, n in rows]]
    table.append((total[0], total[1], total[2], f"{total[3]:,}"))
    widths = [max(len(str(row[i])) for row in table) for i in range(3)]
    count_width = max(len(row[3]) for row in table)
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row[:3], widths, strict=True))
        + "  "
        + row[3].rjust(count_width)
        for row in table
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def decay_mask(params: Any, *, min_ndim: int = 2) -> Any:
    """Pytree of Python bools: True for leaves with ndim ≥ `min_ndim` (default 2).

    With the default, matmul weights (in, out), conv kernels and embedding tables are decayed;
    biases and layer-norm scale/bias (1-D) are not. Pass it (or the function itself) as the
    `mask` of `optim.adamw` / `losses.l2_penalty`.
    """
    min_ndim = check_nonnegative_int(min_ndim, "min_ndim")
    return jax.tree.map(lambda leaf: np.ndim(leaf) >= min_ndim, params)


def describe_mask(params: Any, mask: Any) -> str:
    """ "decays N tensors (P params): a/w, …; skips M tensors (Q params): a/b, …" for a mask."""
    if callable(mask):
        mask = mask(params)
    paths = param_paths(params)
    try:
        flags = jax.tree.leaves(jax.tree.map(lambda _, m: bool(m), params, mask))
    except ValueError as e:
        raise ValueError(f"describe_mask: mask must have the structure of params: {e}") from None
    groups: dict[bool, list[tuple[str, int]]] = {True: [], False: []}
    for (path, leaf), flag in zip(paths, flags, strict=True):
        groups[flag].append((path, math.prod(np.shape(leaf))))

    def part(verb: str, items: list[tuple[str, int]]) -> str:
        n = sum(count for _, count in items)
        names = ", ".join(path for path, _ in items) or "none"
        return f"{verb} {len(items)} tensors ({n:,} params): {names}"

    return f"{part('decays', groups[True])}; {part('skips', groups[False])}"
