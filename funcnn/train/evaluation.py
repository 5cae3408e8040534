"""Evaluation: exact means of per-example metrics over a whole data set, in batches.

    result = { name: (1/N)·Σᵢ metric_fn(params, batch)[name]ᵢ }

computed in one compiled `lax.scan` over batches; the last partial batch is padded by
repeating the final example and the padding is masked out of the sums.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from funcnn._validation import check_positive_int
from funcnn.train.data import num_examples

__all__ = ["MetricFn", "evaluate"]

Params = Any
MetricFn = Callable[..., Mapping[str, jax.Array]]
"""`metric_fn(params, batch) -> {name: (b,) array}`: one value per example of the batch
(`metric_fn(params, batch, model_state)` for a stateful model)."""


@functools.lru_cache(maxsize=32)
def _compiled_evaluate(metric_fn: MetricFn, batch_size: int, stateful: bool = False):
    def run(params, data, model_state):
        n = num_examples(data)
        num_batches = -(-n // batch_size)
        index = jnp.arange(num_batches * batch_size).reshape(num_batches, batch_size)
        valid = index < n
        index = jnp.minimum(index, n - 1)  # pad the last batch by repeating the final example

        def per_example(batch):
            values = metric_fn(params, batch, model_state) if stateful else metric_fn(params, batch)
            for name, v in values.items():
                if jnp.shape(v) != (batch_size,):
                    raise ValueError(
                        f"metric_fn must return one value per example, shape ({batch_size},), "
                        f"but {name!r} has shape {jnp.shape(v)}."
                    )
            # Sum in at least float32 so boolean/integer metrics (accuracy) average exactly.
            return {k: v.astype(jnp.promote_types(v.dtype, jnp.float32)) for k, v in values.items()}

        def one_batch(sums, xs):
            idx, keep = xs
            values = per_example(jax.tree.map(lambda a: a[idx], data))
            sums = {k: sums[k] + jnp.sum(jnp.where(keep, v, 0)) for k, v in values.items()}
            return sums, None

        shapes = jax.eval_shape(per_example, jax.tree.map(lambda a: a[:batch_size], data))
        zeros = {k: jnp.zeros((), s.dtype) for k, s in shapes.items()}
        sums, _ = jax.lax.scan(one_batch, zeros, (index, valid))
        return {k: v / n for k, v in sums.items()}

    return jax.jit(run)


def evaluate(
    metric_fn: MetricFn,
    params: Params,
    data: Any,
    *,
    batch_size: int = 1024,
    model_state: Any = None,
) -> dict[str, float]:
    """Exact means over all N examples of per-example metrics, computed in batches.

    `metric_fn(params, batch) -> {name: (b,) array}` gives one value per example; the
    result is `{name: (1/N)·Σᵢ valueᵢ}`. The last partial batch is padded and masked out.
    A stateful model passes its `model_state`, and `metric_fn(params, batch, model_state)`
    is called instead (in eval mode it reads the state and changes nothing).
    """
    check_positive_int(batch_size, "batch_size")
    batch_size = min(batch_size, num_examples(data))
    compiled = _compiled_evaluate(metric_fn, batch_size, model_state is not None)
    means = compiled(params, data, model_state)
    return {k: float(v) for k, v in means.items()}
