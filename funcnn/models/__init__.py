"""Whole models built from `funcnn.nn`: the configured decoder-only language model (GPT-2,
Llama and nanoGPT layouts), generation with a KV cache through the model's own forward, and
weights in and out of the Hugging Face / PyTorch safetensors format.

    model = models.decoder(models.llama_config(vocab_size=32, dim=16, num_layers=2,
                                               num_heads=4, num_kv_heads=2, max_len=64))
    params, _ = model.init(key, (1, 64))
    ids = models.generate(model, params, prompt_ids, 20)          # greedy, one compiled loop
    model, params = models.from_pretrained("path/to/hf_dir")       # config.json + safetensors
    models.save_pretrained(model, params, "out_dir")               # readable by transformers
"""

from funcnn.models.decoder import (
    Cache,
    Decoder,
    DecoderConfig,
    decoder,
    gpt2_config,
    llama_config,
    nanogpt_config,
)
from funcnn.models.generate import generate
from funcnn.models.pretrained import (
    MODEL_TYPES,
    UnsupportedConfigError,
    config_from_hf,
    config_to_hf,
    from_pretrained,
    params_from_state_dict,
    params_to_state_dict,
    save_pretrained,
)
from funcnn.models.weights import (
    flatten_params,
    load_safetensors,
    read_safetensors,
    save_safetensors,
    unflatten_params,
)

__all__ = [
    "MODEL_TYPES",
    "Cache",
    "Decoder",
    "DecoderConfig",
    "UnsupportedConfigError",
    "config_from_hf",
    "config_to_hf",
    "decoder",
    "flatten_params",
    "from_pretrained",
    "generate",
    "gpt2_config",
    "llama_config",
    "load_safetensors",
    "nanogpt_config",
    "params_from_state_dict",
    "params_to_state_dict",
    "read_safetensors",
    "save_pretrained",
    "save_safetensors",
    "unflatten_params",
]
