"""Multi-output loop fusion: whether XLA computes several same-shaped results in one pass.

An optimizer step writes three arrays per leaf (θ, m, v) that depend elementwise on the same
four inputs (θ, m, v, g). Written as three independent expressions of those inputs they are
*siblings*, and a compiler that does multi-output fusion emits one loop for all three:
7 memory accesses per parameter instead of the ~10 of three separate loops.

XLA:GPU and XLA:TPU always fuse siblings. XLA:CPU (jaxlib 0.10.x) does so only when the
backend option ``xla_cpu_use_multi_output_fusion`` is set, and that option can only be given
through the ``XLA_FLAGS`` environment variable *before* JAX creates its CPU client (the first
array or compilation). `enable_cpu_multi_output_fusion()` sets it;
`sibling_fusion_expected()` is the documented rule `optim.scale_by_adam(fused=None)` follows
(it reads the backend name and ``XLA_FLAGS``, compiles nothing); `fuses_sibling_loops()` is a
diagnostic that compiles a probe and reports what the backend really does.

Opt-in, not by default: under this option jaxlib 0.10's XLA:CPU aborts the process while
compiling two sibling scatters that share their indices (`funcnn._cpu_fusion` says more), so
`import funcnn` sets it only with ``FUNCNN_CPU_FUSION=1``, and this module's
`enable_cpu_multi_output_fusion()` sets it when called. If JAX's CPU backend was already
running when the option was set (an array made first), it cannot take effect in this
process: the first optimizer traced with ``fused=None`` then finds out (one probe compile),
warns once naming the fix, and uses the textbook form, which is the fast one without fusion.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import warnings

import jax
import jax.numpy as jnp

from funcnn import _cpu_fusion

__all__ = [
    "MULTI_OUTPUT_FUSION_OPTION",
    "enable_cpu_multi_output_fusion",
    "fuses_sibling_loops",
    "reuse_cpu_buffers",
    "sibling_fusion_expected",
]

MULTI_OUTPUT_FUSION_OPTION = _cpu_fusion.MULTI_OUTPUT_FUSION_OPTION
"""The XLA:CPU backend option that turns on multi-output (sibling) loop fusion."""
_flags_ask_for_fusion = _cpu_fusion.flags_ask_for_fusion


def enable_cpu_multi_output_fusion() -> None:
    """Ask XLA:CPU to fuse sibling loops: call it before the first JAX computation.

    Adds ``xla_cpu_use_multi_output_fusion`` to ``--xla_backend_extra_options`` in
    ``XLA_FLAGS`` (keeping any flags already there; idempotent). XLA reads the variable once,
    when JAX creates its backend (the first array, `jax.devices()` or compilation), and JAX
    has no public way to tell whether that has happened, so this only edits the variable:
    called too late it affects subprocesses but not this process, which keeps XLA:CPU's
    default (`fuses_sibling_loops()` tells which, by compiling a probe). Harmless on GPU/TPU,
    which fuse siblings anyway. Caution: under this option jaxlib 0.10's XLA:CPU aborts the
    process when it compiles two sibling scatters that share their indices
    (`a.at[i].set(u), b.at[i].set(w)` in one jit); funcnn's own code avoids them.
    """
    _cpu_fusion.enable()


# glibc's <malloc.h> mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_KEEP_FREED_BYTES = 1 << 30


def reuse_cpu_buffers() -> bool:
    """Keep XLA:CPU's large per-call buffers in glibc's heap; call it first thing in a process.

    XLA:CPU allocates each call's temporaries as one buffer (the transformer LM train step of
    `benchmarks/transformer_hlo.py`: 74 MiB) and frees it when the call returns. glibc's
    malloc serves a block above its mmap threshold (adaptive, at most 32 MiB) with a fresh
    `mmap` and unmaps it on free, so every call page-faults and zeroes every page of the
    buffer again: 19 000 minor faults per step there, the cause of the jitted loss + grad
    costing 1.3–1.5× the sum of its sublayers timed alone (each under 32 MiB). This sets,
    with glibc's `mallopt`, for the whole process:

        M_MMAP_MAX = 0            no block is mmap'ed; all come from the heap
        M_TRIM_THRESHOLD = 1 GiB  freed memory stays in the heap for the next call
        M_ARENA_MAX = 1           new threads allocate from the main (brk-grown) arena — a
                                  thread arena holds at most 64 MiB and would mmap the rest

    Measured on that step (150 steps, fresh batches): minor faults per step 19 146 → median
    0 (mean 274: glibc's aligned allocation can leave a freed block a few bytes short of the
    next request, and the heap then grows once more), resident memory 440–510 MiB → 725 MiB,
    steady after ~100 steps. Costs: memory freed by the process goes back to the OS only
    above 1 GiB, threads share one malloc arena, and threads that already allocated (JAX
    starts one at import) keep their arena — the environment variables
    ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_ARENA_MAX=1`` set the same
    from process start. Returns True when set; False, changing nothing, where the C library
    is not glibc (macOS, musl), whose allocators differ.
    """
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path)
        glibc = hasattr(libc, "gnu_get_libc_version")  # mallopt's parameter numbers are glibc's
    except (OSError, TypeError):
        return False
    if not glibc:
        return False
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES), (_M_ARENA_MAX, 1))
    accepted = [libc.mallopt(param, value) == 1 for param, value in settings]  # set all three
    return all(accepted)


def sibling_fusion_expected() -> bool:
    """The documented rule for `optim.scale_by_adam(fused=None)`: does the backend fuse siblings?

    - ``jax.default_backend()`` is "gpu" or "tpu": True (XLA:GPU and XLA:TPU always do);
    - it is "cpu": True exactly when the ``XLA_FLAGS`` environment variable has a
      ``--xla_backend_extra_options=`` entry whose comma-separated option names include
      ``xla_cpu_use_multi_output_fusion`` (what `enable_cpu_multi_output_fusion` adds);
    - any other backend: False (the textbook form, which never forces copies).

    When the variable asks for fusion on CPU, the answer is also checked once per process
    against what the backend really does (`fuses_sibling_loops()`, one ~10 ms probe compile):
    the variable set *after* JAX started its CPU backend — say an array was made before
    `import funcnn` — has no effect, and then this warns once (naming the fix) and answers
    False, so the optimizers pick the form that is fast on this backend.
    """
    backend = jax.default_backend()
    if backend in ("gpu", "tpu"):
        return True
    if backend != "cpu" or not _flags_ask_for_fusion(os.environ.get("XLA_FLAGS", "")):
        return False
    return _cpu_option_took_effect()


@functools.cache
def _cpu_option_took_effect() -> bool:
    """True if XLA:CPU fuses siblings as ``XLA_FLAGS`` asks; else warn once and say False."""
    if fuses_sibling_loops():
        return True
    warnings.warn(
        "XLA_FLAGS asks XLA:CPU for multi-output fusion, but JAX's CPU backend started before "
        "the option was set (an array was made before `import funcnn`), so it has no effect "
        "in this process: the optimizers use the textbook Adam form. Fix: import funcnn "
        "before your first JAX computation, or start Python with XLA_FLAGS="
        f"--xla_backend_extra_options={MULTI_OUTPUT_FUSION_OPTION}.",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


@functools.cache
def fuses_sibling_loops() -> bool:
    """Diagnostic: True if the default backend compiles x ↦ (x + 1, 2·x) into one loop.

    Compiles a tiny probe once per process (cached; ~10 ms) and reads its optimized HLO
    through public `jax.jit(...).lower(...).compile().as_text()`. `sibling_fusion_expected()`
    consults it only on CPU when ``XLA_FLAGS`` asks for fusion, to catch an option set too
    late; tests and benchmarks use it to check the rule against what XLA really does.
    """
    probe = jax.jit(lambda x: (x + 1.0, 2.0 * x))
    spec = jax.ShapeDtypeStruct((64, 64), jnp.float32)
    hlo = probe.lower(spec).compile().as_text()
    if hlo is None:
        raise RuntimeError("the backend gave no HLO text for the probe; cannot tell.")
    entry = hlo[hlo.index("\nENTRY") :]
    return entry.count(" fusion(") == 1
