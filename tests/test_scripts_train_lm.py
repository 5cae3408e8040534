"""scripts/train_lm.py: flags are checked before training, and params.ckpt carries what it
takes to rebuild the model and tokenizer (`--load` samples from it without training)."""

import importlib.util
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


def refusal(script, capsys, argv: list[str]) -> str:
    """stderr of `script.main(argv)` run in-process, which must end argparse-style before
    training: exit 2 with one `error:` line, and no bits/char printed (no step ran)."""
    with pytest.raises(SystemExit) as exit:
        script.main(argv)
    captured = capsys.readouterr()
    assert exit.value.code == 2 and captured.err.count("error:") == 1, captured.err
    assert "bits/char" not in captured.out  # no training step ran
    return captured.err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--temperature", "0"], "--temperature: expected a finite number > 0, got '0'"),
        (["--prompt", "\u2603"], "are not in the vocabulary"),
        (["--prompt", ""], "--prompt must have at least one character"),
        (["--top-k", "-2"], "--top-k: expected a positive integer, got '-2'"),
        (["--clip-norm", "0"], "--clip-norm: expected a finite number > 0, got '0'"),
        (["--num-kv-heads", "2"], "--num-kv-heads needs --arch llama"),
        (["--arch", "gpt2"], "--arch, --from-pretrained and --model each choose the model"),
    ],
)
def test_bad_flags_fail_before_training(script, capsys, flags, message):
    # In-process (main(argv) as the command line would run it): one Python start, not one
    # per case; the subprocess test below shows a real process ends the same way.
    err = refusal(script, capsys, [*TINY, *flags])
    assert "usage:" in err and message in err, err


def test_a_bad_flag_ends_the_process_with_exit_2_before_training():
    started = time.perf_counter()
    result = train_lm(*TINY, "--temperature", "0")
    assert result.returncode == 2, result.stderr
    assert "--temperature: expected a finite number > 0, got '0'" in result.stderr
    assert "Traceback" not in result.stderr
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

    # Strict JSON: 3 steps in one dispatch leave no steady-state timing (NaN) → null.
    def refuse(token):
        raise AssertionError(f"metrics.json holds the non-JSON token {token}")

    assert (
        json.loads((out / "metrics.json").read_text(), parse_constant=refuse)["ms_per_step"] is None
    )

    sample = (out / "sample.txt").read_text()
    loaded = train_lm("--load", str(out / "params.ckpt"), "--prompt", "de", "--length", "12")
    assert loaded.returncode == 0, loaded.stderr
    # Same params, same seed, same prompt → the same sampled text, now without training.
    assert loaded.stdout.strip().endswith(sample.strip()) and "bits/char" not in loaded.stdout
    assert set(sample) <= set(config["chars"]) and sample.startswith("de")
    assert len(sample) == 2 + 12


def test_load_refuses_a_checkpoint_without_lm_config(tmp_path):
    import numpy as np

    path = checkpoint.save(tmp_path / "other.ckpt", {"w": np.zeros(3, np.float32)})
    result = train_lm("--load", str(path))
    assert result.returncode == 2 and "has no lm_config metadata" in result.stderr


# ------------------------------------------------ every check before training or writing
# In-process (no interpreter start per case): main exits before its first training step.


@pytest.fixture(scope="module")
def script():
    path = REPO / "scripts" / "train_lm.py"
    spec = importlib.util.spec_from_file_location("train_lm_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_keeps_xla_buffers_in_the_heap_before_any_jax_work(
    script, capsys, monkeypatch, tmp_path
):
    # A missing --load checkpoint is refused right after the process-wide settings, so the
    # two calls are seen without training; each must come before the first JAX computation.
    calls = []
    monkeypatch.setattr(script.xla, "reuse_cpu_buffers", lambda: calls.append("buffers"))
    monkeypatch.setattr(
        script.xla, "enable_cpu_multi_output_fusion", lambda: calls.append("fusion")
    )
    err = refusal(script, capsys, ["--load", str(tmp_path / "missing.ckpt")])
    assert "missing.ckpt" in err
    assert calls == ["fusion", "buffers"]


SHORT = "the cat sat on the mat. " * 3  # 72 characters: 65 train, 7 validation


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--model", "transformer", "--dim", "8", "--num-heads", "3"],
            "--dim 8 must be divisible by --num-heads 3",
        ),
        (
            ["--seq-len", "8"],
            "--seq-len 8 needs 9 characters in the training part and in the validation tail",
        ),
        (["--seq-len", "100000"], "use --seq-len ≤ 6 or a longer --text"),
        (
            ["--out", "{tmp}/file"],
            "argument --out: '{tmp}/file' is an existing file, expected a folder",
        ),
        (["--out", ""], "argument --out: expected a folder path, got ''"),
        (
            ["--out", "{tmp}/run", "--seq-len", "2"],
            "'{tmp}/run/params.ckpt' exists and is not a file",
        ),
        (["--model", "bow", "--num-heads", "2"], "--num-heads: not used by --model bow"),
        (
            ["--model", "lstm", "--depth", "3", "--dropout", "0.1"],
            "--depth, --dropout: not used by --model lstm",
        ),
        (["--warmup", "3"], "--warmup 3 must be less than --steps 3"),
        (["--top-k", "50"], "--top-k 50 exceeds the vocabulary of 11 characters"),
        (["--load", "{tmp}/x.ckpt", "--steps", "9"], "--steps, --text: not used with --load"),
    ],
)
def test_flags_that_cannot_work_are_refused_before_training(
    script, tmp_path, capsys, flags, message
):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "run" / "params.ckpt").mkdir(parents=True)
    (tmp_path / "short.txt").write_text(SHORT)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    argv = ["--steps", "3", "--batch-size", "2", "--seq-len", "4", "--prompt", "the "]
    argv += ["--text", str(tmp_path / "short.txt")]
    argv += [f.format(tmp=tmp_path) for f in flags]
    err = refusal(script, capsys, argv)
    assert message.format(tmp=tmp_path) in err, err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written


def test_arch_trains_a_decoder_and_writes_the_hugging_face_layout(tmp_path):
    from funcnn import models

    out = tmp_path / "llama"
    flags = ["--arch", "llama", "--num-heads", "2", "--num-kv-heads", "1", "--depth", "1"]
    tiny = ["--steps", "3", "--batch-size", "4", "--seq-len", "16", "--dim", "8", "--length", "12"]
    trained = train_lm(*tiny, *flags, "--out", str(out), "--prompt", "de")  # no --model
    assert trained.returncode == 0, trained.stderr
    assert sorted(p.name for p in (out / "hf").iterdir()) == [
        "chars.json",
        "config.json",
        "model.safetensors",
    ]
    model, _ = models.from_pretrained(out / "hf")
    assert (model.config.num_kv_heads, model.config.num_layers, model.config.dim) == (1, 1, 8)
    assert json.loads((out / "metrics.json").read_text())["model"] == "llama"
