"""Character corpus, tokenizer, splits and windows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.datasets import text


def test_default_corpus_is_deterministic_stdlib_prose():
    corpus = text.stdlib_docstrings()
    assert len(corpus) > 50_000
    assert corpus == text.stdlib_docstrings.__wrapped__()  # recollected from scratch: identical
    # The first module in sorted order with a docstring is `abc`.
    assert corpus.startswith("Abstract Base Classes")


def test_tokenizer_round_trip_and_unknown_characters():
    tok = text.CharTokenizer.from_text("hello world")
    assert tok.chars == " dehlorw" and tok.vocab_size == 8
    ids = tok.encode("low")
    np.testing.assert_array_equal(ids, [4, 5, 7])
    assert ids.dtype == np.int32
    assert tok.decode(ids) == "low"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("lowz")


def test_train_val_split_is_contiguous():
    train, val = text.train_val_split(np.arange(100), 0.1)
    np.testing.assert_array_equal(np.concatenate([train, val]), np.arange(100))
    assert len(val) == 10
    with pytest.raises(ValueError, match="val_fraction"):
        text.train_val_split(np.arange(100), 1.0)


def test_windows_are_shifted_by_one():
    inputs, targets = text.windows(np.arange(23), 5)
    assert inputs.shape == targets.shape == (4, 5)
    np.testing.assert_array_equal(inputs.reshape(-1), np.arange(20))
    np.testing.assert_array_equal(targets.reshape(-1), np.arange(1, 21))


def test_random_windows_are_contiguous_slices():
    ids = jnp.arange(50, dtype=jnp.int32)
    sample = jax.jit(text.random_windows, static_argnums=(2, 3))
    inputs, targets = sample(jax.random.key(0), ids, 16, 8)
    assert inputs.shape == (16, 8)
    steps = np.arange(8)[None, :]
    np.testing.assert_array_equal(inputs, np.asarray(inputs[:, :1]) + steps)
    np.testing.assert_array_equal(targets, np.asarray(inputs) + 1)
    assert np.asarray(targets).max() <= 49
