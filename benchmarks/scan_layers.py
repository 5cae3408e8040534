"""Compile and step time of the transformer LM train step, unrolled vs scanned (and remat).

vocab 65, dim 128, 4 heads, T=128, batch 16, AdamW. Prints per depth: compile s, step ms,
scanned/unrolled ratios, compile(depth)/compile(depth 2), and remat peak temp memory.
Usage: PYTHONPATH=. python benchmarks/scan_layers.py [--depths 2 4 8 12] [--steps 5]
"""

import argparse
import time

import jax
import jax.numpy as jnp

from funcnn import nn, optim


def _step_fn(model, opt):
    def loss(p, ids):
        logits = model.apply(p, ids[:, :-1])
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1))

    def step(p, s, ids):
        g = jax.grad(loss)(p, ids)
        u, s = opt.update(g, s, p)
        return jax.tree.map(jnp.add, p, u), s

    return step


def measure(depth, scan, remat, steps):
    model = nn.transformer_lm(
        65, 128, num_heads=4, depth=depth, max_len=128, scan_layers=scan, remat=remat
    )
    ids = jax.random.randint(jax.random.key(0), (16, 129), 0, 65)
    params, _ = model.init(jax.random.key(1), (16, 128))
    opt = optim.adamw(1e-3)
    state = opt.init(params)
    t0 = time.perf_counter()
    compiled = jax.jit(_step_fn(model, opt)).lower(params, state, ids).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", 0) if mem is not None else 0
    params, state = compiled(params, state, ids)
    jax.block_until_ready(params)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        params, state = compiled(params, state, ids)
        jax.block_until_ready(params)
        times.append(time.perf_counter() - t0)
    return compile_s, sorted(times)[len(times) // 2] * 1e3, temp / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8, 12])
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    base = {}
    print("depth mode      compile_s step_ms temp_MiB  step/unrolled compile/depth2")
    for d in a.depths:
        un = measure(d, False, False, a.steps)
        for mode, scan, remat in (
            ("unrolled", False, False),
            ("scan", True, False),
            ("scan+remat", True, True),
        ):
            r = un if mode == "unrolled" else measure(d, scan, remat, a.steps)
            base.setdefault(mode, r[0])
            print(
                f"{d:5d} {mode:10s} {r[0]:9.2f} {r[1]:7.1f} {r[2]:8.1f}  "
                f"{r[1] / un[1]:13.2f} {r[0] / base[mode]:13.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
