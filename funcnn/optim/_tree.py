"""Private helpers every optimizer stage uses on its leaves and buffers (one home for them).

Arithmetic: `upcast` (≥ float32), `const` (a hyperparameter in a leaf's dtype), `rms` (of
one leaf), `unzip` (split a tree of tuples returned by a per-leaf function). Buffers: `state_dtype`,
`tree_zeros_like`, `tree_full_like`, `tree_widest_float`, `safe_increment` (re-exported by
`base`, where they are public). Dtype guards: `check_float_tree` (what every
`GradientTransformation`'s init and update run on params and gradients, see `base`) and
`check_state_dtype` (a `*_dtype` option, at build time).

Nothing here imports the rest of `funcnn.optim`, so every stage module may import it.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import PyTreeDef

Array = jax.Array


# --- arithmetic on one leaf ----------------------------------------------------------------


def compute_dtype(dtype: Any) -> np.dtype:
    """The dtype arithmetic runs in for a leaf of `dtype`: at least float32 (bf16 → float32)."""
    return jnp.promote_types(dtype, jnp.float32)


def upcast(x: Array) -> Array:
    """`x` in its compute dtype (bf16/float16 → float32; float32/float64 unchanged)."""
    return x.astype(compute_dtype(x.dtype))


def const(value: float | Array, like: Array) -> Array:
    """A hyperparameter as a 0-d array of `like`'s dtype (no weak-type or float64 promotion)."""
    return jnp.asarray(value).astype(like.dtype)


def rms(x: Array) -> Array:
    """RMS(x) = √(Σx²/n) over every entry of one leaf, a () scalar (0 for an empty leaf)."""
    return jnp.sqrt(jnp.mean(x * x)) if x.size else jnp.zeros([], x.dtype)


def unzip(tuples: Any, like: Any, n: int = 2) -> tuple[Any, ...]:
    """Split a tree of n-tuples (shaped like `like`) into n trees, the i-th of items i.

    A per-leaf function returning (direction, new buffer) is mapped once over the tree;
    `unzip` turns the result back into the updates tree and the state tree.
    """
    treedef: PyTreeDef = jax.tree.structure(like)
    flat = treedef.flatten_up_to(tuples)
    return tuple(treedef.unflatten([item[i] for item in flat]) for i in range(n))


# --- buffers -------------------------------------------------------------------------------


def state_dtype(leaf_dtype: Any) -> np.dtype:
    """The default dtype of an optimizer buffer for a parameter of `leaf_dtype`: the leaf's own
    (bf16 params → bf16 moments), except float16 → float32. float16 cannot hold a second
    moment: g² underflows to 0 below |g| ≈ 2.4e-4 and overflows to ∞ above 256, so AdamW on
    float16 params reached NaN within 100 steps. bfloat16 has float32's exponent range."""
    dtype = np.dtype(jnp.result_type(leaf_dtype))
    return np.dtype(jnp.float32) if dtype == np.dtype(jnp.float16) else dtype


def tree_zeros_like(tree: Any, dtype: Any = None) -> Any:
    """Fresh zero optimizer buffers shaped like each leaf (never the leaf itself, so donation
    is safe), in `dtype` if given, else `state_dtype` of the leaf."""
    return jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), dtype or state_dtype(x)), tree)


def tree_full_like(tree: Any, value: float) -> Any:
    """Fresh buffers shaped like each leaf, filled with `value`, in each leaf's dtype."""
    return jax.tree.map(lambda x: jnp.full(jnp.shape(x), value, jnp.result_type(x)), tree)


def tree_widest_float(tree: Any) -> np.dtype:
    """The widest floating dtype among the leaves (float32 if there is none)."""
    dtypes = [jnp.result_type(x) for x in jax.tree.leaves(tree)]
    floats = [d for d in dtypes if jnp.issubdtype(d, jnp.floating)]
    return jnp.result_type(jnp.float32, *floats) if floats else np.dtype(jnp.float32)


def safe_increment(count: Array) -> Array:
    """count + 1 for an int32 counter, saturating at the int32 maximum instead of wrapping."""
    limit = jnp.iinfo(jnp.int32).max
    return jnp.where(count < limit, count + 1, limit).astype(jnp.int32)


# --- dtype guards --------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _is_real_float(dtype: np.dtype | None) -> bool:
    return dtype is not None and bool(jnp.issubdtype(dtype, jnp.floating))


def _leaf_problem(leaf: Any) -> str | None:
    """Why `leaf` cannot be optimized (None when it can): a real floating-point array only."""
    dtype = getattr(leaf, "dtype", None)  # arrays, tracers and NumPy scalars have one
    if dtype is None:
        return (
            f"is a Python {type(leaf).__name__} ({leaf!r}), not an array; optimizers work on "
            f"arrays: pass jnp.asarray({leaf!r}, jnp.float32)"
        )
    if _is_real_float(dtype):
        return None
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return (
            f"has the complex dtype {dtype}; the optimizers' math (g², √v, sign g, max) is "
            "defined for real numbers only (Adam would move the real part of a purely "
            "imaginary gradient): optimize the real and imaginary parts as two float leaves"
        )
    return (
        f"has dtype {dtype}; optimizers update floating-point values only (an integer or bool "
        "step is rounded to 0 or moves by 1): cast it with .astype(jnp.float32) or keep it "
        "out of the optimized tree"
    )


def check_float_tree(tree: Any, name: str, where: str = "") -> None:
    """Raise TypeError naming the first leaf of `tree` that is not a real floating-point array
    (a Python scalar, an int, bool or complex array). Trace-time only: reads dtypes, never
    values. `name` is the argument ("params", "updates"), `where` prefixes the message."""
    # Fast path first (a dtype lookup per leaf); key paths only when something is wrong.
    if all(_is_real_float(getattr(leaf, "dtype", None)) for leaf in jax.tree.leaves(tree)):
        return
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        problem = _leaf_problem(leaf)
        if problem is not None:
            raise TypeError(f"{where}{name}{jax.tree_util.keystr(path)} {problem}.")


def check_state_dtype(dtype: Any, name: str) -> Any:
    """Return a `*_dtype` option (None: the leaf's own) if it is a real floating dtype, else
    raise naming `name`: an int32 momentum would be truncated on every step."""
    if dtype is None:
        return None
    try:
        resolved = np.dtype(jnp.dtype(dtype))
    except TypeError as error:
        raise TypeError(
            f"{name} must be None or a floating dtype such as jnp.float32, got {name}={dtype!r}."
        ) from error
    if not _is_real_float(resolved):
        raise TypeError(
            f"{name} must be None or a real floating dtype (jnp.float32, jnp.bfloat16, ...), "
            f"got {name}={dtype!r}: optimizer buffers of dtype {resolved} would be truncated "
            "(or wrapped) on every step."
        )
    return dtype
