"""SIGKILL at random moments and at every stage of a checkpoint write, 20 times in one run.

One supervisor process imports JAX and funcnn once (without starting a backend) and forks a
fresh training process per trial, which resumes from the newest valid checkpoint, trains a
tiny model while checkpointing after every step, and is killed with SIGKILL:
- at a random moment (possibly in the middle of writing a checkpoint), or
- at a named stage of the k-th write (`checkpoint.stage_hook`): after the temporary file is
  written and fsync'ed but before the rename, after the rename, or inside the folder fsync;
- sometimes the newest complete checkpoint is then torn (truncated) by hand, as a bad disk.
After each kill the next process must resume from the newest valid checkpoint, warn naming
every partial or torn file it skips, and the run finally finishing must equal an
uninterrupted run bit for bit: params, optimizer state, RNG key, and the whole history.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from funcnn.train import checkpoint

REPO = Path(__file__).resolve().parents[1]
TRIALS = 20
STEPS_PER_EPOCH, EPOCHS = 7, 20  # 140 steps, a checkpoint after each

SUPERVISOR = r'''
import hashlib, json, os, random, signal, sys, time
started = time.perf_counter()
from pathlib import Path

import jax, jax.numpy as jnp, numpy as np   # imported, no backend started: safe to fork
from funcnn import optim, train
from funcnn.train import checkpoint, resume

root, seed, trials, epochs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)

def loss(params, batch, key):
    x, y = batch
    keep = jax.random.bernoulli(key, 0.8, x.shape)
    err = (x * keep) @ params["w"] + params["b"] - y
    return jnp.mean(err**2), {"mae": jnp.mean(jnp.abs(err))}

def train_until_done_or_killed(out, ready_fd, kill_stage, kill_at):
    """The body of one forked training process."""
    if kill_stage is not None:
        seen = [0]
        def hook(stage, path):
            if stage == kill_stage:
                seen[0] += 1
                if seen[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.stage_hook = hook
    data_rng = np.random.default_rng(12)
    x = data_rng.standard_normal((37, 3)).astype(np.float32)  # batch 5: 7 steps per epoch
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)
    opt = optim.adam(optim.cosine_decay(0.05, 7 * epochs))
    params = {"w": jnp.zeros((3,), jnp.float32), "b": jnp.zeros((), jnp.float32)}
    state = train.init_state(params, opt, jax.random.key(3))
    manager = checkpoint.CheckpointManager(out / "checkpoints", keep=3)
    found = resume.resume_latest(manager, like=state, steps_per_epoch=7)
    carry = None
    if found is not None:
        state, carry = found[0], found[1]["carry"]
    print(f"resume: step {int(state.step)}", flush=True)
    sys.stderr.flush()
    saving = resume.checkpoint_callback(manager, every=1)

    ready = [False]

    def callback(state, info):
        stop = saving(state, info)
        if not ready[0]:  # compiled and checkpointing: random kills may start
            os.write(ready_fd, b"r")
            os.close(ready_fd)
            ready[0] = True
        return stop

    state, history = train.fit(
        state, loss, opt, (x, y), batch_size=5, epochs=epochs, steps_per_dispatch=1,
        progress=False, carry=carry, callback=callback,
    )
    (out / "history.json").write_text(json.dumps(history))

def trial(out, name, kill_stage=None, kill_at=0, kill_after=None):
    """Fork one training process; SIGKILL it after `kill_after` s if given; its exit status."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        for fd, suffix in ((1, "out"), (2, "err")):
            f = os.open(out / f"{name}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(f, fd)
        try:
            train_until_done_or_killed(out, write_fd, kill_stage, kill_at)
        except BaseException as err:
            print(repr(err), file=sys.stderr, flush=True)
            os._exit(3)
        os._exit(0)
    os.close(write_fd)
    os.read(read_fd, 1)  # after the first checkpoint (or b"" if it died before)
    os.close(read_fd)
    ready = time.perf_counter()
    if kill_after is not None:
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return rc, time.perf_counter() - ready

def listing(out):
    """Every file in the checkpoint folder with a digest of its bytes."""
    folder = out / "checkpoints"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}

rc, seconds = trial(root / "reference", "run")
report = {"reference": rc, "trials": []}
step_seconds = seconds / (7 * epochs - 1)  # this machine's pace: random kills within ~8 steps
out = root / "chain"
for i in range(trials):
    kind = ["random", "temp_written", "renamed", "dir_fsync"][i % 4]
    if kind == "random":
        rc, _ = trial(out, f"t{i}", kill_after=rng.uniform(0.0, 8 * step_seconds))
    else:
        rc, _ = trial(out, f"t{i}", kill_stage=kind, kill_at=rng.randint(1, 5))
    files = listing(out)
    torn = None
    if i % 5 == 2:  # tear the newest complete checkpoint, as a bad disk block would
        torn = sorted(f for f in files if f.startswith("ckpt_"))[-1]
        data = (out / "checkpoints" / torn).read_bytes()
        (out / "checkpoints" / torn).write_bytes(data[: rng.randint(1, len(data) - 1)])
        files = listing(out)
    report["trials"].append({"kind": kind, "rc": rc, "files": files, "torn": torn})
report["final"], _ = trial(out, f"t{trials}")
report["seconds"] = time.perf_counter() - started
print(json.dumps(report))
'''


def test_sigkill_anywhere_twenty_times_then_resume_bit_identically(tmp_path):
    for name in ("reference", "chain"):
        (tmp_path / name).mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "jax_cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    args = [str(tmp_path), "0", str(TRIALS), str(EPOCHS)]
    done = subprocess.run(
        [sys.executable, "-c", SUPERVISOR, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    chain = tmp_path / "chain"

    def output(i):
        return (chain / f"t{i}.out").read_text(), (chain / f"t{i}.err").read_text()

    assert report["reference"] == 0, (tmp_path / "reference" / "run.err").read_text()
    kinds = [t["kind"] for t in report["trials"]]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "random": 5,
        "temp_written": 5,
        "renamed": 5,
        "dir_fsync": 5,
    }
    resumed_at, torn_digests = [], {}  # a torn file stays torn until a later save replaces it
    for i, t in enumerate(report["trials"]):
        assert t["rc"] == -signal.SIGKILL, (t, output(i))
        if t["torn"] is not None:
            torn_digests[t["torn"]] = t["files"][t["torn"]]
        torn = {f for f, digest in t["files"].items() if torn_digests.get(f) == digest}
        steps = sorted(
            int(m[1])
            for f in t["files"]
            if (m := re.match(r"ckpt_(\d+)\.npz$", f)) and f not in torn
        )
        temps = [f for f in t["files"] if f.endswith(".tmp")]
        if t["kind"] == "temp_written":  # killed between the fsync'ed temp file and the rename
            assert len(temps) == 1
        if t["kind"] in ("renamed", "dir_fsync"):  # the renamed file is complete and counts
            assert not temps
        stdout, stderr = output(i + 1)
        # the next process resumes from the newest checkpoint that verifies …
        expected = steps[-1] if steps else 0
        assert f"resume: step {expected}\n" in stdout, (t, stdout, stderr)
        resumed_at.append(expected)
        # … naming each partial temp file it removes and each torn file it skips
        for temp in temps:
            assert f"removing {chain / 'checkpoints' / temp}: a partial checkpoint" in stderr
        for name in torn:
            if int(name[5:15]) > expected:  # newer than the one resumed: read and skipped
                assert re.search(f"skipping corrupt checkpoint: .*{name}", stderr), stderr
    assert report["final"] == 0, output(TRIALS)
    assert max(resumed_at) < STEPS_PER_EPOCH * EPOCHS  # every kill landed before the end
    assert len(set(resumed_at)) >= 10  # the kills landed at many different steps

    total = STEPS_PER_EPOCH * EPOCHS
    name = f"checkpoints/ckpt_{total:010d}.npz"
    final = checkpoint.restore(chain / name)
    reference = checkpoint.restore(tmp_path / "reference" / name)
    assert jax.tree.structure(final) == jax.tree.structure(reference)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(reference), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    histories = [
        json.loads((d / "history.json").read_text()) for d in (chain, tmp_path / "reference")
    ]
    for h in histories:
        del h["time"]
    assert histories[0] == histories[1] and len(histories[0]["epoch"]) == EPOCHS
