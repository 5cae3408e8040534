"""Supervised objectives: turn a model's `apply` into a training loss and evaluation metrics.

Three task kinds (see `funcnn.datasets.tabular`):

    classification: ℓ = cross_entropy(logits, y),            accuracy = [argmax logits = y]
    binary:         ℓ = BCE_with_logits(z, y),               accuracy = [(z > 0) = y]
    regression:     ℓ = mse(ŷ, y) = mean (ŷ − y)²            (no accuracy)

`supervised_loss` gives the `loss_fn(params, batch, key) -> (loss, aux)` that
`funcnn.train` expects; `supervised_metrics` gives per-example values for `evaluate`.
With `stateful=True` (a model with running statistics, `nn.is_stateful(model)`) they follow
the stateful contract: `loss_fn(params, batch, key, model_state) -> (loss, aux, new_state)`
trains with batch statistics and returns the updated state; `metric_fn(params, batch,
model_state)` evaluates with the running statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from funcnn import losses
from funcnn._validation import check_choice

__all__ = [
    "TASK_KINDS",
    "per_example",
    "supervised_loss",
    "supervised_metrics",
]

Array = jax.Array
TASK_KINDS = ("classification", "binary", "regression")
"""What a supervised `kind` may be: softmax classes, one logit, or real targets."""


def per_example(kind: str, outputs: Array, targets: Array) -> dict[str, Array]:
    """Per-example loss (and accuracy for classifiers), each of shape (batch,)."""
    check_choice(kind, "kind", TASK_KINDS)
    if kind == "classification":
        loss = losses.cross_entropy(outputs, targets, reduction="none")
        correct = jnp.argmax(outputs, axis=-1) == targets
        return {"loss": loss, "accuracy": correct.astype(jnp.float32)}
    if kind == "binary":
        loss = losses.binary_cross_entropy_with_logits(outputs, targets, reduction="none")
        correct = (outputs > 0) == (targets > 0.5)
        return {"loss": loss[..., 0], "accuracy": correct[..., 0].astype(jnp.float32)}
    loss = losses.mse(outputs, targets, reduction="none")
    return {"loss": jnp.mean(loss, axis=-1)}


def supervised_loss(apply: Callable[..., Array], kind: str, *, stateful: bool = False) -> Callable:
    """`loss_fn(params, (x, y), key) -> (mean loss, {"accuracy": …})`, with dropout on;
    stateful=True: `loss_fn(params, (x, y), key, model_state) -> (loss, aux, new_state)`."""
    check_choice(kind, "kind", TASK_KINDS)
    if stateful:

        def stateful_loss_fn(params, batch, key, model_state):
            x, y = batch
            outputs, new_state = apply(params, x, state=model_state, key=key, train=True)
            values = per_example(kind, outputs, y)
            aux = {name: jnp.mean(v) for name, v in values.items() if name != "loss"}
            return jnp.mean(values["loss"]), aux, new_state

        return stateful_loss_fn

    def loss_fn(params, batch, key):
        x, y = batch
        values = per_example(kind, apply(params, x, key=key, train=True), y)
        aux = {name: jnp.mean(v) for name, v in values.items() if name != "loss"}
        return jnp.mean(values["loss"]), aux

    return loss_fn


def supervised_metrics(
    apply: Callable[..., Array], kind: str, *, stateful: bool = False
) -> Callable:
    """`metric_fn(params, (x, y)) -> {"loss": (b,), "accuracy": (b,)}` in eval mode;
    stateful=True: `metric_fn(params, (x, y), model_state)` (the running statistics)."""
    check_choice(kind, "kind", TASK_KINDS)
    if stateful:

        def stateful_metric_fn(params, batch, model_state):
            x, y = batch
            outputs, _ = apply(params, x, state=model_state)
            return per_example(kind, outputs, y)

        return stateful_metric_fn

    def metric_fn(params, batch):
        x, y = batch
        return per_example(kind, apply(params, x), y)

    return metric_fn
