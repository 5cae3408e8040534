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

The rules every script follows, so a run never fails after it has started writing:
- every flag, every combination of flags (`explicit_flags` tells a flag the user gave from
  a default, so a flag the chosen mode ignores is refused rather than dropped) and every
  precondition that depends on the data (batch size vs examples, sequence length vs text,
  heads vs width, the output folder and the files it will hold) is checked before the first
  training step and before anything is written;
- `--out` must name a folder that is or can become a directory (`output_folder`);
- a progress bar only on a terminal (`show_progress_bar`): a log file gets plain lines;
- JSON outputs are strict JSON (`json_text`): NaN and ±inf are written as `null`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "add_optimizer_flags",
    "add_run_flags",
    "check_output_files",
    "explicit_flags",
    "json_text",
    "nonnegative_float",
    "nonnegative_int",
    "output_folder",
    "positive_float",
    "positive_int",
    "probability",
    "show_progress_bar",
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


def output_folder(text: str) -> Path:
    """argparse type: a folder the run can write into — an existing directory, or a path
    whose nearest existing ancestor is a writable directory (it is made when the run
    writes). An empty path (which would silently mean the current folder) is refused, and so
    is an existing file."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a folder path, got {text!r} (use --out . for the current folder)"
        )
    path = Path(text)
    problem = _folder_problem(path)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return path


def _folder_problem(path: Path) -> str | None:
    """Why `path` cannot be (made into) a folder to write into, or None."""
    if path.exists() and not path.is_dir():
        return f"{str(path)!r} is an existing file, expected a folder"
    ancestor = path
    while not ancestor.exists():  # the nearest part of the path that exists must be a folder
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot make folder {str(path)!r}: {str(ancestor)!r} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot write into {str(ancestor)!r} (permission)"
    return None


def check_output_files(folder: Path, files: Iterable[str], folders: Iterable[str] = ()) -> None:
    """Refuse, before the run starts, an output that could not be written at its end: each
    name in `files` must be absent or a regular file (it is replaced), each in `folders`
    absent or a directory — and `folder` itself must be one the run can write into (a
    script's default --out is not checked by argparse). Raises ValueError naming the path."""
    problem = _folder_problem(folder)
    if problem:
        raise ValueError(f"--out: {problem}")
    for name in files:
        path = folder / name
        if path.exists() and not path.is_file():
            raise ValueError(f"--out: {str(path)!r} exists and is not a file; it would be written")
    for name in folders:
        path = folder / name
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out: {str(path)!r} exists and is not a folder")


def explicit_flags(
    build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None
) -> set[str]:
    """The destinations of the flags given on the command line (not left at their default),
    e.g. {"steps", "load"}: parsed again with every default suppressed."""
    probe = build_parser()
    # Not set_defaults(): parser-level defaults land in the namespace and argparse would then
    # run each flag's type= on the SUPPRESS string.
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def show_progress_bar(no_progress: bool) -> bool:
    """A progress bar only when asked for and stderr is a terminal: a bar redrawn into a log
    file is noise, so a redirected run behaves as with --no-progress (plain lines)."""
    return not no_progress and sys.stderr.isatty()


def json_text(value: Any) -> str:
    """Strict JSON for `value` (indented): NaN and ±inf, which `json.dumps` would write as
    the non-JSON tokens NaN/Infinity, become `null`; NumPy numbers become Python numbers."""

    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if isinstance(x, np.ndarray):
            return clean(x.tolist())
        if isinstance(x, np.generic):
            x = x.item()
        return None if isinstance(x, float) and not math.isfinite(x) else x

    return json.dumps(clean(value), indent=2, allow_nan=False)


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
        "--out",
        type=output_folder,
        default=out,
        help="output folder" + ("" if out else " (optional)"),
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="plain lines as training goes, no bar"
    )


def usage_error(parser: argparse.ArgumentParser, error: Exception) -> None:
    """End the way argparse ends on a bad flag: usage, `error: <message>`, exit status 2."""
    parser.error(str(error))
