"""Measure textbook claims about neural networks; each subcommand prints a table and writes
<name>.json and PNGs to --out.

    python scripts/experiments.py vanishing    # per-layer ‖∂L/∂W‖ at init, 20-layer MLP
    python scripts/experiments.py sparsity     # exactly-zero ReLU outputs, before/after training
    python scripts/experiments.py depth        # perceptron vs 1 and 2 hidden layers, XOR/spirals
    python scripts/experiments.py stability    # too-high learning rate ± warmup ± clipping
    python scripts/experiments.py all
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from funcnn import datasets as ds
from funcnn.lab import cli
from funcnn.lab import experiments as ex
from funcnn.lab.compare.report import format_table, write_json
from funcnn.lab.plotting import _pyplot

COMMANDS = ("vanishing", "sparsity", "depth", "stability")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", choices=(*COMMANDS, "all"))
    p.add_argument("--depth", type=cli.positive_int, default=20, help="vanishing: dense layers")
    p.add_argument("--width", type=cli.positive_int, default=64, help="vanishing: units per layer")
    p.add_argument(
        "--epochs", type=cli.positive_int, help="sparsity/depth/stability: epochs (their default)"
    )
    p.add_argument(
        "--learning-rate",
        "--lr",
        dest="learning_rate",
        type=cli.positive_float,
        help="peak learning rate (each experiment's default)",
    )
    p.add_argument("--optimizer", default="momentum", choices=ex.STABILITY_OPTIMIZERS)
    p.add_argument("--seed", type=cli.nonnegative_int, default=0)
    p.add_argument("--out", type=cli.output_folder, default=Path("runs/experiments"))
    return p.parse_args(argv)


def _overrides(args: argparse.Namespace) -> dict:
    return {
        k: v
        for k, v in (("epochs", args.epochs), ("learning_rate", args.learning_rate))
        if v is not None
    }


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    print(f"wrote {path}")


def run_vanishing(args: argparse.Namespace) -> None:
    rows = ex.vanishing(depth=args.depth, width=args.width, seed=args.seed)
    mid = args.depth // 2
    table = [
        {
            "activation": r.activation,
            "init": r.init,
            "‖∂L/∂W_1‖": float(r.norms[0]),
            f"‖∂L/∂W_{mid}‖": float(r.norms[mid - 1]),
            f"‖∂L/∂W_{args.depth}‖": float(r.norms[-1]),
            "first/last": r.ratio,
        }
        for r in rows
    ]
    print(format_table(table, list(table[0])))
    write_json(
        args.out / "vanishing.json", [{**r._asdict(), "norms": r.norms.tolist()} for r in rows]
    )
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for r in rows:
        ax.semilogy(np.arange(1, len(r.norms) + 1), r.norms, "o-", ms=3, label=r.activation)
    ax.set(
        xlabel="layer l (1 = next to the input)",
        ylabel="‖∂L/∂W_l‖ at initialization",
        title=f"Gradient norms through a {args.depth}-layer MLP",
    )
    ax.legend()
    _save(fig, args.out / "vanishing.png")


def run_sparsity(args: argparse.Namespace) -> None:
    result = ex.sparsity(seed=args.seed, **_overrides(args))
    table = [
        {"hidden layer": i + 1, "width": w, "zero before": b, "zero after": a}
        for i, (w, b, a) in enumerate(zip(result.widths, result.before, result.after, strict=True))
    ]
    print(format_table(table, list(table[0])))
    print(f"\ntest accuracy after training: {result.test_accuracy:.4f}")
    write_json(args.out / "sparsity.json", result._asdict())
    fig, ax = _pyplot().subplots(figsize=(5, 3.6))
    layers = np.arange(1, len(result.widths) + 1)
    ax.bar(layers - 0.2, result.before, 0.4, label="at init")
    ax.bar(layers + 0.2, result.after, 0.4, label="after training")
    ax.set(
        xlabel="hidden layer",
        ylabel="fraction of ReLU outputs exactly 0",
        xticks=layers,
        ylim=(0, 1),
        title="ReLU sparsity on digits (test inputs)",
    )
    ax.legend()
    _save(fig, args.out / "sparsity.png")


def run_depth(args: argparse.Namespace) -> None:
    results = ex.depth(seed=args.seed, **_overrides(args))
    table = [
        {
            "task": r.task,
            "model": r.model,
            "train acc": r.train_accuracy,
            "test acc": r.test_accuracy,
        }
        for r in results
    ]
    print(format_table(table, list(table[0])))
    write_json(args.out / "depth.json", table)
    plt = _pyplot()
    for task_name in dict.fromkeys(r.task for r in results):
        task = ds.load(task_name, seed=args.seed)
        runs = [r for r in results if r.task == task_name]
        x = np.concatenate([task.x_train, task.x_test])
        y = np.concatenate([task.y_train, task.y_test])
        low, high = x.min(axis=0) - 0.5, x.max(axis=0) + 0.5
        fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.8), squeeze=False)
        for ax, r in zip(axes[0], runs, strict=True):
            g1, g2, classes = ex.predict_grid(r.layers, r.params, low, high)
            ax.contourf(g1, g2, classes, levels=np.arange(task.num_outputs + 1) - 0.5, alpha=0.3)
            ax.scatter(x[:, 0], x[:, 1], c=y, s=6, cmap="viridis", edgecolors="none")
            ax.set(title=f"{r.model}\ntest acc {r.test_accuracy:.3f}", xticks=[], yticks=[])
        fig.suptitle(f"{task_name}: decision regions")
        _save(fig, args.out / f"depth_{task_name}.png")


def run_stability(args: argparse.Namespace) -> None:
    defaults = {"lr": 0.5} if args.optimizer == "momentum" else {"lr": 0.05}
    rows = ex.stability(
        optimizer=args.optimizer, seed=args.seed, **{**defaults, **_overrides(args)}
    )
    table = [
        {
            "warmup": r.warmup,
            "clipping": r.clipping,
            "first-epoch loss": r.losses[0],
            "final loss": r.final_loss,
            "diverged": r.diverged,
        }
        for r in rows
    ]
    print(format_table(table, list(table[0])))
    write_json(args.out / "stability.json", [r._asdict() for r in rows])
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for r in rows:
        losses = [v if math.isfinite(v) else np.nan for v in r.losses]
        label = f"warmup={'yes' if r.warmup else 'no'}, clip={'yes' if r.clipping else 'no'}"
        ax.semilogy(np.arange(1, len(losses) + 1), losses, "o-", ms=3, label=label)
    ax.set(xlabel="epoch", ylabel="mean training loss", title="A too-high learning rate")
    ax.legend()
    _save(fig, args.out / "stability.png")


RUNNERS = {
    "vanishing": run_vanishing,
    "sparsity": run_sparsity,
    "depth": run_depth,
    "stability": run_stability,
}


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS if args.command == "all" else (args.command,):
        print(f"== {name}")
        RUNNERS[name](args)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
