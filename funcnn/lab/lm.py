"""Character language modelling: bits per character, the unigram baseline, and one function
that trains any `char_lm` kind with AdamW, warmup and clipping (sampling: `funcnn.sampling`).

    bits/char = mean over predicted characters of −log₂ p(xₜ₊₁ | x≤ₜ) = cross-entropy / ln 2

A model that has learned nothing but character frequencies scores the unigram entropy
H = −Σ_c p(c)·log₂ p(c) (≈ 4.8 bits on the default corpus); each bit below it halves the
model's perplexity.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import losses
from funcnn._validation import check_real
from funcnn.datasets import text as text_data
from funcnn.lab import optimizers
from funcnn.nn.core import Layer, Params
from funcnn.nn.sequence_models import char_lm
from funcnn.params import count_params, decay_mask
from funcnn.train import TrainState, init_state, train_generated

__all__ = [
    "LN2",
    "CharLMResult",
    "bits_per_char",
    "evaluate_bits_per_char",
    "lm_loss_fn",
    "steady_seconds_per_step",
    "train_char_lm",
    "unigram_bits_per_char",
]

Array = jax.Array
LN2 = math.log(2.0)


def bits_per_char(logits: Array, targets: Array, *, mask: Array | None = None) -> Array:
    """Mean of −log₂ softmax(logits)[target] over the (unmasked) steps. logits (..., V)."""
    return losses.cross_entropy(logits, targets, where=mask) / LN2


def unigram_bits_per_char(
    train_ids: np.ndarray, eval_ids: np.ndarray, vocab: int, *, smoothing: float = 1.0
) -> float:
    """Cross-entropy in bits of a character-frequency model fitted on `train_ids`, on `eval_ids`.

    p(c) = (count_train(c) + α) / (N + α·V) — add-α smoothing so characters unseen in
    training cost a finite number of bits. Returns −mean_t log₂ p(eval_t).
    """
    smoothing = check_real(smoothing, "smoothing")
    counts = np.bincount(np.asarray(train_ids), minlength=vocab).astype(np.float64)
    probs = (counts + smoothing) / (counts.sum() + smoothing * vocab)
    return float(-np.mean(np.log2(probs[np.asarray(eval_ids)])))


# ---------------------------------------------------------------- training a char LM
class CharLMResult(NamedTuple):
    model: Layer
    state: TrainState
    tokenizer: text_data.CharTokenizer
    val_bits_per_char: float
    unigram_bits_per_char: float
    num_params: int
    seconds_per_step: float  # steady state: dispatches that compiled are not timed
    history: dict[str, list[float]]


def lm_loss_fn(model: Layer) -> Callable[[Params, Any, Array], tuple[Array, dict[str, Array]]]:
    """loss(params, (inputs, targets), key) = mean next-char cross-entropy; aux has bits/char."""

    def loss_fn(params: Params, batch: tuple[Array, Array], key: Array):
        inputs, targets = batch
        logits = model.apply(params, inputs, key=key, train=True)
        loss = losses.cross_entropy(logits, targets)
        return loss, {"bits_per_char": loss / LN2}

    return loss_fn


def evaluate_bits_per_char(model: Layer, params: Params, ids: np.ndarray, length: int) -> float:
    """Mean bits/char over every non-overlapping window of `ids` (one jitted pass per batch)."""
    inputs, targets = text_data.windows(ids, length)
    score = jax.jit(lambda p, x, y: bits_per_char(model.apply(p, x), y))
    batch = 64
    totals = []
    for i in range(0, inputs.shape[0], batch):
        x, y = inputs[i : i + batch], targets[i : i + batch]
        totals.append(float(score(params, x, y)) * x.shape[0])
    return sum(totals) / inputs.shape[0]


def train_char_lm(
    kind: str,
    text: str,
    *,
    steps: int = 1000,
    batch_size: int = 32,
    seq_len: int = 128,
    learning_rate: float = 3e-3,
    warmup_steps: int = 50,
    weight_decay: float = 0.01,
    clip_norm: float = 1.0,
    val_fraction: float = 0.1,
    seed: int = 0,
    steps_per_dispatch: int = 100,
    callback: Callable[[TrainState, dict[str, float]], None] | None = None,
    **model_kwargs: Any,
) -> CharLMResult:
    """Train `char_lm(kind, …)` on `text` and score it on the held-out tail in bits/char.

    Optimizer: clip_by_global_norm(clip_norm) → AdamW with a linear warmup over
    `warmup_steps` (at most steps − 1) then cosine decay to 0 at `steps`; weight decay only
    on ≥2-D weights.
    Batches are random windows of `seq_len` characters drawn on device.
    """
    tokenizer = text_data.CharTokenizer.from_text(text)
    train_ids, val_ids = text_data.train_val_split(tokenizer.encode(text), val_fraction)
    model = char_lm(kind, tokenizer.vocab_size, max_len=seq_len, **model_kwargs)
    key_init, key_state, key_data = jax.random.split(jax.random.key(seed), 3)
    params, _ = model.init(key_init, (batch_size, seq_len))
    # A warmup longer than the run is cut to steps − 1, so short runs still decay.
    warmup = min(max(warmup_steps, 1), max(steps - 1, 1))
    optimizer = optimizers.clipped_warmup_cosine(
        "adamw",
        peak_value=learning_rate,
        total_steps=steps,
        warmup_steps=warmup,
        clip_norm=clip_norm,
        weight_decay=weight_decay,
        decay_mask=decay_mask,
    )
    state = init_state(params, optimizer, key_state)
    train_device = jnp.asarray(train_ids, jnp.int32)
    sample = lambda k: text_data.random_windows(k, train_device, batch_size, seq_len)
    times: list[float] = []  # wall clock after each dispatch; the first includes compiling
    state, history = train_generated(
        state,
        lm_loss_fn(model),
        optimizer,
        sample,
        steps=steps,
        steps_per_dispatch=steps_per_dispatch,
        data_key=key_data,
        callback=_timing_callback(times, callback),
    )
    seconds_per_step = steady_seconds_per_step(times, history["step"])
    val_bpc = evaluate_bits_per_char(model, state.params, val_ids, seq_len)
    unigram = unigram_bits_per_char(train_ids, val_ids, tokenizer.vocab_size)
    return CharLMResult(
        model,
        state,
        tokenizer,
        val_bpc,
        unigram,
        count_params(state.params),
        seconds_per_step,
        history,
    )


def _timing_callback(times: list[float], user: Callable | None) -> Callable:
    times.append(time.perf_counter())

    def callback(state: TrainState, info: dict[str, float]) -> None:
        times.append(time.perf_counter())
        if user is not None:
            user(state, info)

    return callback


def steady_seconds_per_step(times: list[float], steps: list[float]) -> float:
    """Seconds per step of the dispatches that did not compile; NaN if every one did.

    `times` are wall-clock readings before the first dispatch and after each one, `steps`
    the cumulative step count after each. A fused program is compiled once per distinct
    dispatch length, by the first dispatch of that length: the first chunk, and a shorter
    tail when steps_per_dispatch does not divide the steps (42 steps in chunks of 10 compile
    a 2-step tail on the last dispatch). Only dispatches of a length already run are timed.
    """
    lengths = np.diff([0.0, *steps])
    durations = np.diff(times)
    if len(durations) != len(lengths):
        raise ValueError(
            f"times must hold one reading more than steps, got {len(times)} and {len(steps)}."
        )
    seen: set[float] = set()
    total_seconds, total_steps = 0.0, 0.0
    for length, seconds in zip(lengths, durations, strict=True):
        if length in seen:
            total_seconds += seconds
            total_steps += length
        seen.add(length)
    return total_seconds / total_steps if total_steps else float("nan")
