"""funcnn against hand-written JAX + optax and PyTorch eager on CPU: train steps and AdamW.

    python benchmarks/vs_torch.py                  # the table (~3 min on 2 shared cores)
    python benchmarks/vs_torch.py --quick          # smoke run
    python benchmarks/vs_torch.py --study lstm     # levers on the LSTM step (see README)
    python benchmarks/vs_torch.py --study transformer
    python benchmarks/vs_torch.py --study flags    # XLA:CPU flags, one subprocess per set
    python benchmarks/vs_torch.py --study parts    # the transformer step piece by piece

Sections (each timed interleaved in one process: round-robin over the candidates, `--steps`
steps per candidate per round, median over rounds of each per-round time ratio):

  transformer  LM train step, vocab 65, dim 128, 2 pre-LN blocks, 4 heads, T 128, batch 16,
               AdamW(1e-3, wd 0.01): funcnn (transformer_lm + adamw + train.make_step) vs
               hand-written JAX + optax vs PyTorch eager (hand-written GPT blocks with
               F.scaled_dot_product_attention(is_causal=True), AdamW(fused=True)).
  lstm         char-LM train step, embedding 64, LSTM hidden 256, T 64, batch 32, vocab 65:
               funcnn (lab char_lm "lstm" = embedding → lstm → dense) vs JAX lax.scan + optax
               vs torch nn.Embedding → nn.LSTM → nn.Linear.
  adamw        AdamW update on 10.0M float32 params in 40 leaves, donated / in place: funcnn
               vs optax vs torch AdamW(fused=True), as GB/s at 28 bytes/param and as % of a
               donated in-place JAX triad b ← b + s·c (12 bytes/elem) timed in the same loop.

All peers start from the *same* weights (funcnn's init, copied into the others) and the
script checks that their step-0 losses agree before timing. XLA:CPU's multi-output fusion is
enabled first thing and XLA:CPU's step buffers are kept in glibc's heap
(`funcnn.scale.xla.reuse_cpu_buffers()`, process-wide, so torch gets it too), as the training
scripts do; `--no-mof` and `--no-reuse` leave them off. torch runs with
torch.set_num_threads(2). Compilation and a warm-up call are excluded from every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per section")
    p.add_argument("--steps", type=int, default=5, help="train steps per candidate per round")
    p.add_argument("--sections", default="transformer,lstm,adamw")
    p.add_argument("--study", default="", choices=["", "lstm", "transformer", "flags", "parts"])
    p.add_argument("--opt-width", type=int, default=500, help="AdamW tree: 40 leaves ≈ 40w²")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--no-mof", action="store_true", help="do not enable multi-output fusion")
    p.add_argument(
        "--no-reuse", action="store_true", help="leave glibc's malloc as it comes (mmap > 32 MiB)"
    )
    p.add_argument("--quick", action="store_true", help="few repeats")
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.steps = min(args.repeats, 4), min(args.steps, 2)
    return args


ARGS = parse_args()
import funcnn.scale.xla  # noqa: E402  (no JAX computation yet: the options still take effect)

if not ARGS.no_mof:  # must precede JAX's backend start-up; see funcnn/scale/xla.py
    funcnn.scale.xla.enable_cpu_multi_output_fusion()
if not ARGS.no_reuse:
    funcnn.scale.xla.reuse_cpu_buffers()

# torch's OpenMP threads spin-wait by default; on a shared 2-core box that turns into
# multi-second stalls (measured: LSTM steps of 0.09–2.8 s). Passive waiting is torch's best
# setting here, so the peer gets it (override by setting the variable yourself).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from funcnn import losses, nn, optim, train  # noqa: E402
from funcnn.nn.sequence_models import char_lm  # noqa: E402
from funcnn.scale import xla  # noqa: E402

torch.set_num_threads(ARGS.threads)
LR, B1, B2, EPS, WD = 1e-3, 0.9, 0.999, 1e-8, 0.01
VOCAB = 65
TF = {"dim": 128, "depth": 2, "heads": 4, "T": 128, "batch": 16}
LSTM = {"embed": 64, "hidden": 256, "T": 64, "batch": 32}


# ----------------------------------------------------------------------------- timing


def median(xs) -> float:
    return float(np.median(np.asarray(xs)))


def interleaved_times(fns: dict, repeats: int) -> dict[str, np.ndarray]:
    """Seconds per call of each no-argument callable, timed round-robin after one warm-up
    call each: entry i of every array comes from the same round."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: np.asarray(ts) for name, ts in times.items()}


def summarize(t: dict[str, np.ndarray], base: str, steps: int) -> dict:
    """Median ms/step of each candidate and the median per-round ratio to `base`."""
    return {
        name: {
            "ms": 1e3 * median(ts) / steps,
            "ratio": median(ts / t[base]),
        }
        for name, ts in t.items()
    }


def to_torch(x) -> torch.Tensor:
    return torch.from_numpy(np.array(x, dtype=np.float32))


def jax_runner(step, state, batch, steps, funcnn_api: bool):
    box = [state]

    def go():
        s = box[0]
        for _ in range(steps):
            s = step(s, batch)[0] if funcnn_api else step(s, batch)
        box[0] = jax.block_until_ready(s)

    return go


def torch_runner(step, steps):
    def go():
        for _ in range(steps):
            step()

    return go


def ce_np(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-np.take_along_axis(logp, y[..., None], -1).mean())


# ----------------------------------------------------------------------------- data


def lm_batch(batch: int, steps: int, seed: int):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(batch, steps + 1))
    return ids[:, :-1].astype(np.int32), ids[:, 1:].astype(np.int32)


def jax_optax_step(loss, params):
    """jit(donated) step of `loss(params, x, y)` with optax.adamw."""
    tx = optax.adamw(LR, b1=B1, b2=B2, eps=EPS, weight_decay=WD)

    def step(state, batch):
        params, opt_state = state
        g = jax.grad(loss)(params, *batch)
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    params = jax.tree.map(jnp.array, params)  # own copy: donation must not eat funcnn's
    return jax.jit(step, donate_argnums=0), (params, tx.init(params))


def funcnn_step(model, params, **loss_kw):
    def loss_fn(params, batch, key):
        x, y = batch
        return losses.cross_entropy(model.apply(params, x, **loss_kw), y), {}

    opt = optim.adamw(LR, B1, B2, EPS, weight_decay=WD)
    state = train.init_state(jax.tree.map(jnp.array, params), opt, jax.random.PRNGKey(1))
    return train.make_step(loss_fn, opt), state, loss_fn


def torch_adamw(params):
    try:
        return torch.optim.AdamW(
            params, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD, fused=True
        ), "fused"
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(
            params, lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD, foreach=True
        ), "foreach"


# ----------------------------------------------------------------------------- transformer


def layer_norm_jax(p, x, eps=1e-5):
    mu = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), -1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def hand_transformer_loss(params, x, y, heads=TF["heads"]):
    """GPT forward written out: E + P, [pre-LN causal MHSA, pre-LN GELU MLP] × depth, LN, head."""
    t = x.shape[1]
    h = params["embedding"]["table"][x] + params["positions"]["table"][:t]  # (B, T, D)
    causal = jnp.tril(jnp.ones((t, t), bool))
    for i in range(TF["depth"]):
        p = params[f"block_{i}"]
        a = layer_norm_jax(p["norm_attention"], h)
        att = p["attention"]
        b_, d = a.shape[0], a.shape[2]

        def proj(name, a=a, att=att, b_=b_, d=d):
            z = a @ att[name]["w"] + att[name]["b"]
            return z.reshape(b_, t, heads, d // heads).transpose(0, 2, 1, 3)  # (B, H, T, dh)

        q, k, v = proj("q"), proj("k"), proj("v")
        s = jnp.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(d // heads)
        s = jnp.where(causal, s, -jnp.inf)
        o = jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(s, -1), v)
        o = o.transpose(0, 2, 1, 3).reshape(b_, t, d)
        h = h + o @ att["o"]["w"] + att["o"]["b"]
        m = layer_norm_jax(p["norm_mlp"], h)
        m = jax.nn.gelu(m @ p["mlp"]["dense_0"]["w"] + p["mlp"]["dense_0"]["b"], approximate=False)
        h = h + m @ p["mlp"]["dense_2"]["w"] + p["mlp"]["dense_2"]["b"]
    h = layer_norm_jax(params["norm"], h)
    logits = h @ params["head"]["w"] + params["head"]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


class TorchGPT(torch.nn.Module):
    """The same GPT in PyTorch, weights copied from a funcnn param tree (Linear w = funcnn wᵀ)."""

    def __init__(self, params, heads=TF["heads"], depth=TF["depth"]):
        super().__init__()
        self.heads, self.depth = heads, depth

        def lin(p):
            layer = torch.nn.Linear(*np.shape(p["w"]))
            with torch.no_grad():
                layer.weight.copy_(to_torch(p["w"]).T)
                layer.bias.copy_(to_torch(p["b"]))
            return layer

        def norm(p):
            layer = torch.nn.LayerNorm(np.shape(p["scale"])[0], eps=1e-5)
            with torch.no_grad():
                layer.weight.copy_(to_torch(p["scale"]))
                layer.bias.copy_(to_torch(p["bias"]))
            return layer

        self.embedding = torch.nn.Parameter(to_torch(params["embedding"]["table"]))
        self.positions = torch.nn.Parameter(to_torch(params["positions"]["table"]))
        self.blocks = torch.nn.ModuleList()
        for i in range(depth):
            p = params[f"block_{i}"]
            block = torch.nn.Module()
            block.ln1, block.ln2 = norm(p["norm_attention"]), norm(p["norm_mlp"])
            for name in "qkvo":
                setattr(block, name, lin(p["attention"][name]))
            block.fc1, block.fc2 = lin(p["mlp"]["dense_0"]), lin(p["mlp"]["dense_2"])
            self.blocks.append(block)
        self.ln_f, self.head = norm(params["norm"]), lin(params["head"])

    def forward(self, x):
        b, t = x.shape
        h = self.embedding[x] + self.positions[:t]  # (B, T, D)
        for blk in self.blocks:
            a = blk.ln1(h)
            d = a.shape[-1]

            def split(z, b=b, t=t, d=d):
                return z.view(b, t, self.heads, d // self.heads).transpose(1, 2)

            o = F.scaled_dot_product_attention(
                split(blk.q(a)), split(blk.k(a)), split(blk.v(a)), is_causal=True
            )
            h = h + blk.o(o.transpose(1, 2).reshape(b, t, d))
            h = h + blk.fc2(F.gelu(blk.fc1(blk.ln2(h))))
        return self.head(self.ln_f(h))


def torch_train_step(model, x, y):
    opt, kind = torch_adamw(list(model.parameters()))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    return step, kind


def transformer_setup(implementation="auto"):
    model = nn.transformer_lm(
        VOCAB,
        TF["dim"],
        num_heads=TF["heads"],
        depth=TF["depth"],
        max_len=TF["T"],
        implementation=implementation,
    )
    params, _ = model.init(jax.random.PRNGKey(0), (TF["batch"], TF["T"]))
    x, y = lm_batch(TF["batch"], TF["T"], 0)
    return model, params, (jnp.asarray(x), jnp.asarray(y)), (x, y)


def transformer_outer_piece(params):
    """What surrounds the blocks — embedding + positions + final LN + head + cross-entropy —
    as a jitted gradient of its own, and its params (table, positions, norm, head); the
    `--study parts` and `transformer_hlo.py` piece."""
    norm = nn.layer_norm()

    def outer(ps, x, y):
        e, pos, n, head = ps
        h = jnp.take(e, x, axis=0) + pos[: x.shape[1]]
        return losses.cross_entropy(norm.apply(n, h) @ head["w"] + head["b"], y)

    ps = (
        params["embedding"]["table"],
        params["positions"]["table"],
        params["norm"],
        params["head"],
    )
    return jax.jit(jax.grad(outer)), ps


def check_losses(name, values: dict[str, float], rtol=1e-4) -> dict[str, float]:
    ref = values["funcnn"]
    for v in values.values():
        if not abs(v - ref) <= rtol * abs(ref):
            raise SystemExit(f"{name}: step-0 losses disagree: {values}")
    return values


def bench_transformer(args) -> dict:
    model, params, batch, (xn, yn) = transformer_setup()
    f_step, f_state, f_loss = funcnn_step(model, params)
    h_step, h_state = jax_optax_step(hand_transformer_loss, params)
    tm = TorchGPT(params)
    xt, yt = torch.from_numpy(xn.astype(np.int64)), torch.from_numpy(yn.astype(np.int64))
    t_step, kind = torch_train_step(tm, xt, yt)
    with torch.no_grad():
        t_loss = float(F.cross_entropy(tm(xt).reshape(-1, VOCAB), yt.reshape(-1)))
    l0 = check_losses(
        "transformer",
        {
            "funcnn": float(f_loss(params, batch, None)[0]),
            "jax+optax": float(hand_transformer_loss(params, *batch)),
            "torch": t_loss,
        },
    )
    fns = {
        "torch": torch_runner(t_step, args.steps),
        "funcnn": jax_runner(f_step, f_state, batch, args.steps, True),
        "jax+optax": jax_runner(h_step, h_state, batch, args.steps, False),
    }
    out = summarize(interleaved_times(fns, args.repeats), "torch", args.steps)
    return {"loss0": l0, "torch_optimizer": kind, "times": out}


# ----------------------------------------------------------------------------- LSTM


def hand_lstm_loss(params, x, y, unroll=1):
    """Embedding → LSTM (x·W_x for all steps first, h·W_h in a lax.scan) → dense, written out."""
    e = params["embedding_0"]["table"][x]  # (B, T, E)
    p = params["lstm_1"]
    xp = jnp.swapaxes(e @ p["w_x"] + p["b"], 0, 1)  # (T, B, 4H)
    hidden = p["w_h"].shape[0]
    h0 = jnp.zeros((x.shape[0], hidden))

    def cell(carry, xt):
        h, c = carry
        z = xt + h @ p["w_h"]
        i, f, g, o = jnp.split(z, 4, -1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    _, hs = jax.lax.scan(cell, (h0, h0), xp, unroll=unroll)  # (T, B, H)
    logits = jnp.swapaxes(hs, 0, 1) @ params["head_2"]["w"] + params["head_2"]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


class TorchLSTMLM(torch.nn.Module):
    def __init__(self, params):
        super().__init__()
        p = params["lstm_1"]
        e, h4 = np.shape(p["w_x"])
        self.embedding = torch.nn.Embedding(VOCAB, e)
        self.lstm = torch.nn.LSTM(e, h4 // 4, batch_first=True)
        self.head = torch.nn.Linear(h4 // 4, VOCAB)
        with torch.no_grad():
            self.embedding.weight.copy_(to_torch(params["embedding_0"]["table"]))
            self.lstm.weight_ih_l0.copy_(to_torch(p["w_x"]).T)  # gate order i, f, g, o
            self.lstm.weight_hh_l0.copy_(to_torch(p["w_h"]).T)
            self.lstm.bias_ih_l0.copy_(to_torch(p["b"]))
            self.lstm.bias_hh_l0.zero_()
            self.head.weight.copy_(to_torch(params["head_2"]["w"]).T)
            self.head.bias.copy_(to_torch(params["head_2"]["b"]))

    def forward(self, x):
        return self.head(self.lstm(self.embedding(x))[0])


def lstm_setup():
    model = char_lm("lstm", VOCAB, dim=LSTM["embed"], hidden=LSTM["hidden"])
    params, _ = model.init(jax.random.PRNGKey(0), (LSTM["batch"], LSTM["T"]))
    x, y = lm_batch(LSTM["batch"], LSTM["T"], 1)
    return model, params, (jnp.asarray(x), jnp.asarray(y)), (x, y)


def bench_lstm(args) -> dict:
    model, params, batch, (xn, yn) = lstm_setup()
    f_step, f_state, f_loss = funcnn_step(model, params)
    h_step, h_state = jax_optax_step(hand_lstm_loss, params)
    tm = TorchLSTMLM(params)
    xt, yt = torch.from_numpy(xn.astype(np.int64)), torch.from_numpy(yn.astype(np.int64))
    t_step, kind = torch_train_step(tm, xt, yt)
    with torch.no_grad():
        t_loss = float(F.cross_entropy(tm(xt).reshape(-1, VOCAB), yt.reshape(-1)))
    l0 = check_losses(
        "lstm",
        {
            "funcnn": float(f_loss(params, batch, None)[0]),
            "jax+optax": float(hand_lstm_loss(params, *batch)),
            "torch": t_loss,
        },
    )
    fns = {
        "torch": torch_runner(t_step, args.steps),
        "funcnn": jax_runner(f_step, f_state, batch, args.steps, True),
        "jax+optax": jax_runner(h_step, h_state, batch, args.steps, False),
    }
    out = summarize(interleaved_times(fns, args.repeats), "torch", args.steps)
    return {"loss0": l0, "torch_optimizer": kind, "times": out}


# ----------------------------------------------------------------------------- AdamW


def opt_shapes(width: int) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    for _ in range(10):
        shapes += [(width, 2 * width), (2 * width,), (2 * width, width), (width,)]
    return shapes


def bench_adamw(args) -> dict:
    rng = np.random.default_rng(0)
    shapes = opt_shapes(args.opt_width)
    p_np = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    g_np = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    n = sum(p.size for p in p_np)
    params = {f"l{i:02d}": jnp.asarray(p) for i, p in enumerate(p_np)}
    grads = {f"l{i:02d}": jnp.asarray(g) for i, g in enumerate(g_np)}

    opt = optim.adamw(LR, B1, B2, EPS, weight_decay=WD)

    def f_update(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    tx = optax.adamw(LR, b1=B1, b2=B2, eps=EPS, weight_decay=WD)

    def o_update(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    f_jit = jax.jit(f_update, donate_argnums=(0, 1))
    o_jit = jax.jit(o_update, donate_argnums=(0, 1))
    triad = jax.jit(lambda b, c, s: b + s * c, donate_argnums=0)
    f_params = jax.tree.map(jnp.array, params)
    o_params = jax.tree.map(jnp.array, params)
    boxes = {
        "funcnn": [(f_params, opt.init(f_params))],
        "optax": [(o_params, tx.init(o_params))],
        "triad": [jnp.zeros((n,))],
    }
    c, s = jnp.ones((n,)), jnp.float32(0.5)

    tp = [torch.from_numpy(p.copy()).requires_grad_() for p in p_np]
    for p, g in zip(tp, g_np, strict=True):
        p.grad = torch.from_numpy(g.copy())
    t_opt, kind = torch_adamw(tp)
    tb, tc = torch.zeros(n), torch.ones(n)

    def run_f():
        boxes["funcnn"][0] = jax.block_until_ready(f_jit(*boxes["funcnn"][0], grads))

    def run_o():
        boxes["optax"][0] = jax.block_until_ready(o_jit(*boxes["optax"][0], grads))

    def run_triad():
        boxes["triad"][0] = jax.block_until_ready(triad(boxes["triad"][0], c, s))

    def run_torch_triad():
        tb.add_(tc, alpha=0.5)

    fns = {
        "triad": run_triad,
        "torch": t_opt.step,
        "funcnn": run_f,
        "optax": run_o,
        "torch triad": run_torch_triad,
    }
    t = interleaved_times(fns, args.repeats)
    out = {}
    for name, ts in t.items():
        nbytes = (12 if "triad" in name else 28) * n
        out[name] = {
            "ms": 1e3 * median(ts),
            "gbps": nbytes / median(ts) / 1e9,
            # per round: (bytes/t) / (12 n / t_triad)
            "of_triad": median((nbytes / (12 * n)) * t["triad"] / ts),
            "ratio": median(ts / t["torch"]),  # time / torch time
        }
    # sanity: one step of each agrees with torch's first step on the first leaf
    return {"n_params": n, "leaves": len(shapes), "torch_optimizer": kind, "times": out}


# ----------------------------------------------------------------------------- main


def table(r: dict) -> str:
    lines = []
    for sec in ("transformer", "lstm"):
        if sec not in r:
            continue
        s = r[sec]
        l0 = ", ".join(f"{k} {v:.5f}" for k, v in s["loss0"].items())
        lines.append(f"\n{sec} train step  (step-0 loss: {l0}; torch AdamW {s['torch_optimizer']})")
        lines.append(f"  {'':12s} {'ms/step':>9s} {'÷ torch':>8s}")
        for name, v in s["times"].items():
            lines.append(f"  {name:12s} {v['ms']:9.2f} {v['ratio']:8.3f}")
    if "adamw" in r:
        s = r["adamw"]
        lines.append(
            f"\nAdamW update, {s['n_params'] / 1e6:.1f}M f32 params in {s['leaves']} leaves "
            f"(torch AdamW {s['torch_optimizer']})"
        )
        lines.append(f"  {'':12s} {'ms':>8s} {'GB/s':>7s} {'% triad':>8s} {'÷ torch':>8s}")
        for name, v in s["times"].items():
            lines.append(
                f"  {name:12s} {v['ms']:8.2f} {v['gbps']:7.1f} {100 * v['of_triad']:7.0f}% "
                f"{v['ratio']:8.3f}"
            )
    return "\n".join(lines)


def main(args) -> None:
    if args.study:
        import vs_torch_study  # benchmarks/vs_torch_study.py

        vs_torch_study.run(args.study, args, sys.modules[__name__])
        return
    load = os.getloadavg()
    print(
        f"jax {jax.__version__}, torch {torch.__version__} (threads {torch.get_num_threads()}),"
        f" multi-output fusion {xla.fuses_sibling_loops()}, load {load[0]:.2f}"
    )
    results: dict = {"load_start": load[0]}
    sections = {"transformer": bench_transformer, "lstm": bench_lstm, "adamw": bench_adamw}
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        results[name] = sections[name](args)
        print(f"[{name}: {time.perf_counter() - t0:.0f} s]", flush=True)
    results["load_end"] = os.getloadavg()[0]
    print(table(results))
    print(f"\nload average {results['load_start']:.2f} at start, {results['load_end']:.2f} at end")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(ARGS)
