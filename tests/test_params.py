"""params: summary table, counts, decay masks and their description."""

import jax
import jax.numpy as jnp
import pytest

from funcnn import losses, nn
from funcnn.params import count_params, decay_mask, describe_mask, summary

KEY = jax.random.key(0)
MODEL = nn.serial(nn.dense(5), nn.layer_norm(), nn.activation(jnp.tanh), nn.dense(2))
PARAMS, _ = MODEL.init(KEY, (-1, 3))
# dense_0: w 3·5=15, b 5; layer_norm_1: 5 + 5; tanh_2: {}; dense_3: w 5·2=10, b 2 → 42
EXPECTED_COUNT = 15 + 5 + 5 + 5 + 10 + 2


def test_count_params():
    assert count_params(PARAMS) == EXPECTED_COUNT
    assert count_params({}) == 0


def test_summary_lists_paths_shapes_dtypes_counts_and_total():
    text = summary(PARAMS)
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("dense_0/w"))
    assert "(3, 5)" in row and "float32" in row and row.rstrip().endswith("15")
    for path in ("dense_0/b", "layer_norm_1/scale", "layer_norm_1/bias", "dense_3/w", "dense_3/b"):
        assert any(line.startswith(path + " ") for line in lines), path
    assert lines[-1].startswith("total") and lines[-1].rstrip().endswith(str(EXPECTED_COUNT))
    assert "6 tensors" in lines[-1]


def test_decay_mask_selects_matrices_only():
    mask = decay_mask(PARAMS)
    assert mask["dense_0"] == {"w": True, "b": False}
    assert mask["layer_norm_1"] == {"scale": False, "bias": False}
    assert mask["tanh_2"] == {}
    assert mask["dense_3"]["w"] is True
    everything = decay_mask(PARAMS, min_ndim=0)
    assert all(jax.tree.leaves(everything))


def test_describe_mask_reports_counts_and_names():
    text = describe_mask(PARAMS, decay_mask)
    assert text.startswith("decays 2 tensors (25 params): dense_0/w, dense_3/w; ")
    assert "skips 4 tensors (17 params): dense_0/b, dense_3/b, layer_norm_1/bias" in text


def test_decay_mask_works_with_l2_penalty():
    expected = 0.5 * (jnp.sum(PARAMS["dense_0"]["w"] ** 2) + jnp.sum(PARAMS["dense_3"]["w"] ** 2))
    got = losses.l2_penalty(PARAMS, decay_mask(PARAMS))
    assert abs(float(got) - float(expected)) < 1e-5 * float(expected)


def test_describe_mask_structure_mismatch():
    with pytest.raises(ValueError, match="structure"):
        describe_mask(PARAMS, {"dense_0": True})
