"""Resumable training: periodic checkpoints, a clean stop on SIGINT/SIGTERM, exact resume.

    manager = CheckpointManager(out / "checkpoints", keep=3)
    found = resume_latest(manager, like=fresh_state, config=config_dict)  # None → start fresh
    state, carry = (fresh_state, None) if found is None else (found[0], found[1]["carry"])
    with stop_on_signals() as stop:
        callback = checkpoint_callback(manager, every=500, stop=stop, config=config_dict)
        state, history = fit(state, ..., steps_per_dispatch=500, callback=callback, carry=carry)
    if stop.requested: ...                                             # checkpoint written

What makes the resume exact: the checkpoint holds the whole `TrainState` (params, optimizer
state, step, PRNG key), and `fit`'s data order is a pure function of `(data_key, epoch)` —
so the step counter fixes the position (epoch = ⌊step / steps_per_epoch⌋, index = step mod
steps_per_epoch), which is stored in the metadata too and cross-checked. The metadata's
"carry" is fit's `info.carry` (a `FitCarry`, stored as its `to_json()`): the history so
far, the interrupted epoch's running metric sums and step count, and the data key's bits.
Checkpoints are only taken between fused chunks, so a resumed run replays the very same
compiled chunks and reaches bit-identical parameters, and — given the carry back — a
bit-identical history, the interrupted epoch's means included.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from funcnn._validation import check_nonnegative_int
from funcnn.params import all_finite
from funcnn.train.checkpoint import CheckpointManager
from funcnn.train.loop import FitInfo

__all__ = [
    "StopRequest",
    "checkpoint_callback",
    "data_position",
    "merge_histories",
    "resume_latest",
    "stop_on_signals",
]

Callback = Callable[[Any, FitInfo], bool]


class StopRequest:
    """Set by `stop_on_signals` when a signal arrives; `signum` says which one (else None)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name


@contextlib.contextmanager
def stop_on_signals(
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[StopRequest]:
    """Turn the first SIGINT/SIGTERM into a stop request instead of killing the process.

    The handler only records the signal; the training loop sees `stop.requested` between
    fused chunks, writes a checkpoint and returns. A second signal restores the previous
    handlers and re-sends itself, so pressing Ctrl-C twice still aborts at once. Outside the
    main thread (where Python cannot install handlers) this yields a request that never fires.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def handle(signum: int, frame: Any) -> None:
        del frame
        if stop.requested:  # second signal: give up on the clean stop
            restore()
            signal.raise_signal(signum)
            return
        stop.signum = signum
        print(
            f"\nreceived {stop.name}: finishing the current chunk, then checkpointing "
            "(send it again to abort without a checkpoint)",
            flush=True,
        )

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield stop
    finally:
        restore()


def data_position(step: int, steps_per_epoch: int) -> dict[str, int]:
    """{"step", "epoch", "index"}: where step `step` sits in fit's epoch-by-epoch data order."""
    epoch, index = divmod(step, steps_per_epoch)
    return {"step": step, "epoch": epoch, "index": index}


def checkpoint_callback(
    manager: CheckpointManager,
    *,
    every: int = 0,
    stop: StopRequest | None = None,
    total_steps: int | None = None,
    config: Mapping[str, Any] | None = None,
    history: Mapping[str, list] | None = None,
) -> Callback:
    """A `fit` callback that checkpoints the TrainState and stops on request.

    After each fused chunk it saves when the step crossed a multiple of `every` (0: never
    periodically), when the run reached `total_steps`, or when `stop` was requested — and
    then returns `stop.requested`, which makes `fit` return. Metadata: the `config` (JSON),
    the data position from `data_position`, the per-epoch history so far (`history`,
    the part from before a resume that fit was not given as its carry, followed by fit's),
    and fit's `info.carry` (history merged the same way) under "carry", which `fit(...,
    carry=...)` takes back to resume exactly mid-epoch. Give `fit`
    `steps_per_dispatch=every` so chunks end exactly on checkpoint steps.

    A state with a non-finite floating-point leaf (a diverged run) is not saved — a warning
    says so — so the newest checkpoint on disk stays the last finite one and `keep` never
    pushes finite checkpoints out in favour of NaN ones.
    """
    every = check_nonnegative_int(every, "every")
    config = _as_json(config)
    last_saved = [-1]
    latest_history: list[Mapping[str, list]] = [{}]

    def callback(state: Any, info: FitInfo) -> bool:
        step = info.step
        latest_history[0] = info.carry.history
        stopping = stop is not None and stop.requested
        crossed = every > 0 and step // every > max(last_saved[0], 0) // every
        finished = total_steps is not None and step >= total_steps
        if (crossed or finished or stopping) and step != last_saved[0]:
            if not bool(all_finite(state)):
                warnings.warn(
                    f"not checkpointing step {step}: the state holds NaN or inf (the run "
                    f"diverged); the newest checkpoint in {manager.directory} is the last "
                    "finite one.",
                    stacklevel=2,
                )
                last_saved[0] = step
                return stopping
            merged = merge_histories(history or {}, latest_history[0])
            metadata = {
                "config": config,
                "position": data_position(step, info.steps_per_epoch),
                "history": merged,
            }
            metadata["carry"] = {**info.carry.to_json(), "history": merged}
            manager.save(step, state, metadata=metadata)
            last_saved[0] = step
        return stopping

    return callback


def resume_latest(
    manager: CheckpointManager,
    like: Any,
    *,
    config: Mapping[str, Any] | None = None,
    steps_per_epoch: int | None = None,
) -> tuple[Any, dict] | None:
    """(state, metadata) from the newest valid checkpoint, the state shaped like `like`;
    None if there is none.

    Corrupt newer files are skipped with a warning (see `CheckpointManager`). A checkpoint
    written under another `config`, or whose stored data position disagrees with its step,
    is a ValueError naming the differing fields: continuing it would not reproduce the run.
    """
    found = manager.restore_latest(like=like)
    if found is None:
        return None
    state, metadata, step = found
    stored_step = getattr(state, "step", None)  # a TrainState knows its step
    if stored_step is not None and int(stored_step) != step:
        raise ValueError(
            f"checkpoint {manager.path_for(step)} holds a state at step {int(stored_step)}; "
            "was the file renamed?"
        )
    saved_config = metadata.get("config", {})
    config = None if config is None else _as_json(config)
    if config is not None and saved_config != config:
        changed = sorted(
            k
            for k in set(saved_config) | set(config)
            if saved_config.get(k, "<unset>") != config.get(k, "<unset>")
        )
        details = ", ".join(
            f"{k}: {saved_config.get(k, '<unset>')!r} → {config.get(k, '<unset>')!r}"
            for k in changed
        )
        raise ValueError(
            f"cannot resume from {manager.path_for(step)}: it was written with a different "
            f"config ({details}). Use the same flags, or another --out to start afresh."
        )
    position = metadata.get("position")
    expected = None if steps_per_epoch is None else data_position(step, steps_per_epoch)
    if expected is not None and position != expected:
        raise ValueError(
            f"checkpoint {manager.path_for(step)} records data position {position}, but step "
            f"{step} with {steps_per_epoch} steps per epoch is {expected}."
        )
    return state, metadata


def merge_histories(before: Mapping[str, list], after: Mapping[str, list]) -> dict[str, list]:
    """Per-epoch histories of two parts of one run, concatenated key by key."""
    keys = list(before) + [k for k in after if k not in before]
    return {k: list(before.get(k, [])) + list(after.get(k, [])) for k in keys}


def _as_json(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config as it reads back from a checkpoint (tuples become lists, and so on)."""
    return json.loads(json.dumps(dict(config or {})))
