"""Hugging Face checkpoints in and out: `from_pretrained(dir)` and `save_pretrained(...)`.

A Hugging Face model directory is `config.json` plus `model.safetensors` (or shards listed
by `model.safetensors.index.json`). Interop is a name map and a few transposes, not a second
model (nanoGPT's `from_pretrained` does the same):

    GPT-2 (`model_type` "gpt2")                      funcnn decoder
    transformer.wte.weight        (V, D)             embedding.table
    transformer.wpe.weight        (P, D)             positions.table
    transformer.h.i.ln_1.{weight, bias}              block_i.norm_attention.{scale, bias}
    transformer.h.i.attn.c_attn.{weight (D, 3D), bias}  → split in three: attention.{q, k, v}
    transformer.h.i.attn.c_proj.{weight, bias}       block_i.attention.o.{w, b}
    transformer.h.i.ln_2                             block_i.norm_mlp
    transformer.h.i.mlp.c_fc / c_proj                block_i.mlp.dense_0 / dense_2
    transformer.ln_f                                 norm
    GPT-2's Conv1D stores weights (in, out), as funcnn does: no transpose.

    Llama (`model_type` "llama")
    model.embed_tokens.weight     (V, D)             embedding.table
    model.layers.i.input_layernorm.weight            block_i.norm_attention.scale
    model.layers.i.self_attn.{q,k,v,o}_proj.weight   block_i.attention.{q,k,v,o}.w   (transposed)
    model.layers.i.post_attention_layernorm.weight   block_i.norm_mlp.scale
    model.layers.i.mlp.{gate,up,down}_proj.weight    block_i.mlp.{gate,up,down}.w    (transposed)
    model.norm.weight                                norm.scale
    lm_head.weight                (V, D)             head.w (transposed; absent when tied)
    nn.Linear stores weights (out, in): every Llama matrix is transposed.

A PyTorch `state_dict` saved as safetensors uses the same names, so `params_from_state_dict`
takes it through the same table. Every config field that changes the math is read; one
that is set to something the decoder does not compute (rope_scaling, cross-attention,
scaled-by-layer attention, …) is an error naming it, never a silent approximation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.models.decoder import Decoder, DecoderConfig, decoder
from funcnn.models.weights import read_safetensors, save_safetensors
from funcnn.nn.core import Params
from funcnn.nn.stack import unstack_layers

__all__ = [
    "MODEL_TYPES",
    "UnsupportedConfigError",
    "config_from_hf",
    "config_to_hf",
    "from_pretrained",
    "params_from_state_dict",
    "params_to_state_dict",
    "save_pretrained",
]

MODEL_TYPES = ("gpt2", "llama")
"""The Hugging Face `model_type`s that `from_pretrained` reads and `save_pretrained` writes."""

# Hugging Face activation names → funcnn's feed_forward activations (and back).
_HF_ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "silu": "silu",
    "swish": "silu",
    "relu": "relu",
}
_TO_HF_ACTIVATION = {"gelu_tanh": "gelu_new", "gelu": "gelu", "silu": "silu", "relu": "relu"}

# Buffers (not parameters) that old GPT-2 checkpoints carry: the causal mask.
_GPT2_BUFFERS = (".attn.bias", ".attn.masked_bias")


class UnsupportedConfigError(ValueError):
    """A checkpoint whose model type or math-changing config field the decoder cannot compute."""


def _unsupported(model_type: str, field: str, value: Any, supported: str) -> UnsupportedConfigError:
    return UnsupportedConfigError(
        f"{model_type} config: {field}={value!r} changes the model's math and is not supported "
        f"({supported}); refusing rather than approximating."
    )


def _rope_theta(hf: Mapping[str, Any]) -> float:
    """θ from `rope_theta` (transformers ≤ 4) or `rope_parameters` (5); scaling is refused."""
    scaling = hf.get("rope_scaling")
    if scaling:
        raise _unsupported("llama", "rope_scaling", scaling, "only unscaled RoPE")
    params = hf.get("rope_parameters") or {}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind != "default":
        raise _unsupported("llama", "rope_parameters.rope_type", kind, "only 'default'")
    extra = sorted(set(params) - {"rope_type", "type", "rope_theta"})
    if extra:
        raise _unsupported("llama", f"rope_parameters.{extra[0]}", params[extra[0]], "only θ")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def _activation(model_type: str, field: str, name: str) -> str:
    if name not in _HF_ACTIVATIONS:
        raise _unsupported(model_type, field, name, f"one of {sorted(_HF_ACTIVATIONS)}")
    return _HF_ACTIVATIONS[name]


def config_from_hf(hf: Mapping[str, Any]) -> tuple[str, DecoderConfig]:
    """(model_type, DecoderConfig) from a Hugging Face config.json dict."""
    model_type = hf.get("model_type")
    if model_type not in MODEL_TYPES:
        raise UnsupportedConfigError(
            f"from_pretrained: model_type {model_type!r} is not supported; funcnn reads "
            f"{list(MODEL_TYPES)}."
        )
    if model_type == "gpt2":
        for field, ok in (
            ("scale_attn_weights", True),
            ("scale_attn_by_inverse_layer_idx", False),
            ("add_cross_attention", False),
        ):
            if hf.get(field, ok) != ok:
                raise _unsupported("gpt2", field, hf[field], f"only {ok}")
        dim = int(hf["n_embd"])
        config = DecoderConfig(
            vocab_size=int(hf["vocab_size"]),
            dim=dim,
            num_layers=int(hf["n_layer"]),
            num_heads=int(hf["n_head"]),
            max_len=int(hf["n_positions"]),
            mlp_hidden=int(hf.get("n_inner") or 4 * dim),
            mlp_activation=_activation(
                "gpt2", "activation_function", hf.get("activation_function", "gelu_new")
            ),
            norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
            tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
            head_bias=False,
            init="gpt2",
        )
        return model_type, config
    # pretraining_tp only slices the same matmuls differently in transformers: same math.
    heads = int(hf["num_attention_heads"])
    config = DecoderConfig(
        vocab_size=int(hf["vocab_size"]),
        dim=int(hf["hidden_size"]),
        num_layers=int(hf["num_hidden_layers"]),
        num_heads=heads,
        max_len=int(hf.get("max_position_embeddings", 2048)),
        num_kv_heads=int(hf.get("num_key_value_heads") or heads),
        head_dim=int(hf.get("head_dim") or int(hf["hidden_size"]) // heads),
        mlp_hidden=int(hf["intermediate_size"]),
        mlp_activation=_activation("llama", "hidden_act", hf.get("hidden_act", "silu")),
        gated_mlp=True,
        norm="rms",
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        positions="rope",
        rope_theta=_rope_theta(hf),
        attention_bias=bool(hf.get("attention_bias", False)),
        mlp_bias=bool(hf.get("mlp_bias", False)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        head_bias=False,
    )
    return model_type, config


def _llama_refusals(c: DecoderConfig) -> list[str]:
    checks = [
        ("norm", c.norm == "rms"),
        ("positions", c.positions == "rope"),
        ("rope_interleaved", not c.rope_interleaved),
        ("gated_mlp", c.gated_mlp),
        ("qk_norm", not c.qk_norm),
        ("sliding_window", c.sliding_window is None),
        ("logit_soft_cap", c.logit_soft_cap is None),
        ("head_bias", c.tie_embeddings or not c.head_bias),
        ("mlp_activation", c.mlp_activation in _TO_HF_ACTIVATION),
    ]
    return [name for name, ok in checks if not ok]


def _gpt2_refusals(c: DecoderConfig) -> list[str]:
    checks = [
        ("norm", c.norm == "layer"),
        ("positions", c.positions == "learned"),
        ("gated_mlp", not c.gated_mlp),
        ("num_kv_heads", c.kv_heads == c.num_heads),
        ("head_dim", c.dh * c.num_heads == c.dim),
        ("qk_norm", not c.qk_norm),
        ("sliding_window", c.sliding_window is None),
        ("logit_soft_cap", c.logit_soft_cap is None),
        ("head_bias", c.tie_embeddings or not c.head_bias),
        ("mlp_activation", c.mlp_activation in _TO_HF_ACTIVATION),
    ]
    return [name for name, ok in checks if not ok]


def hf_model_type(config: DecoderConfig) -> str:
    """ "llama" or "gpt2": the Hugging Face architecture that computes `config`'s math."""
    if not _llama_refusals(config):
        return "llama"
    if not _gpt2_refusals(config):
        return "gpt2"
    raise UnsupportedConfigError(
        f"save_pretrained: this config fits no Hugging Face layout funcnn writes: as llama it "
        f"differs in {_llama_refusals(config)}, as gpt2 in {_gpt2_refusals(config)}."
    )


def config_to_hf(config: DecoderConfig) -> dict[str, Any]:
    """The config.json dict that makes transformers build the same math as `config`."""
    c = config
    model_type = hf_model_type(c)
    act = _TO_HF_ACTIVATION[c.mlp_activation]
    if model_type == "gpt2":
        return {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": c.vocab_size,
            "n_embd": c.dim,
            "n_layer": c.num_layers,
            "n_head": c.num_heads,
            "n_positions": c.max_len,
            "n_inner": 4 * c.dim if c.mlp_hidden is None else c.mlp_hidden,
            "activation_function": act,
            "layer_norm_epsilon": c.norm_eps,
            "tie_word_embeddings": c.tie_embeddings,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
        }
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": c.vocab_size,
        "hidden_size": c.dim,
        "intermediate_size": 4 * c.dim if c.mlp_hidden is None else c.mlp_hidden,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.dh,
        "hidden_act": act,
        "max_position_embeddings": c.max_len,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "attention_bias": c.attention_bias or bool(c.attention_out_bias),
        "mlp_bias": c.mlp_bias,
        "tie_word_embeddings": c.tie_embeddings,
    }


# ---------------------------------------------------------------- the name map
Row = tuple[str, tuple[str, ...], bool]  # (HF name, funcnn path, transposed?)


def _gpt2_table(layers: int) -> list[Row]:
    """(HF name, funcnn path, transpose) for every GPT-2 tensor except the fused c_attn."""
    rows: list[Row] = [
        ("transformer.wte.weight", ("embedding", "table"), False),
        ("transformer.wpe.weight", ("positions", "table"), False),
        ("transformer.ln_f.weight", ("norm", "scale"), False),
        ("transformer.ln_f.bias", ("norm", "bias"), False),
        ("lm_head.weight", ("head", "w"), True),
    ]
    for i in range(layers):
        h, b = f"transformer.h.{i}.", f"block_{i}"
        rows += [
            (h + "ln_1.weight", (b, "norm_attention", "scale"), False),
            (h + "ln_1.bias", (b, "norm_attention", "bias"), False),
            (h + "attn.c_proj.weight", (b, "attention", "o", "w"), False),
            (h + "attn.c_proj.bias", (b, "attention", "o", "b"), False),
            (h + "ln_2.weight", (b, "norm_mlp", "scale"), False),
            (h + "ln_2.bias", (b, "norm_mlp", "bias"), False),
            (h + "mlp.c_fc.weight", (b, "mlp", "dense_0", "w"), False),
            (h + "mlp.c_fc.bias", (b, "mlp", "dense_0", "b"), False),
            (h + "mlp.c_proj.weight", (b, "mlp", "dense_2", "w"), False),
            (h + "mlp.c_proj.bias", (b, "mlp", "dense_2", "b"), False),
        ]
    return rows


def _llama_table(layers: int) -> list[Row]:
    rows: list[Row] = [
        ("model.embed_tokens.weight", ("embedding", "table"), False),
        ("model.norm.weight", ("norm", "scale"), False),
        ("lm_head.weight", ("head", "w"), True),
    ]
    for i in range(layers):
        h, b = f"model.layers.{i}.", f"block_{i}"
        rows += [
            (h + "input_layernorm.weight", (b, "norm_attention", "scale"), False),
            (h + "post_attention_layernorm.weight", (b, "norm_mlp", "scale"), False),
        ]
        for p in ("q", "k", "v", "o"):
            rows += [
                (h + f"self_attn.{p}_proj.weight", (b, "attention", p, "w"), True),
                (h + f"self_attn.{p}_proj.bias", (b, "attention", p, "b"), False),
            ]
        for p in ("gate", "up", "down"):
            rows += [
                (h + f"mlp.{p}_proj.weight", (b, "mlp", p, "w"), True),
                (h + f"mlp.{p}_proj.bias", (b, "mlp", p, "b"), False),
            ]
    return rows


def _get(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def params_from_state_dict(
    state_dict: Mapping[str, Any], config: DecoderConfig, model_type: str, *, dtype: Any = None
) -> Params:
    """funcnn params (unrolled "block_i") from Hugging Face / PyTorch tensor names.

    Every tensor the model needs must be present with its exact shape, and every tensor
    present must be used (GPT-2's attention-mask buffers and a tied `lm_head.weight` equal to
    the embedding excepted): a mismatch is an error naming the tensors.
    `dtype` (default: as stored) casts every leaf.
    """
    if model_type not in MODEL_TYPES:
        raise UnsupportedConfigError(f"model_type {model_type!r} is not one of {MODEL_TYPES}.")
    flat = {k: np.asarray(v) for k, v in state_dict.items()}
    if model_type == "gpt2" and not any(k.startswith("transformer.") for k in flat):
        # GPT2Model checkpoints (the original hub "gpt2") have no "transformer." prefix.
        flat = {(k if k.startswith("lm_head.") else "transformer." + k): v for k, v in flat.items()}
    like = jax.eval_shape(lambda: decoder(config).init(jax.random.key(0), (1, 1))[0])
    params: dict[str, Any] = jax.tree.map(lambda a: None, like)
    used: set[str] = set()

    def put(name: str, path: tuple[str, ...], transpose: bool) -> None:
        target = _get(like, path)
        if target is None:  # this config has no such parameter (a bias switched off)
            return
        if name not in flat:
            raise ValueError(f"params_from_state_dict: tensor {name!r} is missing.")
        value = flat[name].T if transpose else flat[name]
        if value.shape != target.shape:
            raise ValueError(
                f"params_from_state_dict: {name!r} has shape {flat[name].shape}; the config "
                f"needs {target.shape}{' transposed' if transpose else ''}."
            )
        _set(params, path, value)
        used.add(name)

    table = (
        _gpt2_table(config.num_layers) if model_type == "gpt2" else _llama_table(config.num_layers)
    )
    for name, path, transpose in table:
        put(name, path, transpose)
    if model_type == "gpt2":
        dim = config.dim
        for i in range(config.num_layers):
            h = f"transformer.h.{i}.attn.c_attn."
            for part, parts in (("weight", "w"), ("bias", "b")):
                if h + part not in flat:
                    raise ValueError(f"params_from_state_dict: tensor {h + part!r} is missing.")
                fused = flat[h + part]  # (D, 3D) or (3D,): q, k, v side by side
                if fused.shape[-1] != 3 * dim:
                    raise ValueError(
                        f"params_from_state_dict: {h + part!r} has shape {fused.shape}, "
                        f"expected (..., {3 * dim})."
                    )
                for j, p in enumerate(("q", "k", "v")):
                    _set(
                        params,
                        (f"block_{i}", "attention", p, parts),
                        fused[..., j * dim : (j + 1) * dim],
                    )
                used.add(h + part)
    head_name = "lm_head.weight"
    if config.tie_embeddings and head_name in flat:
        table_name = (
            "transformer.wte.weight" if model_type == "gpt2" else "model.embed_tokens.weight"
        )
        if not np.array_equal(flat[head_name], flat[table_name]):
            raise ValueError(
                "params_from_state_dict: the config ties the head to the embedding, but "
                "lm_head.weight differs from it."
            )
        used.add(head_name)
    ignored = {k for k in flat if model_type == "gpt2" and k.endswith(_GPT2_BUFFERS)}
    unused = sorted(set(flat) - used - ignored)
    if unused:
        raise ValueError(
            f"params_from_state_dict: tensors the {model_type} config does not use: {unused[:8]}"
            f"{' …' if len(unused) > 8 else ''} (does config.json match the weights?)."
        )
    missing = [
        jax.tree_util.keystr(p)
        for p, v in jax.tree_util.tree_flatten_with_path(params)[0]
        if v is None
    ]
    if missing:
        raise ValueError(f"params_from_state_dict: no tensor filled {missing[:8]}.")
    cast = (lambda a: jnp.asarray(a)) if dtype is None else (lambda a: jnp.asarray(a, dtype))
    return jax.tree.map(cast, params)


def params_to_state_dict(params: Params, config: DecoderConfig) -> dict[str, np.ndarray]:
    """Hugging Face tensor names → NumPy arrays for `params` (unrolled or stacked), in the
    layout `config_to_hf(config)` names. A bias that funcnn leaves out but the Hugging Face
    architecture always has (GPT-2's, nanoGPT's bias-free layers) is written as zeros —
    the same function."""
    model_type = hf_model_type(config)
    if "blocks" in params:
        params = unstack_layers(params)
    c = config
    flat: dict[str, np.ndarray] = {}
    table = _gpt2_table(c.num_layers) if model_type == "gpt2" else _llama_table(c.num_layers)
    for name, path, transpose in table:
        value = _get(params, path)
        if value is None:
            if path[-1] not in ("b", "bias"):
                continue  # a tied head: transformers reuses the embedding
            if model_type == "llama" and not (
                c.mlp_bias if ".mlp." in name else c.attention_bias or bool(c.attention_out_bias)
            ):
                continue  # the Llama config says there is no such bias
            # A bias funcnn leaves out but the architecture always has: zero, same function.
            width = _get(params, (*path[:-1], "w" if path[-1] == "b" else "scale"))
            size = width.shape[-1] if path[-1] == "b" else width.shape[0]
            value = np.zeros((size,), np.asarray(_get(params, ("embedding", "table"))).dtype)
        array = np.asarray(value)
        flat[name] = np.ascontiguousarray(array.T if transpose else array)
    if model_type == "gpt2":
        for i in range(c.num_layers):
            attention = params[f"block_{i}"]["attention"]
            h = f"transformer.h.{i}.attn.c_attn."
            flat[h + "weight"] = np.concatenate([np.asarray(attention[p]["w"]) for p in "qkv"], -1)
            biases = [
                np.asarray(attention[p]["b"])
                if "b" in attention[p]
                else np.zeros(c.dim, flat[h + "weight"].dtype)
                for p in "qkv"
            ]
            flat[h + "bias"] = np.concatenate(biases)
    return flat


# ---------------------------------------------------------------- directories
def _read_weights(path: Path) -> dict[str, np.ndarray]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        flat: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            tensors, _ = read_safetensors(path / shard)
            flat.update(tensors)
        return flat
    single = path / "model.safetensors"
    if not single.exists():
        raise FileNotFoundError(
            f"from_pretrained: {path} has neither model.safetensors nor "
            f"model.safetensors.index.json (PyTorch .bin files are not read: they are pickles)."
        )
    return read_safetensors(single)[0]


def from_pretrained(
    path: str | os.PathLike[str],
    *,
    dtype: Any = jnp.float32,
    scan_layers: bool = False,
    implementation: str = "auto",
) -> tuple[Decoder, Params]:
    """(model, params) from a Hugging Face model directory (config.json + safetensors).

    model_type "gpt2" or "llama"; every config field that changes the math is honoured or
    refused by name (see the module docstring). `dtype` casts the weights (default
    float32; None keeps them as stored, e.g. bfloat16). scan_layers=True returns stacked
    params for `decoder(config, scan_layers=True)`. `model.apply(params, ids)` gives logits
    (B, T, vocab) equal to transformers' to float rounding.
    """
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"from_pretrained: {config_file} does not exist.")
    model_type, config = config_from_hf(json.loads(config_file.read_text()))
    params = params_from_state_dict(_read_weights(path), config, model_type, dtype=dtype)
    model = decoder(config, scan_layers=scan_layers, implementation=implementation)
    if scan_layers:
        from funcnn.nn.stack import stack_layers

        params = stack_layers(params, config.num_layers)
    return model, params


def save_pretrained(
    model: Decoder, params: Params, path: str | os.PathLike[str], *, dtype: Any = None
) -> Path:
    """Write `path`/config.json and `path`/model.safetensors in the Hugging Face layout
    (`transformers.AutoModelForCausalLM.from_pretrained(path)` loads it and gives the same
    logits). `dtype` casts the weights (default: as they are). Returns `path`."""
    if not isinstance(model, Decoder):
        raise TypeError(f"save_pretrained: model must be a Decoder, got {type(model).__name__}.")
    hf = config_to_hf(model.config)
    flat = params_to_state_dict(params, model.config)
    if dtype is not None:
        flat = {k: np.asarray(jnp.asarray(v, dtype)) for k, v in flat.items()}
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"save_pretrained: {path} exists and is not a directory.")
    path.mkdir(parents=True, exist_ok=True)
    hf["torch_dtype"] = hf["dtype"] = str(next(iter(flat.values())).dtype)
    (path / "config.json").write_text(json.dumps(hf, indent=2) + "\n")
    save_safetensors(path / "model.safetensors", flat, metadata={"format": "pt"}, flat=True)
    return path
