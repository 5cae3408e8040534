"""Language-model utilities and the five char-LM architectures: metrics, sampling, causality."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import sampling
from funcnn.lab import lm
from funcnn.nn.sequence_models import ARCHITECTURES, char_lm, sequence_regressor

KEY = jax.random.key(0)
VOCAB = 7


def test_bits_per_char_is_cross_entropy_in_bits(rng):
    logits = rng.normal(size=(2, 3, VOCAB))
    targets = rng.integers(0, VOCAB, size=(2, 3))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.mean(np.take_along_axis(log_p, targets[..., None], -1)) / math.log(2)
    got = lm.bits_per_char(jnp.asarray(logits, jnp.float32), jnp.asarray(targets))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_unigram_baseline_by_hand():
    train = np.array([0, 0, 0, 1])  # counts 3, 1, 0 → add-one: 4/7, 2/7, 1/7
    evaluation = np.array([0, 2])
    expected = -(math.log2(4 / 7) + math.log2(1 / 7)) / 2
    assert lm.unigram_bits_per_char(train, evaluation, 3) == pytest.approx(expected, rel=1e-12)


def test_sample_next_respects_top_k_and_temperature():
    logits = jnp.asarray([0.0, 3.0, 2.9, -1.0, 1.0])
    keys = jax.random.split(KEY, 2000)
    draw = jax.vmap(lambda k: sampling.sample_next(k, logits, temperature=1.0, top_k=2))(keys)
    assert set(np.unique(draw)) == {1, 2}
    cold = jax.vmap(lambda k: sampling.sample_next(k, logits, temperature=0.01, top_k=None))(keys)
    assert np.all(np.asarray(cold) == 1)
    # Plain temperature-1 sampling follows softmax(logits) (2000 draws, loose bound).
    free = np.asarray(
        jax.vmap(lambda k: sampling.sample_next(k, logits, temperature=1.0, top_k=None))(keys)
    )
    probs = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(np.bincount(free, minlength=5) / 2000, probs, atol=0.04)


@pytest.fixture(scope="module")
def small_lm():
    model = char_lm("lstm", VOCAB, dim=8, hidden=8)
    params, _ = model.init(KEY, (1, 16))
    return model, jax.tree.map(lambda a: 3.0 * a, params)  # sharper logits: a non-trivial argmax


def test_generate_greedy_matches_a_python_loop(small_lm):
    model, params = small_lm
    prompt = jnp.asarray([1, 2, 3], jnp.int32)
    context = 5
    out = sampling.generate(model, params, prompt, key=KEY, length=8, context=context, top_k=1)
    assert out.shape == (11,)
    np.testing.assert_array_equal(out[:3], prompt)
    ids = [1, 2, 3]
    for _ in range(8):  # independent re-implementation: re-run on the last `context` ids
        window = jnp.asarray(ids[-context:], jnp.int32)[None, :]
        ids.append(int(jnp.argmax(model.apply(params, window)[0, -1])))
    np.testing.assert_array_equal(out, ids)


def test_generate_is_reproducible_and_validates(small_lm):
    model, params = small_lm
    prompt = jnp.asarray([4], jnp.int32)
    a = sampling.generate(model, params, prompt, key=KEY, length=6, context=4, temperature=0.8)
    b = sampling.generate(model, params, prompt, key=KEY, length=6, context=4, temperature=0.8)
    np.testing.assert_array_equal(a, b)
    assert np.all((np.asarray(a) >= 0) & (np.asarray(a) < VOCAB))
    with pytest.raises(ValueError, match="temperature"):
        sampling.generate(model, params, prompt, key=KEY, length=2, context=4, temperature=0.0)
    with pytest.raises(ValueError, match="prompt"):
        sampling.generate(model, params, jnp.zeros((0,), jnp.int32), key=KEY, length=2, context=4)


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_every_char_lm_is_causal(kind, rng):
    model = char_lm(kind, VOCAB, dim=8, hidden=8, depth=2, num_heads=2, max_len=8)
    params, out_shape = model.init(KEY, (2, 8))
    assert out_shape == (2, 8, VOCAB)
    apply = jax.jit(model.apply)
    ids = jnp.asarray(rng.integers(0, VOCAB, size=(2, 8)), jnp.int32)
    base = np.asarray(apply(params, ids))
    assert base.shape == (2, 8, VOCAB)
    changed = np.asarray(apply(params, ids.at[:, 5].set((ids[:, 5] + 1) % VOCAB)))
    np.testing.assert_array_equal(changed[:, :5], base[:, :5])
    assert np.abs(changed[:, 5:] - base[:, 5:]).max() > 0


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_regressor_ignores_padding(kind, rng):
    model = sequence_regressor(kind, 2, dim=8, depth=2, num_heads=2)
    params, out_shape = model.init(KEY, (2, 6, 2))
    assert out_shape == (2,)
    apply = jax.jit(model.apply)
    x = jnp.asarray(rng.normal(size=(2, 6, 2)), jnp.float32)
    padded = jnp.concatenate([x, 50.0 * jnp.ones((2, 3, 2))], axis=1)
    mask = jnp.asarray([[True] * 6 + [False] * 3] * 2)
    np.testing.assert_allclose(
        apply(params, padded, mask=mask), apply(params, x), rtol=1e-5, atol=1e-5
    )
