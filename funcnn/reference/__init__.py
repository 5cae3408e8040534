"""Float64 NumPy reference math, written straight from the formulas — no JAX in here.

Tests and `scripts/compare_optimizers.py` hold the JAX code against these transcriptions.
Submodules: `optim` (every transform, alias and schedule), `schedules` (the later schedules and
PyTorch's lr_scheduler formulas), `functional` (activations and losses), `layers` (sequence
layers), `models` (whole models, composed from the layers), `llm` (RMSNorm, RoPE, grouped-query
attention, gated MLPs, the configured decoder), `numerical` (central finite differences and the
complex-step derivative), `vision` (image layers: conv2d, transposed conv, 2-D pools, batch
and group norm).
"""

from funcnn.reference import functional, layers, llm, models, numerical, optim, schedules, vision
from funcnn.reference.functional import *  # noqa: F403
from funcnn.reference.layers import *  # noqa: F403
from funcnn.reference.llm import *  # noqa: F403
from funcnn.reference.models import *  # noqa: F403
from funcnn.reference.numerical import *  # noqa: F403
from funcnn.reference.optim import *  # noqa: F403
from funcnn.reference.schedules import *  # noqa: F403
from funcnn.reference.vision import *  # noqa: F403

__all__ = [
    *optim.__all__,
    *functional.__all__,
    *layers.__all__,
    *llm.__all__,
    *models.__all__,
    *numerical.__all__,
    *schedules.__all__,
    *vision.__all__,
]
