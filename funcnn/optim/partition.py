"""Different optimizers for different parameters, chosen by label (optax's `multi_transform`,
PyTorch's param groups), so that e.g. Muon on the matrices and AdamW on the rest is one
`GradientTransformation`:

    labels = lambda params: jax.tree.map(lambda x: "matrix" if x.ndim == 2 else "rest", params)
    opt = optim.partition({"matrix": optim.sgd(0.1, 0.9), "rest": optim.adamw(1e-3)}, labels)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from funcnn.optim.base import GradientTransformation, OptState, Params, Updates
from funcnn.optim.transforms import MaskedNode

__all__ = [
    "PartitionState",
    "partition",
]

LabelTree = Any  # pytree (or prefix pytree) of str labels, structured like the params
LabelsOrFn = LabelTree | Callable[[Params], LabelTree]


class PartitionState(NamedTuple):
    """inner_states: dict label -> the state of that label's transform, built on the leaves
    carrying the label only (the others are `MaskedNode`s, which hold no arrays)."""

    inner_states: dict[str, OptState]


def _label_tree(labels: LabelsOrFn, tree: Params, known: Mapping[str, Any]) -> Any:
    """Resolve `labels` against `tree`: call it if a function, broadcast a prefix, check."""
    label_value = labels(tree) if callable(labels) else labels
    try:
        full = jax.tree.map(lambda lab, sub: jax.tree.map(lambda _: lab, sub), label_value, tree)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "labels must be a pytree of str labels with the structure of the params (or a "
            f"prefix of it); got labels structure {jax.tree.structure(label_value)} for params "
            f"structure {jax.tree.structure(tree)}."
        ) from error
    for path, label in jax.tree_util.tree_leaves_with_path(full):
        where = f"labels{jax.tree_util.keystr(path)}"
        if not isinstance(label, str):
            raise TypeError(
                f"partition labels must be str, got {where}={label!r} ({type(label).__name__})."
            )
        if label not in known:
            raise ValueError(
                f"partition has no transform for label {label!r} (at {where}); the transforms "
                f"are labelled {sorted(known)}. Add transforms[{label!r}] or relabel the leaf."
            )
    return full


def _select(label_tree: Any, tree: Any, label: str) -> Any:
    """`tree` with every leaf not labelled `label` replaced by a MaskedNode."""
    return jax.tree.map(lambda lab, x: x if lab == label else MaskedNode(), label_tree, tree)


def partition(
    transforms: Mapping[str, GradientTransformation], labels: LabelsOrFn
) -> GradientTransformation:
    """Route each parameter leaf to the transform named by its label:

        uᵢ = transforms[labelᵢ](g restricted to the leaves labelled labelᵢ)ᵢ

    `transforms` maps str labels to GradientTransformations (whole optimizers, learning
    rate included, or stages). `labels` is a pytree of str with the params' structure (a
    prefix is broadcast: {"encoder": "adamw", "head": "sgd"}), or a function params -> such
    a pytree (called on the params in `init` and `update`, or on the updates when update
    gets no params, so it must depend only on structure and shapes). Each transform sees,
    and keeps state for, only its own leaves — a global-norm clip inside one label measures
    that label's leaves — and its label's leaves get only its update. The state is
    `PartitionState(inner_states={label: state})`. A leaf labelled with a label that has no
    transform is a ValueError naming the label and the leaf; a transform whose label no
    leaf carries is allowed (its state holds no arrays). optax's `multi_transform`
    behaves the same; torch's param groups are lists of tensors with per-group options.
    `current_learning_rate` of a partition with two learning-rate stages raises (which one
    would it report?); read `state.inner_states[label]` instead.
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError(
            "partition expects transforms as a non-empty dict label -> GradientTransformation, "
            f"got transforms={transforms!r}."
        )
    for label, transform in transforms.items():
        if not isinstance(label, str):
            raise TypeError(f"partition labels must be str, got the key {label!r} in transforms.")
        if not isinstance(transform, GradientTransformation):
            raise TypeError(
                f"transforms[{label!r}] must be a GradientTransformation, got "
                f"{type(transform).__name__}; build it with funcnn.optim (e.g. optim.adamw())."
            )
    transforms = dict(transforms)

    def init(params: Params) -> PartitionState:
        label_tree = _label_tree(labels, params, transforms)
        return PartitionState(
            {
                label: transform.init(_select(label_tree, params, label))
                for label, transform in transforms.items()
            }
        )

    def update(updates: Updates, state: PartitionState, params: Params | None = None):
        label_tree = _label_tree(labels, params if params is not None else updates, transforms)
        if set(state.inner_states) != set(transforms):
            raise ValueError(
                f"partition state has labels {sorted(state.inner_states)} but the transforms "
                f"are labelled {sorted(transforms)}; pass the state returned by this init."
            )
        new_states = {}
        merged = updates
        for label, transform in transforms.items():
            selected_params = None if params is None else _select(label_tree, params, label)
            new, new_states[label] = transform.update(
                _select(label_tree, updates, label), state.inner_states[label], selected_params
            )
            merged = jax.tree.map(
                lambda lab, n, u, label=label: n if lab == label else u, label_tree, new, merged
            )
        return merged, PartitionState(new_states)

    return GradientTransformation(init, update)
