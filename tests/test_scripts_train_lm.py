"""scripts/train_lm.py: flags are checked before training, and params.ckpt carries what it
takes to rebuild the model and tokenizer (`--load` samples from it without training)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from funcnn.train import checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "bow", "--steps", "3", "--batch-size", "4", "--seq-len", "16", "--dim", "8"]
TINY += ["--hidden-size", "8", "--length", "12"]


def train_lm(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train_lm.py"), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--temperature", "0"], "--temperature: expected a finite number > 0, got '0'"),
        (["--prompt", "\u2603"], "are not in the vocabulary"),
        (["--prompt", ""], "--prompt must have at least one character"),
        (["--top-k", "-2"], "--top-k: expected a positive integer, got '-2'"),
        (["--clip-norm", "0"], "--clip-norm: expected a finite number > 0, got '0'"),
    ],
)
def test_bad_flags_fail_before_training(flags, message):
    started = time.perf_counter()
    result = train_lm(*TINY, *flags)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "bits/char" not in result.stdout  # no training step ran
    assert time.perf_counter() - started < 120


def test_load_rebuilds_model_and_tokenizer_from_the_checkpoint(tmp_path):
    out = tmp_path / "lm"
    trained = train_lm(*TINY, "--out", str(out), "--prompt", "de")
    assert trained.returncode == 0, trained.stderr
    config = checkpoint.read_metadata(out / "params.ckpt")["lm_config"]
    assert config["kind"] == "bow" and config["max_len"] == 16
    assert config["model_kwargs"]["hidden"] == 8 and len(config["chars"]) == config["vocab"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["history"]["step"][-1] == 3

    sample = (out / "sample.txt").read_text()
    loaded = train_lm(*TINY, "--load", str(out / "params.ckpt"), "--prompt", "de")
    assert loaded.returncode == 0, loaded.stderr
    # Same params, same seed, same prompt → the same sampled text, now without training.
    assert loaded.stdout.strip().endswith(sample.strip()) and "bits/char" not in loaded.stdout
    assert set(sample) <= set(config["chars"]) and sample.startswith("de")
    assert len(sample) == 2 + 12


def test_load_refuses_a_checkpoint_without_lm_config(tmp_path):
    import numpy as np

    path = checkpoint.save(tmp_path / "other.ckpt", {"w": np.zeros(3, np.float32)})
    result = train_lm(*TINY, "--load", str(path))
    assert result.returncode == 2 and "has no lm_config metadata" in result.stderr
