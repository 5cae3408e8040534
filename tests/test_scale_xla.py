"""funcnn.scale.xla.reuse_cpu_buffers: glibc keeps XLA:CPU's large per-call buffers in its heap.

The settings are checked against glibc's <malloc.h> (M_TRIM_THRESHOLD = −1, M_MMAP_MAX = −4,
M_ARENA_MAX = −8), and the effect in fresh processes by the kernel's own count of minor page
faults: a jitted call whose 64 MiB temporary is mmap'ed afresh faults in all its 16 384 pages
every time; kept in the heap, the pages are already mapped.
"""

import json
import os
import resource
import subprocess
import sys
import types
from pathlib import Path

import pytest

from funcnn.scale import xla

ROOT = Path(__file__).resolve().parents[1]

GLIBC_MALLOPT = {"M_TRIM_THRESHOLD": -1, "M_MMAP_MAX": -4, "M_ARENA_MAX": -8}

FAULTS = """
import json, resource, sys
from funcnn.scale import xla
applied = xla.reuse_cpu_buffers() if sys.argv[1] == "reuse" else None
import jax, jax.numpy as jnp
f = lambda a, v: jnp.sin(a[:, None] * a[None, :]) @ v  # (4096, 4096): a 64 MiB temporary
a, v = jnp.linspace(0.0, 1.0, 4096), jnp.ones((4096,))
compiled = jax.jit(f).lower(a, v).compile()
faults = []
for _ in range(30):  # reuse is not every call (see the docstring): give it 30 chances
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(compiled(a, v))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
temp = compiled.memory_analysis().temp_size_in_bytes
print(json.dumps({"applied": applied, "pages": temp / resource.getpagesize(), "faults": faults}))
"""


class FakeLibc:
    """Records mallopt calls; `glibc=False` lacks glibc's gnu_get_libc_version."""

    def __init__(self, glibc: bool):
        self.calls: list[tuple[int, int]] = []
        if glibc:
            self.gnu_get_libc_version = lambda: b"2.36"

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_reuse_cpu_buffers_sets_glibcs_three_options(monkeypatch):
    libc = FakeLibc(glibc=True)
    monkeypatch.setattr(xla.ctypes, "CDLL", lambda path: libc)
    assert xla.reuse_cpu_buffers() is True
    assert sorted(libc.calls) == sorted(
        [
            (GLIBC_MALLOPT["M_MMAP_MAX"], 0),  # no mmap'ed blocks
            (GLIBC_MALLOPT["M_TRIM_THRESHOLD"], 2**30),  # freed memory stays up to 1 GiB
            (GLIBC_MALLOPT["M_ARENA_MAX"], 1),  # threads share the brk-grown main arena
        ]
    )


def test_reuse_cpu_buffers_changes_nothing_without_glibc(monkeypatch):
    libc = FakeLibc(glibc=False)
    monkeypatch.setattr(xla.ctypes, "CDLL", lambda path: libc)
    assert xla.reuse_cpu_buffers() is False
    assert libc.calls == []

    def missing(path):
        raise OSError(f"{path}: cannot open shared object file")

    monkeypatch.setattr(xla.ctypes, "CDLL", missing)
    assert xla.reuse_cpu_buffers() is False


def test_reuse_cpu_buffers_reports_a_refused_option(monkeypatch):
    libc = types.SimpleNamespace(gnu_get_libc_version=lambda: b"2.36", mallopt=lambda p, v: 0)
    monkeypatch.setattr(xla.ctypes, "CDLL", lambda path: libc)
    assert xla.reuse_cpu_buffers() is False


def faults_per_call(mode: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("XLA_FLAGS", None)
    env.pop("GLIBC_TUNABLES", None)
    for var in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX"):
        env.pop(var, None)
    done = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(os, "confstr"),
    reason="glibc's allocator and Linux's page-fault count",
)
def test_a_large_temporary_is_refaulted_every_call_unless_kept():
    if "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""):
        pytest.skip("not glibc")
    default, reuse = faults_per_call("default"), faults_per_call("reuse")
    pages = default["pages"]
    assert pages == reuse["pages"] >= 16384  # XLA's one temp buffer: the 64 MiB matrix
    # glibc as it comes: every call mmaps the buffer afresh and faults in each page.
    assert min(default["faults"]) >= 0.9 * pages, default
    # Kept in the heap: some call finds its pages mapped (glibc's memalign can still leave a
    # freed block a few bytes short of the next request, so not every call; see the docstring).
    assert reuse["applied"] is True
    assert min(reuse["faults"]) <= 0.01 * pages, reuse
    assert resource.getpagesize() * pages >= 64 * 2**20
