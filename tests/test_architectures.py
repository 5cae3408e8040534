"""The comparison helpers: growth exponents, tables, and a tiny measured scaling profile."""

import numpy as np
import pytest

from funcnn.lab import architectures as arch


def test_growth_exponent_recovers_power_laws():
    lengths = [64, 128, 256, 512]
    assert arch.growth_exponent(lengths, [3.0 * t for t in lengths]) == pytest.approx(1.0)
    assert arch.growth_exponent(lengths, [0.5 * t**2 for t in lengths]) == pytest.approx(2.0)


def test_markdown_table_layout():
    table = arch.markdown_table(["model", "mse"], [["lstm", 0.0123456], ["bow", 1]])
    assert table.splitlines() == [
        "| model | mse |",
        "|---|---|",
        "| lstm | 0.01235 |",
        "| bow | 1 |",
    ]


def test_scaling_profile_measures_each_length():
    points = arch.scaling_profile("lstm", [8, 32], batch_size=2, dim=4, repeats=1)
    assert [p.length for p in points] == [8, 32]
    assert all(p.peak_bytes > 0 for p in points)  # timings are reported, not asserted
    # The scan keeps every step's activations for the backward pass: memory grows with T.
    assert points[1].peak_bytes > points[0].peak_bytes
    assert np.isfinite(arch.growth_exponent([8, 32], [p.peak_bytes for p in points]))
