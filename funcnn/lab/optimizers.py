"""Optimizers by name, and the one training recipe the studies share.

    optimizer("nesterov", 0.1)                       # optim.sgd(0.1, momentum=0.9, nesterov=True)
    clipped_warmup_cosine("adamw", peak_value=3e-3, total_steps=1000, warmup_steps=50)

`NAMES` is the one vocabulary of optimizer names in the lab: `scripts/train.py --optimizer`
(`recipes`), the race (`compare.race`) and the architecture and char-LM studies all build
through `optimizer`, so a name means the same update everywhere. The hyperparameters other
than η and λ are the library's defaults (torch's where torch has the optimizer); momentum is
0.9 for "momentum" and "nesterov".

Weight decay λ: coupled L2 (`g ← g + λ·θ`) for sgd, momentum, nesterov, rmsprop and adam;
decoupled (`θ ← θ − η·λ·θ`) for adamw, adafactor, schedule_free_adamw and muon's AdamW part,
restricted to `decay_mask` where one is given (e.g. `funcnn.params.decay_mask`: ≥2-D
weights only). "muon" is Muon on the 2-D leaves (torch's defaults, its own λ = 0.1) and
AdamW on the rest, as Muon requires.

The recipe (`clipped_warmup_cosine`):

    g ← g · min(1, c / ‖g‖₂)                         clip_by_global_norm(c)
    ηₜ = η·t / T_w                         t ≤ T_w   linear warmup
    ηₜ = η·½(1 + cos(π·(t − T_w)/(T − T_w)))   t > T_w   cosine decay to 0 at T
    θ ← optimizer(ηₜ)                                the named optimizer
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from funcnn import optim
from funcnn._validation import check_choice, check_positive_int
from funcnn.optim.base import GradientTransformation

__all__ = ["NAMES", "clipped_warmup_cosine", "optimizer"]

NAMES: tuple[str, ...] = (
    "sgd",
    "momentum",
    "nesterov",
    "rmsprop",
    "adam",
    "adamw",
    "adafactor",
    "muon",
    "schedule_free_adamw",
)
"""Every optimizer name `optimizer` knows."""


def optimizer(
    name: str,
    learning_rate: optim.Schedule | float,
    *,
    weight_decay: float = 0.0,
    decay_mask: Any = None,
) -> GradientTransformation:
    """The optimizer called `name` (one of `NAMES`) at learning rate η (a float or schedule)
    and weight decay λ, coupled or decoupled as the module docstring lists."""
    check_choice(name, "optimizer", NAMES)
    lr, wd = learning_rate, weight_decay
    if name == "sgd":
        return optim.sgd(lr, weight_decay=wd)
    if name in ("momentum", "nesterov"):
        return optim.sgd(lr, momentum=0.9, nesterov=name == "nesterov", weight_decay=wd)
    if name == "rmsprop":
        return optim.rmsprop(lr, weight_decay=wd)
    if name == "adam":
        return optim.adam(lr, weight_decay=wd)
    if name == "adamw":
        return optim.adamw(lr, weight_decay=wd, mask=decay_mask)
    if name == "adafactor":
        return optim.adafactor(lr, weight_decay=wd, mask=decay_mask)
    if name == "schedule_free_adamw":
        return optim.schedule_free_adamw(lr, weight_decay=wd)
    # muon: Muon on the matrices, AdamW on everything else (on a problem without a matrix
    # it is AdamW).
    return optim.partition(
        {"muon": optim.muon(lr), "adamw": optim.adamw(lr, weight_decay=wd, mask=decay_mask)},
        _matrices_to_muon,
    )


def _matrices_to_muon(params: Any) -> Any:
    return jax.tree.map(lambda x: "muon" if x.ndim == 2 else "adamw", params)


def clipped_warmup_cosine(
    name: str,
    *,
    peak_value: float,
    total_steps: int,
    warmup_steps: int,
    clip_norm: float = 1.0,
    weight_decay: float = 0.0,
    decay_mask: Any = None,
) -> GradientTransformation:
    """clip_by_global_norm(clip_norm) → `optimizer(name)` on a warmup-cosine schedule.

    The schedule rises linearly from 0 to `peak_value` over `warmup_steps` (at least 1) and
    follows a half cosine down to 0 at `total_steps` (at least 2) — optax's
    `warmup_cosine_decay` convention, where the decay steps count the warmup.
    """
    check_positive_int(total_steps, "total_steps")
    schedule: Callable[[Any], Any] = optim.warmup_cosine_decay(
        init_value=0.0,
        peak_value=peak_value,
        warmup_steps=max(warmup_steps, 1),
        decay_steps=max(total_steps, 2),
        end_value=0.0,
    )
    return optim.chain(
        optim.clip_by_global_norm(clip_norm),
        optimizer(name, schedule, weight_decay=weight_decay, decay_mask=decay_mask),
    )
