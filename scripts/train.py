"""Train an MLP (or a CNN on digits) on a task and report held-out quality (the main job).

    python scripts/train.py                      # digits, AdamW, warmup + cosine, clipping
    python scripts/train.py --model cnn          # digits as 8×8 images: conv → batch norm → pool
    python scripts/train.py --task spam          # logistic regression; prints the word votes
    python scripts/train.py --task house         # linear regression; coefficients vs truth

Writes `history.png` (loss/accuracy curves) and `params.ckpt` (a funcnn checkpoint) to --out;
with --model cnn also `kernels.png` (the learned first-layer 3×3 kernels) and
`model_state.ckpt` (batch norm's running statistics, which evaluation needs).

    python scripts/train.py --checkpoint-every 200 --keep 3   # TrainState → --out/checkpoints
    python scripts/train.py --checkpoint-every 200 --resume   # continue, bit-identically
    python scripts/train.py --overwrite                       # replace an earlier run in --out

    python scripts/train.py --devices 4                       # data-parallel over 4 devices
    python -m funcnn.scale.launch --processes 2 -- scripts/train.py  # 2 processes (jax.distributed)

Under `funcnn.scale.launch` (or a scheduler that sets FUNCNN_COORDINATOR, FUNCNN_NUM_PROCESSES and
FUNCNN_PROCESS_ID) every process runs this script on the same data: the global batch is split
over all processes' devices, process 0 alone prints, plots and writes checkpoints, and a
checkpoint written by any number of processes resumes under any other.

SIGINT/SIGTERM finish the current fused chunk, write a checkpoint and exit with 128 + signal.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Any

import jax

from funcnn import datasets, scale
from funcnn.lab import cli, recipes
from funcnn.lab.plotting import plot_history, plot_kernels
from funcnn.params import all_finite, summary
from funcnn.scale import distributed, xla
from funcnn.train import checkpoint, resume, steps_per_epoch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="digits", choices=sorted(recipes.TASK_DEFAULTS))
    p.add_argument("--optimizer", default="adamw", choices=recipes.OPTIMIZERS)
    p.add_argument("--model", default="mlp", choices=recipes.MODELS, help="cnn: digits only")
    cli.add_optimizer_flags(p, learning_rate=None, weight_decay=1e-4, clip_norm=1.0)
    p.add_argument("--epochs", type=cli.positive_int)
    p.add_argument("--batch-size", type=cli.positive_int)
    p.add_argument(
        "--hidden", type=cli.positive_int, nargs="*", help="hidden widths, e.g. --hidden 256 256"
    )
    p.add_argument("--activation", choices=sorted(recipes.ACTIVATIONS))
    p.add_argument("--dropout", type=cli.probability, default=0.0, help="drop probability")
    cli.add_run_flags(p, out=Path("runs/train"))
    p.add_argument(
        "--devices",
        type=cli.positive_int,
        default=1,
        metavar="N",
        help="data-parallel over N devices (on CPU, N simulated host devices)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=cli.nonnegative_int,
        default=0,
        metavar="N",
        help="checkpoint every N steps to --out/checkpoints (0: only at the end)",
    )
    p.add_argument(
        "--keep", type=cli.positive_int, default=3, metavar="K", help="keep the newest K"
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest valid checkpoint in --out/checkpoints",
    )
    start.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run's checkpoints in --out/checkpoints",
    )
    return p


def config_from_args(args: argparse.Namespace) -> recipes.TrainConfig:
    return recipes.TrainConfig(
        task=args.task,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        batch_size=args.batch_size,
        hidden=None if args.hidden is None else tuple(args.hidden),
        activation=args.activation,
        dropout=args.dropout,
        weight_decay=args.weight_decay,
        clip_norm=args.clip_norm,
        seed=args.seed,
        model=args.model,
    )


OUTPUT_FILES = ("params.ckpt", "metrics.json", "history.png")


def validated(parser: argparse.ArgumentParser, argv=None) -> tuple[argparse.Namespace, Any]:
    """Parse and check every flag, every combination of flags and every precondition that
    depends on the data (batch size vs examples, the output folder and its files) before
    anything is computed or touches the disk. Needs no JAX backend, so it runs before the
    process group and simulated devices are set up."""
    args = parser.parse_args(argv)
    given = cli.explicit_flags(build_parser, argv)
    try:
        config = recipes.resolve(config_from_args(args))
        if not config.hidden and given & {"activation", "dropout"}:
            flag = "--activation" if "activation" in given else "--dropout"
            raise ValueError(
                f"{flag} acts between hidden layers, and --task {config.task} with --hidden "
                f"{' '.join(map(str, config.hidden or ())) or '(none)'} has none: add hidden "
                f"layers (e.g. --hidden 32) or drop {flag}."
            )
        if config.batch_size % args.devices:
            raise ValueError(
                f"--batch-size {config.batch_size} must be divisible by --devices "
                f"{args.devices} (each device takes an equal share of every batch)."
            )
        task = datasets.load(config.task, seed=config.seed)  # NumPy only: no JAX backend yet
        examples = task.x_train.shape[0]
        if config.batch_size > examples:
            raise ValueError(
                f"--batch-size {config.batch_size} is larger than the {examples} training "
                f"examples of --task {config.task}; use --batch-size ≤ {examples}."
            )
        cli.check_output_files(args.out, OUTPUT_FILES, folders=("checkpoints",))
        recipes.check_checkpoint_dir(
            args.out / "checkpoints", resume=args.resume, overwrite=args.overwrite
        )
    except (ValueError, TypeError, FileExistsError) as error:
        cli.usage_error(parser, error)
    return args, config


def check_resume(parser: argparse.ArgumentParser, args: argparse.Namespace, config: Any) -> None:
    """With --resume, refuse (argparse-style, nothing written) a checkpoint that the run could
    not continue: written with other flags, or at a data position its step disagrees with.
    The same checks `run_resumable` makes, done before it opens the folder for writing."""
    if not args.resume:
        return
    manager = checkpoint.CheckpointManager(args.out / "checkpoints", args.keep, create=False)
    task = datasets.load(config.task, seed=config.seed)
    per_epoch = steps_per_epoch((task.x_train, task.y_train), config.batch_size)
    try:
        with warnings.catch_warnings():  # the run reads the folder again and warns then, once
            warnings.simplefilter("ignore")
            resume.resume_latest(
                manager, like=None, config=dataclasses.asdict(config), steps_per_epoch=per_epoch
            )
    except ValueError as error:  # CheckpointError included
        cli.usage_error(parser, error)


def main(argv=None) -> int:
    parser = build_parser()
    args, config = validated(parser, argv)
    # All three must run before JAX's first computation creates its backend: joining a
    # process group (a no-op unless funcnn.scale.launch or a scheduler set FUNCNN_*), the simulated
    # devices, and AdamW's θ, m, v in one loop per leaf on XLA:CPU (funcnn.scale.xla).
    multi_process = distributed.initialize_from_env()
    if args.devices > 1:
        scale.simulate_cpu_devices(args.devices)
    xla.enable_cpu_multi_output_fusion()
    # A step's XLA:CPU temporaries (one buffer, tens of MiB) stay in glibc's heap instead of
    # being mmap'ed and page-faulted on every call (funcnn.scale.xla.reuse_cpu_buffers).
    xla.reuse_cpu_buffers()
    check_resume(parser, args, config)
    lead = distributed.is_coordinator()
    say = print if lead else _quiet  # one copy of every line, from process 0
    say(f"funcnn: training {config}")
    mesh = None  # one device: the plain, unsharded path
    if multi_process or args.devices > 1:
        mesh = scale.make_mesh()  # every device of every process (--devices per process)
        if config.batch_size % mesh.size:
            cli.usage_error(
                parser,
                ValueError(
                    f"--batch-size {config.batch_size} must be divisible by the {mesh.size} "
                    f"devices of {jax.process_count()} process(es)."
                ),
            )
        say(
            f"data-parallel over {mesh.size} devices in {jax.process_count()} process(es): "
            f"{list(mesh.devices.flat)}"
        )
    bar = cli.show_progress_bar(args.no_progress)  # no bar redrawn into a log file
    with resume.stop_on_signals() as stop:
        result = recipes.run_resumable(
            config,
            args.out / "checkpoints",
            checkpoint_every=args.checkpoint_every,
            keep=args.keep,
            resume=args.resume,
            overwrite=args.overwrite,
            stop=stop,
            progress=lead and bar,
            # without the bar (which prints its own lines), one line per epoch as it ends
            report=print if lead and not bar else None,
            mesh=mesh,  # fit replicates the state and splits every batch over its devices
        )
    if stop.requested:
        say(
            f"stopped by {stop.name} at step {int(result.state.step)}; checkpoint written to "
            f"{args.out / 'checkpoints'}; rerun with --resume to continue."
        )
        return 128 + stop.signum
    if not lead:  # the results below are process 0's to print and write
        return 0 if bool(all_finite(result.state.params)) else 1
    print(summary(result.state.params))
    if not bool(all_finite(result.state.params)):
        print(
            f"error: the parameters are not finite after step {int(result.state.step)} "
            f"(train_loss per epoch: {result.history.get('train_loss')}); {args.out}/params.ckpt "
            "was not written. Lower --learning-rate or --clip-norm.",
            file=sys.stderr,
        )
        return 1
    for line in recipes.readout(result):
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    plot = plot_history(result.history, args.out / "history.png", title=config.task)
    ckpt = args.out / "params.ckpt"
    checkpoint.save(ckpt, result.state.params, metadata={"config": dataclasses.asdict(config)})
    if result.state.model_state is not None:  # batch norm's running statistics
        checkpoint.save(args.out / "model_state.ckpt", result.state.model_state)
        plot_kernels(
            result.state.params["conv2d_1"]["w"],
            args.out / "kernels.png",
            title="first-layer 3×3 kernels",
        )
    metrics = {"test": result.test_metrics, "history": result.history}
    (args.out / "metrics.json").write_text(cli.json_text(metrics))  # NaN → null
    final = "  ".join(f"{k} {v:.4g}" for k, v in result.test_metrics.items())
    print(f"final {final}")
    print(f"wrote {plot}, {ckpt}, {args.out / 'metrics.json'}")
    if result.state.model_state is not None:
        print(f"wrote {args.out / 'kernels.png'}, {args.out / 'model_state.ckpt'}")
    return 0


def _quiet(*args: Any, **kwargs: Any) -> None:
    """`print` for processes other than 0."""


if __name__ == "__main__":
    sys.exit(main())
