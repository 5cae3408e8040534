"""The comparison helpers: growth exponents, tables, and a tiny measured scaling profile."""

import numpy as np
import pytest

from funcnn.lab import architectures as arch
from funcnn.lab import lm


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


def test_step_timing_leaves_out_every_dispatch_that_compiled():
    """42 steps in chunks of 10: the first chunk and the 2-step tail each compile once (the
    issue: 42 steps timed at 69 ms/step against 4.2 for 40). Only the 3 repeated full chunks
    are timed: 0.3 s / 30 steps."""
    steps = [10.0, 20.0, 30.0, 40.0, 42.0]
    durations = [5.0, 0.1, 0.1, 0.1, 3.0]  # compile, steady ×3, compile of the tail
    times = np.cumsum([100.0, *durations]).tolist()
    assert lm.steady_seconds_per_step(times, steps) == pytest.approx(0.01, rel=1e-12)
    # a repeated tail length is timed too; a run where every dispatch compiled has no figure
    assert lm.steady_seconds_per_step([0.0, 5.0, 5.1, 8.0, 8.02], [10, 20, 22, 24]) == (
        pytest.approx((0.1 + 0.02) / 12, rel=1e-12)
    )
    assert np.isnan(lm.steady_seconds_per_step([0.0, 5.0], [10.0]))
