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
) -> tuple[FlatParams, np.ndarray]:
    """θ₀ = params; θₖ₊₁ = θₖ + update(grad_fn(θₖ), θₖ) for k < num_steps, all in float64.

    Returns (θ_final, learning_rates) where learning_rates[k] is the η used at update k
    (NaN for an optimizer without a learning rate).
    """
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    rates = np.full(num_steps, np.nan)
    for k in range(num_steps):
        params = optimizer.step(params, grad_fn(params))
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
