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

Usage, first thing in a script (before any JAX computation)::

    import funcnn.scale.xla
    funcnn.scale.xla.enable_cpu_multi_output_fusion()
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
    "sibling_fusion_expected",
]

MULTI_OUTPUT_FUSION_OPTION = "xla_cpu_use_multi_output_fusion"
_EXTRA_OPTIONS = "--xla_backend_extra_options="


def _with_option(xla_flags: str) -> str:
    """`xla_flags` with the CPU multi-output fusion option added to its backend extra options."""
    words = xla_flags.split()
    for i, word in enumerate(words):
        if word.startswith(_EXTRA_OPTIONS):
            if MULTI_OUTPUT_FUSION_OPTION not in _option_names(word):
                words[i] = word + "," + MULTI_OUTPUT_FUSION_OPTION
            return " ".join(words)
    return " ".join([*words, _EXTRA_OPTIONS + MULTI_OUTPUT_FUSION_OPTION])


def _option_names(word: str) -> list[str]:
    """The option names in one ``--xla_backend_extra_options=a,b=v`` word: ["a", "b"]."""
    return [item.split("=", 1)[0] for item in word[len(_EXTRA_OPTIONS) :].split(",")]


def _flags_ask_for_fusion(xla_flags: str) -> bool:
    """True if some ``--xla_backend_extra_options=`` word of `xla_flags` names the option."""
    return any(
        MULTI_OUTPUT_FUSION_OPTION in _option_names(word)
        for word in xla_flags.split()
        if word.startswith(_EXTRA_OPTIONS)
    )


def enable_cpu_multi_output_fusion() -> None:
    """Ask XLA:CPU to fuse sibling loops: call it before the first JAX computation.

    Adds ``xla_cpu_use_multi_output_fusion`` to ``--xla_backend_extra_options`` in
    ``XLA_FLAGS`` (keeping any flags already there; idempotent). XLA reads the variable once,
    when JAX creates its backend (the first array, `jax.devices()` or compilation), and JAX
    has no public way to tell whether that has happened, so this only edits the variable:
    called too late it affects subprocesses but not this process, which keeps XLA:CPU's
    default (`fuses_sibling_loops()` tells which, by compiling a probe). Harmless on GPU/TPU,
    which fuse siblings anyway.
    """
    os.environ["XLA_FLAGS"] = _with_option(os.environ.get("XLA_FLAGS", ""))


def sibling_fusion_expected() -> bool:
    """The documented rule for `optim.scale_by_adam(fused=None)`: does the backend fuse siblings?

    - ``jax.default_backend()`` is "gpu" or "tpu": True (XLA:GPU and XLA:TPU always do);
    - it is "cpu": True exactly when the ``XLA_FLAGS`` environment variable has a
      ``--xla_backend_extra_options=`` entry whose comma-separated option names include
      ``xla_cpu_use_multi_output_fusion`` (what `enable_cpu_multi_output_fusion` adds);
    - any other backend: False (the textbook form, which never forces copies).

    Reads the variable *now*: it matches what XLA:CPU does as long as the variable was not
    changed after JAX started its backend. Nothing is compiled.
    """
    backend = jax.default_backend()
    if backend in ("gpu", "tpu"):
        return True
    return backend == "cpu" and _flags_ask_for_fusion(os.environ.get("XLA_FLAGS", ""))


@functools.cache
def fuses_sibling_loops() -> bool:
    """Diagnostic: True if the default backend compiles x ↦ (x + 1, 2·x) into one loop.

    Compiles a tiny probe once per process (cached; ~10 ms) and reads its optimized HLO
    through public `jax.jit(...).lower(...).compile().as_text()`. The library never consults
    it (optimizers follow `sibling_fusion_expected()`); tests and benchmarks use it to check
    that rule against what XLA really does.
    """
    probe = jax.jit(lambda x: (x + 1.0, 2.0 * x))
    spec = jax.ShapeDtypeStruct((64, 64), jnp.float32)
    hlo = probe.lower(spec).compile().as_text()
    if hlo is None:
        raise RuntimeError("the backend gave no HLO text for the probe; cannot tell.")
    entry = hlo[hlo.index("\nENTRY") :]
    return entry.count(" fusion(") == 1
