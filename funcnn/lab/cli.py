"""One flag vocabulary for every script, and argparse-style failures instead of tracebacks.

The scripts in `scripts/` build their parsers from these helpers, so the same concept has
the same flag everywhere:

    --learning-rate (alias --lr)   peak learning rate η
    --weight-decay                 λ
    --clip-norm                    max global gradient norm
    --seed                         every PRNG key of the run derives from it
    --out                          the run's output folder
    --no-progress                  plain per-epoch (or per-chunk) lines instead of a bar

Each `type=` below validates while argparse parses, so a bad value ends the way argparse
ends: a usage line, a message naming the flag and the value, and exit status 2. Errors the
library raises while a run is being *set up* (before anything touches the disk) go through
`usage_error` for the same result.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "add_optimizer_flags",
    "add_run_flags",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "probability",
    "usage_error",
]


def _integer(text: str, expected: str, ok: Callable[[int], bool]) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    return _integer(text, "a positive integer", lambda v: v >= 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    return _integer(text, "an integer ≥ 0", lambda v: v >= 0)


def _finite_float(text: str, expected: str, ok: Callable[[float], bool]) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _finite_float(text, "a finite number > 0", lambda v: v > 0)


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number ≥ 0."""
    return _finite_float(text, "a finite number ≥ 0", lambda v: v >= 0)


def probability(text: str) -> float:
    """argparse type: a drop probability p ∈ [0, 1]."""
    return _finite_float(text, "a probability in [0, 1]", lambda v: 0 <= v <= 1)


def add_optimizer_flags(
    parser: argparse.ArgumentParser,
    *,
    learning_rate: float | None,
    weight_decay: float,
    clip_norm: float,
) -> None:
    """--learning-rate/--lr, --weight-decay, --clip-norm with the script's defaults
    (`learning_rate=None`: the task's default)."""
    parser.add_argument(
        "--learning-rate",
        "--lr",
        dest="learning_rate",
        type=positive_float,
        default=learning_rate,
        metavar="η",
        help="peak learning rate" + (" (task default if omitted)" if learning_rate is None else ""),
    )
    parser.add_argument("--weight-decay", type=nonnegative_float, default=weight_decay)
    parser.add_argument(
        "--clip-norm",
        type=positive_float,
        default=clip_norm,
        help="clip gradients to this global L2 norm",
    )


def add_run_flags(parser: argparse.ArgumentParser, *, out: Path | None) -> None:
    """--seed, --out and --no-progress."""
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument(
        "--out", type=Path, default=out, help="output folder" + ("" if out else " (optional)")
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="plain lines as training goes, no bar"
    )


def usage_error(parser: argparse.ArgumentParser, error: Exception) -> None:
    """End the way argparse ends on a bad flag: usage, `error: <message>`, exit status 2."""
    parser.error(str(error))
