"""Train an MLP on a task and report held-out quality (the main job).

    python scripts/train.py                      # digits, AdamW, warmup + cosine, clipping
    python scripts/train.py --task spam          # logistic regression; prints the word votes
    python scripts/train.py --task house         # linear regression; coefficients vs truth

Writes `history.png` (loss/accuracy curves) and `params.ckpt` (a funcnn checkpoint) to --out.

    python scripts/train.py --checkpoint-every 200 --keep 3   # TrainState → --out/checkpoints
    python scripts/train.py --checkpoint-every 200 --resume   # continue, bit-identically

    python scripts/train.py --devices 4                       # data-parallel over 4 devices

SIGINT/SIGTERM finish the current fused chunk, write a checkpoint and exit with 128 + signal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from funcnn import checkpoint, fusion, parallel, resume
from funcnn.lab import recipes
from funcnn.lab.plotting import plot_history
from funcnn.params import summary


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="digits", choices=sorted(recipes.TASK_DEFAULTS))
    p.add_argument("--optimizer", default="adamw", choices=recipes.OPTIMIZERS)
    p.add_argument("--lr", type=float, help="peak learning rate (task default if omitted)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--hidden", type=int, nargs="*", help="hidden widths, e.g. --hidden 256 256")
    p.add_argument("--activation", choices=sorted(recipes.ACTIVATIONS))
    p.add_argument("--dropout", type=float, default=0.0, help="drop probability in [0, 1)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/train"))
    p.add_argument("--no-progress", action="store_true", help="plain lines instead of a bar")
    p.add_argument(
        "--devices",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel over N devices (on CPU, N simulated host devices)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="checkpoint every N steps to --out/checkpoints (0: only at the end)",
    )
    p.add_argument("--keep", type=int, default=3, metavar="K", help="keep the newest K checkpoints")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest valid checkpoint in --out/checkpoints",
    )
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> recipes.TrainConfig:
    return recipes.TrainConfig(
        task=args.task,
        optimizer=args.optimizer,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        hidden=None if args.hidden is None else tuple(args.hidden),
        activation=args.activation,
        dropout=args.dropout,
        weight_decay=args.weight_decay,
        clip_norm=args.clip_norm,
        seed=args.seed,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    config = recipes.resolve(config_from_args(args))
    print(f"funcnn: training {config}")
    if args.devices > 1:  # must run before JAX's first computation creates its backend
        parallel.simulate_cpu_devices(args.devices)
    # AdamW's θ, m, v in one loop per leaf on XLA:CPU (funcnn.fusion); like the device flag,
    # it must be set before JAX's first computation.
    fusion.enable_cpu_multi_output_fusion()
    placement = contextlib.nullcontext()  # one device: the plain, unsharded path
    if args.devices > 1:
        mesh = parallel.make_mesh(args.devices)
        print(f"data-parallel over {mesh.size} devices: {list(mesh.devices.flat)}")
        placement = parallel.data_parallel(mesh)
    with placement, resume.stop_on_signals() as stop:
        result = recipes.run_resumable(
            config,
            args.out / "checkpoints",
            checkpoint_every=args.checkpoint_every,
            keep=args.keep,
            resume=args.resume,
            stop=stop,
            progress=not args.no_progress,
        )
    if stop.requested:
        print(
            f"stopped by {stop.name} at step {int(result.state.step)}; checkpoint written to "
            f"{args.out / 'checkpoints'}; rerun with --resume to continue."
        )
        return 128 + stop.signum
    print(summary(result.state.params))
    if args.no_progress:  # otherwise fit printed each epoch as it finished
        for epoch, metrics in _epoch_rows(result.history):
            print(f"epoch {epoch:>4}  " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    for line in recipes.readout(result):
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    plot = plot_history(result.history, args.out / "history.png", title=config.task)
    ckpt = args.out / "params.ckpt"
    checkpoint.save(ckpt, result.state.params, metadata={"config": repr(config)})
    (args.out / "metrics.json").write_text(json.dumps(result.test_metrics, indent=2))
    final = "  ".join(f"{k} {v:.4f}" for k, v in result.test_metrics.items())
    print(f"final {final}")
    print(f"wrote {plot}, {ckpt}")
    return 0


def _epoch_rows(history):
    skip = ("epoch", "step", "time")
    for i, epoch in enumerate(history["epoch"]):
        yield epoch, {k: v[i] for k, v in history.items() if k not in skip}


if __name__ == "__main__":
    sys.exit(main())
