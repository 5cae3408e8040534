"""Compare funcnn's hand-rolled optimizers against reference math and against each other.

    python scripts/compare_optimizers.py verify                 # every config, f64 + f32
    python scripts/compare_optimizers.py verify --only adamw --steps 100
    python scripts/compare_optimizers.py verify --formula clip_adamw_warmup_cosine
    python scripts/compare_optimizers.py race                   # 33 optimizers × 4 problems
    python scripts/compare_optimizers.py decay                  # Adam+L2 vs AdamW

Each subcommand prints a table and writes JSON (and PNGs for race/decay) into --out.
`verify` exits with status 1 if any configuration FAILS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from funcnn.lab import cli
from funcnn.lab.compare import decay, race, report, verify
from funcnn.verify import registry

VERIFY_COLUMNS = [
    "configuration",
    "dtype",
    "steps",
    "max_abs_error",
    "max_rel_error",
    "max_lr_error",
    "tolerance",
    "result",
]
# The columns that decide PASS, marked with * in the printed table (verify.json keeps the
# plain names).
DECIDING = ("max_rel_error", "max_lr_error")
VERIFY_LEGEND = (
    "result: PASS when every column marked * is ≤ tolerance (max_rel_error: the parameters, "
    "max_lr_error: the learning rate used at each step, both relative to the float64 "
    "reference); max_abs_error is shown for scale and does not decide."
)
RACE_COLUMNS = ["optimizer", "learning_rate", "steps_to_target", "final_loss", "wall_time"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--out", type=cli.output_folder, default=Path("runs/compare"), help="output directory"
    )
    sub = p.add_subparsers(dest="command", required=True)
    # --out is accepted after the subcommand too (`verify --out X`); SUPPRESS keeps the
    # top-level value unless the subcommand's flag is given.
    out_after = argparse.ArgumentParser(add_help=False)
    out_after.add_argument(
        "--out", type=cli.output_folder, default=argparse.SUPPRESS, help="output directory"
    )

    v = sub.add_parser(
        "verify", parents=[out_after], help="funcnn vs funcnn.reference for every configuration"
    )
    v.add_argument("--steps", type=cli.positive_int, default=500)
    v.add_argument("--seed", type=cli.nonnegative_int, default=0)
    v.add_argument(
        "--only",
        action="append",
        choices=list(registry.CONFIGS),
        metavar="NAME",
        help="run only this configuration (repeatable); names: " + ", ".join(registry.CONFIGS),
    )
    v.add_argument("--dtype", action="append", choices=list(verify.TOLERANCES))
    v.add_argument(
        "--formula",
        choices=list(registry.CONFIGS),
        metavar="NAME",
        help="print the update rule checked for NAME (its docstrings) and exit",
    )

    r = sub.add_parser(
        "race", parents=[out_after], help="any set of optimizers on the same problems, best η each"
    )
    r.add_argument("--problem", action="append", choices=list(race.PROBLEMS))

    d = sub.add_parser(
        "decay", parents=[out_after], help="Adam with L2 in the loss vs AdamW decoupled decay"
    )
    defaults = decay.DecaySetting()
    d.add_argument(
        "--weight-decays", type=cli.nonnegative_float, nargs="+", default=list(decay.WEIGHT_DECAYS)
    )
    d.add_argument("--n-train", type=cli.positive_int, default=defaults.n_train)
    d.add_argument("--hidden", type=cli.positive_int, default=defaults.hidden)
    d.add_argument("--steps", type=cli.positive_int, default=defaults.steps)
    d.add_argument(
        "--learning-rate",
        "--lr",
        dest="learning_rate",
        type=cli.positive_float,
        default=defaults.learning_rate,
    )
    d.add_argument("--seed", type=cli.nonnegative_int, default=defaults.seed)
    return p.parse_args(argv)


def run_verify(args: argparse.Namespace) -> int:
    if args.formula:
        print(verify.formula(args.formula))
        return 0
    rows = verify.verify_all(
        args.only, dtypes=args.dtype or verify.DTYPES, steps=args.steps, seed=args.seed
    )
    table = [row.as_dict() for row in rows]
    mark = {name: f"{name}*" for name in DECIDING}
    shown = [{mark.get(k, k): v for k, v in row.items()} for row in table]
    print(VERIFY_LEGEND + "\n")
    print(report.format_table(shown, [mark.get(c, c) for c in VERIFY_COLUMNS]))
    path = report.write_json(args.out / "verify.json", table)
    failed = [f"{r.configuration}/{r.dtype}" for r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} PASS; results in {path}")
    if failed:
        print("FAIL: " + ", ".join(failed))
        return 1
    return 0


def run_race(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    payload = []
    for name in args.problem or race.PROBLEMS:
        problem = race.PROBLEMS[name]()
        results = race.race_all(problem)
        print(
            f"\n{name}: {problem.description}; target loss {problem.target:g} in ≤ "
            f"{problem.steps} steps; η grid {race.LEARNING_RATES[0]:.0e}…"
            f"{race.LEARNING_RATES[-1]:.2g}"
        )
        rows = [r._asdict() for r in results]
        shown = [
            dict(row, learning_rate=f"{row['learning_rate']:g} (once)") if not row["swept"] else row
            for row in rows
        ]
        print(report.format_table(shown, RACE_COLUMNS))
        png = race.plot_race(results, problem, str(args.out / f"race_{name}.png"))
        print(f"curves: {png}")
        payload += [dict(row, curve=row["curve"].tolist()) for row in rows]
    print(f"\nresults: {report.write_json(args.out / 'race.json', payload)}")
    return 0


def run_decay(args: argparse.Namespace) -> int:
    setting = decay.DecaySetting(
        args.n_train, args.hidden, args.steps, args.learning_rate, args.seed
    )
    print(f"decay: {setting}")
    results = decay.decay_experiment(args.weight_decays, setting)
    rows = [r._asdict() for r in results]
    print(report.format_table(rows, list(decay.DecayResult._fields)))
    args.out.mkdir(parents=True, exist_ok=True)
    png = decay.plot_decay(results, str(args.out / "decay.png"))
    path = report.write_json(args.out / "decay.json", {"setting": setting._asdict(), "runs": rows})
    print(f"\nplot: {png}\nresults: {path}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    commands = {"verify": run_verify, "race": run_race, "decay": run_decay}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
