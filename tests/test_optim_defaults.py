"""Optimizer defaults are part of the API: a user who writes `optim.adam()` or `optim.rprop()`
expects the peer's numbers. Two checks, each able to fail on its own:

1. every public optimizer function's defaults equal the documented table below (each row
   says whose defaults it follows — torch.optim's or optax's — or that the choice is ours);
2. each alias run with *only* its defaults agrees, in float64, with its `funcnn.reference`
   transcription run with only *its* defaults — two independent spellings of the same numbers.
"""

import inspect

import jax
import numpy as np
import pytest

from funcnn import optim
from funcnn.reference import optim as ref
from funcnn.verify import registry, runner

# name → defaults. torch: torch.optim's class of that name; optax: optax's function of that
# name; ours: a choice documented in the function's docstring (no peer default exists).
DEFAULTS = {
    # torch.optim.SGD / Adadelta / Adagrad / Adamax / ASGD / NAdam / RAdam / Rprop
    "sgd": {"learning_rate": 1e-3, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adadelta": {"learning_rate": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
    "adagrad": {
        "learning_rate": 1e-2,
        "lr_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
        "weight_decay": 0.0,
        "eps_in_sqrt": False,
    },
    "adamax": {"learning_rate": 2e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "asgd": {
        "learning_rate": 1e-2,
        "lambd": 1e-4,
        "alpha": 0.75,
        "t0": 1e6,
        "weight_decay": 0.0,
    },
    "nadam": {
        "learning_rate": 2e-3,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum_decay": 4e-3,
        "decoupled_weight_decay": False,
    },
    "radam": {
        "learning_rate": 1e-3,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
    },
    "rprop": {"learning_rate": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50.0)},
    # torch.optim.Adafactor and torch.optim.Muon
    "adafactor": {
        "learning_rate": 1e-2,
        "beta2_decay": -0.8,
        "eps": (None, 1e-3),
        "d": 1.0,
        "weight_decay": 0.0,
    },
    "muon": {
        "learning_rate": 1e-3,
        "weight_decay": 0.1,
        "momentum": 0.95,
        "nesterov": True,
        "ns_coefficients": (3.4445, -4.775, 2.0315),
        "eps": 1e-7,
        "ns_steps": 5,
        "adjust_lr_fn": None,
    },
    # betas/eps of torch and optax; the learning rate 3e-4 is ours (docstring)
    "adam": {
        "learning_rate": 3e-4,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "fused": None,
    },
    "adamw": {
        "learning_rate": 3e-4,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "weight_decay": 1e-2,
        "amsgrad": False,
        "fused": None,
    },
    # optax.rmsprop's decay/eps (torch's alpha is 0.99); optax.lamb; optax.lion's betas with
    # weight decay off by default (ours: decay is opt-in for every alias but adamw/muon)
    "rmsprop": {
        "learning_rate": 1e-2,
        "decay": 0.9,
        "eps": 1e-8,
        "momentum": 0.0,
        "centered": False,
        "eps_in_sqrt": False,
        "weight_decay": 0.0,
    },
    "lamb": {"learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-6, "weight_decay": 0.0},
    "lion": {"learning_rate": 1e-4, "b1": 0.9, "b2": 0.99, "weight_decay": 0.0},
    # optax.contrib.schedule_free_adamw
    "schedule_free_adamw": {
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "warmup_steps": 0,
        "weight_lr_power": 2.0,
    },
    "schedule_free": {"b1": 0.9, "weight_lr_power": 2.0},
    # the stages: optax's scale_by_* defaults
    "scale_by_adam": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "amsgrad": False, "fused": None},
    "scale_by_amsgrad": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "fused": None},
    "scale_by_adamax": {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
    "scale_by_adam_rms": {"b2": 0.999, "eps": 1e-8},
    "scale_by_nadam": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "momentum_decay": 4e-3},
    "scale_by_radam": {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
    "scale_by_rms": {"decay": 0.9, "eps": 1e-8, "eps_in_sqrt": False, "centered": False},
    "scale_by_adagrad": {"initial_accumulator_value": 0.0, "eps": 1e-10, "eps_in_sqrt": False},
    "scale_by_adadelta": {"rho": 0.9, "eps": 1e-6},
    "scale_by_lion": {"b1": 0.9, "b2": 0.99},
    "scale_by_rprop": {
        "initial_step_size": 1e-2,
        "etas": (0.5, 1.2),
        "step_sizes": (1e-6, 50.0),
    },
    "scale_by_trust_ratio": {"min_norm": 0.0, "trust_coefficient": 1.0, "eps": 0.0},
    "scale_by_factored_rms": {"beta2_decay": -0.8, "eps": None},
    "scale_by_param_block_rms": {"min_scale": 1e-3},
    "scale_by_shape": {"adjust_lr_fn": None},
    "ema_momentum": {"decay": 0.95, "nesterov": True},
    "orthogonalize_by_newton_schulz": {
        "ns_coefficients": (3.4445, -4.775, 2.0315),
        "ns_steps": 5,
        "eps": 1e-7,
    },
    "trace": {"nesterov": False},
    "add_decayed_weights": {"weight_decay": 0.0},
    "average_params": {"t0": 1e6},
    "clip_by_global_norm": {"eps": 0.0},
    "clip_by_block_rms": {"threshold": 1.0},
    "skip_nonfinite": {"max_consecutive": 10},
    # optax's (and optax.contrib's) optimizers, stages and wrappers of the same name
    "adabelief": {
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-16,
        "eps_root": 1e-16,
        "weight_decay": None,
        "weight_decay_mask": None,
        "nesterov": False,
    },
    "adamaxw": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-4},
    "adan": {
        "b1": 0.98,
        "b2": 0.92,
        "b3": 0.99,
        "eps": 1e-8,
        "eps_root": 1e-8,
        "weight_decay": 0.0,
    },
    "ademamix": {
        "b1": 0.9,
        "b2": 0.999,
        "b3": 0.9999,
        "alpha": 5.0,
        "eps": 1e-8,
        "eps_root": 0.0,
        "weight_decay": 0.0,
    },
    "adopt": {"b1": 0.9, "b2": 0.9999, "eps": 1e-6, "nesterov": False, "use_clipping": True},
    "fromage": {"min_norm": 1e-6},
    "lars": {
        "weight_decay": 0.0,
        "weight_decay_mask": True,
        "trust_coefficient": 0.001,
        "eps": 0.0,
        "trust_ratio_mask": True,
        "momentum": 0.9,
        "nesterov": False,
    },
    # optax's linesearch default is the zoom search object; "zoom" builds the same one
    "lbfgs": {
        "learning_rate": None,
        "memory_size": 10,
        "scale_init_precond": True,
        "linesearch": "zoom",
    },
    "noisy_sgd": {"eta": 0.01, "gamma": 0.55, "key": 0},  # key=0 ours (optax: None → seed 0)
    "novograd": {"b1": 0.9, "b2": 0.25, "eps": 1e-6, "eps_root": 0.0, "weight_decay": 0.0},
    "optimistic_gradient_descent": {"alpha": 1.0, "beta": 1.0},
    "polyak_sgd": {
        "max_learning_rate": 1.0,
        "scaling": 1.0,
        "f_min": 0.0,
        "eps": 0.0,
        "variant": "sps",
    },
    "prodigy": {
        "learning_rate": 1.0,
        "betas": (0.9, 0.999),
        "beta3": None,
        "eps": 1e-8,
        "estim_lr0": 1e-6,
        "estim_lr_coef": 1.0,
        "weight_decay": 0.0,
        "safeguard_warmup": False,
        "weight_decay_mask": None,
    },
    "reduce_on_plateau": {
        "factor": 0.1,
        "patience": 10,
        "rtol": 1e-4,
        "atol": 0.0,
        "cooldown": 0,
        "accumulation_size": 1,
        "min_scale": 0.0,
    },
    "signum": {"beta": 0.9},
    "simplified_ademamix": {
        "b1": 0.99,
        "b2": 0.95,
        "alpha": 0.0,
        "eps": 1e-8,
        "eps_root": 0.0,
        "weight_decay": 0.0,
    },
    "yogi": {"b1": 0.9, "b2": 0.999, "eps": 1e-3},
    "scale_by_adan": {"b1": 0.98, "b2": 0.92, "b3": 0.99, "eps": 1e-8, "eps_root": 0.0},
    "scale_by_ademamix": {
        "b1": 0.9,
        "b2": 0.999,
        "b3": 0.9999,
        "alpha": 6.0,  # optax's stage default; its alias uses 5.0
        "eps": 1e-8,
        "eps_root": 0.0,
    },
    "scale_by_adopt": {
        "b1": 0.9,
        "b2": 0.9999,
        "eps": 1e-6,
        "nesterov": False,
        "use_clipping": True,
    },
    "scale_by_belief": {"b1": 0.9, "b2": 0.999, "eps": 1e-16, "eps_root": 1e-16, "nesterov": False},
    "scale_by_lbfgs": {"memory_size": 10, "scale_init_precond": True},
    "scale_by_novograd": {"b1": 0.9, "b2": 0.25, "eps": 1e-8, "eps_root": 0.0, "weight_decay": 0.0},
    "scale_by_optimistic_gradient": {"alpha": 1.0, "beta": 1.0},
    "scale_by_polyak": {"f_min": 0.0, "max_learning_rate": 1.0, "eps": 0.0, "variant": "sps"},
    "scale_by_simplified_ademamix": {
        "b1": 0.99,
        "b2": 0.95,
        "alpha": 0.0,
        "eps": 1e-8,
        "eps_root": 0.0,
    },
    "scale_by_yogi": {
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-3,
        "eps_root": 0.0,
        "initial_accumulator_value": 1e-6,
    },
    "scale_by_zoom_linesearch": {
        "max_learning_rate": None,
        "tol": 0.0,
        "increase_factor": 2.0,
        "slope_rtol": 1e-4,
        "curv_rtol": 0.9,
        "approx_dec_rtol": 1e-6,
        "stepsize_precision": 1e-5,
        "initial_guess_strategy": "keep",
    },
    "adaptive_grad_clip": {"eps": 1e-3},
    "sam": {"sync_period": 2, "reset_state": True, "opaque_mode": False, "batch_axis_name": None},
    "dog": {
        "learning_rate": 1.0,
        "init_step": ("heuristic", 1e-6),
        "eps": 1e-8,
        "weight_decay": None,
    },
    "dowg": {
        "learning_rate": 1.0,
        "init_estim_sq_dist": None,
        "eps": 1e-4,
        "weight_decay": None,
    },
    "scale_by_dog": {"eps": 1e-8},
    "scale_by_dowg": {"init_estim_sq_dist": None, "eps": 1e-4},
    "madgrad": {"momentum": 0.9, "weight_decay": 0.0, "eps": 1e-6},
    "sm3": {"momentum": 0.9},
    "cocob": {"learning_rate": 1.0, "alpha": 100.0, "eps": 1e-8, "weight_decay": 0.0},
    "scale_by_cocob": {"alpha": 100.0, "eps": 1e-8},
    "scale_by_sm3": {"b1": 0.9, "b2": 1.0, "eps": 1e-8},
    "scale_by_madgrad": {"momentum": 0.9, "eps": 1e-6},
    "ema": {"debias": True},
    "lookahead": {"reset_state": False},
    "normalize_by_update_norm": {"scale_factor": 1.0, "eps": 1e-6},
    "inject_hyperparams": {"static_args": (), "hyperparam_dtype": None},
    # optax.optimistic_adam / optimistic_adam_v2, optax.contrib.dadapt_adamw / mechanize /
    # momo / momo_adam (tests/test_optim_optax_trajectories.py checks them against optax's
    # recorded signatures too)
    "optimistic_adam": {
        "optimism": None,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "eps_root": 0.0,
        "nesterov": True,
    },
    "optimistic_adam_v2": {
        "alpha": 1.0,
        "beta": 1.0,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "eps_root": 0.0,
        "nesterov": True,
    },
    "dadapt_adamw": {
        "learning_rate": 1.0,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "estim_lr0": 1e-6,
        "weight_decay": 0.0,
    },
    "mechanize": {"weight_decay": 1e-2, "eps": 1e-8, "s_init": 1e-6, "num_betas": 6},
    "momo": {
        "learning_rate": 1.0,
        "beta": 0.9,
        "lower_bound": 0.0,
        "weight_decay": 0.0,
        "adapt_lower_bound": False,
    },
    "momo_adam": {
        "learning_rate": 1e-2,  # optax's docstring says 1.0; its code (kept) says 1e-2
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "lower_bound": 0.0,
        "weight_decay": 0.0,
        "adapt_lower_bound": False,
    },
    # torch.optim.LBFGS (lr → learning_rate; max_eval None = ⌊5·max_iter/4⌋, as torch), run at
    # exactly these defaults against torch in test_optim_lbfgs_torch.py ("*_defaults" cases);
    # optax.contrib's DP-SGD (dpsgd has no default learning rate, clip, noise or seed)
    "torch_lbfgs": {
        "learning_rate": 1.0,
        "max_iter": 20,
        "max_eval": None,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "history_size": 100,
        "line_search_fn": None,
    },
    "dpsgd": {"momentum": None, "nesterov": False},
    "differentially_private_aggregate": {"key": None, "seed": None},
    # schedules
    "cosine_decay": {"end_value": 0.0},
    "cosine_decay_schedule": {"alpha": 0.0, "exponent": 1.0},
    "cosine_onecycle_schedule": {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4},
    "exponential_decay": {"transition_begin": 0, "staircase": False, "end_value": None},
    "linear_onecycle_schedule": {
        "pct_start": 0.3,
        "pct_final": 0.85,
        "div_factor": 25.0,
        "final_div_factor": 1e4,
    },
    "linear_schedule": {"transition_begin": 0},
    "linear_warmup": {"init_value": 0.0},
    "piecewise_constant_schedule": {"boundaries_and_scales": None},
    "piecewise_interpolate_schedule": {"boundaries_and_scales": None},
    "polynomial_schedule": {"transition_begin": 0},
    "warmup_cosine_decay": {"end_value": 0.0, "exponent": 1.0},
    "warmup_cosine_decay_schedule": {"end_value": 0.0, "exponent": 1.0},
    "warmup_exponential_decay_schedule": {
        "transition_begin": 0,
        "staircase": False,
        "end_value": None,
    },
    "warmup_stable_decay_schedule": {"end_value": 0.0, "cooldown_type": "linear"},
}

# Defaults that carry no number: dtypes, masks, callables chosen at run time.
NOT_NUMBERS = {"mu_dtype", "nu_dtype", "accumulator_dtype", "mask", "clip_value_fn"}


def _defaults(fn):
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty and name not in NOT_NUMBERS
    }


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_defaults_are_the_documented_ones(name):
    assert _defaults(getattr(optim, name)) == DEFAULTS[name]


def test_every_public_optimizer_function_with_defaults_is_in_the_table():
    public = {
        name
        for name in optim.__all__
        if inspect.isfunction(getattr(optim, name)) and _defaults(getattr(optim, name))
    }
    assert public - set(DEFAULTS) == set(), "add the new function's defaults to DEFAULTS"


def _by_rank2(params):
    return jax.tree.map(lambda x: "muon" if x.ndim == 2 else "rest", params)


def _by_rank2_reference(flat):
    return {k: "muon" if v.ndim == 2 else "rest" for k, v in flat.items()}


# Each alias with nothing but its defaults (a learning rate only where it has none, or the
# reference needs one), beside the reference class with nothing but *its* defaults.
ALIASES_AT_DEFAULTS = {
    "sgd": (lambda: optim.sgd(), lambda: ref.SGD(1e-3)),
    "adadelta": (lambda: optim.adadelta(), lambda: ref.Adadelta()),
    "adagrad": (lambda: optim.adagrad(), lambda: ref.Adagrad()),
    "adam": (lambda: optim.adam(), lambda: ref.Adam()),
    "adamw": (lambda: optim.adamw(), lambda: ref.AdamW()),
    "adamax": (lambda: optim.adamax(), lambda: ref.Adamax()),
    "asgd": (lambda: optim.asgd(), lambda: ref.ASGD()),
    "nadam": (lambda: optim.nadam(), lambda: ref.NAdam()),
    "radam": (lambda: optim.radam(), lambda: ref.RAdam()),
    "rmsprop": (lambda: optim.rmsprop(), lambda: ref.RMSProp(1e-2)),
    "rprop": (lambda: optim.rprop(), lambda: ref.Rprop()),
    "lamb": (lambda: optim.lamb(), lambda: ref.Lamb()),
    "lion": (lambda: optim.lion(), lambda: ref.Lion()),
    "adafactor": (lambda: optim.adafactor(), lambda: ref.Adafactor()),
    "schedule_free_adamw": (
        lambda: optim.schedule_free_adamw(1e-2),
        lambda: ref.ScheduleFreeAdamW(1e-2),
    ),
    # stages at their defaults, given a learning rate by the stage after them
    "scale_by_adam": (
        lambda: optim.chain(optim.scale_by_adam(), optim.scale_by_learning_rate(1e-2)),
        lambda: ref.Chain(ref.ScaleByAdam(), ref.ScaleByLearningRate(1e-2)),
    ),
    "scale_by_amsgrad": (
        lambda: optim.chain(optim.scale_by_amsgrad(), optim.scale_by_learning_rate(1e-2)),
        lambda: ref.Adam(1e-2, amsgrad=True),
    ),
    "scale_by_rms": (
        lambda: optim.chain(optim.scale_by_rms(), optim.scale_by_learning_rate(1e-2)),
        lambda: ref.Chain(ref.ScaleByRms(), ref.ScaleByLearningRate(1e-2)),
    ),
    # gradients scaled to norms below 1 first, so a min_norm of 1 would show
    "scale_by_trust_ratio": (
        lambda: optim.chain(
            optim.scale(1e-2), optim.scale_by_trust_ratio(), optim.scale_by_learning_rate(1e-2)
        ),
        lambda: ref.Chain(ref.Scale(1e-2), ref.ScaleByTrustRatio(), ref.ScaleByLearningRate(1e-2)),
    ),
    "trace": (
        lambda: optim.chain(optim.trace(0.9), optim.scale_by_learning_rate(1e-2)),
        lambda: ref.Chain(ref.Trace(0.9), ref.ScaleByLearningRate(1e-2)),
    ),
    "clip_by_global_norm": (
        lambda: optim.chain(optim.clip_by_global_norm(0.5), optim.scale_by_learning_rate(1e-2)),
        lambda: ref.Chain(ref.ClipByGlobalNorm(0.5), ref.ScaleByLearningRate(1e-2)),
    ),
    # optax's optimizers: a learning rate where optax has no default
    "adabelief": (lambda: optim.adabelief(1e-2), lambda: ref.AdaBelief(1e-2)),
    "adamaxw": (lambda: optim.adamaxw(1e-2), lambda: ref.AdamaxW(1e-2)),
    "adan": (lambda: optim.adan(1e-2), lambda: ref.Adan(1e-2)),
    "ademamix": (lambda: optim.ademamix(1e-2), lambda: ref.AdEMAMix(1e-2)),
    "adopt": (lambda: optim.adopt(1e-2), lambda: ref.Adopt(1e-2)),
    "fromage": (lambda: optim.fromage(1e-2), lambda: ref.Fromage(1e-2)),
    "lars": (lambda: optim.lars(1e-2), lambda: ref.Lars(1e-2)),
    "novograd": (lambda: optim.novograd(1e-2), lambda: ref.NovoGrad(1e-2)),
    "optimistic_gradient_descent": (
        lambda: optim.optimistic_gradient_descent(1e-2),
        lambda: ref.OptimisticGradientDescent(1e-2),
    ),
    "prodigy": (lambda: optim.prodigy(), lambda: ref.Prodigy()),
    "dog": (lambda: optim.dog(), lambda: ref.DoG()),
    "madgrad": (lambda: optim.madgrad(1e-2), lambda: ref.Madgrad(1e-2)),
    "sm3": (lambda: optim.sm3(1e-2), lambda: ref.SM3(1e-2)),
    "cocob": (lambda: optim.cocob(), lambda: ref.COCOB()),
    "signum": (lambda: optim.signum(1e-2), lambda: ref.Signum(1e-2)),
    "simplified_ademamix": (
        lambda: optim.simplified_ademamix(1e-3),
        lambda: ref.SimplifiedAdEMAMix(1e-3),
    ),
    "yogi": (lambda: optim.yogi(1e-2), lambda: ref.Yogi(1e-2)),
    "optimistic_adam": (lambda: optim.optimistic_adam(1e-2), lambda: ref.OptimisticAdam(1e-2)),
    "optimistic_adam_v2": (
        lambda: optim.optimistic_adam_v2(1e-2),
        lambda: ref.OptimisticAdamV2(1e-2),
    ),
    "dadapt_adamw": (lambda: optim.dadapt_adamw(), lambda: ref.DAdaptAdamW()),
    "mechanize": (
        lambda: optim.mechanize(optim.adam(1e-2)),
        lambda: ref.Mechanize(ref.Adam(1e-2)),
    ),
    # momo and momo_adam at their defaults stop where the loss is below f* = 0, which this
    # problem's is from the start: tests/test_optim_polyak.py runs their defaults on a loss ≥ 0.
    "muon": (
        lambda: optim.partition({"muon": optim.muon(), "rest": optim.sgd()}, _by_rank2),
        lambda: ref.Partition({"muon": ref.Muon(), "rest": ref.SGD(1e-3)}, _by_rank2_reference),
    ),
}


@pytest.fixture(scope="module")
def at_defaults():
    pairs = {
        name: registry.OptimizerConfig(build, build_reference)
        for name, (build, build_reference) in ALIASES_AT_DEFAULTS.items()
    }
    with jax.enable_x64(True):
        return runner.compare_all(pairs, num_steps=30, dtype="float64")


@pytest.mark.parametrize("name", sorted(ALIASES_AT_DEFAULTS))
def test_each_alias_at_its_defaults_agrees_with_the_reference_at_its_defaults(name, at_defaults):
    # Compare the displacement θ − θ₀, not θ: a default such as ε = 1e-8 moves the result by
    # ~1e-8 of a step, far below θ's own size but far above float64 rounding of the step.
    start = ref.flatten_params(registry.problem_params(0))
    result = at_defaults[name]
    for leaf, theirs in result.reference_params.items():
        moved = theirs - start[leaf]
        assert np.max(np.abs(moved)) > 0, f"{name}: {leaf} did not move"
        error = np.max(np.abs(result.params[leaf] - theirs)) / np.max(np.abs(moved))
        assert error <= 1e-9, f"{name}: {leaf} relative displacement error {error:.2e}"


SCHEDULES_AT_DEFAULTS = {
    "linear_warmup": (optim.linear_warmup(0.5, 10), ref.schedule_linear_warmup(0.5, 10)),
    "cosine_decay": (optim.cosine_decay(0.5, 20), ref.schedule_cosine_decay(0.5, 20)),
    "warmup_cosine_decay": (
        optim.warmup_cosine_decay(0.0, 0.5, 5, 20),
        ref.schedule_warmup_cosine_decay(0.5, 5, 20),
    ),
    "exponential_decay": (
        optim.exponential_decay(0.5, 4, 0.5),
        ref.schedule_exponential_decay(0.5, 0.5, 4),
    ),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES_AT_DEFAULTS))
def test_each_schedule_at_its_defaults_agrees_with_the_reference_at_its_defaults(name):
    ours, theirs = SCHEDULES_AT_DEFAULTS[name]
    steps = [0, 1, 3, 5, 6, 10, 15, 20, 25]
    with jax.enable_x64(True):
        got = [float(ours(np.int32(t))) for t in steps]
    np.testing.assert_allclose(got, [theirs(t) for t in steps], rtol=1e-12, atol=0)
