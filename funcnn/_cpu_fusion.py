"""The XLA:CPU multi-output fusion option, edited in ``XLA_FLAGS`` with the standard library only.

`import funcnn` runs `enable_at_import()` before it imports anything that touches JAX, so a
user who follows nothing but the quick start gets the one-pass optimizer update on CPU
(`funcnn.scale.xla` explains why the option matters and how the optimizers use it). This
module imports no JAX on purpose: importing JAX's array machinery first could start the CPU
backend, after which XLA no longer reads the variable.

Opt out with the environment variable ``FUNCNN_CPU_FUSION=0`` (then ``XLA_FLAGS`` is left as
it is and the optimizers use the textbook form on CPU unless the flags already ask for
fusion).
"""

from __future__ import annotations

import os

MULTI_OUTPUT_FUSION_OPTION = "xla_cpu_use_multi_output_fusion"
OPT_OUT_VARIABLE = "FUNCNN_CPU_FUSION"
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
    """What `import funcnn` does: `enable()`, unless ``FUNCNN_CPU_FUSION=0`` opts out."""
    if os.environ.get(OPT_OUT_VARIABLE, "1").strip() != "0":
        enable()
