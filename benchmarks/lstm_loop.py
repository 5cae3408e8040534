"""Where the LSTM's loop time goes: XLA:CPU's while loop against torch's Python loop.

    python benchmarks/lstm_loop.py                 # all cases, ~1 min on 2 shared cores
    python benchmarks/lstm_loop.py --quick         # smoke run
    python benchmarks/lstm_loop.py --cases empty,matmul --xla "--xla_cpu_..."   # extra flags
    python benchmarks/lstm_loop.py --flag-study    # each XLA flag set in its own process:
                                                   # this script's cases + vs_torch's LSTM step
                                                   # (LSTM_FLAG_SETS="a,b" runs only those)
    python benchmarks/lstm_loop.py --m-sweep       # h ← (h·W)[:, :H] with h of M = 8…512 rows:
                                                   # a fixed per-dot cost would show at small M

Shapes are the LSTM LM of vs_torch.py: batch N 32, hidden H 256 (4H = 1024), T 64 steps.
Each case runs the same ops in JAX (one jitted lax.scan / fori_loop, 64 iterations) and in
torch eager (a Python loop of 64 iterations; torch.set_num_threads(2), OMP_WAIT_POLICY=
PASSIVE set before torch is imported, as vs_torch.py does):

  empty      h ← h + 1                                 per-iteration runtime overhead
  matmul     h ← (h·W)[:, :H],  (N×H)·(H×4H)           overhead + one small-M matmul
  matmul W^T the same with W stored (4H, H) and contracted on its dim 1 (torch: W.T view)
  matmul HIGHEST / bf16   the same with precision=HIGHEST / bf16 operands and float32
             results (preferred_element_type), against torch's f32 / bf16 mm
  cell fwd   funcnn's lstm_scan forward (matmul + gates, outputs stacked)
  cell bwd   funcnn's hand-written backward scan (_lstm_scan_bwd: gate math, ∂z·W_hᵀ per
             step, then ∂W_h as one (H, T·N)·(T·N, 4H) matmul), from saved residuals
  big matmul the same FLOPs as the 64 small products: one (T·N × H)·(H × 4H) matmul
  layer f+b  the whole layer: x (N, T, 64) → nn.lstm(256) forward + backward against
             torch.nn.LSTM (oneDNN's fused kernel), loss Σ ys⊙r

Timing: one warm-up call each, then `--rounds` rounds; in each round every candidate runs
`--reps` calls back to back, round-robin. Printed: the median time per call, per loop
iteration, GFLOP/s for the matmul cases, the median over rounds of the per-round ratio
JAX ÷ torch, and the minor page faults per call of each (getrusage, 5 more calls: XLA:CPU
allocates a program's temporaries as one buffer per call, and glibc serves a buffer over
32 MiB by a fresh mmap, so every page of it faults again on every call), with
os.getloadavg() at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
N, H, T, E = 32, 256, 64, 64
CASES = (
    "empty",
    "matmul",
    "matmul W^T",
    "matmul HIGHEST",
    "matmul bf16",
    "cell fwd",
    "cell bwd",
    "big matmul",
    "layer f+b",
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15, help="timed rounds")
    p.add_argument("--reps", type=int, default=3, help="calls per candidate per round")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma list of {CASES}")
    p.add_argument("--xla", default="", help="extra XLA_FLAGS for this process")
    p.add_argument("--no-mof", action="store_true", help="leave multi-output fusion off")
    p.add_argument("--flag-study", action="store_true", help="one subprocess per flag set")
    p.add_argument("--m-sweep", action="store_true", help="the loop matmul at M = 8…512 rows")
    p.add_argument("--json", default="", help="write the results here")
    p.add_argument("--quick", action="store_true", help="few rounds")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.reps = min(args.rounds, 4), min(args.reps, 2)
    return args


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
if not ARGS.flag_study:
    if ARGS.xla:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + ARGS.xla).strip()
    if not ARGS.no_mof:  # as vs_torch.py: before JAX's backend starts
        import funcnn.scale.xla

        funcnn.scale.xla.enable_cpu_multi_output_fusion()
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from funcnn import nn  # noqa: E402
from funcnn.nn.recurrent import _lstm_scan_bwd, _lstm_scan_fwd, lstm_scan  # noqa: E402

torch.set_num_threads(2)
MATMUL_FLOP = 2 * N * H * 4 * H * T  # the 64 small products (or the one big one)


# ----------------------------------------------------------------------------- data
def data():
    rng = np.random.default_rng(0)
    d = {
        "h": rng.standard_normal((N, H), np.float32),
        "w": (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(np.float32),
        "xp": (0.5 * rng.standard_normal((T, N, 4 * H))).astype(np.float32),
        "dy": rng.standard_normal((T, N, H)).astype(np.float32),
        "big": rng.standard_normal((T * N, H)).astype(np.float32),
        "x": rng.standard_normal((N, T, E)).astype(np.float32),
        "r": rng.standard_normal((N, T, H)).astype(np.float32),
    }
    return d


def jax_cases(d: dict, names: list[str]) -> dict:
    h, w, xp, dy = (jnp.asarray(d[k]) for k in ("h", "w", "xp", "dy"))
    zero = jnp.zeros((N, H))
    fns = {}
    if "empty" in names:
        f = jax.jit(lambda h: jax.lax.fori_loop(0, T, lambda i, h: h + 1.0, h))
        fns["empty"] = lambda f=f: f(h)
    if "matmul" in names:
        f = jax.jit(lambda h, w: jax.lax.fori_loop(0, T, lambda i, h: (h @ w)[:, :H], h))
        fns["matmul"] = lambda f=f: f(h, w)
    if "matmul W^T" in names:  # W stored (4H, H), contracted on its dim 1: h·(Wᵀ)ᵀ
        wt = jnp.asarray(d["w"].T.copy())
        dims = (((1,), (1,)), ((), ()))
        body = lambda i, h: jax.lax.dot_general(h, wt, dims)[:, :H]
        f = jax.jit(lambda h: jax.lax.fori_loop(0, T, body, h))
        fns["matmul W^T"] = lambda f=f: f(h)
    if "matmul HIGHEST" in names:  # float32 dots on XLA:CPU: DEFAULT is already full f32
        hi = jax.lax.Precision.HIGHEST
        body = lambda i, h: jnp.matmul(h, w, precision=hi)[:, :H]
        f = jax.jit(lambda h: jax.lax.fori_loop(0, T, body, h))
        fns["matmul HIGHEST"] = lambda f=f: f(h)
    if "matmul bf16" in names:  # bf16 operands, f32 accumulation (changes the numerics)
        w16 = w.astype(jnp.bfloat16)
        dims = (((1,), (0,)), ((), ()))
        body = lambda i, h: jax.lax.dot_general(
            h.astype(jnp.bfloat16), w16, dims, preferred_element_type=jnp.float32
        )[:, :H]
        f = jax.jit(lambda h: jax.lax.fori_loop(0, T, body, h))
        fns["matmul bf16"] = lambda f=f: f(h)
    if "cell fwd" in names:
        f = jax.jit(lambda w, xp, h: lstm_scan(w, xp, (h, h), None))
        fns["cell fwd"] = lambda f=f: f(w, xp, zero)
    if "cell bwd" in names:
        _, res = _lstm_scan_fwd(w, xp, (zero, zero), None, 0.0, False, 1)
        cot = ((zero, zero), dy)
        f = jax.jit(lambda res, cot: _lstm_scan_bwd(0.0, False, 1, res, cot)[:2])
        fns["cell bwd"] = lambda f=f: f(res, cot)
    if "big matmul" in names:
        big = jnp.asarray(d["big"])
        f = jax.jit(lambda a, w: a @ w)
        fns["big matmul"] = lambda f=f: f(big, w)
    if "layer f+b" in names:
        layer = nn.lstm(H)
        params, _ = layer.init(jax.random.PRNGKey(0), (N, T, E))
        x, r = jnp.asarray(d["x"]), jnp.asarray(d["r"])
        g = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) * r), (0, 1)))
        fns["layer f+b"] = lambda: g(params, x)
        d["layer_params"] = params
    return {k: (lambda fn=fn: jax.block_until_ready(fn())) for k, fn in fns.items()}


def torch_cases(d: dict, names: list[str]) -> dict:
    h, w, xp, dy = (torch.from_numpy(d[k]) for k in ("h", "w", "xp", "dy"))
    fns = {}

    def empty():
        a = h
        for _ in range(T):
            a = a + 1.0
        return a

    def matmul():
        a = h
        for _ in range(T):
            a = torch.mm(a, w)[:, :H]
        return a

    wt = w.T.contiguous()

    def matmul_t():  # torch.mm with the transposed view: BLAS reads Wᵀ as "T"
        a = h
        for _ in range(T):
            a = torch.mm(a, wt.T)[:, :H]
        return a

    def cell_fwd(save=False):
        a, c = torch.zeros(N, H), torch.zeros(N, H)
        ys, saved = [], []
        for t in range(T):
            z = torch.addmm(xp[t], a, w)
            i, f, g, o = z.chunk(4, 1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            if save:
                saved.append((a, c, torch.cat([i, f, g, o], 1)))
            c = f * c + i * g
            tc = torch.tanh(c)
            a = o * tc
            ys.append(a)
            if save:
                saved[-1] += (tc,)
        return torch.stack(ys), saved

    _, saved = cell_fwd(save=True)
    h_prev = torch.stack([s[0] for s in saved])
    c_prev = torch.stack([s[1] for s in saved])
    gates = torch.stack([s[2] for s in saved])
    tanh_c = torch.stack([s[3] for s in saved])
    w_t = w.T

    def cell_bwd():  # the same ops as funcnn's _lstm_scan_bwd, in a Python loop
        dh_next, dc_next = torch.zeros(N, H), torch.zeros(N, H)
        dzs = [None] * T
        for t in range(T - 1, -1, -1):
            i, f, g, o = gates[t].chunk(4, 1)
            tc = tanh_c[t]
            dh = dy[t] + dh_next
            dc = dc_next + dh * o * (1 - tc * tc)
            dz = torch.cat(
                [
                    dc * g * i * (1 - i),
                    dc * c_prev[t] * f * (1 - f),
                    dc * i * (1 - g * g),
                    dh * tc * o * (1 - o),
                ],
                1,
            )
            dzs[t] = dz
            dh_next, dc_next = torch.mm(dz, w_t), dc * f
        dz = torch.stack(dzs)
        return h_prev.reshape(T * N, H).T @ dz.reshape(T * N, 4 * H), dz

    big = torch.from_numpy(d["big"])
    lstm = torch.nn.LSTM(E, H, batch_first=True)
    if "layer_params" in d:  # same weights as funcnn's layer (biases: b_ih = b, b_hh = 0)
        p = d["layer_params"]
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(torch.from_numpy(np.array(p["w_x"]).T))
            lstm.weight_hh_l0.copy_(torch.from_numpy(np.array(p["w_h"]).T))
            lstm.bias_ih_l0.copy_(torch.from_numpy(np.array(p["b"])))
            lstm.bias_hh_l0.zero_()
    x = torch.from_numpy(d["x"]).requires_grad_()
    r = torch.from_numpy(d["r"])

    def layer():
        lstm.zero_grad(set_to_none=True)
        x.grad = None
        (lstm(x)[0] * r).sum().backward()

    w16 = w.to(torch.bfloat16)

    def matmul_bf16():  # torch's bf16 matmul (oneDNN), result cast back to f32 each step
        a = h
        for _ in range(T):
            a = torch.mm(a.to(torch.bfloat16), w16)[:, :H].float()
        return a

    table = {
        "empty": empty,
        "matmul": matmul,
        "matmul W^T": matmul_t,
        "matmul HIGHEST": matmul,
        "matmul bf16": matmul_bf16,
        "cell fwd": lambda: cell_fwd()[0],
        "cell bwd": cell_bwd,
        "big matmul": lambda: big @ w,
        "layer f+b": layer,
    }
    for name in names:
        fn = table[name]
        fns[name] = fn if name != "cell fwd" else (lambda fn=fn: torch.no_grad()(fn)())
    return fns


def check_agreement(d: dict, names: list[str]) -> None:
    """The JAX and torch versions of each case compute the same numbers (float32 rounding)."""
    if "cell fwd" in names:
        w, xp = jnp.asarray(d["w"]), jnp.asarray(d["xp"])
        zero = jnp.zeros((N, H))
        _, ys = lstm_scan(w, xp, (zero, zero), None)
        tw, txp = torch.from_numpy(d["w"]), torch.from_numpy(d["xp"])
        a, c = torch.zeros(N, H), torch.zeros(N, H)
        for t in range(T):
            i, f, g, o = torch.addmm(txp[t], a, tw).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            a = torch.sigmoid(o) * torch.tanh(c)
        err = float(np.max(np.abs(np.array(ys[-1]) - a.numpy())))
        print(f"  cell fwd: max |h_T(JAX) − h_T(torch)| = {err:.1e}")


# ----------------------------------------------------------------------------- timing
def interleaved(fns: dict, rounds: int, reps: int) -> dict[str, np.ndarray]:
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t0) / reps)
    return {k: np.asarray(v) for k, v in times.items()}


def faults_per_call(fn, calls: int = 5) -> float:
    """Minor page faults per call: a fresh mmap'd buffer costs one per 4 KiB page touched."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def run_cases(args) -> dict:
    names = [c for c in args.cases.split(",") if c]
    unknown = set(names) - set(CASES)
    if unknown:
        raise SystemExit(f"--cases: unknown {sorted(unknown)}, expected some of {CASES}")
    load0 = os.getloadavg()[0]
    print(
        f"jax {jax.__version__}, torch {torch.__version__}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    d = data()
    jfns, tfns = jax_cases(d, names), torch_cases(d, names)
    check_agreement(d, names)
    fns = {}
    for n in names:
        fns[f"jax {n}"], fns[f"torch {n}"] = jfns[n], tfns[n]
    t = interleaved(fns, args.rounds, args.reps)
    faults = {k: faults_per_call(fn) for k, fn in fns.items()}
    load1 = os.getloadavg()[0]
    out = {"load_start": load0, "load_end": load1, "xla_flags": os.environ.get("XLA_FLAGS", "")}
    print(f"\n{args.rounds} rounds × {args.reps} calls, load {load0:.2f} → {load1:.2f}")
    print(
        f"  {'case':12s} {'JAX ms':>8s} {'torch ms':>9s} {'JAX µs/it':>10s} {'torch µs/it':>12s}"
        f" {'JAX GF/s':>9s} {'torch GF/s':>11s} {'JAX÷torch':>10s} {'faults J/t':>12s}"
    )
    for n in names:
        tj, tt = t[f"jax {n}"], t[f"torch {n}"]
        mj, mt = float(np.median(tj)), float(np.median(tt))
        iters = 1 if n in ("big matmul", "layer f+b") else T
        flop = {
            "matmul": MATMUL_FLOP,
            "matmul HIGHEST": MATMUL_FLOP,
            "matmul bf16": MATMUL_FLOP,
            "matmul W^T": MATMUL_FLOP,
            "big matmul": MATMUL_FLOP,
            "cell fwd": MATMUL_FLOP,
            "cell bwd": 2 * MATMUL_FLOP,
        }.get(n)
        gj = f"{flop / mj / 1e9:9.1f}" if flop else f"{'':9s}"
        gt = f"{flop / mt / 1e9:11.1f}" if flop else f"{'':11s}"
        ratio = float(np.median(tj / tt))
        print(
            f"  {n:12s} {1e3 * mj:8.2f} {1e3 * mt:9.2f} {1e6 * mj / iters:10.1f} "
            f"{1e6 * mt / iters:12.1f} {gj} {gt} {ratio:10.3f} "
            f"{faults[f'jax {n}']:6.0f}/{faults[f'torch {n}']:<6.0f}"
        )
        out[n] = {
            "jax_ms": 1e3 * mj,
            "torch_ms": 1e3 * mt,
            "ratio": ratio,
            "jax_faults": faults[f"jax {n}"],
            "torch_faults": faults[f"torch {n}"],
        }
    return out


def m_sweep(args) -> None:
    """The loop's matmul h ← (h·W)[:, :H] for h of M rows, JAX and torch: per-iteration time
    and GFLOP/s. Time ∝ M means no fixed per-dot cost (packing W, dispatch) to amortise."""
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.standard_normal((H, 4 * H)) / np.sqrt(H), jnp.float32)
    tw = torch.from_numpy(np.array(w))
    fns = {}
    for m in (8, 32, 128, 512):
        h = jnp.asarray(rng.standard_normal((m, H)), jnp.float32)
        th = torch.from_numpy(np.array(h))
        f = jax.jit(lambda h, w: jax.lax.fori_loop(0, T, lambda i, h: (h @ w)[:, :H], h))
        fns[f"jax M={m}"] = lambda f=f, h=h: jax.block_until_ready(f(h, w))

        def torch_loop(th=th):
            a = th
            for _ in range(T):
                a = torch.mm(a, tw)[:, :H]
            return a

        fns[f"torch M={m}"] = torch_loop
    load0 = os.getloadavg()[0]
    t = interleaved(fns, args.rounds, args.reps)
    print(
        f"\nloop matmul by rows M, {args.rounds} rounds × {args.reps} calls, "
        f"load {load0:.2f} → {os.getloadavg()[0]:.2f}"
    )
    for name, ts in t.items():
        m = int(name.split("=")[1])
        med = float(np.median(ts))
        gflops = 2 * m * H * 4 * H * T / med / 1e9
        print(f"  {name:14s} {1e6 * med / T:8.1f} µs/iter {gflops:7.1f} GFLOP/s")


# ----------------------------------------------------------------------------- flag study
_EXTRA = "--xla_backend_extra_options="
FLAG_SETS = {
    "defaults (+mof)": "",
    "small-while threshold 0 (off)": _EXTRA + "xla_cpu_small_while_loop_byte_threshold=0",
    "small-while threshold 1e9": _EXTRA + "xla_cpu_small_while_loop_byte_threshold=1000000000",
    "YNNPACK dots off (Eigen)": "--xla_cpu_experimental_ynn_fusion_type=",
    "YNN +dot +eltwise": "--xla_cpu_experimental_ynn_fusion_type=+dot,+eltwise",
    "XNNPACK dots": "--xla_cpu_experimental_ynn_fusion_type= "
    "--xla_cpu_experimental_xnn_fusion_type=individual_dot",
    "oneDNN dots": "--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_use_onednn=true "
    "--xla_cpu_experimental_onednn_fusion_type=individual_dot",
    "no multi_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
    "concurrency scheduler off": "--xla_cpu_enable_concurrency_optimized_scheduler=false",
    "LLVM IR gemm": _EXTRA + "xla_force_enable_experimental_llvm_ir_gemm",
    "prefer vector width 512": "--xla_cpu_prefer_vector_width=512",
    "fusion emitters off": "--xla_cpu_use_fusion_emitters=false",
    "thunk runtime off": "--xla_cpu_use_thunk_runtime=false",
}


def flag_study(args) -> None:
    here = Path(__file__).resolve().parent
    rows = {}
    only = os.environ.get("LSTM_FLAG_SETS")  # comma list of FLAG_SETS names to run
    sets = {k: v for k, v in FLAG_SETS.items() if not only or k in only.split(",")}
    for name, flags in sets.items():
        env = os.environ.copy()
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
        out_loop = Path(f"/tmp/lstm_loop_{os.getpid()}.json")
        out_step = Path(f"/tmp/lstm_step_{os.getpid()}.json")
        loop_cmd = [
            sys.executable,
            str(here / "lstm_loop.py"),
            "--cases",
            args.cases,
            "--rounds",
            str(args.rounds),
            "--reps",
            str(args.reps),
            "--json",
            str(out_loop),
        ]
        step_cmd = [
            sys.executable,
            str(here / "vs_torch.py"),
            "--sections",
            "lstm",
            "--repeats",
            str(args.rounds),
            "--steps",
            "3",
            "--json",
            str(out_step),
        ]
        row: dict = {}
        for tag, cmd, path in (("loop", loop_cmd, out_loop), ("step", step_cmd, out_step)):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
            if done.returncode:
                row[tag] = "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:100]
                continue
            row[tag] = json.loads(path.read_text())
        rows[name] = row
        print(f"  {name}: {_flag_line(row)}", flush=True)
    print("\nXLA flag sets (each its own process; JAX ÷ torch in that process; load start→end)")
    for name, row in rows.items():
        print(f"  {name:32s} {_flag_line(row)}")


def _flag_line(row: dict) -> str:
    parts = []
    loop, step = row.get("loop"), row.get("step")
    if isinstance(loop, dict):
        parts += [f"{k} {loop[k]['ratio']:.2f}" for k in CASES if k in loop]
        parts.append(f"(load {loop['load_start']:.1f})")
    else:
        parts.append(f"loop {loop}")
    if isinstance(step, dict):
        s = step["lstm"]["times"]
        parts.append(
            f"| LSTM step funcnn {s['funcnn']['ratio']:.2f}, jax+optax "
            f"{s['jax+optax']['ratio']:.2f} (load {step['load_start']:.1f})"
        )
    else:
        parts.append(f"| step {step}")
    return "  ".join(parts)


def main(args) -> None:
    if args.flag_study:
        flag_study(args)
        return
    if args.m_sweep:
        m_sweep(args)
        return
    out = run_cases(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(ARGS)
