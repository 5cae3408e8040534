"""A killed training run resumes to bit-identical parameters (scripts/train.py --resume).

The subprocess runs run `scripts/train.py` through a small launcher that sends the signal
itself at a chosen checkpoint, so the test is deterministic rather than a race:
- SIGKILL arrives in the middle of writing a checkpoint (after half its bytes): nothing is
  cleaned up, exactly like `kill -9` or a lost machine;
- SIGTERM arrives while the run continues: it must finish the chunk, checkpoint, exit 143.
"""

import itertools
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import optim, train
from funcnn.train import checkpoint, resume
from funcnn.train.checkpoint import CheckpointManager

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--task", "xor", "--epochs", "5", "--checkpoint-every", "20", "--keep", "2"]
FLAGS += ["--no-progress", "--hidden", "8"]
TOTAL_STEPS = 100  # xor: 320 training examples / batch 16 = 20 steps per epoch

# Runs scripts/train.py after patching CheckpointManager.save to deliver a signal:
#   kill <k>: SIGKILL itself halfway through writing the first checkpoint after step k;
#   term <k>: SIGTERM itself right after writing the checkpoint of step k.
LAUNCHER = """
import os, runpy, signal, sys
import numpy as np
from funcnn.train import checkpoint

mode, at = sys.argv[1], int(sys.argv[2])
original_save = checkpoint.CheckpointManager.save

def half_written_then_killed(file, **members):
    file.write(b"PK" + os.urandom(1000))
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def save(self, step, tree, *, metadata=None):
    if mode == "kill" and step > at:
        np.savez = half_written_then_killed
    path = original_save(self, step, tree, metadata=metadata)
    if mode == "term" and step == at:
        os.kill(os.getpid(), signal.SIGTERM)
    return path

checkpoint.CheckpointManager.save = save
sys.argv = ["train.py", *sys.argv[3:]]
runpy.run_path(os.path.join(os.environ["PYTHONPATH"], "scripts", "train.py"), run_name="__main__")
"""


def launch(out: Path, *extra: str, mode: str = "none", at: int = 0) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "JAX_PLATFORMS": "cpu",
        # Later runs load the first run's compiled programs from disk instead of recompiling
        # (the same HLO gives the same executable, so this cannot mask a difference).
        "JAX_COMPILATION_CACHE_DIR": str(out.parent / "jax_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    command = [sys.executable, "-c", LAUNCHER, mode, str(at), *FLAGS, "--out", str(out), *extra]
    cwd = out.parent / "cwd"  # stays empty: the script may write only under --out
    cwd.mkdir(exist_ok=True)
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=240)
    return process.returncode, stdout, stderr


def final_state(out: Path):
    """The checkpointed TrainState at the last step, as nested dicts of arrays."""
    manager = CheckpointManager(out / "checkpoints", keep=2)
    assert manager.steps()[0] == TOTAL_STEPS
    return checkpoint.restore(manager.path_for(TOTAL_STEPS))


def epoch_rows(stdout: str) -> list[str]:
    rows = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    assert len(rows) == 5
    return rows


def assert_bitwise_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.dtype == y.dtype and np.asarray(x).tobytes() == np.asarray(y).tobytes()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted run (filling the compilation cache), then the SIGKILLed and the
    SIGTERMed run side by side (2 cores), then both resumes side by side."""
    root = tmp_path_factory.mktemp("resume")
    outs = {name: root / name for name in ("straight", "killed", "termed")}
    results = {"straight": finish(launch(outs["straight"]))}
    first = {
        "killed": launch(outs["killed"], mode="kill", at=40),
        "termed": launch(outs["termed"], mode="term", at=40),
    }
    results |= {name: finish(p) for name, p in first.items()}
    files = {
        name: sorted(p.name for p in (outs[name] / "checkpoints").iterdir())
        for name in ("killed", "termed")
    }
    # Also corrupt the newest complete checkpoint of the killed run (a bad disk block):
    # --resume must warn, skip it and fall back to the one before.
    newest = outs["killed"] / "checkpoints" / "ckpt_0000000040.npz"
    newest.write_bytes(newest.read_bytes()[:-100])
    second = {name: launch(outs[name], "--resume") for name in ("killed", "termed")}
    results |= {f"{name} resumed": finish(p) for name, p in second.items()}
    return outs, results, files


def test_scripts_write_only_under_out_and_never_eval(runs):
    outs, _, _ = runs
    assert list((outs["straight"].parent / "cwd").iterdir()) == []
    expected = {"checkpoints", "history.png", "metrics.json", "params.ckpt"}
    for out in outs.values():
        assert {p.name for p in out.iterdir()} <= expected
    for script in (REPO / "scripts").glob("*.py"):
        source = script.read_text()
        for forbidden in (r"\beval\(", r"\bexec\(", r"\bpickle\b", r"allow_pickle=True"):
            assert not re.search(forbidden, source), f"{script.name} matches {forbidden}"


def test_uninterrupted_run_finishes(runs):
    _, results, _ = runs
    code, stdout, stderr = results["straight"]
    assert code == 0, stderr
    assert "final test_accuracy" in stdout


def test_sigkill_mid_write_leaves_only_complete_checkpoints(runs):
    _, results, files = runs
    code, _, _ = results["killed"]
    assert code == -signal.SIGKILL
    # keep=2: steps 20 and 40 are complete; the write of step 60 died as a temp file
    assert len(files["killed"]) == 3 and files["killed"][0].startswith(".ckpt_0000000060.npz.")
    assert files["killed"][1:] == ["ckpt_0000000020.npz", "ckpt_0000000040.npz"]


def test_resume_after_sigkill_is_bit_identical(runs):
    outs, results, _ = runs
    code, stdout, stderr = results["killed resumed"]
    assert code == 0, stderr
    assert "skipping corrupt checkpoint" in stderr and "ckpt_0000000040" in stderr
    # said once: the flag pre-check reads the same folder before the run, silently
    assert stderr.count("skipping corrupt checkpoint") == 1, stderr
    assert "resume: step 20" in stdout
    assert_bitwise_equal(final_state(outs["killed"]), final_state(outs["straight"]))
    # the epoch table spans the interruption: same rows as the uninterrupted run
    assert epoch_rows(stdout) == epoch_rows(results["straight"][1])
    params = checkpoint.restore(outs["killed"] / "params.ckpt")
    assert_bitwise_equal(params, checkpoint.restore(outs["straight"] / "params.ckpt"))


def test_sigterm_checkpoints_and_exits_cleanly(runs):
    _, results, files = runs
    code, stdout, stderr = results["termed"]
    assert code == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert "received SIGTERM" in stdout and "stopped by SIGTERM at step 60" in stdout
    # the signal came after step 40's checkpoint; the next chunk (to 60) finished and was saved
    assert files["termed"] == ["ckpt_0000000040.npz", "ckpt_0000000060.npz"]
    assert "final test_accuracy" not in stdout  # an unfinished run reports no results
    # --no-progress still prints one row per epoch as it ends, not only after a whole run
    assert [row.split()[1] for row in stdout.splitlines() if row.startswith("epoch ")] == [
        "1",
        "2",
        "3",
    ]


def test_resume_after_sigterm_is_bit_identical(runs):
    outs, results, _ = runs
    code, stdout, stderr = results["termed resumed"]
    assert code == 0, stderr
    assert "resume: step 60" in stdout
    assert_bitwise_equal(final_state(outs["termed"]), final_state(outs["straight"]))
    assert epoch_rows(stdout) == epoch_rows(results["straight"][1])


# ----------------------------------------------------------------------------- in-process


def test_stop_on_signals_records_then_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with resume.stop_on_signals() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_second_sigint_aborts_at_once():
    with pytest.raises(KeyboardInterrupt):
        with resume.stop_on_signals() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.requested
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def fit_info(step, history=None, per_epoch=7):
    """The `train.FitInfo` fit passes its callback after a chunk ending at `step`."""
    history = {} if history is None else history
    carry = train.FitCarry(history, {}, step % per_epoch, None)
    epoch = (step - 1) // per_epoch
    return train.FitInfo(epoch, step, per_epoch, step % per_epoch == 0, history, carry, None)


def test_callback_saves_on_multiples_at_the_end_and_on_stop(tmp_path):
    manager = CheckpointManager(tmp_path, keep=10)
    stop = resume.StopRequest()
    callback = resume.checkpoint_callback(
        manager, every=10, stop=stop, total_steps=45, config={"hidden": (8,)}
    )
    state = {"w": jnp.ones(2)}
    for step in [5, 10, 15, 25, 30]:
        assert callback(state, fit_info(step)) is False
    assert manager.steps() == [30, 25, 10]  # 25 crossed 20 (chunks need not end on it)
    stop.signum = signal.SIGTERM
    assert callback(state, fit_info(33)) is True
    assert manager.steps()[0] == 33
    metadata = checkpoint.read_metadata(manager.path_for(33))
    assert metadata == {
        "config": {"hidden": [8]},
        "position": {"step": 33, "epoch": 4, "index": 5},
        "history": {},
        "carry": {"history": {}, "epoch_sums": {}, "epoch_steps": 5, "data_key": None},
    }
    finishing = resume.checkpoint_callback(manager, every=0, total_steps=45)
    assert finishing(state, fit_info(40)) is False
    assert manager.steps()[0] == 33  # every=0: no periodic checkpoints
    assert finishing(state, fit_info(45)) is False
    assert manager.steps()[0] == 45


def test_resume_refuses_another_config(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    state = {"w": jnp.ones(2)}
    manager.save(20, state, metadata={"config": {"lr": 0.1, "epochs": 5}})
    found_state, metadata = resume.resume_latest(
        manager, like=state, config={"epochs": 5, "lr": 0.1}
    )
    assert metadata["config"] == {"lr": 0.1, "epochs": 5} and found_state["w"].tolist() == [1, 1]
    with pytest.raises(ValueError, match=r"different config \(lr: 0\.1 → 0\.2\)"):
        resume.resume_latest(manager, like=state, config={"lr": 0.2, "epochs": 5})
    assert resume.resume_latest(CheckpointManager(tmp_path / "empty"), like=state) is None


def test_checkpoints_carry_the_history_across_a_resume(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    before = {"epoch": [1], "train_loss": [0.5]}
    callback = resume.checkpoint_callback(manager, every=7, history=before)
    fit_history = {"epoch": [2], "train_loss": [0.25]}
    callback({"w": jnp.ones(1)}, fit_info(14, fit_history))
    callback({"w": jnp.ones(1)}, fit_info(21, fit_history))  # no new entry since step 14
    saved = checkpoint.read_metadata(manager.path_for(21))["history"]
    assert saved == {"epoch": [1, 2], "train_loss": [0.5, 0.25]}


# ------------------------------------------------- exact resume at any step, through the API


def _noisy_loss(params, batch, key):
    """Linear regression with a dropout-like random mask, so the RNG matters too."""
    x, y = batch
    keep = jax.random.bernoulli(key, 0.8, x.shape)
    err = (x * keep) @ params["w"] + params["b"] - y
    return jnp.mean(err**2), {"mae": jnp.mean(jnp.abs(err))}


API_OPTIMIZER = optim.adam(optim.cosine_decay(0.05, 28))  # one object: fit compiles once


def _api_setup():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((37, 3)).astype(np.float32)  # batch 5: 7 steps per epoch
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)
    params = {"w": jnp.zeros((3,), jnp.float32), "b": jnp.zeros((), jnp.float32)}
    state = train.init_state(params, API_OPTIMIZER, jax.random.key(3))
    # no data_key: the default order must survive the resume through the carry
    kwargs = dict(batch_size=5, epochs=4, steps_per_dispatch=2, progress=False)
    return state, API_OPTIMIZER, (x, y), kwargs


@pytest.fixture(scope="module")
def straight_api_run(tmp_path_factory):
    """The uninterrupted run, checkpointed after every 2-step chunk (keep all)."""
    state, opt, data, kwargs = _api_setup()
    manager = CheckpointManager(tmp_path_factory.mktemp("straight"), keep=1000)
    callback = resume.checkpoint_callback(manager, every=2)
    final, history = train.fit(state, _noisy_loss, opt, data, callback=callback, **kwargs)
    return manager, final, history


def _without_time(history):
    return {k: v for k, v in history.items() if k != "time"}


@pytest.mark.parametrize("resume_at", [2, 9, 11, 13, 20, 27])
def test_fit_resumes_exactly_at_mid_epoch_steps_history_included(
    tmp_path, straight_api_run, resume_at
):
    """Checkpointed after every 2-step chunk (chunks restart at each 7-step epoch): resumed
    from step `resume_at` with the checkpoint's carry, fit returns the uninterrupted run's
    params, optimizer state, key and whole history, the interrupted epoch's means included."""
    state, opt, data, kwargs = _api_setup()
    manager, straight, history = straight_api_run
    assert resume_at in manager.steps() and resume_at % 7  # mid-epoch
    # A fresh process would rebuild `state` as its template and read the newest checkpoint.
    copy = CheckpointManager(tmp_path / "copy", keep=1000)
    copy.path_for(resume_at).write_bytes(manager.path_for(resume_at).read_bytes())
    restored, metadata = resume.resume_latest(copy, like=state, steps_per_epoch=7)
    assert int(restored.step) == resume_at
    resumed, resumed_history = train.fit(
        restored, _noisy_loss, opt, data, carry=metadata["carry"], **kwargs
    )
    assert_bitwise_equal(resumed, straight)
    assert _without_time(resumed_history) == _without_time(history)  # floats, bit for bit
    # Wall time goes on from the carried epochs' last time: never backwards across the resume.
    times = resumed_history["time"]
    assert len(times) == 4 and all(b >= a for a, b in itertools.pairwise(times))
    carried = len(metadata["carry"]["history"].get("time", []))
    assert times[:carried] == history["time"][:carried]


def test_fit_refuses_a_resumed_state_without_data_key_or_carry(tmp_path):
    state, opt, data, kwargs = _api_setup()
    part, _ = train.fit(state, _noisy_loss, opt, data, callback=lambda s, i: True, **kwargs)
    assert int(part.step) == 2
    with pytest.raises(ValueError, match="step 2 but neither data_key nor carry"):
        train.fit(part, _noisy_loss, opt, data, **kwargs)
    carry = {"history": {}, "epoch_sums": {}, "epoch_steps": 3, "data_key": None}
    with pytest.raises(ValueError, match="carry does not belong to a state at step 2"):
        train.fit(part, _noisy_loss, opt, data, carry=carry, **kwargs)
    # Either sign alone gives it away: the epoch position agrees (2 = 2 mod 7), but the
    # carried history already ends at step 7.
    carry = {"history": {"step": [7.0]}, "epoch_sums": {}, "epoch_steps": 2, "data_key": None}
    with pytest.raises(ValueError, match="carry does not belong to a state at step 2"):
        train.fit(part, _noisy_loss, opt, data, carry=carry, **kwargs)


# ----------------------------------------- exact resume mid-epoch, through scripts/train.py

DIGITS = ["--task", "digits", "--epochs", "3", "--hidden", "32", "--checkpoint-every", "3"]
DIGITS += ["--keep", "1000", "--no-progress"]  # 1437 examples / 64: 22 steps per epoch


def test_script_resumed_from_mid_epoch_step_62_prints_and_ends_bit_identically(tmp_path):
    """The issue's case: resumed from step 62 (18 steps into epoch 3), the printed epoch
    rows — epoch 3's means included — metrics.json's history and the final params equal the
    uninterrupted run's bit for bit."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "jax_cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

    def train_script(out, *extra):
        command = [sys.executable, str(REPO / "scripts" / "train.py"), *DIGITS, "--out", out]
        done = subprocess.run(
            [*command, *extra], env=env, capture_output=True, text=True, timeout=240
        )
        assert done.returncode == 0, done.stderr
        return [line for line in done.stdout.splitlines() if line.startswith("epoch ")]

    straight_rows = train_script(str(tmp_path / "straight"))
    assert len(straight_rows) == 3
    # A fresh --out holding only the checkpoints up to step 62, as after a crash there.
    resumed_dir = tmp_path / "resumed" / "checkpoints"
    resumed_dir.mkdir(parents=True)
    for path in (tmp_path / "straight" / "checkpoints").glob("ckpt_*.npz"):
        if int(path.stem.split("_")[1]) <= 62:
            (resumed_dir / path.name).write_bytes(path.read_bytes())
    assert max(int(p.stem.split("_")[1]) for p in resumed_dir.iterdir()) == 62
    resumed_rows = train_script(str(tmp_path / "resumed"), "--resume")
    assert resumed_rows == straight_rows
    for name in ("params.ckpt", "checkpoints/ckpt_0000000066.npz"):
        assert_bitwise_equal(
            checkpoint.restore(tmp_path / "resumed" / name),
            checkpoint.restore(tmp_path / "straight" / name),
        )
    straight_json, resumed_json = (
        json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("straight", "resumed")
    )
    assert resumed_json["test"] == straight_json["test"]
    del straight_json["history"]["time"], resumed_json["history"]["time"]
    assert resumed_json["history"] == straight_json["history"]


def test_fit_with_model_state_resumes_bit_exactly_from_a_checkpoint(tmp_path):
    """batch_norm's running statistics are saved with the TrainState and restored: a run
    stopped at step 3 (mid-epoch) and resumed from its checkpoint ends bit-identical to the
    uninterrupted run — params, optimizer state, key, model state and history."""
    from funcnn import nn
    from funcnn.train import objectives

    model = nn.serial(nn.dense(4), nn.batch_norm(), nn.activation(jnp.tanh), nn.dense(1))
    x = np.random.default_rng(5).standard_normal((20, 3)).astype(np.float32)
    y = np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)
    opt = optim.adam(0.01)
    loss = objectives.supervised_loss(model.apply, "regression", stateful=True)

    def fresh():
        params, _ = model.init(jax.random.key(0), (-1, 3))
        return train.init_state(params, opt, jax.random.key(1), nn.initial_state(model, (-1, 3)))

    kwargs = dict(batch_size=4, epochs=2, steps_per_dispatch=1, progress=False)
    straight, history = train.fit(fresh(), loss, opt, (x, y), **kwargs)
    manager = CheckpointManager(tmp_path, keep=2)
    stop_at_3 = resume.checkpoint_callback(manager, every=1)
    train.fit(
        fresh(),
        loss,
        opt,
        (x, y),
        callback=lambda s, i: stop_at_3(s, i) or i.step == 3,
        **kwargs,
    )
    restored, metadata = resume.resume_latest(manager, like=fresh(), steps_per_epoch=5)
    assert int(restored.step) == 3
    resumed, resumed_history = train.fit(
        restored, loss, opt, (x, y), carry=metadata["carry"], **kwargs
    )
    assert_bitwise_equal(resumed, straight)
    assert not np.array_equal(straight.model_state["batch_norm_1"]["mean"], np.zeros(4))
    assert _without_time(resumed_history) == _without_time(history)
