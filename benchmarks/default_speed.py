"""Fast by default: AdamW's update in a fresh process that does nothing but import and train.

Each candidate runs in its own fresh Python process (XLA reads its flags once per process):

- ``funcnn``          — ``import funcnn`` then ``optim.adamw``: the quick-start path, no setup
                        (XLA:CPU's default flags, the textbook Adam form);
- ``funcnn opt-in``   — the same with ``FUNCNN_CPU_FUSION=1`` (multi-output fusion: one loop
                        per leaf; not the default because of an XLA:CPU abort on sibling
                        scatters, see ``funcnn/_cpu_fusion.py``);
- ``torch fused``     — ``torch.optim.AdamW(fused=True)`` on the same sizes (if torch is
                        installed: ``pip install -e ".[bench]"``).

Sizes: one 10M-parameter leaf, and 40 leaves of mixed shapes (~10.5M parameters). Every
process also times a donated in-place triad ``b ← b + s·c`` interleaved with the update, so
the figure that crosses processes is a ratio to that yardstick (the machines are shared and
absolute times swing); bandwidth counts the 7 compulsory accesses per parameter (read θ, m,
v, g; write θ, m, v). Rounds alternate the candidates' processes. Prints the load average.

    python benchmarks/default_speed.py              # 3 rounds
    python benchmarks/default_speed.py --rounds 1 --repeats 5   # a smoke run
    python benchmarks/default_speed.py --levers     # also the flag levers tried for §1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

JAX_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import funcnn  # noqa: F401  (FUNCNN_CPU_FUSION=1: sets XLA:CPU's fusion option)
    import jax, jax.numpy as jnp
    from funcnn import optim
    from funcnn.scale import xla

    repeats, shapes = int(sys.argv[1]), json.loads(sys.argv[2])
    params = {f"p{i}": jnp.full(s, 0.5, jnp.float32) for i, s in enumerate(shapes)}
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 1e-3, p.dtype), params)
    opt = optim.adamw(1e-3, weight_decay=0.01)

    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1))
    triad = jax.jit(lambda b, c: b + 0.5 * c, donate_argnums=0)
    n = sum(p.size for p in jax.tree.leaves(params))
    b, c = jnp.zeros(n, jnp.float32), jnp.ones(n, jnp.float32)
    state = opt.init(params)
    params, state = step(params, state, grads)  # compile
    b = triad(b, c)
    jax.block_until_ready((params, b))
    ratios, times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter(); params, state = step(params, state, grads)
        jax.block_until_ready(params); t1 = time.perf_counter()
        b = triad(b, c); jax.block_until_ready(b); t2 = time.perf_counter()
        times.append(t1 - t0); ratios.append((t1 - t0) / (t2 - t1))
    times.sort(); ratios.sort()
    print(json.dumps({"time": times[len(times) // 2], "vs_triad": ratios[len(ratios) // 2],
                      "params": n, "fuses": xla.fuses_sibling_loops()}))
    """
)

TORCH_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import torch
    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    repeats, shapes = int(sys.argv[1]), json.loads(sys.argv[2])
    params = [torch.full(s, 0.5, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.full(p.shape, 1e-3)
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, fused=True)
    n = sum(p.numel() for p in params)
    b, c = torch.zeros(n), torch.ones(n)
    opt.step(); b.add_(c, alpha=0.5)
    ratios, times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter(); opt.step(); t1 = time.perf_counter()
        b.add_(c, alpha=0.5); t2 = time.perf_counter()
        times.append(t1 - t0); ratios.append((t1 - t0) / (t2 - t1))
    times.sort(); ratios.sort()
    print(json.dumps({"time": times[len(times) // 2], "vs_triad": ratios[len(ratios) // 2],
                      "params": n, "fuses": None}))
    """
)

SIZES = {
    "one 10M leaf": [[10_485_760]],
    "40 leaves, 10.5M": [s for _ in range(10) for s in ([512, 1024], [1024], [1024, 512], [512])],
}


def child(code: str, repeats: int, shapes: list, extra_env: dict[str, str]) -> dict:
    """Run one candidate in a fresh process and return its JSON report."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "FUNCNN_CPU_FUSION")}
    env.update(extra_env)
    done = subprocess.run(
        [sys.executable, "-c", code, str(repeats), json.dumps(shapes)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_available() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return probe.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per candidate")
    parser.add_argument("--repeats", type=int, default=20, help="timed updates per process")
    parser.add_argument(
        "--levers",
        action="store_true",
        help="also time the XLA flag sets tried to make the option safe (see README)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error(f"--rounds and --repeats must be ≥ 1, got {args.rounds}, {args.repeats}")
    candidates = {
        "funcnn": (JAX_CHILD, {}),
        "funcnn opt-in": (JAX_CHILD, {"FUNCNN_CPU_FUSION": "1"}),
    }
    if args.levers:
        # The legacy fusion emitters avoid the sibling-scatter abort: do they keep one pass?
        legacy = "--xla_backend_extra_options=xla_cpu_disable_new_fusion_emitters=true"
        candidates["opt-in, legacy"] = (JAX_CHILD, {"FUNCNN_CPU_FUSION": "1", "XLA_FLAGS": legacy})
    if torch_available():
        candidates["torch fused"] = (TORCH_CHILD, {})
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for size, shapes in SIZES.items():
        runs: dict[str, list[dict]] = {name: [] for name in candidates}
        for _ in range(args.rounds):  # alternate the candidates' processes
            for name, (code, env) in candidates.items():
                runs[name].append(child(code, args.repeats, shapes, env))
        n = runs["funcnn"][0]["params"]
        print(f"\n{size} ({n:,} params), median over {args.rounds} processes:")
        print(f"  {'candidate':16s} {'× triad':>8s} {'GB/s':>7s} {'fuses':>6s}")
        summary = {}
        for name, reports in runs.items():
            vs_triad = statistics.median(r["vs_triad"] for r in reports)
            gbps = 7 * 4 * n / statistics.median(r["time"] for r in reports) / 1e9
            summary[name] = vs_triad
            print(f"  {name:16s} {vs_triad:8.2f} {gbps:7.1f} {reports[0]['fuses']!s:>6s}")
        for mine, other in (
            ("funcnn opt-in", "funcnn"),
            ("funcnn", "torch fused"),
            ("funcnn opt-in", "torch fused"),
        ):
            if other in summary:
                ratio = summary[mine] / summary[other]
                print(f"  {mine} / {other} (time in triad units): {ratio:.2f}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
