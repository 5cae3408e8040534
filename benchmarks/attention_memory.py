"""Peak memory and step time of a transformer-block training step: plain vs chunked attention.

    python benchmarks/attention_memory.py                  # T = 1k, 2k, 4k, 8k (< 3 min, 2 cores)
    python benchmarks/attention_memory.py --lengths 512,1024 --repeats 3

The step is ∇_params of mean((block(x) − x)²) for one causal pre-LN `nn.transformer_block`
(dim 128, 2 heads, batch 1) built with implementation="plain" and "chunked" (chunk 128).
Memory is read from the compiled program, not measured at run time:
`jax.jit(step).lower(...).compile().memory_analysis()` gives the bytes XLA allocates for
temporaries (temp) on top of the arguments and outputs; "peak" below is
argument + output + temp − aliased. Compiling needs no memory for the program's buffers, so
every length is reported; a step is only *run* (for its time) when its peak fits under
`--max-run-bytes` and its estimated time is under `--max-step-seconds`, else the script
prints why it skipped the timing. Times are medians of `--repeats` runs after a warm-up,
the two implementations interleaved; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from funcnn import nn  # noqa: E402

MIB = 2**20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="1024,2048,4096,8192", help="sequence lengths T")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--chunk-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per step (median)")
    p.add_argument(
        "--max-run-bytes", type=float, default=4 * 2**30, help="do not run steps above this"
    )
    p.add_argument(
        "--max-step-seconds",
        type=float,
        default=6.0,
        help="do not time a step whose estimate (from the previous T, ×4) exceeds this",
    )
    return p.parse_args(argv)


def make_step(implementation: str, args: argparse.Namespace, steps: int):
    block = nn.transformer_block(
        args.dim,
        num_heads=args.heads,
        causal=True,
        implementation=implementation,
        chunk_size=args.chunk_size,
    )
    params, _ = block.init(jax.random.key(0), (args.batch, steps, args.dim))

    def loss(p, x):
        return jnp.mean((block.apply(p, x) - x) ** 2)

    step = jax.jit(jax.grad(loss))
    x = jax.random.normal(jax.random.key(1), (args.batch, steps, args.dim), jnp.float32)
    return step, params, x


def compiled_memory(step, params, x) -> tuple[object, dict[str, int]]:
    start = time.perf_counter()
    compiled = step.lower(params, x).compile()
    seconds = time.perf_counter() - start
    m = compiled.memory_analysis()
    peak = (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )
    return compiled, {"temp": m.temp_size_in_bytes, "peak": peak, "compile_s": seconds}


def time_step(compiled, params, x, repeats: int) -> float:
    jax.block_until_ready(compiled(params, x))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, x))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    lengths = [int(t) for t in args.lengths.split(",")]
    impls = ("plain", "chunked")
    print(
        f"transformer_block training step (grad of MSE wrt params): dim {args.dim}, "
        f"{args.heads} heads, batch {args.batch}, causal, chunk {args.chunk_size}, float32, "
        f"backend {jax.default_backend()}"
    )
    header = (
        f"{'T':>6} | {'plain temp':>11} {'peak':>9} {'step':>8} | "
        f"{'chunked temp':>12} {'peak':>9} {'step':>8} | {'temp ratio':>10}"
    )
    print(header)
    print("-" * len(header))
    previous: dict[str, float] = {}
    previous_temp: dict[str, int] = {}
    notes = []
    for steps in lengths:
        row: dict[str, dict] = {}
        for impl in impls:
            step, params, x = make_step(impl, args, steps)
            compiled, mem = compiled_memory(step, params, x)
            estimate = previous.get(impl, 0.0) * (steps / previous.get(impl + "_T", steps)) ** 2
            if mem["peak"] > args.max_run_bytes:
                mem["step"] = None
                notes.append(
                    f"T={steps} {impl}: not run, compiled peak {mem['peak'] / MIB:.0f} MiB > "
                    f"--max-run-bytes {args.max_run_bytes / MIB:.0f} MiB"
                )
            elif estimate > args.max_step_seconds:
                mem["step"] = None
                notes.append(
                    f"T={steps} {impl}: not timed, estimated {estimate:.1f} s/step (T² from "
                    f"the previous length) > --max-step-seconds {args.max_step_seconds}"
                )
            else:
                mem["step"] = time_step(compiled, params, x, args.repeats)
                previous[impl], previous[impl + "_T"] = mem["step"], steps
            row[impl] = mem
        cells = []
        for impl in impls:
            m = row[impl]
            t = "—" if m["step"] is None else f"{m['step'] * 1e3:.0f} ms"
            cells.append(f"{m['temp'] / MIB:9.1f}Mi {m['peak'] / MIB:7.1f}Mi {t:>8}")
        ratio = row["plain"]["temp"] / max(row["chunked"]["temp"], 1)
        print(f"{steps:>6} | {cells[0]} | {cells[1]:>32} | {ratio:9.1f}×")
        for impl in impls:
            if impl in previous_temp:
                growth = row[impl]["temp"] / previous_temp[impl]
                notes.append(f"T={steps} {impl}: temp grew {growth:.2f}× from the previous T")
            previous_temp[impl] = row[impl]["temp"]
    print("\n".join(["", *notes]))


if __name__ == "__main__":
    main()
