"""Multi-output loop fusion: whether XLA computes several same-shaped results in one pass.

An optimizer step writes three arrays per leaf (θ, m, v) that depend elementwise on the same
four inputs (θ, m, v, g). Written as three independent expressions of those inputs they are
*siblings*, and a compiler that does multi-output fusion emits one loop for all three:
7 memory accesses per parameter instead of the ~10 of three separate loops.

XLA:GPU and XLA:TPU always fuse siblings. XLA:CPU (jaxlib 0.10.x) does so only when the
backend option ``xla_cpu_use_multi_output_fusion`` is set, and that option can only be given
through the ``XLA_FLAGS`` environment variable *before* JAX creates its CPU client (the first
array or compilation). `enable_cpu_multi_output_fusion()` does that; `fuses_sibling_loops()`
reports what the current backend actually does, by compiling a two-output probe.

Usage, first thing in a script (before any JAX computation)::

    import funcnn.fusion
    funcnn.fusion.enable_cpu_multi_output_fusion()
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp

__all__ = [
    "MULTI_OUTPUT_FUSION_OPTION",
    "enable_cpu_multi_output_fusion",
    "fuses_sibling_loops",
]

MULTI_OUTPUT_FUSION_OPTION = "xla_cpu_use_multi_output_fusion"
_EXTRA_OPTIONS = "--xla_backend_extra_options="


def _with_option(xla_flags: str) -> str:
    """`xla_flags` with the CPU multi-output fusion option added to its backend extra options."""
    words = xla_flags.split()
    for i, word in enumerate(words):
        if word.startswith(_EXTRA_OPTIONS):
            options = word[len(_EXTRA_OPTIONS) :].split(",")
            if MULTI_OUTPUT_FUSION_OPTION not in options:
                words[i] = word + "," + MULTI_OUTPUT_FUSION_OPTION
            return " ".join(words)
    return " ".join([*words, _EXTRA_OPTIONS + MULTI_OUTPUT_FUSION_OPTION])


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # private API moved: assume the worst
        return True


def enable_cpu_multi_output_fusion() -> bool:
    """Ask XLA:CPU to fuse sibling loops; returns `fuses_sibling_loops()` afterwards.

    Adds ``xla_cpu_use_multi_output_fusion`` to ``--xla_backend_extra_options`` in
    ``XLA_FLAGS`` (keeping any flags already there). XLA reads the variable once, when JAX
    creates its backend, so this must run before the first JAX computation; called later it
    still edits the variable (for subprocesses) but returns whether *this* process fuses.
    Harmless on GPU/TPU, which fuse siblings anyway.
    """
    if not _backends_started():
        os.environ["XLA_FLAGS"] = _with_option(os.environ.get("XLA_FLAGS", ""))
        fuses_sibling_loops.cache_clear()
    return fuses_sibling_loops()


@functools.cache
def fuses_sibling_loops() -> bool:
    """True if the default backend compiles x ↦ (x + 1, 2·x) on a (64, 64) array into one loop.

    Compiles a tiny probe once per process (cached; ~10 ms). Optimizers use it to choose
    between computing θ' from the old moments (one loop when this is True) and from the
    new moments (three loops, but no extra copies, when it is False).
    """
    probe = jax.jit(lambda x: (x + 1.0, 2.0 * x))
    spec = jax.ShapeDtypeStruct((64, 64), jnp.float32)
    hlo = probe.lower(spec).compile().as_text()
    entry = hlo[hlo.index("\nENTRY") :]
    return entry.count(" fusion(") == 1
