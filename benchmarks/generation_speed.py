"""Tokens/s: sampling.generate (full recompute of a window) vs models.generate (KV cache).

PYTHONPATH=. python benchmarks/generation_speed.py --contexts 256 1024 --new 64
"""

import argparse
import time

import jax
import jax.numpy as jnp

from funcnn import models
from funcnn.sampling import generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contexts", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--dim", type=int, default=128)
    args = ap.parse_args()
    max_len = max(args.contexts)
    config = models.DecoderConfig(65, args.dim, 2, 4, max_len)  # transformer_lm's layout
    model = models.decoder(config)
    params, _ = model.init(jax.random.key(0), (1, max_len))
    key = jax.random.key(1)
    for ctx in args.contexts:
        prompt = jnp.ones((ctx - args.new,), jnp.int32)
        rates = []
        for fn in (
            lambda prompt=prompt, ctx=ctx: generate(
                model.layer, params, prompt, key=key, length=args.new, context=ctx, top_k=1
            ),
            lambda prompt=prompt: models.generate(model, params, prompt[None], args.new),
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
