"""Deprecated module path, kept for one version: "the rest of torch.optim" was split by what
each stage does. Import from `funcnn.optim` or from the new home:

    scale_by_adagrad, scale_by_adadelta (and their states)          → `rms`
    scale_by_adamax, scale_by_nadam, scale_by_radam, RADAM_THRESHOLD → `moments`
    scale_by_rprop, check_rprop_bounds, check_pair                  → `sign`
    average_params, averaged_params (AverageParamsState)            → `averaging`
"""

from funcnn.optim.averaging import AverageParamsState, average_params, averaged_params
from funcnn.optim.moments import (
    RADAM_THRESHOLD,
    ScaleByAdamaxState,
    ScaleByNadamState,
    ScaleByRadamState,
    scale_by_adamax,
    scale_by_nadam,
    scale_by_radam,
)
from funcnn.optim.rms import (
    ScaleByAdadeltaState,
    ScaleByAdagradState,
    scale_by_adadelta,
    scale_by_adagrad,
)
from funcnn.optim.sign import ScaleByRpropState, check_pair, check_rprop_bounds, scale_by_rprop

__all__ = [
    "RADAM_THRESHOLD",
    "AverageParamsState",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamaxState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "ScaleByRpropState",
    "average_params",
    "averaged_params",
    "check_pair",
    "check_rprop_bounds",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adamax",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rprop",
]
