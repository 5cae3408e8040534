"""Optimizers as gradient transformations (optax-shaped):

    opt = optim.adamw(optim.warmup_cosine_decay(1e-3, 100, 10_000), weight_decay=0.1)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = optim.apply_updates(params, updates)
    optim.current_learning_rate(state)           # ηₜ used by that update, for logging

`base` holds the protocol, `transforms` the small stages, `aliases` sgd/rmsprop/adam/adamw
(each a chain of stages), `schedules` the learning-rate schedules, and `configs` the
registry of configurations checked against `funcnn.reference.optim`.
"""

from funcnn.optim.aliases import adam, adamw, rmsprop, sgd
from funcnn.optim.base import (
    EmptyState,
    GradientTransformation,
    Schedule,
    apply_updates,
    chain,
    global_norm,
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
from funcnn.optim.transforms import (
    ClipByGlobalNormState,
    MaskedNode,
    MaskedState,
    ScaleByAdamState,
    ScaleByLearningRateState,
    ScaleByRmsState,
    ScaleByRStdDevState,
    TraceState,
    add_decayed_weights,
    clip,
    clip_by_global_norm,
    current_learning_rate,
    identity,
    masked,
    scale,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_rms,
    trace,
)
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
    "ClipByGlobalNormState",
    "EmptyState",
    "GradientTransformation",
    "MaskedNode",
    "MaskedState",
    "NonFiniteGradientsError",
    "ScaleByAdamState",
    "ScaleByLearningRateState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "Schedule",
    "SkipNonfiniteState",
    "TraceState",
    "accumulate",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "check_nonfinite",
    "clip",
    "clip_by_global_norm",
    "constant",
    "cosine_decay",
    "current_learning_rate",
    "exponential_decay",
    "global_norm",
    "identity",
    "linear_schedule",
    "linear_warmup",
    "masked",
    "nonfinite_counts",
    "piecewise_constant",
    "rmsprop",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "sgd",
    "skip_nonfinite",
    "trace",
    "warmup_cosine_decay",
]
