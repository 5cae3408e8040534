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
| `aliases`       | the named optimizers (`sgd` … `schedule_free_adamw`), each a chain         |
| `schedules`     | learning-rate schedules `step -> η`                                        |
| `configs`       | the registry of configurations checked against `funcnn.reference.optim`    |

A new stage goes into the module of its kind (a new moment-based direction into `moments`,
a new clip into `clipping`), a new optimizer into `aliases` as a chain. `transforms`,
`accumulators` and `modern` are the old module paths, kept one version as re-exports.
"""

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
from funcnn.optim.decay import add_decayed_weights
from funcnn.optim.factored import (
    ScaleByFactoredRmsState,
    ScaleByParamBlockRmsState,
    ScaleByRelativeStepState,
    scale_by_factored_rms,
    scale_by_param_block_rms,
    scale_by_relative_step,
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
from funcnn.optim.orthogonal import (
    OrthogonalizeState,
    ScaleByShapeState,
    orthogonalize_by_newton_schulz,
    scale_by_shape,
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
from funcnn.optim.sign import ScaleByLionState, ScaleByRpropState, scale_by_lion, scale_by_rprop
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
    "AverageParamsState",
    "ClipByBlockRmsState",
    "ClipByGlobalNormState",
    "EmaMomentumState",
    "EmptyState",
    "GradientTransformation",
    "MaskedNode",
    "MaskedState",
    "NonFiniteGradientsError",
    "OrthogonalizeState",
    "PartitionState",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamRmsState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAmsgradState",
    "ScaleByFactoredRmsState",
    "ScaleByLearningRateState",
    "ScaleByLionState",
    "ScaleByNadamState",
    "ScaleByParamBlockRmsState",
    "ScaleByRStdDevState",
    "ScaleByRadamState",
    "ScaleByRelativeStepState",
    "ScaleByRmsState",
    "ScaleByRpropState",
    "ScaleByShapeState",
    "ScaleByTrustRatioState",
    "Schedule",
    "ScheduleFreeState",
    "SkipNonfiniteState",
    "TraceState",
    "accumulate",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "asgd",
    "average_params",
    "averaged_params",
    "chain",
    "check_nonfinite",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "constant",
    "cosine_decay",
    "current_learning_rate",
    "ema_momentum",
    "exponential_decay",
    "global_norm",
    "identity",
    "lamb",
    "linear_schedule",
    "linear_warmup",
    "lion",
    "masked",
    "muon",
    "nadam",
    "nonfinite_counts",
    "optimizer_step",
    "orthogonalize_by_newton_schulz",
    "partition",
    "piecewise_constant",
    "radam",
    "rmsprop",
    "rprop",
    "scale",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adam_rms",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "scale_by_factored_rms",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_nadam",
    "scale_by_param_block_rms",
    "scale_by_radam",
    "scale_by_relative_step",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_shape",
    "scale_by_trust_ratio",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "sgd",
    "skip_nonfinite",
    "trace",
    "warmup_cosine_decay",
]

# Every schedule in `schedules.__all__` (optax's names included), re-exported here.
from funcnn.optim import schedules as _schedules
from funcnn.optim.schedules import *  # noqa: F403

__all__ += [name for name in _schedules.__all__ if name not in __all__]
