"""Data order: which examples each step of an epoch trains on, as a pure function.

Epoch e's order is NumPy's PCG64 permutation of range(N) seeded by (the data key's bits, e),
so the step counter alone says where a run is in the data and a restored `TrainState`
continues exactly where it stopped. The permutation is drawn on the host (NumPy) once per
epoch: XLA:CPU's sort-based `jax.random.permutation` costs ~13 ms for 16k examples, more
than the 256 tiny steps it feeds. The last N mod batch_size examples of an order are
dropped, so every step sees `batch_size` examples.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn._validation import check_positive_int

__all__ = ["epoch_batches", "epoch_order", "key_bits", "num_examples", "steps_per_epoch"]

Array = jax.Array


def num_examples(data: Any) -> int:
    """Leading-axis length shared by every leaf of `data`; raises if they disagree or it is 0."""
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data must hold at least one array, got an empty pytree.")
    sizes = {jnp.shape(leaf)[0] for leaf in leaves if jnp.ndim(leaf)}
    if len(sizes) != 1 or any(jnp.ndim(leaf) == 0 for leaf in leaves):
        shapes = [jnp.shape(leaf) for leaf in leaves]
        raise ValueError(
            f"every array in data must share its leading (example) axis, got shapes {shapes}."
        )
    (n,) = sizes
    if n == 0:
        raise ValueError("data is empty: its arrays have 0 examples.")
    return n


def steps_per_epoch(data: Any, batch_size: int) -> int:
    """⌊N / batch_size⌋ — the last partial batch is dropped so every step sees `batch_size`."""
    n = num_examples(data)
    check_positive_int(batch_size, "batch_size")
    if batch_size > n:
        raise ValueError(
            f"batch_size={batch_size} is larger than the data ({n} examples); use batch_size ≤ {n}."
        )
    return n // batch_size


def key_bits(data_key: Array) -> list[int]:
    """The raw uint32 words of a PRNG key (typed or legacy), read to the host once."""
    return [int(w) for w in np.asarray(jax.random.key_data(data_key)).ravel()]


def epoch_order(key_bits: list[int], epoch: int, n: int) -> np.ndarray:
    """The epoch's example order: NumPy's PCG64 permutation of range(n) seeded by
    (key bits, epoch) — a pure function of the data key and the epoch number."""
    return np.random.default_rng([*key_bits, int(epoch)]).permutation(n).astype(np.int32)


def epoch_batches(data: Any, data_key: Array, epoch: int, batch_size: int) -> Any:
    """The epoch's minibatches, stacked: each leaf (N, …) → (N // batch_size, batch_size, …).

    The order is `epoch_order(key_bits(data_key), epoch, N)`, so it depends only on the key
    and the epoch number; the last N mod batch_size examples of the order are dropped.
    """
    n = num_examples(data)
    num_batches = n // batch_size
    order = epoch_order(key_bits(data_key), epoch, n)
    order = order[: num_batches * batch_size].reshape(num_batches, batch_size)
    return jax.tree.map(lambda a: jnp.asarray(a)[order], data)
