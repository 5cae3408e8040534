"""Checkpoints: exact round trips, atomic writes, and refusal of anything corrupt or crafted."""

import io
import json
import os
import pickle
import re
import zipfile
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.train import checkpoint
from funcnn.train.checkpoint import CheckpointError, CheckpointManager


class State(NamedTuple):
    params: dict
    opt_state: tuple
    step: jax.Array
    key: jax.Array


def make_state(seed: int = 0) -> State:
    rng = np.random.default_rng(seed)
    params = {
        "dense_0": {
            "w": jnp.asarray(rng.normal(size=(3, 4)), jnp.bfloat16),
            "b": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
        },
        "relu_1": {},
        "norm": {"scale": jnp.asarray(rng.normal(size=(4,)), jnp.float16)},
    }
    opt_state = (
        {"count": jnp.int32(5), "mu": jax.tree.map(jnp.zeros_like, params)},
        [jnp.asarray([True, False]), jnp.uint8(7)],
    )
    return State(params, opt_state, jnp.int32(11), jax.random.key(seed))


def bits(x):
    """Raw bytes of a leaf (key data for typed PRNG keys) so equality is bitwise."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x).tobytes()


def assert_bitwise_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert bits(x) == bits(y)


@pytest.fixture
def saved(tmp_path):
    state = make_state()
    path = checkpoint.save(tmp_path / "state.npz", state, metadata={"config": {"lr": 0.1}})
    return path, state


# ----------------------------------------------------------------------------- round trips


def test_round_trip_is_bitwise_and_rebuilds_namedtuple(saved):
    path, state = saved
    restored = checkpoint.restore(path, like=make_state(seed=1))  # different values, same tree
    assert isinstance(restored, State)
    assert isinstance(restored.opt_state, tuple) and isinstance(restored.opt_state[1], list)
    assert_bitwise_equal(restored, state)
    # the restored key drives the same random stream
    np.testing.assert_array_equal(
        jax.random.normal(restored.key, (3,)), jax.random.normal(state.key, (3,))
    )


def test_like_may_be_shape_dtype_structs(saved):
    path, state = saved
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    assert_bitwise_equal(checkpoint.restore(path, like=like), state)


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_typed_keys_keep_their_impl(tmp_path, impl):
    key = jax.random.key(42, impl=impl)
    path = checkpoint.save(tmp_path / "k.npz", {"key": key})
    restored = checkpoint.restore(path, like={"key": key})["key"]
    assert str(jax.random.key_impl(restored)) == impl
    np.testing.assert_array_equal(jax.random.key_data(restored), jax.random.key_data(key))


def test_float64_and_bfloat16_extremes_round_trip(tmp_path):
    with jax.enable_x64(True):
        tree = {
            "f64": jnp.asarray([np.pi, -0.0, np.inf, 1e-310], jnp.float64),
            "bf16": jnp.asarray([np.pi, -0.0, np.nan, 3e38], jnp.bfloat16),
            "i64": jnp.asarray([2**40], jnp.int64),
        }
        path = checkpoint.save(tmp_path / "x.npz", tree)
        assert_bitwise_equal(checkpoint.restore(path, like=tree), tree)


def test_without_like_returns_nested_dicts_keyed_by_path(saved):
    path, state = saved
    tree = checkpoint.restore(path)
    assert set(tree) == {"params", "opt_state", "step", "key"}
    assert set(tree["opt_state"]) == {"0", "1"}  # tuple positions become string keys
    assert bits(tree["params"]["dense_0"]["w"]) == bits(state.params["dense_0"]["w"])
    assert tree["params"]["dense_0"]["w"].dtype == jnp.bfloat16
    assert bits(tree["opt_state"]["1"]["1"]) == bits(state.opt_state[1][1])
    assert "relu_1" not in tree["params"]  # empty subtrees hold no leaves


def test_metadata_round_trips(saved):
    path, _ = saved
    assert checkpoint.read_metadata(path) == {"config": {"lr": 0.1}}


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(TypeError, match=r"metadata must be JSON-serialisable.*object"):
        checkpoint.save(tmp_path / "m.npz", {"a": jnp.ones(1)}, metadata={"fn": object()})
    assert not list(tmp_path.iterdir())


def test_unsupported_leaf_is_refused_on_save(tmp_path):
    with pytest.raises(TypeError, match=r"leaf 'a'.*dtype <U3"):
        checkpoint.save(tmp_path / "s.npz", {"a": np.asarray(["abc"])})


# ----------------------------------------------------------------------------- atomic writes


def test_save_leaves_no_temp_files_and_replaces(tmp_path, saved):
    path, _ = saved
    checkpoint.save(path, {"x": jnp.arange(3)})
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.npz"]
    assert checkpoint.restore(path)["x"].tolist() == [0, 1, 2]


def test_failed_save_keeps_the_old_file(saved, monkeypatch):
    path, state = saved

    def crash(file, **members):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, {"x": jnp.ones(2)})
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.npz"]
    assert_bitwise_equal(checkpoint.restore(path, like=state), state)


# ----------------------------------------------------------------------------- corrupt files


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint file not found: path=.*nope\.npz"):
        checkpoint.restore(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep_fraction", [0.0, 0.3, 0.9, 0.999])
def test_truncated_file(saved, keep_fraction):
    path, state = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(CheckpointError, match=r"state\.npz.*(unreadable|truncated)"):
        checkpoint.restore(path, like=state)


def rewrite(path, edit):
    """Rewrite a checkpoint's members (a valid zip again) after `edit(members)`."""
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    edit(members)
    with open(path, "wb") as f:
        np.savez(f, **members)


def manifest_of(members):
    return json.loads(members["manifest"].tobytes())


def set_manifest(members, manifest):
    members["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)


def test_altered_leaf_fails_the_checksum(saved):
    path, state = saved

    def flip(members):
        members["leaf_0"] = members["leaf_0"].copy()
        members["leaf_0"].flat[0] += 1

    rewrite(path, flip)
    with pytest.raises(CheckpointError, match="sha256"):
        checkpoint.restore(path, like=state)


def test_altered_manifest_fails_the_checksum(saved):
    path, _ = saved

    def rename(members):
        manifest = manifest_of(members)
        manifest["leaves"][0]["path"][-1][1] = "renamed"
        set_manifest(members, manifest)

    rewrite(path, rename)
    with pytest.raises(CheckpointError, match="sha256"):
        checkpoint.restore(path)


def test_flipped_byte_anywhere_never_gives_a_different_tree(saved):
    """Every flipped byte is refused, except in zip bookkeeping (timestamps, attributes)
    that does not touch the data: then the tree read back is still bitwise the original."""
    path, state = saved
    data = bytearray(path.read_bytes())
    refused = 0
    for position in range(0, len(data), 17):
        corrupt = bytearray(data)
        corrupt[position] ^= 0xFF
        path.write_bytes(bytes(corrupt))
        try:
            restored = checkpoint.restore(path, like=state)
        except CheckpointError:
            refused += 1
        else:
            assert_bitwise_equal(restored, state)
    assert refused > 0.8 * len(range(0, len(data), 17))


def test_extra_member_is_refused(saved):
    path, _ = saved
    rewrite(path, lambda members: members.update(extra=np.zeros(1)))
    with pytest.raises(CheckpointError, match=r"member named 'extra.npy'; expected manifest"):
        checkpoint.restore(path)


def _copy_members(path, rename=lambda name: name, replace=None):
    """Copy a checkpoint's zip members byte for byte, renaming some or replacing one's bytes."""
    with zipfile.ZipFile(path) as src:
        members = {info.filename: src.read(info) for info in src.infolist()}
    if replace is not None:
        members.update(replace)
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in members.items():
            dst.writestr(rename(name), data)


@pytest.mark.parametrize(
    "bad_name", ["../leaf_0.npy", "/tmp/leaf_0.npy", "sub/leaf_0.npy", "leaf_00.npy", "leaf_0"]
)
def test_member_names_with_path_components_are_refused(saved, bad_name):
    path, _ = saved
    _copy_members(path, rename=lambda name: bad_name if name == "leaf_0.npy" else name)
    with pytest.raises(CheckpointError, match=re.escape(f"member named {bad_name!r}")):
        checkpoint.restore(path)
    assert not (path.parent.parent / "leaf_0.npy").exists()


def test_absurd_sizes_in_a_header_are_refused_before_allocating(saved):
    """A leaf whose .npy header declares 50 million float64s (400 MB) but holds 8 bytes is
    refused by comparing the two, with nowhere near 400 MB allocated (numpy reports its
    allocations to tracemalloc)."""
    import tracemalloc

    path, _ = saved
    header = {"descr": "<f8", "fortran_order": False, "shape": (50_000_000,)}
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    _copy_members(path, replace={"leaf_0.npy": member.getvalue() + bytes(8)})
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"declares shape \(50000000,\).*holds 8 bytes"):
            checkpoint.restore(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


# ----------------------------------------------------------------------------- crafted files


def test_object_array_is_rejected(tmp_path):
    path = tmp_path / "evil.npz"
    manifest = {"format": checkpoint.FORMAT, "version": 1, "metadata": {}, "sha256": "",
                "leaves": [{"path": [["dict", "a"]], "shape": [1], "dtype": "object",
                            "stored": "object", "key_impl": None}]}  # fmt: skip
    with open(path, "wb") as f:
        np.savez(
            f,
            manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8),
            leaf_0=np.asarray([{"x": 1}], dtype=object),
        )
    with pytest.raises(CheckpointError, match="object arrays are refused"):
        checkpoint.restore(path)


class _Exploit:
    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("container", ["raw pickle", "npz member"])
def test_loading_never_unpickles(tmp_path, container):
    _Exploit.marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    if container == "raw pickle":
        path.write_bytes(pickle.dumps(_Exploit()))
    else:
        with zipfile.ZipFile(path, "w") as z:  # an .npy member whose payload is a pickle
            with z.open("manifest.npy", "w") as f:
                np.save(f, np.asarray([_Exploit()], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError):
        checkpoint.restore(path)
    assert not _Exploit.marker.exists()


def test_manifest_cannot_declare_arbitrary_dtypes(saved):
    path, _ = saved

    def declare_object(members):
        manifest = manifest_of(members)
        manifest["leaves"][0]["dtype"] = manifest["leaves"][0]["stored"] = "object"
        set_manifest(members, manifest)

    rewrite(path, declare_object)
    with pytest.raises(CheckpointError):
        checkpoint.restore(path)


def test_foreign_files_are_not_checkpoints(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, a=np.zeros(2))
    with pytest.raises(CheckpointError, match=r"member named 'a\.npy'"):
        checkpoint.restore(path)
    np.savez(path, leaf_0=np.zeros(2))
    with pytest.raises(CheckpointError, match="no valid manifest"):
        checkpoint.restore(path)
    path = tmp_path / "bare.npy"
    np.save(path, np.zeros(2))
    with pytest.raises(CheckpointError, match="unreadable"):
        checkpoint.restore(path)


# ----------------------------------------------------------------------------- wrong tree


def test_wrong_tree_names_the_first_mismatching_path(saved):
    path, state = saved
    missing = state._replace(params={**state.params, "dense_9": {"w": jnp.ones(2)}})
    with pytest.raises(CheckpointError, match=r"no leaf at key path 'params/dense_9/w'"):
        checkpoint.restore(path, like=missing)

    fewer = state._replace(params={k: v for k, v in state.params.items() if k != "norm"})
    with pytest.raises(CheckpointError, match=r"leaf at key path 'params/norm/scale' that `like`"):
        checkpoint.restore(path, like=fewer)

    wider = jax.tree.map(lambda x: x, state)
    wider.params["dense_0"]["w"] = jnp.ones((3, 5), jnp.bfloat16)
    with pytest.raises(
        CheckpointError,
        match=r"'params/dense_0/w': stored shape=\(3, 4\) dtype=bfloat16, expected shape=\(3, 5\)",
    ):
        checkpoint.restore(path, like=wider)

    recast = jax.tree.map(lambda x: x, state)
    recast.params["dense_0"]["w"] = jnp.ones((3, 4), jnp.float32)
    with pytest.raises(
        CheckpointError, match=r"'params/dense_0/w'.*expected shape=\(3, 4\) dtype=float32"
    ):
        checkpoint.restore(path, like=recast)


# ----------------------------------------------------------------------------- manager


def test_manager_keeps_the_newest_k(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpts", keep=2)
    for step in [10, 20, 30]:
        manager.save(step, {"x": jnp.full(2, float(step))}, metadata={"epoch": step})
    assert manager.steps() == [30, 20]
    tree, metadata, step = manager.restore_latest(like={"x": jnp.zeros(2)})
    assert step == 30 and metadata == {"epoch": 30} and tree["x"].tolist() == [30.0, 30.0]


def test_manager_skips_a_corrupt_newest_file_with_a_warning(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(1, {"x": jnp.ones(2)})
    newest = manager.save(2, {"x": jnp.full(2, 2.0)})
    newest.write_bytes(newest.read_bytes()[:-20])
    with pytest.warns(UserWarning, match=r"skipping corrupt checkpoint.*ckpt_0000000002"):
        tree, _, step = manager.restore_latest(like={"x": jnp.zeros(2)})
    assert step == 1 and tree["x"].tolist() == [1.0, 1.0]


def test_manager_raises_when_the_tree_changed(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(1, {"x": jnp.ones(2)})
    with pytest.raises(CheckpointError, match=r"'x'.*expected shape=\(3,\)"):
        manager.restore_latest(like={"x": jnp.zeros(3)})


def test_manager_empty_and_stale_temp_files(tmp_path):
    (tmp_path / ".ckpt_0000000005.npz.abc.tmp").write_bytes(b"partial")
    with pytest.warns(UserWarning, match=r"removing .*ckpt_0000000005.npz.abc.tmp: a partial"):
        manager = CheckpointManager(tmp_path, keep=1)
    assert manager.restore_latest() is None
    assert list(tmp_path.iterdir()) == []


def test_manager_validates_keep(tmp_path):
    with pytest.raises(ValueError, match="keep=0"):
        CheckpointManager(tmp_path, keep=0)
    assert os.path.isdir(tmp_path)


def test_manager_corrupt_file_warning_points_at_the_caller(tmp_path):
    # The warning names the line that called restore_latest (stacklevel through the
    # generator and the method), not a line inside funcnn or pytest.
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(1, {"x": jnp.ones(2)})
    newest = manager.save(2, {"x": jnp.full(2, 2.0)})
    newest.write_bytes(newest.read_bytes()[:-20])
    with pytest.warns(UserWarning, match="skipping corrupt checkpoint") as caught:
        manager.restore_latest(like={"x": jnp.zeros(2)})
    [warning] = [w for w in caught if "skipping corrupt" in str(w.message)]
    assert os.path.samefile(warning.filename, __file__)


def test_save_failure_surfaces_its_own_error_when_the_temp_file_is_already_gone(
    tmp_path, monkeypatch
):
    # A failed write whose temp file something else already removed (e.g. a manager's
    # stale-temp cleanup in another process) re-raises the write's error, not a
    # FileNotFoundError from the cleanup.
    def fsync_fails(fd):
        for tmp in tmp_path.glob(".*.tmp"):
            tmp.unlink()
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(tmp_path / "ckpt.npz", {"x": jnp.ones(2)})
    assert list(tmp_path.iterdir()) == []


def test_a_member_stored_twice_is_refused(saved):
    path, _ = saved
    with zipfile.ZipFile(path) as src:
        leaf = src.read("leaf_0.npy")
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as dst:
        dst.writestr("leaf_0.npy", leaf)
    with pytest.raises(CheckpointError, match=r"member named 'leaf_0.npy'.*each once"):
        checkpoint.restore(path)


def test_members_in_npy_format_2_0_are_read(saved):
    # NumPy writes format 2.0 when a header outgrows 64 KiB; the reader takes both versions.
    path, state = saved
    with zipfile.ZipFile(path) as src:
        members = {info.filename: src.read(info) for info in src.infolist()}
    for name, data in members.items():
        array = np.lib.format.read_array(io.BytesIO(data))
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, version=(2, 0))
        members[name] = buffer.getvalue()
        assert members[name][6:8] == b"\x02\x00"  # the format version bytes
    _copy_members(path, replace=members)
    assert_bitwise_equal(checkpoint.restore(path, like=state), state)


def test_checkpoints_get_ordinary_file_permissions(tmp_path):
    # 0o666 less the umask (as open() gives), not mkstemp's private 0o600.
    umask = os.umask(0o022)
    os.umask(umask)
    path = checkpoint.save(tmp_path / "state.npz", {"w": np.zeros(3)})
    assert os.stat(path).st_mode & 0o7777 == 0o666 & ~umask


def test_like_may_hold_python_scalars(tmp_path):
    # A Python float/int has no .shape: its shape is (), its dtype NumPy's float64/int64.
    path = checkpoint.save(tmp_path / "s.npz", {"lr": np.float64(0.5), "n": np.int64(3)})
    back = checkpoint.restore(path, like={"lr": 0.0, "n": 0})
    assert float(back["lr"]) == 0.5 and int(back["n"]) == 3


def test_files_declare_format_version_1_and_other_versions_are_refused(saved):
    # The on-disk format is versioned: today's files say version 1, and a reader of version 1
    # names a file of any other version instead of guessing at its layout.
    path, _ = saved

    def bump(members):
        manifest = manifest_of(members)
        assert (manifest["format"], manifest["version"]) == ("funcnn-checkpoint", 1)
        set_manifest(members, manifest | {"version": 2})

    rewrite(path, bump)
    with pytest.raises(CheckpointError, match="format version 2; this funcnn reads version 1"):
        checkpoint.restore(path)


def edit_manifest(path, edit):
    """Rewrite a checkpoint with its manifest replaced by `edit(manifest)`."""
    rewrite(path, lambda members: set_manifest(members, edit(manifest_of(members))))


@pytest.mark.parametrize(
    "edit", [lambda m: m | {"format": "other-format"}, lambda m: [m], lambda m: "text"]
)
def test_a_manifest_of_another_format_or_shape_is_not_a_checkpoint(saved, edit):
    path, _ = saved
    edit_manifest(path, edit)
    with pytest.raises(CheckpointError, match="is not a funcnn-checkpoint file"):
        checkpoint.restore(path)


def test_a_member_of_a_non_numeric_dtype_is_refused_from_its_header(saved):
    # Unicode text holds no pickles, yet it is not a parameter dtype: refused by its header.
    path, _ = saved
    rewrite(path, lambda members: members.update(leaf_0=np.array(["abc", "def"])))
    with pytest.raises(
        CheckpointError, match=re.escape("member 'leaf_0.npy': dtype <U3 is refused")
    ):
        checkpoint.restore(path)


@pytest.mark.parametrize("key", [True, 1.5, None])
def test_dict_keys_other_than_str_or_int_are_refused(tmp_path, key):
    with pytest.raises(TypeError, match="checkpoint dict keys must be str or int"):
        checkpoint.save(tmp_path / "s.npz", {key: np.zeros(2)})


def test_the_checksum_does_not_depend_on_the_manifests_key_order(saved):
    # The digest covers the canonical (sorted-key) JSON: a manifest rewritten with its keys in
    # another order holds the same content and still verifies.
    path, state = saved
    edit_manifest(path, lambda m: dict(reversed(list(m.items()))))
    assert_bitwise_equal(checkpoint.restore(path, like=state), state)


def test_a_member_whose_dtype_disagrees_with_the_manifest_is_refused(saved):
    # Same bytes (so the checksum still holds), read as int32 instead of the declared float32.
    path, _ = saved

    def reinterpret(members):
        leaves = manifest_of(members)["leaves"]
        name = f"leaf_{next(i for i, e in enumerate(leaves) if e['dtype'] == 'float32')}"
        members[name] = members[name].view(np.int32)

    rewrite(path, reinterpret)
    with pytest.raises(CheckpointError, match="unsupported or inconsistent dtype 'float32'"):
        checkpoint.restore(path)


def test_a_manager_makes_missing_parent_folders_and_opens_an_existing_one(tmp_path):
    CheckpointManager(tmp_path / "runs" / "a").save(3, {"w": np.zeros(2)})
    assert CheckpointManager(tmp_path / "runs" / "a").steps() == [3]  # resuming: it exists


# ----------------------------------------------------------------------------- every dtype

# (dtype, values at the edges of what it holds): each must come back bit for bit.
EVERY_DTYPE = [
    ("bool", [True, False]),
    ("int8", [-128, 127]),
    ("uint8", [0, 255]),
    ("int16", [-(2**15), 2**15 - 1]),
    ("uint16", [0, 2**16 - 1]),
    ("int32", [-(2**31), 2**31 - 1]),
    ("uint32", [0, 2**32 - 1]),
    ("int64", [2**40, -(2**63)]),
    ("uint64", [2**63 + 5, 2**64 - 1]),
    ("float16", [65504.0, 6e-8]),
    ("float32", [3.4e38, 1e-45]),
    ("float64", [1 / 3, 1e-310]),
    ("complex64", [1 + 1j / 3, -0.0 - 2j]),
    ("complex128", [1 + 1j / 3, 1e300 - 1e-300j]),
    ("bfloat16", [3e38, -1 / 3]),
    ("float8_e4m3fn", [448.0, -0.015625]),
]


@pytest.mark.parametrize("dtype, values", EVERY_DTYPE, ids=[d for d, _ in EVERY_DTYPE])
def test_every_dtype_round_trips_exactly_without_like(tmp_path, dtype, values):
    # jax's x64 mode is off here: a device copy would turn int64 2**40 into 0, uint64
    # 2**63 + 5 into 5 and float64 into float32. Without `like`, NumPy of the stored dtype.
    x = np.asarray(values, dtype=dtype)
    path = checkpoint.save(tmp_path / "d.npz", {"x": x, "scalar": x[0]})
    back = checkpoint.restore(path)
    for got, want in [(back["x"], x), (back["scalar"], x[0])]:
        assert isinstance(got, np.ndarray), type(got)
        assert got.dtype == want.dtype and got.shape == np.shape(want)
        assert got.tobytes() == np.asarray(want).tobytes()
    if dtype in ("int64", "uint64", "float64"):  # the reported cases, spelled out
        assert back["x"].tolist() == [float(v) if dtype == "float64" else v for v in values]


def test_like_of_64_bit_shape_dtype_structs_comes_back_as_numpy_not_narrowed(tmp_path):
    tree = {"i64": np.asarray([2**40]), "f64": np.asarray([1 / 3]), "u64": np.uint64(2**63 + 5)}
    path = checkpoint.save(tmp_path / "w.npz", tree)
    like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), tree)
    back = checkpoint.restore(path, like=like)
    assert back["i64"].tolist() == [2**40] and back["f64"].tolist() == [1 / 3]
    assert int(back["u64"]) == 2**63 + 5 and back["u64"].dtype == np.uint64


def test_64_bit_leaves_refuse_a_device_sharding_that_would_narrow_them(tmp_path):
    path = checkpoint.save(tmp_path / "w.npz", {"i64": np.asarray([2**40])})
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    like = {"i64": jax.ShapeDtypeStruct((1,), np.int64, sharding=sharding)}
    with pytest.raises(CheckpointError, match=r"'i64': dtype int64 cannot be placed.*x64"):
        checkpoint.restore(path, like=like)


@pytest.mark.parametrize("value", [np.asarray([1], "int4"), np.asarray(["a"], object)])
def test_dtypes_it_cannot_store_exactly_are_refused_on_save(tmp_path, value):
    with pytest.raises(TypeError, match=r"cannot checkpoint leaf 'v' of dtype"):
        checkpoint.save(tmp_path / "v.npz", {"v": value})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "metadata, where",
    [
        ({1: 2}, r"got 1 \(int\) in metadata\."),
        ({"a": 1, 2: 3}, r"got 2 \(int\) in metadata\."),
        ({"cfg": {None: 1, "b": 2}}, r"got None \(NoneType\) in metadata\['cfg'\]"),
        ({"runs": [{(1, 2): 3}]}, r"got \(1, 2\) \(tuple\) in metadata\['runs'\]\[0\]"),
    ],
)
def test_metadata_keys_that_are_not_strings_are_refused_naming_the_key(tmp_path, metadata, where):
    with pytest.raises(TypeError, match=r"metadata keys must be str.*" + where):
        checkpoint.save(tmp_path / "m.npz", {"a": np.ones(1)}, metadata=metadata)
    assert not list(tmp_path.iterdir())


def test_metadata_must_be_a_dict(tmp_path):
    with pytest.raises(TypeError, match=r"metadata must be a dict.*got list"):
        checkpoint.save(tmp_path / "m.npz", {"a": np.ones(1)}, metadata=[1, 2])


def test_manager_refuses_a_step_below_the_newest_and_keeps_what_it_wrote(tmp_path):
    manager = CheckpointManager(tmp_path, keep=1)
    later = manager.save(100, {"x": np.ones(2)})
    # A run restarted over a later run's folder: refused, nothing written, nothing deleted.
    with pytest.raises(ValueError, match=r"cannot save step 5 .*later step \(ckpt_0000000100"):
        manager.save(5, {"x": np.zeros(2)})
    assert manager.steps() == [100] and later.exists()
    # Saving the newest step again replaces it; every returned path exists.
    again = manager.save(100, {"x": np.full(2, 2.0)})
    assert again == later and again.exists() and manager.steps() == [100]
    newest = manager.save(101, {"x": np.full(2, 3.0)})
    assert newest.exists() and manager.steps() == [101]
    assert checkpoint.restore(newest)["x"].tolist() == [3.0, 3.0]


@pytest.mark.parametrize(
    "step, error, message",
    [
        (-1, ValueError, r"step must be an int ≥ 0, got step=-1"),
        (True, TypeError, r"step must be an int ≥ 0, got True \(bool\)"),
        (np.bool_(False), TypeError, r"got np.False_ \(bool\)"),
        (3.0, TypeError, r"got 3.0 \(float\)"),
        ("7", TypeError, r"got '7' \(str\)"),
    ],
)
def test_manager_refuses_steps_that_are_not_nonnegative_ints(tmp_path, step, error, message):
    manager = CheckpointManager(tmp_path, keep=3)
    with pytest.raises(error, match=message):
        manager.save(step, {"x": np.ones(1)})
    assert list(tmp_path.iterdir()) == [] and manager.steps() == []
    assert manager.save(np.int64(4), {"x": np.ones(1)}).name == "ckpt_0000000004.npz"


def test_a_read_only_manager_makes_and_sweeps_nothing(tmp_path):
    missing = CheckpointManager(tmp_path / "absent", keep=1, create=False)
    assert missing.steps() == [] and missing.restore_latest() is None
    assert not (tmp_path / "absent").exists()
    stale = tmp_path / ".ckpt_0000000005.npz.abc.tmp"
    stale.write_bytes(b"partial")
    reader = CheckpointManager(tmp_path, keep=1, create=False)
    assert stale.exists() and reader.steps() == []


def test_a_corrupt_later_file_is_set_aside_so_a_resumed_run_can_save(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(10, {"x": np.ones(2)})
    torn = manager.save(20, {"x": np.full(2, 2.0)})
    data = torn.read_bytes()
    torn.write_bytes(data[: len(data) // 2])  # a bad disk block: restore_latest skips it
    with pytest.warns(UserWarning, match="skipping corrupt checkpoint"):
        assert manager.restore_latest()[2] == 10
    # The run resumed from step 10 goes on: step 15 is saved, the torn file kept aside.
    with pytest.warns(UserWarning, match=r"moved corrupt checkpoint .*ckpt_0000000020.npz aside"):
        manager.save(15, {"x": np.full(2, 1.5)})
    assert manager.steps() == [15, 10]
    assert (tmp_path / "ckpt_0000000020.npz.corrupt").read_bytes() == data[: len(data) // 2]
