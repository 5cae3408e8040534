"""Start N cooperating processes on this machine and supervise them.

    python -m funcnn.scale.launch --processes 2 [--timeout 600] -- script.py --its --flags
    python -m funcnn.scale.launch --processes 2 -- -m some.module --flags

Picks a free TCP port on 127.0.0.1 for the coordinator (hosted by process 0), then starts
`python <args…>` N times with FUNCNN_COORDINATOR, FUNCNN_NUM_PROCESSES and FUNCNN_PROCESS_ID
set (the script calls `funcnn.scale.distributed.initialize_from_env()`). Supervision, so that no
failure becomes a hang:

* a process that exits non-zero or is killed by a signal: the others get SIGTERM, then
  SIGKILL after `grace` seconds, and the launcher exits non-zero naming that process;
* `--timeout S`: after S seconds the whole group is stopped the same way (exit code 124).

Each process runs in its own session, so a stop reaches the processes it spawned as well.
For several machines use your scheduler (SLURM, Kubernetes, GCE TPU VMs) instead: it plays
this role, and docs/distributed.md says which variables to set.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from funcnn._validation import check_positive_int
from funcnn.scale.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID

__all__ = ["LaunchError", "free_port", "launch", "main"]

TIMEOUT_EXIT_CODE = 124  # what coreutils' `timeout` returns


class LaunchError(RuntimeError):
    """A launched process failed, or the group ran past its timeout."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _describe(index: int, proc: subprocess.Popen) -> str:
    code = proc.returncode
    if code is not None and code < 0:
        how = f"was killed by {signal.Signals(-code).name}"
    else:
        how = f"exited with code {code}"
    return f"process {index} (pid {proc.pid}) {how}"


def _stop(procs: Sequence[subprocess.Popen], grace: float) -> None:
    """SIGTERM every live process group, then SIGKILL whatever is left after `grace` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.05)
    for proc in procs:
        proc.wait()


def launch(
    args: Sequence[str],
    *,
    processes: int,
    timeout: float | None = None,
    grace: float = 5.0,
    env: dict[str, str] | None = None,
    poll: float = 0.1,
) -> None:
    """Run `python *args` as `processes` cooperating processes; return when all exit 0.

    Raises LaunchError (message names the process and its exit code or signal) as soon as
    one fails — after stopping the rest within `grace` seconds — or when `timeout` seconds
    pass. The worst-case wall time after a failure is poll + 2·grace.
    """
    check_positive_int(processes, "processes")
    if not args:
        raise ValueError("args must name what to run, e.g. ['train.py', '--steps', '10'].")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    base = dict(os.environ if env is None else env)
    base[ENV_COORDINATOR] = f"127.0.0.1:{free_port()}"
    base[ENV_NUM_PROCESSES] = str(processes)
    procs: list[subprocess.Popen] = []
    try:
        for index in range(processes):
            child_env = dict(base, **{ENV_PROCESS_ID: str(index)})
            procs.append(
                subprocess.Popen([sys.executable, *args], env=child_env, start_new_session=True)
            )
        start = time.monotonic()
        while True:
            failed = [(i, p) for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed:
                index, proc = failed[0]
                message = _describe(index, proc)
                _stop(procs, grace)
                raise LaunchError(f"{message}; stopped the other {processes - 1}.")
            if all(p.returncode == 0 for p in procs):
                return
            if timeout is not None and time.monotonic() - start > timeout:
                running = [i for i, p in enumerate(procs) if p.poll() is None]
                _stop(procs, grace)
                raise LaunchError(
                    f"timeout: processes {running} still running after {timeout:g} s; "
                    "stopped them all."
                )
            time.sleep(poll)
    except BaseException:
        _stop(procs, grace)  # Ctrl-C, or a failure to start: leave no orphans behind
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m funcnn.scale.launch --processes N [--timeout S] -- args…`."""
    parser = argparse.ArgumentParser(
        prog="python -m funcnn.scale.launch",
        description="Run a Python script as N jax.distributed processes on this machine.",
    )
    parser.add_argument("--processes", type=int, required=True, help="number of processes")
    parser.add_argument("--timeout", type=float, default=None, help="stop all after S seconds")
    parser.add_argument(
        "--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL"
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- script.py args…")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    if ns.processes < 1:
        parser.error(f"--processes must be ≥ 1, got {ns.processes}.")
    if not args:
        parser.error("give the script to run after --, e.g. -- train.py --steps 10.")
    try:
        launch(args, processes=ns.processes, timeout=ns.timeout, grace=ns.grace)
    except LaunchError as err:
        print(f"funcnn.scale.launch: {err}", file=sys.stderr)
        return TIMEOUT_EXIT_CODE if str(err).startswith("timeout") else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
