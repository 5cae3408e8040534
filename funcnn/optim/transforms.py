"""Deprecated module path, kept for one version: its stages moved to modules named by what
they do. Import from `funcnn.optim` (every name below is there) or from the new home:

    identity, scale, scale_by_learning_rate, current_learning_rate   → `scaling`
    trace (TraceState)                                              → `momentum`
    scale_by_rms (ScaleByRmsState, ScaleByRStdDevState)             → `rms`
    scale_by_adam, ScaleByAdamState, ScaleByAmsgradState            → `moments`
    add_decayed_weights                                             → `decay`
    clip, clip_by_global_norm (ClipByGlobalNormState)               → `clipping`
    masked, MaskedNode, MaskedState                                 → `routing`
"""

from funcnn.optim.clipping import ClipByGlobalNormState, clip, clip_by_global_norm
from funcnn.optim.decay import add_decayed_weights
from funcnn.optim.moments import ScaleByAdamState, ScaleByAmsgradState, scale_by_adam
from funcnn.optim.momentum import TraceState, trace
from funcnn.optim.rms import ScaleByRmsState, ScaleByRStdDevState, scale_by_rms
from funcnn.optim.routing import MaskedNode, MaskedState, masked
from funcnn.optim.scaling import (
    ScaleByLearningRateState,
    current_learning_rate,
    identity,
    scale,
    scale_by_learning_rate,
)

__all__ = [
    "ClipByGlobalNormState",
    "MaskedNode",
    "MaskedState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByLearningRateState",
    "ScaleByRStdDevState",
    "ScaleByRmsState",
    "TraceState",
    "add_decayed_weights",
    "clip",
    "clip_by_global_norm",
    "current_learning_rate",
    "identity",
    "masked",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "trace",
]
