"""Plain-text tables and machine-readable files for the comparison scripts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from funcnn.lab.cli import json_text

__all__ = [
    "format_table",
    "format_value",
    "write_json",
]


def format_value(value: Any) -> str:
    """A table cell: floats in compact scientific/fixed form, None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == 0:
            return "0"  # also −0.0, which a float32 loss can round to
        if 1e-3 <= abs(value) < 1e4:
            return f"{value:.4g}"
        return f"{value:.2e}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned text table with a header row and a rule, one line per row."""
    cells = [[format_value(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(columns), rule, *(line(r).rstrip() for r in cells)])


def write_json(path: str | Path, payload: Any) -> Path:
    """Write `payload` as strict, indented JSON (`cli.json_text`: NaN and ±inf become `null`,
    as in the train scripts' metrics.json), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_text(payload) + "\n")
    return path
