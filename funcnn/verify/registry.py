"""Every optimizer configuration we verify, each paired with its float64 NumPy reference.

    from funcnn.optim import configs
    with jax.enable_x64(True):                       # float64 runs need x64
        results = configs.compare_all(num_steps=500, dtype="float64")
    for name, result in results.items():
        print(name, result.max_rel_error, result.max_lr_error)

`CONFIGS[name]` is an `OptimizerConfig(build, build_reference)`: `build()` returns a fresh
funcnn `GradientTransformation`, `build_reference()` a fresh `funcnn.reference.optim`
object with the same hyperparameters. Both run on the same small nonconvex problem
(`problem_params`, `problem_loss`, `problem_grad_numpy`) whose gradient depends on the
current parameters, so any difference in an update compounds over the steps.
`run_funcnn` runs all steps of every optimizer in one jitted program (a `lax.scan` each);
`reference.optim.run_reference` runs the NumPy loop; `compare_all`/`compare` do both and
report the errors. Used by `tests/test_reference_agreement.py` and
`scripts/compare_optimizers.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.optim import accumulators, aliases, modern, schedules, transforms
from funcnn.optim.base import GradientTransformation, chain, optimizer_step
from funcnn.optim.routing import partition
from funcnn.reference import optim as ref

__all__ = [
    "CONFIGS",
    "COUPLING",
    "DRIFT",
    "PROBLEM_SHAPES",
    "Comparison",
    "OptimizerConfig",
    "compare",
    "compare_all",
    "problem_grad_numpy",
    "problem_loss",
    "problem_params",
    "run_funcnn",
]

# --- the test problem ------------------------------------------------------------------

PROBLEM_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "dense": {"w": (3, 4), "b": (4,)},
    "conv": {"w": (2, 3, 2)},
}
COUPLING = 0.005  # strength of the term coupling every parameter to every other
DRIFT = 1.5  # a in problem_loss: keeps every gradient entry ≥ 0.2 (30 entries)


def problem_params(seed: int = 0) -> dict[str, Any]:
    """Nested float64 NumPy params with the shapes of `PROBLEM_SHAPES`, entries ~ N(0, 1.5²)."""
    rng = np.random.default_rng(seed)
    return {
        group: {name: 1.5 * rng.standard_normal(shape) for name, shape in leaves.items()}
        for group, leaves in PROBLEM_SHAPES.items()
    }


def problem_loss(params: Any) -> jax.Array:
    """f(θ) = Σᵢ [a·θᵢ + sin θᵢ] + c·(Σᵢ tanh θᵢ)² over every entry of every leaf (a = DRIFT).

    Smooth, nonconvex, and coupled across leaves through the last term. Since a > 1 + 2c·n
    (n = number of entries), ∂f/∂θᵢ ≥ a − 1 − 2c·n > 0: there is no stationary point. That is
    deliberate: near a minimum the adaptive methods (RMSProp, Adam with β₁ = 0) divide a
    vanishing gradient by its vanishing RMS and settle into a sign-like oscillation that
    amplifies rounding exponentially (measured: float64 runs of two *correct* codes drift
    from 1e-16 to 1e-2 apart within 500 steps). A drifting problem keeps every update a
    well-conditioned function of the gradient, so a difference means a different formula.
    """
    leaves = jax.tree.leaves(params)
    separable = sum(jnp.sum(DRIFT * x + jnp.sin(x)) for x in leaves)
    total_tanh = sum(jnp.sum(jnp.tanh(x)) for x in leaves)
    return jnp.asarray(separable + COUPLING * total_tanh * total_tanh)


def problem_grad_numpy(flat: ref.FlatParams) -> ref.FlatParams:
    """∂f/∂θᵢ = a + cos θᵢ + 2c·S·(1 − tanh² θᵢ), S = Σ tanh θ (float64, by hand)."""
    total_tanh = sum(float(np.sum(np.tanh(x))) for x in flat.values())
    return {
        k: DRIFT + np.cos(x) + 2 * COUPLING * total_tanh * (1 - np.tanh(x) ** 2)
        for k, x in flat.items()
    }


# --- the registry ----------------------------------------------------------------------


class OptimizerConfig(NamedTuple):
    """A funcnn optimizer and its NumPy twin, each built fresh by calling the factory."""

    build: Callable[[], GradientTransformation]
    build_reference: Callable[[], Any]


def _decay_ndim2(params: Any) -> Any:
    return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


def _decay_ndim2_reference(flat: ref.FlatParams) -> dict[str, bool]:
    return {k: x.ndim >= 2 for k, x in flat.items()}


# A prefix mask: the whole "conv" group is excluded, inside "dense" only "w" decays.
_TREE_MASK = {"conv": False, "dense": {"b": False, "w": True}}
_TREE_MASK_REFERENCE = {"conv/w": False, "dense/b": False, "dense/w": True}

_WARMUP_COSINE: dict[str, Any] = dict(
    peak_value=3e-2, warmup_steps=50, decay_steps=400, end_value=1e-3
)
_PIECEWISE: dict[str, Any] = dict(boundaries=[100, 300], values=[1e-2, 3e-3, 1e-3])


def _invert(mask: Any) -> Any:
    return jax.tree.map(lambda m: not m, mask)


class _MaskedReference(ref._Stage):
    """Reference for `masked`: the inner stage sees only the selected leaves."""

    def __init__(self, inner: Any, mask: dict[str, bool]):
        self.inner, self.mask = inner, mask

    def update(self, grads, params):
        chosen = [k for k in grads if self.mask[k]]
        inner = self.inner.update({k: grads[k] for k in chosen}, {k: params[k] for k in chosen})
        return {k: inner[k] if self.mask[k] else g for k, g in grads.items()}


CONFIGS: dict[str, OptimizerConfig] = {
    # SGD (PyTorch semantics)
    "sgd": OptimizerConfig(lambda: aliases.sgd(0.05), lambda: ref.SGD(0.05)),
    "sgd_momentum": OptimizerConfig(
        lambda: aliases.sgd(0.02, 0.9), lambda: ref.SGD(0.02, momentum=0.9)
    ),
    "sgd_nesterov": OptimizerConfig(
        lambda: aliases.sgd(0.02, 0.9, nesterov=True),
        lambda: ref.SGD(0.02, momentum=0.9, nesterov=True),
    ),
    "sgd_weight_decay": OptimizerConfig(
        lambda: aliases.sgd(0.05, weight_decay=0.1), lambda: ref.SGD(0.05, weight_decay=0.1)
    ),
    "sgd_momentum_weight_decay_exponential": OptimizerConfig(
        lambda: aliases.sgd(schedules.exponential_decay(0.03, 0.5, 100), 0.5, weight_decay=0.05),
        lambda: ref.SGD(
            ref.schedule_exponential_decay(0.03, 0.5, 100), momentum=0.5, weight_decay=0.05
        ),
    ),
    # RMSProp
    "rmsprop": OptimizerConfig(lambda: aliases.rmsprop(1e-2), lambda: ref.RMSProp(1e-2)),
    "rmsprop_centered": OptimizerConfig(
        lambda: aliases.rmsprop(1e-2, centered=True), lambda: ref.RMSProp(1e-2, centered=True)
    ),
    "rmsprop_eps_in_sqrt": OptimizerConfig(
        lambda: aliases.rmsprop(1e-2, 0.99, 1e-6, eps_in_sqrt=True),
        lambda: ref.RMSProp(1e-2, 0.99, 1e-6, eps_in_sqrt=True),
    ),
    "rmsprop_momentum": OptimizerConfig(
        lambda: aliases.rmsprop(3e-3, momentum=0.9), lambda: ref.RMSProp(3e-3, momentum=0.9)
    ),
    "rmsprop_weight_decay": OptimizerConfig(
        lambda: aliases.rmsprop(1e-2, weight_decay=0.1),
        lambda: ref.RMSProp(1e-2, weight_decay=0.1),
    ),
    "rmsprop_all_flags_cosine": OptimizerConfig(
        lambda: aliases.rmsprop(
            schedules.cosine_decay(1e-2, 400, 1e-3),
            0.95,
            1e-7,
            momentum=0.5,
            centered=True,
            eps_in_sqrt=True,
            weight_decay=0.01,
        ),
        lambda: ref.RMSProp(
            ref.schedule_cosine_decay(1e-2, 400, 1e-3),
            0.95,
            1e-7,
            momentum=0.5,
            centered=True,
            eps_in_sqrt=True,
            weight_decay=0.01,
        ),
    ),
    # Adam (coupled L2 weight decay)
    "adam": OptimizerConfig(lambda: aliases.adam(1e-2), lambda: ref.Adam(1e-2)),
    "adam_weight_decay": OptimizerConfig(
        lambda: aliases.adam(1e-2, weight_decay=0.1), lambda: ref.Adam(1e-2, weight_decay=0.1)
    ),
    "adam_b1_zero_int": OptimizerConfig(
        lambda: aliases.adam(1e-2, b1=0, b2=0.99, eps=1e-6),
        lambda: ref.Adam(1e-2, b1=0.0, b2=0.99, eps=1e-6),
    ),
    # AdamW (decoupled weight decay)
    "adamw": OptimizerConfig(
        lambda: aliases.adamw(1e-2, weight_decay=0.1), lambda: ref.AdamW(1e-2, weight_decay=0.1)
    ),
    "adamw_mask_fn": OptimizerConfig(
        lambda: aliases.adamw(1e-2, weight_decay=0.1, mask=_decay_ndim2),
        lambda: ref.AdamW(1e-2, weight_decay=0.1, mask=_decay_ndim2_reference),
    ),
    "adamw_mask_tree": OptimizerConfig(
        lambda: aliases.adamw(1e-2, weight_decay=0.1, mask=_TREE_MASK),
        lambda: ref.AdamW(1e-2, weight_decay=0.1, mask=_TREE_MASK_REFERENCE),
    ),
    "adamw_warmup_cosine": OptimizerConfig(
        lambda: aliases.adamw(schedules.warmup_cosine_decay(**_WARMUP_COSINE), weight_decay=0.1),
        lambda: ref.AdamW(ref.schedule_warmup_cosine_decay(**_WARMUP_COSINE), weight_decay=0.1),
    ),
    "adamw_linear_warmup": OptimizerConfig(
        lambda: aliases.adamw(schedules.linear_warmup(1e-2, 100, 1e-4), weight_decay=0.05),
        lambda: ref.AdamW(ref.schedule_linear_warmup(1e-2, 100, 1e-4), weight_decay=0.05),
    ),
    "adamw_linear_decay": OptimizerConfig(
        lambda: aliases.adamw(schedules.linear_schedule(1e-2, 1e-3, 300)),
        lambda: ref.AdamW(ref.schedule_linear(1e-2, 1e-3, 300)),
    ),
    "adamw_piecewise_constant": OptimizerConfig(
        lambda: aliases.adamw(schedules.piecewise_constant(**_PIECEWISE), b2=0.99),
        lambda: ref.AdamW(ref.schedule_piecewise_constant(**_PIECEWISE), b2=0.99),
    ),
    "adamw_constant_schedule": OptimizerConfig(
        lambda: aliases.adamw(schedules.constant(5e-3), eps=1e-6),
        lambda: ref.AdamW(ref.schedule_constant(5e-3), eps=1e-6),
    ),
    "clip_adamw_warmup_cosine": OptimizerConfig(
        lambda: chain(
            transforms.clip_by_global_norm(1.0),
            aliases.adamw(schedules.warmup_cosine_decay(**_WARMUP_COSINE), mask=_decay_ndim2),
        ),
        lambda: ref.Chain(
            ref.ClipByGlobalNorm(1.0),
            ref.AdamW(
                ref.schedule_warmup_cosine_decay(**_WARMUP_COSINE), mask=_decay_ndim2_reference
            ),
        ),
    ),
    "clip_eps_sgd_momentum": OptimizerConfig(
        lambda: chain(transforms.clip_by_global_norm(2.0, eps=1e-6), aliases.sgd(0.02, 0.9)),
        lambda: ref.Chain(ref.ClipByGlobalNorm(2.0, eps=1e-6), ref.SGD(0.02, momentum=0.9)),
    ),
    # hand-built chains of the small stages
    "chain_clip_scale_trace": OptimizerConfig(
        lambda: chain(
            transforms.clip(0.5),
            transforms.trace(0.8, nesterov=True),
            transforms.scale(-0.02),
        ),
        lambda: ref.Chain(ref.Clip(0.5), ref.Trace(0.8, nesterov=True), ref.Scale(-0.02)),
    ),
    "chain_rms_masked_adam": OptimizerConfig(
        lambda: chain(
            transforms.masked(transforms.scale_by_rms(0.9, 1e-8), _TREE_MASK),
            transforms.masked(transforms.scale_by_adam(0.8, 0.99), lambda p: _invert(_TREE_MASK)),
            transforms.scale_by_learning_rate(1e-2),
        ),
        lambda: ref.Chain(
            _MaskedReference(ref.ScaleByRms(0.9, 1e-8), _TREE_MASK_REFERENCE),
            _MaskedReference(ref.ScaleByAdam(0.8, 0.99), _invert(_TREE_MASK_REFERENCE)),
            ref.ScaleByLearningRate(1e-2),
        ),
    ),
    # Adagrad (torch.optim.Adagrad; eps_in_sqrt with s₀ = 0.1, ε = 1e-7 is optax's)
    "adagrad": OptimizerConfig(lambda: aliases.adagrad(0.1), lambda: ref.Adagrad(0.1)),
    "adagrad_lr_decay_initial_accumulator": OptimizerConfig(
        lambda: aliases.adagrad(0.1, lr_decay=0.01, initial_accumulator_value=0.5),
        lambda: ref.Adagrad(0.1, lr_decay=0.01, initial_accumulator_value=0.5),
    ),
    "adagrad_optax_eps_in_sqrt": OptimizerConfig(
        lambda: aliases.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True),
        lambda: ref.Adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7, eps_in_sqrt=True),
    ),
    "adagrad_weight_decay_lr_decay_cosine": OptimizerConfig(
        lambda: aliases.adagrad(
            schedules.cosine_decay(0.2, 400, 1e-2), lr_decay=1e-3, weight_decay=0.1
        ),
        lambda: ref.Adagrad(
            ref.schedule_cosine_decay(0.2, 400, 1e-2), lr_decay=1e-3, weight_decay=0.1
        ),
    ),
    # Adadelta (torch.optim.Adadelta)
    "adadelta": OptimizerConfig(lambda: aliases.adadelta(), lambda: ref.Adadelta()),
    "adadelta_weight_decay": OptimizerConfig(
        lambda: aliases.adadelta(0.5, 0.95, 1e-4, weight_decay=0.1),
        lambda: ref.Adadelta(0.5, 0.95, 1e-4, weight_decay=0.1),
    ),
    "adadelta_exponential": OptimizerConfig(
        lambda: aliases.adadelta(schedules.exponential_decay(2.0, 0.5, 100), rho=0.8),
        lambda: ref.Adadelta(ref.schedule_exponential_decay(2.0, 0.5, 100), rho=0.8),
    ),
    # Adamax (torch.optim.Adamax)
    "adamax": OptimizerConfig(lambda: aliases.adamax(1e-2), lambda: ref.Adamax(1e-2)),
    "adamax_weight_decay": OptimizerConfig(
        lambda: aliases.adamax(1e-2, 0.8, 0.99, 1e-6, weight_decay=0.1),
        lambda: ref.Adamax(1e-2, 0.8, 0.99, 1e-6, weight_decay=0.1),
    ),
    # NAdam (torch.optim.NAdam: μₜ schedule)
    "nadam": OptimizerConfig(lambda: aliases.nadam(1e-2), lambda: ref.NAdam(1e-2)),
    "nadam_weight_decay": OptimizerConfig(
        lambda: aliases.nadam(1e-2, weight_decay=0.1, momentum_decay=1e-2),
        lambda: ref.NAdam(1e-2, weight_decay=0.1, momentum_decay=1e-2),
    ),
    "nadam_decoupled_weight_decay_cosine": OptimizerConfig(
        lambda: aliases.nadam(
            schedules.warmup_cosine_decay(**_WARMUP_COSINE),
            b2=0.99,
            weight_decay=0.1,
            decoupled_weight_decay=True,
        ),
        lambda: ref.NAdam(
            ref.schedule_warmup_cosine_decay(**_WARMUP_COSINE),
            b2=0.99,
            weight_decay=0.1,
            decoupled_weight_decay=True,
        ),
    ),
    # RAdam (torch.optim.RAdam: rectified only where ρₜ > 5)
    "radam": OptimizerConfig(lambda: aliases.radam(1e-2), lambda: ref.RAdam(1e-2)),
    "radam_b2_0.9_small_rho_inf": OptimizerConfig(
        # ρ∞ = 19: rectified from t = 6 on (as with β₂ = 0.999), rₜ far below 1 for longer.
        lambda: aliases.radam(1e-2, 0.8, 0.9, 1e-6),
        lambda: ref.RAdam(1e-2, 0.8, 0.9, 1e-6),
    ),
    "radam_b2_0.6_never_rectified": OptimizerConfig(
        # ρ∞ = 4 ≤ 5: every step is the unrectified branch d = m̂.
        lambda: aliases.radam(1e-2, 0.9, 0.6),
        lambda: ref.RAdam(1e-2, 0.9, 0.6),
    ),
    "radam_weight_decay": OptimizerConfig(
        lambda: aliases.radam(1e-2, weight_decay=0.1), lambda: ref.RAdam(1e-2, weight_decay=0.1)
    ),
    "radam_decoupled_weight_decay_linear": OptimizerConfig(
        lambda: aliases.radam(
            schedules.linear_schedule(1e-2, 1e-3, 300),
            weight_decay=0.1,
            decoupled_weight_decay=True,
        ),
        lambda: ref.RAdam(
            ref.schedule_linear(1e-2, 1e-3, 300), weight_decay=0.1, decoupled_weight_decay=True
        ),
    ),
    # Rprop (torch.optim.Rprop). The registry problem's gradient never changes sign, so the
    # first two runs grow the steps up to Δmax; the third adds an L2 term (a minimum), so
    # signs flip and the steps shrink.
    "rprop": OptimizerConfig(lambda: aliases.rprop(), lambda: ref.Rprop()),
    "rprop_etas_step_sizes": OptimizerConfig(
        lambda: aliases.rprop(1e-3, etas=(0.3, 1.5), step_sizes=(1e-4, 0.1)),
        lambda: ref.Rprop(1e-3, etas=(0.3, 1.5), step_sizes=(1e-4, 0.1)),
    ),
    "rprop_sign_flips": OptimizerConfig(
        lambda: chain(transforms.add_decayed_weights(1.0), aliases.rprop(0.1)),
        lambda: ref.Chain(ref.AddDecayedWeights(1.0), ref.Rprop(0.1)),
    ),
    # ASGD (torch.optim.ASGD; the averaged params are checked in tests/test_optim_zoo_torch.py)
    "asgd": OptimizerConfig(lambda: aliases.asgd(0.05), lambda: ref.ASGD(0.05)),
    "asgd_lambd_alpha_t0_weight_decay": OptimizerConfig(
        lambda: aliases.asgd(0.05, lambd=0.05, alpha=0.5, t0=100, weight_decay=0.1),
        lambda: ref.ASGD(0.05, lambd=0.05, alpha=0.5, t0=100, weight_decay=0.1),
    ),
    "asgd_piecewise_constant": OptimizerConfig(
        lambda: aliases.asgd(schedules.piecewise_constant(**_PIECEWISE), lambd=1e-2),
        lambda: ref.ASGD(ref.schedule_piecewise_constant(**_PIECEWISE), lambd=1e-2),
    ),
    # the new stages chained by hand (a reference optimizer run with η = −1 returns +d,
    # the direction the stage alone produces)
    "chain_adamax_stage_masked_radam": OptimizerConfig(
        lambda: chain(
            transforms.masked(accumulators.scale_by_adamax(0.9, 0.99), _TREE_MASK),
            transforms.masked(
                accumulators.scale_by_radam(0.9, 0.99), lambda p: _invert(_TREE_MASK)
            ),
            transforms.scale_by_learning_rate(1e-2),
        ),
        lambda: ref.Chain(
            _MaskedReference(ref.Adamax(-1.0, 0.9, 0.99), _TREE_MASK_REFERENCE),
            _MaskedReference(ref.RAdam(-1.0, 0.9, 0.99), _invert(_TREE_MASK_REFERENCE)),
            ref.ScaleByLearningRate(1e-2),
        ),
    ),
}


# --- AMSGrad, Lion, LAMB, the trust ratio, partition (funcnn/optim/modern.py, partition.py) --

_LAMB_WARMUP_COSINE: dict[str, Any] = dict(
    peak_value=5e-3, warmup_steps=50, decay_steps=400, end_value=1e-4
)
_PARTITION_TREE = {"conv": "sgd", "dense": {"b": "sgd", "w": "adamw"}}  # a prefix: conv → sgd
_PARTITION_TREE_REFERENCE = {"conv/w": "sgd", "dense/b": "sgd", "dense/w": "adamw"}


def _by_rank(params: Any) -> Any:
    return jax.tree.map(lambda x: "matrix" if jnp.ndim(x) >= 2 else "rest", params)


def _by_rank_reference(flat: ref.FlatParams) -> dict[str, str]:
    return {k: "matrix" if x.ndim >= 2 else "rest" for k, x in flat.items()}


CONFIGS.update(
    {
        # AMSGrad (torch's Adam/AdamW(amsgrad=True): max of the uncorrected v)
        "adam_amsgrad": OptimizerConfig(
            lambda: aliases.adam(1e-2, amsgrad=True), lambda: ref.Adam(1e-2, amsgrad=True)
        ),
        "adam_amsgrad_b2_0.9_weight_decay": OptimizerConfig(
            lambda: aliases.adam(1e-2, 0.8, 0.9, 1e-6, weight_decay=0.1, amsgrad=True),
            lambda: ref.Adam(1e-2, 0.8, 0.9, 1e-6, weight_decay=0.1, amsgrad=True),
        ),
        "adamw_amsgrad": OptimizerConfig(
            lambda: aliases.adamw(1e-2, weight_decay=0.1, amsgrad=True),
            lambda: ref.AdamW(1e-2, weight_decay=0.1, amsgrad=True),
        ),
        "adamw_amsgrad_mask_warmup_cosine": OptimizerConfig(
            lambda: aliases.adamw(
                schedules.warmup_cosine_decay(**_WARMUP_COSINE),
                b2=0.95,
                weight_decay=0.1,
                mask=_decay_ndim2,
                amsgrad=True,
            ),
            lambda: ref.AdamW(
                ref.schedule_warmup_cosine_decay(**_WARMUP_COSINE),
                b2=0.95,
                weight_decay=0.1,
                mask=_decay_ndim2_reference,
                amsgrad=True,
            ),
        ),
        # Lion (optax's lion). The registry gradient is > 0 everywhere, so sign(c) = 1 and m
        # is not seen by the first two; the third adds an L2 term (a minimum) so signs flip.
        # Schedules, not constant rates: θ − η with one η every step rounds the same way each
        # time in float32 (measured 1.2e-5 after 500 steps at η = 1e-3, float64 exact).
        "lion_cosine": OptimizerConfig(
            lambda: aliases.lion(schedules.cosine_decay(1e-3, 500, 1e-4)),
            lambda: ref.Lion(ref.schedule_cosine_decay(1e-3, 500, 1e-4)),
        ),
        "lion_weight_decay_mask_linear": OptimizerConfig(
            lambda: aliases.lion(
                schedules.linear_schedule(3e-3, 1e-4, 500),
                0.8,
                0.95,
                weight_decay=0.3,
                mask=_TREE_MASK,
            ),
            lambda: ref.Lion(
                ref.schedule_linear(3e-3, 1e-4, 500),
                0.8,
                0.95,
                weight_decay=0.3,
                mask=_TREE_MASK_REFERENCE,
            ),
        ),
        "lion_sign_flips_cosine": OptimizerConfig(
            lambda: chain(
                transforms.add_decayed_weights(1.0),
                aliases.lion(schedules.cosine_decay(1e-2, 400, 1e-3), 0.5, 0.9, weight_decay=0.1),
            ),
            lambda: ref.Chain(
                ref.AddDecayedWeights(1.0),
                ref.Lion(ref.schedule_cosine_decay(1e-2, 400, 1e-3), 0.5, 0.9, weight_decay=0.1),
            ),
        ),
        # LAMB (optax's lamb: Adam direction + decay, then the per-leaf trust ratio). Every
        # step has length η·‖θₗ‖ whatever ‖r‖ is, so once θ nears −1/λ (r ≈ 0) the direction
        # is decided by rounding: two float64 codes drift 1e-2 apart (measured at η = 1e-2,
        # λ = 0.1). The rates and decays below stay away from that equilibrium for 500 steps.
        "lamb": OptimizerConfig(lambda: aliases.lamb(1e-2), lambda: ref.Lamb(1e-2)),
        "lamb_weight_decay": OptimizerConfig(
            lambda: aliases.lamb(3e-3, 0.8, 0.99, 1e-8, weight_decay=0.05),
            lambda: ref.Lamb(3e-3, 0.8, 0.99, 1e-8, weight_decay=0.05),
        ),
        "lamb_mask_warmup_cosine": OptimizerConfig(
            lambda: aliases.lamb(
                schedules.warmup_cosine_decay(**_LAMB_WARMUP_COSINE),
                weight_decay=0.05,
                mask=_decay_ndim2,
            ),
            lambda: ref.Lamb(
                ref.schedule_warmup_cosine_decay(**_LAMB_WARMUP_COSINE),
                weight_decay=0.05,
                mask=_decay_ndim2_reference,
            ),
        ),
        # LARS-like: the trust ratio stage with every option, before momentum
        "chain_trust_ratio_options_trace": OptimizerConfig(
            lambda: chain(
                transforms.add_decayed_weights(0.01),
                modern.scale_by_trust_ratio(5.0, trust_coefficient=0.02, eps=1e-8),
                transforms.trace(0.9),
                transforms.scale_by_learning_rate(0.5),
            ),
            lambda: ref.Chain(
                ref.AddDecayedWeights(0.01),
                ref.ScaleByTrustRatio(5.0, 0.02, 1e-8),
                ref.Trace(0.9),
                ref.ScaleByLearningRate(0.5),
            ),
        ),
        # partition: each label's optimizer on its own leaves only
        "partition_tree_sgd_adamw": OptimizerConfig(
            lambda: partition(
                {"sgd": aliases.sgd(0.02, 0.9), "adamw": aliases.adamw(1e-2, weight_decay=0.1)},
                _PARTITION_TREE,
            ),
            lambda: ref.Partition(
                {"sgd": ref.SGD(0.02, momentum=0.9), "adamw": ref.AdamW(1e-2, weight_decay=0.1)},
                _PARTITION_TREE_REFERENCE,
            ),
        ),
        "partition_fn_lamb_clipped_scale": OptimizerConfig(
            # one learning-rate stage in all: current_learning_rate is compared too; the clip
            # measures the norm of the "rest" leaves only.
            lambda: partition(
                {
                    "matrix": aliases.lamb(3e-3, weight_decay=0.05),
                    "rest": chain(transforms.clip_by_global_norm(1.0), transforms.scale(-0.01)),
                },
                _by_rank,
            ),
            lambda: ref.Partition(
                {
                    "matrix": ref.Lamb(3e-3, weight_decay=0.05),
                    "rest": ref.Chain(ref.ClipByGlobalNorm(1.0), ref.Scale(-0.01)),
                },
                _by_rank_reference,
            ),
        ),
        "partition_fn_amsgrad_lion": OptimizerConfig(
            lambda: partition(
                {
                    "matrix": aliases.adamw(1e-2, b2=0.9, amsgrad=True),
                    "rest": aliases.lion(1e-3, weight_decay=0.1),
                },
                _by_rank,
            ),
            lambda: ref.Partition(
                {
                    "matrix": ref.AdamW(1e-2, b2=0.9, amsgrad=True),
                    "rest": ref.Lion(1e-3, weight_decay=0.1),
                },
                _by_rank_reference,
            ),
        ),
    }
)


# --- Adafactor, Muon, schedule-free AdamW (factored.py, modern.py, schedule_free.py) ------


def _by_rank2(params: Any) -> Any:
    return jax.tree.map(lambda x: "muon" if jnp.ndim(x) == 2 else "rest", params)


def _by_rank2_reference(flat: ref.FlatParams) -> dict[str, str]:
    return {k: "muon" if x.ndim == 2 else "rest" for k, x in flat.items()}


CONFIGS.update(
    {
        # Adafactor (torch.optim.Adafactor). dense/w (3, 4) and conv/w (2, 3, 2) are
        # factored (the latter over its last two axes, per leading index), dense/b is not.
        # At η = 1e-2 the relative step is η throughout. In the third, ε₁ = 0.8 floors √V̂
        # where |g| < 0.8 (and ε₁² ≠ ε₁), ε₂ = 2 exceeds RMS(θ) at the start, and d = 1
        # clips some steps.
        "adafactor": OptimizerConfig(lambda: aliases.adafactor(), lambda: ref.Adafactor()),
        "adafactor_relative_step_cap_strong_decay": OptimizerConfig(
            # ρₜ = min(0.5, 1/√t) is capped from t = 5 on. A large relative step alone is
            # chaotic on this problem (at η = 0.1 without decay two float64 codes drift from
            # 1e-16 to 0.3 apart by step 100: steps of 0.1·RMS(θ) radians sample the sin
            # term erratically once |θ| is large); λ = 1 holds θ near the ε₂ floor instead.
            lambda: aliases.adafactor(0.5, weight_decay=1.0),
            lambda: ref.Adafactor(0.5, weight_decay=1.0),
        ),
        "adafactor_floors_clip_mask_cosine": OptimizerConfig(
            lambda: aliases.adafactor(
                schedules.cosine_decay(3e-2, 400, 1e-3),
                beta2_decay=-0.5,
                eps=(0.8, 2.0),
                d=1.0,
                weight_decay=0.05,
                mask=_TREE_MASK,
            ),
            lambda: ref.Adafactor(
                ref.schedule_cosine_decay(3e-2, 400, 1e-3),
                beta2_decay=-0.5,
                eps=(0.8, 2.0),
                d=1.0,
                weight_decay=0.05,
                mask=_TREE_MASK_REFERENCE,
            ),
        ),
        # Muon (torch.optim.Muon) on the one 2-D leaf (dense/w, 3 × 4), another optimizer on
        # the rest through partition, as Muon requires. "original" gives r = √max(1, 3/4) = 1
        # here; "match_rms_adamw" r = 0.2·√4 = 0.4 (tests/test_optim_zoo_more.py checks a
        # tall matrix where "original" is not 1).
        "muon_partition_adamw": OptimizerConfig(
            lambda: partition(
                {"muon": aliases.muon(0.02), "rest": aliases.adamw(1e-2, weight_decay=0.1)},
                _by_rank2,
            ),
            lambda: ref.Partition(
                {"muon": ref.Muon(0.02), "rest": ref.AdamW(1e-2, weight_decay=0.1)},
                _by_rank2_reference,
            ),
        ),
        "muon_plain_momentum_match_rms_adamw_cosine": OptimizerConfig(
            lambda: partition(
                {
                    "muon": aliases.muon(
                        schedules.cosine_decay(5e-2, 500, 5e-3),
                        weight_decay=0.05,
                        momentum=0.9,
                        nesterov=False,
                        adjust_lr_fn="match_rms_adamw",
                    ),
                    "rest": aliases.sgd(0.02, 0.9),
                },
                _by_rank2,
            ),
            lambda: ref.Partition(
                {
                    "muon": ref.Muon(
                        ref.schedule_cosine_decay(5e-2, 500, 5e-3),
                        weight_decay=0.05,
                        momentum=0.9,
                        nesterov=False,
                        adjust_lr_fn="match_rms_adamw",
                    ),
                    "rest": ref.SGD(0.02, momentum=0.9),
                },
                _by_rank2_reference,
            ),
        ),
        "muon_cubic_newton_schulz_no_decay": OptimizerConfig(
            # the classical cubic iteration X ← 1.5X − 0.5XXᵀX (converges to U·Vᵀ), 10 steps
            lambda: partition(
                {
                    "muon": aliases.muon(
                        0.02,
                        weight_decay=0.0,
                        ns_coefficients=(1.5, -0.5, 0.0),
                        ns_steps=10,
                        eps=1e-5,
                        adjust_lr_fn="original",
                    ),
                    "rest": transforms.scale(-0.01),
                },
                _by_rank2,
            ),
            lambda: ref.Partition(
                {
                    "muon": ref.Muon(
                        0.02,
                        weight_decay=0.0,
                        ns_coefficients=(1.5, -0.5, 0.0),
                        ns_steps=10,
                        eps=1e-5,
                        adjust_lr_fn="original",
                    ),
                    "rest": ref.Scale(-0.01),
                },
                _by_rank2_reference,
            ),
        ),
        # schedule-free AdamW (optax.contrib.schedule_free_adamw); the funcnn run is compared
        # at y (the params the loop holds); x is checked in tests/test_optim_zoo_more.py.
        "schedule_free_adamw": OptimizerConfig(
            lambda: aliases.schedule_free_adamw(1e-2), lambda: ref.ScheduleFreeAdamW(1e-2)
        ),
        "schedule_free_adamw_warmup_weight_decay": OptimizerConfig(
            lambda: aliases.schedule_free_adamw(
                1e-2, 0.95, 0.99, 1e-6, weight_decay=0.1, warmup_steps=50
            ),
            lambda: ref.ScheduleFreeAdamW(
                1e-2, 0.95, 0.99, 1e-6, weight_decay=0.1, warmup_steps=50
            ),
        ),
        "schedule_free_adamw_warmup_cosine_power_1": OptimizerConfig(
            # a schedule that rises then falls: γ̄ = max γ so far holds the peak
            lambda: aliases.schedule_free_adamw(
                schedules.warmup_cosine_decay(3e-2, 50, 400, 1e-3), weight_lr_power=1.0
            ),
            lambda: ref.ScheduleFreeAdamW(
                ref.schedule_warmup_cosine_decay(3e-2, 50, 400, 1e-3), weight_lr_power=1.0
            ),
        ),
    }
)


# --- runners ---------------------------------------------------------------------------


def run_funcnn(
    optimizers: Mapping[str, GradientTransformation], params: Any, num_steps: int
) -> dict[str, tuple[Any, jax.Array]]:
    """θₖ₊₁ = θₖ + update(∇f(θₖ)) for `num_steps` steps of `problem_loss`, per optimizer.

    All optimizers run in one jitted program (one `lax.scan` each), so a whole registry
    compiles once. Returns name -> (final params, learning rate used at each step, or NaN
    where the optimizer has no `scale_by_learning_rate` stage).
    """

    def rate_of(state: Any) -> jax.Array:
        try:
            return transforms.current_learning_rate(state)
        except ValueError:
            return jnp.full([], jnp.nan, jnp.float32)

    def run_one(optimizer: GradientTransformation, theta: Any):
        def body(carry, _):
            theta, state = carry
            grads = jax.grad(problem_loss)(theta)
            theta, state = optimizer_step(optimizer, grads, state, theta)
            return (theta, state), rate_of(state)

        (theta, _), rates = jax.lax.scan(body, (theta, optimizer.init(theta)), length=num_steps)
        return theta, rates

    @jax.jit
    def run_all(theta):
        return {name: run_one(optimizer, theta) for name, optimizer in optimizers.items()}

    return run_all(params)


class Comparison(NamedTuple):
    """max_rel_error: max over leaves of ‖θ − θ_ref‖∞/‖θ_ref‖∞ after the run.
    max_lr_error: max over steps of |η − η_ref|/|η_ref| (0 if there is no rate)."""

    max_rel_error: float
    max_lr_error: float
    params: dict[str, np.ndarray]
    reference_params: dict[str, np.ndarray]


def compare_all(
    configs: Mapping[str, OptimizerConfig] | None = None,
    num_steps: int = 500,
    dtype: Any = "float64",
    seed: int = 0,
) -> dict[str, Comparison]:
    """Run each configuration (default: all of `CONFIGS`) through funcnn in `dtype` and
    through the float64 reference, from `problem_params(seed)` rounded to `dtype`.

    A float64 run needs x64: `with jax.enable_x64(True): compare_all(dtype="float64")`
    (a TypeError says so otherwise).
    """
    configs = CONFIGS if configs is None else configs
    dtype = np.dtype(dtype)
    start = jax.tree.map(lambda x: np.asarray(x, dtype), problem_params(seed))
    theta = jax.tree.map(jnp.asarray, start)
    if any(x.dtype != dtype for x in jax.tree.leaves(theta)):
        raise TypeError(f"dtype={dtype} needs jax x64 mode: wrap the call in jax.enable_x64(True).")
    results = run_funcnn({name: c.build() for name, c in configs.items()}, theta, num_steps)
    comparisons = {}
    for name, config in configs.items():
        final, rates = results[name]
        ref_final, ref_rates = ref.run_reference(
            config.build_reference(), ref.flatten_params(start), problem_grad_numpy, num_steps
        )
        ours = ref.flatten_params(jax.tree.map(np.asarray, final))
        comparisons[name] = Comparison(
            max_rel_error=max(_relative_error(ours[k], ref_final[k]) for k in ref_final),
            max_lr_error=_lr_error(np.asarray(rates, np.float64), ref_rates),
            params=ours,
            reference_params=ref_final,
        )
    return comparisons


def compare(name: str, num_steps: int = 500, dtype: Any = "float64", seed: int = 0) -> Comparison:
    """`compare_all` for the one registered configuration `name`."""
    if name not in CONFIGS:
        raise KeyError(f"unknown optimizer configuration {name!r}; choose from {list(CONFIGS)}.")
    return compare_all({name: CONFIGS[name]}, num_steps, dtype, seed)[name]


def _relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """‖a − b‖∞ / ‖b‖∞ (norm-wise, so entries passing near 0 do not inflate it)."""
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))


def _lr_error(rates: np.ndarray, reference_rates: np.ndarray) -> float:
    has_rate = ~np.isnan(reference_rates)
    if not has_rate.any():
        return 0.0
    ours, theirs = rates[has_rate], reference_rates[has_rate]
    return float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-30)))
