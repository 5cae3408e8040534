"""scripts/train.py behaves like a tool: every flag is checked before the disk is touched,
bad flags end argparse-style (exit 2), an earlier run is never deleted without being told,
a diverged run exits non-zero without writing NaN parameters, and metrics.json keeps the
per-epoch history."""

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from funcnn.lab import cli, recipes
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
def test_bad_flags_exit_2_with_a_message_and_touch_nothing(
    script, tmp_path, capsys, flags, message
):
    # In-process (main(argv) as the command line would run it): one Python start, not one
    # per case; the subprocess test below shows a real process ends the same way.
    out = tmp_path / "run"
    err = refusal(capsys, lambda: script.main([*TINY, "--out", str(out), *flags]))
    assert message in err, err
    assert not out.exists()


def test_a_bad_flag_ends_the_process_with_exit_2_and_no_traceback(tmp_path):
    out = tmp_path / "run"
    result = train(*TINY, "--out", str(out), "--epochs", "0")
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr and "--epochs: expected a positive integer, got '0'" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_an_earlier_run_is_kept_unless_resume_or_overwrite(script, tmp_path, capsys):
    out = tmp_path / "run"
    first = train(*TINY, "--out", str(out))
    assert first.returncode == 0, first.stderr
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert saved, "the first run checkpoints at its end"
    before = {name: (out / "checkpoints" / name).read_bytes() for name in saved}

    # The refusals run main(argv) in-process (exit 2 like the command; no interpreter start).
    def refused(*flags: str) -> str:
        return refusal(capsys, lambda: script.main([*TINY, "--out", str(out), *flags]))

    # The reported data-loss case: a flag that fails validation must not empty the folder…
    assert "must be divisible by --devices 3" in refused("--devices", "3", "--batch-size", "16")
    # …and a valid fresh start over an earlier run is refused, naming both ways out.
    assert "pass --resume to continue it or --overwrite to replace it" in refused()
    # Resuming under another learning rate: one argparse error before anything is written.
    assert "different config (learning_rate: 0.03 → 0.01)" in refused("--resume", "--lr", "0.01")
    after = {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()}
    assert after == before

    replaced = train(*TINY, "--out", str(out), "--overwrite", "--seed", "1")
    assert replaced.returncode == 0, replaced.stderr
    assert "overwrite" in replaced.stdout
    # Seed 1 trains other params: the newest checkpoint is the new run's, not the old one.
    assert (out / "checkpoints" / saved[-1]).read_bytes() != before[saved[-1]]


def test_metrics_json_holds_test_metrics_and_the_per_epoch_history(tmp_path):
    out = tmp_path / "run"
    # Without --no-progress, but stderr is a pipe (not a terminal): no bar is redrawn into
    # it, and the plain per-epoch rows go to stdout as with --no-progress.
    result = train(*[f for f in TINY if f != "--no-progress"], "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "it/s" not in result.stderr, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines() if line.startswith("epoch")][
        :2
    ] == [["epoch", "1"], ["epoch", "2"]], result.stdout
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


# ------------------------------------------------ every check before the disk is touched
# In-process (no interpreter start per case): `validated` and `check_resume` are the checks
# main runs before anything is written.


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_script", REPO / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refusal(capsys, run) -> str:
    """stderr of a check that must end argparse-style: exit 2, usage line, no traceback."""
    with pytest.raises(SystemExit) as exit:
        run()
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "usage:" in err, err
    return err


def make_out(tmp_path, kind):
    """--out values that cannot hold a run, and the state of the disk before the check."""
    if kind == "file":
        (tmp_path / "file").write_text("not a folder")
        return str(tmp_path / "file")
    if kind == "under a file":
        (tmp_path / "file").write_text("not a folder")
        return str(tmp_path / "file" / "run")
    if kind == "params.ckpt is a folder":
        (tmp_path / "run" / "params.ckpt").mkdir(parents=True)
        return str(tmp_path / "run")
    return ""


@pytest.mark.parametrize(
    "flags, out, message",
    [
        (["--batch-size", "5000"], "fresh", "--batch-size 5000 is larger than the 320 training"),
        (["--task", "spam", "--hidden", "--activation", "tanh"], "fresh", "--activation acts"),
        (["--task", "house", "--hidden", "--dropout", "0.2"], "fresh", "--dropout acts between"),
        ([], "file", "argument --out: '{out}' is an existing file, expected a folder"),
        ([], "under a file", "cannot make folder '{out}': '{tmp}/file' is a file"),
        ([], "", "argument --out: expected a folder path, got ''"),
        ([], "params.ckpt is a folder", "'{out}/params.ckpt' exists and is not a file"),
    ],
)
def test_flags_and_outputs_that_cannot_work_are_refused_before_writing(
    script, tmp_path, capsys, flags, out, message
):
    out = str(tmp_path / "run") if out == "fresh" else make_out(tmp_path, out)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    argv = [*TINY, "--out", out, *flags]
    err = refusal(capsys, lambda: script.validated(script.build_parser(), argv))
    assert message.format(out=out, tmp=tmp_path) in err, err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written


def test_resume_with_other_flags_is_refused_before_writing(script, tmp_path, capsys):
    # A checkpoint of the run with the task's own learning rate (xor: 0.03) …
    config = recipes.resolve(recipes.TrainConfig(task="xor", epochs=2, hidden=(8,)))
    folder = tmp_path / "run" / "checkpoints"
    checkpoint.CheckpointManager(folder).save(
        20,
        {"step": np.int32(20)},
        metadata={
            "config": dataclasses.asdict(config),
            "position": {"step": 20, "epoch": 1, "index": 0},
        },
    )
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # … resumed with --lr 0.01: one argparse error naming the change, the folder untouched.
    parser = script.build_parser()
    args, resolved = script.validated(
        parser, [*TINY, "--out", str(tmp_path / "run"), "--resume", "--lr", "0.01"]
    )
    err = refusal(capsys, lambda: script.check_resume(parser, args, resolved))
    assert "different config (learning_rate: 0.03 → 0.01)" in err, err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_json_outputs_are_strict_json_with_null_for_nan_and_inf():
    text = cli.json_text({"loss": [1.5, float("nan")], "t": np.float32("inf"), "n": np.int64(3)})

    def refuse(token):
        raise AssertionError(f"non-JSON token {token}")

    assert json.loads(text, parse_constant=refuse) == {"loss": [1.5, None], "t": None, "n": 3}


@pytest.mark.parametrize(
    "name, argv",
    [
        ("compare_architectures", []),
        ("compare_optimizers", ["verify"]),
        ("experiments", ["vanishing"]),
        ("gradcheck", []),
    ],
)
@pytest.mark.parametrize("out", ["", "file"])
def test_every_scripts_out_must_be_a_folder(tmp_path, capsys, name, argv, out):
    (tmp_path / "file").write_text("not a folder")
    out = out and str(tmp_path / out)
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit:
        module.parse_args([*argv, "--out", out])
    assert exit.value.code == 2
    assert "argument --out: " in capsys.readouterr().err


def test_the_default_out_is_checked_too(script, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file where the default --out runs/train would go")
    err = refusal(capsys, lambda: script.validated(script.build_parser(), TINY))
    assert "--out: cannot make folder 'runs/train': 'runs' is a file" in err, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--jobs", "0"], "argument --jobs: expected a positive integer, got '0'"),
        (["--timeout", "nan"], "argument --timeout: expected a finite number > 0, got 'nan'"),
        (["--sample", "-1"], "argument --sample: expected an integer ≥ 0, got '-1'"),
        (["--seed", "3"], "--seed draws the --sample"),
        (["--tests", "tests/test_losses.py", "--stages", "1"], "--tests and --stages exclude"),
        (["--rebuild-coverage", "--no-coverage"], "--rebuild-coverage and --no-coverage"),
        (["--list", "funcnn/losses.py", "--jobs", "1"], "--list prints a file's mutants"),
    ],
)
def test_mutation_flags_that_would_be_ignored_or_cannot_work_are_refused(
    capsys, monkeypatch, argv, message
):
    path = REPO / "scripts" / "mutation.py"
    spec = importlib.util.spec_from_file_location("mutation_script", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    err = refusal(capsys, lambda: module.main(argv))
    assert message in err, err


def test_cnn_writes_the_first_layer_kernels_and_its_running_statistics(tmp_path):
    out = tmp_path / "run"
    flags = ["--task", "digits", "--model", "cnn", "--epochs", "1", "--batch-size", "256"]
    result = train(*flags, "--no-progress", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "kernels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stats = checkpoint.restore(out / "model_state.ckpt")
    assert stats["batch_norm_2"]["mean"].shape == (16,)
    assert checkpoint.read_metadata(out / "params.ckpt")["config"]["model"] == "cnn"
