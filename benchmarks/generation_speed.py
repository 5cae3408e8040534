"""Tokens/s: sampling.generate (full recompute) vs nn.decoding.generate_cached (KV cache).

PYTHONPATH=. python benchmarks/generation_speed.py --contexts 256 1024 --new 64
"""

import argparse
import time

import jax
import jax.numpy as jnp

from funcnn.nn.decoding import generate_cached
from funcnn.nn.transformer import transformer_lm
from funcnn.sampling import generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contexts", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--dim", type=int, default=128)
    args = ap.parse_args()
    max_len = max(args.contexts)
    lm = transformer_lm(65, args.dim, num_heads=4, depth=2, max_len=max_len)
    params, _ = lm.init(jax.random.PRNGKey(0), (1, max_len))
    key = jax.random.PRNGKey(1)
    for ctx in args.contexts:
        prompt = jnp.ones((ctx - args.new,), jnp.int32)
        rates = []
        for fn in (
            lambda prompt=prompt, ctx=ctx: generate(
                lm, params, prompt, key=key, length=args.new, context=ctx
            ),
            lambda prompt=prompt: generate_cached(
                params, prompt, key=key, length=args.new, num_heads=4
            ),
        ):
            fn().block_until_ready()  # compile
            t0 = time.perf_counter()
            fn().block_until_ready()
            rates.append(args.new / (time.perf_counter() - t0))
        print(
            f"context {ctx}: recompute {rates[0]:.1f} tok/s, cached {rates[1]:.1f} tok/s, "
            f"ratio {rates[1] / rates[0]:.1f}x"
        )


if __name__ == "__main__":
    main()
