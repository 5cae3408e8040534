"""funcnn's image layers against PyTorch (torch.nn.functional), in float64: the oracle check.

    python benchmarks/oracles/torch_vision.py          # needs the `bench` extra (torch)

Compares values (and, for conv2d, conv_transpose2d and batch_norm, the gradients of
Σ r ⊙ y with respect to the input and the weights) over:
  conv2d            every padding (SAME, VALID, explicit) × strides × dilation × groups
  conv_transpose2d  SAME, VALID, explicit crops × strides × dilation, and PyTorch's own
                    (padding=p, output_padding=q) call against funcnn's ((p, p − q), …)
  max/avg_pool2d    VALID, SAME-like and symmetric padding × strides (avg: count_include_pad
                    =False), masks excepted (PyTorch has none)
  batch_norm        5 training steps then evaluation, momentum 0.1 and 0.3: outputs and the
                    running mean/var PyTorch keeps (its unbiased-variance rule)
  group_norm        groups 1, 2, C (instance_norm)
and prints the largest relative error per family, max |a − b| / (|a| + |b|) entrywise.
Layouts: funcnn is channels-last, so x_torch = x.transpose(0, 3, 1, 2); conv2d's weight
(kH, kW, C/G, F) is PyTorch's (F, C/G, kH, kW).permute(2, 3, 1, 0), conv_transpose2d's
(kH, kW, C, F) is PyTorch's (C, F, kH, kW).permute(2, 3, 0, 1).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

from funcnn import nn
from funcnn.nn import conv
from funcnn.reference.numerical import max_relative_error

jax.config.update("jax_enable_x64", True)
torch.set_default_dtype(torch.float64)
KEY = jax.random.key(0)
RNG = np.random.default_rng(0)


def nchw(x):
    return torch.tensor(np.asarray(x).transpose(0, 3, 1, 2), requires_grad=True)


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def random_params(layer, shape):
    shapes = jax.eval_shape(lambda k: layer.init(k, shape)[0], KEY)
    return jax.tree.map(lambda s: RNG.normal(size=s.shape), shapes)


def funcnn_with_grads(layer, params, x, r):
    def loss(p, x):
        return jnp.sum(r * layer.apply(p, x))

    y = np.asarray(layer.apply(params, jnp.asarray(x)))
    gp, gx = jax.grad(loss, argnums=(0, 1))(params, jnp.asarray(x))
    return y, gp, np.asarray(gx)


def conv2d_errors():
    worst = 0.0
    x = RNG.normal(size=(2, 7, 6, 4))
    cases = itertools.product(
        ["SAME", "VALID", ((1, 0), (2, 1))], [1, 2, (2, 1)], [1, 2], [(1, 6), (2, 4), (4, 4)]
    )
    count = 0
    for padding, strides, dilation, (groups, features) in cases:
        layer = nn.conv2d(
            features,
            (3, 2),
            strides=strides,
            padding=padding,
            dilation=dilation,
            feature_group_count=groups,
        )
        params = random_params(layer, x.shape)
        s, d = conv._pair(strides, "s"), conv._pair(dilation, "d")
        (pt, pb), (pl, pr) = conv.resolve_padding2d(padding, x.shape[1:3], (3, 2), s, d)
        y_shape = jax.eval_shape(layer.apply, params, x).shape
        r = RNG.normal(size=y_shape)
        y, gp, gx = funcnn_with_grads(layer, params, x, r)
        xt = nchw(x)
        wt = torch.tensor(params["w"].transpose(3, 2, 0, 1), requires_grad=True)
        bt = torch.tensor(params["b"], requires_grad=True)
        yt = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wt, bt, stride=s, dilation=d, groups=groups)
        (yt * torch.tensor(r.transpose(0, 3, 1, 2))).sum().backward()
        worst = max(
            worst,
            max_relative_error(
                (y, gx, gp["w"], gp["b"]),
                (nhwc(yt), nhwc(xt.grad), wt.grad.numpy().transpose(2, 3, 1, 0), bt.grad.numpy()),
            ),
        )
        count += 1
    return count, worst


def conv_transpose2d_errors():
    worst, count = 0.0, 0
    x = RNG.normal(size=(2, 4, 3, 3))
    for padding, strides, dilation in itertools.product(
        ["SAME", "VALID", ((1, 0), (0, -1))], [1, 2, (2, 3)], [1, 2]
    ):
        layer = nn.conv_transpose2d(2, (3, 2), strides=strides, padding=padding, dilation=dilation)
        params = random_params(layer, x.shape)
        s, d = conv._pair(strides, "s"), conv._pair(dilation, "d")
        (ct, cb), (cl, cr) = conv._transpose_crops(padding, (3, 2), s, d, "t")
        r = RNG.normal(size=jax.eval_shape(layer.apply, params, x).shape)
        y, gp, gx = funcnn_with_grads(layer, params, x, r)
        xt = nchw(x)
        wt = torch.tensor(params["w"].transpose(2, 3, 0, 1), requires_grad=True)
        full = F.conv_transpose2d(xt, wt, None, stride=s, dilation=d)  # no cropping
        # Crop (or, negative, zero-pad) the full output by funcnn's pairs, then add the bias.
        yt = F.pad(full, (-cl, -cr, -ct, -cb)) + torch.tensor(params["b"]).reshape(1, -1, 1, 1)
        (yt * torch.tensor(r.transpose(0, 3, 1, 2))).sum().backward()
        worst = max(
            worst,
            max_relative_error(
                (y, gx, gp["w"]), (nhwc(yt), nhwc(xt.grad), wt.grad.numpy().transpose(2, 3, 0, 1))
            ),
        )
        count += 1
    # PyTorch's own padding/output_padding arguments map to ((p, p − q), (p, p − q)).
    for p, q, stride in [(1, 0, 2), (1, 1, 2), (2, 1, 3)]:
        layer = nn.conv_transpose2d(2, 3, strides=stride, padding=((p, p - q), (p, p - q)))
        params = random_params(layer, x.shape)
        y = np.asarray(layer.apply(params, jnp.asarray(x)))
        yt = F.conv_transpose2d(
            nchw(x),
            torch.tensor(params["w"].transpose(2, 3, 0, 1)),
            torch.tensor(params["b"]),
            stride=stride,
            padding=p,
            output_padding=q,
        )
        worst = max(worst, max_relative_error(y, nhwc(yt)))
        count += 1
    return count, worst


def pool_errors():
    worst, count = 0.0, 0
    x = RNG.normal(size=(2, 7, 6, 3))
    for kind, window, strides, pad in itertools.product(
        ["max", "avg"], [2, (3, 2)], [None, 1, (2, 1)], [0, 1]
    ):
        k = conv._pair(window, "w")
        if pad * 2 > min(k):
            continue  # PyTorch needs padding ≤ window / 2
        make = nn.max_pool2d if kind == "max" else nn.avg_pool2d
        y = np.asarray(make(window, strides=strides, padding=pad).apply({}, jnp.asarray(x)))
        s = k if strides is None else conv._pair(strides, "s")
        if kind == "max":
            yt = F.max_pool2d(nchw(x), k, s, padding=pad)
        else:
            yt = F.avg_pool2d(nchw(x), k, s, padding=pad, count_include_pad=False)
        worst = max(worst, max_relative_error(y, nhwc(yt)))
        count += 1
    for kind in ("max", "avg"):
        layer = nn.global_max_pool2d() if kind == "max" else nn.global_avg_pool2d()
        got = np.asarray(layer.apply({}, jnp.asarray(x)))
        want = (
            F.adaptive_max_pool2d(nchw(x), 1)
            if kind == "max"
            else F.adaptive_avg_pool2d(nchw(x), 1)
        )
        worst = max(worst, max_relative_error(got, want.detach().numpy()[:, :, 0, 0]))
        count += 1
    return count, worst


def batch_norm_errors():
    worst, count = 0.0, 0
    for momentum in (0.1, 0.3):
        layer = nn.batch_norm(momentum=momentum)
        params = {"scale": RNG.normal(size=5), "bias": RNG.normal(size=5)}
        state = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float64), nn.initial_state(layer, (-1, 4, 3, 5))
        )
        running_mean, running_var = torch.zeros(5), torch.ones(5)
        for _ in range(5):
            x = RNG.normal(loc=1.5, scale=2.0, size=(3, 4, 3, 5))
            r = RNG.normal(size=x.shape)

            def loss(p, x, state=state, layer=layer, r=r):
                y, _ = layer.apply(p, x, state=state, train=True)
                return jnp.sum(r * y)

            y, state = layer.apply(params, jnp.asarray(x), state=state, train=True)
            gp, gx = jax.grad(loss, argnums=(0, 1))(params, jnp.asarray(x))
            xt = nchw(x)
            wt = torch.tensor(params["scale"], requires_grad=True)
            bt = torch.tensor(params["bias"], requires_grad=True)
            yt = F.batch_norm(
                xt, running_mean, running_var, wt, bt, training=True, momentum=momentum, eps=1e-5
            )
            (yt * torch.tensor(r.transpose(0, 3, 1, 2))).sum().backward()
            worst = max(
                worst,
                max_relative_error(
                    (y, state["mean"], state["var"], gx, gp["scale"], gp["bias"]),
                    (
                        nhwc(yt),
                        running_mean.numpy(),
                        running_var.numpy(),
                        nhwc(xt.grad),
                        wt.grad.numpy(),
                        bt.grad.numpy(),
                    ),
                ),
            )
            count += 1
        x = RNG.normal(size=(3, 4, 3, 5))
        y, _ = layer.apply(params, jnp.asarray(x), state=state)  # eval: running statistics
        yt = F.batch_norm(
            nchw(x),
            running_mean,
            running_var,
            torch.tensor(params["scale"]),
            torch.tensor(params["bias"]),
            training=False,
            eps=1e-5,
        )
        worst = max(worst, max_relative_error(y, nhwc(yt)))
        count += 1
    return count, worst


def group_norm_errors():
    worst, count = 0.0, 0
    x = RNG.normal(loc=-1.0, scale=3.0, size=(2, 4, 3, 6))
    params = {"scale": RNG.normal(size=6), "bias": RNG.normal(size=6)}
    for groups in (1, 2, 3, 6):
        layer = nn.group_norm(groups) if groups < 6 else nn.instance_norm()
        y = np.asarray(layer.apply(params, jnp.asarray(x)))
        yt = F.group_norm(
            nchw(x), groups, torch.tensor(params["scale"]), torch.tensor(params["bias"]), eps=1e-5
        )
        worst = max(worst, max_relative_error(y, nhwc(yt)))
        count += 1
    return count, worst


def main() -> None:
    print(f"funcnn vs torch {torch.__version__} (torch.nn.functional), float64")
    print(f"{'family':<18} {'cases':>5}  max relative error (values and gradients)")
    for name, check in [
        ("conv2d", conv2d_errors),
        ("conv_transpose2d", conv_transpose2d_errors),
        ("pools", pool_errors),
        ("batch_norm", batch_norm_errors),
        ("group_norm", group_norm_errors),
    ]:
        count, worst = check()
        print(f"{name:<18} {count:>5}  {worst:.2e}")


if __name__ == "__main__":
    main()
