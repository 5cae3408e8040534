"""The configured decoder (GPT-2, Llama, nanoGPT, and every option together) against the
float64 loop transcription `reference.decoder_reference`; one forward with a KV cache equals
the full recompute at every step; `models.generate`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import models, nn
from funcnn.reference import decoder_reference
from funcnn.reference.numerical import complex_step

VOCAB, DIM, LAYERS, HEADS, MAX_LEN = 32, 16, 2, 4, 12
SIZES = (VOCAB, DIM, LAYERS, HEADS, MAX_LEN)
LAYOUTS = {
    "gpt2": models.gpt2_config(*SIZES),
    "llama_gqa_untied": models.llama_config(*SIZES, num_kv_heads=2, mlp_hidden=24),
    "llama_mqa_tied": models.llama_config(*SIZES, num_kv_heads=1, tie_embeddings=True),
    "nanogpt": models.nanogpt_config(*SIZES),
    "every_option": models.llama_config(
        *SIZES,
        num_kv_heads=2,
        head_dim=6,
        qk_norm=True,
        sliding_window=3,
        logit_soft_cap=3.0,
        rope_interleaved=True,
        rope_theta=50.0,
        mlp_activation="relu2",
        gated_mlp=False,
        attention_bias=True,
        attention_out_bias=False,
    ),
    "funcnn_sinusoidal": models.DecoderConfig(*SIZES, positions="sinusoidal", mlp_hidden=20),
}


def perturbed(params, seed):
    """Move every leaf off its init (scales 1, biases 0), so a forgotten one shows."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda a: np.asarray(a, np.float64) + 0.2 * rng.normal(size=a.shape), params
    )


# llama_mqa_tied and funcnn_sinusoidal are held against the reference elsewhere (the HF
# fixture and test_reference_models' transformer_lm); these four cover every option.
REFERENCE_CASES = ["every_option", "gpt2", "llama_gqa_untied", "nanogpt"]


@pytest.mark.parametrize("layout", REFERENCE_CASES)
def test_decoder_matches_reference_values_and_gradients(layout):
    config = LAYOUTS[layout]
    seed = sorted(LAYOUTS).index(layout)
    model = models.decoder(config)
    params, shape = model.init(jax.random.key(seed), (2, 5))
    assert shape == (2, 5, VOCAB)
    assert ("head" in params) == (not config.tie_embeddings)
    assert ("positions" in params) == (config.positions == "learned")
    params = perturbed(params, seed)
    rng = np.random.default_rng(seed + 100)
    ids = rng.integers(0, VOCAB, (2, 5))
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    real = mask[..., None]
    cotangent = rng.normal(size=(2, 5, VOCAB)) * real
    with jax.enable_x64(True):
        p64 = jax.tree.map(jnp.asarray, params)
        apply = lambda p: model.apply(p, jnp.asarray(ids), mask=jnp.asarray(mask))

        def values_and_gradient(p, ct):  # one compiled program for both
            out, vjp = jax.vjp(apply, p)
            return out, vjp(ct)[0]

        out, grads = jax.jit(values_and_gradient)(p64, jnp.asarray(cotangent))
        got = np.asarray(out)
    expected = decoder_reference(ids, params, config, mask=mask)
    np.testing.assert_allclose(got * real, expected * real, rtol=1e-10, atol=1e-11)
    direction = jax.tree.map(lambda a: rng.normal(size=a.shape), params)
    slope = complex_step(
        lambda p: np.sum(decoder_reference(ids, p, config, mask=mask) * cotangent),
        params,
        direction,
    )
    got_slope = sum(
        float(np.sum(np.asarray(g) * d))
        for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    )
    assert abs(got_slope - slope) <= 1e-10 * abs(slope), (got_slope, slope)


CACHE_CASES = [(layout, False) for layout in REFERENCE_CASES] + [("llama_mqa_tied", True)]


@pytest.mark.parametrize(("layout", "scan_layers"), CACHE_CASES)
def test_cached_logits_equal_full_recompute_at_every_step(layout, scan_layers):
    # One token at a time from position 0: every step reads the cache the earlier ones wrote
    # (the multi-token prefill is checked through generate below).
    model = models.decoder(LAYOUTS[layout], scan_layers=scan_layers)
    params, _ = model.init(jax.random.key(1), (2, MAX_LEN))
    ids = jax.random.randint(jax.random.key(2), (2, MAX_LEN), 0, VOCAB)
    full = np.asarray(jax.jit(model.apply)(params, ids))  # (B, T, V)
    step = jax.jit(lambda p, i, pos, c: model.apply(p, i, positions=pos, cache=c))
    cache = model.init_cache(2)
    for t in range(MAX_LEN):
        logits, cache = step(params, ids[:, t : t + 1], jnp.array([t]), cache)
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, t], rtol=1e-5, atol=2e-5)


@pytest.fixture(scope="module")
def llama():
    model = models.decoder(LAYOUTS["llama_gqa_untied"])
    params, _ = model.init(jax.random.key(3), (1, MAX_LEN))
    return model, params


PROMPT = jnp.asarray([[3, 1, 4], [1, 5, 9]], jnp.int32)
NEW = 6


def test_greedy_generate_is_argmax_of_the_full_recompute(llama):
    model, params = llama
    out = np.asarray(models.generate(model, params, PROMPT, NEW))
    assert out.shape == (2, 3 + NEW) and np.array_equal(out[:, :3], np.asarray(PROMPT))
    # The slow way: the whole sequence again at every step, in a fixed (B, T + n) buffer
    # (causal: the zeros after position t cannot change its logits), one compiled program.
    full = jax.jit(model.apply)
    ids = np.zeros((2, 3 + NEW), np.int32)
    ids[:, :3] = np.asarray(PROMPT)
    for t in range(3, 3 + NEW):
        ids[:, t] = np.argmax(np.asarray(full(params, jnp.asarray(ids)))[:, t - 1], axis=-1)
    np.testing.assert_array_equal(out, ids)
    # Stacked (scan_layers) params of the same weights give the same ids.
    stacked = models.decoder(LAYOUTS["llama_gqa_untied"], scan_layers=True)
    out_scan = models.generate(stacked, nn.stack_layers(params, LAYERS), PROMPT, NEW)
    np.testing.assert_array_equal(np.asarray(out_scan), out)


def test_sampling_is_reproducible_and_top_k_one_is_greedy(llama):
    model, params = llama
    key = jax.random.key(9)
    a = models.generate(model, params, PROMPT, NEW, temperature=0.8, top_k=1, key=key)
    b = models.generate(model, params, PROMPT, NEW, temperature=0.8, top_k=1, key=key)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    greedy = models.generate(model, params, PROMPT, NEW)  # compiled by the test above
    np.testing.assert_array_equal(np.asarray(a), np.asarray(greedy))


def test_generate_refuses_bad_requests(llama):
    model, params = llama
    prompt = jnp.asarray([[3, 1, 4]], jnp.int32)
    with pytest.raises(
        ValueError, match="3 \\+ max_new_tokens 10 = 13 exceeds the model's max_len=12"
    ):
        models.generate(model, params, prompt, 10)
    with pytest.raises(TypeError, match="integer token ids"):
        models.generate(model, params, prompt.astype(jnp.float32), 2)
    with pytest.raises(ValueError, match=r"\[0, 32\), got \[32\]"):
        models.generate(model, params, prompt.at[0, 1].set(VOCAB), 2)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        models.generate(model, params, prompt, 2, temperature=0.5)
    with pytest.raises(ValueError, match="batch, time"):
        models.generate(model, params, prompt[0], 2)
    with pytest.raises(TypeError, match="Decoder"):
        models.generate(model.layer, params, prompt, 2)


def test_transformer_lm_is_the_decoder_preset():
    lm = nn.transformer_lm(11, 8, num_heads=2, depth=2, max_len=6, mlp_ratio=2)
    params, _ = lm.init(jax.random.key(0), (2, 6))
    assert sorted(params) == ["block_0", "block_1", "embedding", "head", "norm", "positions"]
    assert sorted(params["block_0"]["mlp"]) == ["dense_0", "dense_2", "gelu_1"]
    # The decoder's own init with the same config and key gives the very same params.
    config = models.DecoderConfig(11, 8, 2, 2, 6, mlp_hidden=16)
    same, _ = models.decoder(config).init(jax.random.key(0), (2, 6))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(same), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_config_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="num_kv_heads=3 must divide num_heads=4"):
        models.llama_config(*SIZES, num_kv_heads=3)
    with pytest.raises(ValueError, match="positions"):
        models.DecoderConfig(*SIZES, positions="alibi")
    with pytest.raises(ValueError, match="divisible"):
        models.DecoderConfig(32, 10, 2, 4, 8)
    with pytest.raises(ValueError, match="remat=True needs scan_layers=True"):
        models.decoder(LAYOUTS["gpt2"], remat=True)


def test_readme_modern_architectures_example_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index("## Modern architectures")
    section = text[start : text.index("\n## ", start + 1)]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    exec(compile(code, "README modern architectures", "exec"), {})  # it asserts its own results


def test_gpt2_init_is_normal_002_with_scaled_residual_projections():
    # Radford et al. 2019: every weight N(0, 0.02²); the residual projections (attention out,
    # MLP down) N(0, 0.02²/(2L)); biases 0, norm gains 1. Measured on a wider init-only model.
    layers = 2
    config = models.gpt2_config(64, 128, layers, 4, 16)
    params, _ = models.decoder(config).init(jax.random.key(5), (1, 16))
    block = params["block_1"]
    residual = 0.02 / np.sqrt(2 * layers)
    for leaf, std in (
        (block["attention"]["q"]["w"], 0.02),
        (block["mlp"]["dense_0"]["w"], 0.02),
        (params["embedding"]["table"], 0.02),
        (block["attention"]["o"]["w"], residual),
        (block["mlp"]["dense_2"]["w"], residual),
    ):
        assert abs(float(np.std(leaf)) / std - 1) < 0.05 and abs(float(np.mean(leaf))) < 0.1 * std
    assert np.all(np.asarray(block["attention"]["o"]["b"]) == 0)
    assert np.all(np.asarray(block["norm_mlp"]["scale"]) == 1)
