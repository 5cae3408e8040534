"""Parameter trees in and out of safetensors files (the Hugging Face / PyTorch weight format).

    flat = flatten_params(params)        {"block_0": {"attention": {"q": {"w": …}}}}
                                          ↔ {"block_0.attention.q.w": …}
    save_safetensors(path, params, metadata={"step": "100"})
    params, metadata = load_safetensors(path, like=None)

safetensors is a header of JSON (names, dtypes, shapes, byte offsets, and a string→string
metadata map) followed by the raw little-endian bytes: no pickle, no code runs on load. The
`safetensors` package (the `io` extra: `pip install funcnn[io]`) is its reference
implementation, kept by Hugging Face and read by PyTorch, JAX, TF and MLX — so we use it
rather than a second writer of the format. Every dtype round-trips exactly, bfloat16
included (read through `ml_dtypes`, which JAX already installs).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "flatten_params",
    "load_safetensors",
    "read_safetensors",
    "save_safetensors",
    "unflatten_params",
]

SEP = "."

# safetensors' dtype codes → NumPy dtypes (bfloat16 from ml_dtypes, through jnp).
_DTYPES: dict[str, Any] = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": jnp.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _require_safetensors() -> Any:
    try:
        import safetensors
    except ImportError as error:  # an optional extra: say how to get it
        raise ImportError(
            "funcnn.models reads and writes weights with the `safetensors` package; install "
            "it with `pip install funcnn[io]` (or `pip install safetensors`)."
        ) from error
    return safetensors


def flatten_params(params: Mapping[str, Any], sep: str = SEP) -> dict[str, np.ndarray]:
    """Nested dict → {"a.b.c": array}: one entry per leaf, names joined by `sep`.

    Keys must be strings without `sep` (else the map could not be inverted); empty subtrees
    (a parameterless layer's {}) hold no tensor and are dropped.
    """
    flat: dict[str, np.ndarray] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, child in node.items():
                if not isinstance(key, str) or sep in key or not key:
                    raise ValueError(
                        f"flatten_params: keys must be non-empty strings without {sep!r}, got "
                        f"{key!r} under {prefix or 'the root'!r}."
                    )
                walk(child, f"{prefix}{sep}{key}" if prefix else key)
        else:
            flat[prefix] = np.asarray(node)

    if not isinstance(params, Mapping):
        raise TypeError(
            f"flatten_params: params must be a nested dict, got {type(params).__name__}."
        )
    walk(params, "")
    return flat


def unflatten_params(flat: Mapping[str, Any], sep: str = SEP) -> dict[str, Any]:
    """{"a.b.c": array} → nested dict; the inverse of `flatten_params`."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        *path, leaf = name.split(sep)
        node = tree
        for part in path:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"unflatten_params: {name!r} lies under the tensor {part!r}.")
            node = child
        if leaf in node:
            raise ValueError(f"unflatten_params: {name!r} is both a tensor and a group.")
        node[leaf] = value
    return tree


def save_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Any],
    *,
    metadata: Mapping[str, str] | None = None,
    flat: bool = False,
) -> Path:
    """Write a parameter tree (or, with `flat=True`, a {name: array} map) to `path`.

    Leaves are written with their own dtype and shape (bfloat16 as BF16); `metadata` is a
    string → string map stored in the header (anything else is a TypeError: the format holds
    only strings). Written to a temporary file in the same folder and renamed, so a crash
    never leaves a half-written file under `path`.
    """
    _require_safetensors()
    from safetensors.numpy import save

    arrays = dict(tensors) if flat else flatten_params(tensors)
    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in arrays.items()}
    for name, array in arrays.items():
        if array.dtype not in [np.dtype(d) for d in _DTYPES.values()]:
            raise TypeError(f"save_safetensors: {name!r} has dtype {array.dtype}, not storable.")
    if metadata is not None:
        bad = {k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
        if bad:
            raise TypeError(
                f"save_safetensors: metadata must map strings to strings, got {bad!r} "
                f"(serialize other values, e.g. with json.dumps)."
            )
    data = save(arrays, metadata=None if metadata is None else dict(metadata))
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The flat {name: NumPy array} map and the metadata of a safetensors file, as stored
    (every dtype exactly, bfloat16 as ml_dtypes' bfloat16)."""
    safetensors = _require_safetensors()
    raw = Path(path).read_bytes()
    with safetensors.safe_open(str(path), framework="np") as handle:
        metadata = dict(handle.metadata() or {})
    arrays = {}
    for name, view in safetensors.deserialize(raw):
        code = view["dtype"]
        if code not in _DTYPES:
            raise ValueError(f"read_safetensors: {name!r} in {path} has unsupported dtype {code}.")
        buffer = np.frombuffer(bytes(view["data"]), dtype=_DTYPES[code])
        arrays[name] = buffer.reshape(view["shape"]).copy()
    return arrays, metadata


def load_safetensors(
    path: str | os.PathLike[str], *, like: Any = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(params, metadata) from a file written by `save_safetensors` (or any safetensors file
    whose names are dotted paths). Leaves are NumPy arrays exactly as stored (float64 and
    int64 stay so; `jax.tree.map(jnp.asarray, params)` puts them on device). With `like` (a
    params tree or its `jax.eval_shape`), the names, shapes and dtypes must match it exactly,
    and its empty subtrees are restored."""
    flat, metadata = read_safetensors(path)
    params = unflatten_params(flat)
    if like is None:
        return params, metadata
    shapes = {k: (tuple(np.shape(a)), np.dtype(a.dtype)) for k, a in _leaf_map(like).items()}
    missing, extra = sorted(set(shapes) - set(flat)), sorted(set(flat) - set(shapes))
    if missing or extra:
        raise ValueError(f"load_safetensors: {path} lacks {missing} and has unexpected {extra}.")
    for name, (shape, dtype) in shapes.items():
        if flat[name].shape != shape or flat[name].dtype != dtype:
            raise ValueError(
                f"load_safetensors: {name!r} is {flat[name].dtype}{list(flat[name].shape)} in "
                f"{path}, expected {dtype}{list(shape)}."
            )
    return jax.tree.map(lambda a, name: flat[name], like, _names(like)), metadata


def _leaf_map(tree: Any) -> dict[str, Any]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {SEP.join(str(k.key) for k in path): leaf for path, leaf in leaves}


def _names(tree: Any) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda path, _: SEP.join(str(k.key) for k in path), tree
    )
