"""Normalization over the batch (batch_norm, with running statistics) and over groups of
channels within each example (group_norm, instance_norm), for channels-last inputs.

batch_norm (Ioffe & Szegedy, 2015), per channel c over every axis but the last:

    train:  μ = Σ x / n,  σ² = Σ (x − μ)² / n      (the n real cells of the batch)
            y = (x − μ)/√(σ² + ε) · scale + bias
            mean ← (1 − m)·mean + m·μ
            var  ← (1 − m)·var  + m·σ²·n/(n − 1)     (the unbiased batch variance)
    eval:   y = (x − mean)/√(var + ε) · scale + bias, and the state is returned unchanged

The momentum convention is PyTorch's: `momentum=0.1` weights the NEW statistic (flax's
`momentum=0.99` weights the old one: flax 0.99 = PyTorch 0.01), and the running variance is
updated with the unbiased batch variance while the batch itself is normalized with the
biased one — both exactly as torch.nn.BatchNorm2d. Running statistics are *state*, not
parameters (see `funcnn.nn.core`): `init_state` gives {"mean": 0, "var": 1} per channel and
`apply(params, x, state=s, train=…)` returns `(y, new_state)`.

Data parallelism: funcnn's data parallelism (`funcnn.parallel`) compiles one program over
the global batch and lets XLA split it across devices (jax.sharding), so the sums above
over a batch axis sharded on several devices are all-reduced by the compiler: μ and σ² are
the global batch's — the same numbers as on one device (PyTorch's SyncBatchNorm), never
per-device statistics.

group_norm (Wu & He, 2018): per example and per group of C/G channels, μ and σ² (biased)
over every axis but the first and the last and the group's channels; y as above with no
state. instance_norm is group_norm with one channel per group (G = C).

Masks: `mask` (x.shape[:-1]), True for real cells, leaves padded cells out of every
statistic; they are zeroed before any arithmetic, so what they hold (NaN, inf) changes no
value and no gradient. Statistics are computed in at least float32, two-pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn import initializers
from funcnn._validation import check_floating, check_in_range, check_positive_int, check_real
from funcnn.nn.core import Layer, Params, Shape, State, as_shape, get_child, no_state_error
from funcnn.nn.masking import check_mask

Array = jax.Array

__all__ = ["batch_norm", "group_norm", "instance_norm"]


def _check_eps(eps: float, name: str) -> float:
    eps = check_real(eps, "eps")
    if eps <= 0:
        raise ValueError(f"{name}: eps must be > 0, got eps={eps}.")
    return eps


def _affine_params(shape: Shape, name: str, minimum_rank: int, layout: str) -> Params:
    if len(shape) < minimum_rank or shape[-1] == -1:
        raise ValueError(
            f"{name}: expects in_shape {layout} with known channels, got in_shape={shape}."
        )
    channels = shape[-1]
    return {
        "scale": initializers.ones()(None, (channels,), jnp.float32),
        "bias": initializers.zeros()(None, (channels,), jnp.float32),
    }


def _check_input(x: Array, params: Params, name: str, minimum_rank: int, layout: str) -> None:
    check_floating(x, f"{name}: x")
    scale = get_child(params, "scale", name)
    if jnp.ndim(x) < minimum_rank or x.shape[-1] != scale.shape[0]:
        raise ValueError(
            f"{name}: expects x of shape {layout} with {scale.shape[0]} channels (scale.shape="
            f"{scale.shape}), got x.shape={jnp.shape(x)}."
        )


def _affine(normed: Array, params: Params) -> Array:
    """normed · scale + bias, with (C,) broadcast explicitly over the leading axes."""
    lead = (1,) * (normed.ndim - 1)
    scale, bias = params["scale"], params["bias"]
    return normed * jnp.reshape(scale, lead + scale.shape) + jnp.reshape(bias, lead + bias.shape)


def batch_norm(*, momentum: float = 0.1, eps: float = 1e-5, name: str = "batch_norm") -> Layer:
    """Batch normalization with running statistics (see the module docstring for the math).

    x (B, ..., C) → y of the same shape, channels last; statistics per channel over every
    other axis. params {"scale": (C,) = 1, "bias": (C,) = 0}; state {"mean": (C,) = 0,
    "var": (C,) = 1}, float32. `momentum` ∈ [0, 1] weights the new statistic (PyTorch's
    convention). apply(params, x, *, state, mask=None, key=None, train=False) → (y, state):
    train=True normalizes with the batch's statistics and returns the updated running ones;
    train=False normalizes with the running ones and returns `state` itself, unchanged.
    With a mask, only real cells count (n = their number); a batch with fewer than two real
    cells leaves the running statistics as they were (the unbiased variance needs n ≥ 2),
    and an unmasked training batch of one cell per channel is a ValueError, as in PyTorch.
    """
    momentum = check_in_range(momentum, "momentum", 0.0, 1.0, high_inclusive=True)
    eps = _check_eps(eps, name)
    layout = "(batch, ..., channels)"

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key  # deterministic: ones and zeros
        shape = as_shape(in_shape)
        return _affine_params(shape, name, 2, layout), shape

    def init_state(in_shape: Sequence[int]) -> tuple[State, Shape]:
        shape = as_shape(in_shape)
        channels = _affine_params(shape, name, 2, layout)["scale"].shape[0]
        state = {
            "mean": jnp.zeros((channels,), jnp.float32),
            "var": jnp.ones((channels,), jnp.float32),
        }
        return state, shape

    def apply(
        params: Params,
        x: Array,
        *,
        state: State | None = None,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> tuple[Array, State]:
        del key  # deterministic
        if state is None:
            raise no_state_error(name)
        _check_input(x, params, name, 2, layout)
        mask = check_mask(mask, x.shape[:-1], name)
        wide = jnp.promote_types(x.dtype, jnp.float32)
        xs = x.astype(wide)
        if mask is not None:  # padded cells are selected away before any arithmetic
            xs = jnp.where(mask[..., None], xs, jnp.zeros_like(xs))
        mean, var = get_child(state, "mean", name), get_child(state, "var", name)
        lead = (1,) * (x.ndim - 1)  # (C,) statistics broadcast explicitly over (B, …)
        if not train:
            shift = jnp.reshape(mean.astype(wide), lead + mean.shape)
            inv = jax.lax.rsqrt(jnp.reshape(var.astype(wide), lead + var.shape) + eps)
            return _affine((xs - shift) * inv, params).astype(x.dtype), state
        axes = tuple(range(x.ndim - 1))
        if mask is None:
            count = math.prod(x.shape[:-1])
            if count < 2:
                raise ValueError(
                    f"{name}: train=True needs more than one value per channel to estimate "
                    f"the batch variance, got x.shape={x.shape}."
                )
            mu = jnp.mean(xs, axis=axes, keepdims=True)  # (1…, C)
            centered = xs - mu
            sigma2 = jnp.mean(jnp.square(centered), axis=axes, keepdims=True)  # biased, 2-pass
            n = jnp.asarray(count, wide)
        else:
            real = mask[..., None]
            n = jnp.sum(mask).astype(wide)
            mu = jnp.sum(xs, axis=axes, keepdims=True) / jnp.maximum(n, 1.0)
            centered = jnp.where(real, xs - mu, jnp.zeros_like(xs))
            sigma2 = jnp.sum(jnp.square(centered), axis=axes, keepdims=True) / jnp.maximum(n, 1.0)
            centered = xs - mu
        normed = centered * jax.lax.rsqrt(sigma2 + eps)
        y = _affine(normed, params).astype(x.dtype)
        # Running statistics: no gradient flows into state, and n < 2 (only possible with a
        # mask) keeps the old values instead of dividing by n − 1 = 0.
        mu = jax.lax.stop_gradient(jnp.reshape(mu, mean.shape))
        sigma2 = jax.lax.stop_gradient(jnp.reshape(sigma2, var.shape))
        unbiased = sigma2 * n / jnp.maximum(n - 1.0, 1.0)
        new_mean = (1.0 - momentum) * mean.astype(wide) + momentum * mu
        new_var = (1.0 - momentum) * var.astype(wide) + momentum * unbiased
        enough = n >= 2
        new_state = {
            "mean": jnp.where(enough, new_mean, mean).astype(mean.dtype),
            "var": jnp.where(enough, new_var, var).astype(var.dtype),
        }
        return y, new_state

    return Layer(init, apply, name, init_state)


def _group_norm(groups: int | None, eps: float, name: str) -> Layer:
    layout = "(batch, ..., channels)"

    def resolve(channels: int) -> int:
        count = channels if groups is None else groups
        if channels % count:
            raise ValueError(f"{name}: num_groups={count} must divide the {channels} channels.")
        return count

    def init(key: Array, in_shape: Sequence[int]) -> tuple[Params, Shape]:
        del key
        shape = as_shape(in_shape)
        params = _affine_params(shape, name, 2, layout)
        resolve(shape[-1])
        return params, shape

    def apply(
        params: Params,
        x: Array,
        *,
        mask: Array | None = None,
        key: Array | None = None,
        train: bool = False,
    ) -> Array:
        del key, train  # deterministic, the same in training and evaluation
        _check_input(x, params, name, 2, layout)
        channels = x.shape[-1]
        count = resolve(channels)
        mask = check_mask(mask, x.shape[:-1], name)
        wide = jnp.promote_types(x.dtype, jnp.float32)
        xs = x.astype(wide)
        grouped = jnp.reshape(xs, (*x.shape[:-1], count, channels // count))  # (B, …, G, C/G)
        axes = (*range(1, x.ndim - 1), x.ndim)  # cells and the group's channels
        if mask is None:
            mu = jnp.mean(grouped, axis=axes, keepdims=True)  # (B, 1…, G, 1)
            sigma2 = jnp.mean(jnp.square(grouped - mu), axis=axes, keepdims=True)
        else:
            real = jnp.reshape(mask, (*mask.shape, 1, 1))  # (B, …, 1, 1)
            grouped = jnp.where(real, grouped, jnp.zeros_like(grouped))
            n = jnp.sum(real, axis=axes, keepdims=True).astype(wide) * (channels // count)
            mu = jnp.sum(grouped, axis=axes, keepdims=True) / jnp.maximum(n, 1.0)
            deviation = jnp.where(real, grouped - mu, jnp.zeros_like(grouped))
            sigma2 = jnp.sum(jnp.square(deviation), axis=axes, keepdims=True) / jnp.maximum(n, 1.0)
        normed = (grouped - mu) * jax.lax.rsqrt(sigma2 + eps)
        normed = jnp.reshape(normed, x.shape)
        return _affine(normed, params).astype(x.dtype)

    return Layer(init, apply, name)


def group_norm(num_groups: int, *, eps: float = 1e-5, name: str = "group_norm") -> Layer:
    """Group normalization: each example's channels split into `num_groups` groups of C/G,

        y = (x − μ)/√(σ² + ε) · scale + bias,   μ, σ² (biased) per (example, group) over
        every axis but the first and the last, and the group's C/G channels.

    x (B, ..., C) → same shape; params {"scale": (C,) = 1, "bias": (C,) = 0}; no state (the
    same in training and evaluation). `num_groups` must divide C (torch.nn.GroupNorm on NCHW
    is this on NHWC). A `mask` (B, ...) leaves padded cells out of μ and σ² (an example with
    no real cell takes μ = σ² = 0).
    """
    check_positive_int(num_groups, "num_groups")
    return _group_norm(num_groups, _check_eps(eps, name), name)


def instance_norm(*, eps: float = 1e-5, name: str = "instance_norm") -> Layer:
    """Instance normalization: group_norm with one channel per group (G = C), i.e. each
    example's each channel normalized over its cells, with a learned scale and bias per
    channel (torch.nn.InstanceNorm2d(affine=True) without running statistics)."""
    return _group_norm(None, _check_eps(eps, name), name)
