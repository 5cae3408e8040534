"""Hugging Face checkpoints made by transformers (benchmarks/oracles/hf_decoders.py) load into
funcnn with the same logits (≤ 1e-4 relative, float32) and the same 20 greedy tokens; the
name map, save_pretrained's round trip, and the refusals — without torch."""

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import models
from funcnn.models.pretrained import UnsupportedConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "hf"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module", params=CASES)
def loaded(request):
    model, params = models.from_pretrained(FIXTURES / request.param)
    return request.param, model, params, np.load(FIXTURES / request.param / "expected.npz")


def test_logits_and_greedy_tokens_match_transformers(loaded):
    name, model, params, expected = loaded
    assert len(CASES) == 4
    logits = np.asarray(jax.jit(model.apply)(params, jnp.asarray(expected["ids"])))
    assert relative(logits, expected["logits"]) <= 1e-4, name
    greedy = models.generate(model, params, jnp.asarray(expected["prompt"]), 20)
    np.testing.assert_array_equal(np.asarray(greedy), expected["greedy"])


def test_save_pretrained_writes_what_from_pretrained_reads(loaded, tmp_path):
    name, model, params, _ = loaded
    models.save_pretrained(model, params, tmp_path / name)
    again, params2 = models.from_pretrained(tmp_path / name)
    assert again.config == model.config
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # bitwise: same weights
    written = json.loads((tmp_path / name / "config.json").read_text())
    original = json.loads((FIXTURES / name / "config.json").read_text())
    for field in ("model_type", "vocab_size", "tie_word_embeddings"):
        assert written[field] == original.get(field, written[field])


def test_config_fields_that_change_the_math_are_read():
    _, config = models.config_from_hf(
        json.loads((FIXTURES / "llama_mqa_tied_biases" / "config.json").read_text())
    )
    assert (config.num_kv_heads, config.head_dim, config.rope_theta) == (1, 8, 500.0)
    assert (config.norm_eps, config.tie_embeddings, config.attention_bias) == (1e-5, True, True)
    assert config.mlp_bias and config.gated_mlp and config.mlp_activation == "silu"
    _, gpt2 = models.config_from_hf(
        json.loads((FIXTURES / "gpt2_untied_sharded" / "config.json").read_text())
    )
    assert (gpt2.mlp_activation, gpt2.mlp_hidden, gpt2.tie_embeddings) == ("gelu", 24, False)


def test_a_pytorch_state_dict_goes_through_the_same_name_map():
    folder = FIXTURES / "llama_gqa_untied"
    _, config = models.config_from_hf(json.loads((folder / "config.json").read_text()))
    state_dict, _ = models.read_safetensors(folder / "state_dict.safetensors")
    params = models.params_from_state_dict(state_dict, config, "llama")
    expected = np.load(folder / "expected.npz")
    logits = np.asarray(models.decoder(config).apply(params, jnp.asarray(expected["ids"])))
    assert relative(logits, expected["logits"]) <= 1e-4
    with pytest.raises(ValueError, match="missing"):
        models.params_from_state_dict(
            {k: v for k, v in state_dict.items() if "up_proj" not in k}, config, "llama"
        )
    with pytest.raises(ValueError, match="does not use"):
        models.params_from_state_dict({**state_dict, "extra.weight": np.ones(2)}, config, "llama")


def test_stacked_params_load_and_generate_alike():
    folder = FIXTURES / "llama_gqa_untied"
    model, params = models.from_pretrained(folder, scan_layers=True)
    expected = np.load(folder / "expected.npz")
    greedy = models.generate(model, params, jnp.asarray(expected["prompt"]), 20)
    np.testing.assert_array_equal(np.asarray(greedy), expected["greedy"])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"model_type": "mistral"}, "model_type 'mistral'"),
        ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "rope_type"),
        ({"hidden_act": "tanh"}, "hidden_act"),
    ],
)
def test_unsupported_types_and_fields_are_named(change, named, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "llama_gqa_untied", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(UnsupportedConfigError, match=named):
        models.from_pretrained(folder)


def test_save_pretrained_refuses_what_no_hf_layout_computes(tmp_path):
    model = models.decoder(models.llama_config(32, 16, 2, 4, 8, sliding_window=4))
    with pytest.raises(UnsupportedConfigError, match="sliding_window"):
        models.save_pretrained(model, {}, tmp_path / "out")  # refused before any weight is read
    assert not (tmp_path / "out").exists()


def test_bfloat16_weights_round_trip_as_stored(tmp_path):
    model, params = models.from_pretrained(FIXTURES / "gpt2_tied")
    models.save_pretrained(model, params, tmp_path / "bf16", dtype=jnp.bfloat16)
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    _, loaded = models.from_pretrained(tmp_path / "bf16", dtype=None)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded), strict=True):
        assert b.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a).astype(jnp.bfloat16))
