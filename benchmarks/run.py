"""funcnn performance harness: one run, one table, one JSON file.

    python benchmarks/run.py                      # full run (< 5 min on 2 CPU cores)
    python benchmarks/run.py --repeats 5 --quick  # smoke run
    python benchmarks/run.py --no-mof             # leave XLA:CPU's multi-output fusion off

Every figure is a median over `--repeats` timed repeats after a warm-up call, and every
comparison (funcnn vs hand-written, AdamW vs triad, fit vs Python loop) is measured
*interleaved* in the same process, so the ratios survive a noisy shared machine even when
the absolute times do not. Sections:

  abstraction MLP 784-512-512-10 / ReLU / cross-entropy / batch 128 / AdamW step:
              funcnn (nn.mlp + losses + optim.adamw + train.make_step) vs plain JAX,
              and its GFLOP/s as a fraction of a 1024² f32 jnp.dot timed interleaved
  precision   the same funcnn step under precision.MIXED_BFLOAT16
  optimizer   AdamW update+apply, ~10M f32 params in 40 leaves, vs an in-place triad
  dispatch    MLP 2-32-32-1 / tanh / MSE / batch 64 / Adam: fit (one dispatch per 256-step
              epoch, 4 epochs per call) vs a Python loop of jitted steps over device batches
  compile     lower+compile time of the first step
  memory      peak RSS of a training run with and without donation (subprocesses)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15, help="timed repeats per measurement")
    p.add_argument("--steps", type=int, default=20, help="steps timed per repeat (MLP step)")
    p.add_argument("--batch", type=int, default=128, help="abstraction-cost batch size")
    p.add_argument("--hidden", type=int, default=512, help="abstraction-cost hidden width")
    p.add_argument("--opt-width", type=int, default=512, help="optimizer tree: 40 leaves ≈ 40w²")
    p.add_argument("--dispatch-examples", type=int, default=64 * 256)
    p.add_argument("--dispatch-epochs", type=int, default=4, help="epochs per timed fit call")
    p.add_argument("--memory-width", type=int, default=4096, help="memory run: 2 w×w layers")
    p.add_argument("--sections", default="abstraction,precision,optimizer,dispatch,memory")
    p.add_argument("--no-mof", action="store_true", help="do not enable multi-output fusion")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"))
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.steps = min(args.repeats, 5), min(args.steps, 5)
        args.opt_width, args.memory_width = min(args.opt_width, 256), min(args.memory_width, 1024)
    return args


ARGS = parse_args()
if not ARGS.no_mof:  # must precede JAX's backend start-up; see funcnn/scale/xla.py
    import funcnn.scale.xla

    funcnn.scale.xla.enable_cpu_multi_output_fusion()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from funcnn import losses, nn, optim, train  # noqa: E402
from funcnn.scale import precision, xla  # noqa: E402

B1, B2, EPS, WD, LR = 0.9, 0.999, 1e-8, 0.01, 1e-3


def median(xs) -> float:
    return float(np.median(np.asarray(xs)))


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds per call of each no-argument callable, timed round-robin."""
    for fn in fns.values():
        fn()  # warm-up (and compile)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: median(ts) for name, ts in times.items()}


def interleaved_times(fns: dict, repeats: int) -> dict[str, np.ndarray]:
    """Seconds per call of each no-argument callable, timed round-robin: entry i of every
    array comes from the same round, so per-round quotients cancel machine-wide slowdowns."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: np.asarray(ts) for name, ts in times.items()}


def interleaved_ratio(fns: dict, base: str, repeats: int) -> dict[str, float]:
    """Median over rounds of time(name)/time(base) for each name."""
    t = interleaved_times(fns, repeats)
    return {name: median(t[name] / t[base]) for name in fns}


# ----------------------------------------------------------------------------- matmul


def dot_runner(n: int = 1024, calls: int = 4):
    """A no-argument callable running `calls` f32 (n×n)·(n×n) jnp.dots, and its FLOP count."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n))
    dot = jax.jit(jnp.dot)

    def run():
        for _ in range(calls):
            out = dot(a, b)
        out.block_until_ready()

    return run, calls * 2 * n**3


# ----------------------------------------------------------------------------- MLP step


def mlp_problem(args):
    sizes = [784, args.hidden, args.hidden, 10]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(args.batch, 784)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, size=(args.batch,)), jnp.int32)
    return sizes, (x, y)


def funcnn_step(sizes, policy=None):
    model = nn.mlp(sizes)
    if policy is not None:
        model = precision.with_policy(model, policy)

    def loss_fn(params, batch, key):
        x, y = batch
        return losses.cross_entropy(model.apply(params, x), y), {}

    opt = optim.adamw(LR, weight_decay=WD)
    params, _ = model.init(jax.random.PRNGKey(0), (-1, sizes[0]))
    state = train.init_state(params, opt, jax.random.PRNGKey(1))
    return train.make_step(loss_fn, opt), state


def hand_step(sizes):
    """Plain JAX: dict params, inline AdamW (decay on every leaf, like funcnn's default)."""
    keys = jax.random.split(jax.random.PRNGKey(0), len(sizes) - 1)
    params = {
        f"l{i}": {
            "w": jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a),
            "b": jnp.zeros((b,)),
        }
        for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
    }

    def forward(params, x):
        n = len(params)
        for i in range(n):
            x = x @ params[f"l{i}"]["w"] + params[f"l{i}"]["b"][None, :]
            if i < n - 1:
                x = jnp.maximum(x, 0.0)
        return x

    def loss(params, x, y):
        logp = jax.nn.log_softmax(forward(params, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def step(state, batch):
        params, m, v, t = state
        g = jax.grad(loss)(params, *batch)
        t = t + 1
        c1 = 1 - B1 ** t.astype(jnp.float32)
        c2 = 1 - B2 ** t.astype(jnp.float32)
        m = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, m, g)
        v = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
        params = jax.tree.map(
            lambda p, m, v: p - LR * ((m / c1) / (jnp.sqrt(v / c2) + EPS) + WD * p), params, m, v
        )
        return params, m, v, t

    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return jax.jit(step, donate_argnums=0), (params, zeros(), zeros(), jnp.int32(0))


def run_steps(step, box, batch, n, funcnn_api):
    def go():
        state = box[0]
        for _ in range(n):
            state = step(state, batch)[0] if funcnn_api else step(state, batch)
        jax.block_until_ready(state)
        box[0] = state

    return go


def bench_abstraction(args) -> dict:
    sizes, batch = mlp_problem(args)
    f_step, f_state = funcnn_step(sizes)
    h_step, h_state = hand_step(sizes)
    t0 = time.perf_counter()
    f_step.lower(f_state, batch).compile()
    f_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    h_step.lower(h_state, batch).compile()
    h_compile = time.perf_counter() - t0
    f_box, h_box = [f_state], [h_state]
    dot, dot_flops = dot_runner()
    fns = {
        "hand": run_steps(h_step, h_box, batch, args.steps, False),
        "funcnn": run_steps(f_step, f_box, batch, args.steps, True),
        "dot": dot,
    }
    t = interleaved_times(fns, args.repeats)
    matmul_params = sum(a * b for a, b in itertools.pairwise(sizes))
    flops = 6 * args.batch * matmul_params
    step_s = median(t["funcnn"]) / args.steps
    # Efficiency per round, then the median: (flops / t_step) / (dot_flops / t_dot).
    efficiency = median((flops / dot_flops) * t["dot"] / (t["funcnn"] / args.steps))
    return {
        "dot_gflops": dot_flops / median(t["dot"]) / 1e9,
        "funcnn_step_us": 1e6 * step_s,
        "hand_step_us": 1e6 * median(t["hand"]) / args.steps,
        "ratio_funcnn_over_hand": median(t["funcnn"] / t["hand"]),
        "gflops": flops / step_s / 1e9,
        "fraction_of_peak": efficiency,
        "compile_first_step_ms_funcnn": 1e3 * f_compile,
        "compile_first_step_ms_hand": 1e3 * h_compile,
    }


def bench_precision(args) -> dict:
    sizes, batch = mlp_problem(args)
    f32_step, f32_state = funcnn_step(sizes)
    bf_step, bf_state = funcnn_step(sizes, precision.MIXED_BFLOAT16)
    fns = {
        "f32": run_steps(f32_step, [f32_state], batch, args.steps, True),
        "bf16": run_steps(bf_step, [bf_state], batch, args.steps, True),
    }
    return {"bf16_over_f32_step_time": interleaved_ratio(fns, "f32", args.repeats)["bf16"]}


# ----------------------------------------------------------------------------- optimizer


def opt_tree(width: int, seed: int):
    shapes = []
    for _ in range(10):
        shapes += [(width, 2 * width), (2 * width,), (2 * width, width), (width,)]
    keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes))
    return {
        f"l{i:02d}": jax.random.normal(k, s)
        for i, (k, s) in enumerate(zip(keys, shapes, strict=True))
    }


def bench_optimizer(args) -> dict:
    params, grads = opt_tree(args.opt_width, 0), opt_tree(args.opt_width, 1)
    n = sum(x.size for x in jax.tree.leaves(params))
    opt = optim.adamw(LR, weight_decay=WD)

    def funcnn_update(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    def obvious_update(params, m, v, t, grads):
        t = t + 1
        c1, c2 = 1 - B1 ** t.astype(jnp.float32), 1 - B2 ** t.astype(jnp.float32)
        m = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, m, grads)
        v = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, v, grads)
        params = jax.tree.map(
            lambda p, m, v: p - LR * ((m / c1) / (jnp.sqrt(v / c2) + EPS) + WD * p), params, m, v
        )
        return params, m, v, t

    f_jit = jax.jit(funcnn_update, donate_argnums=(0, 1))
    o_jit = jax.jit(obvious_update, donate_argnums=(0, 1, 2))
    triad = jax.jit(lambda b, c, s: b + s * c, donate_argnums=0)
    f_box = [(params, opt.init(params))]
    o_box = [
        (
            jax.tree.map(jnp.copy, params),
            jax.tree.map(jnp.zeros_like, params),
            jax.tree.map(jnp.zeros_like, params),
            jnp.int32(0),
        )
    ]
    t_box = [jnp.zeros((n,))]
    c, s = jnp.ones((n,)), jnp.float32(0.5)

    def run_f():
        f_box[0] = jax.block_until_ready(f_jit(*f_box[0], grads))

    def run_o():
        o_box[0] = jax.block_until_ready(o_jit(*o_box[0], grads))

    def run_t():
        t_box[0] = jax.block_until_ready(triad(t_box[0], c, s))

    fns = {"triad": run_t, "funcnn": run_f, "obvious": run_o}
    inv = interleaved_ratio(fns, "triad", args.repeats)  # time / triad time
    times = interleaved(fns, max(3, args.repeats // 3))
    # fraction of triad bandwidth = (28 n / t) / (12 n / t_triad)
    frac = {k: (28 / 12) / inv[k] for k in ("funcnn", "obvious")}
    return {
        "n_params": n,
        "leaves": len(jax.tree.leaves(params)),
        "triad_gbps": 12 * n / times["triad"] / 1e9,
        "funcnn_gbps": 28 * n / times["funcnn"] / 1e9,
        "obvious_gbps": 28 * n / times["obvious"] / 1e9,
        "funcnn_fraction_of_triad": frac["funcnn"],
        "obvious_fraction_of_triad": frac["obvious"],
        "funcnn_speedup_over_obvious": frac["funcnn"] / frac["obvious"],
        "fuses_sibling_loops": xla.fuses_sibling_loops(),
    }


# ----------------------------------------------------------------------------- dispatch


def bench_dispatch(args) -> dict:
    sizes = [2, 32, 32, 1]
    model = nn.mlp(sizes, activation=jnp.tanh)
    opt = optim.adam(1e-3)

    def loss_fn(params, batch, key):
        x, y = batch
        return losses.mse(model.apply(params, x), y), {}

    rng = np.random.default_rng(0)
    n, bs = args.dispatch_examples, 64
    x = rng.uniform(-2, 2, size=(n, 2)).astype(np.float32)
    y = (np.sin(x[:, :1]) * x[:, 1:]).astype(np.float32)
    data = jax.device_put((x, y))
    batches = [(data[0][i : i + bs], data[1][i : i + bs]) for i in range(0, n, bs)]
    steps = len(batches)

    def fresh():
        params, _ = model.init(jax.random.PRNGKey(0), (-1, 2))
        return train.init_state(params, opt, jax.random.PRNGKey(1))

    step = train.make_step(loss_fn, opt)
    loop_box, fit_box = [fresh()], [fresh()]

    def python_loop():
        state = loop_box[0]
        for _ in range(args.dispatch_epochs):
            for b in batches:
                state, _ = step(state, b)
        loop_box[0] = jax.block_until_ready(state)

    def fused_fit():
        state = fit_box[0]
        epochs = int(state.step) // steps + args.dispatch_epochs
        state, _ = train.fit(
            state, loss_fn, opt, data, batch_size=bs, epochs=epochs, progress=False
        )
        fit_box[0] = jax.block_until_ready(state)

    fns = {"loop": python_loop, "fit": fused_fit}
    ratio = interleaved_ratio(fns, "loop", args.repeats)["fit"]
    times = interleaved(fns, max(3, args.repeats // 3))
    return {
        "steps_per_dispatch": steps,
        "epochs_per_call": args.dispatch_epochs,
        "python_loop_us_per_step": 1e6 * times["loop"] / (steps * args.dispatch_epochs),
        "fit_us_per_step": 1e6 * times["fit"] / (steps * args.dispatch_epochs),
        "fit_speedup": 1 / ratio,
    }


# ----------------------------------------------------------------------------- memory


MEMORY_CHILD = """
import resource, sys, jax, jax.numpy as jnp, numpy as np
sys.path.insert(0, {root!r})
from funcnn import losses, nn, optim, train
w, donate = {width}, {donate}
model = nn.mlp([w, w, w], activation=jnp.tanh)
opt = optim.adamw(1e-3)
def loss_fn(params, batch, key):
    x, y = batch
    return losses.mse(model.apply(params, x), y), {{}}
params, _ = model.init(jax.random.PRNGKey(0), (-1, w))
state = train.init_state(params, opt, jax.random.PRNGKey(1))
step = train.make_step(loss_fn, opt, donate=donate)
batch = (jnp.ones((8, w)), jnp.zeros((8, w)))
state, _ = step(state, batch); jax.block_until_ready(state)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(5):
    state, _ = step(state, batch)
jax.block_until_ready(state)
n = sum(x.size for x in jax.tree.leaves(params))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, base, n)
"""


def bench_memory(args) -> dict:
    out = {}
    for donate in (True, False):
        code = MEMORY_CHILD.format(root=str(ROOT), width=args.memory_width, donate=donate)
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ.copy(),
        )
        peak_kb, _, n = map(int, done.stdout.split())
        out["donate" if donate else "no_donate"] = peak_kb / 1024
        out["params_mb"] = 4 * n / 2**20
    out["extra_mb_without_donation"] = out["no_donate"] - out["donate"]
    out["extra_in_state_copies"] = out["extra_mb_without_donation"] / (3 * out["params_mb"])
    return out


# ----------------------------------------------------------------------------- main


def rows(r: dict) -> list[tuple[str, str, str]]:
    """(measure, result, target) rows for the printed table."""
    out = []
    if "abstraction" in r:
        a = r["abstraction"]
        out += [
            (
                "MLP step: funcnn / hand-written",
                f"{a['ratio_funcnn_over_hand']:.3f}  ({a['funcnn_step_us']:.0f} vs "
                f"{a['hand_step_us']:.0f} µs)",
                "≤ 1.02",
            ),
            (
                "MLP step compute efficiency",
                f"{a['gflops']:.1f} GFLOP/s = {100 * a['fraction_of_peak']:.0f}% of jnp.dot "
                f"({a['dot_gflops']:.1f})",
                "",
            ),
            (
                "compile time, first step",
                f"{a['compile_first_step_ms_funcnn']:.0f} ms "
                f"(hand {a['compile_first_step_ms_hand']:.0f})",
                "",
            ),
        ]
    if "precision" in r:
        out.append(
            (
                "bf16 policy step time / f32",
                f"{r['precision']['bf16_over_f32_step_time']:.2f}",
                "(CPU: no bf16 units)",
            )
        )
    if "optimizer" in r:
        o = r["optimizer"]
        out += [
            (
                f"AdamW {o['n_params'] / 1e6:.1f}M params/{o['leaves']} leaves vs triad",
                f"{100 * o['funcnn_fraction_of_triad']:.0f}% ({o['funcnn_gbps']:.1f} vs "
                f"{o['triad_gbps']:.1f} GB/s)",
                "≥ 85%",
            ),
            (
                "AdamW: funcnn over obvious per-leaf form",
                f"{o['funcnn_speedup_over_obvious']:.2f}× (obvious "
                f"{100 * o['obvious_fraction_of_triad']:.0f}% of triad)",
                "≥ 1.15×",
            ),
        ]
    if "abstraction_no_mof" in r:
        a = r["abstraction_no_mof"]
        out.append(
            (
                "MLP step ratio without multi-output fusion",
                f"{a['ratio_funcnn_over_hand']:.3f}",
                "(default flags)",
            )
        )
    if "optimizer_no_mof" in r:
        o = r["optimizer_no_mof"]
        out.append(
            (
                "AdamW without multi-output fusion",
                f"{100 * o['funcnn_fraction_of_triad']:.0f}% of triad "
                f"(obvious {100 * o['obvious_fraction_of_triad']:.0f}%)",
                "(default flags)",
            )
        )
    if "dispatch" in r:
        d = r["dispatch"]
        out.append(
            (
                "tiny MLP: fit vs Python loop",
                f"{d['fit_speedup']:.1f}× ({d['fit_us_per_step']:.1f} vs "
                f"{d['python_loop_us_per_step']:.1f} µs/step)",
                "≥ 4×",
            )
        )
    if "memory" in r:
        m = r["memory"]
        out.append(
            (
                f"peak RSS, {m['params_mb']:.0f} MB params",
                f"{m['donate']:.0f} MB donated vs {m['no_donate']:.0f} MB not "
                f"(+{m['extra_in_state_copies']:.2f} state copies)",
                "donation: 1 copy",
            )
        )
    return out


def main() -> None:
    args = ARGS
    sections = args.sections.split(",")
    if args.child:  # a subprocess measuring sections under other XLA flags
        print(
            json.dumps({name: globals()[f"bench_{name}"](args) for name in args.child.split(",")})
        )
        return
    started = time.perf_counter()
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "jax": jax.__version__,
            "load_avg": os.getloadavg(),
        },
        "args": vars(args),
        "multi_output_fusion": xla.fuses_sibling_loops(),
    }
    for name in ("abstraction", "precision", "optimizer", "dispatch", "memory"):
        if name not in sections:
            continue
        t0 = time.perf_counter()
        results[name] = globals()[f"bench_{name}"](args)
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    default_flags = [n for n in ("abstraction", "optimizer") if n in sections]
    if default_flags and not args.no_mof:  # the same sections with XLA:CPU's default fusion
        cmd = [sys.executable, __file__, "--no-mof", "--child", ",".join(default_flags)]
        for flag in ("repeats", "steps", "batch", "hidden", "opt_width"):
            cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
        env = dict(os.environ, XLA_FLAGS="")
        child = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        for name, value in json.loads(child.stdout.strip().splitlines()[-1]).items():
            results[f"{name}_no_mof"] = value
    results["seconds"] = time.perf_counter() - started
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    table = rows(results)
    width = max(len(r[0]) for r in table)
    print(f"{'measure':{width}s}  {'result':52s}  target")
    for measure, result, target in table:
        print(f"{measure:{width}s}  {result:52s}  {target}")
    print(
        f"\n{results['seconds']:.0f} s total, load average {os.getloadavg()[0]:.1f}, "
        f"multi-output fusion {'on' if results['multi_output_fusion'] else 'off'}"
    )
    Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
