"""Checkpoints: save and restore pytrees atomically, validated, and without pickle.

    save(path, tree, metadata={"config": ...})     # temp file → fsync → rename → fsync folder
    tree = restore(path, like=state)               # checksum, structure, shapes, dtypes checked

File format (a NumPy `.npz` archive, so `np.load(path)` can inspect it):

    manifest      uint8 array holding UTF-8 JSON:
                  {"format": "funcnn-checkpoint", "version": 1,
                   "leaves": [{"path": [["dict", "params"], ["dict", "dense_0"], ...],
                               "shape": [...], "dtype": "bfloat16", "stored": "uint16",
                               "key_impl": null}, ...],
                   "metadata": {...}, "sha256": "<hex>"}
    leaf_<i>      the i-th leaf in `jax.tree.flatten` order, stored as plain numbers:
                  bfloat16 (and other ml_dtypes) as their raw unsigned-int bits,
                  typed PRNG keys as `jax.random.key_data` plus the impl name (their
                  manifest "shape" is the key data's, e.g. [2] for one threefry key).

`sha256` covers the manifest (without the digest itself) and every leaf's bytes, so a
truncated or altered file is refused as a whole: nothing is returned until every leaf has
been read and verified. Loading never unpickles and trusts nothing the file declares before
checking it: member names must be `manifest.npy` or `leaf_<i>.npy` (no path components),
members must be stored uncompressed, each `.npy` header's dtype must be on a whitelist
(object arrays are refused) and its shape × itemsize must equal the bytes the member holds,
which cannot exceed the file's size on disk — so a crafted header declaring a huge array
is refused before anything of that size is allocated.

`CheckpointManager(directory, keep)` writes `ckpt_<step>.npz` files, keeps the newest
`keep`, and restores the newest one that verifies (skipping a corrupt one with a warning).

Dtypes round-trip exactly or are refused. Every leaf is stored at its own width (int64,
uint64, float64, complex128, bool, float16, bfloat16, float8 …); `restore` never lets a
device copy narrow one: without `like` the leaves come back as NumPy arrays of the stored
dtype (jax's x64 mode off would turn 2**40 into 0), and with `like` a leaf that `like`
holds in NumPy, or as a `jax.ShapeDtypeStruct` of a 64-bit dtype jax cannot hold on device
right now, comes back as a NumPy array too. Leaves of any other dtype (strings, objects,
int4, …) are a TypeError on save.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn._validation import check_positive_int

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "CheckpointManager",
    "path_str",
    "read_metadata",
    "restore",
    "save",
    "stage_hook",
]

FORMAT = "funcnn-checkpoint"
VERSION = 1

# Every dtype a leaf may have. Anything else (objects, strings, structured records) is
# refused on save and on load, so a crafted file can never make numpy unpickle.
_PLAIN_DTYPES = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 "
    "float16 float32 float64 complex64 complex128".split()
)
# Low-precision floats numpy cannot store natively: kept as raw bits of the same width.
_BIT_DTYPES = {
    "bfloat16": "uint16",
    "float8_e4m3fn": "uint8",
    "float8_e5m2": "uint8",
    "float8_e4m3b11fnuz": "uint8",
    "float8_e4m3fnuz": "uint8",
    "float8_e5m2fnuz": "uint8",
}

PathEntry = tuple[str, Any]  # ("dict", key) | ("seq", index) | ("attr", name)

_MEMBER_NAME = re.compile(r"^(manifest|leaf_(0|[1-9][0-9]*))\.npy$")

stage_hook: Callable[[str, Path], None] | None = None
"""Fault-injection hook for tests: when set, `save` calls `stage_hook(stage, path)` at each
stage of a write — "temp_written" (temporary file complete and fsync'ed, not yet renamed),
"renamed" (renamed over `path`, folder not yet fsync'ed) and "dir_fsync" (folder opened, its
fsync about to run) — so a test can kill the process exactly there. None in normal use."""


def _stage(name: str, path: Path) -> None:
    if stage_hook is not None:
        stage_hook(name, path)


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, corrupt, or does not match the expected tree."""


class _Leaf(NamedTuple):
    path: tuple[PathEntry, ...]
    value: Any  # np.ndarray (or a typed PRNG key array once decoded)


# ----------------------------------------------------------------------------- paths


def _encode_key(key: Any) -> PathEntry:
    """One `jax.tree_util` path element as a JSON-friendly (kind, value) pair."""
    if isinstance(key, jax.tree_util.DictKey):
        if not isinstance(key.key, (str, int)) or isinstance(key.key, bool):
            raise TypeError(
                f"checkpoint dict keys must be str or int, got {key.key!r} "
                f"({type(key.key).__name__})."
            )
        return ("dict", key.key)
    if isinstance(key, jax.tree_util.SequenceKey):
        return ("seq", key.idx)
    if isinstance(key, jax.tree_util.GetAttrKey):
        return ("attr", key.name)
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return ("index", key.key)
    raise TypeError(f"cannot store a pytree node with path element {key!r}.")


def path_str(path: tuple[PathEntry, ...]) -> str:
    """A key path as a readable string: `params/dense_0/w`, `opt_state/1/mu/...`."""
    return "/".join(str(value) for _, value in path) or "<root>"


def _flatten(tree: Any) -> tuple[list[_Leaf], Any]:
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [_Leaf(tuple(_encode_key(k) for k in path), leaf) for path, leaf in pairs], treedef


# ----------------------------------------------------------------------------- encoding


def _is_prng_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _encode_leaf(leaf: _Leaf) -> tuple[dict, np.ndarray]:
    """(manifest entry, array of plain numbers) for one leaf."""
    key_impl = None
    value = leaf.value
    if _is_prng_key(value):
        key_impl = str(jax.random.key_impl(value))
        value = jax.random.key_data(value)
    array = np.asarray(value)
    dtype = array.dtype.name
    if dtype in _BIT_DTYPES:
        stored = array.view(_BIT_DTYPES[dtype])
    elif dtype in _PLAIN_DTYPES:
        stored = array
    else:
        raise TypeError(
            f"cannot checkpoint leaf {path_str(leaf.path)!r} of dtype {array.dtype}; "
            f"supported: {sorted(_PLAIN_DTYPES | set(_BIT_DTYPES))}."
        )
    entry = {
        "path": [list(p) for p in leaf.path],
        "shape": list(array.shape),
        "dtype": dtype,
        "stored": stored.dtype.name,
        "key_impl": key_impl,
    }
    return entry, np.asarray(stored, order="C")  # (ascontiguousarray turns 0-d into 1-d)


def _digest(manifest: dict, arrays: list[np.ndarray]) -> str:
    """sha256 over the canonical manifest JSON (without its digest) and every leaf's bytes."""
    h = hashlib.sha256()
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    h.update(json.dumps(body, sort_keys=True).encode())
    for array in arrays:
        h.update(array.tobytes(order="C"))
    return h.hexdigest()


# ----------------------------------------------------------------------------- save


def save(path: str | os.PathLike, tree: Any, *, metadata: dict | None = None) -> Path:
    """Write `tree` (any pytree of arrays) to `path` atomically; return the path.

    The file appears complete or not at all: the bytes go to a temporary file in the same
    folder, are fsync'ed, renamed over `path` (atomic on POSIX), and the folder is
    fsync'ed so the rename survives a power cut. `metadata` must be JSON-serialisable
    (e.g. the run's config); read it back with `read_metadata`.
    """
    path = Path(path)
    _check_metadata(metadata)
    leaves, _ = _flatten(tree)
    entries, arrays = (
        zip(*(_encode_leaf(leaf) for leaf in leaves), strict=True) if leaves else ((), ())
    )
    try:
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "leaves": list(entries),
            "metadata": {} if metadata is None else metadata,
        }
        json.dumps(manifest["metadata"])  # NaN/inf allowed: Python's json reads them back
    except (TypeError, ValueError) as err:
        raise TypeError(f"metadata must be JSON-serialisable, got {metadata!r}: {err}") from None
    manifest["sha256"] = _digest(manifest, list(arrays))
    members = {f"leaf_{i}": a for i, a in enumerate(arrays)}
    members["manifest"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)

    folder = path.parent if str(path.parent) else Path(".")
    # O_EXCL with a random name (like mkstemp) but mode 0o666 minus the umask, so the
    # checkpoint gets ordinary file permissions rather than mkstemp's 0o600.
    tmp_name = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        _stage("temp_written", path)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _stage("renamed", path)
    _fsync_dir(folder, path)
    return path


def _check_metadata(metadata: Any) -> None:
    """Refuse metadata that would not come back as given: not a dict, or a dict anywhere
    inside with a key that is not a str (JSON turns 1 into "1" and cannot sort mixed keys)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise TypeError(
            f"metadata must be a dict (JSON object) or None, got {type(metadata).__name__}."
        )
    pending: list[tuple[str, Any]] = [("metadata", metadata)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(
                        f"metadata keys must be str (JSON object keys), got {key!r} "
                        f"({type(key).__name__}) in {where}."
                    )
                pending.append((f"{where}[{key!r}]", item))
        elif isinstance(value, list | tuple):
            pending.extend((f"{where}[{i}]", item) for i, item in enumerate(value))


def _fsync_dir(folder: Path, path: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        _stage("dir_fsync", path)
        os.fsync(fd)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- load


def _read(path: str | os.PathLike) -> tuple[list[_Leaf], dict]:
    """Read and verify every leaf of a checkpoint; return (leaves, metadata) or raise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: path={str(path)!r}.")
    try:
        members = _read_members(path)
    except CheckpointError:
        raise
    except Exception as err:
        # A damaged zip fails in many ways (BadZipFile, EOFError, NotImplementedError for a
        # flipped version byte, zlib/struct errors, a bad CRC): every one means "unreadable".
        raise CheckpointError(
            f"checkpoint {str(path)!r} is unreadable, truncated or not a funcnn checkpoint: "
            f"{type(err).__name__}: {err}"
        ) from None

    manifest = _parse_manifest(path, members.pop("manifest", None))
    entries = manifest["leaves"]
    expected_names = {f"leaf_{i}" for i in range(len(entries))}
    if set(members) != expected_names:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds members {sorted(members)} but its manifest "
            f"lists {len(entries)} leaves."
        )
    arrays = [members[f"leaf_{i}"] for i in range(len(entries))]
    if _digest(manifest, arrays) != manifest.get("sha256"):
        raise CheckpointError(f"checkpoint {str(path)!r} failed its sha256 check (altered file).")
    leaves = [
        _decode_leaf(path, entry, array) for entry, array in zip(entries, arrays, strict=True)
    ]
    return leaves, manifest["metadata"]


def _read_members(path: Path) -> dict[str, np.ndarray]:
    """Every `.npy` member of the archive, each checked before it is allocated: its name,
    that it is stored uncompressed, its header's dtype, and that shape × itemsize is exactly
    the bytes it holds (so at most the file's size on disk is ever allocated)."""
    on_disk = path.stat().st_size
    members: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename
            where = f"checkpoint {str(path)!r}, member {name!r}"
            if not _MEMBER_NAME.match(name) or name[:-4] in members:
                raise CheckpointError(
                    f"checkpoint {str(path)!r} has a member named {name!r}; expected "
                    "manifest.npy or leaf_<i>.npy, each once (no path components)."
                )
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > on_disk:
                raise CheckpointError(
                    f"{where}: declares {info.file_size} bytes (compression "
                    f"{info.compress_type}) in a file of {on_disk}; funcnn stores members "
                    "uncompressed."
                )
            with archive.open(info) as f:
                members[name[:-4]] = _read_npy(f, info.file_size, where)
    return members


def _read_npy(f: Any, size: int, where: str) -> np.ndarray:
    """One `.npy` member: header checked (dtype on the whitelist, declared bytes = held
    bytes) before its data is read; never unpickles."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise CheckpointError(f"{where}: unsupported .npy version {version}.")
    if dtype.hasobject or dtype.name not in _PLAIN_DTYPES:
        raise CheckpointError(
            f"{where}: dtype {dtype} is refused (object arrays are refused: loading never "
            f"unpickles); expected one of {sorted(_PLAIN_DTYPES)}."
        )
    declared = math.prod(shape) * dtype.itemsize
    held = size - f.tell()
    if declared != held:
        raise CheckpointError(
            f"{where}: its header declares shape {shape} of {dtype} ({declared} bytes) but "
            f"the member holds {held} bytes; refused before allocating."
        )
    data = f.read(declared)
    if len(data) != declared:
        raise CheckpointError(f"{where}: truncated ({len(data)} of {declared} bytes).")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.array(array, order="C")  # writable, C-ordered, owns its memory


def _parse_manifest(path: Path, raw: np.ndarray | None) -> dict:
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"checkpoint {str(path)!r} has no valid manifest.")
    try:
        manifest = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} has a corrupt manifest: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a {FORMAT} file.")
    if manifest.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {manifest.get('version')!r}; "
            f"this funcnn reads version {VERSION}."
        )
    if not isinstance(manifest.get("leaves"), list):
        raise CheckpointError(f"checkpoint {str(path)!r} has a manifest without a leaf list.")
    return manifest


def _decode_leaf(path: Path, entry: dict, stored: np.ndarray) -> _Leaf:
    try:
        leaf_path = tuple((kind, value) for kind, value in entry["path"])
        dtype, stored_dtype = entry["dtype"], entry["stored"]
        shape, key_impl = tuple(entry["shape"]), entry["key_impl"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"checkpoint {str(path)!r} has a malformed leaf entry.") from None
    where = f"checkpoint {str(path)!r}, leaf {path_str(leaf_path)!r}"
    allowed_stored = _BIT_DTYPES.get(dtype, dtype if dtype in _PLAIN_DTYPES else None)
    if stored_dtype != allowed_stored or stored.dtype.name != stored_dtype:
        raise CheckpointError(f"{where}: unsupported or inconsistent dtype {dtype!r}.")
    if stored.shape != shape:
        raise CheckpointError(f"{where}: stored shape {stored.shape} != manifest shape {shape}.")
    value: Any = stored.view(dtype) if dtype in _BIT_DTYPES else stored
    if key_impl is not None:
        try:
            value = jax.random.wrap_key_data(value, impl=key_impl)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{where}: bad PRNG key data ({err}).") from None
    return _Leaf(leaf_path, value)


def read_metadata(path: str | os.PathLike) -> dict:
    """The `metadata` dict given to `save` (the whole file is verified first)."""
    return _read(path)[1]


def restore(path: str | os.PathLike, like: Any = None) -> Any:
    """Read a checkpoint written by `save`.

    With `like` (a pytree of arrays or `jax.ShapeDtypeStruct`s, e.g. a freshly initialised
    TrainState) the result has exactly `like`'s tree structure — NamedTuples, tuples and
    lists included — after checking that key paths, shapes and dtypes all agree; the first
    mismatching key path is named in the error. Leaves land on `like`'s shardings; where
    `like` has a NumPy leaf the result has the same NumPy array type (no device copy, so
    float64/int64 leaves keep their width with jax's x64 mode off).
    A `like` leaf given as a `jax.ShapeDtypeStruct` of a 64-bit dtype that jax cannot hold
    on device (x64 mode off) also comes back as NumPy rather than narrowed.
    Without `like` the result is nested dicts keyed by the path elements (as strings) whose
    leaves are NumPy arrays of exactly the stored dtype and shape — int64, uint64, float64
    and complex128 included, whatever jax's x64 mode (typed PRNG keys come back as jax
    key arrays); `jnp.asarray` them to move them to a device.

    Raises FileNotFoundError for a missing file, CheckpointError (a ValueError) for a
    corrupt, truncated or mismatching one — never a partial result.
    """
    leaves, _ = _read(path)
    if like is None:
        return _nested_dicts(leaves)
    return _match_like(path, leaves, like)


def _match_like(path: str | os.PathLike, leaves: list[_Leaf], like: Any) -> Any:
    expected, treedef = _flatten(like)
    stored = {leaf.path: leaf for leaf in leaves}
    for want in expected:
        if want.path not in stored:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has no leaf at key path {path_str(want.path)!r} "
                f"expected by `like`."
            )
    wanted = {leaf.path for leaf in expected}
    for leaf in leaves:
        if leaf.path not in wanted:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has a leaf at key path {path_str(leaf.path)!r} "
                f"that `like` does not have (wrong tree?)."
            )
    values = []
    for want in expected:
        got = stored[want.path].value
        want_shape, want_dtype = _shape_of(want.value), _dtype_of(want.value)
        if tuple(got.shape) != tuple(want_shape) or got.dtype != want_dtype:
            raise CheckpointError(
                f"checkpoint {str(path)!r}, key path {path_str(want.path)!r}: stored "
                f"shape={tuple(got.shape)} dtype={got.dtype}, expected "
                f"shape={tuple(want_shape)} dtype={want_dtype}."
            )
        sharding = getattr(want.value, "sharding", None)
        narrows = not _is_prng_key(got) and jax.dtypes.canonicalize_dtype(got.dtype) != got.dtype
        if isinstance(want.value, np.ndarray | np.generic) or (narrows and sharding is None):
            # A host (NumPy) leaf, or a 64-bit one jax cannot hold on device with its x64
            # mode off, comes back as NumPy: a device copy would turn 2**40 into 0.
            values.append(got)
            continue
        if narrows:
            raise CheckpointError(
                f"checkpoint {str(path)!r}, key path {path_str(want.path)!r}: dtype {got.dtype} "
                f"cannot be placed on {sharding} with jax_enable_x64 off (it would narrow to "
                f"{jax.dtypes.canonicalize_dtype(got.dtype)}); enable x64 or drop the sharding "
                "to get a NumPy array."
            )
        values.append(
            jax.device_put(got, sharding) if sharding is not None else jax.device_put(got)
        )
    return jax.tree_util.tree_unflatten(treedef, values)


def _shape_of(x: Any) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    return np.shape(x) if shape is None else tuple(shape)


def _dtype_of(x: Any) -> Any:
    dtype = getattr(x, "dtype", None)
    return np.asarray(x).dtype if dtype is None else dtype


def _nested_dicts(leaves: list[_Leaf]) -> dict:
    root: dict = {}
    for leaf in leaves:
        node = root
        *parents, last = [str(value) for _, value in leaf.path] or ["<root>"]
        for key in parents:
            node = node.setdefault(key, {})
        # No device copy: NumPy keeps every stored width (typed PRNG keys stay jax keys).
        node[last] = leaf.value
    return root


# ----------------------------------------------------------------------------- manager


def _check_step(step: Any) -> int:
    """`step` as an int if it is a (NumPy) integer ≥ 0 — bools refused — else raise."""
    if isinstance(step, bool | np.bool_) or not isinstance(step, int | np.integer):
        raise TypeError(
            f"step must be an int ≥ 0, got {step!r} ({type(step).__name__}); pass int(state.step)."
        )
    if step < 0:
        raise ValueError(f"step must be an int ≥ 0, got step={step}.")
    return int(step)


class CheckpointManager:
    """Periodic checkpoints in one folder: `ckpt_<step>.npz`, the newest `keep` kept.

    manager = CheckpointManager(out / "checkpoints", keep=3)
    manager.save(step, state, metadata={"epoch": 2, "index": 128})
    found = manager.restore_latest(like=state)   # None when nothing valid exists
    if found: state, metadata, step = found

    Rules. "Newest" means the highest step, so steps only go forward: a step must be an
    int ≥ 0 (not a bool), and saving a step lower than a valid checkpoint already in the
    folder is a ValueError (a run restarted over a later run's checkpoints would otherwise
    be pruned in favour of them, and `restore_latest` would pick the other run's file); a
    later file that fails verification — the one `restore_latest` skipped — is renamed to
    `<name>.corrupt` with a warning instead. Saving the newest step again replaces its file.
    Pruning never deletes the file just written.
    """

    _PATTERN = re.compile(r"^ckpt_(\d+)\.npz$")

    def __init__(self, directory: str | os.PathLike, keep: int = 3, *, create: bool = True):
        """`create=False` opens the folder read-only — nothing is made or swept, and
        `steps()` is empty while it does not exist — to check a run before it starts."""
        self.directory = Path(directory)
        self.keep = check_positive_int(keep, "keep")
        if not create:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        # A run killed mid-save leaves a temporary file; it was never a checkpoint.
        for stale in sorted(self.directory.glob(".ckpt_*.tmp")):
            warnings.warn(
                f"removing {stale}: a partial checkpoint left by an interrupted save",
                stacklevel=2,
            )
            stale.unlink(missing_ok=True)

    def path_for(self, step: int) -> Path:
        """The file of `step` (an int ≥ 0): `ckpt_<step, 10 digits>.npz`."""
        return self.directory / f"ckpt_{_check_step(step):010d}.npz"

    def steps(self) -> list[int]:
        """Steps with a checkpoint file on disk, newest first (validity not checked)."""
        if not self.directory.is_dir():  # a read-only manager's folder may not exist yet
            return []
        found = (self._PATTERN.match(p.name) for p in self.directory.iterdir())
        return sorted((int(m.group(1)) for m in found if m), reverse=True)

    def save(self, step: int, tree: Any, *, metadata: dict | None = None) -> Path:
        """Atomically write the checkpoint for `step`, then delete all but the newest `keep`.

        Refuses (ValueError, nothing written) a step below the newest one on disk."""
        step = _check_step(step)
        for later in (s for s in self.steps() if s > step):
            self._refuse_or_set_aside(later, step)
        path = save(self.path_for(step), tree, metadata=metadata)
        for old in self.steps()[self.keep :]:
            if old != step:  # never the file just written, whatever else is in the folder
                self.path_for(old).unlink(missing_ok=True)
        return path

    def _refuse_or_set_aside(self, later: int, step: int) -> None:
        """A checkpoint of a step after `step` is in the folder: refuse to save `step` if it
        verifies; if it does not (torn by a crash or a bad disk, skipped by `restore_latest`
        — the run resumed from an earlier one), rename it to `<name>.corrupt` with a warning,
        so it neither blocks the resumed run nor is lost."""
        path = self.path_for(later)
        try:
            _read(path)
        except FileNotFoundError:
            return  # removed meanwhile
        except CheckpointError as err:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            warnings.warn(
                f"moved corrupt checkpoint {path} aside to {aside.name}: it fails verification "
                f"and can never be restored ({err})",
                stacklevel=3,
            )
            return
        raise ValueError(
            f"cannot save step {step} in {self.directory}: it already holds a valid checkpoint "
            f"of a later step ({path.name}), which would count as newer; steps only go "
            "forward. Remove the later files or use another folder."
        )

    def _valid(self, like: Any) -> Iterator[tuple[Any, dict, int]]:
        for step in self.steps():
            path = self.path_for(step)
            try:
                leaves, metadata = _read(path)
            except CheckpointError as err:
                warnings.warn(f"skipping corrupt checkpoint: {err}", stacklevel=3)
                continue
            # A readable file that does not fit `like` means the run's config changed:
            # that is the caller's mistake, so it raises instead of silently starting over.
            tree = _nested_dicts(leaves) if like is None else _match_like(path, leaves, like)
            yield tree, metadata, step

    def restore_latest(self, like: Any = None) -> tuple[Any, dict, int] | None:
        """(tree, metadata, step) from the newest checkpoint that verifies, or None.

        A corrupt newer file is skipped with a warning (a readable one that does not match
        `like` raises CheckpointError), so a crash in the
        middle of writing (impossible with `save`, but possible with a full disk or a
        copied folder) costs at most one checkpoint interval.
        """
        return next(self._valid(like), None)
