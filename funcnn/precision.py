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

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.nn.core import Layer

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
MIXED_BFLOAT16 = Policy(jnp.float32, jnp.bfloat16, jnp.float32)


def with_policy(layer: Layer, policy: Policy = MIXED_BFLOAT16) -> Layer:
    """`layer` computing under `policy`: same name, same init (params in param_dtype),
    apply(θ, x) = cast_to_output(layer.apply(cast_to_compute(θ), cast_to_compute(x))).

    Shapes are unchanged; only floating dtypes change. Integer inputs (token ids, labels)
    are passed through, so embedding lookups still index correctly.
    """
    if not isinstance(layer, Layer):
        raise TypeError(f"with_policy expects a funcnn Layer, got {type(layer).__name__}.")
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a funcnn.precision.Policy, got {policy!r}.")

    def init(key, in_shape):
        params, out_shape = layer.init(key, in_shape)
        return policy.cast_to_param(params), out_shape

    def apply(params, x, *, key=None, train=False):
        y = layer.apply(
            policy.cast_to_compute(params), policy.cast_to_compute(x), key=key, train=train
        )
        return policy.cast_to_output(y)

    return Layer(init, apply, layer.name)
