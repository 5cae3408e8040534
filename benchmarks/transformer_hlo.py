"""The transformer's whole-program surplus (#23 §3): what the optimized HLO shows, and the time.

    python benchmarks/transformer_hlo.py          # HLO counts + timings, default vs reuse (~2 min)
    python benchmarks/transformer_hlo.py --quick  # smoke run (~1.5 min)
    python benchmarks/transformer_hlo.py --no-hlo --malloc env,thp   # other allocator settings
    python benchmarks/transformer_hlo.py --no-time --keep-dump /tmp/hlo   # dumps, kept

The model is `benchmarks/vs_torch.py`'s (vocab 65, dim 128, 2 pre-LN blocks, 4 heads, MLP 4×,
T 128, batch 16; XLA:CPU multi-output fusion on, as vs_torch.py sets it).

1. HLO. A child process compiles, with ``--xla_dump_to`` (text), the programs below, and this
   script reads the optimized HLO and the buffer assignment of each: fusions by kind, the
   copy/transpose fusions, dots (YNNPACK ``ynn_fusion`` custom fusions vs plain ``dot``), and
   the one preallocated temp buffer XLA:CPU asks for per call.

       step        funcnn's train step (transformer_lm + cross_entropy + adamw, train.make_step)
       loss+grad   jit(grad(cross_entropy(transformer_lm(...))))
       block       one transformer_block, fwd + bwd (cotangent an argument)
       attention   LayerNorm + causal multi-head attention, fwd + bwd    (the "pieces" of
       mlp         LayerNorm + 128→512→128 exact-GELU MLP, fwd + bwd      `--study parts`)
       outer       embedding + positions + final LN + head + cross-entropy, fwd + bwd

2. Time. One child process per allocator setting times, interleaved (round-robin, median of
   per-round ratios), funcnn's loss+grad, step, block and pieces against torch's, and counts
   the minor page faults per call (``getrusage``). "surplus" = whole loss+grad ÷ (2 × (attention
   + mlp) + outer), the README's measure; torch's is computed the same way.

   --malloc default   glibc as it comes: a buffer ≥ 32 MiB (glibc's largest dynamic mmap
                      threshold) is mmap'ed for each call and unmapped after it, so every call
                      first-touches — page-faults and zeroes — every page of XLA's temp buffer.
   --malloc reuse     `funcnn.scale.xla.reuse_cpu_buffers()` first thing: glibc's `mallopt`
                      M_MMAP_MAX = 0 (no mmap'ed chunks), M_TRIM_THRESHOLD = 1 GiB (freed
                      memory stays in the heap), M_ARENA_MAX = 1 (XLA's worker threads
                      allocate from the main, brk-grown arena; a thread arena cannot hold a
                      block ≥ 64 MiB and would mmap it anyway).
   --malloc env       the same three settings as environment variables, from process start
                      (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_ARENA_MAX=1).
   --malloc thp       GLIBC_TUNABLES=glibc.malloc.hugetlb=1: mmap'ed chunks get transparent huge
                      pages (2 MiB), so 512× fewer faults, but the kernel still zeroes them.

torch runs in the same processes, under the same allocator setting.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's funcnn, not an installed one

MALLOC_ENV = {
    "default": {},
    "reuse": {},
    "env": {
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
        "MALLOC_ARENA_MAX": "1",
    },
    "thp": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=12, help="timed rounds per process")
    p.add_argument(
        "--malloc",
        default="default,reuse",
        help="all, or a comma list of: " + ", ".join(MALLOC_ENV),
    )
    p.add_argument("--no-hlo", action="store_true", help="skip the HLO dump and counts")
    p.add_argument("--no-time", action="store_true", help="skip the timings")
    p.add_argument("--xla-flags", default="", help="extra XLA_FLAGS for the child processes")
    p.add_argument("--keep-dump", default="", help="dump the HLO here and keep it")
    p.add_argument("--quick", action="store_true", help="few repeats")
    p.add_argument("--json", default="", help="also write the timing results here")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)  # "hlo" or "time"
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 5)
    return args


# ----------------------------------------------------------------------------- programs


def build(vt):
    """funcnn's and torch's programs: {name: (funcnn_fn, torch_fn or None)}, plus loss0."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    import torch.nn.functional as F

    from funcnn import losses
    from funcnn import nn as fnn

    tf = vt.TF
    b, t, d, heads = tf["batch"], tf["T"], tf["dim"], tf["heads"]
    model, params, batch, (xn, yn) = vt.transformer_setup()
    f_step, f_state, f_loss = vt.funcnn_step(model, params)

    def transformer_loss(p, x, y):
        return losses.cross_entropy(model.apply(p, x), y)

    loss_grad = jax.jit(jax.grad(transformer_loss))

    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (b, t, d))
    r = jax.random.normal(jax.random.PRNGKey(1), (b, t, d))  # the cotangent: an argument
    block = fnn.transformer_block(d, num_heads=heads, causal=True)
    attention = fnn.serial(
        fnn.layer_norm(), fnn.multi_head_attention(d, num_heads=heads, causal=True)
    )
    mlp = fnn.serial(fnn.layer_norm(), fnn.feed_forward(d, 4 * d))

    def piece(layer, name):
        p, _ = layer.init(key, (b, t, d))

        def loss(p, x, r):  # Σ layer(x)·r: the backward pass starts from the cotangent r
            return jnp.sum(layer.apply(p, x) * r)

        loss.__name__ = f"{name}_piece"  # names the compiled module: jit_<name>_piece
        return jax.jit(jax.grad(loss, (0, 1))), p

    grad_outer, ps = vt.transformer_outer_piece(params)
    pieces = {
        n: piece(layer, n)
        for n, layer in (("block", block), ("attention", attention), ("mlp", mlp))
    }

    # torch: the same model (weights copied), its step and the same pieces
    tm = vt.TorchGPT(params)
    xi, yi = torch.from_numpy(xn.astype(np.int64)), torch.from_numpy(yn.astype(np.int64))
    t_step, _ = vt.torch_train_step(vt.TorchGPT(params), xi, yi)
    xt = torch.from_numpy(np.array(x)).requires_grad_()
    rt = torch.from_numpy(np.array(r))
    blk = tm.blocks[0]

    def split(z):
        return z.view(b, t, heads, -1).transpose(1, 2)

    def t_attention(h):
        a = blk.ln1(h)
        y = F.scaled_dot_product_attention(
            split(blk.q(a)), split(blk.k(a)), split(blk.v(a)), is_causal=True
        )
        return blk.o(y.transpose(1, 2).reshape(b, t, d))

    def t_mlp(h):
        return blk.fc2(F.gelu(blk.fc1(blk.ln2(h))))

    def t_block(h):
        h = h + t_attention(h)
        return h + t_mlp(h)

    def t_piece(fn):
        def go():
            xt.grad = None
            tm.zero_grad(set_to_none=True)
            (fn(xt) * rt).sum().backward()

        return go

    def t_loss_grad():
        tm.zero_grad(set_to_none=True)
        F.cross_entropy(tm(xi).reshape(-1, vt.VOCAB), yi.reshape(-1)).backward()

    emb = torch.nn.Parameter(torch.from_numpy(np.array(ps[0])))
    pos = torch.nn.Parameter(torch.from_numpy(np.array(ps[1])))

    def t_outer():
        tm.zero_grad(set_to_none=True)
        h = emb[xi] + pos[: xi.shape[1]]
        F.cross_entropy(tm.head(tm.ln_f(h)).reshape(-1, vt.VOCAB), yi.reshape(-1)).backward()

    ready = jax.block_until_ready
    box = [f_state]

    def f_run_step():
        box[0] = ready(f_step(box[0], batch)[0])

    programs = {
        "step": (f_run_step, t_step),
        "loss+grad": (lambda: ready(loss_grad(params, *batch)), t_loss_grad),
        "block": (lambda: ready(pieces["block"][0](pieces["block"][1], x, r)), t_piece(t_block)),
        "attention": (
            lambda: ready(pieces["attention"][0](pieces["attention"][1], x, r)),
            t_piece(t_attention),
        ),
        "mlp": (lambda: ready(pieces["mlp"][0](pieces["mlp"][1], x, r)), t_piece(t_mlp)),
        "outer": (lambda: ready(grad_outer(ps, *batch)), t_outer),
    }
    with torch.no_grad():
        t_loss = float(F.cross_entropy(tm(xi).reshape(-1, vt.VOCAB), yi.reshape(-1)))
    loss0 = {"funcnn": float(f_loss(params, batch, None)[0]), "torch": t_loss}
    vt.check_losses("transformer", loss0)
    return programs, loss0


def import_vs_torch(no_mof: bool = False):
    """benchmarks/vs_torch.py as a module (it parses sys.argv and enables multi-output fusion
    when imported; give it an argv of its own)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    argv, sys.argv = sys.argv, [sys.argv[0]] + (["--no-mof"] if no_mof else [])
    try:
        import vs_torch
    finally:
        sys.argv = argv
    return vs_torch


# ----------------------------------------------------------------------------- HLO


def child_hlo() -> None:
    """Compile every program once (XLA_FLAGS carries the dump options)."""
    vt = import_vs_torch()
    programs, _ = build(vt)
    for funcnn_fn, _ in programs.values():
        funcnn_fn()


# program → the name XLA gives its module (jit_<python function name>)
MODULES = {
    "step": "jit_step",
    "loss+grad": "jit_transformer_loss",
    "block": "jit_block_piece",
    "attention": "jit_attention_piece",
    "mlp": "jit_mlp_piece",
    "outer": "jit_outer",
}


def hlo_stats(text: str) -> dict:
    """Counts over the ENTRY computation of an optimized HLO module."""
    entry = text[text.index("\nENTRY ") :]
    entry = entry[: entry.index("\n}\n") + 2]
    kinds: Counter = Counter()
    ops: Counter = Counter()
    names = []
    for line in entry.splitlines():
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = .*? ([a-z][\w\-]*)\(", line)
        if not m:
            continue
        name, op = m.groups()
        ops[op] += 1
        names.append(name)
        if op == "fusion":
            kinds[re.search(r"kind=(\w+)", line).group(1)] += 1
    copies = sum(1 for n in names if "copy" in n or "transpose" in n)
    return {
        "fusions": sum(kinds.values()),
        "kLoop": kinds["kLoop"],
        "kCustom (ynn)": kinds["kCustom"],
        "plain dot": ops["dot"],
        "copy/transpose": copies,
        "ops": sum(ops.values()) - ops["parameter"] - ops["constant"],
    }


def temp_bytes(assignment: str) -> int:
    m = re.search(r"allocation \d+: size (\d+), preallocated-temp", assignment)
    return int(m.group(1)) if m else 0


def run_hlo(args) -> dict:
    dump = Path(args.keep_dump or tempfile.mkdtemp(prefix="transformer_hlo_"))
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" {args.xla_flags} --xla_dump_to={dump} --xla_dump_hlo_as_text"
        " --xla_dump_hlo_pass_re=^$"
    ).strip()
    subprocess.run([sys.executable, __file__, "--child", "hlo"], env=env, check=True, cwd=ROOT)
    files = sorted(dump.glob("module_*.cpu_after_optimizations.txt"))
    named = {p: [f for f in files if f".{m}." in f.name][-1] for p, m in MODULES.items()}
    stats = {}
    for name, f in named.items():
        s = hlo_stats(f.read_text())
        ba = f.with_name(f.name.replace(".txt", "-buffer-assignment.txt"))
        s["temp MiB"] = round(temp_bytes(ba.read_text()) / 2**20, 1)
        stats[name] = s
    cols = list(next(iter(stats.values())))
    print("\noptimized HLO (ENTRY computation; XLA:CPU, multi-output fusion on)")
    print(f"  {'program':10s}" + "".join(f"{c:>16s}" for c in cols))
    for name, s in stats.items():
        print(f"  {name:10s}" + "".join(f"{s[c]:>16}" for c in cols))
    if not args.keep_dump:
        shutil.rmtree(dump, ignore_errors=True)
    else:
        print(f"  dump kept in {dump}: {', '.join(f'{k}={v.name}' for k, v in named.items())}")
    return stats


# ----------------------------------------------------------------------------- timing


def child_time(args) -> None:
    if args.malloc == "reuse":
        from funcnn.scale import xla

        if not xla.reuse_cpu_buffers():  # before JAX's backend and torch allocate anything
            raise SystemExit("reuse_cpu_buffers: not glibc")
    vt = import_vs_torch()
    import numpy as np

    programs, loss0 = build(vt)
    fns = {}
    for name, (f, t) in programs.items():
        fns[f"{name}: funcnn"], fns[f"{name}: torch"] = f, t
    for fn in fns.values():  # compile and warm up
        fn()
        fn()
    load0 = os.getloadavg()
    times: dict[str, list[float]] = {k: [] for k in fns}
    faults: Counter = Counter()
    for _ in range(args.repeats):
        for name, fn in fns.items():
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    load1 = os.getloadavg()
    t = {k: np.asarray(v) for k, v in times.items()}
    out = {"malloc": args.malloc, "load": [load0[0], load1[0]], "loss0": loss0, "rows": {}}
    print(
        f"\nmalloc={args.malloc}: load average {load0[0]:.2f} → {load1[0]:.2f}, "
        f"{args.repeats} rounds (ms per call, median; ratio = median of per-round ratios)"
    )
    print(
        f"  {'program':10s} {'funcnn':>8s} {'torch':>8s} {'÷ torch':>8s} {'faults/call f, t':>18s}"
    )
    for name in programs:
        f, tt = t[f"{name}: funcnn"], t[f"{name}: torch"]
        row = {
            "funcnn_ms": 1e3 * float(np.median(f)),
            "torch_ms": 1e3 * float(np.median(tt)),
            "ratio": float(np.median(f / tt)),
            "faults_funcnn": faults[f"{name}: funcnn"] / args.repeats,
            "faults_torch": faults[f"{name}: torch"] / args.repeats,
        }
        out["rows"][name] = row
        print(
            f"  {name:10s} {row['funcnn_ms']:8.2f} {row['torch_ms']:8.2f} {row['ratio']:8.2f} "
            f"{row['faults_funcnn']:9.0f} {row['faults_torch']:8.0f}"
        )
    for who in ("funcnn", "torch"):
        whole = t[f"loss+grad: {who}"]
        parts = 2 * (t[f"attention: {who}"] + t[f"mlp: {who}"]) + t[f"outer: {who}"]
        blk = t[f"block: {who}"] / (t[f"attention: {who}"] + t[f"mlp: {who}"])
        out[f"surplus_{who}"] = float(np.median(whole / parts))
        out[f"block_surplus_{who}"] = float(np.median(blk))
        print(
            f"  {who}: loss+grad ÷ (2·(attention + mlp) + outer) = {out[f'surplus_{who}']:.2f}; "
            f"block ÷ (attention + mlp) = {out[f'block_surplus_{who}']:.2f}"
        )
    print("RESULT " + json.dumps(out))


def run_time(args) -> list[dict]:
    modes = list(MALLOC_ENV) if args.malloc == "all" else args.malloc.split(",")
    results = []
    for mode in modes:
        cmd = [sys.executable, __file__, "--child", "time", "--malloc", mode]
        cmd += ["--repeats", str(args.repeats)]
        env = dict(os.environ, **MALLOC_ENV[mode])
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + args.xla_flags).strip()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"malloc={mode}: the timing process failed:\n{proc.stderr[-3000:]}")
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                results.append(json.loads(line[len("RESULT ") :]))
            else:
                print(line)
    return results


def main() -> None:
    args = parse_args()
    if args.child == "hlo":
        return child_hlo()
    if args.child == "time":
        return child_time(args)
    print(f"load average {os.getloadavg()[0]:.2f}; extra XLA_FLAGS: {args.xla_flags or '(none)'}")
    report: dict = {"xla_flags": args.xla_flags}
    if not args.no_hlo:
        report["hlo"] = run_hlo(args)
    if not args.no_time:
        report["time"] = run_time(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
