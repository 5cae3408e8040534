"""Check jax.grad against float64 central differences, layer by layer, and time backprop.

    python scripts/gradcheck.py layers           # every layer type: max relative error per leaf
    python scripts/gradcheck.py cost             # backprop vs forward vs finite differences
    python scripts/gradcheck.py                  # both

`layers` exits non-zero if any leaf's error exceeds --tolerance. `cost` writes cost.json and
cost.png (log-log time against N) to --out. To check your own loss, call
`funcnn.lab.gradcheck.leaf_errors(loss, params)` — it returns the same per-leaf rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from funcnn.lab import cli, gradcheck
from funcnn.lab.compare.report import format_table, write_json
from funcnn.lab.plotting import _pyplot


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", nargs="?", default="all", choices=("layers", "cost", "all"))
    p.add_argument(
        "--eps", type=cli.positive_float, default=gradcheck.DEFAULT_EPS, help="finite-difference ε"
    )
    p.add_argument("--tolerance", type=cli.positive_float, default=gradcheck.DEFAULT_TOLERANCE)
    p.add_argument(
        "--sizes", type=cli.positive_int, nargs="+", default=[100, 1_000, 10_000, 100_000]
    )
    p.add_argument(
        "--repeats", type=cli.positive_int, default=7, help="timing repeats (the median is kept)"
    )
    p.add_argument(
        "--fd-sample", type=cli.positive_int, default=200, help="coordinates timed for FD"
    )
    p.add_argument("--seed", type=cli.nonnegative_int, default=0)
    p.add_argument("--out", type=cli.output_folder, default=Path("runs/gradcheck"))
    return p.parse_args(argv)


def run_layers(args: argparse.Namespace) -> bool:
    """Print the per-leaf table; True when every leaf is within tolerance."""
    rows = []
    for report in gradcheck.check_layers(seed=args.seed, eps=args.eps):
        for leaf in report.leaves:
            ok = leaf.max_rel_error <= args.tolerance
            rows.append(
                {
                    "layer": report.name,
                    "leaf": leaf.path,
                    "size": leaf.size,
                    "max rel error": leaf.max_rel_error,
                    "max abs error": leaf.max_abs_error,
                    "result": "PASS" if ok else "FAIL",
                }
            )
    print(format_table(rows, list(rows[0])))
    write_json(args.out / "layers.json", rows)
    failed = [r for r in rows if r["result"] == "FAIL"]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} leaves within tolerance {args.tolerance:g}")
    return not failed


def run_cost(args: argparse.Namespace) -> None:
    """Print the cost table and plot time against N."""
    cost = gradcheck.backprop_cost(
        args.sizes, repeats=args.repeats, fd_sample=args.fd_sample, seed=args.seed
    )
    rows = [
        {
            "N": r.num_params,
            "forward (ms)": r.forward_time * 1e3,
            "backprop (ms)": r.backprop_time * 1e3,
            "backprop/forward": r.ratio,
            "FLOPs backprop/forward": r.flop_ratio,
            "FD passes (2N)": r.fd_evals,
            "FD time (s)": r.fd_time,
            "FD/backprop": r.fd_time / r.backprop_time,
        }
        for r in cost
    ]
    print(format_table(rows, list(rows[0])))
    print(
        f"\nFD time is extrapolated from {cost[-1].fd_sample} timed coordinates "
        f"(2 passes each) to all N."
    )
    write_json(args.out / "cost.json", [r._asdict() for r in cost])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    n = [r.num_params for r in cost]
    ax.loglog(n, [r.forward_time for r in cost], "o-", label="one forward pass")
    ax.loglog(n, [r.backprop_time for r in cost], "s-", label="value_and_grad (backprop)")
    ax.loglog(n, [r.fd_time for r in cost], "^-", label="central differences (2N passes)")
    ax.set(xlabel="parameters N", ylabel="seconds", title="Cost of one full gradient")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "cost.png", dpi=110)
    plt.close(fig)
    print(f"wrote {args.out / 'cost.png'}")


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ok = True
    if args.command in ("layers", "all"):
        ok = run_layers(args)
    if args.command in ("cost", "all"):
        if args.command == "all":
            print()
        run_cost(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
