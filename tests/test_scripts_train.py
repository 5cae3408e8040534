"""scripts/train.py behaves like a tool: every flag is checked before the disk is touched,
bad flags end argparse-style (exit 2), an earlier run is never deleted without being told,
a diverged run exits non-zero without writing NaN parameters, and metrics.json keeps the
per-epoch history."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from funcnn.train import checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ["--task", "xor", "--epochs", "2", "--hidden", "8", "--no-progress"]


def train(*flags: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train.py"), *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "--epochs: expected a positive integer, got '0'"),
        (["--batch-size", "ten"], "--batch-size: expected a positive integer, got 'ten'"),
        (["--lr", "-1"], "--learning-rate/--lr: expected a finite number > 0, got '-1'"),
        (["--learning-rate", "nan"], "expected a finite number > 0, got 'nan'"),
        (["--dropout", "1.5"], "--dropout: expected a probability in [0, 1], got '1.5'"),
        (["--devices", "3", "--batch-size", "16"], "--batch-size 16 must be divisible by"),
        (["--resume", "--overwrite"], "not allowed with argument"),
        (["--activation", "swish2"], "invalid choice: 'swish2'"),
        (["--task", "spam", "--model", "cnn"], "model='cnn' needs an image task"),
    ],
)
def test_bad_flags_exit_2_with_a_message_and_touch_nothing(tmp_path, flags, message):
    out = tmp_path / "run"
    result = train(*TINY, "--out", str(out), *flags)
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_an_earlier_run_is_kept_unless_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    first = train(*TINY, "--out", str(out))
    assert first.returncode == 0, first.stderr
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert saved, "the first run checkpoints at its end"
    before = {name: (out / "checkpoints" / name).read_bytes() for name in saved}

    # The reported data-loss case: a flag that fails validation must not empty the folder…
    bad = train(*TINY, "--out", str(out), "--devices", "3", "--batch-size", "16")
    assert bad.returncode == 2 and "must be divisible by --devices 3" in bad.stderr
    # …and a valid fresh start over an earlier run is refused, naming both ways out.
    again = train(*TINY, "--out", str(out))
    assert again.returncode == 2
    assert "pass --resume to continue it or --overwrite to replace it" in again.stderr
    after = {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()}
    assert after == before

    replaced = train(*TINY, "--out", str(out), "--overwrite", "--seed", "1")
    assert replaced.returncode == 0, replaced.stderr
    assert "overwrite" in replaced.stdout
    # Seed 1 trains other params: the newest checkpoint is the new run's, not the old one.
    assert (out / "checkpoints" / saved[-1]).read_bytes() != before[saved[-1]]


def test_metrics_json_holds_test_metrics_and_the_per_epoch_history(tmp_path):
    out = tmp_path / "run"
    result = train(*TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"test", "history"}
    assert metrics["history"]["epoch"] == [1, 2]
    assert len(metrics["history"]["train_loss"]) == 2
    assert 0.0 <= metrics["test"]["test_accuracy"] <= 1.0
    # The printed final line keeps significant digits (no 0.0000 for a small loss).
    final = next(line for line in result.stdout.splitlines() if line.startswith("final "))
    loss = metrics["test"]["test_loss"]
    assert f"test_loss {loss:.4g}" in final
    config = checkpoint.read_metadata(out / "params.ckpt")["config"]
    assert config["task"] == "xor" and config["hidden"] == [8]


def test_a_diverged_run_exits_1_and_writes_no_nan_params(tmp_path):
    out = tmp_path / "run"
    result = train(*TINY, "--out", str(out), "--lr", "1e6", "--checkpoint-every", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not finite" in result.stderr and "params.ckpt was not written" in result.stderr
    assert not (out / "params.ckpt").exists()
    # The checkpoints kept are the last finite ones, not the NaN states after the divergence.
    assert "not checkpointing step" in result.stderr
    kept = sorted((out / "checkpoints").glob("ckpt_*.npz"))
    assert kept, result.stderr
    for path in kept:
        for leaf in jax.tree.leaves(checkpoint.restore(path)["params"]):
            assert np.isfinite(np.asarray(leaf)).all(), path.name


def test_cnn_writes_the_first_layer_kernels_and_its_running_statistics(tmp_path):
    out = tmp_path / "run"
    flags = ["--task", "digits", "--model", "cnn", "--epochs", "1", "--batch-size", "256"]
    result = train(*flags, "--no-progress", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "kernels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stats = checkpoint.restore(out / "model_state.ckpt")
    assert stats["batch_norm_2"]["mean"].shape == (16,)
    assert checkpoint.read_metadata(out / "params.ckpt")["config"]["model"] == "cnn"
