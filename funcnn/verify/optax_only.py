"""The optimizers only optax (or optax.contrib) has, each with its defaults and with
non-default flags, paired with its float64 transcription in `funcnn.reference.optim`.

`registry.CONFIGS` includes these (`OPTAX_PAIRS[name] = (build, build_reference)`), so
`scripts/compare_optimizers.py verify` and `tests/test_reference_agreement.py` check them in
float64 and float32 like every other configuration. The optimizers that need the loss value
(lbfgs, polyak_sgd, reduce_on_plateau) are checked in their own tests instead: the
registry's runner passes gradients only. So is prodigy: on the registry's problem, which has
no minimum, its distance estimate grows without bound and overflows within 500 steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from funcnn.optim import aliases_optax as ox
from funcnn.optim import schedules
from funcnn.reference import optim as ref

__all__ = ["OPTAX_PAIRS"]


def _decay_ndim2(params: Any) -> Any:
    return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


def _decay_ndim2_reference(flat: ref.FlatParams) -> dict[str, bool]:
    return {k: x.ndim >= 2 for k, x in flat.items()}


# name -> (funcnn builder, reference builder); defaults first, then non-default flags.
OPTAX_PAIRS: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "adabelief": (lambda: ox.adabelief(1e-2), lambda: ref.AdaBelief(1e-2)),
    "adabelief_nesterov_decay_mask": (
        lambda: ox.adabelief(1e-2, 0.8, 0.99, 1e-8, 1e-12, 0.1, _decay_ndim2, nesterov=True),
        lambda: ref.AdaBelief(1e-2, 0.8, 0.99, 1e-8, 1e-12, 0.1, _decay_ndim2_reference, True),
    ),
    "yogi": (lambda: ox.yogi(1e-2), lambda: ref.Yogi(1e-2)),
    "yogi_b_eps_schedule": (
        lambda: ox.yogi(schedules.cosine_decay(3e-2, 20, 1e-3), 0.8, 0.9, 1e-6),
        lambda: ref.Yogi(ref.schedule_cosine_decay(3e-2, 20, 1e-3), 0.8, 0.9, 1e-6),
    ),
    "adan": (lambda: ox.adan(1e-2), lambda: ref.Adan(1e-2)),
    "adan_decay_mask_betas": (
        lambda: ox.adan(1e-2, 0.9, 0.8, 0.95, 1e-6, 0.0, 0.1, _decay_ndim2),
        lambda: ref.Adan(1e-2, 0.9, 0.8, 0.95, 1e-6, 0.0, 0.1, _decay_ndim2_reference),
    ),
    "novograd": (lambda: ox.novograd(1e-2), lambda: ref.NovoGrad(1e-2)),
    "novograd_decay_eps_root": (
        lambda: ox.novograd(1e-2, 0.8, 0.5, 1e-4, 1e-3, 0.1),
        lambda: ref.NovoGrad(1e-2, 0.8, 0.5, 1e-4, 1e-3, 0.1),
    ),
    "adopt": (lambda: ox.adopt(3e-3), lambda: ref.Adopt(3e-3)),
    "adopt_nesterov_unclipped": (
        lambda: ox.adopt(1e-2, 0.8, 0.99, 1e-4, nesterov=True, use_clipping=False),
        lambda: ref.Adopt(1e-2, 0.8, 0.99, 1e-4, nesterov=True, use_clipping=False),
    ),
    "ademamix": (lambda: ox.ademamix(1e-3), lambda: ref.AdEMAMix(1e-3)),
    "ademamix_schedules_decay": (
        lambda: ox.ademamix(
            1e-2,
            0.8,
            0.99,
            lambda c: 0.9 + 0.09 * jnp.minimum(c, 10) / 10,
            lambda c: 2.0 * jnp.minimum(c, 10) / 10,
            1e-6,
            1e-10,
            weight_decay=0.1,
            mask=_decay_ndim2,
        ),
        lambda: ref.AdEMAMix(
            1e-2,
            0.8,
            0.99,
            lambda c: 0.9 + 0.09 * min(c, 10) / 10,
            lambda c: 2.0 * min(c, 10) / 10,
            1e-6,
            1e-10,
            0.1,
            _decay_ndim2_reference,
        ),
    ),
    "simplified_ademamix": (
        lambda: ox.simplified_ademamix(1e-3),
        lambda: ref.SimplifiedAdEMAMix(1e-3),
    ),
    "simplified_ademamix_alpha_decay": (
        lambda: ox.simplified_ademamix(1e-3, 0.9, 0.9, 2.0, 1e-6, 0.0, 0.1, _decay_ndim2),
        lambda: ref.SimplifiedAdEMAMix(1e-3, 0.9, 0.9, 2.0, 1e-6, 0.0, 0.1, _decay_ndim2_reference),
    ),
    "adamaxw": (lambda: ox.adamaxw(1e-2), lambda: ref.AdamaxW(1e-2)),
    "adamaxw_decay_mask": (
        lambda: ox.adamaxw(1e-2, 0.8, 0.99, 1e-6, 0.1, _decay_ndim2),
        lambda: ref.AdamaxW(1e-2, 0.8, 0.99, 1e-6, 0.1, _decay_ndim2_reference),
    ),
    "lars": (lambda: ox.lars(1.0), lambda: ref.Lars(1.0)),
    "lars_decay_mask_eps_nesterov": (
        lambda: ox.lars(0.1, 0.01, _decay_ndim2, 0.01, 1e-6, True, momentum=0.8, nesterov=True),
        lambda: ref.Lars(0.1, 0.01, _decay_ndim2_reference, 0.01, 1e-6, True, 0.8, True),
    ),
    "sign_sgd": (
        lambda: ox.sign_sgd(schedules.cosine_decay(1e-3, 500, 1e-4)),
        lambda: ref.SignSGD(ref.schedule_cosine_decay(1e-3, 500, 1e-4)),
    ),
    "signum": (
        lambda: ox.signum(schedules.cosine_decay(1e-3, 500, 1e-4)),
        lambda: ref.Signum(ref.schedule_cosine_decay(1e-3, 500, 1e-4)),
    ),
    "signum_beta": (
        lambda: ox.signum(schedules.cosine_decay(1e-3, 500, 1e-4), 0.5),
        lambda: ref.Signum(ref.schedule_cosine_decay(1e-3, 500, 1e-4), 0.5),
    ),
    "optimistic_gradient_descent": (
        lambda: ox.optimistic_gradient_descent(1e-2),
        lambda: ref.OptimisticGradientDescent(1e-2),
    ),
    "optimistic_gradient_descent_alpha_beta": (
        lambda: ox.optimistic_gradient_descent(1e-2, 0.5, 2.0),
        lambda: ref.OptimisticGradientDescent(1e-2, 0.5, 2.0),
    ),
    "fromage": (lambda: ox.fromage(3e-3), lambda: ref.Fromage(3e-3)),
    "fromage_schedule": (
        lambda: ox.fromage(schedules.linear_schedule(0.1, 0.01, 20), 1e-3),
        lambda: ref.Fromage(ref.schedule_linear(0.1, 0.01, 20), 1e-3),
    ),
}
