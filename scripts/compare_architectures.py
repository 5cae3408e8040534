"""The architecture-evolution table, measured: bag of words → RNN → LSTM → CNN → transformer.

    python scripts/compare_architectures.py --out runs/compare_architectures
    python scripts/compare_architectures.py --kinds lstm transformer --adding-steps 1500

For each kind: parameter count, final metric and time per training step on the adding
problem (T = 50 and 200; test MSE, 0.167 = predicting the mean) and on the character LM
(validation bits/char vs the unigram baseline); then how one training step's time and XLA
peak memory grow with T. Writes comparison.md and scaling.png to --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from funcnn.datasets.text import stdlib_docstrings
from funcnn.lab import architectures as arch
from funcnn.lab import cli
from funcnn.nn.sequence_models import ARCHITECTURES


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kinds", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    p.add_argument("--adding-lengths", type=cli.positive_int, nargs="+", default=[50, 200])
    p.add_argument("--adding-steps", type=cli.positive_int, default=800)
    p.add_argument("--lm-steps", type=cli.positive_int, default=300)
    p.add_argument("--lm-seq-len", type=cli.positive_int, default=64)
    p.add_argument(
        "--scaling-lengths", type=cli.positive_int, nargs="+", default=[64, 128, 256, 512, 1024]
    )
    p.add_argument("--out", type=cli.output_folder, default=Path("runs/compare_architectures"))
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = stdlib_docstrings()

    rows, unigram = [], None
    for kind in args.kinds:
        row = [kind]
        for i, length in enumerate(args.adding_lengths):
            run = arch.adding_run(kind, length, steps=args.adding_steps)
            print(
                f"{kind:12s} adding T={length}: MSE {run.metric:.4f}, {run.ms_per_step:.2f} ms/step"
            )
            row += ([run.num_params] if i == 0 else []) + [run.metric, run.ms_per_step]
        run, unigram = arch.lm_run(kind, corpus, steps=args.lm_steps, seq_len=args.lm_seq_len)
        print(f"{kind:12s} char LM: {run.metric:.3f} bits/char, {run.ms_per_step:.2f} ms/step")
        rows.append([*row, run.num_params, run.metric, run.ms_per_step])

    first, *rest = args.adding_lengths
    headers = ["model", "params (adding)", f"MSE T={first}", f"ms/step T={first}"]
    for length in rest:
        headers += [f"MSE T={length}", f"ms/step T={length}"]
    headers += ["params (LM)", "val bits/char", "ms/step (LM)"]
    quality = arch.markdown_table(headers, rows)

    points = []
    for kind in args.kinds:
        mine = arch.scaling_profile(kind, args.scaling_lengths)
        points += mine
        print(
            f"{kind:12s} scaling: "
            + ", ".join(
                f"T={p.length}: {p.ms_per_step:.2f} ms, {p.peak_bytes / 2**20:.3g} MiB"
                for p in mine
            )
        )
    scale_headers = ["model"] + [f"ms T={t}" for t in args.scaling_lengths]
    scale_headers += [f"MiB T={t}" for t in args.scaling_lengths] + ["time ∝ T^k", "memory ∝ T^k"]
    scale_rows = []
    for kind in args.kinds:
        mine = [p for p in points if p.kind == kind]
        times = [p.ms_per_step for p in mine]
        mems = [p.peak_bytes / 2**20 for p in mine]
        lengths = [p.length for p in mine]
        scale_rows.append(
            [
                kind,
                *times,
                *mems,
                arch.growth_exponent(lengths, times),
                arch.growth_exponent(lengths, mems),
            ]
        )
    scaling = arch.markdown_table(scale_headers, scale_rows)

    report = (
        f"## Quality and speed (adding: {args.adding_steps} steps, batch 64; char LM: "
        f"{args.lm_steps} steps, batch 32, T={args.lm_seq_len}; unigram baseline "
        f"{unigram:.3f} bits/char; mean predictor on adding: MSE 0.167)\n\n{quality}\n\n"
        f"## One training step vs sequence length (adding regressors, batch 4, dim 32)\n\n"
        f"{scaling}\n"
    )
    (args.out / "comparison.md").write_text(report)
    arch.plot_scaling(points, args.out / "scaling.png")
    print(report)
    print(f"wrote {args.out}/comparison.md and scaling.png")


if __name__ == "__main__":
    main()
