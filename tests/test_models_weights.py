"""safetensors read/write of parameter trees: names, every dtype (bfloat16 included),
metadata strings, the `like` check and an atomic write."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import models

TREE = {
    "block_0": {"attention": {"q": {"w": np.arange(6.0).reshape(2, 3)}}, "relu_1": {}},
    "embedding": {"table": np.arange(4, dtype=np.float16).reshape(2, 2)},
    "bf16": jnp.asarray([1.5, -2.25, 3e-3], jnp.bfloat16),
    "count": np.asarray([7, 2**40], np.int64),
    "flags": np.asarray([True, False]),
}


def test_flatten_names_are_dotted_paths_and_invert():
    flat = models.flatten_params(TREE)
    assert sorted(flat) == [
        "bf16",
        "block_0.attention.q.w",
        "count",
        "embedding.table",
        "flags",
    ]
    back = models.unflatten_params(flat)
    assert back["block_0"]["attention"]["q"]["w"].shape == (2, 3)
    with pytest.raises(ValueError, match="without '\\.'"):
        models.flatten_params({"a.b": np.ones(1)})


def test_every_dtype_and_the_metadata_round_trip_exactly(tmp_path):
    path = tmp_path / "w.safetensors"
    models.save_safetensors(path, TREE, metadata={"step": "12", "note": "héllo"})
    params, metadata = models.load_safetensors(path)
    assert metadata == {"step": "12", "note": "héllo"}
    for name, value in models.flatten_params(TREE).items():
        got = models.flatten_params(params)[name]
        assert got.dtype == value.dtype, name
        np.testing.assert_array_equal(got, value)
    # With `like`, the empty subtree of a parameterless layer comes back too.
    like = jax.tree.map(lambda a: np.zeros_like(np.asarray(a)), TREE)  # exact dtypes
    restored, _ = models.load_safetensors(path, like=like)
    assert restored["block_0"]["relu_1"] == {}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_mismatches_and_bad_metadata_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    with pytest.raises(TypeError, match="strings to strings"):
        models.save_safetensors(path, TREE, metadata={"step": 12})
    models.save_safetensors(path, TREE)
    like = jax.tree.map(lambda a: np.zeros_like(np.asarray(a)), TREE)  # exact dtypes
    wrong = dict(like, bf16=jax.ShapeDtypeStruct((3,), jnp.float32))
    with pytest.raises(ValueError, match="'bf16' is bfloat16"):
        models.load_safetensors(path, like=wrong)
    with pytest.raises(ValueError, match="lacks"):
        models.load_safetensors(
            path, like=dict(like, extra=jax.ShapeDtypeStruct((1,), jnp.float32))
        )
