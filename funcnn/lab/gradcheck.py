"""Gradient checking: does `jax.grad` agree with finite differences, and what does backprop save?

1. Agreement, leaf by leaf. For a scalar loss L(θ), with ĝ = jax.grad(L)(θ) and the central
   difference g̃ᵢ = (L(θ + ε·eᵢ) − L(θ − ε·eᵢ)) / 2ε from `funcnn.reference.numerical_grad`,
   both in float64, each parameter leaf reports

       max relative error = maxᵢ |ĝᵢ − g̃ᵢ| / max(|ĝᵢ| + |g̃ᵢ|, φ),   φ = 10⁻³ · maxⱼ |ĝⱼ|.

   The float64 difference quotient is good to ~1e-9 of the gradient's scale, so a correct
   gradient shows ≲1e-6 (the worst leaf over all layers, a transformer bias, is 1.0e-6) and
   a wrong one (a missing transpose, a dropped term) ≳1e-2. The floor φ, a fraction of the
   largest gradient entry anywhere in θ, keeps entries whose true gradient is 0 (a key bias
   in attention: softmax ignores a shift shared by all scores) from dividing rounding noise
   by ~0.

2. Every layer type. `layer_cases()` wraps each layer f as the scalar loss

       L(θ, x) = Σ r ⊙ f(θ, x)        r a fixed standard-normal tensor of f's output shape,

   and checks the gradient with respect to the parameters *and* to a floating input x (the
   signal backprop hands to the layer below). The random r keeps errors from cancelling, as a
   plain sum could.

3. The cost of backprop. Reverse mode gives all N partial derivatives for a small constant
   times one forward pass; central differences need 2N forward passes. `backprop_cost`
   times both on MLPs of N ≈ 10², …, 10⁵ parameters.
"""

from __future__ import annotations

import functools
import math
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from funcnn import activations, nn
from funcnn._validation import check_positive_int
from funcnn.reference.numerical import max_relative_error, numerical_grad

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_TOLERANCE",
    "FLOOR_FRACTION",
    "CaseReport",
    "CostRow",
    "GradCase",
    "LeafError",
    "backprop_cost",
    "case_loss",
    "check_layers",
    "compiled_flops",
    "cost_model",
    "finite_difference_time",
    "layer_cases",
    "leaf_errors",
    "median_times",
    "path_name",
]

Array = jax.Array

# A correct float64 gradient agrees with central differences (ε = 1e-6) to ≲1e-6 relative; a
# wrong one is off by ≳1e-2. FLOOR_FRACTION sets φ (module docstring) relative to max |ĝ|.
DEFAULT_EPS = 1e-6
FLOOR_FRACTION = 1e-3
DEFAULT_TOLERANCE = 1e-5
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


# ---------------------------------------------------------------------------- per-leaf errors


class LeafError(NamedTuple):
    """Agreement of one parameter leaf: `path` like "params/dense_0/w", its entry count, and
    the max relative and max absolute error of jax.grad against central differences."""

    path: str
    size: int
    max_rel_error: float
    max_abs_error: float


def path_name(path: Sequence[Any]) -> str:
    """A pytree key path as "a/b/0" (dict keys, sequence indices, NamedTuple fields)."""
    parts = []
    for entry in path:
        for attr in ("key", "idx", "name"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def _to_float64(tree: Any) -> Any:
    """Floating leaves → float64 NumPy (call inside `jax.enable_x64`); other leaves unchanged."""
    return jax.tree.map(
        lambda a: (
            np.asarray(a, np.float64)
            if jnp.issubdtype(jnp.result_type(a), jnp.floating)
            else np.asarray(a)
        ),
        tree,
    )


def leaf_errors(
    loss: Callable[[Any], Any],
    params: Any,
    *,
    eps: float = DEFAULT_EPS,
    floor_fraction: float = FLOOR_FRACTION,
) -> list[LeafError]:
    """Per-leaf max relative error of jax.grad(loss)(θ) against central differences, in float64.

    loss:   scalar function of the pytree `params` (every leaf floating). One jitted
            value_and_grad serves both sides (its value feeds the 2·N difference quotients),
            so there is a single compilation; keep N (the entry count) in the hundreds.
    Returns one `LeafError` per leaf, in `jax.tree` order; the floor φ is
    `floor_fraction · max |ĝ|` over all leaves (see the module docstring).
    """
    with jax.enable_x64(True):
        theta = _to_float64(params)
        for path, leaf in jax.tree_util.tree_leaves_with_path(theta):
            if not np.issubdtype(leaf.dtype, np.floating):
                raise TypeError(
                    f"leaf_errors: every leaf must be floating, but {path_name(path)!r} has "
                    f"dtype {leaf.dtype}; close over integer inputs in `loss` instead."
                )
        # Tiny programs run once: skipping XLA's backend optimizations halves compile time.
        value_and_grad = jax.jit(jax.value_and_grad(loss), compiler_options=_FAST_COMPILE)
        analytic = jax.tree.map(np.asarray, value_and_grad(theta)[1])
        numeric = numerical_grad(lambda tree: value_and_grad(tree)[0], theta, eps)
        scale = max(
            (float(np.max(np.abs(g))) for g in jax.tree.leaves(analytic) if g.size), default=0.0
        )
        floor = max(floor_fraction * scale, np.finfo(np.float64).tiny)
        rows = []
        for (path, a), b in zip(
            jax.tree_util.tree_leaves_with_path(analytic), jax.tree.leaves(numeric), strict=True
        ):
            rel = max_relative_error(a, b, floor=floor)
            diff = float(np.max(np.abs(a - b))) if a.size else 0.0
            rows.append(LeafError(path_name(path), int(a.size), rel, diff))
    return rows


# ---------------------------------------------------------------------------- layer catalog


class GradCase(NamedTuple):
    """One layer to check: `layer.init(key, in_shape)` then `layer.apply(params, x, **kwargs)`.

    `x` is a floating input (differentiated too) or integer ids (held fixed). `kwargs` are
    extra apply arguments, e.g. `train=True` with a fixed `key` for dropout (a fixed key gives
    a fixed mask, so the loss is a deterministic function of θ and the check is valid).
    """

    name: str
    layer: nn.Layer
    x: np.ndarray
    kwargs: Mapping[str, Any] = {}


def _inputs(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _ids(seed: int, vocab: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, size=shape).astype(np.int32)


def layer_cases(seed: int = 0) -> list[GradCase]:
    """Every layer type in funcnn at a tiny size (each check costs 2·N loss evaluations)."""
    key = jax.random.PRNGKey(seed + 1)
    x_flat, x_seq = _inputs(seed, 3, 4), _inputs(seed, 2, 5, 4)  # (B, d), (B, T, d)
    ids = _ids(seed, 7, 2, 5)  # (B, T) token ids
    mask = np.array([[True] * 3 + [False] * 2, [True] * 5])  # (B, T): row 0 padded after 3
    x_img = _inputs(seed, 2, 5, 4, 2)  # (B, H, W, C)
    img_mask = np.ones((2, 5, 4), bool)
    img_mask[0, 3:] = False  # image 0: its last two rows are padding
    return [
        GradCase("dense", nn.dense(3), x_flat),
        GradCase("perceptron (sigmoid)", nn.perceptron(activations.sigmoid), x_flat),
        GradCase("mlp (relu)", nn.mlp([4, 5, 3]), x_flat),
        GradCase(
            "mlp (tanh, layer_norm)", nn.mlp([4, 5, 3], activations.tanh, layer_norm=True), x_flat
        ),
        GradCase("layer_norm", nn.layer_norm(), x_flat),
        GradCase("rms_norm", nn.rms_norm(), x_flat),
        GradCase(
            "feed_forward (SwiGLU)", nn.feed_forward(4, 6, activation="silu", gated=True), x_seq
        ),
        GradCase(
            "dropout (train, fixed key)", nn.dropout(0.5), x_flat, {"key": key, "train": True}
        ),
        GradCase("activation gelu", nn.activation(activations.gelu), x_flat),
        GradCase("activation softmax", nn.activation(activations.softmax), x_flat),
        GradCase("flatten", nn.flatten(), x_seq),
        GradCase("residual(dense)", nn.residual(nn.dense(4)), x_flat),
        GradCase("repeat (scanned residual dense)", nn.repeat(nn.residual(nn.dense(4)), 2), x_flat),
        GradCase(
            "parallel(dense, tanh)",
            nn.parallel(nn.dense(2), nn.activation(activations.tanh)),
            x_flat,
        ),
        GradCase("embedding", nn.embedding(7, 3), ids),
        GradCase("bag_of_words (masked)", nn.bag_of_words(7, 3), ids, {"mask": mask}),
        GradCase("positional_encoding (learned)", nn.positional_encoding(6, kind="learned"), x_seq),
        GradCase("conv1d", nn.conv1d(3, 2), x_seq),
        GradCase("conv1d (causal, dilated)", nn.conv1d(2, 2, padding="CAUSAL", dilation=2), x_seq),
        GradCase("max_pool1d", nn.max_pool1d(2), x_seq),
        GradCase("avg_pool1d", nn.avg_pool1d(2), x_seq),
        GradCase("global_max_pool", nn.global_max_pool(), x_seq),
        GradCase("global_avg_pool", nn.global_avg_pool(), x_seq),
        GradCase(
            "conv2d (grouped, strided)", nn.conv2d(4, 3, strides=2, feature_group_count=2), x_img
        ),
        GradCase(
            "conv2d (dilated, explicit padding)", nn.conv2d(3, (2, 3), padding=1, dilation=2), x_img
        ),
        GradCase("conv_transpose2d (stride 2)", nn.conv_transpose2d(2, 3, strides=2), x_img),
        GradCase("max_pool2d (SAME)", nn.max_pool2d(2, padding="SAME"), x_img),
        GradCase(
            "avg_pool2d (padded, masked)",
            nn.avg_pool2d(3, strides=2, padding=1),
            x_img,
            {"mask": img_mask},
        ),
        GradCase("global_max_pool2d", nn.global_max_pool2d(), x_img),
        GradCase("global_avg_pool2d (masked)", nn.global_avg_pool2d(), x_img, {"mask": img_mask}),
        GradCase(
            "dropout2d (train, fixed key)", nn.dropout2d(0.5), x_img, {"key": key, "train": True}
        ),
        GradCase(
            "batch_norm (train, masked)",
            _output_only(nn.batch_norm(), x_img.shape),
            x_img,
            {"train": True, "mask": img_mask},
        ),
        GradCase("batch_norm (eval)", _output_only(nn.batch_norm(), x_img.shape), x_img),
        GradCase("group_norm", nn.group_norm(2), x_img, {"mask": img_mask}),
        GradCase("instance_norm", nn.instance_norm(), x_img),
        GradCase("reshape", nn.reshape((20, 2)), x_img),
        GradCase("rnn (masked)", nn.rnn(3), x_seq, {"mask": mask}),
        GradCase("lstm", nn.lstm(3), x_seq),
        GradCase("gru (reverse)", nn.gru(3, reverse=True), x_seq),
        GradCase(
            "multi_head_attention (causal)",
            nn.multi_head_attention(4, num_heads=2, causal=True),
            x_seq,
        ),
        GradCase(
            "transformer_block",
            nn.transformer_block(4, num_heads=2, mlp_ratio=2),
            x_seq,
            {"mask": mask},
        ),
        GradCase(
            "multi_head_attention (GQA, RoPE, QK-norm)",
            nn.multi_head_attention(
                4, num_heads=2, num_kv_heads=1, causal=True, rope_theta=10_000.0, qk_norm=True
            ),
            x_seq,
        ),
        GradCase(
            "transformer_lm",
            nn.transformer_lm(7, 4, num_heads=2, depth=1, max_len=6, mlp_ratio=2),
            ids,
        ),
    ]


def _output_only(layer: nn.Layer, in_shape: Sequence[int]) -> nn.Layer:
    """A stateful layer seen through its output alone, from its initial state: the new state
    (running statistics) is carried, not differentiated, so it is not part of the loss."""
    state = nn.initial_state(layer, in_shape)

    def apply(params: Any, x: Any, **kwargs: Any) -> Any:
        return layer.apply(params, x, state=state, **kwargs)[0]

    return nn.Layer(layer.init, apply, layer.name)


def case_loss(case: GradCase, seed: int = 0) -> tuple[Callable[[Any], Array], dict[str, Any]]:
    """The scalar loss L(tree) = Σ r ⊙ f(θ, x) of a case, and the tree {"params": θ[, "x": x]}.

    θ has the layout `case.layer.init` gives but is drawn at a generic point, θ ~ N(0, ½²)
    in float64: a gradient must be right everywhere, not only at init, and tracing init for
    its shapes (instead of running it) spares compiling it. Call inside `jax.enable_x64(True)`.
    """
    x = np.asarray(case.x)
    floating_input = np.issubdtype(x.dtype, np.floating)
    shapes = jax.eval_shape(lambda key: case.layer.init(key, x.shape)[0], jax.random.PRNGKey(0))
    rng = np.random.default_rng(seed)
    tree = {"params": jax.tree.map(lambda s: 0.5 * rng.standard_normal(s.shape), shapes)}
    if floating_input:
        tree["x"] = x.astype(np.float64)

    def forward(tree: dict[str, Any]) -> Any:
        inputs = tree["x"] if floating_input else x
        return case.layer.apply(tree["params"], inputs, **case.kwargs)

    outputs = jax.eval_shape(forward, tree)
    weights = [rng.standard_normal(o.shape) for o in jax.tree.leaves(outputs)]

    def loss(tree: dict[str, Any]) -> Array:
        ys = jax.tree.leaves(forward(tree))
        terms = [jnp.sum(r * y) for r, y in zip(weights, ys, strict=True)]  # ≥ 1 output
        return functools.reduce(operator.add, terms)

    return loss, tree


class CaseReport(NamedTuple):
    """A layer case and the agreement of each of its leaves."""

    name: str
    leaves: list[LeafError]


def check_layers(
    cases: Sequence[GradCase] | None = None, *, seed: int = 0, eps: float = DEFAULT_EPS
) -> list[CaseReport]:
    """Run `leaf_errors` on every case (default: `layer_cases(seed)`), in float64."""
    with jax.enable_x64(True):
        cases = layer_cases(seed) if cases is None else cases
        reports = []
        for case in cases:
            loss, tree = case_loss(case, seed)
            reports.append(CaseReport(case.name, leaf_errors(loss, tree, eps=eps)))
    return reports


# ---------------------------------------------------------------------------- cost of backprop


class CostRow(NamedTuple):
    """Timings (seconds, medians) for one model of `num_params` parameters.

    fd_evals:  forward passes central differences need, 2·N.
    fd_time:   time of those passes, extrapolated from `fd_sample` timed perturbed passes.
    forward_flops, backprop_flops: XLA's own count of floating-point operations in the
               compiled programs — a machine-independent cost, unaffected by load.
    """

    num_params: int
    forward_time: float
    backprop_time: float
    ratio: float
    fd_evals: int
    fd_sample: int
    fd_time: float
    forward_flops: float
    backprop_flops: float

    @property
    def flop_ratio(self) -> float:
        """backprop FLOPs / forward FLOPs (reverse mode: ≈ 3 for an MLP, bounded in N)."""
        return self.backprop_flops / self.forward_flops


def compiled_flops(fn: Callable[..., Any], *args: Any) -> float:
    """Floating-point operations XLA counts in the compiled `jax.jit(fn)` for `args`."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if analysis is None:
        raise RuntimeError("this backend gives no cost analysis, so FLOPs cannot be counted.")
    if isinstance(analysis, (list, tuple)):  # older jax returned one dict per device
        analysis = analysis[0]
    return float(analysis["flops"])


def cost_model(
    target_params: int, *, in_features: int = 16, batch: int = 64, seed: int = 0
) -> tuple[Callable[[Any, Array, Array], Array], Any, Array, Array]:
    """An MLP [in, h, h, 1] with h chosen so N = h² + (in + 3)·h + 1 ≈ `target_params`.

    Returns `(loss, params, x, y)` with loss(θ, x, y) = mean (f(θ, x) − y)², x (batch, in).
    """
    check_positive_int(target_params, "target_params")
    b = in_features + 3
    width = max(1, round((-b + math.sqrt(b * b + 4 * (target_params - 1))) / 2))
    model = nn.mlp([in_features, width, width, 1], activations.tanh)
    # Weights w ~ N(0, 1/fan_in) (LeCun) and zero biases drawn with NumPy at init's shapes:
    # running init eagerly would compile each of its random ops, which dwarfs what we time.
    shapes = jax.eval_shape(lambda k: model.init(k, (batch, in_features))[0], jax.random.PRNGKey(0))
    rng = np.random.default_rng(seed)
    params = jax.tree.map(
        lambda s: jnp.asarray(
            rng.standard_normal(s.shape) / math.sqrt(s.shape[0])
            if len(s.shape) == 2
            else np.zeros(s.shape),
            jnp.float32,
        ),
        shapes,
    )
    x = jnp.asarray(rng.standard_normal((batch, in_features)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((batch, 1)), jnp.float32)

    def loss(params: Any, x: Array, y: Array) -> Array:
        return jnp.mean((model.apply(params, x) - y) ** 2)

    return loss, params, x, y


def median_times(
    fns: Mapping[str, Callable[..., Any]],
    args: Sequence[Any],
    *,
    repeats: int = 7,
    min_time: float = 5e-3,
) -> dict[str, float]:
    """Median seconds per call of each (jitted) function on `args`.

    Each repeat times a loop of `number` calls (calibrated so a loop lasts ≥ `min_time`) of
    every function in turn, so load on a shared machine hits all of them alike.
    """
    check_positive_int(repeats, "repeats")
    numbers = {}
    for name, fn in fns.items():
        jax.block_until_ready(fn(*args))  # compile
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        numbers[name] = max(1, math.ceil(min_time / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(numbers[name]):
                out = fn(*args)
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - start) / numbers[name])
    return {name: float(np.median(values)) for name, values in samples.items()}


def finite_difference_time(
    forward: Callable[[Any, Array, Array], Array],
    params: Any,
    x: Array,
    y: Array,
    *,
    sample: int = 100,
    eps: float = 1e-3,
) -> tuple[int, float]:
    """Time central differences on `sample` coordinates and extrapolate to all N.

    forward: the jitted loss L(θ, x, y). Coordinate i costs two passes, L(θ + ε·eᵢ) and
    L(θ − ε·eᵢ); the perturbed θ are built before the clock starts (on the host, so nothing
    new compiles). Returns (coordinates timed, estimated seconds for all N coordinates).
    """
    flat, unravel = ravel_pytree(params)
    n = flat.size
    count = min(check_positive_int(sample, "sample"), n)
    base = np.asarray(flat)

    def perturbed(i: int, delta: float) -> Any:
        shifted = base.copy()
        shifted[i] += delta
        return unravel(jnp.asarray(shifted))

    coords = np.linspace(0, n - 1, count).astype(int)
    thetas = [perturbed(i, d) for i in coords for d in (eps, -eps)]
    jax.block_until_ready(forward(thetas[0], x, y))  # compiled already; make sure
    start = time.perf_counter()
    values = [forward(theta, x, y) for theta in thetas]
    jax.block_until_ready(values)
    return count, (time.perf_counter() - start) / count * n


def backprop_cost(
    sizes: Sequence[int] = (100, 1_000, 10_000, 100_000),
    *,
    repeats: int = 7,
    fd_sample: int = 100,
    batch: int = 64,
    seed: int = 0,
) -> list[CostRow]:
    """For each target size N: one jitted forward pass L(θ) vs one jitted value_and_grad,
    and the 2·N forward passes central differences would need (timed on a sample)."""
    rows = []
    for target in sizes:
        loss, params, x, y = cost_model(target, batch=batch, seed=seed)
        n = int(ravel_pytree(params)[0].size)
        forward = jax.jit(loss)
        times = median_times(
            {"forward": forward, "backprop": jax.jit(jax.value_and_grad(loss))},
            (params, x, y),
            repeats=repeats,
        )
        sample, fd_time = finite_difference_time(forward, params, x, y, sample=fd_sample)
        fwd, bwd = times["forward"], times["backprop"]
        flops = [compiled_flops(f, params, x, y) for f in (loss, jax.value_and_grad(loss))]
        rows.append(CostRow(n, fwd, bwd, bwd / fwd, 2 * n, sample, fd_time, *flops))
    return rows
