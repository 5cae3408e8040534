"""Character-level text: a built-in corpus, a char ↔ id tokenizer, splits and windows.

The default corpus needs no download: it is the module docstrings of the Python standard
library, read from the stdlib's source files in sorted module-name order. Only files under
the stdlib directory are read (never site-packages) and nothing is imported, so the text is
the same on every run of a given Python version, whatever else is installed.
"""

from __future__ import annotations

import ast
import functools
import inspect
import io
import os
import sys
import sysconfig
import tokenize
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._validation import check_in_range, check_positive_int

__all__ = [
    "CharTokenizer",
    "load_text",
    "random_windows",
    "stdlib_docstrings",
    "train_val_split",
    "windows",
]

Array = jax.Array

# Packages of tests and tools rather than library documentation.
_SKIPPED_MODULES = frozenset({"idlelib", "lib2to3", "test", "turtledemo", "this", "antigravity"})


def _module_source(stdlib: Path, name: str) -> Path | None:
    for candidate in (stdlib / f"{name}.py", stdlib / name / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _leading_docstring(source: str) -> str | None:
    """The module docstring: the string literal(s) of the first statement, if it is one.

    Reads tokens only up to the first statement, which is much faster than parsing the file.
    """
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    pieces: list[str] = []
    skip = {tokenize.ENCODING, tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT}
    for tok in tokens:
        if tok.type in skip or (tok.type == tokenize.NEWLINE and not pieces):
            continue
        if tok.type == tokenize.STRING:
            pieces.append(tok.string)
            continue
        break
    if not pieces:
        return None
    try:
        value = ast.literal_eval(" ".join(pieces))
    except (ValueError, SyntaxError):
        return None
    return inspect.cleandoc(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=1)
def stdlib_docstrings() -> str:
    """The default corpus: stdlib module docstrings in sorted module order, blank-line separated.

    Public modules only (no leading underscore), from `sys.stdlib_module_names`; modules
    without a Python source file (built-ins, C extensions) are skipped. About 130 kB of
    English technical prose on CPython 3.11.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in _SKIPPED_MODULES:
            continue
        path = _module_source(stdlib, name)
        if path is None:
            continue
        doc = _leading_docstring(path.read_text(encoding="utf-8", errors="replace"))
        if doc:
            docs.append(doc)
    if not docs:
        raise RuntimeError(f"No stdlib docstrings found under {stdlib}; pass a text file instead.")
    return "\n\n".join(docs) + "\n"


def load_text(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file, refusing an empty one with a clear error."""
    text = Path(path).read_text(encoding="utf-8")
    if not text:
        raise ValueError(f"{path} is empty; a language model needs some text.")
    return text


class CharTokenizer(NamedTuple):
    """Characters ↔ ids: id i is the i-th character of `chars` (sorted, unique)."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The sorted set of characters that occur in `text`."""
        if not text:
            raise ValueError("CharTokenizer.from_text needs non-empty text.")
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """str → int32 ids (len(text),); an unknown character is a ValueError naming it."""
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            raise ValueError(
                f"Characters {unknown[:10]!r} are not in the vocabulary of {self.vocab_size} "
                f"characters; use a prompt made of characters from the training text."
            )
        return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))

    def decode(self, ids: np.ndarray | Array | list[int]) -> str:
        """int ids → str; an id outside [0, vocab_size) is a ValueError naming it."""
        flat = np.asarray(ids).reshape(-1)
        bad = flat[(flat < 0) | (flat >= self.vocab_size)]
        if bad.size:
            raise ValueError(
                f"decode: ids must lie in [0, {self.vocab_size}) (the vocabulary size), got "
                f"{sorted(set(bad.tolist()))[:10]}."
            )
        return "".join(self.chars[int(i)] for i in flat)


def train_val_split(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous split: the first (1 − f) of the text trains, the last f validates.

    Contiguous rather than shuffled so that no validation window overlaps a training one.
    """
    check_in_range(val_fraction, "val_fraction", 0.0, 1.0, low_inclusive=False)
    ids = np.asarray(ids)
    cut = round(len(ids) * (1.0 - val_fraction))
    if cut < 2 or len(ids) - cut < 2:
        raise ValueError(
            f"train_val_split: {len(ids)} ids with val_fraction={val_fraction} leave a split "
            f"with fewer than 2 ids."
        )
    return ids[:cut], ids[cut:]


def windows(ids: np.ndarray | Array, length: int) -> tuple[Array, Array]:
    """Non-overlapping next-character windows: inputs[i] = ids[iT : iT+T], targets = shifted by 1.

    Returns inputs, targets (⌊(N−1)/T⌋, T) int32 — every id but the last is an input once.
    """
    check_positive_int(length, "length")
    ids = jnp.asarray(ids, jnp.int32)
    count = (ids.shape[0] - 1) // length
    if count < 1:
        raise ValueError(f"windows: {ids.shape[0]} ids are too few for one window of {length}.")
    inputs = ids[: count * length].reshape(count, length)
    targets = ids[1 : count * length + 1].reshape(count, length)
    return inputs, targets


def random_windows(key: Array, ids: Array, batch: int, length: int) -> tuple[Array, Array]:
    """A batch of windows at uniform random offsets; jit-friendly (ids stay on device).

    inputs[b] = ids[o_b : o_b + T], targets[b] = ids[o_b + 1 : o_b + T + 1], o_b ~ U{0 … N−T−1}.
    """
    check_positive_int(batch, "batch")
    check_positive_int(length, "length")
    if ids.shape[0] < length + 1:
        raise ValueError(f"random_windows: {ids.shape[0]} ids are too few for length {length}.")
    offsets = jax.random.randint(key, (batch,), 0, ids.shape[0] - length)
    take = jax.vmap(lambda o: jax.lax.dynamic_slice(ids, (o,), (length + 1,)))
    chunk = take(offsets)  # (B, T + 1)
    return chunk[:, :-1], chunk[:, 1:]
