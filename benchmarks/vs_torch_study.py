"""Levers behind benchmarks/vs_torch.py's table: `python benchmarks/vs_torch.py --study NAME`.

    lstm         LSTM LM step variants, timed interleaved against torch in one process, then
                 the funcnn step piece by piece (scans, ∂W_h, projection, head, AdamW)
    transformer  transformer LM step variants, likewise
    flags        XLA:CPU flag sets, one subprocess each (ratios to torch inside each)
    parts        the transformer's pieces: a block's attention and MLP sublayers (loss + grad)
                 and everything outside the blocks, funcnn vs torch

Every variant is checked to give the funcnn step-0 loss (or says how far it is) before timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from funcnn import losses, optim
from funcnn.nn.recurrent import lstm_scan


def _report(title: str, res: dict, losses0: dict) -> None:
    print(f"\n{title}")
    print(f"  {'':34s} {'ms/step':>9s} {'÷ torch':>8s} {'loss0':>9s}")
    for name, v in res.items():
        l0 = losses0.get(name)
        print(f"  {name:34s} {v['ms']:9.2f} {v['ratio']:8.3f} {'' if l0 is None else f'{l0:9.5f}'}")


def _funcnn_like(loss, params):
    """A donated step of `loss(params, x, y)` with funcnn's AdamW (isolates the model)."""
    opt = optim.adamw(1e-3, weight_decay=0.01)

    def step(state, batch):
        p, s = state
        g = jax.grad(loss)(p, *batch)
        u, s = opt.update(g, s, p)
        return optim.apply_updates(p, u), s

    p = jax.tree.map(jnp.array, params)
    return jax.jit(step, donate_argnums=0), (p, opt.init(p))


# ----------------------------------------------------------------------------- LSTM


BEFORE_23 = "bec47c2"  # main before #23 §2: saved residuals apart, 3-D input projection


def _recurrent_at(commit: str):
    """funcnn.nn.recurrent as it was at `commit` (read with git show), as a fresh module."""
    import importlib.util
    import types

    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(
        ["git", "-C", str(root), "show", f"{commit}:funcnn/nn/recurrent.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader(f"recurrent_{commit}", loader=None)
    assert spec is not None
    module = types.ModuleType(spec.name)
    exec(compile(src, f"recurrent@{commit}", "exec"), module.__dict__)
    return module


def _lstm_scan_loss(
    unroll: int,
    hand_vjp: bool,
    matmul_only: bool = False,
    *,
    scan=lstm_scan,
    two_d: bool = True,
    fold_embedding: bool = False,
):
    """The LM loss with the LSTM written out: x·W_x (one 2-D matmul, or the 3-D `@` of
    main before #23 §2 with two_d=False, or with fold_embedding the rows of table·W_x + b
    gathered by token — the same numbers up to rounding, 0.27 GFLOP less forward and the
    ∂x, ∂W_x products replaced by a scatter-add), then `scan` (hand VJP) or an autodiff
    lax.scan."""

    def loss(params, x, y):
        e = params["embedding_0"]["table"][x]  # (B, T, E)
        p = params["lstm_1"]
        e_tm = jnp.swapaxes(e, 0, 1)  # (T, B, E)
        if fold_embedding:  # table[x]·W_x = (table·W_x)[x]: a (V, 4H) product, then a gather
            xp = (params["embedding_0"]["table"] @ p["w_x"] + p["b"])[jnp.swapaxes(x, 0, 1)]
        elif two_d:
            t_, b_, d_ = e_tm.shape
            xp = (e_tm.reshape(t_ * b_, d_) @ p["w_x"]).reshape(t_, b_, -1) + p["b"]
        else:
            xp = e_tm @ p["w_x"] + p["b"]  # (T, B, 4H)
        hidden = p["w_h"].shape[0]
        h0 = jnp.zeros((x.shape[0], hidden))
        if hand_vjp:
            _, hs = scan(p["w_h"], xp, (h0, h0), None, 0.0, False, unroll)
        else:

            def cell(carry, xt):
                h, c = carry
                z = xt + h @ p["w_h"]
                if matmul_only:  # the recurrent matmul and nothing else: a lower bound
                    return (z[:, :hidden], c), z[:, :hidden]
                i, f, g, o = jnp.split(z, 4, -1)
                c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                h = jax.nn.sigmoid(o) * jnp.tanh(c)
                return (h, c), h

            _, hs = jax.lax.scan(cell, (h0, h0), xp, unroll=unroll)
        logits = jnp.swapaxes(hs, 0, 1) @ params["head_2"]["w"] + params["head_2"]["b"]
        return losses.cross_entropy(logits, y)

    return loss


def study_lstm(args, vt) -> None:
    import resource

    model, params, batch, (xn, yn) = vt.lstm_setup()
    f_step, f_state, f_loss = vt.funcnn_step(model, params)
    tm = vt.TorchLSTMLM(params)
    xt, yt = torch.from_numpy(xn.astype(np.int64)), torch.from_numpy(yn.astype(np.int64))
    t_step, _ = vt.torch_train_step(tm, xt, yt)
    fns = {
        "torch": vt.torch_runner(t_step, args.steps),
        "funcnn (hand VJP)": vt.jax_runner(f_step, f_state, batch, args.steps, True),
    }
    losses0 = {"funcnn (hand VJP)": float(f_loss(params, batch, None)[0])}
    old_scan = _recurrent_at(BEFORE_23).lstm_scan
    variants = {
        f"hand VJP as at {BEFORE_23} (3-D proj)": _lstm_scan_loss(
            1, True, scan=old_scan, two_d=False
        ),
        f"hand VJP as at {BEFORE_23}, 2-D proj": _lstm_scan_loss(1, True, scan=old_scan),
        "hand VJP in place, 3-D proj": _lstm_scan_loss(1, True, two_d=False),
        "hand VJP in place (= funcnn)": _lstm_scan_loss(1, True),
        "in place, embedding folded into W_x": _lstm_scan_loss(1, True, fold_embedding=True),
        "hand VJP in place, unroll 2": _lstm_scan_loss(2, True),
        "hand VJP in place, unroll 4": _lstm_scan_loss(4, True),
        "autodiff scan, unroll 1": _lstm_scan_loss(1, False),
        "recurrent matmul only (bound)": _lstm_scan_loss(1, False, matmul_only=True),
    }
    only = os.environ.get("LSTM_STUDY_VARIANTS")  # comma list of substrings to keep
    if only:
        variants = {k: v for k, v in variants.items() if any(o in k for o in only.split(","))}
    temps = {}
    for name, loss in variants.items():
        step, state = _funcnn_like(loss, params)
        losses0[name] = float(loss(params, *batch))
        temps[name] = step.lower(state, batch).compile().memory_analysis().temp_size_in_bytes
        fns[name] = vt.jax_runner(step, state, batch, args.steps, False)

    # forward-only and loss+grad-only (no optimizer) of the funcnn model
    def fwd(p, x, y):
        return losses.cross_entropy(model.apply(p, x), y)

    fwd_jit, grad_jit = jax.jit(fwd), jax.jit(jax.value_and_grad(fwd))

    def run(fn):
        def go():
            for _ in range(args.steps):
                out = fn(params, *batch)
            jax.block_until_ready(out)

        return go

    fns["funcnn forward only"] = run(fwd_jit)
    fns["funcnn loss+grad (no optimizer)"] = run(grad_jit)

    def torch_fwd():
        with torch.no_grad():
            for _ in range(args.steps):
                tm(xt)

    fns["torch forward only (no_grad)"] = torch_fwd
    res = vt.summarize(vt.interleaved_times(fns, args.repeats), "torch", args.steps)
    _report("LSTM LM step: levers (same weights, same batch)", res, losses0)
    print("\n  XLA temporaries per step and minor page faults per step (getrusage, 3 calls)")
    for name, fn in fns.items():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            fn()
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (3 * args.steps)
        temp = f"{temps[name] / 2**20:6.1f} MiB" if name in temps else ""
        print(f"  {name:40s} {temp:>10s} {faults:8.0f} faults")
    lstm_pieces(args, vt)


def lstm_pieces(args, vt) -> None:
    """The funcnn LSTM step piece by piece, each jitted alone, timed interleaved with the
    whole funcnn step and torch's step (ms and ÷ torch's step): where the time goes."""
    from funcnn.nn.recurrent import _lstm_scan_bwd, _lstm_scan_fwd, _project

    model, params, batch, (xn, yn) = vt.lstm_setup()
    f_step, f_state, _ = vt.funcnn_step(model, params)
    tm = vt.TorchLSTMLM(params)
    xt, yt = torch.from_numpy(xn.astype(np.int64)), torch.from_numpy(yn.astype(np.int64))
    t_step, _ = vt.torch_train_step(tm, xt, yt)
    p, (x, y) = params["lstm_1"], batch
    n, steps = x.shape
    hidden = p["w_h"].shape[0]
    e_tm = jnp.swapaxes(params["embedding_0"]["table"][x], 0, 1)  # (T, N, E)
    proj = lambda w_x, b, e: _project(e, w_x) + b
    x_proj = proj(p["w_x"], p["b"], e_tm)
    zero = jnp.zeros((n, hidden))
    fwd = jax.jit(lambda w, xp: _lstm_scan_fwd(w, xp, (zero, zero), None, 0.0, False, 1))
    (_, ys), res = fwd(p["w_h"], x_proj)
    dys = jnp.full_like(ys, 1e-3)
    bwd = jax.jit(lambda res, dys: _lstm_scan_bwd(0.0, False, 1, res, ((zero, zero), dys))[:2])
    rng = np.random.default_rng(0)
    h_rows = jnp.asarray(rng.standard_normal((steps * n, hidden)), jnp.float32)
    dz_rows = jnp.asarray(rng.standard_normal((steps * n, 4 * hidden)), jnp.float32)
    dw_h = jax.jit(lambda a, b: a.T @ b)
    proj_fwd = jax.jit(proj)
    proj_vjp = jax.jit(lambda w_x, b, e, dz: jax.vjp(proj, w_x, b, e)[1](dz))
    head = params["head_2"]
    head_loss = lambda w, b, ys: losses.cross_entropy(jnp.swapaxes(ys, 0, 1) @ w + b, y)
    head_grad = jax.jit(jax.value_and_grad(head_loss, (0, 1, 2)))
    opt = optim.adamw(1e-3, weight_decay=0.01)
    opt_state = opt.init(params)
    update = jax.jit(opt.update)
    ready = jax.block_until_ready
    fns = {
        "torch step": vt.torch_runner(t_step, 1),
        "funcnn step": vt.jax_runner(f_step, f_state, batch, 1, True),
        "forward scan, saving residuals": lambda: ready(fwd(p["w_h"], x_proj)),
        "backward scan + ∂W_h": lambda: ready(bwd(res, dys)),
        "  of which ∂W_h (one matmul)": lambda: ready(dw_h(h_rows, dz_rows)),
        "input projection forward": lambda: ready(proj_fwd(p["w_x"], p["b"], e_tm)),
        "input projection fwd + vjp (∂W_x, ∂b, ∂x)": lambda: ready(
            proj_vjp(p["w_x"], p["b"], e_tm, x_proj)
        ),
        "head + cross-entropy, value and grad": lambda: ready(head_grad(head["w"], head["b"], ys)),
        "AdamW update": lambda: ready(update(params, opt_state, params)),
    }
    t = vt.interleaved_times(fns, args.repeats)
    print("\n  the funcnn LSTM step piece by piece (each jitted alone; ms, ÷ torch's whole step)")
    for name, ts in t.items():
        ratio = float(np.median(ts / t["torch step"]))
        print(f"  {name:44s} {1e3 * np.median(ts):7.2f} ms {ratio:6.3f}")


# ----------------------------------------------------------------------------- transformer


def _hand_tf_loss(*, fused_qkv=False, attention="einsum", gelu_tanh=False, dtype=None):
    """The hand-written GPT loss of vs_torch with one lever changed."""
    from vs_torch import TF, layer_norm_jax

    heads, depth = TF["heads"], TF["depth"]

    def loss(params, x, y):
        t = x.shape[1]
        h = params["embedding"]["table"][x] + params["positions"]["table"][:t]
        causal = jnp.tril(jnp.ones((t, t), bool))
        cast = (lambda a: a.astype(dtype)) if dtype is not None else (lambda a: a)
        for i in range(depth):
            p = params[f"block_{i}"]
            att = p["attention"]
            a = layer_norm_jax(p["norm_attention"], h)
            b_, d = a.shape[0], a.shape[2]
            if fused_qkv:
                w = jnp.concatenate([att[n]["w"] for n in "qkv"], axis=1)  # (D, 3D)
                bias = jnp.concatenate([att[n]["b"] for n in "qkv"])
                z = (cast(a) @ cast(w)).astype(a.dtype) + bias
                q, k, v = (zz.reshape(b_, t, heads, d // heads) for zz in jnp.split(z, 3, axis=-1))
            else:
                q, k, v = (
                    ((cast(a) @ cast(att[n]["w"])).astype(a.dtype) + att[n]["b"]).reshape(
                        b_, t, heads, d // heads
                    )
                    for n in "qkv"
                )  # (B, T, H, dh)
            if attention == "jax.nn":
                o = jax.nn.dot_product_attention(q, k, v, is_causal=True)  # (B, T, H, dh)
            else:
                s = jnp.einsum("bqhd,bkhd->bhqk", cast(q), cast(k)).astype(a.dtype)
                s = jnp.where(causal, s / np.sqrt(d // heads), -jnp.inf)
                o = jnp.einsum("bhqk,bkhd->bqhd", cast(jax.nn.softmax(s, -1)), cast(v))
                o = o.astype(a.dtype)
            o = o.reshape(b_, t, d)
            h = h + (cast(o) @ cast(att["o"]["w"])).astype(a.dtype) + att["o"]["b"]
            m = layer_norm_jax(p["norm_mlp"], h)
            m = (cast(m) @ cast(p["mlp"]["dense_0"]["w"])).astype(a.dtype) + p["mlp"]["dense_0"][
                "b"
            ]
            m = jax.nn.gelu(m, approximate=gelu_tanh)
            m = (cast(m) @ cast(p["mlp"]["dense_2"]["w"])).astype(a.dtype)
            h = h + m + p["mlp"]["dense_2"]["b"]
        h = layer_norm_jax(params["norm"], h)
        logits = h @ params["head"]["w"] + params["head"]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return loss


def study_transformer(args, vt) -> None:
    model, params, batch, (xn, yn) = vt.transformer_setup()
    f_step, f_state, f_loss = vt.funcnn_step(model, params)
    tm = vt.TorchGPT(params)
    xt, yt = torch.from_numpy(xn.astype(np.int64)), torch.from_numpy(yn.astype(np.int64))
    t_step, _ = vt.torch_train_step(tm, xt, yt)
    fns = {
        "torch": vt.torch_runner(t_step, args.steps),
        "funcnn (auto = plain)": vt.jax_runner(f_step, f_state, batch, args.steps, True),
    }
    losses0 = {"funcnn (auto = plain)": float(f_loss(params, batch, None)[0])}
    chunked, _, _, _ = vt.transformer_setup("chunked")
    c_step, c_state, c_loss = vt.funcnn_step(chunked, params)
    fns["funcnn implementation=chunked"] = vt.jax_runner(c_step, c_state, batch, args.steps, True)
    losses0["funcnn implementation=chunked"] = float(c_loss(params, batch, None)[0])
    variants = {
        "hand: einsum attention": _hand_tf_loss(),
        "hand: fused QKV": _hand_tf_loss(fused_qkv=True),
        "hand: jax.nn.dot_product_attention": _hand_tf_loss(attention="jax.nn"),
        "hand: tanh GELU": _hand_tf_loss(gelu_tanh=True),
        "hand: bf16 matmuls": _hand_tf_loss(dtype=jnp.bfloat16),
    }
    for name, loss in variants.items():
        step, state = _funcnn_like(loss, params)
        losses0[name] = float(loss(params, *batch))
        fns[name] = vt.jax_runner(step, state, batch, args.steps, False)

    def fwd(p, x, y):
        return losses.cross_entropy(model.apply(p, x), y)

    fwd_jit, grad_jit = jax.jit(fwd), jax.jit(jax.value_and_grad(fwd))

    def run(fn):
        def go():
            for _ in range(args.steps):
                out = fn(params, *batch)
            jax.block_until_ready(out)

        return go

    fns["funcnn forward only"] = run(fwd_jit)
    fns["funcnn loss+grad (no optimizer)"] = run(grad_jit)

    def torch_fwd():
        with torch.no_grad():
            for _ in range(args.steps):
                tm(xt)

    fns["torch forward only (no_grad)"] = torch_fwd
    res = vt.summarize(vt.interleaved_times(fns, args.repeats), "torch", args.steps)
    _report("transformer LM step: levers (same weights, same batch)", res, losses0)


# ----------------------------------------------------------------------------- flags

FLAG_SETS = {
    "defaults (+mof)": "",
    "xla_cpu_use_xnnpack": "--xla_cpu_use_xnnpack=true",
    "xla_cpu_use_onednn": "--xla_cpu_use_onednn=true",
    "xla_cpu_enable_fast_math": "--xla_cpu_enable_fast_math=true",
    "no multi_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
}


def study_flags(args, vt) -> None:
    script = Path(__file__).resolve().parent / "vs_torch.py"
    rows = {}
    for name, flags in FLAG_SETS.items():
        env = os.environ.copy()
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
        out = Path(f"/tmp/vs_torch_flags_{os.getpid()}.json")
        cmd = [
            sys.executable,
            str(script),
            "--sections",
            "transformer,lstm",
            "--repeats",
            str(args.repeats),
            "--steps",
            str(args.steps),
            "--json",
            str(out),
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            rows[name] = done.stderr.strip().splitlines()[-1][:90]
            print(f"  {name}: failed: {rows[name]}", flush=True)
            continue
        r = json.loads(out.read_text())
        rows[name] = {
            sec: {k: r[sec]["times"][k]["ratio"] for k in ("funcnn", "jax+optax")}
            for sec in ("transformer", "lstm")
        }
        print(f"  {name}: {rows[name]}", flush=True)
    print("\nXLA:CPU flags (each in its own process; time ÷ torch in that process)")
    head = ("tf funcnn", 10), ("tf jax", 8), ("lstm funcnn", 12), ("lstm jax", 9)
    print(f"  {'flags':34s} " + " ".join(f"{h:>{w}s}" for h, w in head))
    for name, v in rows.items():
        if isinstance(v, str):
            print(f"  {name:34s} failed: {v}")
            continue
        t, s = v["transformer"], v["lstm"]
        print(
            f"  {name:34s} {t['funcnn']:10.3f} {t['jax+optax']:8.3f} {s['funcnn']:12.3f} "
            f"{s['jax+optax']:9.3f}"
        )


# ----------------------------------------------------------------------------- parts


def study_parts(args, vt) -> None:
    """Time each piece of the transformer step, forward and forward + backward, in both."""
    import torch.nn.functional as F

    from funcnn import activations
    from funcnn import nn as fnn

    b, t, d = vt.TF["batch"], vt.TF["T"], vt.TF["dim"]
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (b, t, d))
    r = jax.random.normal(jax.random.PRNGKey(1), (b, t, d))
    attention = fnn.serial(
        fnn.layer_norm(), fnn.multi_head_attention(d, num_heads=vt.TF["heads"], causal=True)
    )
    mlp = fnn.serial(fnn.layer_norm(), fnn.mlp([d, 4 * d, d], activation=activations.gelu))
    xt = torch.from_numpy(np.array(x)).requires_grad_()
    rt = torch.from_numpy(np.array(r))
    ln1, ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
    q, k, v, o = (torch.nn.Linear(d, d) for _ in range(4))
    fc1, fc2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)

    def t_attention():
        a = ln1(xt)
        split = lambda z: z.view(b, t, vt.TF["heads"], -1).transpose(1, 2)
        y = F.scaled_dot_product_attention(split(q(a)), split(k(a)), split(v(a)), is_causal=True)
        return (o(y.transpose(1, 2).reshape(b, t, d)) * rt).sum()

    def t_mlp():
        return (fc2(F.gelu(fc1(ln2(xt)))) * rt).sum()

    def jax_pair(layer):
        p, _ = layer.init(key, (b, t, d))
        # r is an argument, not a closed-over constant that XLA could fold into the backward
        f = lambda p, x, r: jnp.sum(layer.apply(p, x) * r)
        fwd, grad = jax.jit(f), jax.jit(jax.grad(f, (0, 1)))
        return (lambda: jax.block_until_ready(fwd(p, x, r))), (
            lambda: jax.block_until_ready(grad(p, x, r))
        )

    def torch_pair(fn):
        def fwd():
            with torch.no_grad():
                fn()

        return fwd, lambda: fn().backward()

    model, params, batch, (xn, yn) = vt.transformer_setup()
    tm = vt.TorchGPT(params)
    xi, yi = torch.from_numpy(xn.astype(np.int64)), torch.from_numpy(yn.astype(np.int64))
    grad_full = jax.jit(jax.grad(lambda p, x, y: losses.cross_entropy(model.apply(p, x), y)))
    grad_outer, ps = vt.transformer_outer_piece(params)
    emb = torch.nn.Parameter(torch.from_numpy(np.array(ps[0])))
    pos = torch.nn.Parameter(torch.from_numpy(np.array(ps[1])))

    def t_full():
        tm.zero_grad(set_to_none=True)
        F.cross_entropy(tm(xi).reshape(-1, vt.VOCAB), yi.reshape(-1)).backward()

    def t_outer():
        h = emb[xi] + pos[: xi.shape[1]]
        F.cross_entropy(tm.head(tm.ln_f(h)).reshape(-1, vt.VOCAB), yi.reshape(-1)).backward()

    pairs = {
        "attention sublayer": (jax_pair(attention), torch_pair(t_attention)),
        "MLP sublayer": (jax_pair(mlp), torch_pair(t_mlp)),
    }
    fns = {}
    for name, ((jf, jg), (tf, tg)) in pairs.items():
        fns |= {
            f"{name} fwd: funcnn": jf,
            f"{name} fwd: torch": tf,
            f"{name} fwd+bwd: funcnn": jg,
            f"{name} fwd+bwd: torch": tg,
        }
    fns["outside the blocks fwd+bwd: funcnn"] = lambda: jax.block_until_ready(
        grad_outer(ps, *batch)
    )
    fns["outside the blocks fwd+bwd: torch"] = t_outer
    fns["whole model loss+grad: funcnn"] = lambda: jax.block_until_ready(grad_full(params, *batch))
    fns["whole model loss+grad: torch"] = t_full
    t = vt.interleaved_times(fns, args.repeats)
    print("\ntransformer pieces (ms per call; ratio = funcnn ÷ torch, median per round)")
    for name in fns:
        if name.endswith("funcnn"):
            base = name[: -len("funcnn")]
            ratio = float(np.median(t[name] / t[base + "torch"]))
            print(
                f"  {base[:-2]:36s} funcnn {1e3 * np.median(t[name]):7.2f}  torch "
                f"{1e3 * np.median(t[base + 'torch']):7.2f}  ratio {ratio:5.2f}"
            )


def run(name: str, args, vt) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    studies = {
        "lstm": study_lstm,
        "transformer": study_transformer,
        "flags": study_flags,
        "parts": study_parts,
    }
    studies[name](args, vt)
    print(f"load average {os.getloadavg()[0]:.2f} at end")
