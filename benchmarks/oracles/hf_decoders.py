"""Oracle: tiny random GPT-2 and Llama checkpoints built by Hugging Face transformers, saved
as test fixtures with the logits and greedy tokens transformers computes for them.

    pip install -e .[oracle]      # torch (the local 2.13.0 wheel), transformers, safetensors
    python benchmarks/oracles/hf_decoders.py            # writes tests/fixtures/hf/, prints

For each case it (1) builds the model with transformers from a small config (random
weights, scaled up so logits are far from uniform and greedy choices far from ties),
(2) saves it with `save_pretrained` (config.json + model.safetensors, or shards + index),
(3) records transformers' float32 logits for fixed ids and its 20 greedy tokens, then
(4) loads the directory with `funcnn.models.from_pretrained` and prints the agreement, and
(5) writes the funcnn params back with `funcnn.models.save_pretrained`, loads that with
transformers and prints the logit agreement again. The default test suite
(tests/test_models_pretrained.py, no torch there) repeats (4) against the committed files.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from funcnn import models  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "hf"
NEW_TOKENS = 20
VOCAB = 64

CASES = {
    "gpt2_tied": (
        "gpt2",
        dict(n_embd=16, n_layer=2, n_head=4, n_positions=48, vocab_size=VOCAB),
        {},
    ),
    "gpt2_untied_sharded": (
        "gpt2",
        dict(
            n_embd=16,
            n_layer=2,
            n_head=2,
            n_inner=24,
            n_positions=48,
            vocab_size=VOCAB,
            activation_function="gelu",
            tie_word_embeddings=False,
        ),
        {"max_shard_size": "8KB"},
    ),
    "llama_gqa_untied": (
        "llama",
        dict(
            hidden_size=16,
            intermediate_size=24,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=48,
            vocab_size=VOCAB,
            tie_word_embeddings=False,
        ),
        {},
    ),
    "llama_mqa_tied_biases": (
        "llama",
        dict(
            hidden_size=16,
            intermediate_size=20,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=48,
            vocab_size=VOCAB,
            tie_word_embeddings=True,
            attention_bias=True,
            mlp_bias=True,
            rope_theta=500.0,
            rms_norm_eps=1e-5,
        ),
        {},
    ),
}


def build(model_type: str, fields: dict) -> torch.nn.Module:
    torch.manual_seed(sum(map(ord, model_type)) + len(fields))
    config_cls = transformers.GPT2Config if model_type == "gpt2" else transformers.LlamaConfig
    if model_type == "gpt2":
        fields = dict(fields, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    # No end-of-sequence token: generate must run all 20 steps (Llama's default eos id 2
    # would stop it early and pad).
    config = config_cls(**fields, initializer_range=0.3, bos_token_id=None, eos_token_id=None)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    with torch.no_grad():  # biases and norm gains away from 0 and 1, so each one matters
        for name, p in model.named_parameters():
            if p.ndim == 1:
                base = (
                    1.0 if ("norm" in name or ".ln_" in name) and name.endswith("weight") else 0.0
                )
                p.copy_(base + 0.2 * torch.randn_like(p))
    return model.eval().float()


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / max |b|: the error relative to the logits' scale."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    report = {}
    for name, (model_type, fields, save_kwargs) in CASES.items():
        model = build(model_type, fields)
        folder = OUT / name
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder, safe_serialization=True, **save_kwargs)
        for extra in ("generation_config.json",):
            (folder / extra).unlink(missing_ok=True)
        ids = rng.integers(0, VOCAB, (2, 7))
        prompt = rng.integers(0, VOCAB, (1, 5))
        with torch.no_grad():
            logits = model(torch.as_tensor(ids)).logits.numpy()
            greedy = model.generate(
                torch.as_tensor(prompt),
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                attention_mask=torch.ones_like(torch.as_tensor(prompt)),
                pad_token_id=0,
            ).numpy()
            # Margin between the best and second-best logit along the greedy path: far from
            # 0, so float rounding cannot flip a choice.
            path_logits = model(torch.as_tensor(greedy)).logits[0, 4:-1].numpy()
        top2 = np.sort(path_logits, axis=-1)[:, -2:]
        margin = float(np.min(top2[:, 1] - top2[:, 0]))
        np.savez(folder / "expected.npz", ids=ids, logits=logits, prompt=prompt, greedy=greedy)
        if name == "llama_gqa_untied":  # a bare PyTorch state_dict, through the same name map
            from safetensors.torch import save_file

            save_file(model.state_dict(), str(folder / "state_dict.safetensors"))

        fmodel, params = models.from_pretrained(folder)
        ours = np.asarray(fmodel.apply(params, jnp.asarray(ids)))
        ours_greedy = np.asarray(models.generate(fmodel, params, jnp.asarray(prompt), NEW_TOKENS))
        with tempfile.TemporaryDirectory() as tmp:
            models.save_pretrained(fmodel, params, tmp)
            back = transformers.AutoModelForCausalLM.from_pretrained(
                tmp, attn_implementation="eager"
            ).eval()
            with torch.no_grad():
                back_logits = back(torch.as_tensor(ids)).logits.numpy()
        size = sum(f.stat().st_size for f in folder.iterdir())
        report[name] = {
            "funcnn_vs_transformers_rel": relative(ours, logits),
            "funcnn_vs_transformers_max_abs": float(np.max(np.abs(ours - logits))),
            "greedy_identical": bool(np.array_equal(ours_greedy, greedy)),
            "greedy_min_margin": margin,
            "save_pretrained_roundtrip_rel": relative(back_logits, logits),
            "fixture_bytes": size,
        }
        print(name, json.dumps(report[name]))
    ok = all(
        r["funcnn_vs_transformers_rel"] <= 1e-4
        and r["greedy_identical"]
        and r["save_pretrained_roundtrip_rel"] <= 1e-4
        for r in report.values()
    )
    (OUT / "agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"transformers {transformers.__version__}, torch {torch.__version__}, jax {jax.__version__}"
    )
    print("all cases agree" if ok else "DISAGREEMENT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
