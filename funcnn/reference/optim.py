"""Float64 NumPy transcriptions of every optimizer stage, alias and schedule — no JAX here.

Written straight from the equations in the docstrings of `funcnn.optim`, as independently
of its code as possible: the aliases (`SGD`, `RMSProp`, `Adam`, `AdamW`) are single loops
over the parameters in PyTorch's style, not chains of the stages below.

Conventions:
- Parameters, gradients and updates are *flat* dicts `name -> np.ndarray` (float64); use
  `flatten_params` to turn a nested parameter dict into one ("dense/w" keys).
- Every optimizer object is stateful: `updates = opt.update(grads, params)` advances its
  state by one step and returns u (θ ← θ + u); `opt.step(params, grads)` returns θ + u.
  `opt.last_learning_rate` is the η used by the latest update (None before any).
- Schedules are factories with the same arguments as `funcnn.optim.schedules`, returning
  a plain function `step -> float` (step = updates already applied, 0 first).
- `run_reference(opt, params, grad_fn, num_steps)` runs the loop and returns the final
  params plus the learning rate used at every step.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

FlatParams = dict[str, np.ndarray]
Mask = Mapping[str, bool] | Callable[[FlatParams], Mapping[str, bool]]
ScheduleFn = Callable[[int], float]

__all__ = [
    "ASGD",
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "AddDecayedWeights",
    "Chain",
    "Clip",
    "ClipByGlobalNorm",
    "Identity",
    "Lamb",
    "Lion",
    "Muon",
    "NAdam",
    "Partition",
    "RAdam",
    "RMSProp",
    "Rprop",
    "Scale",
    "ScaleByAdam",
    "ScaleByLearningRate",
    "ScaleByRms",
    "ScaleByTrustRatio",
    "ScheduleFreeAdamW",
    "Trace",
    "flatten_params",
    "global_norm_reference",
    "newton_schulz_reference",
    "run_reference",
    "schedule_constant",
    "schedule_cosine_decay",
    "schedule_exponential_decay",
    "schedule_linear",
    "schedule_linear_warmup",
    "schedule_piecewise_constant",
    "schedule_warmup_cosine_decay",
]


def flatten_params(tree: Mapping[str, Any], prefix: str = "") -> FlatParams:
    """{"dense": {"w": a}} -> {"dense/w": float64 copy of a}; key order is sorted (as JAX's)."""
    flat: FlatParams = {}
    for key in sorted(tree):
        value = tree[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name + "/"))
        else:
            flat[name] = np.array(value, dtype=np.float64)
    return flat


def _learning_rate(value: float | ScheduleFn) -> ScheduleFn:
    return value if callable(value) else (lambda step: float(value))


def _mask_dict(mask: Mask | None, params: FlatParams) -> dict[str, bool]:
    if mask is None:
        return dict.fromkeys(params, True)
    chosen = mask(params) if callable(mask) else mask
    return {name: bool(chosen[name]) for name in params}


# --- schedules (η as a function of the number of updates already applied) --------------


def schedule_constant(value: float) -> ScheduleFn:
    """η(t) = value."""
    return lambda t: float(value)


def schedule_linear(init_value: float, end_value: float, transition_steps: int) -> ScheduleFn:
    """η(t) = a + (b − a)·min(t, T)/T."""
    return lambda t: (
        init_value + (end_value - init_value) * min(t, transition_steps) / (transition_steps)
    )


def schedule_linear_warmup(
    peak_value: float, warmup_steps: int, init_value: float = 0.0
) -> ScheduleFn:
    """η(t) = a + (p − a)·min(t, W)/W."""
    return schedule_linear(init_value, peak_value, warmup_steps)


def schedule_cosine_decay(init_value: float, decay_steps: int, end_value: float = 0.0):
    """η(t) = e + (η₀ − e)·½·(1 + cos(π·min(t, T)/T))."""

    def schedule(t: int) -> float:
        progress = min(t, decay_steps) / decay_steps
        return end_value + (init_value - end_value) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return schedule


def schedule_warmup_cosine_decay(
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    init_value: float = 0.0,
) -> ScheduleFn:
    """Linear from a to p over W steps, then half a cosine from p to e, reaching e at t = T."""

    def schedule(t: int) -> float:
        if t < warmup_steps:
            return init_value + (peak_value - init_value) * t / warmup_steps
        progress = min(t - warmup_steps, decay_steps - warmup_steps) / (decay_steps - warmup_steps)
        return end_value + (peak_value - end_value) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return schedule


def schedule_exponential_decay(
    init_value: float, decay_rate: float, transition_steps: int, staircase: bool = False
) -> ScheduleFn:
    """η(t) = η₀·r^(t/T), or r^⌊t/T⌋ with staircase."""

    def schedule(t: int) -> float:
        exponent = t / transition_steps
        if staircase:
            exponent = math.floor(exponent)
        return init_value * decay_rate**exponent

    return schedule


def schedule_piecewise_constant(boundaries: Sequence[int], values: Sequence[float]) -> ScheduleFn:
    """η(t) = values[k], k = number of boundaries b with t ≥ b."""
    return lambda t: float(values[sum(1 for b in boundaries if t >= b)])


# --- small stages: update(grads, params) -> updates, state kept on the object ----------


class _Stage:
    """Base: `update(grads, params) -> updates` (advances the state); `step` adds them."""

    last_learning_rate: float | None = None
    schedule: ScheduleFn  # set by the stages that take a learning rate (next_learning_rate)
    t: int  # updates already applied, kept by the same stages

    def update(self, grads: FlatParams, params: FlatParams) -> FlatParams:
        raise NotImplementedError

    def step(self, params: FlatParams, grads: FlatParams) -> FlatParams:
        updates = self.update(grads, params)
        return {k: params[k] + updates[k] for k in params}

    def next_learning_rate(self) -> float:
        """ηₜ = schedule(t), t = updates already applied (0 first); then t ← t + 1."""
        lr = self.schedule(self.t)
        self.t += 1
        self.last_learning_rate = lr
        return lr


class Identity(_Stage):
    """u = g."""

    def update(self, grads: FlatParams, params: FlatParams) -> FlatParams:
        return dict(grads)


class Scale(_Stage):
    """u = c·g."""

    def __init__(self, factor: float):
        self.factor = factor

    def update(self, grads, params):
        return {k: self.factor * g for k, g in grads.items()}


class Clip(_Stage):
    """u = min(max(g, −c), c) elementwise."""

    def __init__(self, max_delta: float):
        self.max_delta = max_delta

    def update(self, grads, params):
        return {
            k: np.minimum(np.maximum(g, -self.max_delta), self.max_delta) for k, g in grads.items()
        }


class ScaleByLearningRate(_Stage):
    """u = −η(t)·d, t = updates already applied."""

    def __init__(self, learning_rate: float | ScheduleFn):
        self.schedule = _learning_rate(learning_rate)
        self.t = 0

    def update(self, grads, params):
        lr = self.next_learning_rate()
        return {k: -lr * g for k, g in grads.items()}


class Trace(_Stage):
    """v = μv + g;  d = g + μv (nesterov) or v."""

    def __init__(self, decay: float, nesterov: bool = False):
        self.decay, self.nesterov = decay, nesterov
        self.v: FlatParams = {}

    def update(self, grads, params):
        out = {}
        for k, g in grads.items():
            self.v[k] = self.decay * self.v.get(k, np.zeros_like(g)) + g
            out[k] = g + self.decay * self.v[k] if self.nesterov else self.v[k].copy()
        return out


class ScaleByRms(_Stage):
    """s = ρs + (1−ρ)g²  [m = ρm + (1−ρ)g, s̃ = max(s − m², 0)];  d = g/(√s̃ + ε) or g/√(s̃ + ε)."""

    def __init__(self, decay=0.9, eps=1e-8, eps_in_sqrt=False, centered=False):
        self.decay, self.eps = decay, eps
        self.eps_in_sqrt, self.centered = eps_in_sqrt, centered
        self.s: FlatParams = {}
        self.m: FlatParams = {}

    def update(self, grads, params):
        rho, out = self.decay, {}
        for k, g in grads.items():
            self.s[k] = rho * self.s.get(k, np.zeros_like(g)) + (1 - rho) * g * g
            s = self.s[k]
            if self.centered:
                self.m[k] = rho * self.m.get(k, np.zeros_like(g)) + (1 - rho) * g
                s = np.maximum(s - self.m[k] ** 2, 0.0)
            denom = np.sqrt(s + self.eps) if self.eps_in_sqrt else np.sqrt(s) + self.eps
            out[k] = g / denom
        return out


class ScaleByAdam(_Stage):
    """m = β₁m + (1−β₁)g, v = β₂v + (1−β₂)g², d = (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε), t from 1."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8):
        self.b1, self.b2, self.eps = b1, b2, eps
        self.t = 0
        self.m: FlatParams = {}
        self.v: FlatParams = {}

    def update(self, grads, params):
        self.t += 1
        out = {}
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m.get(k, np.zeros_like(g)) + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v.get(k, np.zeros_like(g)) + (1 - self.b2) * g * g
            m_hat = self.m[k] / (1 - self.b1**self.t)
            v_hat = self.v[k] / (1 - self.b2**self.t)
            out[k] = m_hat / (np.sqrt(v_hat) + self.eps)
        return out


class AddDecayedWeights(_Stage):
    """u = g + λθ on masked leaves."""

    def __init__(self, weight_decay: float, mask: Mask | None = None):
        self.weight_decay, self.mask = weight_decay, mask

    def update(self, grads, params):
        chosen = _mask_dict(self.mask, params)
        return {k: g + self.weight_decay * params[k] if chosen[k] else g for k, g in grads.items()}


def global_norm_reference(grads: FlatParams) -> float:
    """‖g‖ = √(Σ g²) over all leaves and entries."""
    return math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))


class ClipByGlobalNorm(_Stage):
    """u = g·min(1, c/‖g‖)  (eps = 0; u = g at ‖g‖ = 0),  or g·min(1, c/(‖g‖ + ε))."""

    def __init__(self, max_norm: float, eps: float = 0.0):
        self.max_norm, self.eps = max_norm, eps

    def update(self, grads, params):
        norm = global_norm_reference(grads)
        if self.eps > 0:
            factor = min(1.0, self.max_norm / (norm + self.eps))
        else:
            factor = 1.0 if norm <= self.max_norm else self.max_norm / norm
        return {k: factor * g for k, g in grads.items()}


class Chain(_Stage):
    """Apply stages in order; `last_learning_rate` comes from the stage that has one."""

    def __init__(self, *stages):
        self.stages = stages

    @property
    def last_learning_rate(self) -> float | None:  # type: ignore[override]  # derived, read-only
        rates = [s.last_learning_rate for s in self.stages if hasattr(s, "last_learning_rate")]
        return rates[-1] if rates else None

    def update(self, grads, params):
        for stage in self.stages:
            grads = stage.update(grads, params)
        return grads


# --- aliases, each written as one loop straight from the DESIGN.md table ---------------


class SGD(_Stage):
    """g += λθ; v = μv + g; d = g + μv if nesterov else v (d = g if μ = 0); θ -= η d."""

    def __init__(self, learning_rate, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.schedule = _learning_rate(learning_rate)
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.t = 0
        self.buf: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        out = {}
        for k, g in grads.items():
            g = g + self.weight_decay * params[k]
            if self.momentum > 0:
                self.buf[k] = self.momentum * self.buf.get(k, np.zeros_like(g)) + g
                d = g + self.momentum * self.buf[k] if self.nesterov else self.buf[k]
            else:
                d = g
            out[k] = -lr * d
        return out


class RMSProp(_Stage):
    """PyTorch-style RMSprop loop, with `eps_in_sqrt` for the optax/TF placement of ε."""

    def __init__(
        self,
        learning_rate,
        decay=0.9,
        eps=1e-8,
        momentum=0.0,
        centered=False,
        eps_in_sqrt=False,
        weight_decay=0.0,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.alpha, self.eps, self.momentum = decay, eps, momentum
        self.centered, self.eps_in_sqrt, self.weight_decay = centered, eps_in_sqrt, weight_decay
        self.t = 0
        self.square_avg: FlatParams = {}
        self.grad_avg: FlatParams = {}
        self.buf: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        out = {}
        for k, g in grads.items():
            g = g + self.weight_decay * params[k]
            zero = np.zeros_like(g)
            self.square_avg[k] = self.alpha * self.square_avg.get(k, zero) + (1 - self.alpha) * g**2
            avg = self.square_avg[k]
            if self.centered:
                self.grad_avg[k] = self.alpha * self.grad_avg.get(k, zero) + (1 - self.alpha) * g
                avg = np.maximum(avg - self.grad_avg[k] ** 2, 0.0)
            if self.eps_in_sqrt:
                d = g / np.sqrt(avg + self.eps)
            else:
                d = g / (np.sqrt(avg) + self.eps)
            if self.momentum > 0:
                self.buf[k] = self.momentum * self.buf.get(k, zero) + d
                d = self.buf[k]
            out[k] = -lr * d
        return out


class Adam(_Stage):
    """g += λθ (coupled L2); PyTorch's Adam: θ -= (η/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε).
    amsgrad (torch's): v_max = max(v_max, v) and √v_max replaces √v in the denominator."""

    def __init__(
        self, learning_rate=3e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps, self.weight_decay = b1, b2, eps, weight_decay
        self.amsgrad = amsgrad
        self.t = 0
        self.m: FlatParams = {}
        self.v: FlatParams = {}
        self.v_max: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        bias1, bias2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        out = {}
        for k, g in grads.items():
            g = g + self.weight_decay * params[k]
            zero = np.zeros_like(g)
            self.m[k] = self.b1 * self.m.get(k, zero) + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v.get(k, zero) + (1 - self.b2) * g**2
            v = self.v[k]
            if self.amsgrad:
                v = self.v_max[k] = np.maximum(self.v_max.get(k, zero), v)
            denom = np.sqrt(v) / math.sqrt(bias2) + self.eps
            out[k] = -(lr / bias1) * self.m[k] / denom
        return out


class AdamW(_Stage):
    """PyTorch's AdamW: θ ← θ − ηλθ (masked leaves only), then the Adam step."""

    def __init__(
        self,
        learning_rate=3e-4,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        weight_decay=0.01,
        mask=None,
        amsgrad=False,
    ):
        self.adam = Adam(learning_rate, b1, b2, eps, weight_decay=0.0, amsgrad=amsgrad)
        self.weight_decay, self.mask = weight_decay, mask

    def update(self, grads, params):
        adam_updates = self.adam.update(grads, params)
        lr = self.last_learning_rate = self.adam.last_learning_rate
        chosen = _mask_dict(self.mask, params)
        return {
            k: u - lr * self.weight_decay * params[k] if chosen[k] else u
            for k, u in adam_updates.items()
        }


# --- the rest of torch.optim, each one loop in the order of torch's documented algorithm ---


class Adagrad(_Stage):
    """torch.optim.Adagrad: g += λθ; clr = η/(1 + (t−1)·lr_decay); s += g²;
    θ −= clr·g/(√s + ε)  (eps_in_sqrt: clr·g/√(s + ε), optax's placement)."""

    def __init__(
        self,
        learning_rate=1e-2,
        lr_decay=0.0,
        initial_accumulator_value=0.0,
        eps=1e-10,
        weight_decay=0.0,
        eps_in_sqrt=False,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.lr_decay, self.init_value, self.eps = lr_decay, initial_accumulator_value, eps
        self.weight_decay, self.eps_in_sqrt = weight_decay, eps_in_sqrt
        self.t = 0
        self.sum: FlatParams = {}

    def update(self, grads, params):
        step = self.t + 1  # torch increments its step first
        lr = self.next_learning_rate()
        clr = lr / (1 + (step - 1) * self.lr_decay)
        self.last_learning_rate = clr
        out = {}
        for k, g in grads.items():
            g = g + self.weight_decay * params[k]
            self.sum[k] = self.sum.get(k, np.full_like(g, self.init_value)) + g * g
            s = self.sum[k]
            if self.eps_in_sqrt:
                d = g / np.sqrt(s + self.eps)
            else:
                d = g / (np.sqrt(s) + self.eps)
            out[k] = -clr * d
        return out


class Adadelta(_Stage):
    """torch.optim.Adadelta: g += λθ; sq = ρsq + (1−ρ)g²; δ = √(acc + ε)/√(sq + ε)·g;
    acc = ρacc + (1−ρ)δ²; θ −= η·δ."""

    def __init__(self, learning_rate=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        self.schedule = _learning_rate(learning_rate)
        self.rho, self.eps, self.weight_decay = rho, eps, weight_decay
        self.t = 0
        self.square_avg: FlatParams = {}
        self.acc_delta: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        rho, eps, out = self.rho, self.eps, {}
        for k, g in grads.items():
            g = g + self.weight_decay * params[k]
            zero = np.zeros_like(g)
            self.square_avg[k] = rho * self.square_avg.get(k, zero) + (1 - rho) * g * g
            acc = self.acc_delta.get(k, zero)
            delta = np.sqrt(acc + eps) / np.sqrt(self.square_avg[k] + eps) * g
            self.acc_delta[k] = rho * acc + (1 - rho) * delta * delta
            out[k] = -lr * delta
        return out


class Adamax(_Stage):
    """torch.optim.Adamax: g += λθ; m = β₁m + (1−β₁)g; u = max(β₂u, |g| + ε);
    θ −= (η/(1−β₁ᵗ))·m/u."""

    def __init__(self, learning_rate=2e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps, self.weight_decay = b1, b2, eps, weight_decay
        self.t = 0
        self.exp_avg: FlatParams = {}
        self.exp_inf: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        clr = lr / (1 - self.b1**self.t)
        out = {}
        for k, g in grads.items():
            g = g + self.weight_decay * params[k]
            zero = np.zeros_like(g)
            self.exp_avg[k] = self.b1 * self.exp_avg.get(k, zero) + (1 - self.b1) * g
            self.exp_inf[k] = np.maximum(self.b2 * self.exp_inf.get(k, zero), np.abs(g) + self.eps)
            out[k] = -clr * self.exp_avg[k] / self.exp_inf[k]
        return out


class NAdam(_Stage):
    """torch.optim.NAdam: μₜ = β₁(1 − ½·0.96^(tψ)), Π ← Π·μₜ; m, v as Adam;
    D = √(v/(1−β₂ᵗ)) + ε; θ −= η(1−μₜ)/(1−Π)·g/D + η·μₜ₊₁/(1−Π·μₜ₊₁)·m/D.
    Weight decay: g += λθ, or θ ← θ(1 − ηλ) first with decoupled_weight_decay."""

    def __init__(
        self,
        learning_rate=2e-3,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        weight_decay=0.0,
        momentum_decay=4e-3,
        decoupled_weight_decay=False,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps = b1, b2, eps
        self.weight_decay, self.momentum_decay = weight_decay, momentum_decay
        self.decoupled = decoupled_weight_decay
        self.t = 0
        self.mu_product = 1.0
        self.exp_avg: FlatParams = {}
        self.exp_avg_sq: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        step, b1, b2 = self.t, self.b1, self.b2
        mu = b1 * (1.0 - 0.5 * 0.96 ** (step * self.momentum_decay))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * self.momentum_decay))
        self.mu_product *= mu
        bias2 = 1 - b2**step
        out = {}
        for k, g in grads.items():
            theta = params[k]
            if self.decoupled:
                theta = theta * (1 - lr * self.weight_decay)
            else:
                g = g + self.weight_decay * theta
            zero = np.zeros_like(g)
            self.exp_avg[k] = b1 * self.exp_avg.get(k, zero) + (1 - b1) * g
            self.exp_avg_sq[k] = b2 * self.exp_avg_sq.get(k, zero) + (1 - b2) * g * g
            denom = np.sqrt(self.exp_avg_sq[k] / bias2) + self.eps
            new = theta - lr * (1 - mu) / (1 - self.mu_product) * g / denom
            new = new - lr * mu_next / (1 - self.mu_product * mu_next) * self.exp_avg[k] / denom
            out[k] = new - params[k]
        return out


class RAdam(_Stage):
    """torch.optim.RAdam: m, v as Adam; ρₜ = ρ∞ − 2tβ₂ᵗ/(1−β₂ᵗ); if ρₜ > 5:
    θ −= η·m̂·rₜ·√(1−β₂ᵗ)/(√v + ε), else θ −= η·m̂. Weight decay as in NAdam."""

    def __init__(
        self,
        learning_rate=1e-3,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        weight_decay=0.0,
        decoupled_weight_decay=False,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps, self.weight_decay = b1, b2, eps, weight_decay
        self.decoupled = decoupled_weight_decay
        self.t = 0
        self.exp_avg: FlatParams = {}
        self.exp_avg_sq: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        step, b1, b2 = self.t, self.b1, self.b2
        bias1, bias2 = 1 - b1**step, 1 - b2**step
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * step * b2**step / bias2
        out = {}
        for k, g in grads.items():
            theta = params[k]
            if self.decoupled:
                theta = theta * (1 - lr * self.weight_decay)
            else:
                g = g + self.weight_decay * theta
            zero = np.zeros_like(g)
            self.exp_avg[k] = b1 * self.exp_avg.get(k, zero) + (1 - b1) * g
            self.exp_avg_sq[k] = b2 * self.exp_avg_sq.get(k, zero) + (1 - b2) * g * g
            m_hat = self.exp_avg[k] / bias1
            if rho_t > 5.0:
                rect = math.sqrt(
                    (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
                )
                adaptive = math.sqrt(bias2) / (np.sqrt(self.exp_avg_sq[k]) + self.eps)
                new = theta - m_hat * lr * adaptive * rect
            else:
                new = theta - m_hat * lr
            out[k] = new - params[k]
        return out


class Rprop(_Stage):
    """torch.optim.Rprop: s = sign(g·prev); Δ ← clip(Δ·{η₊, η₋, 1}, Δmin, Δmax);
    g ← 0 where s < 0; θ −= sign(g)·Δ; prev ← g. Δ starts at lr, prev at 0."""

    def __init__(self, learning_rate=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
        self.lr = learning_rate
        (self.eta_minus, self.eta_plus), (self.step_min, self.step_max) = etas, step_sizes
        self.prev: FlatParams = {}
        self.step_size: FlatParams = {}

    def update(self, grads, params):
        out = {}
        for k, g in grads.items():
            prev = self.prev.get(k, np.zeros_like(g))
            step_size = self.step_size.get(k, np.full_like(g, self.lr))
            sign = np.sign(g * prev)
            factor = np.ones_like(g)
            factor[sign > 0] = self.eta_plus
            factor[sign < 0] = self.eta_minus
            self.step_size[k] = np.clip(step_size * factor, self.step_min, self.step_max)
            g = g.copy()
            g[sign < 0] = 0.0
            out[k] = -np.sign(g) * self.step_size[k]
            self.prev[k] = g
        return out


class ASGD(_Stage):
    """torch.optim.ASGD: g += λ_wd·θ; θ ← θ(1 − λη̃) − η̃g; ax ← θ if μ = 1 else
    ax + μ(θ − ax); then η̃ = lr/(1 + λ·lr·t)^α and μ = 1/max(1, t − t₀) for the next step.
    `self.ax` holds the averaged parameters."""

    def __init__(self, learning_rate=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0):
        self.schedule = _learning_rate(learning_rate)
        self.lambd, self.alpha, self.t0, self.weight_decay = lambd, alpha, t0, weight_decay
        self.t = 0
        self.mu = 1.0  # μ for the coming step (torch initialises it to 1)
        self.ax: FlatParams = {}

    def update(self, grads, params):
        step = self.t + 1
        lr = self.next_learning_rate()  # schedule(t − 1)
        # torch keeps η̃ from the previous step; with a constant lr that equals this formula.
        eta = lr / (1 + self.lambd * lr * (step - 1)) ** self.alpha
        self.last_learning_rate = eta
        out = {}
        for k, g in grads.items():
            g = g + self.weight_decay * params[k]
            new = params[k] * (1 - self.lambd * eta)
            new = new - eta * g
            ax = self.ax.get(k, np.zeros_like(g))
            self.ax[k] = new.copy() if self.mu == 1 else ax + (new - ax) * self.mu
            out[k] = new - params[k]
        self.mu = 1 / max(1, step - self.t0)
        return out


def run_reference(
    optimizer: Any,
    params: FlatParams,
    grad_fn: Callable[[FlatParams], FlatParams],
    num_steps: int,
    loss_fn: Callable[[FlatParams], float] | None = None,
) -> tuple[FlatParams, np.ndarray]:
    """θ₀ = params; θₖ₊₁ = θₖ + update(grad_fn(θₖ), θₖ) for k < num_steps, all in float64
    (`update(..., value=loss_fn(θₖ))` when `loss_fn` is given: the optimizers that read the
    loss, whose `needs_value` is True).

    Returns (θ_final, learning_rates) where learning_rates[k] is the η used at update k
    (NaN for an optimizer without a learning rate).
    """
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    rates = np.full(num_steps, np.nan)
    for k in range(num_steps):
        if loss_fn is None:
            params = optimizer.step(params, grad_fn(params))
        else:
            updates = optimizer.update(grad_fn(params), params, value=loss_fn(params))
            params = {name: params[name] + updates[name] for name in params}
        rate = getattr(optimizer, "last_learning_rate", None)
        rates[k] = np.nan if rate is None else rate
    return params, rates


# --- Lion, LAMB, the trust ratio and partitions (optax's semantics) ---------------------


class Lion(_Stage):
    """Chen et al. 2023, Program 1: c = β₁m + (1−β₁)g; θ −= η·(sign(c) + λθ) on masked leaves
    (λθ only); m = β₂m + (1−β₂)g."""

    def __init__(self, learning_rate=1e-4, b1=0.9, b2=0.99, weight_decay=0.0, mask=None):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.weight_decay, self.mask = b1, b2, weight_decay, mask
        self.t = 0
        self.exp_avg: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        chosen = _mask_dict(self.mask, params)
        out = {}
        for k, g in grads.items():
            m = self.exp_avg.get(k, np.zeros_like(g))
            step = np.sign(self.b1 * m + (1 - self.b1) * g)
            if chosen[k]:
                step = step + self.weight_decay * params[k]
            out[k] = -lr * step
            self.exp_avg[k] = self.b2 * m + (1 - self.b2) * g
        return out


def _trust_ratio(theta: np.ndarray, r: np.ndarray, min_norm=0.0, coefficient=1.0, eps=0.0):
    """φ = c·max(‖θ‖, n₀)/(max(‖r‖, n₀) + ε), or 1 if either (floored) norm is 0."""
    theta_norm = max(math.sqrt(float(np.sum(theta * theta))), min_norm)
    r_norm = max(math.sqrt(float(np.sum(r * r))), min_norm)
    if theta_norm == 0 or r_norm == 0:
        return 1.0
    return coefficient * theta_norm / (r_norm + eps)


class ScaleByTrustRatio(_Stage):
    """u = φ·g per leaf, φ = c·‖θ‖/(‖g‖ + ε) with norms floored at n₀ (1 where one is 0)."""

    def __init__(self, min_norm=0.0, trust_coefficient=1.0, eps=0.0):
        self.min_norm, self.coefficient, self.eps = min_norm, trust_coefficient, eps

    def update(self, grads, params):
        return {
            k: _trust_ratio(params[k], g, self.min_norm, self.coefficient, self.eps) * g
            for k, g in grads.items()
        }


class Lamb(_Stage):
    """You et al. 2020, Algorithm 2 (optax's lamb): m, v as Adam; r = m̂/(√v̂ + ε) + λθ on
    masked leaves; θ −= η·φ·r with φ = ‖θ‖/‖r‖ per leaf (1 if either norm is 0)."""

    def __init__(self, learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.0, mask=None):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps = b1, b2, eps
        self.weight_decay, self.mask = weight_decay, mask
        self.t = 0
        self.m: FlatParams = {}
        self.v: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        step, b1, b2 = self.t, self.b1, self.b2
        chosen = _mask_dict(self.mask, params)
        out = {}
        for k, g in grads.items():
            zero = np.zeros_like(g)
            self.m[k] = b1 * self.m.get(k, zero) + (1 - b1) * g
            self.v[k] = b2 * self.v.get(k, zero) + (1 - b2) * g * g
            m_hat, v_hat = self.m[k] / (1 - b1**step), self.v[k] / (1 - b2**step)
            r = m_hat / (np.sqrt(v_hat) + self.eps)
            if chosen[k]:
                r = r + self.weight_decay * params[k]
            out[k] = -lr * _trust_ratio(params[k], r) * r
        return out


class Partition(_Stage):
    """Each leaf k gets stages[labels[k]]'s update, computed on the leaves with that label only.
    `labels`: flat dict name -> label, or a function of the flat params returning one.
    `last_learning_rate`: the one inner rate if exactly one inner stage reports a rate."""

    def __init__(self, stages: Mapping[str, Any], labels):
        self.stages, self.labels = dict(stages), labels

    @property
    def last_learning_rate(self) -> float | None:  # type: ignore[override]  # derived, read-only
        rates = [s.last_learning_rate for s in self.stages.values()]
        rates = [r for r in rates if r is not None]
        return rates[0] if len(rates) == 1 else None

    def update(self, grads, params):
        labels = self.labels(params) if callable(self.labels) else self.labels
        out = {}
        for label, stage in self.stages.items():
            names = [k for k in grads if labels[k] == label]  # may be none: it still steps
            out.update(stage.update({k: grads[k] for k in names}, {k: params[k] for k in names}))
        return {k: out[k] for k in grads}


# --- Adafactor, Muon (torch.optim's), schedule-free AdamW (optax.contrib's) ---------------


def _rms_reference(x: np.ndarray) -> float:
    """RMS(x) = √(Σx²/n) over every entry."""
    return math.sqrt(float(np.sum(x * x)) / x.size)


class Adafactor(_Stage):
    """torch.optim.Adafactor, one loop per leaf: β̂ = 1 − t^τ; ρ = min(η, 1/√t);
    α = ρ·max(ε₂, RMS(θ)); θ ← θ(1 − ηλ) (masked); rank ≥ 2: R, C running row/column means of
    G² over the last two axes, V̂ = R⊗C/max(meanᵢR, ε₁); else V̂ = V running mean of G²;
    U = G/max(√V̂, ε₁); θ ← θ − α·U/max(1, RMS(U)/d). ε₁ None → float64's machine epsilon
    (funcnn uses each leaf's dtype's: only matters where the floor is reached)."""

    def __init__(
        self,
        learning_rate=1e-2,
        beta2_decay=-0.8,
        eps=(None, 1e-3),
        d=1.0,
        weight_decay=0.0,
        mask=None,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.beta2_decay, self.d, self.weight_decay, self.mask = beta2_decay, d, weight_decay, mask
        self.eps1 = np.finfo(np.float64).eps if eps[0] is None else eps[0]
        self.eps2 = eps[1]
        self.t = 0
        self.row: FlatParams = {}
        self.col: FlatParams = {}
        self.v: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        t = self.t
        one_minus_beta = t**self.beta2_decay
        rho = min(lr, 1 / math.sqrt(t))
        chosen = _mask_dict(self.mask, params)
        out = {}
        for k, g in grads.items():
            theta = params[k]
            alpha = max(self.eps2, _rms_reference(theta)) * rho
            decayed = theta * (1 - lr * self.weight_decay) if chosen[k] else theta.copy()
            g2 = g * g
            if g.ndim >= 2:
                n, m = g.shape[-2], g.shape[-1]
                row_mean = g2.sum(axis=-1) / m  # (…, n)
                col_mean = g2.sum(axis=-2) / n  # (…, m)
                r = self.row.get(k, np.zeros_like(row_mean))
                c = self.col.get(k, np.zeros_like(col_mean))
                r = r + one_minus_beta * (row_mean - r)  # torch's lerp
                c = c + one_minus_beta * (col_mean - c)
                self.row[k], self.col[k] = r, c
                v_hat = np.einsum("...i,...j->...ij", r, c)
                v_hat = v_hat / np.maximum(r.sum(axis=-1) / n, self.eps1)[..., None, None]
            else:
                v = self.v.get(k, np.zeros_like(g))
                v = v + one_minus_beta * (g2 - v)
                self.v[k] = v
                v_hat = v
            u = g / np.sqrt(np.maximum(v_hat, self.eps1**2))
            denom = max(1.0, _rms_reference(u) / self.d)
            out[k] = decayed - (alpha / denom) * u - theta
        return out


def newton_schulz_reference(
    g: np.ndarray, coefficients=(3.4445, -4.775, 2.0315), steps: int = 5, eps: float = 1e-7
) -> np.ndarray:
    """Muon's orthogonalization, float64: X = G/max(‖G‖_F, ε) (on Gᵀ when G is tall);
    k times X ← aX + (bA + cA²)X with A = XXᵀ."""
    a, b, c = coefficients
    tall = g.shape[0] > g.shape[1]
    x = g.T.copy() if tall else g.copy()
    x = x / max(math.sqrt(float(np.sum(x * x))), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(_Stage):
    """torch.optim.Muon on 2-D leaves (A, B): buf ← buf + (1−μ)(g − buf);
    update = g + μ(buf − g) (nesterov) or buf; O = NS(update); θ ← θ(1 − ηλ) − η·r·O with
    r = √max(1, A/B) ("original"/None) or 0.2·√max(A, B) ("match_rms_adamw")."""

    def __init__(
        self,
        learning_rate=1e-3,
        weight_decay=0.1,
        momentum=0.95,
        nesterov=True,
        ns_coefficients=(3.4445, -4.775, 2.0315),
        eps=1e-7,
        ns_steps=5,
        adjust_lr_fn=None,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.weight_decay, self.momentum, self.nesterov = weight_decay, momentum, nesterov
        self.coefficients, self.eps, self.ns_steps = ns_coefficients, eps, ns_steps
        self.adjust_lr_fn = adjust_lr_fn
        self.t = 0
        self.buf: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        out = {}
        for k, g in grads.items():
            if g.ndim != 2:
                raise ValueError(f"Muon needs 2-D leaves, {k} has shape {g.shape}")
            buf = self.buf.get(k, np.zeros_like(g))
            buf = self.buf[k] = buf + (1 - self.momentum) * (g - buf)
            direction = g + self.momentum * (buf - g) if self.nesterov else buf
            ortho = newton_schulz_reference(direction, self.coefficients, self.ns_steps, self.eps)
            rows, cols = g.shape
            if self.adjust_lr_fn == "match_rms_adamw":
                ratio = 0.2 * math.sqrt(max(rows, cols))
            else:
                ratio = math.sqrt(max(1.0, rows / cols))
            theta = params[k]
            new = theta * (1 - lr * self.weight_decay) - lr * ratio * ortho
            out[k] = new - theta
        return out


class ScheduleFreeAdamW(_Stage):
    """optax.contrib.schedule_free_adamw: γ(s) = η(s)·min(s, W)/W (W > 0) or η(s);
    z ← z − γ(t−1)·(g/(√(v/(1−β₂ᵗ)) + ε) + λy); γ̄ = max(γ̄, γ(t)); ω = γ̄^p; W_sum += ω;
    c = ω/W_sum (0 if W_sum = 0); x = (y − (1−β₁)z_old)/β₁; x ← (1−c)x + c·z; y ← β₁x + (1−β₁)z.
    `eval_params(params)` returns x = (y − (1−β₁)z)/β₁."""

    def __init__(
        self,
        learning_rate,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        weight_decay=0.0,
        warmup_steps=0,
        weight_lr_power=2.0,
    ):
        base = _learning_rate(learning_rate)
        if warmup_steps > 0:
            self.schedule = lambda s: base(s) * min(s, warmup_steps) / warmup_steps
        else:
            self.schedule = base
        self.b1, self.b2, self.eps, self.weight_decay = b1, b2, eps, weight_decay
        self.power = weight_lr_power
        self.t = 0
        self.max_lr = 0.0
        self.weight_sum = 0.0
        self.v: FlatParams = {}
        self.z: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()  # γ(t − 1), the z step's
        t = self.t
        self.max_lr = max(self.max_lr, self.schedule(t))  # γ(t): optax's one-ahead weight
        weight = self.max_lr**self.power
        self.weight_sum += weight
        c = weight / self.weight_sum if self.weight_sum != 0 else 0.0
        b1 = self.b1
        out = {}
        for k, g in grads.items():
            y = params[k]
            z_old = self.z.get(k, y.copy())
            v = self.v.get(k, np.zeros_like(g))
            v = self.v[k] = self.b2 * v + (1 - self.b2) * g * g
            v_hat = v / (1 - self.b2**t)
            z = z_old - lr * (g / (np.sqrt(v_hat) + self.eps) + self.weight_decay * y)
            self.z[k] = z
            x = (y - (1 - b1) * z_old) / b1
            x = (1 - c) * x + c * z
            out[k] = b1 * x + (1 - b1) * z - y
        return out

    def eval_params(self, params: FlatParams) -> FlatParams:
        return {k: (y - (1 - self.b1) * self.z.get(k, y)) / self.b1 for k, y in params.items()}


# --- issue 22: optax's and optax.contrib's optimizers, one loop each ----------------------
#
# Written from the papers and the update rules the optax docstrings state (optax's names,
# argument names and defaults); t is the 1-based step number, η the learning rate at
# schedule(t − 1), ε, ε_root as optax places them.


def _bias(x: np.ndarray, beta: float, t: int) -> np.ndarray:
    """x̂ = x/(1 − βᵗ)."""
    return x / (1 - beta**t)


class AdaBelief(_Stage):
    """Zhuang et al. 2020 (optax's adabelief): m = β₁m + (1−β₁)g;
    s = β₂s + (1−β₂)(g − m)² + ε_root; d = m̂/(√ŝ + ε) (nesterov: m̂ → β₁m/(1−β₁ᵗ⁺¹) +
    (1−β₁)g/(1−β₁ᵗ)); [+ λθ on masked leaves when weight_decay is not None]; θ −= η·d."""

    def __init__(
        self,
        learning_rate,
        b1=0.9,
        b2=0.999,
        eps=1e-16,
        eps_root=1e-16,
        weight_decay=None,
        weight_decay_mask=None,
        nesterov=False,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.weight_decay, self.mask, self.nesterov = weight_decay, weight_decay_mask, nesterov
        self.t = 0
        self.m: FlatParams = {}
        self.s: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        t, b1, b2 = self.t, self.b1, self.b2
        chosen = _mask_dict(self.mask, params)
        out = {}
        for k, g in grads.items():
            zero = np.zeros_like(g)
            m = self.m[k] = b1 * self.m.get(k, zero) + (1 - b1) * g
            s = b2 * self.s.get(k, zero) + (1 - b2) * (g - m) ** 2
            s = self.s[k] = s + self.eps_root
            if self.nesterov:
                m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
            else:
                m_hat = _bias(m, b1, t)
            d = m_hat / (np.sqrt(_bias(s, b2, t)) + self.eps)
            if self.weight_decay is not None and chosen[k]:
                d = d + self.weight_decay * params[k]
            out[k] = -lr * d
        return out


class Yogi(_Stage):
    """Zaheer et al. 2018 (optax's yogi): m₀ = v₀ = 10⁻⁶; m = β₁m + (1−β₁)g;
    v = v − (1−β₂)·sign(v − g²)·g²; θ −= η·m̂/(√(v̂ + ε_root) + ε)."""

    def __init__(
        self, learning_rate, b1=0.9, b2=0.999, eps=1e-3, eps_root=0.0, initial_accumulator=1e-6
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.initial = initial_accumulator
        self.t = 0
        self.m: FlatParams = {}
        self.v: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        t, b1, b2 = self.t, self.b1, self.b2
        out = {}
        for k, g in grads.items():
            start = np.full_like(g, self.initial)
            m = self.m[k] = b1 * self.m.get(k, start) + (1 - b1) * g
            v = self.v.get(k, start)
            v = self.v[k] = v - (1 - b2) * np.sign(v - g * g) * g * g
            out[k] = -lr * _bias(m, b1, t) / (np.sqrt(_bias(v, b2, t) + self.eps_root) + self.eps)
        return out


class Adan(_Stage):
    """Xie et al. 2022 (optax's adan): Δ = g − g_prev (0 at t = 1); m = β₁m + (1−β₁)g;
    v = β₂v + (1−β₂)Δ; n = β₃n + (1−β₃)(g + (1−β₂)Δ)²;
    d = (m̂ + (1−β₂)v̂)/(√(n̂ + ε_root) + ε) + λθ (masked); θ −= η·d."""

    def __init__(
        self,
        learning_rate,
        b1=0.98,
        b2=0.92,
        b3=0.99,
        eps=1e-8,
        eps_root=1e-8,
        weight_decay=0.0,
        mask=None,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.b3, self.eps, self.eps_root = b1, b2, b3, eps, eps_root
        self.weight_decay, self.mask = weight_decay, mask
        self.t = 0
        self.m: FlatParams = {}
        self.v: FlatParams = {}
        self.n: FlatParams = {}
        self.prev: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        t, b1, b2, b3 = self.t, self.b1, self.b2, self.b3
        chosen = _mask_dict(self.mask, params)
        out = {}
        for k, g in grads.items():
            zero = np.zeros_like(g)
            diff = zero if t == 1 else g - self.prev[k]
            m = self.m[k] = b1 * self.m.get(k, zero) + (1 - b1) * g
            v = self.v[k] = b2 * self.v.get(k, zero) + (1 - b2) * diff
            n = self.n[k] = b3 * self.n.get(k, zero) + (1 - b3) * (g + (1 - b2) * diff) ** 2
            self.prev[k] = g.copy()
            d = (_bias(m, b1, t) + (1 - b2) * _bias(v, b2, t)) / (
                np.sqrt(_bias(n, b3, t) + self.eps_root) + self.eps
            )
            if chosen[k]:
                d = d + self.weight_decay * params[k]
            out[k] = -lr * d
        return out


class Lars(_Stage):
    """You et al. 2017 (optax's lars): r = g + λθ (decay-masked leaves);
    r ← c·‖θ‖/(‖r‖ + ε)·r on trust-masked leaves (ratio 1 where a norm is 0);
    v = μv − η·r; u = −η·r + μv (nesterov) or v."""

    def __init__(
        self,
        learning_rate,
        weight_decay=0.0,
        weight_decay_mask=True,
        trust_coefficient=0.001,
        eps=0.0,
        trust_ratio_mask=True,
        momentum=0.9,
        nesterov=False,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.weight_decay, self.coefficient, self.eps = weight_decay, trust_coefficient, eps
        self.decay_mask, self.trust_mask = weight_decay_mask, trust_ratio_mask
        self.momentum, self.nesterov = momentum, nesterov
        self.t = 0
        self.v: FlatParams = {}

    @staticmethod
    def _chosen(mask, params) -> dict[str, bool]:
        if isinstance(mask, bool):
            return dict.fromkeys(params, mask)
        return _mask_dict(mask, params)

    def update(self, grads, params):
        lr = self.next_learning_rate()
        decay = self._chosen(self.decay_mask, params)
        trust = self._chosen(self.trust_mask, params)
        out = {}
        for k, g in grads.items():
            r = g + self.weight_decay * params[k] if decay[k] else g
            if trust[k]:
                r = _trust_ratio(params[k], r, coefficient=self.coefficient, eps=self.eps) * r
            step = -lr * r
            v = self.v[k] = self.momentum * self.v.get(k, np.zeros_like(g)) + step
            out[k] = step + self.momentum * v if self.nesterov else v.copy()
        return out


class NovoGrad(_Stage):
    """Ginsburg et al. 2019 (optax's novograd), per leaf: ν₁ = ‖g‖², νₜ = β₂ν + (1−β₂)‖g‖²;
    r = g/(√(ν + ε_root) + ε) + λθ; m₁ = r, mₜ = β₁m + r; θ −= η·m."""

    def __init__(self, learning_rate, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.weight_decay = weight_decay
        self.t = 0
        self.m: FlatParams = {}
        self.nu: dict[str, float] = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        out = {}
        for k, g in grads.items():
            sq = float(np.sum(g * g))
            nu = sq if self.t == 1 else self.b2 * self.nu[k] + (1 - self.b2) * sq
            self.nu[k] = nu
            r = g / (math.sqrt(nu + self.eps_root) + self.eps) + self.weight_decay * params[k]
            m = self.m[k] = r if self.t == 1 else self.b1 * self.m[k] + r
            out[k] = -lr * m
        return out


class SignSGD(_Stage):
    """Bernstein et al. 2018 (optax's sign_sgd): θ −= η·sign(g)."""

    def __init__(self, learning_rate):
        self.schedule = _learning_rate(learning_rate)
        self.t = 0

    def update(self, grads, params):
        lr = self.next_learning_rate()
        return {k: -lr * np.sign(g) for k, g in grads.items()}


class Signum(_Stage):
    """Bernstein et al. 2018 (optax's signum): m = βm + (1−β)g (no debiasing);
    θ −= η·sign(m)."""

    def __init__(self, learning_rate, beta=0.9):
        self.schedule = _learning_rate(learning_rate)
        self.beta = beta
        self.t = 0
        self.m: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        out = {}
        for k, g in grads.items():
            m = self.m[k] = self.beta * self.m.get(k, np.zeros_like(g)) + (1 - self.beta) * g
            out[k] = -lr * np.sign(m)
        return out


class Adopt(_Stage):
    """Taniguchi et al. 2024 (optax.contrib's adopt), step t = 1, 2, …:
    t = 1: v = g², m = 0 (no step);  t > 1: c = clip(g/max(√v, ε), ±(t−1)^¼) (unclipped
    without use_clipping), m = β₁m + (1−β₁)c, v = β₂v + (1−β₂)g² (after c);
    θ −= η·m, or η·(β₁m + (1−β₁)c) with nesterov."""

    def __init__(
        self, learning_rate, b1=0.9, b2=0.9999, eps=1e-6, nesterov=False, use_clipping=True
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps = b1, b2, eps
        self.nesterov, self.use_clipping = nesterov, use_clipping
        self.t = 0
        self.m: FlatParams = {}
        self.v: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        out = {}
        for k, g in grads.items():
            zero = np.zeros_like(g)
            if self.t == 1:
                self.v[k], self.m[k] = g * g, zero
                out[k] = zero.copy()
                continue
            c = g / np.maximum(np.sqrt(self.v[k]), self.eps)
            if self.use_clipping:
                bound = (self.t - 1) ** 0.25
                c = np.clip(c, -bound, bound)
            m = self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * c
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            d = self.b1 * m + (1 - self.b1) * c if self.nesterov else m
            out[k] = -lr * d
        return out


class AdEMAMix(_Stage):
    """Pagliardini et al. 2024 (optax.contrib's ademamix): m₁ = β₁m₁ + (1−β₁)g,
    m₂ = β₃m₂ + (1−β₃)g, ν = β₂ν + (1−β₂)g²; d = (m̂₁ + α·m₂)/(√(ν̂ + ε_root) + ε) + λθ;
    θ −= η·d. β₃ and α may be schedules of t − 1."""

    def __init__(
        self,
        learning_rate,
        b1=0.9,
        b2=0.999,
        b3=0.9999,
        alpha=5.0,
        eps=1e-8,
        eps_root=0.0,
        weight_decay=0.0,
        mask=None,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.b3, self.alpha = _learning_rate(b3), _learning_rate(alpha)
        self.weight_decay, self.mask = weight_decay, mask
        self.t = 0
        self.m1: FlatParams = {}
        self.m2: FlatParams = {}
        self.nu: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        t, b1, b2 = self.t, self.b1, self.b2
        b3, alpha = self.b3(t - 1), self.alpha(t - 1)
        chosen = _mask_dict(self.mask, params)
        out = {}
        for k, g in grads.items():
            zero = np.zeros_like(g)
            m1 = self.m1[k] = b1 * self.m1.get(k, zero) + (1 - b1) * g
            m2 = self.m2[k] = b3 * self.m2.get(k, zero) + (1 - b3) * g
            nu = self.nu[k] = b2 * self.nu.get(k, zero) + (1 - b2) * g * g
            d = (_bias(m1, b1, t) + alpha * m2) / (
                np.sqrt(_bias(nu, b2, t) + self.eps_root) + self.eps
            )
            if chosen[k]:
                d = d + self.weight_decay * params[k]
            out[k] = -lr * d
        return out


class SimplifiedAdEMAMix(_Stage):
    """Morwani et al. 2024 (optax.contrib's simplified_ademamix): m = β₁m + g (no 1−β₁);
    n = β₂n + (1−β₂)g²; d = (m + α·g)/(√(n̂ + ε_root) + ε) + λθ; θ −= η·d."""

    def __init__(
        self,
        learning_rate,
        b1=0.99,
        b2=0.95,
        alpha=0.0,
        eps=1e-8,
        eps_root=0.0,
        weight_decay=0.0,
        mask=None,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.alpha = _learning_rate(alpha)
        self.weight_decay, self.mask = weight_decay, mask
        self.t = 0
        self.m: FlatParams = {}
        self.n: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        t, alpha = self.t, self.alpha(self.t - 1)
        chosen = _mask_dict(self.mask, params)
        out = {}
        for k, g in grads.items():
            zero = np.zeros_like(g)
            m = self.m[k] = self.b1 * self.m.get(k, zero) + g
            n = self.n[k] = self.b2 * self.n.get(k, zero) + (1 - self.b2) * g * g
            d = (m + alpha * g) / (np.sqrt(_bias(n, self.b2, t) + self.eps_root) + self.eps)
            if chosen[k]:
                d = d + self.weight_decay * params[k]
            out[k] = -lr * d
        return out


class AdamaxW(_Stage):
    """optax's adamaxw: Adamax's d = m̂/u (u = max(β₂u, |g| + ε)) + λθ (masked); θ −= η·d."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4, mask=None):
        self.adamax = Adamax(learning_rate, b1, b2, eps)
        self.weight_decay, self.mask = weight_decay, mask

    def update(self, grads, params):
        steps = self.adamax.update(grads, params)
        lr = self.last_learning_rate = self.adamax.last_learning_rate
        chosen = _mask_dict(self.mask, params)
        return {
            k: u - lr * self.weight_decay * params[k] if chosen[k] else u for k, u in steps.items()
        }


class OptimisticGradientDescent(_Stage):
    """Daskalakis et al. 2018 (optax's optimistic_gradient_descent):
    d = (α + β)·g − β·g_prev (g_prev = g at t = 1); θ −= η·d."""

    def __init__(self, learning_rate, alpha=1.0, beta=1.0):
        self.schedule = _learning_rate(learning_rate)
        self.alpha, self.beta = alpha, beta
        self.t = 0
        self.prev: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        out = {}
        for k, g in grads.items():
            prev = self.prev.get(k, g)
            out[k] = -lr * ((self.alpha + self.beta) * g - self.beta * prev)
            self.prev[k] = g.copy()
        return out


class Fromage(_Stage):
    """Bernstein et al. 2020 (optax's fromage): m = 1/√(1 + η²);
    θ ← θ − η·m·φ·g + (m − 1)·θ, φ = ‖θ‖/‖g‖ per leaf (norms floored at min_norm)."""

    def __init__(self, learning_rate, min_norm=1e-6):
        self.schedule = _learning_rate(learning_rate)
        self.min_norm = min_norm
        self.t = 0

    def update(self, grads, params):
        lr = self.next_learning_rate()
        mult = 1 / math.sqrt(1 + lr * lr)
        self.last_learning_rate = lr * mult  # the rate the trust-ratio direction gets
        return {
            k: -lr * mult * _trust_ratio(params[k], g, self.min_norm) * g + (mult - 1) * params[k]
            for k, g in grads.items()
        }


# --- optimizers that read the loss: `update(grads, params, value=…, value_fn=…)` ----------
#
# `value` is f(θ) at the params the gradient was taken at; `value_fn(θ) -> (f, ∇f)` (flat
# dicts) lets a line search evaluate trial points. `run_reference_with_value` drives them.


def _dot(a: FlatParams, b: FlatParams) -> float:
    """⟨a, b⟩ over every leaf and entry."""
    return sum(float(np.sum(a[k] * b[k])) for k in a)


class PolyakSGD(_Stage):
    """Loizou et al. 2021 (optax's polyak_sgd): u = −s·g; γ = min((f − f*)/(‖u‖² + ε), γ_max)
    (f − f* clamped at 0 for variant "sps+"; γ = 0 where ‖u‖² + ε ≤ float64's eps);
    θ ← θ + γ·u. s = `scaling` (number or schedule of t − 1)."""

    needs_value = True

    def __init__(self, max_learning_rate=1.0, scaling=1.0, f_min=0.0, eps=0.0, variant="sps"):
        self.schedule = _learning_rate(scaling)
        self.max_lr, self.f_min, self.eps, self.variant = max_learning_rate, f_min, eps, variant
        self.t = 0

    def update(self, grads, params, *, value=None, value_fn=None):
        if value is None:
            raise ValueError(f"{type(self).__name__} needs value=f(θ)")
        scaling = self.next_learning_rate()
        steps = {k: -scaling * g for k, g in grads.items()}
        norm_sq = _dot(steps, steps)
        gap = value - self.f_min
        if self.variant == "sps+":
            gap = max(gap, 0.0)
        if norm_sq + self.eps <= np.finfo(np.float64).eps:
            gamma = 0.0
        else:
            gamma = min(gap / (norm_sq + self.eps), self.max_lr)
        self.last_learning_rate = gamma * scaling
        return {k: gamma * u for k, u in steps.items()}


class ReduceOnPlateau(_Stage):
    """optax.contrib's reduce_on_plateau: u = s·g. Every `accumulation_size` updates, with f̄ the
    mean of their values: improved = f̄ < (1 − rtol)·best − atol (then best = f̄, plateau = 0,
    else plateau += 1); in cooldown (cooldown_count > 0): plateau = 0, cooldown_count −= 1;
    else when plateau = patience: s = max(factor·s, min_scale), plateau = 0,
    cooldown_count = cooldown."""

    needs_value = True

    def __init__(
        self,
        factor=0.1,
        patience=10,
        rtol=1e-4,
        atol=0.0,
        cooldown=0,
        accumulation_size=1,
        min_scale=0.0,
    ):
        self.factor, self.patience, self.rtol, self.atol = factor, patience, rtol, atol
        self.cooldown, self.size, self.min_scale = cooldown, accumulation_size, min_scale
        self.scale, self.best, self.plateau, self.cooldown_count = 1.0, math.inf, 0, 0
        self.count, self.avg = 0, 0.0

    def update(self, grads, params, *, value=None, value_fn=None):
        if value is None:
            raise ValueError(f"{type(self).__name__} needs value=f(θ)")
        self.count += 1
        self.avg = ((self.count - 1) * self.avg + value) / self.count
        if self.count == self.size:
            improved = self.avg < (1 - self.rtol) * self.best - self.atol
            if improved:
                self.best = self.avg
            plateau = 0 if improved else self.plateau + 1
            if self.cooldown_count > 0:
                self.plateau, self.cooldown_count = 0, self.cooldown_count - 1
            elif plateau == self.patience:
                self.plateau, self.cooldown_count = 0, self.cooldown
                self.scale = max(self.scale * self.factor, self.min_scale)
            else:
                self.plateau, self.cooldown_count = plateau, 0
                self.scale = max(self.scale, self.min_scale)
            self.count, self.avg = 0, 0.0
        return {k: self.scale * g for k, g in grads.items()}


def _cubic_minimizer(a, fa, fpa, b, fb, c, fc) -> float:
    """Minimizer of the cubic through (a, fa) with slope fpa at a, (b, fb) and (c, fc)
    (NaN where it does not exist)."""
    with np.errstate(all="ignore"):
        db, dc = b - a, c - a
        denom = (db * dc) ** 2 * (db - dc)
        r1, r2 = fb - fa - fpa * db, fc - fa - fpa * dc
        big_a = np.float64(dc**2 * r1 - db**2 * r2) / denom
        big_b = np.float64(-(dc**3) * r1 + db**3 * r2) / denom
        return float(a + (-big_b + np.sqrt(big_b * big_b - 3.0 * big_a * fpa)) / (3.0 * big_a))


def _quadratic_minimizer(a, fa, fpa, b, fb) -> float:
    """Minimizer of the parabola through (a, fa) with slope fpa at a and (b, fb)."""
    with np.errstate(all="ignore"):
        db = np.float64(b - a)
        curvature = (fb - fa - fpa * db) / (db * db)
        return float(a - fpa / (2.0 * curvature))


def zoom_linesearch_reference(
    value_fn: Callable[[FlatParams], tuple[float, FlatParams]],
    params: FlatParams,
    direction: FlatParams,
    value: float,
    grad: FlatParams,
    *,
    stepsize_guess: float = 1.0,
    max_linesearch_steps: int = 20,
    tol: float = 0.0,
    increase_factor: float = 2.0,
    slope_rtol: float = 1e-4,
    curv_rtol: float = 0.9,
    approx_dec_rtol: float | None = 1e-6,
    stepsize_precision: float = 1e-5,
) -> tuple[float, float, FlatParams, int]:
    """Strong-Wolfe line search along u (Nocedal & Wright 2006, Algorithms 3.5 and 3.6; Hager
    & Zhang 2005's approximate-Wolfe decrease), with optax's `zoom_linesearch` rules.

    φ(η) = f(θ + η·u), φ'(η) = ⟨∇f(θ + η·u), u⟩. Accept η when
        decrease error  max(0, φ(η) − φ(0) − c₁·η·φ'(0))  [or the smaller approximate-Wolfe
                        error max(φ'(η) − (2c₁ − 1)φ'(0), φ(η) − φ(0) − ε_f·|φ(0)|)] ≤ tol
        curvature error max(0, |φ'(η)| − c₂·|φ'(0)|) ≤ tol.
    Phase 1 tries η₀ = guess, then doubles (increase_factor) until an interval [low, high]
    brackets an acceptable η; phase 2 shrinks it, trying the cubic minimizer, else the
    quadratic one, else the midpoint. After `max_linesearch_steps` evaluations (or an interval
    shorter than `stepsize_precision` with a safe point) it takes the best point found that
    decreased enough. Returns (η, φ(η), ∇f at θ + η·u, evaluations).
    """

    def evaluate(step: float) -> tuple[float, FlatParams, float]:
        value_step, grad_step = value_fn({k: params[k] + step * direction[k] for k in params})
        return float(value_step), grad_step, _dot(grad_step, direction)

    def errors(step: float, value_step: float, slope_step: float) -> tuple[float, float]:
        decrease = value_step - value - slope_rtol * step * slope0
        if approx_dec_rtol is not None:
            approx = slope_step - (2 * slope_rtol - 1.0) * slope0
            approx = max(approx, value_step - value - approx_dec_rtol * abs(value))
            decrease = min(approx, decrease)
        decrease = math.inf if math.isnan(decrease) else max(decrease, 0.0)
        curvature = abs(slope_step) - curv_rtol * abs(slope0)
        curvature = math.inf if math.isnan(curvature) else max(curvature, 0.0)
        return decrease, curvature

    slope0 = _dot(grad, direction)
    count, step, value_step, grad_step, slope_step = 0, 0.0, value, grad, slope0
    low, value_low, slope_low = 0.0, value, slope0
    high, value_high = 0.0, value  # only the slope at `low` enters the interpolations
    cubic_ref, value_cubic_ref = 0.0, value
    safe_step, safe_value, safe_grad = 0.0, value, grad
    interval_found, decrease_error = False, math.inf
    while True:
        if not interval_found:  # phase 1: search for an interval
            new = stepsize_guess if count == 0 else increase_factor * step
            new_value, new_grad, new_slope = evaluate(new)
            decrease_error, curvature_error = errors(new, new_value, new_slope)
            error = max(decrease_error, curvature_error)
            if decrease_error <= tol:
                safe_step, safe_value, safe_grad = new, new_value, new_grad
            high_is_new = decrease_error > 0.0 or (new_value >= value_step and count > 0)
            low_is_new = new_slope >= 0.0 and not high_is_new
            if low_is_new:
                low, value_low, slope_low = new, new_value, new_slope
                high, value_high = step, value_step
            else:
                low, value_low, slope_low = step, value_step, slope_step
                high, value_high = new, new_value
            cubic_ref, value_cubic_ref = low, value_low
            interval_found = high_is_new or low_is_new or error <= tol
            done = error <= tol
            failed = count + 1 >= max_linesearch_steps and not done
        else:  # phase 2: zoom into [low, high]
            delta = abs(high - low)
            left, right = min(high, low), max(high, low)
            cubic = _cubic_minimizer(
                low, value_low, slope_low, high, value_high, cubic_ref, value_cubic_ref
            )
            quad = _quadratic_minimizer(low, value_low, slope_low, high, value_high)
            if left + 0.2 * delta < cubic < right - 0.2 * delta:
                new = cubic
            elif left + 0.1 * delta < quad < right - 0.1 * delta:
                new = quad
            else:
                new = (low + high) / 2.0
            new_value, new_grad, new_slope = evaluate(new)
            decrease_error, curvature_error = errors(new, new_value, new_slope)
            error = max(decrease_error, curvature_error)
            if decrease_error <= tol and new_value < safe_value:
                safe_step, safe_value, safe_grad = new, new_value, new_grad
            done = error <= tol
            high_is_new = decrease_error > 0.0 or new_value >= value_low
            high_is_low = new_slope * (high - low) >= 0.0 and not high_is_new
            old_low, old_value_low = low, value_low
            old_high, old_value_high = high, value_high
            if high_is_new:
                high, value_high = new, new_value
            if high_is_low:
                high, value_high = old_low, old_value_low
            if not high_is_new:
                low, value_low, slope_low = new, new_value, new_slope
            if high_is_new or high_is_low:
                cubic_ref, value_cubic_ref = old_high, old_value_high
            else:
                cubic_ref, value_cubic_ref = old_low, old_value_low
            too_small = delta <= stepsize_precision
            failed = (count + 1 >= max_linesearch_steps or (too_small and safe_step > 0.0)) and (
                not done
            )
        count += 1
        step, value_step, grad_step, slope_step = new, new_value, new_grad, new_slope
        if failed:
            if safe_step > 0.0 or math.isinf(decrease_error):
                step, value_step, grad_step = safe_step, safe_value, safe_grad
            return step, value_step, grad_step, count
        if done:
            return step, value_step, grad_step, count


class LBFGS(_Stage):
    """optax's lbfgs (Nocedal & Wright 2006, Algorithm 7.4), memory m, step k = 0, 1, …:

    sₖ₋₁ = θₖ − θₖ₋₁, yₖ₋₁ = gₖ − gₖ₋₁, ρₖ₋₁ = 1/⟨sₖ₋₁, yₖ₋₁⟩ (0 if that is 0), kept for the
    last m steps (nothing at k = 0); γ = ⟨s, y⟩/‖y‖² of the newest pair (1 if ‖y‖ = 0), or
    min(1, 1/‖g‖) at k = 0 (γ = 1 without scale_init_precond). Two-loop recursion, newest
    pair first: q = g; αᵢ = ρᵢ⟨sᵢ, q⟩, q −= αᵢyᵢ; r = γq; oldest first: βᵢ = ρᵢ⟨yᵢ, r⟩,
    r += (αᵢ − βᵢ)sᵢ. u = −η·r (η = 1 without a learning rate); then the zoom line search
    (`zoom_linesearch_reference`, η₀ = 1 each step) scales u by its step (linesearch=False
    skips it)."""

    needs_value = True

    def __init__(
        self, learning_rate=None, memory_size=10, scale_init_precond=True, linesearch=True
    ):
        self.schedule = _learning_rate(1.0 if learning_rate is None else learning_rate)
        self.memory_size, self.scale_init_precond = memory_size, scale_init_precond
        self.linesearch = linesearch
        self.t = 0
        self.pairs: list[tuple[FlatParams, FlatParams, float]] = []  # (s, y, ρ), oldest first
        self.prev: tuple[FlatParams, FlatParams] | None = None
        self.last_stepsize: float | None = None

    def direction(self, grads: FlatParams, params: FlatParams) -> FlatParams:
        """r ≈ H⁻¹g after storing the newest (s, y, ρ) pair."""
        gamma = 1.0
        if self.prev is not None:
            prev_params, prev_grads = self.prev
            s = {k: params[k] - prev_params[k] for k in params}
            y = {k: grads[k] - prev_grads[k] for k in grads}
            sy = _dot(s, y)
            self.pairs = [*self.pairs, (s, y, 0.0 if sy == 0 else 1.0 / sy)][-self.memory_size :]
            if self.scale_init_precond:
                yy = _dot(y, y)
                gamma = sy / yy if yy > 0 else 1.0
        elif self.scale_init_precond:
            gamma = min(1.0, 1.0 / math.sqrt(_dot(grads, grads)))
        self.prev = ({k: v.copy() for k, v in params.items()}, dict(grads))
        q = dict(grads)
        alphas = []
        for s, y, rho in reversed(self.pairs):
            alpha = rho * _dot(s, q)
            q = {k: q[k] - alpha * y[k] for k in q}
            alphas.append(alpha)
        r = {k: gamma * v for k, v in q.items()}
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas), strict=True):
            beta = rho * _dot(y, r)
            r = {k: r[k] + (alpha - beta) * s[k] for k in r}
        return r

    def update(self, grads, params, *, value=None, value_fn=None):
        lr = self.next_learning_rate()
        u = {k: -lr * v for k, v in self.direction(grads, params).items()}
        if not self.linesearch:
            return u
        if value is None or value_fn is None:
            raise ValueError("LBFGS's line search needs value= and value_fn=")
        step, _, _, _ = zoom_linesearch_reference(value_fn, params, u, value, grads)
        self.last_stepsize = step
        return {k: step * v for k, v in u.items()}


class Prodigy(_Stage):
    """Mishchenko & Defazio 2024 (optax.contrib's prodigy), d = the distance estimate (d₀ =
    estim_lr0), t from 1: η̂ = d·η·√(1−β₂ᵗ)/(1−β₁ᵗ); m = β₁m + (1−β₁)d·g;
    v = β₂v + (1−β₂)d²g²; s = β₃s + (η̂ or d with safeguard_warmup)·d·g/d₀;
    r = β₃r + (d/d₀)·η̂·⟨g, θ₀ − θ⟩; d ← max(d, coef·r/Σ|s|) (for the next step);
    θ −= η̂·(m/(√v + d'·ε) + λθ) (λθ on masked leaves): η̂ uses the d before the update,
    the ε term the updated d' (optax's order)."""

    def __init__(
        self,
        learning_rate=1.0,
        betas=(0.9, 0.999),
        beta3=None,
        eps=1e-8,
        estim_lr0=1e-6,
        estim_lr_coef=1.0,
        weight_decay=0.0,
        safeguard_warmup=False,
        weight_decay_mask=None,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2 = betas
        self.b3 = math.sqrt(self.b2) if beta3 is None else beta3
        self.eps, self.d0, self.coef = eps, estim_lr0, estim_lr_coef
        self.weight_decay, self.mask = weight_decay, weight_decay_mask
        self.safeguard = safeguard_warmup
        self.t = 0
        self.d = estim_lr0
        self.numerator = 0.0
        self.m: FlatParams = {}
        self.v: FlatParams = {}
        self.s: FlatParams = {}
        self.theta0: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        t, b1, b2, b3, d = self.t, self.b1, self.b2, self.b3, self.d
        if not self.theta0:
            self.theta0 = {k: v.copy() for k, v in params.items()}
        dlr = d * lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        self.last_learning_rate = dlr
        inner = _dot(grads, {k: self.theta0[k] - params[k] for k in params})
        chosen = _mask_dict(self.mask, params)
        for k, g in grads.items():
            zero = np.zeros_like(g)
            dg = d * g
            self.m[k] = b1 * self.m.get(k, zero) + (1 - b1) * dg
            self.v[k] = b2 * self.v.get(k, zero) + (1 - b2) * dg * dg
            self.s[k] = b3 * self.s.get(k, zero) + (d if self.safeguard else dlr) * dg / self.d0
        self.numerator = b3 * self.numerator + (d / self.d0) * dlr * inner
        denominator = sum(float(np.sum(np.abs(s))) for s in self.s.values())
        self.d = max(d, self.coef * self.numerator / denominator)
        out = {}
        for k in grads:
            # ε is scaled by the *new* estimate (optax's order); η̂ by the old one.
            out[k] = -dlr * self.m[k] / (np.sqrt(self.v[k]) + self.d * self.eps)
            if chosen[k]:
                out[k] = out[k] - self.weight_decay * dlr * params[k]
        return out


def run_reference_with_value(
    optimizer: Any,
    params: FlatParams,
    value_and_grad_fn: Callable[[FlatParams], tuple[float, FlatParams]],
    num_steps: int,
) -> tuple[FlatParams, np.ndarray]:
    """As `run_reference`, for optimizers that read the loss: at each step (f, g) =
    value_and_grad_fn(θ) and θ ← θ + update(g, θ, value=f, value_fn=value_and_grad_fn).
    Returns (θ_final, values) with values[k] = f(θₖ) before update k."""
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    values = np.full(num_steps, np.nan)
    for k in range(num_steps):
        value, grads = value_and_grad_fn(params)
        values[k] = value
        updates = optimizer.update(grads, params, value=value, value_fn=value_and_grad_fn)
        params = {name: params[name] + updates[name] for name in params}
    return params, values


class Normalize(_Stage):
    """u = g/‖g‖ (global norm; optax.contrib's normalize)."""

    def update(self, grads, params):
        norm = math.sqrt(_dot(grads, grads))
        return {k: g / norm for k, g in grads.items()}


class SAM(_Stage):
    """optax.contrib's sam, transparent mode, k = sync_period; `optimizer` and `adv_optimizer`
    are fresh reference stages. Cycle from θ₀: calls 1…k−1 return −adv(g) (θ₀ cached at
    call 1); call k returns (θ₀ − θ) + optimizer(g, θ₀). With reset_state the adversarial
    stage restarts (a copy of its fresh state) after call k.

    opaque_mode: each call is a whole cycle, `update(g, θ, grad_fn=…)`: θ̃ = θ, u = g; k − 1
    times: θ̃ ← θ̃ − adv(u, θ̃), u ← grad_fn(θ̃, i) (i = 0, 1, …); then returns optimizer(u, θ)
    (and restarts the adversarial stage with reset_state)."""

    def __init__(
        self, optimizer, adv_optimizer, sync_period=2, reset_state=True, opaque_mode=False
    ):
        self.opt, self.fresh_adv = optimizer, copy.deepcopy(adv_optimizer)
        self.adv = adv_optimizer
        self.k, self.reset, self.opaque = sync_period, reset_state, opaque_mode
        self.steps = 0
        self.cache: FlatParams | None = None

    def update(self, grads, params, grad_fn=None):
        if self.opaque:
            point, u = {k: v.copy() for k, v in params.items()}, dict(grads)
            for i in range(self.k - 1):
                ascent = self.adv.update(u, point)
                point = {k: point[k] - ascent[k] for k in point}
                u = grad_fn(point, i)
            if self.reset:
                self.adv = copy.deepcopy(self.fresh_adv)
            return self.opt.update(u, params)
        if self.cache is None:
            self.cache = {k: v.copy() for k, v in params.items()}
        first, last = self.steps == 0, self.steps == self.k - 1
        cache = self.cache
        if last:
            inner = self.opt.update(grads, cache)
            out = {k: cache[k] - params[k] + inner[k] for k in grads}
            if self.reset:
                self.adv = copy.deepcopy(self.fresh_adv)
        else:
            out = {k: -u for k, u in self.adv.update(grads, params).items()}
        if first:
            self.cache = {k: v.copy() for k, v in params.items()}
        self.steps = (self.steps + 1) % self.k
        return out


def _distance(a: FlatParams, b: FlatParams) -> float:
    """‖a − b‖ over every leaf."""
    return math.sqrt(sum(float(np.sum((a[k] - b[k]) ** 2)) for k in a))


class DoG(_Stage):
    """Ivgi et al. 2023 (optax.contrib's dog): r̄ = max(r̄, ‖θ − θ₀‖) (r̄₀ = init_step value
    for "distance", value·(1 + ‖θ₀‖) for "heuristic", 0 for "learning_rate");
    G = G + ‖g‖²; γ = r̄/√(G + ε) (γ = value at t = 1 for "learning_rate");
    [g += λθ first when weight_decay is not None]; θ −= η·γ·g."""

    def __init__(
        self,
        learning_rate=1.0,
        init_step=("heuristic", 1e-6),
        eps=1e-8,
        weight_decay=None,
        mask=None,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.kind, self.value = init_step
        self.eps, self.weight_decay, self.mask = eps, weight_decay, mask
        self.t = 0
        self.theta0: FlatParams = {}
        self.max_dist = 0.0
        self.sum_sq = 0.0

    def update(self, grads, params):
        lr = self.next_learning_rate()
        if not self.theta0:
            self.theta0 = {k: v.copy() for k, v in params.items()}
            norm0 = math.sqrt(_dot(params, params))
            self.max_dist = {"distance": self.value, "heuristic": self.value * (1 + norm0)}.get(
                self.kind, 0.0
            )
        if self.weight_decay is not None:
            chosen = _mask_dict(self.mask, params)
            grads = {
                k: g + self.weight_decay * params[k] if chosen[k] else g for k, g in grads.items()
            }
        self.max_dist = max(self.max_dist, _distance(self.theta0, params))
        self.sum_sq += _dot(grads, grads)
        gamma = self.max_dist / math.sqrt(self.sum_sq + self.eps)
        if self.kind == "learning_rate" and self.t == 1:
            gamma = self.value
        return {k: -lr * gamma * g for k, g in grads.items()}


class DoWG(_Stage):
    """Khaled et al. 2023 (optax.contrib's dowg): r̄² = max(r̄², ‖θ − θ₀‖²) (r̄₀² =
    init_estim_sq_dist, or ε); v = v + r̄²·‖g‖²; γ = r̄²/(√v + ε);
    [g += λθ first when weight_decay is not None]; θ −= η·γ·g."""

    def __init__(
        self, learning_rate=1.0, init_estim_sq_dist=None, eps=1e-4, weight_decay=None, mask=None
    ):
        self.schedule = _learning_rate(learning_rate)
        self.eps, self.weight_decay, self.mask = eps, weight_decay, mask
        self.sq_dist = eps if init_estim_sq_dist is None else init_estim_sq_dist
        self.t = 0
        self.theta0: FlatParams = {}
        self.weighted = 0.0

    def update(self, grads, params):
        lr = self.next_learning_rate()
        if not self.theta0:
            self.theta0 = {k: v.copy() for k, v in params.items()}
        if self.weight_decay is not None:
            chosen = _mask_dict(self.mask, params)
            grads = {
                k: g + self.weight_decay * params[k] if chosen[k] else g for k, g in grads.items()
            }
        self.sq_dist = max(self.sq_dist, _distance(self.theta0, params) ** 2)
        self.weighted += self.sq_dist * _dot(grads, grads)
        gamma = self.sq_dist / (math.sqrt(self.weighted) + self.eps)
        return {k: -lr * gamma * g for k, g in grads.items()}


class Madgrad(_Stage):
    """Defazio & Jelassi 2021 (optax.contrib's madgrad), k = updates before this one:
    g += λθ; λₖ = (η + ε)·√(k + 1); S += λₖg²; s += λₖg; z = θ₀ − s/(∛S + ε);
    θ ← (1 − μ)·z + μ·θ (μ = momentum)."""

    def __init__(self, learning_rate, momentum=0.9, weight_decay=0.0, eps=1e-6):
        self.schedule = _learning_rate(learning_rate)
        self.momentum, self.weight_decay, self.eps = momentum, weight_decay, eps
        self.t = 0
        self.sum_sq: FlatParams = {}
        self.s: FlatParams = {}
        self.theta0: FlatParams = {}

    def update(self, grads, params):
        k = self.t
        lr = self.next_learning_rate()
        # funcnn's madgrad applies η inside its stage (no scale_by_learning_rate to report
        # it), so this reference reports none either.
        self.last_learning_rate = None
        if not self.theta0:
            self.theta0 = {name: v.copy() for name, v in params.items()}
        weight = (lr + self.eps) * math.sqrt(k + 1)
        out = {}
        for name, g in grads.items():
            g = g + self.weight_decay * params[name]
            zero = np.zeros_like(g)
            self.sum_sq[name] = self.sum_sq.get(name, zero) + weight * g * g
            self.s[name] = self.s.get(name, zero) + weight * g
            z = self.theta0[name] - self.s[name] / (np.cbrt(self.sum_sq[name]) + self.eps)
            out[name] = (1 - self.momentum) * z + self.momentum * params[name] - params[name]
        return out


class SM3(_Stage):
    """Anil et al. 2019 (optax's sm3, its b2 = 1): per leaf with axes i, accumulators μᵢ (one
    entry per index of axis i, 0 at start); a = g² + minᵢ μᵢ (broadcast; for a vector a = g² +
    μ₀); μᵢ ← max of a over the other axes (μ₀ ← a for a vector);
    u = g/√(a + ε) where a > 0 (0 elsewhere); m = (1−β)u + βm; θ −= η·m (β = momentum)."""

    def __init__(self, learning_rate, momentum=0.9, eps=1e-8):
        self.lr, self.momentum, self.eps = learning_rate, momentum, eps
        self.acc: dict[str, list[np.ndarray]] = {}
        self.m: FlatParams = {}

    def update(self, grads, params):
        out = {}
        for k, g in grads.items():
            mus = self.acc.get(k, [np.zeros(n) for n in g.shape])
            if g.ndim < 2:
                a = g * g + mus[0]
            else:
                shaped = [
                    mu.reshape([n if j == i else 1 for j, n in enumerate(g.shape)])
                    for i, mu in enumerate(mus)
                ]
                a = g * g + np.minimum.reduce(np.broadcast_arrays(*shaped))
            with np.errstate(divide="ignore"):
                u = np.where(a > 0, g / np.sqrt(a + self.eps), 0.0)
            self.m[k] = (1 - self.momentum) * u + self.momentum * self.m.get(k, np.zeros_like(g))
            if g.ndim < 2:
                self.acc[k] = [a]
            else:
                self.acc[k] = [
                    a.max(axis=tuple(j for j in range(g.ndim) if j != i)) for i in range(g.ndim)
                ]
            out[k] = -self.lr * self.m[k]
        return out


class COCOB(_Stage):
    """Orabona & Tommasi 2017, Algorithm 2 (optax.contrib's cocob), per entry, with
    c = η·(g + λθ) (λθ on masked leaves): L = max(L, |c|) (L₀ = ε); G += |c|;
    R = max(R − c·(θ − θ₀), 0); C −= c; θ ← θ₀ + C/(L·max(G + L, αL))·(L + R)."""

    def __init__(self, learning_rate=1.0, alpha=100.0, eps=1e-8, weight_decay=0.0, mask=None):
        self.schedule = _learning_rate(learning_rate)
        self.alpha, self.eps, self.weight_decay, self.mask = alpha, eps, weight_decay, mask
        self.t = 0
        self.theta0: FlatParams = {}
        self.big_l: FlatParams = {}
        self.big_g: FlatParams = {}
        self.big_r: FlatParams = {}
        self.big_c: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        if not self.theta0:
            self.theta0 = {k: v.copy() for k, v in params.items()}
        chosen = _mask_dict(self.mask, params)
        out = {}
        for k, g in grads.items():
            c = lr * (g + self.weight_decay * params[k] if chosen[k] else g)
            theta, theta0 = params[k], self.theta0[k]
            big_l = self.big_l[k] = np.maximum(
                self.big_l.get(k, np.full_like(g, self.eps)), np.abs(c)
            )
            big_g = self.big_g[k] = self.big_g.get(k, np.zeros_like(g)) + np.abs(c)
            r_prev = self.big_r.get(k, np.zeros_like(g))
            big_r = self.big_r[k] = np.maximum(r_prev - c * (theta - theta0), 0.0)
            big_c = self.big_c[k] = self.big_c.get(k, np.zeros_like(g)) - c
            new = theta0 + big_c / (big_l * np.maximum(big_g + big_l, self.alpha * big_l)) * (
                big_l + big_r
            )
            out[k] = new - theta
        return out


# --- issue 22, the last five: optimistic Adam, D-Adaptation AdamW, Mechanic, MoMo, MoMo-Adam --
#
# Each a loop over the flat params written from the paper's pseudo-code as optax 0.2.8 runs it
# (its docstring in funcnn.optim states the equations), not from funcnn's code.


def _adam_ratio_optax(
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    t: int,
    b1: float,
    b2: float,
    eps: float,
    eps_root: float,
    nesterov: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """optax's scale_by_adam at step t (from 1): returns (r, m', v') with
    r = m̂/(√(v'/(1−β₂ᵗ) + ε_root) + ε), m̂ Nesterov's β₁m'/(1−β₁ᵗ⁺¹) + (1−β₁)g/(1−β₁ᵗ)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    if nesterov:
        m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
    else:
        m_hat = m / (1 - b1**t)
    return m_hat / (np.sqrt(v / (1 - b2**t) + eps_root) + eps), m, v


class OptimisticAdamV2(_Stage):
    """Daskalakis et al. 2018 (optax's optimistic_adam_v2): r = Adam's ratio (optax's, with
    ε_root and, by default, Nesterov's m̂); θ ← θ − η·((α + β)·r − β·r_prev), r_prev = r at
    the first step."""

    def __init__(
        self,
        learning_rate,
        alpha=1.0,
        beta=1.0,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        eps_root=0.0,
        nesterov=True,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.alpha, self.beta = alpha, beta
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root
        self.nesterov = nesterov
        self.t = 0
        self.m: FlatParams = {}
        self.v: FlatParams = {}
        self.r_prev: FlatParams = {}

    def update(self, grads, params):
        lr = self.next_learning_rate()
        out = {}
        for k, g in grads.items():
            zero = np.zeros_like(g)
            r, self.m[k], self.v[k] = _adam_ratio_optax(
                g,
                self.m.get(k, zero),
                self.v.get(k, zero),
                self.t,
                self.b1,
                self.b2,
                self.eps,
                self.eps_root,
                self.nesterov,
            )
            r_prev = self.r_prev.get(k, r)
            out[k] = -lr * ((self.alpha + self.beta) * r - self.beta * r_prev)
            self.r_prev[k] = r
        return out


class OptimisticAdam(OptimisticAdamV2):
    """optax's optimistic_adam: u = −α·r − o·(r − r_prev) with α = learning_rate (a constant)
    and o = optimism (α if None), r as `OptimisticAdamV2`. No learning rate is reported
    (funcnn's chain carries α in its optimistic stage and reads 1)."""

    def __init__(
        self, learning_rate, optimism=None, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, nesterov=True
    ):
        optimism = learning_rate if optimism is None else optimism
        super().__init__(1.0, learning_rate, optimism, b1, b2, eps, eps_root, nesterov)

    def update(self, grads, params):
        out = super().update(grads, params)
        self.last_learning_rate = None
        return out


class DAdaptAdamW(_Stage):
    """Defazio & Mishchenko 2023, Algorithm 4 (optax.contrib's dadapt_adamw), b = √β₂:
    η̂ = d·η·√(1−β₂ᵗ)/(1−β₁ᵗ); r = b·r + (1−b)·η̂·Σ g·s/(√v + ε) (old s, v);
    m = β₁m + (1−β₁)η̂g; v = β₂v + (1−β₂)g²; s = b·s + (1−b)η̂g;
    d ← max(d, r/((1−b)·Σ|s|)); θ −= m/(√v + ε) + λ·η̂·θ."""

    def __init__(
        self, learning_rate=1.0, betas=(0.9, 0.999), eps=1e-8, estim_lr0=1e-6, weight_decay=0.0
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.d = estim_lr0
        self.r = 0.0
        self.t = 0
        self.m: FlatParams = {}
        self.v: FlatParams = {}
        self.s: FlatParams = {}

    def update(self, grads, params):
        eta = self.next_learning_rate()
        t, b1, b2 = self.t, self.b1, self.b2
        b = math.sqrt(b2)
        eta_hat = self.d * eta * math.sqrt(1 - b2**t) / (1 - b1**t)
        self.last_learning_rate = None  # η̂ lives inside the one stage: nothing to compare
        inner = 0.0
        for k, g in grads.items():
            zero = np.zeros_like(g)
            inner += float(
                np.sum(g * self.s.get(k, zero) / (np.sqrt(self.v.get(k, zero)) + self.eps))
            )
        out = {}
        for k, g in grads.items():
            zero = np.zeros_like(g)
            self.m[k] = b1 * self.m.get(k, zero) + (1 - b1) * eta_hat * g
            self.v[k] = b2 * self.v.get(k, zero) + (1 - b2) * g * g
            self.s[k] = b * self.s.get(k, zero) + (1 - b) * eta_hat * g
            out[k] = (
                -self.m[k] / (np.sqrt(self.v[k]) + self.eps)
                - self.weight_decay * eta_hat * params[k]
            )
        self.r = b * self.r + (1 - b) * eta_hat * inner
        l1 = sum(float(np.sum(np.abs(s))) for s in self.s.values())
        if l1 > 0:
            self.d = max(self.d, self.r / ((1 - b) * l1))
        return out


class Mechanize(_Stage):
    """Cutkosky et al. 2023, Algorithm 1 (optax.contrib's mechanize) around a reference optimizer
    (u = its update, θ ← θ + u), βᵢ = 1 − 10⁻ⁱ, S = Σ sᵢ, θ₀ = params at the first update:
    g̃ = g + λ·S·‖g‖/(‖θ‖ + ε)·θ; Δ = (θ₀ − θ)/(S + ε); h = ⟨g̃, Δ⟩;
    r = β·r + clip(h, ±m_old)·s_old; m = max(β·m, |h| + ε); v = β²v + h²;
    s = ((s_init/n)·m + max(r, 0))/(√v + ε); θ' = θ₀ − Σs·(Δ − u)."""

    def __init__(self, base_optimizer, weight_decay=1e-2, eps=1e-8, s_init=1e-6, num_betas=6):
        self.base = base_optimizer
        self.weight_decay, self.eps, self.s_init, self.n = weight_decay, eps, s_init, num_betas
        self.betas = np.array([1.0 - 0.1**i for i in range(1, num_betas + 1)])
        self.r = np.zeros(num_betas)
        self.m = np.zeros(num_betas)
        self.v = np.zeros(num_betas)
        self.s = np.full(num_betas, s_init)
        self.theta0: FlatParams = {}

    def update(self, grads, params):
        u = self.base.update(grads, params)
        if not self.theta0:
            self.theta0 = {k: p.copy() for k, p in params.items()}
        total = float(np.sum(self.s))
        grad_norm = math.sqrt(_dot(grads, grads))
        param_norm = math.sqrt(_dot(params, params))
        lam = self.weight_decay * total * grad_norm / (param_norm + self.eps)
        delta = {k: (self.theta0[k] - params[k]) / (total + self.eps) for k in params}
        h = sum(float(np.sum((grads[k] + lam * params[k]) * delta[k])) for k in params)
        clipped = np.minimum(np.maximum(h, -self.m), self.m)
        self.r = self.betas * self.r + clipped * self.s
        self.m = np.maximum(self.betas * self.m, abs(h) + self.eps)
        self.v = self.betas**2 * self.v + h * h
        self.s = (self.s_init / self.n * self.m + np.maximum(self.r, 0.0)) / (
            np.sqrt(self.v) + self.eps
        )
        scale = float(np.sum(self.s))
        self.last_learning_rate = getattr(self.base, "last_learning_rate", None)
        return {k: self.theta0[k] - scale * (delta[k] - u[k]) - params[k] for k in params}


def _momo_tau(barf, gamma, iprod, norm_sq, alpha, wd, lb, bias, floor, adapt):
    """MoMo's τ and next lower bound (Schaipp et al. 2023, Algorithms 1 and 3), k = 1 + αλ."""
    k = 1 + alpha * wd
    if adapt:
        h = k * (barf - gamma) + iprod
        if h < k * bias * lb:
            lb = max(h / (2 * bias * k), floor)
    if norm_sq <= np.finfo(np.float64).eps:
        tau = min(alpha / bias, 0.0)
    else:
        tau = min(alpha / bias, max(k * (barf - bias * lb - gamma) + iprod, 0.0) / norm_sq)
    if adapt:
        lb = max((barf + iprod - gamma - tau * norm_sq / 2) / bias, floor)
    return tau, lb


class Momo(_Stage):
    """Schaipp et al. 2023, Algorithm 1 (optax.contrib's momo), ρ = 0 at the first step, β
    after: m = ρm + (1−ρ)g; f̄ = ρf̄ + (1−ρ)f; γ = ργ + (1−ρ)⟨g, θ⟩;
    τ = min(α, max((1+αλ)(f̄ − f* − γ) + ⟨m, θ⟩, 0)/‖m‖²); θ ← θ/(1+αλ) − τm."""

    needs_value = True

    def __init__(
        self,
        learning_rate=1.0,
        beta=0.9,
        lower_bound=0.0,
        weight_decay=0.0,
        adapt_lower_bound=False,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.beta, self.floor, self.wd, self.adapt = (
            beta,
            lower_bound,
            weight_decay,
            adapt_lower_bound,
        )
        self.lb = lower_bound
        self.t = 0
        self.m: FlatParams = {}
        self.barf = self.gamma = 0.0

    def update(self, grads, params, *, value=None, value_fn=None):
        if value is None:
            raise ValueError(f"{type(self).__name__} needs value=f(θ)")
        rho = 0.0 if self.t == 0 else self.beta
        alpha = self.next_learning_rate()
        self.last_learning_rate = None  # α caps τ; no learning rate stage to compare
        self.barf = rho * self.barf + (1 - rho) * value
        self.gamma = rho * self.gamma + (1 - rho) * _dot(grads, params)
        for k, g in grads.items():
            self.m[k] = rho * self.m.get(k, np.zeros_like(g)) + (1 - rho) * g
        tau, self.lb = _momo_tau(
            self.barf,
            self.gamma,
            _dot(self.m, params),
            _dot(self.m, self.m),
            alpha,
            self.wd,
            self.lb,
            1.0,
            self.floor,
            self.adapt,
        )
        shrink = alpha * self.wd / (1 + alpha * self.wd)
        return {k: -shrink * params[k] - tau * self.m[k] for k in params}


class MomoAdam(_Stage):
    """Schaipp et al. 2023, Algorithm 3 (optax.contrib's momo_adam), t from 1, b = 1 − β₁ᵗ:
    m = β₁m + (1−β₁)g; f̄ = β₁f̄ + (1−β₁)f; γ = β₁γ + (1−β₁)⟨g, θ⟩; v = β₂v + (1−β₂)g²;
    D = ε + √(v/(1−β₂ᵗ)); τ = min(α/b, max((1+αλ)(f̄ − b·f* − γ) + ⟨m, θ⟩, 0)/⟨m, m/D⟩);
    θ ← θ/(1+αλ) − τ·m/D."""

    needs_value = True

    def __init__(
        self,
        learning_rate=1e-2,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        lower_bound=0.0,
        weight_decay=0.0,
        adapt_lower_bound=False,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.b1, self.b2, self.eps = b1, b2, eps
        self.floor, self.wd, self.adapt = lower_bound, weight_decay, adapt_lower_bound
        self.lb = lower_bound
        self.t = 0
        self.m: FlatParams = {}
        self.v: FlatParams = {}
        self.barf = self.gamma = 0.0

    def update(self, grads, params, *, value=None, value_fn=None):
        if value is None:
            raise ValueError(f"{type(self).__name__} needs value=f(θ)")
        alpha = self.next_learning_rate()
        self.last_learning_rate = None
        t, b1, b2 = self.t, self.b1, self.b2
        self.barf = b1 * self.barf + (1 - b1) * value
        self.gamma = b1 * self.gamma + (1 - b1) * _dot(grads, params)
        precond = {}
        for k, g in grads.items():
            zero = np.zeros_like(g)
            self.m[k] = b1 * self.m.get(k, zero) + (1 - b1) * g
            self.v[k] = b2 * self.v.get(k, zero) + (1 - b2) * g * g
            precond[k] = self.eps + np.sqrt(self.v[k] / (1 - b2**t))
        direction = {k: self.m[k] / precond[k] for k in self.m}
        tau, self.lb = _momo_tau(
            self.barf,
            self.gamma,
            _dot(self.m, params),
            _dot(self.m, direction),
            alpha,
            self.wd,
            self.lb,
            1 - b1**t,
            self.floor,
            self.adapt,
        )
        shrink = alpha * self.wd / (1 + alpha * self.wd)
        return {k: -shrink * params[k] - tau * direction[k] for k in params}


# --- issue 22 (torchopt branch): DP-SGD, torch.optim.LBFGS ---------------------------------


class DPSGD(_Stage):
    """Abadi et al. 2016, Algorithm 1 (optax.contrib's dpsgd). `update` takes *per-example*
    gradients (each flat leaf (B, *leaf)) and, optionally, the standard normal draws ξ (one
    flat dict shaped like the params; None means no noise, as noise_multiplier = 0 gives):

        nᵢ = √(Σ_leaves ‖gᵢ‖²);  ḡ = Σᵢ gᵢ·min(1, C/nᵢ);  u = (ḡ + σC·ξ)/B
        v = μv + u, d = u + μv if nesterov else v (momentum μ; none when momentum is None)
        θ ← θ − η·d"""

    def __init__(
        self, learning_rate, l2_norm_clip, noise_multiplier, momentum=None, nesterov=False
    ):
        self.schedule = _learning_rate(learning_rate)
        self.clip, self.sigma = l2_norm_clip, noise_multiplier
        self.momentum, self.nesterov = momentum, nesterov
        self.t = 0
        self.v: FlatParams = {}

    def update(self, grads, params, noise=None):
        lr = self.next_learning_rate()
        batch = next(iter(grads.values())).shape[0]
        norms = np.zeros(batch)
        for g in grads.values():
            norms = norms + np.sum(g.reshape(batch, -1) ** 2, axis=1)
        norms = np.sqrt(norms)
        factors = np.array([min(1.0, self.clip / n) if n > 0 else 1.0 for n in norms])
        out = {}
        for k, g in grads.items():
            summed = sum(factors[i] * g[i] for i in range(batch))
            if noise is not None:
                summed = summed + self.sigma * self.clip * noise[k]
            u = summed / batch
            if self.momentum is not None:
                self.v[k] = self.momentum * self.v.get(k, np.zeros_like(u)) + u
                u = u + self.momentum * self.v[k] if self.nesterov else self.v[k]
            out[k] = -lr * u
        return out


def _torch_cubic_minimizer(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """The cubic through (x1, f1) and (x2, f2) with slopes g1, g2: its minimizer clipped to
    `bounds` (default the interval between x1 and x2), or the bounds' midpoint where the
    discriminant d₁² − g₁g₂ is negative (torch.optim.lbfgs's interpolation)."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    with np.errstate(all="ignore"):
        d1 = np.float64(g1 + g2) - 3.0 * np.float64(f1 - f2) / np.float64(x1 - x2)
        disc = d1 * d1 - g1 * g2
        if not disc >= 0:
            return (low + high) / 2.0
        d2 = math.sqrt(disc)
        if x1 <= x2:
            point = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        else:
            point = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        return float(np.minimum(np.maximum(point, low), high))


def torch_strong_wolfe_reference(phi, t, f0, g0, gtd0, d_max, max_ls, c1=1e-4, c2=0.9):
    """torch.optim.LBFGS's strong-Wolfe search (from minFunc's lswolfe), float64, on flat
    vectors: `phi(t) -> (f, g, gtd)` at x + t·d, gtd = ⟨g, d⟩. Returns (t, f, g, evaluations).

    Bracketing: a trial t fails when f(t) > f₀ + c₁·t·gtd₀, or when f(t) ≥ f(t_prev) after
    the second growth — then [t_prev, t] is the bracket; |gtd(t)| ≤ −c₂·gtd₀ accepts t; a
    non-negative gtd(t) brackets [t_prev, t] too; otherwise the next t is the cubic minimizer
    through the last two trials clipped to [t + 0.01(t − t_prev), 10t]. Without a bracket
    after `max_ls` more trials it returns the better of 0 and t. Zoom: the cubic minimizer
    of the bracket's ends, pushed 0.1·width inside when it lands within 0.1·width of an end
    twice running (or on or beyond an end); a failing trial replaces the high end, otherwise
    it becomes the low end (the old low end becomes the high one when gtd·(high − low) ≥ 0),
    until the strong Wolfe conditions hold, the trials run out, or the bracket is shorter
    than 1e-9/max|d|."""
    f_t, g_t, gtd_t = phi(t)
    evals, trials = 1, 0
    prev = (0.0, f0, g0, gtd0)
    ends: list[tuple[float, float, np.ndarray, float]] = []
    accepted = False
    while trials < max_ls:
        t_prev, f_prev, _, gtd_prev = prev
        if f_t > f0 + c1 * t * gtd0 or (trials > 1 and f_t >= f_prev):
            ends = [prev, (t, f_t, g_t, gtd_t)]
            break
        if abs(gtd_t) <= -c2 * gtd0:
            ends, accepted = [(t, f_t, g_t, gtd_t)], True
            break
        if gtd_t >= 0:
            ends = [prev, (t, f_t, g_t, gtd_t)]
            break
        grown = _torch_cubic_minimizer(
            t_prev, f_prev, gtd_prev, t, f_t, gtd_t, bounds=(t + 0.01 * (t - t_prev), 10 * t)
        )
        prev = (t, f_t, g_t, gtd_t)
        t = grown
        f_t, g_t, gtd_t = phi(t)
        evals, trials = evals + 1, trials + 1
    if trials == max_ls:  # out of trials without a bracket
        ends, accepted = [(0.0, f0, g0, gtd0), (t, f_t, g_t, gtd_t)], False
    if accepted:
        return t, f_t, g_t, evals
    low = 0 if ends[0][1] <= ends[1][1] else 1
    slow_progress = False
    while trials < max_ls:
        (a, fa, _, ga), (b, fb, _, gb) = ends
        if abs(b - a) * d_max < 1e-9:
            break
        lo_end, hi_end = min(a, b), max(a, b)
        trial = _torch_cubic_minimizer(a, fa, ga, b, fb, gb)
        margin = 0.1 * (hi_end - lo_end)
        if min(hi_end - trial, trial - lo_end) < margin:
            if slow_progress or trial >= hi_end or trial <= lo_end:
                trial = (
                    hi_end - margin
                    if abs(trial - hi_end) < abs(trial - lo_end)
                    else (lo_end + margin)
                )
                slow_progress = False
            else:
                slow_progress = True
        else:
            slow_progress = False
        f_new, g_new, gtd_new = phi(trial)
        evals, trials = evals + 1, trials + 1
        high = 1 - low
        point = (trial, f_new, g_new, gtd_new)
        if f_new > f0 + c1 * trial * gtd0 or f_new >= ends[low][1]:
            ends[high] = point
            low = 0 if ends[0][1] <= ends[1][1] else 1
            continue
        if abs(gtd_new) <= -c2 * gtd0:
            accepted = True
        elif gtd_new * (ends[high][0] - ends[low][0]) >= 0:
            ends[high] = ends[low]
        ends[low] = point
        if accepted:
            break
    t, f_t, g_t, _ = ends[low]
    return t, f_t, g_t, evals


class TorchLBFGS(_Stage):
    """torch.optim.LBFGS (its defaults; `learning_rate` is torch's lr), one `update` = one
    torch `step`, on the flat vector x (the leaves concatenated in key order): up to
    `max_iter` iterations, each

        y = g − g_prev, s = t_prev·d_prev; (y, s, 1/⟨y, s⟩) stored when ⟨y, s⟩ > 1e-10 (the
        oldest dropped beyond history_size) and then γ = ⟨y, s⟩/⟨y, y⟩;
        d = −H·g (two-loop recursion from H₀ = γI; d = −g on the very first iteration);
        t = min(1, 1/‖g‖₁)·lr on the very first iteration, else lr;
        stop if ⟨g, d⟩ > −tolerance_change;
        x += t·d after the strong-Wolfe search (which also returns f, g) or, without one,
        re-evaluate f, g at the new x (not on the last iteration);
        stop after max_iter iterations, max_eval evaluations (the initial one counted),
        max|g| ≤ tolerance_grad, max|t·d| ≤ tolerance_change or |Δf| < tolerance_change.

    Nothing moves when max|g| ≤ tolerance_grad at the start. `func_evals`, `n_iter` count
    over all updates, as torch's state does."""

    needs_value = True

    def __init__(
        self,
        learning_rate=1.0,
        max_iter=20,
        max_eval=None,
        tolerance_grad=1e-7,
        tolerance_change=1e-9,
        history_size=100,
        line_search_fn=None,
    ):
        self.schedule = _learning_rate(learning_rate)
        self.max_iter = max_iter
        self.max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
        self.tol_grad, self.tol_change = tolerance_grad, tolerance_change
        self.history_size, self.line_search_fn = history_size, line_search_fn
        self.t = 0  # updates done (the schedule's step)
        self.func_evals = self.n_iter = 0
        self.pairs: list[tuple[np.ndarray, np.ndarray, float]] = []  # (y, s, ρ), oldest first
        self.gamma = 1.0
        # the last direction, step and gradient (unused before the first iteration)
        self.d_prev: np.ndarray = np.zeros(0)
        self.step_prev = 0.0
        self.g_prev: np.ndarray = np.zeros(0)

    def update(self, grads, params, *, value=None, value_fn=None):
        if value is None or value_fn is None:
            raise ValueError("TorchLBFGS needs value= and value_fn=")
        lr = self.next_learning_rate()
        keys = list(params)
        sizes = [params[k].size for k in keys]

        def flat(tree):
            return np.concatenate([np.ravel(tree[k]) for k in keys]).astype(np.float64)

        def unflat(vector):
            parts = np.split(vector, np.cumsum(sizes)[:-1])
            return {k: p.reshape(params[k].shape) for k, p in zip(keys, parts, strict=True)}

        def f_and_g(vector):
            f, g = value_fn(unflat(vector))
            return float(f), flat(g)

        x0 = flat(params)
        x, loss, g = x0.copy(), float(value), flat(grads)
        evals = 1
        self.func_evals += 1
        if np.max(np.abs(g)) <= self.tol_grad:
            return unflat(x - x0)
        for inner in range(1, self.max_iter + 1):
            self.n_iter += 1
            if self.n_iter == 1:
                d, self.gamma = -g, 1.0
            else:
                y, s = g - self.g_prev, np.asarray(self.step_prev * self.d_prev, np.float64)
                ys = float(y @ s)
                if ys > 1e-10:
                    self.pairs = [*self.pairs, (y, s, 1.0 / ys)][-self.history_size :]
                    self.gamma = ys / float(y @ y)
                q = -g
                alphas = []
                for y_i, s_i, rho_i in reversed(self.pairs):
                    alpha = float(s_i @ q) * rho_i
                    q = q - alpha * y_i
                    alphas.append(alpha)
                d = q * self.gamma
                for (y_i, s_i, rho_i), alpha in zip(self.pairs, reversed(alphas), strict=True):
                    beta = float(y_i @ d) * rho_i
                    d = d + (alpha - beta) * s_i
            self.g_prev, loss_prev = g.copy(), loss
            step = min(1.0, 1.0 / float(np.sum(np.abs(g)))) * lr if self.n_iter == 1 else lr
            self.d_prev, self.step_prev = d, step
            gtd = float(g @ d)
            if gtd > -self.tol_change:
                break
            optimal = False
            if self.line_search_fn == "strong_wolfe":
                base = x.copy()

                def phi(t, base=base, d=d):
                    f_t, g_t = f_and_g(base + t * d)
                    return f_t, g_t, float(g_t @ d)

                step, loss, g, used = torch_strong_wolfe_reference(
                    phi, step, loss, g, gtd, float(np.max(np.abs(d))), self.max_eval - evals
                )
                self.step_prev = step
                x = x + step * d
                optimal = np.max(np.abs(g)) <= self.tol_grad
            else:
                x = x + step * d
                used = 0
                if inner != self.max_iter:
                    loss, g = f_and_g(x)
                    optimal, used = np.max(np.abs(g)) <= self.tol_grad, 1
            evals += used
            self.func_evals += used
            if inner == self.max_iter or evals >= self.max_eval or optimal:
                break
            if (
                np.max(np.abs(step * d)) <= self.tol_change
                or abs(loss - loss_prev) < self.tol_change
            ):
                break
        return unflat(x - x0)
