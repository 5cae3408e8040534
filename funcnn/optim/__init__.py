"""Optimizers as gradient transformations (optax-shaped):

    opt = optim.adamw(optim.warmup_cosine_decay(0.0, 1e-3, 100, 10_000), weight_decay=0.1)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = optim.apply_updates(params, updates)
    optim.current_learning_rate(state)           # ηₜ used by that update, for logging

Every optimizer is a short `chain` of stages; the modules are named by what a stage does.
Every public name below is also exported here (`optim.scale_by_adam`, `optim.adamw`, ...).

| module          | what it holds                                                              |
|-----------------|----------------------------------------------------------------------------|
| `base`          | the protocol: `GradientTransformation`, `chain`, `apply_updates`,           |
|                 | `optimizer_step`, `global_norm`, hyperparameter and schedule validation     |
| `_tree`         | private per-leaf helpers every stage uses (upcast, const, unzip, buffers)  |
| `scaling`       | fixed and scheduled scaling: `identity`, `scale`, `scale_by_learning_rate` |
|                 | (the one minus sign), `current_learning_rate`                              |
| `moments`       | the Adam family, first + second moment: Adam, AMSGrad, Adamax, NAdam, RAdam |
| `rms`           | a second moment alone: RMSProp, Adagrad, Adadelta, Adam-RMS                |
| `momentum`      | momentum buffers: `trace` (heavy ball, Nesterov), `ema_momentum` (Muon's)  |
| `sign`          | sign-based directions: Lion, Rprop                                         |
| `factored`      | Adafactor: factored second moment, parameter-scaled and relative step      |
| `orthogonal`    | Muon: Newton–Schulz orthogonalization, shape scale                         |
| `trust_ratio`   | LARS/LAMB's layer-wise trust ratio                                         |
| `decay`         | weight decay, one stage (`add_decayed_weights`), coupled or decoupled by   |
|                 | its place in the chain (`weight_decay_stages`)                             |
| `clipping`      | `clip`, `clip_by_global_norm`, `clip_by_block_rms`                         |
| `routing`       | which leaves a stage sees: `masked`, `partition` (param groups)            |
| `averaging`     | iterate averaging: `average_params` (ASGD), `averaged_params`              |
| `schedule_free` | the schedule-free wrapper and `schedule_free_eval_params`                  |
| `wrappers`      | around a whole optimizer: `skip_nonfinite`, `accumulate`                   |
| `adam_variants` | Adam's relatives only optax ships: AdaBelief, Yogi, Adan, NovoGrad, ADOPT,  |
|                 | AdEMAMix (and simplified), MADGRAD, SM3, optimistic gradients (and optax's |
|                 | Adam ratio for optimistic Adam)                                            |
| `normalize`     | stateless reshaping: `scale_by_sign`, `centralize`,                        |
|                 | `normalize_by_update_norm`, `zero_nans`                                    |
| `line_search`   | L-BFGS's direction and the zoom (strong-Wolfe) line search, `lbfgs`        |
| `polyak`        | Polyak-type steps from the loss value: `polyak_sgd`, MoMo (`momo`,         |
|                 | `momo_adam`)                                                               |
| `plateau`       | `reduce_on_plateau` (reads the loss value)                                 |
| `parameter_free`| `prodigy`, `dadapt_adamw`, `dog`, `dowg`, `cocob`: no learning rate to     |
|                 | tune; `mechanize` learns the scale of any optimizer's updates              |
| `slow_weights`  | `ema` of updates, `incremental_update`/`periodic_update`, `lookahead`      |
| `clipping_per_unit` | `adaptive_grad_clip` (per unit), `per_example_global_norm_clip` (DP-SGD) |
| `freezing`      | `set_to_zero`, `freeze`, `selective_transform`                             |
| `noise`         | `add_noise`, `noisy_sgd`                                                   |
| `multi_steps`   | `MultiSteps`: gradient accumulation with a schedule of k                   |
| `sharpness`     | `sam` (sharpness-aware minimization, transparent and opaque) and its       |
|                 | `normalize`                                                                |
| `privacy`       | DP-SGD: `differentially_private_aggregate`, `dpsgd`                        |
| `lbfgs_torch`   | `torch_lbfgs`: torch.optim.LBFGS's inner loop (up to max_iter iterations   |
|                 | per update) and its cubic strong-Wolfe search                              |
| `hyperparams`   | `inject_hyperparams`, `set_hyperparam`: hyperparameters in the state       |
| `aliases_optax` | the optimizers only optax has, under optax's names and defaults            |
| `aliases`       | the named optimizers (`sgd` … `schedule_free_adamw`), each a chain         |
| `schedules`     | learning-rate schedules `step -> η`                                        |

A new stage goes into the module of its kind (a new moment-based direction into `moments`,
a new clip into `clipping`), a new optimizer into `aliases` as a chain. `transforms`,
`accumulators`, `modern` and `configs` are the old module paths, kept one version as
re-exports (the configurations checked against `funcnn.reference.optim` now live in
`funcnn.verify.registry`).

Notation (every stage's docstring uses it): g is the incoming update (the gradient for the
first stage), d the outgoing direction, θ the parameters, t the 1-based step number, ηₜ the
learning rate; only `scale_by_learning_rate` carries the minus sign. Per-parameter buffers
keep each leaf's dtype (unless a `*_dtype` option says otherwise), arithmetic runs in at
least float32 (bf16 leaves are upcast, the result cast back), step counters are int32
scalars.
"""

from funcnn.optim.adam_variants import (
    MadgradState,
    ScaleByAdanState,
    ScaleByAdemamixState,
    ScaleByAdoptState,
    ScaleByBeliefState,
    ScaleByNovogradState,
    ScaleByOptimisticGradientState,
    ScaleBySimplifiedAdemamixState,
    ScaleBySM3State,
    ScaleByYogiState,
    scale_by_adan,
    scale_by_ademamix,
    scale_by_adopt,
    scale_by_belief,
    scale_by_madgrad,
    scale_by_novograd,
    scale_by_optimistic_gradient,
    scale_by_simplified_ademamix,
    scale_by_sm3,
    scale_by_yogi,
)
from funcnn.optim.aliases import (
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    adamw,
    asgd,
    lamb,
    lion,
    muon,
    nadam,
    radam,
    rmsprop,
    rprop,
    schedule_free_adamw,
    sgd,
)
from funcnn.optim.aliases_optax import (
    adabelief,
    adamaxw,
    adan,
    ademamix,
    adopt,
    fromage,
    lars,
    madgrad,
    novograd,
    optimistic_adam,
    optimistic_adam_v2,
    optimistic_gradient_descent,
    sign_sgd,
    signum,
    simplified_ademamix,
    sm3,
    yogi,
)
from funcnn.optim.averaging import AverageParamsState, average_params, averaged_params
from funcnn.optim.base import (
    EmptyState,
    GradientTransformation,
    Schedule,
    apply_updates,
    chain,
    global_norm,
    optimizer_step,
)
from funcnn.optim.clipping import (
    ClipByBlockRmsState,
    ClipByGlobalNormState,
    clip,
    clip_by_block_rms,
    clip_by_global_norm,
)
from funcnn.optim.clipping_per_unit import (
    adaptive_grad_clip,
    per_example_global_norm_clip,
    unitwise_norm,
)
from funcnn.optim.decay import add_decayed_weights
from funcnn.optim.factored import (
    ScaleByFactoredRmsState,
    ScaleByParamBlockRmsState,
    ScaleByRelativeStepState,
    scale_by_factored_rms,
    scale_by_param_block_rms,
    scale_by_relative_step,
)
from funcnn.optim.freezing import (
    freeze,
    selective_transform,
    set_to_zero,
)
from funcnn.optim.hyperparams import (
    InjectHyperparamsState,
    inject_hyperparams,
    set_hyperparam,
)
from funcnn.optim.lbfgs_torch import TorchLbfgsState, torch_lbfgs
from funcnn.optim.line_search import (
    ScaleByLbfgsState,
    ScaleByZoomLinesearchState,
    lbfgs,
    scale_by_lbfgs,
    scale_by_zoom_linesearch,
)
from funcnn.optim.moments import (
    ScaleByAdamaxState,
    ScaleByAdamState,
    ScaleByAmsgradState,
    ScaleByNadamState,
    ScaleByRadamState,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_nadam,
    scale_by_radam,
)
from funcnn.optim.momentum import EmaMomentumState, TraceState, ema_momentum, trace
from funcnn.optim.multi_steps import (
    MultiSteps,
    MultiStepsState,
)
from funcnn.optim.noise import (
    AddNoiseState,
    add_noise,
    noisy_sgd,
)
from funcnn.optim.normalize import (
    ZeroNansState,
    centralize,
    normalize_by_update_norm,
    scale_by_sign,
    zero_nans,
)
from funcnn.optim.orthogonal import (
    OrthogonalizeState,
    ScaleByShapeState,
    orthogonalize_by_newton_schulz,
    scale_by_shape,
)
from funcnn.optim.parameter_free import (
    COCOBState,
    DAdaptAdamWState,
    DoGState,
    DoWGState,
    MechanicState,
    ProdigyState,
    cocob,
    dadapt_adamw,
    dog,
    dowg,
    mechanize,
    prodigy,
    scale_by_cocob,
    scale_by_dog,
    scale_by_dowg,
)
from funcnn.optim.plateau import (
    ReduceLROnPlateauState,
    reduce_on_plateau,
)
from funcnn.optim.polyak import (
    MomoAdamState,
    MomoState,
    momo,
    momo_adam,
    polyak_sgd,
    scale_by_polyak,
)
from funcnn.optim.privacy import (
    DifferentiallyPrivateAggregateState,
    differentially_private_aggregate,
    dpsgd,
)
from funcnn.optim.rms import (
    ScaleByAdadeltaState,
    ScaleByAdagradState,
    ScaleByAdamRmsState,
    ScaleByRmsState,
    ScaleByRStdDevState,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam_rms,
    scale_by_rms,
)
from funcnn.optim.routing import MaskedNode, MaskedState, PartitionState, masked, partition
from funcnn.optim.scaling import (
    ScaleByLearningRateState,
    current_learning_rate,
    identity,
    scale,
    scale_by_learning_rate,
)
from funcnn.optim.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_eval_params,
)
from funcnn.optim.schedules import (
    constant,
    cosine_decay,
    exponential_decay,
    linear_schedule,
    linear_warmup,
    piecewise_constant,
    warmup_cosine_decay,
)
from funcnn.optim.sharpness import SAMState, normalize, sam
from funcnn.optim.sign import ScaleByLionState, ScaleByRpropState, scale_by_lion, scale_by_rprop
from funcnn.optim.slow_weights import (
    EmaState,
    LookaheadParams,
    LookaheadState,
    ema,
    incremental_update,
    lookahead,
    periodic_update,
)
from funcnn.optim.trust_ratio import ScaleByTrustRatioState, scale_by_trust_ratio
from funcnn.optim.wrappers import (
    AccumulateState,
    NonFiniteGradientsError,
    SkipNonfiniteState,
    accumulate,
    check_nonfinite,
    nonfinite_counts,
    skip_nonfinite,
)

__all__ = [
    "AccumulateState",
    "AddNoiseState",
    "AverageParamsState",
    "COCOBState",
    "ClipByBlockRmsState",
    "ClipByGlobalNormState",
    "DAdaptAdamWState",
    "DifferentiallyPrivateAggregateState",
    "DoGState",
    "DoWGState",
    "EmaMomentumState",
    "EmaState",
    "EmptyState",
    "GradientTransformation",
    "InjectHyperparamsState",
    "LookaheadParams",
    "LookaheadState",
    "MadgradState",
    "MaskedNode",
    "MaskedState",
    "MechanicState",
    "MomoAdamState",
    "MomoState",
    "MultiSteps",
    "MultiStepsState",
    "NonFiniteGradientsError",
    "OrthogonalizeState",
    "PartitionState",
    "ProdigyState",
    "ReduceLROnPlateauState",
    "SAMState",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamRmsState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAdanState",
    "ScaleByAdemamixState",
    "ScaleByAdoptState",
    "ScaleByAmsgradState",
    "ScaleByBeliefState",
    "ScaleByFactoredRmsState",
    "ScaleByLbfgsState",
    "ScaleByLearningRateState",
    "ScaleByLionState",
    "ScaleByNadamState",
    "ScaleByNovogradState",
    "ScaleByOptimisticGradientState",
    "ScaleByParamBlockRmsState",
    "ScaleByRStdDevState",
    "ScaleByRadamState",
    "ScaleByRelativeStepState",
    "ScaleByRmsState",
    "ScaleByRpropState",
    "ScaleBySM3State",
    "ScaleByShapeState",
    "ScaleBySimplifiedAdemamixState",
    "ScaleByTrustRatioState",
    "ScaleByYogiState",
    "ScaleByZoomLinesearchState",
    "Schedule",
    "ScheduleFreeState",
    "SkipNonfiniteState",
    "TorchLbfgsState",
    "TraceState",
    "ZeroNansState",
    "accumulate",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "adan",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_noise",
    "ademamix",
    "adopt",
    "apply_updates",
    "asgd",
    "average_params",
    "averaged_params",
    "centralize",
    "chain",
    "check_nonfinite",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "cocob",
    "constant",
    "cosine_decay",
    "current_learning_rate",
    "dadapt_adamw",
    "differentially_private_aggregate",
    "dog",
    "dowg",
    "dpsgd",
    "ema",
    "ema_momentum",
    "exponential_decay",
    "freeze",
    "fromage",
    "global_norm",
    "identity",
    "incremental_update",
    "inject_hyperparams",
    "lamb",
    "lars",
    "lbfgs",
    "linear_schedule",
    "linear_warmup",
    "lion",
    "lookahead",
    "madgrad",
    "masked",
    "mechanize",
    "momo",
    "momo_adam",
    "muon",
    "nadam",
    "noisy_sgd",
    "nonfinite_counts",
    "normalize",
    "normalize_by_update_norm",
    "novograd",
    "optimistic_adam",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
    "optimizer_step",
    "orthogonalize_by_newton_schulz",
    "partition",
    "per_example_global_norm_clip",
    "periodic_update",
    "piecewise_constant",
    "polyak_sgd",
    "prodigy",
    "radam",
    "reduce_on_plateau",
    "rmsprop",
    "rprop",
    "sam",
    "scale",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adam_rms",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_cocob",
    "scale_by_dog",
    "scale_by_dowg",
    "scale_by_factored_rms",
    "scale_by_lbfgs",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_madgrad",
    "scale_by_nadam",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
    "scale_by_param_block_rms",
    "scale_by_polyak",
    "scale_by_radam",
    "scale_by_relative_step",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_shape",
    "scale_by_sign",
    "scale_by_simplified_ademamix",
    "scale_by_sm3",
    "scale_by_trust_ratio",
    "scale_by_yogi",
    "scale_by_zoom_linesearch",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "selective_transform",
    "set_hyperparam",
    "set_to_zero",
    "sgd",
    "sign_sgd",
    "signum",
    "simplified_ademamix",
    "skip_nonfinite",
    "sm3",
    "torch_lbfgs",
    "trace",
    "unitwise_norm",
    "warmup_cosine_decay",
    "yogi",
    "zero_nans",
]

# Every schedule in `schedules.__all__` (optax's names included), re-exported here.
from funcnn.optim import schedules as _schedules
from funcnn.optim.schedules import *  # noqa: F403

__all__ += [name for name in _schedules.__all__ if name not in __all__]
