"""Sampling from a causal language model: one compiled loop that appends sampled ids.

    ids = generate(model, params, prompt, key=key, length=200, context=128, temperature=0.8)

`sample_next` draws one id from softmax(logits / temperature), optionally restricted to the
`top_k` largest logits; `generate` runs it inside a single `lax.fori_loop`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcnn._validation import check_positive_int, check_real
from funcnn.nn.core import Layer, Params
from funcnn.nn.embedding import check_token_ids

Array = jax.Array

__all__ = ["generate", "sample_next"]


def sample_next(key: Array, logits: Array, *, temperature: float, top_k: int | None) -> Array:
    """Draw an id from softmax(logits / temperature), keeping only the `top_k` largest logits.

    temperature → 0 approaches greedy decoding; top_k=None keeps the whole vocabulary.
    """
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]  # (..., 1) the k-th largest logit
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1)


def generate(
    model: Layer,
    params: Params,
    prompt: Array,
    *,
    key: Array,
    length: int,
    context: int,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> Array:
    """Continue `prompt` (P,) int ids by `length` sampled ids; returns (P + length,) ids.

    For any causal layer (RNN, CNN, bag of words, transformer) — it recomputes a window at
    every step. A `funcnn.models.Decoder` decodes with its KV cache in
    `funcnn.models.generate` instead (batched, greedy at temperature 0).
    Prompt ids must be integers in [0, vocab): floats and ids outside are refused, never
    truncated or clamped.

    The whole loop is one compiled `lax.fori_loop`. At each step the model reads the last
    `context` ids of a fixed-size buffer (so shapes never change and nothing recompiles) and
    the logits at the newest position are sampled. This relies on the model being causal:
    the not-yet-written (zero) slots after the newest position cannot affect its logits.
    """
    check_positive_int(length, "length")
    check_positive_int(context, "context")
    temperature = check_real(temperature, "temperature")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got temperature={temperature}.")
    if top_k is not None:
        check_positive_int(top_k, "top_k")
    check_token_ids(prompt, "prompt")  # integers: a float prompt is refused, never truncated
    prompt = jnp.asarray(prompt, jnp.int32)
    if prompt.ndim != 1 or prompt.shape[0] < 1:
        raise ValueError(f"prompt must be a non-empty 1-D array of ids, got {prompt.shape}.")
    total = prompt.shape[0] + length
    window = min(context, total)
    # The vocabulary is the logits' last axis; an id outside it would be clamped by the
    # embedding under jit, so it is refused here, where the prompt is still concrete.
    vocab = jax.eval_shape(model.apply, params, jnp.zeros((1, window), jnp.int32)).shape[-1]
    check_token_ids(prompt, "prompt", vocab=vocab)
    return _generate_compiled(model, window, length, temperature, top_k)(params, prompt, key)


def _generate_compiled(model: Layer, window: int, length: int, temperature: float, top_k):
    @jax.jit
    def run(params: Params, prompt: Array, key: Array) -> Array:
        start = prompt.shape[0]
        buffer = jnp.zeros((start + length,), jnp.int32).at[:start].set(prompt)

        def body(t: Array, state: tuple[Array, Array]) -> tuple[Array, Array]:
            buffer, key = state
            newest = t - 1  # the position whose logits predict slot t
            first = jnp.clip(newest - window + 1, 0, buffer.shape[0] - window)
            ids = jax.lax.dynamic_slice(buffer, (first,), (window,))[None, :]  # (1, W)
            logits = model.apply(params, ids)[0, newest - first]  # (V,)
            key, draw = jax.random.split(key)
            token = sample_next(draw, logits, temperature=temperature, top_k=top_k)
            return buffer.at[t].set(token.astype(jnp.int32)), key

        buffer, _ = jax.lax.fori_loop(start, start + length, body, (buffer, key))
        return buffer

    return run
