"""funcnn's activations, losses and schedules against the peers: torch.nn.functional,
torch.optim.lr_scheduler, jax.nn and optax (losses and schedules), all in float64.

    python benchmarks/oracles/losses_activations.py

Needs the `bench` extra (torch==2.13.0 from the local wheel, optax). Prints, per function,
the max relative error |a − b| / max(|a| + |b|, 1e-8) of the value and of the gradient
(torch autograd or jax.grad of the peer, against jax.grad of funcnn), one line per peer.
Where a peer uses another convention the call below translates it (named in a comment), so
every figure should be at float64 round-off (≲ 1e-12) unless a comment says why not.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from funcnn import activations as act  # noqa: E402
from funcnn import losses, optim  # noqa: E402
from funcnn.reference.numerical import max_relative_error  # noqa: E402

torch.set_default_dtype(torch.float64)
RNG = np.random.default_rng(0)
ROWS: list[tuple[str, str, float, float]] = []


def report(name: str, peer: str, value: float, grad: float | None = None) -> None:
    ROWS.append((name, peer, value, np.nan if grad is None else grad))


def torch_value_and_grad(fn, *arrays, grad_arg: int = 0):
    tensors = [torch.tensor(np.asarray(a)) for a in arrays]
    tensors[grad_arg].requires_grad_(True)
    out = fn(*tensors)
    total = out.sum()
    total.backward()
    return out.detach().numpy(), tensors[grad_arg].grad.numpy()


def jax_value_and_grad(fn, *arrays, grad_arg: int = 0):
    arrays = [jnp.asarray(a) for a in arrays]

    def total(x):
        args = list(arrays)
        args[grad_arg] = x
        return jnp.sum(fn(*args))

    return np.asarray(fn(*arrays)), np.asarray(jax.grad(total)(arrays[grad_arg]))


def compare(name, peer, ours, theirs, *arrays, grad_arg=0, theirs_is_torch=True):
    v1, g1 = jax_value_and_grad(ours, *arrays, grad_arg=grad_arg)
    if theirs_is_torch:
        v2, g2 = torch_value_and_grad(theirs, *arrays, grad_arg=grad_arg)
    else:
        v2, g2 = jax_value_and_grad(theirs, *arrays, grad_arg=grad_arg)
    report(name, peer, max_relative_error(v1, v2), max_relative_error(g1, g2))


# --------------------------------------------------------------------------- activations
# A grid through every region, kinks avoided (peers disagree on derivatives at kinks: torch's
# hardswish′(−3) = −0.5, funcnn's and jax.nn's 0), plus ±50 and ±1e4.
X = np.concatenate([RNG.normal(size=40) * 4, [-1e4, -50.0, 50.0, 1e4]])
X = X[np.all(np.abs(X[:, None] - np.array([-3.0, -1.0, 0.0, 1.0, 3.0, 6.0])) > 1e-3, axis=1)]
ACTIVATIONS = {
    # name: (funcnn, torch, jax.nn or None)
    "elu": (act.elu, F.elu, jax.nn.elu),
    "celu(α=2)": (
        lambda x: act.celu(x, 2.0),
        lambda x: F.celu(x, 2.0),
        lambda x: jax.nn.celu(x, 2.0),
    ),
    "selu": (act.selu, F.selu, jax.nn.selu),
    "softplus": (act.softplus, F.softplus, jax.nn.softplus),
    "softsign": (act.softsign, F.softsign, jax.nn.soft_sign),
    "log_sigmoid": (act.log_sigmoid, F.logsigmoid, jax.nn.log_sigmoid),
    "hard_sigmoid": (act.hard_sigmoid, F.hardsigmoid, jax.nn.hard_sigmoid),
    "hard_tanh": (act.hard_tanh, F.hardtanh, jax.nn.hard_tanh),
    "hard_swish": (act.hard_swish, F.hardswish, jax.nn.hard_swish),
    "relu6": (act.relu6, F.relu6, jax.nn.relu6),
    "mish": (act.mish, F.mish, jax.nn.mish),
    "squareplus": (act.squareplus, None, jax.nn.squareplus),
    "sigmoid": (act.sigmoid, torch.sigmoid, jax.nn.sigmoid),
    "silu": (act.silu, F.silu, jax.nn.silu),
    "gelu": (act.gelu, F.gelu, lambda x: jax.nn.gelu(x, approximate=False)),
    "leaky_relu": (act.leaky_relu, F.leaky_relu, jax.nn.leaky_relu),
}
for name, (ours, torch_fn, jax_fn) in ACTIVATIONS.items():
    if torch_fn is not None:
        compare(name, "torch", ours, torch_fn, X)
    if jax_fn is not None:
        compare(name, "jax.nn", ours, jax_fn, X, theirs_is_torch=False)

Z = RNG.normal(size=(5, 8)) * 2
compare("glu", "torch", act.glu, lambda x: F.glu(x, dim=-1), Z)
compare("glu", "jax.nn", act.glu, jax.nn.glu, Z, theirs_is_torch=False)
V = RNG.normal(size=(5, 8))  # a random cotangent, so the gradient is not Σ ∂p = 0
compare(
    "sparsemax",
    "optax",
    lambda z: act.sparsemax(z) * V,
    lambda z: (
        optax.projections.projection_simplex(z) * V
        if z.ndim == 1
        else jax.vmap(optax.projections.projection_simplex)(z) * V
    ),
    Z,
    theirs_is_torch=False,
)

# α-entmax by bisection: torch has no entmax and the `entmax` package is not a dependency, so
# α = 2 is held against optax's projection_simplex (sparsemax), α = 1.5 against funcnn's exact
# sort-based entmax15, and α = 1 against softmax. The gradient is the custom implicit JVP.
# Bisection leaves τ within 2⁻⁵⁰ ≈ 9e-16 (absolute) of the exact threshold: ≈ 1e-14 relative
# on a small p_i.
SIMPLEX_V = jax.vmap(optax.projections.projection_simplex)
compare(
    "entmax_bisect(α=2)",
    "optax",
    lambda z: act.entmax_bisect(z, 2.0) * V,
    lambda z: SIMPLEX_V(z) * V,
    Z,
    theirs_is_torch=False,
)
compare(
    "entmax_bisect(α=2)",
    "sparsemax",
    lambda z: act.entmax_bisect(z, 2.0) * V,
    lambda z: act.sparsemax(z) * V,
    Z,
    theirs_is_torch=False,
)
compare(
    "entmax_bisect(α=1.5)",
    "entmax15",
    lambda z: act.entmax_bisect(z, 1.5) * V,
    lambda z: act.entmax15(z) * V,
    Z,
    theirs_is_torch=False,
)
Z_WIDE = np.concatenate([Z, [[1e4, -1e4, 0.0, 1e4 - 0.5, 3.0, -2.0, 1e4 - 1.0, 0.5]]])
V_WIDE = np.random.default_rng(1).normal(size=Z_WIDE.shape)  # own draw: RNG stays as before
compare(
    "entmax_bisect(α=1.5) ±1e4",
    "entmax15",
    lambda z: act.entmax_bisect(z, 1.5) * V_WIDE,
    lambda z: act.entmax15(z) * V_WIDE,
    Z_WIDE,
    theirs_is_torch=False,
)
compare(
    "entmax_bisect(α=1)",
    "torch",
    lambda z: act.entmax_bisect(z, 1.0) * V,
    lambda z: torch.softmax(z, -1) * torch.tensor(V),
    Z,
)


# ------------------------------------------------------------------------------- losses
P, Y = RNG.normal(size=(4, 5)) * 2, RNG.normal(size=(4, 5))
IDS = RNG.integers(0, 5, size=4)
Q = RNG.dirichlet(np.ones(5), size=4)
SIGNS = np.where(RNG.normal(size=(4, 5)) > 0, 1.0, -1.0)
BITS = (SIGNS > 0).astype(np.float64)
VAR = RNG.uniform(0.2, 2.0, size=(4, 5))
COUNTS = RNG.integers(0, 6, size=(4, 5)).astype(np.float64)
ids_t = torch.tensor(IDS)
none = {"reduction": "none"}

compare(
    "l1_loss",
    "torch",
    lambda p, y: losses.l1_loss(p, y, **none),
    lambda p, y: F.l1_loss(p, y, **none),
    P,
    Y,
)
compare(
    "smooth_l1_loss(β=0.5)",
    "torch",
    lambda p, y: losses.smooth_l1_loss(p, y, beta=0.5, **none),
    lambda p, y: F.smooth_l1_loss(p, y, beta=0.5, **none),
    P,
    Y,
)
compare(
    "huber_loss(δ=0.7)",
    "torch",
    lambda p, y: losses.huber_loss(p, y, delta=0.7, **none),
    lambda p, y: F.huber_loss(p, y, delta=0.7, **none),
    P,
    Y,
)
compare(
    "huber_loss(δ=0.7)",
    "optax",
    lambda p, y: losses.huber_loss(p, y, delta=0.7, **none),
    lambda p, y: optax.losses.huber_loss(p, y, delta=0.7),
    P,
    Y,
    theirs_is_torch=False,
)
compare(
    "log_cosh",
    "optax",
    lambda p, y: losses.log_cosh(p, y, **none),
    optax.losses.log_cosh,
    P,
    Y,
    theirs_is_torch=False,
)
compare(
    "gaussian_nll_loss(full)",
    "torch",
    lambda p, y, v: losses.gaussian_nll_loss(p, y, v, full=True, **none),
    lambda p, y, v: F.gaussian_nll_loss(p, y, v, full=True, **none),
    P,
    Y,
    VAR,
)
compare(
    "gaussian_nll_loss ∂var",
    "torch",
    lambda p, y, v: losses.gaussian_nll_loss(p, y, v, **none),
    lambda p, y, v: F.gaussian_nll_loss(p, y, v, **none),
    P,
    Y,
    VAR,
    grad_arg=2,
)
compare(
    "poisson_nll_loss(log_input)",
    "torch",
    lambda p, y: losses.poisson_nll_loss(p, y, **none),
    lambda p, y: F.poisson_nll_loss(p, y, **none),
    P,
    COUNTS,
)
compare(
    "poisson_nll_loss(rates, full)",
    "torch",
    lambda p, y: losses.poisson_nll_loss(p, y, log_input=False, full=True, **none),
    lambda p, y: F.poisson_nll_loss(p, y, log_input=False, full=True, **none),
    np.abs(P) + 0.1,
    COUNTS,
)
LOG_P = np.asarray(jax.nn.log_softmax(P))
# torch's kl_div(reduction="none") is elementwise; the row sum is funcnn's per-row KL.
compare(
    "kl_divergence",
    "torch",
    lambda lp, q: losses.kl_divergence(lp, q, **none),
    lambda lp, q: F.kl_div(lp, q, reduction="none").sum(-1),
    LOG_P,
    Q,
)
compare(
    "kl_divergence",
    "optax",
    lambda lp, q: losses.kl_divergence(lp, q, **none),
    optax.losses.kl_divergence,
    LOG_P,
    Q,
    theirs_is_torch=False,
)
compare(
    "kl_divergence_with_log_targets",
    "torch",
    lambda lp, lq: losses.kl_divergence_with_log_targets(lp, lq, **none),
    lambda lp, lq: F.kl_div(lp, lq, reduction="none", log_target=True).sum(-1),
    LOG_P,
    np.log(Q),
)
compare(
    "kl_divergence_with_log_targets",
    "optax",
    lambda lp, lq: losses.kl_divergence_with_log_targets(lp, lq, **none),
    optax.losses.kl_divergence_with_log_targets,
    LOG_P,
    np.log(Q),
    theirs_is_torch=False,
)
compare(
    "nll_loss",
    "torch",
    lambda lp: losses.nll_loss(lp, IDS, **none),
    lambda lp: F.nll_loss(lp, ids_t, **none),
    LOG_P,
)
compare(
    "cross_entropy(smoothing 0.1)",
    "torch",
    lambda z: losses.cross_entropy(z, IDS, label_smoothing=0.1, **none),
    lambda z: F.cross_entropy(z, ids_t, label_smoothing=0.1, **none),
    P,
)
compare(
    "poly_loss_cross_entropy",
    "optax",
    lambda z, q: losses.poly_loss_cross_entropy(z, q, epsilon=1.5, **none),
    lambda z, q: optax.losses.poly_loss_cross_entropy(z, q, epsilon=1.5),
    P,
    Q,
    theirs_is_torch=False,
)
compare(
    "hinge_loss",
    "optax",
    lambda s, y: losses.hinge_loss(s, y, **none),
    optax.losses.hinge_loss,
    P,
    SIGNS,
    theirs_is_torch=False,
)
compare(
    "perceptron_loss",
    "optax",
    lambda s, y: losses.perceptron_loss(s, y, **none),
    optax.losses.perceptron_loss,
    P,
    SIGNS,
    theirs_is_torch=False,
)
compare(
    "multiclass_hinge_loss",
    "optax",
    lambda s: losses.multiclass_hinge_loss(s, IDS, **none),
    lambda s: optax.losses.multiclass_hinge_loss(s, IDS),
    P,
    theirs_is_torch=False,
)
compare(
    "sigmoid_focal_loss(α=.25)",
    "optax",
    lambda z, y: losses.sigmoid_focal_loss(z, y, alpha=0.25, **none),
    lambda z, y: optax.losses.sigmoid_focal_loss(z, y, alpha=0.25),
    P,
    BITS,
    theirs_is_torch=False,
)
compare(
    "sparsemax_loss",
    "optax",
    lambda z, y: losses.sparsemax_loss(z, y, **none),
    optax.losses.sparsemax_loss,
    P,
    BITS,
    theirs_is_torch=False,
)
compare(
    "multiclass_sparsemax_loss",
    "optax",
    lambda s: losses.multiclass_sparsemax_loss(s, IDS, **none),
    lambda s: optax.losses.multiclass_sparsemax_loss(s, IDS),
    P,
    theirs_is_torch=False,
)
compare(
    "entmax_bisect_loss(α=2)",
    "optax",
    lambda s: losses.entmax_bisect_loss(s, IDS, alpha=2.0, **none),
    lambda s: optax.losses.multiclass_sparsemax_loss(s, IDS),
    P,
    theirs_is_torch=False,
)
compare(
    "entmax_bisect_loss(α=1)",
    "torch",
    lambda s: losses.entmax_bisect_loss(s, IDS, alpha=1.0, **none),
    lambda s: F.cross_entropy(s, ids_t, **none),
    P,
)
# One row's loss is 3e-5 (terms of ~5 cancel): 1e-17 absolute is ~2e-13 relative there.
compare(
    "entmax_bisect_loss(α=1.5)",
    "entmax15_loss",
    lambda s: losses.entmax_bisect_loss(s, IDS, alpha=1.5, **none),
    lambda s: losses.entmax15_loss(s, IDS, **none),
    P,
    theirs_is_torch=False,
)
compare(
    "cosine_similarity",
    "torch",
    lambda a, b: losses.cosine_similarity(a, b, **none),
    lambda a, b: F.cosine_similarity(a, b, dim=-1),
    P,
    Y,
)
compare(
    "cosine_distance",
    "optax",
    lambda a, b: losses.cosine_distance(a, b, **none),
    optax.losses.cosine_distance,
    P,
    Y,
    theirs_is_torch=False,
)
N = RNG.normal(size=(4, 5))
compare(
    "triplet_margin_loss",
    "optax",
    lambda a, p, n: losses.triplet_margin_loss(a, p, n, margin=2.0, **none),
    lambda a, p, n: optax.losses.triplet_margin_loss(a, p, n, margin=2.0),
    P,
    Y,
    N,
    theirs_is_torch=False,
)
# torch adds its eps to the difference (‖a − p + ε‖), optax and funcnn inside the root: ~1e-6.
compare(
    "triplet_margin_loss",
    "torch",
    lambda a, p, n: losses.triplet_margin_loss(a, p, n, margin=2.0, **none),
    lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=2.0, **none),
    P,
    Y,
    N,
)
E = RNG.normal(size=(6, 3))
LAB = np.array([0, 0, 1, 1, 2, 2])
compare(
    "ntxent(τ=0.5)",
    "optax",
    lambda e: losses.ntxent(e, LAB, 0.5),
    lambda e: optax.losses.ntxent(e, jnp.asarray(LAB), 0.5),
    E,
    theirs_is_torch=False,
)
# With a mask: a masked-out example is neither anchor, positive nor negative, so funcnn's
# masked loss equals optax's on the kept rows alone.
E_KEEP = np.array([True, True, False, True, True, True])
compare(
    "ntxent(τ=0.5, where)",
    "optax",
    lambda e: losses.ntxent(e, LAB, 0.5, where=E_KEEP),
    lambda e: optax.losses.ntxent(e[E_KEEP], jnp.asarray(LAB[E_KEEP]), 0.5),
    E,
    theirs_is_torch=False,
)
# At τ = 0.02 some gradient entries are ~4e-12, left by cancelling terms of ~17: the two
# agree to 1e-14 absolute there, which reads as ~1e-6 relative.
compare(
    "ntxent(τ=0.02)",
    "optax",
    lambda e: losses.ntxent(e, LAB, 0.02),
    lambda e: optax.losses.ntxent(e, jnp.asarray(LAB), 0.02),
    E,
    theirs_is_torch=False,
)
SEG = RNG.normal(size=(2, 3, 3, 4))
ONEHOT = np.eye(4)[RNG.integers(0, 4, size=(2, 3, 3))]
compare(
    "dice_loss",
    "optax",
    lambda z: losses.dice_loss(z, ONEHOT, reduction="none").mean(-1),
    lambda z: optax.losses.dice_loss(z, jnp.asarray(ONEHOT)),
    SEG,
    theirs_is_torch=False,
)
CLASS_W = np.array([0.0, 1.0, 2.5, 0.5])
compare(
    "dice_loss(class_weights, α=.3, β=.7)",
    "optax",
    lambda z: losses.dice_loss(
        z, ONEHOT, class_weights=CLASS_W, alpha=0.3, beta=0.7, reduction="none"
    ).mean(-1),
    lambda z: optax.losses.dice_loss(
        z, jnp.asarray(ONEHOT), class_weights=jnp.asarray(CLASS_W), alpha=0.3, beta=0.7
    ),
    SEG,
    theirs_is_torch=False,
)
# optax has no mask: masking the last image column must equal optax on the cropped image.
COLUMNS = np.broadcast_to(np.arange(3) < 2, (2, 3, 3))
compare(
    "dice_loss(where)",
    "optax",
    lambda z: losses.dice_loss(
        z, ONEHOT, class_weights=CLASS_W, where=COLUMNS, reduction="none"
    ).mean(-1),
    lambda z: optax.losses.dice_loss(
        z[:, :, :2], jnp.asarray(ONEHOT[:, :, :2]), class_weights=jnp.asarray(CLASS_W)
    ),
    SEG,
    theirs_is_torch=False,
)
CTC_Z = RNG.normal(size=(3, 7, 5)) * 2
CTC_Y = np.array([[1, 1, 2], [3, 4, 0], [2, 3, 1]])
T_LEN, S_LEN = np.array([7, 5, 6]), np.array([3, 2, 3])
KEEP_T = np.arange(7)[None] < T_LEN[:, None]
KEEP_S = np.arange(3)[None] < S_LEN[:, None]
compare(
    "ctc_loss",
    "torch",
    lambda z: losses.ctc_loss(z, CTC_Y, logit_where=KEEP_T, target_where=KEEP_S, **none),
    lambda z: F.ctc_loss(
        F.log_softmax(z, -1).transpose(0, 1),
        torch.tensor(CTC_Y),
        torch.tensor(T_LEN),
        torch.tensor(S_LEN),
        **none,
    ),
    CTC_Z,
)
compare(
    "ctc_loss",
    "optax",
    lambda z: losses.ctc_loss(z, CTC_Y, logit_where=KEEP_T, target_where=KEEP_S, **none),
    lambda z: optax.losses.ctc_loss(
        z, jnp.asarray(~KEEP_T, float), CTC_Y, jnp.asarray(~KEEP_S, float)
    ),
    CTC_Z,
    theirs_is_torch=False,
)


# ---------------------------------------------------------------------------- schedules
def torch_lrs(make_scheduler, steps: int, lr: float = 0.2) -> np.ndarray:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(opt)
    values = []
    for _ in range(steps):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(values)


def ours(schedule, steps: int) -> np.ndarray:
    return np.asarray(jax.vmap(schedule)(jnp.arange(steps, dtype=jnp.int32)))


S = torch.optim.lr_scheduler
TORCH_SCHEDULES = {
    "OneCycleLR": (
        optim.piecewise_interpolate_schedule("cosine", 0.2 / 25, {29: 25.0, 99: 1 / 25e4}),
        lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=100, pct_start=0.3),
        100,
    ),
    "OneCycleLR(linear, 3-phase)": (
        optim.piecewise_interpolate_schedule("linear", 0.02, {24: 10.0, 48: 0.1, 99: 0.01}),
        lambda o: S.OneCycleLR(
            o,
            0.2,
            total_steps=100,
            pct_start=0.25,
            anneal_strategy="linear",
            div_factor=10.0,
            final_div_factor=100.0,
            three_phase=True,
        ),
        100,
    ),
    "CyclicLR": (
        optim.join_schedules(
            [optim.linear_schedule(0.01, 0.2, 10), optim.linear_schedule(0.2, 0.01, 15)] * 5,
            [10, 25, 35, 50, 60, 75, 85, 100, 110],
        ),
        lambda o: S.CyclicLR(
            o, 0.01, 0.2, step_size_up=10, step_size_down=15, cycle_momentum=False
        ),
        125,
    ),
    "CosineAnnealingWarmRestarts": (
        optim.sgdr_schedule(
            [
                dict(
                    init_value=0.2,
                    peak_value=0.2,
                    warmup_steps=0,
                    decay_steps=10 * 2**i,
                    end_value=0.001,
                )
                for i in range(4)
            ]
        ),
        lambda o: S.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001),
        150,
    ),
    "SequentialLR": (
        optim.join_schedules(
            [optim.linear_schedule(0.02, 0.2, 10), optim.exponential_decay(0.2, 1, 0.95)], [10]
        ),
        lambda o: S.SequentialLR(
            o, [S.LinearLR(o, 0.1, 1.0, total_iters=10), S.ExponentialLR(o, 0.95)], [10]
        ),
        130,
    ),
    "PolynomialLR": (
        optim.polynomial_schedule(0.2, 0.0, 2.0, 40),
        lambda o: S.PolynomialLR(o, total_iters=40, power=2.0),
        130,
    ),
    "StepLR": (
        optim.exponential_decay(0.2, 7, 0.5, staircase=True),
        lambda o: S.StepLR(o, step_size=7, gamma=0.5),
        60,
    ),
    "MultiStepLR": (
        optim.piecewise_constant_schedule(0.2, {10: 0.1, 30: 0.1}),
        lambda o: S.MultiStepLR(o, [10, 30], gamma=0.1),
        60,
    ),
}
for name, (schedule, make, steps) in TORCH_SCHEDULES.items():
    report(name, "torch", max_relative_error(ours(schedule, steps), torch_lrs(make, steps)))

OPTAX_SCHEDULES = {
    "warmup_cosine_decay": (
        optim.warmup_cosine_decay(0.1, 1.0, 10, 100, 0.05, exponent=1.5),
        optax.warmup_cosine_decay_schedule(0.1, 1.0, 10, 100, 0.05, exponent=1.5),
    ),
    "exponential_decay": (
        optim.exponential_decay(1.0, 10, 0.5, 15, True, 0.05),
        optax.exponential_decay(1.0, 10, 0.5, 15, True, 0.05),
    ),
    "linear_schedule": (
        optim.linear_schedule(1.0, 0.1, 50, 20),
        optax.linear_schedule(1.0, 0.1, 50, 20),
    ),
    "polynomial_schedule": (
        optim.polynomial_schedule(1.0, 0.01, 2.0, 100, 5),
        optax.polynomial_schedule(1.0, 0.01, 2.0, 100, 5),
    ),
    "cosine_decay_schedule": (
        optim.cosine_decay_schedule(2.0, 90, 0.1, 1.5),
        optax.cosine_decay_schedule(2.0, 90, 0.1, 1.5),
    ),
    "piecewise_constant_schedule": (
        optim.piecewise_constant_schedule(2.0, {40: 0.1, 10: 0.5}),
        optax.piecewise_constant_schedule(2.0, {40: 0.1, 10: 0.5}),
    ),
    "piecewise_interpolate_schedule": (
        optim.piecewise_interpolate_schedule("cosine", 1.0, {0: 2.0, 20: 3.0, 90: 0.01}),
        optax.piecewise_interpolate_schedule("cosine", 1.0, {0: 2.0, 20: 3.0, 90: 0.01}),
    ),
    "cosine_onecycle_schedule": (
        optim.cosine_onecycle_schedule(100, 1.0, 0.25, 10.0, 100.0),
        optax.cosine_onecycle_schedule(100, 1.0, 0.25, 10.0, 100.0),
    ),
    "linear_onecycle_schedule": (
        optim.linear_onecycle_schedule(110, 1.0),
        optax.linear_onecycle_schedule(110, 1.0),
    ),
    "sgdr_schedule": (
        optim.sgdr_schedule(
            [dict(init_value=0.1, peak_value=1.0, warmup_steps=5, decay_steps=30, end_value=0.01)]
            * 3
        ),
        optax.sgdr_schedule(
            [dict(init_value=0.1, peak_value=1.0, warmup_steps=5, decay_steps=30, end_value=0.01)]
            * 3
        ),
    ),
    "warmup_constant_schedule": (
        optim.warmup_constant_schedule(0.1, 1.0, 25),
        optax.warmup_constant_schedule(0.1, 1.0, 25),
    ),
    "warmup_exponential_decay_schedule": (
        optim.warmup_exponential_decay_schedule(0.0, 1.0, 10, 20, 0.5, 5, False, 0.1),
        optax.warmup_exponential_decay_schedule(0.0, 1.0, 10, 20, 0.5, 5, False, 0.1),
    ),
    "join_schedules": (
        optim.join_schedules([optim.constant(0.5), optim.linear_schedule(1.0, 0.0, 40)], [30]),
        optax.join_schedules(
            [optax.constant_schedule(0.5), optax.linear_schedule(1.0, 0.0, 40)], [30]
        ),
    ),
}
# optax computes in float32 when handed the int32 counter (its fractions are int32 / int), so
# it gets the same steps as float64 numbers; funcnn gets the int32 counter the optimizers pass.
STEPS64 = jnp.arange(130, dtype=jnp.float64)
for name, (schedule, theirs) in OPTAX_SCHEDULES.items():
    theirs_values = np.asarray(jax.vmap(theirs)(STEPS64))
    report(name, "optax", max_relative_error(ours(schedule, 130), theirs_values))


# ------------------------------------------------------------------------------ report
print(f"{'function':38s} {'peer':13s} {'value':>9s} {'gradient':>9s}")
for name, peer, value, grad in ROWS:
    g = "—" if np.isnan(grad) else f"{grad:.1e}"
    print(f"{name:38s} {peer:13s} {value:9.1e} {g:>9s}")
worst = max(v for _, _, v, _ in ROWS)
print(f"\n{len(ROWS)} comparisons; worst value error {worst:.1e}")
