"""Routing: which leaves a stage sees. `masked(inner, mask)` applies one transform to the
leaves selected by a pytree of bools and passes the others through; `partition(transforms,
labels)` gives different optimizers to different parameters, chosen by label (optax's
`multi_transform`, PyTorch's param groups), so that e.g. Muon on the matrices and AdamW on
the rest is one `GradientTransformation`:

    labels = lambda params: jax.tree.map(lambda x: "matrix" if x.ndim == 2 else "rest", params)
    opt = optim.partition({"matrix": optim.sgd(0.1, 0.9), "rest": optim.adamw(1e-3)}, labels)

Both take their selection as data — a pytree with the params' structure, or a prefix of it
broadcast over each subtree, or a function of the params returning one — resolved by one
helper, `_broadcast_prefix`. The leaves a transform must not see are replaced by
`MaskedNode`s (which hold no arrays), so the inner transform keeps state for its own leaves
only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.optim.base import GradientTransformation, OptState, Params, Updates

__all__ = [
    "MaskedNode",
    "MaskedState",
    "PartitionState",
    "masked",
    "partition",
]

MaskTree = Any  # pytree (or prefix pytree) of Python bools
MaskOrFn = MaskTree | Callable[[Params], MaskTree]
LabelTree = Any  # pytree (or prefix pytree) of str labels, structured like the params
LabelsOrFn = LabelTree | Callable[[Params], LabelTree]


class MaskedNode(NamedTuple):
    """Stands in for a leaf the inner transform of `masked` (or `partition`) must not see
    (no leaves)."""


def _broadcast_prefix(prefix: Any, tree: Params, what: str) -> Any:
    """`prefix` (a pytree whose structure is a prefix of `tree`'s) with each of its leaves
    repeated over the matching subtree of `tree`: the result has `tree`'s structure.

    A dict prefix may leave out the keys whose subtree holds no arrays (a parameterless
    layer, `"relu_1": {}`): there is nothing to label, so nothing is demanded. `what` names
    the argument in the error ("mask must be a pytree of bools").
    """
    if isinstance(prefix, dict) and isinstance(tree, dict):
        needed = [k for k in tree if k not in prefix and jax.tree.leaves(tree[k])]
        unknown = [k for k in prefix if k not in tree]
        if needed or unknown:
            raise ValueError(
                f"{what} with the structure of the params (or a prefix of it); got "
                f"{what.split()[0]} structure {jax.tree.structure(prefix)} for params structure "
                f"{jax.tree.structure(tree)}: missing {needed} (they hold parameters), unknown "
                f"{unknown}. Keys whose subtree holds no arrays (relu_1: {{}}) may be left out."
            )
        return {
            k: _broadcast_prefix(prefix[k], sub, what) if k in prefix else sub
            for k, sub in tree.items()
        }
    try:
        return jax.tree.map(lambda p, sub: jax.tree.map(lambda _: p, sub), prefix, tree)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{what} with the structure of the params (or a prefix of it); got "
            f"{what.split()[0]} structure {jax.tree.structure(prefix)} for params structure "
            f"{jax.tree.structure(tree)}."
        ) from error


# --- masked ----------------------------------------------------------------------------------


class MaskedState(NamedTuple):
    """inner_state: the inner transform's state, built on the selected leaves only."""

    inner_state: OptState


def _mask_tree(mask: MaskOrFn, tree: Params) -> Any:
    """Resolve `mask` against `tree`: call it if a function, then broadcast a prefix mask."""
    mask_value = mask(tree) if callable(mask) else mask
    full = _broadcast_prefix(mask_value, tree, "mask must be a pytree of bools")
    for m in jax.tree.leaves(full):
        if not isinstance(m, (bool, jnp.bool_)):
            raise TypeError(
                f"mask leaves must be Python bools (static), got {m!r} ({type(m).__name__})."
            )
    return full


def _select(keep: Any, tree: Params) -> Params:
    """`tree` with every leaf whose `keep` entry is False replaced by a MaskedNode."""
    return jax.tree.map(lambda k, x: x if k else MaskedNode(), keep, tree)


def _merge(keep: Any, new: Updates, old: Updates) -> Updates:
    """`new` where `keep` is True, `old` elsewhere (the leaves an inner transform did not see)."""
    return jax.tree.map(lambda k, n, o: n if k else o, keep, new, old)


def masked(inner: GradientTransformation, mask: MaskOrFn) -> GradientTransformation:
    """Apply `inner` only to the leaves where `mask` is True; the others pass through:

        uᵢ = inner(g)ᵢ  if maskᵢ  else  gᵢ

    The inner transform sees (and keeps state for) the selected leaves only, so e.g.
    a masked `clip_by_global_norm` measures the norm of the selected leaves. `mask` is a
    pytree of Python bools (a prefix of the params is broadcast) or a function of the
    params returning one; in `update` it is called on `params` (or on `updates` when params
    are not given), so it must depend only on the tree's structure and shapes.
    """
    if not isinstance(inner, GradientTransformation):
        raise TypeError(f"masked expects a GradientTransformation, got {type(inner).__name__}.")

    def init(params: Params) -> MaskedState:
        mask_tree = _mask_tree(mask, params)
        return MaskedState(inner.init(_select(mask_tree, params)))

    def update(updates: Updates, state: MaskedState, params: Params | None = None):
        mask_tree = _mask_tree(mask, params if params is not None else updates)
        selected_params = None if params is None else _select(mask_tree, params)
        new, inner_state = inner.update(
            _select(mask_tree, updates), state.inner_state, selected_params
        )
        return _merge(mask_tree, new, updates), MaskedState(inner_state)

    return GradientTransformation(init, update)


# --- partition -------------------------------------------------------------------------------


class PartitionState(NamedTuple):
    """inner_states: dict label -> the state of that label's transform, built on the leaves
    carrying the label only (the others are `MaskedNode`s, which hold no arrays)."""

    inner_states: dict[str, OptState]


def _label_tree(labels: LabelsOrFn, tree: Params, known: Mapping[str, Any]) -> Any:
    """Resolve `labels` against `tree`: call it if a function, broadcast a prefix, check."""
    label_value = labels(tree) if callable(labels) else labels
    full = _broadcast_prefix(label_value, tree, "labels must be a pytree of str labels")
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


def _carries(label_tree: Any, label: str) -> Any:
    """The bool tree: which leaves carry `label`."""
    return jax.tree.map(lambda lab: lab == label, label_tree)


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
                label: transform.init(_select(_carries(label_tree, label), params))
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
            keep = _carries(label_tree, label)
            selected_params = None if params is None else _select(keep, params)
            new, new_states[label] = transform.update(
                _select(keep, updates), state.inner_states[label], selected_params
            )
            merged = _merge(keep, new, merged)
        return merged, PartitionState(new_states)

    return GradientTransformation(init, update)
