"""Deprecated module path, kept for one version: the "post-Adam" stages were split by what
each does. Import from `funcnn.optim` or from the new home:

    scale_by_lion (ScaleByLionState)                                → `sign`
    scale_by_trust_ratio (ScaleByTrustRatioState)                   → `trust_ratio`
    ema_momentum (EmaMomentumState)                                 → `momentum`
    orthogonalize_by_newton_schulz, scale_by_shape, MUON_NS_COEFFICIENTS
    (OrthogonalizeState, ScaleByShapeState)                         → `orthogonal`
"""

from funcnn.optim.momentum import EmaMomentumState, ema_momentum
from funcnn.optim.orthogonal import (
    MUON_NS_COEFFICIENTS,
    OrthogonalizeState,
    ScaleByShapeState,
    orthogonalize_by_newton_schulz,
    scale_by_shape,
)
from funcnn.optim.sign import ScaleByLionState, scale_by_lion
from funcnn.optim.trust_ratio import ScaleByTrustRatioState, scale_by_trust_ratio

__all__ = [
    "MUON_NS_COEFFICIENTS",
    "EmaMomentumState",
    "OrthogonalizeState",
    "ScaleByLionState",
    "ScaleByShapeState",
    "ScaleByTrustRatioState",
    "ema_momentum",
    "orthogonalize_by_newton_schulz",
    "scale_by_lion",
    "scale_by_shape",
    "scale_by_trust_ratio",
]
