"""The XLA:CPU multi-output fusion option, edited in ``XLA_FLAGS`` with the standard library only.

Opt-in: with the environment variable ``FUNCNN_CPU_FUSION=1``, `import funcnn` runs
`enable_at_import()` before it imports anything that touches JAX, and AdamW's update becomes
one loop per leaf on CPU (`funcnn.scale.xla` explains why the option matters and how the
optimizers use it). This module imports no JAX on purpose: importing JAX's array machinery
first could start the CPU backend, after which XLA no longer reads the variable.

Why not by default: under this option jaxlib 0.10's XLA:CPU aborts the process (a failed
``Check`` in ``symbolic_map.cc``, no Python exception) while compiling two sibling scatters
that share their indices, e.g. ``jax.jit(lambda a, b, u: (a.at[i].set(u), b.at[i].add(u)))``
— a KV-cache write of k and v is one. A library that sets a process-wide compiler option at
import would make valid JAX code elsewhere in the program crash, so the option is set only
when asked for. funcnn's own code avoids the pattern (`nn.attention` writes its cache with
the v write ordered after the k write), so funcnn models are safe with it on.
"""

from __future__ import annotations

import os

MULTI_OUTPUT_FUSION_OPTION = "xla_cpu_use_multi_output_fusion"
OPT_IN_VARIABLE = "FUNCNN_CPU_FUSION"
_EXTRA_OPTIONS = "--xla_backend_extra_options="


def with_option(xla_flags: str) -> str:
    """`xla_flags` with the CPU multi-output fusion option added to its backend extra options."""
    words = xla_flags.split()
    for i, word in enumerate(words):
        if word.startswith(_EXTRA_OPTIONS):
            if MULTI_OUTPUT_FUSION_OPTION not in option_names(word):
                words[i] = word + "," + MULTI_OUTPUT_FUSION_OPTION
            return " ".join(words)
    return " ".join([*words, _EXTRA_OPTIONS + MULTI_OUTPUT_FUSION_OPTION])


def option_names(word: str) -> list[str]:
    """The option names in one ``--xla_backend_extra_options=a,b=v`` word: ["a", "b"]."""
    return [item.split("=", 1)[0] for item in word[len(_EXTRA_OPTIONS) :].split(",")]


def flags_ask_for_fusion(xla_flags: str) -> bool:
    """True if some ``--xla_backend_extra_options=`` word of `xla_flags` names the option."""
    return any(
        MULTI_OUTPUT_FUSION_OPTION in option_names(word)
        for word in xla_flags.split()
        if word.startswith(_EXTRA_OPTIONS)
    )


def enable() -> None:
    """Add the option to ``XLA_FLAGS`` (keeping every flag already there; idempotent)."""
    os.environ["XLA_FLAGS"] = with_option(os.environ.get("XLA_FLAGS", ""))


def enable_at_import() -> None:
    """What `import funcnn` does: `enable()` if ``FUNCNN_CPU_FUSION=1`` opts in, else nothing."""
    if os.environ.get(OPT_IN_VARIABLE, "0").strip() == "1":
        enable()
