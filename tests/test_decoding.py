import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.nn.decoding import decode_step, init_cache, prefill
from funcnn.nn.transformer import transformer_lm


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_cached_logits_match_full_recompute(positions):
    lm = transformer_lm(11, 16, num_heads=4, depth=2, max_len=12, positions=positions)
    params, _ = lm.init(jax.random.PRNGKey(3), (2, 12))
    ids = jax.random.randint(jax.random.PRNGKey(4), (2, 12), 0, 11)
    full = np.asarray(lm.apply(params, ids))  # (B, T, V)
    cache = init_cache(params, 2, 12, num_heads=4)
    logits, cache = prefill(params, ids[:, :5], cache)
    np.testing.assert_allclose(np.asarray(logits), full[:, :5], atol=1e-5)
    step = jax.jit(decode_step)
    for t in range(5, 12):
        out, cache = step(params, ids[:, t], t, cache)
        np.testing.assert_allclose(np.asarray(out), full[:, t], atol=1e-5)


def test_bad_inputs():
    lm = transformer_lm(11, 16, num_heads=4, depth=2, max_len=8)
    params, _ = lm.init(jax.random.PRNGKey(5), (2, 8))
    cache = init_cache(params, 2, 8, num_heads=4)
    with pytest.raises(ValueError, match="tokens"):
        prefill(params, jnp.zeros((2, 9), jnp.int32), cache)
    with pytest.raises(ValueError, match="tokens"):
        prefill(params, jnp.zeros((3, 4), jnp.int32), cache)
    with pytest.raises(ValueError, match="tokens"):
        prefill(params, jnp.zeros((2, 4), jnp.float32), cache)
    # max_len = 8 < dim = 16: the limit is the position table's length, not its width.
    from funcnn.nn.decoding import generate_cached

    with pytest.raises(ValueError, match="prompt \\+ length = 9 exceeds max_len"):
        generate_cached(
            params, jnp.array([1, 2, 3]), key=jax.random.PRNGKey(0), length=6, num_heads=4
        )


def test_generate_cached_matches_recompute():
    from funcnn.nn.decoding import generate_cached
    from funcnn.sampling import generate

    lm = transformer_lm(11, 16, num_heads=4, depth=2, max_len=16)
    params, _ = lm.init(jax.random.PRNGKey(7), (1, 16))
    prompt = jnp.array([1, 2, 3], jnp.int32)
    key = jax.random.PRNGKey(8)
    old = generate(lm, params, prompt, key=key, length=10, context=16, top_k=1)
    new = generate_cached(params, prompt, key=key, length=10, num_heads=4, top_k=1)
    np.testing.assert_array_equal(np.asarray(old), np.asarray(new))
