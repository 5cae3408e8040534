"""AdamW memory-throughput study: which formulation does XLA:CPU fuse into one pass?

Each variant performs one AdamW update + apply on ~10M float32 params in 40
leaves of mixed shapes (jitted, params/m/v donated). Effective bandwidth counts
the 7 compulsory accesses per parameter (read θ, m, v, g; write θ, m, v):
7 × 4 bytes. It is reported as a fraction of an in-place triad
``b ← b + s·c`` (3 × 4 bytes per element, donated) timed *interleaved* with the
variant in the same process, so machine noise cancels in the ratio.

XLA flags are process-wide, so ``--flags`` runs each setting in a subprocess:

    python benchmarks/adamw_fusion.py                  # all variants, default + MOF flags
    python benchmarks/adamw_fusion.py --inner --variants sibling   # one process, current XLA_FLAGS

Results and the ideas that failed are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MOF_FLAG = "--xla_backend_extra_options=xla_cpu_use_multi_output_fusion"
FLAG_SETS = {"default": "", "mof": MOF_FLAG}

B1, B2, EPS, WD, LR = 0.9, 0.999, 1e-8, 0.01, 1e-3


def leaf_shapes(blocks: int = 10, width: int = 512) -> list[tuple[int, ...]]:
    """40 leaves (10 MLP blocks of w1, b1, w2, b2): ~10.5M params at width 512."""
    shapes: list[tuple[int, ...]] = []
    for _ in range(blocks):
        shapes += [(width, 2 * width), (2 * width,), (2 * width, width), (width,)]
    return shapes


def _variants():
    import jax
    import jax.numpy as jnp

    def bias_corrections(count):
        t = (count + 1).astype(jnp.float32)
        return 1 - B1**t, 1 - B2**t

    def obvious(p, m, v, g, count):
        """Three tree maps: m, then v, then θ re-reading the new m and v."""
        c1, c2 = bias_corrections(count)
        m = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, m, g)
        v = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
        p = jax.tree.map(
            lambda p, m, v: p - LR * ((m / c1) / (jnp.sqrt(v / c2) + EPS) + WD * p), p, m, v
        )
        return p, m, v, count + 1

    def one_map(p, m, v, g, count):
        """One tree map returning (θ, m, v) per leaf; θ still reads the new m, v."""
        c1, c2 = bias_corrections(count)

        def leaf(p, m, v, g):
            m = B1 * m + (1 - B1) * g
            v = B2 * v + (1 - B2) * g * g
            return p - LR * ((m / c1) / (jnp.sqrt(v / c2) + EPS) + WD * p), m, v

        out = jax.tree.map(leaf, p, m, v, g)
        is_leaf = lambda x: isinstance(x, tuple)
        pick = lambda i: jax.tree.map(lambda o: o[i], out, is_leaf=is_leaf)
        return pick(0), pick(1), pick(2), count + 1

    def sibling(p, m, v, g, count):
        """θ from the OLD moments: m̂ = β₁/(1−β₁ᵗ)·m + (1−β₁)/(1−β₁ᵗ)·g (same math, no data
        dependence on the stored m', v'), so θ', m', v' are sibling loops over (θ, m, v, g)."""
        c1, c2 = bias_corrections(count)
        a1, k1, a2, k2 = B1 / c1, (1 - B1) / c1, B2 / c2, (1 - B2) / c2

        def new_p(p, m, v, g):
            m_hat = a1 * m + k1 * g
            v_hat = a2 * v + k2 * (g * g)
            return p - LR * (m_hat / (jnp.sqrt(v_hat) + EPS) + WD * p)

        p2 = jax.tree.map(new_p, p, m, v, g)
        m2 = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, m, g)
        v2 = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
        return p2, m2, v2, count + 1

    def sibling_cse(p, m, v, g, count):
        """θ from the old moments but with the identical expressions as m', v' — XLA's CSE
        merges them back into a producer→consumer chain."""
        c1, c2 = bias_corrections(count)

        def new_p(p, m, v, g):
            m = B1 * m + (1 - B1) * g
            v = B2 * v + (1 - B2) * g * g
            return p - LR * ((m / c1) / (jnp.sqrt(v / c2) + EPS) + WD * p)

        p2 = jax.tree.map(new_p, p, m, v, g)
        m2 = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, m, g)
        v2 = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
        return p2, m2, v2, count + 1

    def flat(fn):
        """Same math on one concatenated buffer per state (params stay a flat vector)."""

        def run(p, m, v, g, count):
            p2, m2, v2, c = fn({"x": p}, {"x": m}, {"x": v}, {"x": g}, count)
            return p2["x"], m2["x"], v2["x"], c

        return run

    def scan_chunks(p, m, v, g, count, chunk=16384):
        """lax.scan over cache-sized row blocks of each leaf: the three loops per block stay
        in cache, so DRAM sees one pass."""
        c1, c2 = bias_corrections(count)

        def block(p, m, v, g):
            m = B1 * m + (1 - B1) * g
            v = B2 * v + (1 - B2) * g * g
            return p - LR * ((m / c1) / (jnp.sqrt(v / c2) + EPS) + WD * p), m, v

        def leaf(p, m, v, g):
            if p.size % chunk:
                return block(p, m, v, g)
            xs = tuple(a.reshape(-1, chunk) for a in (p, m, v, g))
            _, ys = jax.lax.scan(lambda c, x: (c, block(*x)), None, xs)
            return tuple(y.reshape(p.shape) for y in ys)

        out = jax.tree.map(leaf, p, m, v, g)
        is_leaf = lambda x: isinstance(x, tuple)
        pick = lambda i: jax.tree.map(lambda o: o[i], out, is_leaf=is_leaf)
        return pick(0), pick(1), pick(2), count + 1

    def flat_state(p, m, v, g, count):
        """Moments as ONE flat vector (what `optim.flatten` stores); params and grads stay
        per-leaf: ravel g and θ (one concatenate each), update flat, slice u back per leaf."""
        c1, c2 = bias_corrections(count)
        leaves, treedef = jax.tree.flatten(p)
        g_flat = jnp.concatenate([x.ravel() for x in jax.tree.leaves(g)])
        p_flat = jnp.concatenate([x.ravel() for x in leaves])
        m_hat = (B1 / c1) * m["x"] + ((1 - B1) / c1) * g_flat
        v_hat = (B2 / c2) * v["x"] + ((1 - B2) / c2) * (g_flat * g_flat)
        u = -LR * (m_hat / (jnp.sqrt(v_hat) + EPS) + WD * p_flat)
        m2 = B1 * m["x"] + (1 - B1) * g_flat
        v2 = B2 * v["x"] + (1 - B2) * g_flat * g_flat
        out, start = [], 0
        for leaf in leaves:
            out.append(leaf + u[start : start + leaf.size].reshape(leaf.shape))
            start += leaf.size
        return jax.tree.unflatten(treedef, out), {"x": m2}, {"x": v2}, count + 1

    return {
        "flat_state": (flat_state, "state"),
        "scan_chunks": (scan_chunks, False),
        "obvious": (obvious, False),
        "one_map": (one_map, False),
        "sibling_cse": (sibling_cse, False),
        "sibling": (sibling, False),
        "flat_obvious": (flat(obvious), True),
        "flat_sibling": (flat(sibling), True),
    }


def array_loops(compiled_text: str) -> int:
    """Loops over arrays in the optimized HLO entry: fusions or copies whose result has a
    non-scalar array (scalar bias-correction fusions are not passes over the params)."""
    entry = compiled_text[compiled_text.index("\nENTRY") :]
    loops = 0
    for line in entry.splitlines():
        if " fusion(" in line or " copy(" in line:
            result_type = line.split("=", 1)[1].split(" fusion(")[0].split(" copy(")[0]
            loops += "[]" not in result_type.replace("[]{", "") and "[" in result_type
    return loops


def run_inner(names: list[str], repeats: int, width: int, blocks: int = 10) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    shapes = leaf_shapes(blocks=blocks, width=width)
    n = sum(int(np.prod(s)) for s in shapes)
    keys = jax.random.split(jax.random.PRNGKey(0), len(shapes))
    tree = lambda: {
        f"l{i:02d}": jax.random.normal(k, s)
        for i, (k, s) in enumerate(zip(keys, shapes, strict=True))
    }
    grads = tree()

    triad = jax.jit(lambda b, c, s: b + s * c, donate_argnums=0)
    c, s = jnp.ones((n,)), jnp.float32(0.5)
    b = triad(jnp.zeros((n,)), c, s)

    variants = _variants()
    results = {"n_params": n, "leaves": len(shapes), "xla_flags": os.environ.get("XLA_FLAGS", "")}
    for name in names:
        fn, is_flat = variants[name]
        g = jnp.concatenate([x.ravel() for x in grads.values()]) if is_flat is True else grads
        state = [jax.tree.map(jnp.zeros_like, g) for _ in range(3)] + [jnp.int32(0)]
        if is_flat == "state":
            state[1], state[2] = {"x": jnp.zeros((n,))}, {"x": jnp.zeros((n,))}
        step = jax.jit(fn, donate_argnums=(0, 1, 2))
        text = step.lower(*state[:3], g, state[3]).compile().as_text()
        out = step(*state[:3], g, state[3])
        jax.block_until_ready(out)
        ratios, t_step, t_triad = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            b = jax.block_until_ready(triad(b, c, s))
            t1 = time.perf_counter()
            out = jax.block_until_ready(step(*out[:3], g, out[3]))
            t2 = time.perf_counter()
            t_triad.append(t1 - t0)
            t_step.append(t2 - t1)
            ratios.append((28 * n / (t2 - t1)) / (12 * n / (t1 - t0)))
        results[name] = {
            "ratio_to_triad": float(np.median(ratios)),
            "gbps": 28 * n / float(np.median(t_step)) / 1e9,
            "triad_gbps": 12 * n / float(np.median(t_triad)) / 1e9,
            "ms": 1e3 * float(np.median(t_step)),
            "array_loops": array_loops(text),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants", default="obvious,one_map,sibling_cse,sibling,flat_obvious,flat_sibling"
    )
    parser.add_argument(
        "--flags", default="default,mof", help="comma list of " + ",".join(FLAG_SETS)
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--blocks", type=int, default=10, help="4 leaves per block")
    parser.add_argument("--inner", action="store_true", help="measure in this process")
    args = parser.parse_args()
    names = args.variants.split(",")
    if args.inner:
        print(json.dumps(run_inner(names, args.repeats, args.width, args.blocks)))
        return
    print(f"{'flags':8s} {'variant':14s} {'ratio':>6s} {'GB/s':>6s} {'triad':>6s} {'ms':>6s} loops")
    for flag_name in args.flags.split(","):
        env = dict(os.environ, XLA_FLAGS=FLAG_SETS[flag_name])
        cmd = [
            sys.executable,
            __file__,
            "--inner",
            "--variants",
            args.variants,
            "--repeats",
            str(args.repeats),
            "--width",
            str(args.width),
            "--blocks",
            str(args.blocks),
        ]
        res = json.loads(
            subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        )
        for name in names:
            r = res[name]
            print(
                f"{flag_name:8s} {name:14s} {r['ratio_to_triad']:6.3f} {r['gbps']:6.1f} "
                f"{r['triad_gbps']:6.1f} {r['ms']:6.2f} {r['array_loops']}"
            )


if __name__ == "__main__":
    main()
