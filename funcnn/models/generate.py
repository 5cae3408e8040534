"""Generation with a KV cache: one compiled loop around the model's own forward.

    logits, cache = model.apply(params, prompt, positions=0…T−1, cache=empty)      prefill
    for t = T … T + n − 1:                                                         one lax loop
        idₜ  = argmax(logits) (temperature 0)  or  a draw from softmax(logits/τ) (top-k)
        logits, cache = model.apply(params, idₜ, positions=[t], cache=cache)

No second transcription of the model: the cached step is `Decoder.apply` with a cache, the
same layer functions as training (flax keeps its cache in the layer for the same reason; see
STYLE.md §21). Each new token's keys are rotated (RoPE) or offset (learned positions) by its
own absolute position, so cached logits equal the full recompute at every step.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from funcnn._validation import check_nonnegative_int, check_positive_int, check_real
from funcnn.models.decoder import Decoder, DecoderConfig, decoder
from funcnn.nn.core import Params
from funcnn.nn.embedding import check_token_ids
from funcnn.sampling import sample_next

__all__ = ["generate"]

Array = jax.Array


def generate(
    model: Decoder,
    params: Params,
    prompt_ids: Array,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    key: Array | None = None,
) -> Array:
    """Continue each prompt of `prompt_ids` (B, T) int by `max_new_tokens` ids → (B, T + n).

    temperature = 0 is greedy (argmax; ties go to the lowest id); temperature τ > 0 draws from
    softmax(logits/τ), restricted to the `top_k` largest logits when given, and needs `key`.
    The whole loop (prefill, then one cached step per token) is one compiled program,
    compiled once per (model, B, T, n, τ, top_k); stacked (scan_layers) params work the same.
    T + n must not exceed the model's max_len: the cache and the position table end there.
    Prompt ids must be integers in [0, vocab) — a float prompt or an id outside the
    vocabulary is an error, never truncated or clamped.
    """
    if not isinstance(model, Decoder):
        raise TypeError(
            f"generate: model must be a funcnn.models.Decoder (from models.decoder(config)), "
            f"got {type(model).__name__}. For other causal layers use funcnn.sampling.generate."
        )
    config = model.config
    check_nonnegative_int(max_new_tokens, "max_new_tokens")
    temperature = check_real(temperature, "temperature")
    if temperature < 0:
        raise ValueError(f"generate: temperature must be ≥ 0, got temperature={temperature}.")
    if top_k is not None:
        check_positive_int(top_k, "top_k")
    if temperature > 0 and key is None:
        raise ValueError("generate: sampling (temperature > 0) needs a PRNG key: pass key=…")
    prompt = _check_prompt(prompt_ids, config.vocab_size)
    steps = prompt.shape[1]
    total = steps + max_new_tokens
    if total > config.max_len:
        raise ValueError(
            f"generate: prompt length {steps} + max_new_tokens {max_new_tokens} = {total} "
            f"exceeds the model's max_len={config.max_len}."
        )
    if max_new_tokens == 0:
        return prompt
    key = jax.random.key(0) if key is None else key  # unused when greedy
    # Two decoders built from the same config and options compute the same function, so
    # they share one compiled program (from_pretrained twice does not compile twice).
    program = _program(
        model.config, model.scan_layers, model.options, steps, total, temperature, top_k
    )
    return program(params, prompt, key)


def _check_prompt(prompt_ids: Any, vocab: int) -> Array:
    """(B, T) int32 prompt, refusing floats, bad ranks, empty prompts and ids outside [0, V)."""
    check_token_ids(prompt_ids, "generate: prompt_ids", batched=True, vocab=vocab)
    shape = jnp.shape(prompt_ids)
    if shape[1] < 1 or shape[0] < 1:
        raise ValueError(
            f"generate: prompt_ids must be (batch, time) with time ≥ 1, got shape {shape}."
        )
    return jnp.asarray(prompt_ids, jnp.int32)


@functools.lru_cache(maxsize=32)  # a cache of compiled programs; never changes a result
def _program(
    config: DecoderConfig,
    scan_layers: bool,
    options: tuple[str, int, bool],
    steps: int,
    total: int,
    temperature: float,
    top_k: int | None,
):
    """The compiled program of one static configuration, shared by equal decoders."""
    implementation, chunk_size, remat = options
    model = decoder(
        config,
        implementation=implementation,
        chunk_size=chunk_size,
        scan_layers=scan_layers,
        remat=remat,
    )
    return _compile(model, steps, total, temperature, top_k)


def _compile(model: Decoder, steps: int, total: int, temperature: float, top_k: int | None):
    """The jitted generation program of one static configuration."""

    def pick(draw: Array, logits: Array) -> Array:
        if temperature == 0:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)  # (B,)
        token = sample_next(draw, logits, temperature=temperature, top_k=top_k)
        return token.astype(jnp.int32)

    @jax.jit
    def run(params: Params, prompt: Array, key: Array) -> Array:
        batch = prompt.shape[0]
        dtype = jax.tree.leaves(params)[0].dtype
        cache = model.init_cache(batch, total, dtype=dtype)
        logits, cache = model.apply(params, prompt, positions=jnp.arange(steps), cache=cache)
        buffer = jnp.zeros((batch, total), jnp.int32).at[:, :steps].set(prompt)

        def body(t: Array, state: tuple) -> tuple:
            buffer, key, last, cache = state  # last: (B, V) logits predicting slot t
            key, draw = jax.random.split(key)
            token = pick(draw, last)  # (B,)
            buffer = buffer.at[:, t].set(token)
            out, cache = model.apply(params, token[:, None], positions=t[None], cache=cache)
            return buffer, key, out[:, 0], cache

        state = (buffer, key, logits[:, -1], cache)
        buffer, *_ = jax.lax.fori_loop(steps, total, body, state)
        return buffer

    return run
