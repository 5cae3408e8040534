"""Mixed precision: float32 master params, bfloat16 compute, float32 loss and optimizer math.

A `Policy` names three dtypes (the jmp / Keras convention):

    param_dtype   — what the optimizer stores and updates (master weights), float32
    compute_dtype — what the layers compute in (matmul inputs), bfloat16
    output_dtype  — what the network returns to the loss, float32

`with_policy(layer, policy)` wraps any `Layer` without touching its code:

    y = cast_output( layer.apply(cast_compute(θ), cast_compute(x)) )

Because `astype` is differentiable (its gradient casts back), `jax.grad` of a float32 loss
with respect to the float32 master θ is float32: the optimizer never sees bf16. Layers that
need wider arithmetic internally (layer_norm's variance, softmax) upcast themselves.

bfloat16 keeps float32's 8 exponent bits (no loss scaling is needed, unlike float16) but only
8 significand bits: relative rounding 2⁻⁸ ≈ 0.4 % per matmul input. On accelerators with bf16
matrix units this doubles matmul throughput and halves activation memory; on CPUs without
native bf16 arithmetic XLA emulates it and it can be *slower* — measure (benchmarks/run.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.nn.core import (
    Layer,
    Params,
    Shape,
    State,
    apply_child,
    apply_with_state,
    no_state_error,
)

__all__ = ["FULL_FLOAT32", "MIXED_BFLOAT16", "Policy", "with_policy"]


def _cast_floats(tree: Any, dtype: Any) -> Any:
    """Cast every floating leaf of `tree` to `dtype`; integer/bool leaves (labels, ids, masks)
    pass through unchanged."""

    def cast(x: Any) -> Any:
        if jnp.issubdtype(jnp.result_type(x), jnp.floating):
            return jnp.asarray(x).astype(dtype)
        return x

    return jax.tree.map(cast, tree)


class Policy(NamedTuple):
    """Which dtype each role uses. Methods cast the floating leaves of a pytree."""

    param_dtype: Any = jnp.float32
    compute_dtype: Any = jnp.bfloat16
    output_dtype: Any = jnp.float32

    def cast_to_param(self, tree: Any) -> Any:
        """Floating leaves → param_dtype (e.g. initialise master weights)."""
        return _cast_floats(tree, self.param_dtype)

    def cast_to_compute(self, tree: Any) -> Any:
        """Floating leaves → compute_dtype (params and activations entering a layer)."""
        return _cast_floats(tree, self.compute_dtype)

    def cast_to_output(self, tree: Any) -> Any:
        """Floating leaves → output_dtype (what the loss sees)."""
        return _cast_floats(tree, self.output_dtype)


FULL_FLOAT32 = Policy(jnp.float32, jnp.float32, jnp.float32)
"""Everything in float32: the policy that changes nothing (a baseline to compare against)."""
MIXED_BFLOAT16 = Policy(jnp.float32, jnp.bfloat16, jnp.float32)
"""float32 master params and loss, bfloat16 compute: the usual mixed-precision policy."""


def with_policy(layer: Layer, policy: Policy = MIXED_BFLOAT16) -> Layer:
    """`layer` computing under `policy`: same name, same init (params in param_dtype),
    apply(θ, x) = cast_to_output(layer.apply(cast_to_compute(θ), cast_to_compute(x))).

    Shapes are unchanged; only floating dtypes change. Integer inputs (token ids, labels)
    are passed through, so embedding lookups still index correctly. `mask`, `key` and
    `train` are forwarded to the wrapped layer unchanged. A stateful layer stays stateful:
    its state (running statistics) is passed and returned uncast — kept at the precision it
    was made in, since statistics averaged over many steps need more than bf16's 8 bits.
    """
    if not isinstance(layer, Layer):
        raise TypeError(
            f"with_policy: layer must be a funcnn Layer, got layer={layer!r} "
            f"({type(layer).__name__})."
        )
    if not isinstance(policy, Policy):
        raise TypeError(
            f"with_policy: policy must be a funcnn.scale.precision.Policy, got policy={policy!r}."
        )

    def init(key: jax.Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        params, out_shape = layer.init(key, in_shape)
        return policy.cast_to_param(params), out_shape

    def apply(
        params: Params,
        x: Any,
        *,
        mask: jax.Array | None = None,
        key: jax.Array | None = None,
        train: bool = False,
    ) -> Any:
        # The mask is boolean (or integer 0/1), so it is passed on uncast.
        y = apply_child(
            layer,
            policy.cast_to_compute(params),
            policy.cast_to_compute(x),
            mask=mask,
            key=key,
            train=train,
        )
        return policy.cast_to_output(y)

    if layer.init_state is None:
        return Layer(init, apply, layer.name)

    def apply_stateful(
        params: Params,
        x: Any,
        *,
        state: State | None = None,
        mask: jax.Array | None = None,
        key: jax.Array | None = None,
        train: bool = False,
    ) -> tuple[Any, State]:
        if state is None:
            raise no_state_error(layer.name)
        y, new_state = apply_with_state(
            layer,
            policy.cast_to_compute(params),
            policy.cast_to_compute(x),
            state,
            mask=mask,
            key=key,
            train=train,
        )
        return policy.cast_to_output(y), new_state

    return Layer(init, apply_stateful, layer.name, layer.init_state)
