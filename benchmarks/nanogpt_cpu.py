"""nanoGPT's CPU "baby GPT" recipe trained by funcnn and by PyTorch, side by side in one run.

    python benchmarks/nanogpt_cpu.py                          # the recipe: 2000 steps (~3 min
                                                              # per 1000 steps on 2 idle cores)
    python benchmarks/nanogpt_cpu.py --steps 30 --eval-every 10 --eval-iters 2   # smoke run
    python benchmarks/nanogpt_cpu.py --text input.txt        # e.g. nanoGPT's shakespeare_char
    python benchmarks/nanogpt_cpu.py --script-settings       # as scripts/train_lm.py runs

The recipe is nanoGPT's README command for a CPU (config/train_shakespeare_char.py with
`--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64
--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
--dropout=0.0`): 4 pre-LN blocks, 4 heads, d = 128, context 64, batch 12, no biases
(bias=False), tied head, exact GELU; AdamW β = (0.9, 0.99), ε = 1e-8, weight decay 0.1 on
the ≥ 2-D weights only (matmuls and both embedding tables); gradient clipping at global norm
1.0; learning rate 0 → 1e-3 linearly over 100 steps, then a half cosine down to 1e-4 at the
last step. The corpus is the library's own (stdlib module docstrings, 10 % held out), unless
--text names another file.

The two trainers:
  funcnn   models.decoder(models.nanogpt_config(...)) + optim.chain(clip_by_global_norm,
           adamw(warmup_cosine_decay, mask=params.decay_mask)) + train.make_step — the
           public API only.
  torch    a nanoGPT-style module written below (wte/wpe, fused c_attn, c_proj, c_fc,
           F.scaled_dot_product_attention(is_causal=True), exact GELU, tied lm_head),
           torch.optim.AdamW(fused=True) with nanoGPT's two param groups, clip_grad_norm_,
           and nanoGPT's own `get_lr` (transcribed) setting each group's lr every step.

Both start from the SAME weights (funcnn's init, loaded into the torch module through a name
map with strict=True) and see the SAME batches (one NumPy sampler with a fixed seed, drawn
once per step and fed to both; evaluation batches come from a second sampler, so the
training batches do not depend on --eval-every). The steps are interleaved — one funcnn
step, one torch step, the order alternating — so both see the same machine load; each step
is timed from the NumPy batch to the loss as a Python float (nanoGPT's --log_interval=1 does
`loss.item()` every step too).

Reported: the step-0 losses and their difference; the training and validation loss curves
(a PNG with both, and the numbers as JSON, under --out); the final validation loss; the
median steady-state time per step (the first --untimed-steps steps, which hold funcnn's
compile, are left out) and the median of the paired per-step ratios funcnn/torch; the time
to reach a fixed validation loss — torch's at the last evaluation at or before 75 % of the
steps — as the sum of each trainer's step times until its validation curve (interpolated
linearly between evaluations) reaches it, compile included and, second, with each first
step counted as a steady one; and the ratios. The load average is printed at the start and
the end.

Threads: the process is pinned to --threads cores (default: all it may run on) before JAX
and torch start; XLA:CPU sizes its intra-op (Eigen) pool to the schedulable cores (the
script counts that pool's threads and prints them), torch gets set_num_threads(threads) and
OMP_WAIT_POLICY=PASSIVE (see vs_torch.py for why), so both run on the same cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000, help="max_iters = lr_decay_iters")
    p.add_argument("--eval-every", type=int, default=100, help="steps between validations")
    p.add_argument("--eval-iters", type=int, default=20, help="validation batches per eval")
    p.add_argument("--untimed-steps", type=int, default=10, help="first steps left out of ms/step")
    p.add_argument("--threads", type=int, default=0, help="cores for both (0: all allowed)")
    p.add_argument("--text", type=Path, help="UTF-8 corpus (default: stdlib docstrings)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "nanogpt_cpu")
    p.add_argument(
        "--script-settings",
        action="store_true",
        help="the process-wide settings scripts/train_lm.py makes: XLA:CPU's multi-output "
        "fusion and XLA's step buffers kept in glibc's heap (torch shares the heap setting)",
    )
    args = p.parse_args(argv)
    for name in ("steps", "eval_every", "eval_iters"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(args, name)}")
    return args


ARGS = parse_args()
# Pin before JAX or torch start their thread pools: both then size themselves to these cores.
ALLOWED = sorted(os.sched_getaffinity(0))
THREADS = ARGS.threads or len(ALLOWED)
if not 1 <= THREADS <= len(ALLOWED):
    raise SystemExit(f"--threads {ARGS.threads}: this process may use {len(ALLOWED)} cores")
os.sched_setaffinity(0, ALLOWED[:THREADS])

import funcnn  # noqa: E402

if ARGS.script_settings:  # before JAX's first computation, as scripts/train_lm.py does
    funcnn.scale.xla.enable_cpu_multi_output_fusion()
    REUSED_BUFFERS = funcnn.scale.xla.reuse_cpu_buffers()
else:
    REUSED_BUFFERS = False

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see vs_torch.py

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from funcnn import losses, models, optim, train  # noqa: E402
from funcnn.datasets import text as text_data  # noqa: E402
from funcnn.scale import xla  # noqa: E402

torch.set_num_threads(THREADS)
torch.set_num_interop_threads(THREADS)

# ----------------------------------------------------------------------------- the recipe

N_LAYER, N_HEAD, N_EMBD, BLOCK_SIZE, BATCH_SIZE = 4, 4, 128, 64, 12
LEARNING_RATE, MIN_LR, WARMUP_ITERS = 1e-3, 1e-4, 100
BETA1, BETA2, EPS, WEIGHT_DECAY, GRAD_CLIP = 0.9, 0.99, 1e-8, 0.1, 1.0
VAL_FRACTION = 0.1


def nanogpt_get_lr(it: int, warmup_iters: int, lr_decay_iters: int) -> float:
    """nanoGPT's train.py `get_lr`, transcribed: linear warmup, cosine decay, then min_lr."""
    if it < warmup_iters:
        return LEARNING_RATE * it / warmup_iters
    if it > lr_decay_iters:
        return MIN_LR
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return MIN_LR + coeff * (LEARNING_RATE - MIN_LR)


# ----------------------------------------------------------------------------- data


class BatchSampler:
    """nanoGPT's get_batch in NumPy: B windows at uniform offsets o ~ U{0 … N−T−1}.

    x[b] = data[o_b : o_b+T], y[b] = data[o_b+1 : o_b+T+1], both int32 (B, T)."""

    def __init__(self, data: np.ndarray, seed: int):
        self.data, self.rng = data, np.random.default_rng(seed)

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        ix = self.rng.integers(0, len(self.data) - BLOCK_SIZE, BATCH_SIZE)
        x = np.stack([self.data[i : i + BLOCK_SIZE] for i in ix])
        y = np.stack([self.data[i + 1 : i + 1 + BLOCK_SIZE] for i in ix])
        return x, y


# ----------------------------------------------------------------------------- funcnn


def funcnn_trainer(vocab: int, steps: int, warmup: int):
    """(params at init, jitted step, its TrainState, jitted eval loss, schedule): public API."""
    config = models.nanogpt_config(vocab, N_EMBD, N_LAYER, N_HEAD, BLOCK_SIZE, dropout=0.0)
    model = models.decoder(config)
    params, _ = model.init(jax.random.PRNGKey(ARGS.seed), (BATCH_SIZE, BLOCK_SIZE))
    schedule = optim.warmup_cosine_decay(0.0, LEARNING_RATE, warmup, steps, end_value=MIN_LR)
    optimizer = optim.chain(
        optim.clip_by_global_norm(GRAD_CLIP, eps=1e-6),  # eps: torch's clip_grad_norm_ form
        optim.adamw(
            schedule, BETA1, BETA2, EPS, weight_decay=WEIGHT_DECAY, mask=funcnn.params.decay_mask
        ),
    )

    def loss_fn(params, batch, key):
        x, y = batch
        logits = model.apply(params, x, key=key, train=True)  # (B, T, V)
        return losses.cross_entropy(logits, y), {}

    # own copy of the init: the step donates its state, and the torch module is built
    # from `params` afterwards
    state = train.init_state(jax.tree.map(jnp.array, params), optimizer, jax.random.PRNGKey(1))
    step = train.make_step(loss_fn, optimizer)
    eval_loss = jax.jit(lambda p, x, y: losses.cross_entropy(model.apply(p, x), y))
    return params, step, state, eval_loss, schedule


# ----------------------------------------------------------------------------- torch


class CausalSelfAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = torch.nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
        self.c_proj = torch.nn.Linear(N_EMBD, N_EMBD, bias=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(N_EMBD, dim=2)
        q, k, v = (z.view(b, t, N_HEAD, c // N_HEAD).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = torch.nn.Linear(N_EMBD, 4 * N_EMBD, bias=False)
        self.c_proj = torch.nn.Linear(4 * N_EMBD, N_EMBD, bias=False)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))  # exact (erf) GELU, nanoGPT's nn.GELU()


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(N_EMBD, bias=False)
        self.attn = CausalSelfAttention()
        self.ln_2 = torch.nn.LayerNorm(N_EMBD, bias=False)
        self.mlp = MLP()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(torch.nn.Module):
    """nanoGPT's GPT with bias=False and dropout=0: wte + wpe, pre-LN blocks, ln_f, tied head."""

    def __init__(self, vocab: int):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, N_EMBD)
        self.wpe = torch.nn.Embedding(BLOCK_SIZE, N_EMBD)
        self.h = torch.nn.ModuleList([Block() for _ in range(N_LAYER)])
        self.ln_f = torch.nn.LayerNorm(N_EMBD, bias=False)
        self.lm_head = torch.nn.Linear(N_EMBD, vocab, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying, as nanoGPT

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))  # (B, T, C)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def torch_state_dict(params) -> dict[str, torch.Tensor]:
    """funcnn's decoder params under nanoGPT's names (a Linear stores wᵀ; c_attn = [q|k|v])."""

    def t(a, transpose=False):
        a = np.asarray(a, np.float32)
        return torch.tensor(a.T if transpose else a)  # a contiguous, writable copy

    sd = {
        "wte.weight": t(params["embedding"]["table"]),
        "lm_head.weight": t(params["embedding"]["table"]),  # the same tied tensor
        "wpe.weight": t(params["positions"]["table"]),
        "ln_f.weight": t(params["norm"]["scale"]),
    }
    for i in range(N_LAYER):
        p, h = params[f"block_{i}"], f"h.{i}."
        att = p["attention"]
        qkv = np.concatenate([att[n]["w"] for n in "qkv"], axis=1)  # (C, 3C)
        sd[h + "ln_1.weight"] = t(p["norm_attention"]["scale"])
        sd[h + "attn.c_attn.weight"] = t(qkv, transpose=True)
        sd[h + "attn.c_proj.weight"] = t(att["o"]["w"], transpose=True)
        sd[h + "ln_2.weight"] = t(p["norm_mlp"]["scale"])
        sd[h + "mlp.c_fc.weight"] = t(p["mlp"]["dense_0"]["w"], transpose=True)
        sd[h + "mlp.c_proj.weight"] = t(p["mlp"]["dense_2"]["w"], transpose=True)
    return sd


def torch_trainer(params, vocab: int):
    """(model, optimizer, which AdamW) from funcnn's init, with nanoGPT's param groups."""
    model = GPT(vocab)
    model.load_state_dict(torch_state_dict(params), strict=True)
    named = dict(model.named_parameters())  # the tied table once, as in nanoGPT
    groups = [
        {"params": [p for p in named.values() if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in named.values() if p.dim() < 2], "weight_decay": 0.0},
    ]
    kw = {"lr": LEARNING_RATE, "betas": (BETA1, BETA2), "eps": EPS}
    try:  # the peer's fastest CPU AdamW (nanoGPT itself uses fused only on CUDA)
        return model, torch.optim.AdamW(groups, fused=True, **kw), "fused"
    except (RuntimeError, ValueError):
        return model, torch.optim.AdamW(groups, foreach=True, **kw), "foreach"


# ----------------------------------------------------------------------------- the run


def xla_intra_op_threads() -> int | str:
    """Threads of XLA:CPU's Eigen intra-op pool, counted by name (Linux /proc)."""
    try:
        tasks = Path("/proc/self/task").iterdir()
        return sum("XLAEigen" in (t / "comm").read_text() for t in tasks)
    except OSError:
        return "unknown"


def load_corpus() -> tuple[np.ndarray, np.ndarray, int, str]:
    corpus = text_data.load_text(ARGS.text) if ARGS.text else text_data.stdlib_docstrings()
    tokenizer = text_data.CharTokenizer.from_text(corpus)
    train_ids, val_ids = text_data.train_val_split(tokenizer.encode(corpus), VAL_FRACTION)
    source = str(ARGS.text) if ARGS.text else "stdlib module docstrings"
    return train_ids, val_ids, tokenizer.vocab_size, f"{source}, {len(corpus):,} characters"


def time_to_target(
    evals: list[int], curve: list[float], seconds: list[float], target: float
) -> tuple[float, float] | None:
    """(step, seconds) at which the validation curve first reaches `target`, or None.

    Time at evaluation step s is the sum of the first s step times. Between the last
    evaluation above the target and the first at or below it, step and time are interpolated
    linearly in the loss — else a curve equal to the target's own within noise would be
    charged a whole evaluation interval whenever it lands a hair above it."""
    clock = np.concatenate([[0.0], np.cumsum(seconds)])
    for k, (step, loss) in enumerate(zip(evals, curve, strict=True)):
        if loss <= target:
            if k == 0:
                return 0.0, 0.0
            s0, v0 = evals[k - 1], curve[k - 1]
            f = (v0 - target) / (v0 - loss)  # in (0, 1]: v0 > target ≥ loss
            return s0 + f * (step - s0), clock[s0] + f * (clock[step] - clock[s0])
    return None


def run() -> dict:
    """Build both trainers, check step 0, train them interleaved; the raw records."""
    steps = ARGS.steps
    warmup = WARMUP_ITERS if steps > WARMUP_ITERS else steps // 10  # smoke runs: shorter
    train_ids, val_ids, vocab, source = load_corpus()
    load_start = os.getloadavg()
    fusion = xla.fuses_sibling_loops()  # a probe compile: the CPU client now exists
    environment = {
        "jax": jax.__version__,
        "torch": torch.__version__,
        "cores": ALLOWED[:THREADS],
        "xla_intra_op_threads": xla_intra_op_threads(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "multi_output_fusion": bool(fusion),
        "reuse_cpu_buffers": REUSED_BUFFERS,
        "load_start": list(load_start),
    }
    print(
        f"jax {jax.__version__} (XLA:CPU, multi-output fusion {fusion}, buffers kept in the "
        f"heap {REUSED_BUFFERS}), torch "
        f"{torch.__version__}\nthreads: cores {ALLOWED[:THREADS]} for both; XLA:CPU intra-op "
        f"(Eigen) pool {environment['xla_intra_op_threads']} threads; torch intra-op "
        f"{torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}\nload average "
        f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} at start\n"
        f"corpus: {source}, vocab {vocab}"
    )

    params, f_step, f_state, f_eval, schedule = funcnn_trainer(vocab, steps, warmup)
    model, t_opt, environment["torch_adamw"] = torch_trainer(params, vocab)
    decayed = t_opt.param_groups[0]["params"]
    print(
        f"model: funcnn {funcnn.params.count_params(params):,} params, torch "
        f"{sum(p.numel() for p in model.parameters()):,}; funcnn "
        f"{funcnn.params.describe_mask(params, funcnn.params.decay_mask).split(':')[0]}, "
        f"torch decays {len(decayed)} tensors ({sum(p.numel() for p in decayed):,} params; "
        f"q, k, v are one c_attn); torch AdamW {environment['torch_adamw']}"
    )
    torch_lrs = [nanogpt_get_lr(it, warmup, steps) for it in range(steps)]
    funcnn_lrs = np.asarray(jax.vmap(schedule)(jnp.arange(steps)), np.float64)
    lr_gap = float(np.max(np.abs(funcnn_lrs - np.asarray(torch_lrs))))
    print(f"lr: warmup {warmup}, decay to {MIN_LR:g} at {steps}; max |Δlr| = {lr_gap:.1e}")

    # -------------------------------------------------------------- the two trainers' calls
    def funcnn_loss(x, y) -> float:
        return float(f_eval(f_state.params, jnp.asarray(x), jnp.asarray(y)))

    @torch.no_grad()
    def torch_loss(x, y) -> float:
        model.eval()
        loss = model(torch.from_numpy(x).long(), torch.from_numpy(y).long())[1].item()
        model.train()
        return loss

    def funcnn_train_step(x, y, it: int) -> float:
        del it  # funcnn's schedule reads the step count kept in the optimizer state
        nonlocal f_state
        f_state, metrics = f_step(f_state, (jnp.asarray(x), jnp.asarray(y)))
        return float(metrics["loss"])

    def torch_train_step(x, y, it: int) -> float:
        for group in t_opt.param_groups:  # nanoGPT sets the lr by hand every iteration
            group["lr"] = torch_lrs[it]
        _, loss = model(torch.from_numpy(x).long(), torch.from_numpy(y).long())
        t_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        t_opt.step()
        return loss.item()

    # -------------------------------------------------------------- step 0: same function?
    batches, eval_batches = BatchSampler(train_ids, ARGS.seed), BatchSampler(val_ids, ARGS.seed + 1)
    x0, y0 = batches()
    loss0 = {"funcnn": funcnn_loss(x0, y0), "torch": torch_loss(x0, y0)}
    print(
        f"step-0 loss (first batch): funcnn {loss0['funcnn']:.7f}, torch {loss0['torch']:.7f}, "
        f"|Δ| = {abs(loss0['funcnn'] - loss0['torch']):.1e} (ln V = {math.log(vocab):.4f})"
    )
    if abs(loss0["funcnn"] - loss0["torch"]) > 1e-4 * abs(loss0["torch"]):
        raise SystemExit("step-0 losses disagree: the two models are not the same function")

    # -------------------------------------------------------------- the interleaved loop
    names = ("funcnn", "torch")
    train_loss: dict[str, list[float]] = {n: [] for n in names}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    evals: list[int] = []
    val: dict[str, list[float]] = {n: [] for n in names}

    def evaluate(it: int) -> None:
        held_out = [eval_batches() for _ in range(ARGS.eval_iters)]  # the same for both
        evals.append(it)
        for name, loss_of in (("funcnn", funcnn_loss), ("torch", torch_loss)):
            val[name].append(float(np.mean([loss_of(*batch) for batch in held_out])))
        line = f"step {it:5d}: val funcnn {val['funcnn'][-1]:.4f} torch {val['torch'][-1]:.4f}"
        if it:
            ms = {n: 1e3 * np.median(seconds[n][-ARGS.eval_every :]) for n in names}
            line += (
                f" | train funcnn {train_loss['funcnn'][-1]:.4f} torch "
                f"{train_loss['torch'][-1]:.4f} | ms/step funcnn {ms['funcnn']:.1f} torch "
                f"{ms['torch']:.1f}"
            )
        print(line, flush=True)

    trainers = (("funcnn", funcnn_train_step), ("torch", torch_train_step))
    for it in range(steps + 1):
        if it % ARGS.eval_every == 0 or it == steps:
            evaluate(it)
        if it == steps:
            break
        x, y = (x0, y0) if it == 0 else batches()
        for name, train_step in trainers if it % 2 == 0 else trainers[::-1]:  # alternate
            t0 = time.perf_counter()
            train_loss[name].append(train_step(x, y, it))
            seconds[name].append(time.perf_counter() - t0)
    environment["load_end"] = list(os.getloadavg())

    return {
        "recipe": {
            "n_layer": N_LAYER,
            "n_head": N_HEAD,
            "n_embd": N_EMBD,
            "block_size": BLOCK_SIZE,
            "batch_size": BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
            "min_lr": MIN_LR,
            "warmup_iters": warmup,
            "lr_decay_iters": steps,
            "betas": [BETA1, BETA2],
            "eps": EPS,
            "weight_decay": WEIGHT_DECAY,
            "grad_clip": GRAD_CLIP,
            "steps": steps,
            "eval_every": ARGS.eval_every,
            "eval_iters": ARGS.eval_iters,
            "seed": ARGS.seed,
        },
        "environment": environment,
        "corpus": source,
        "vocab": vocab,
        "params": funcnn.params.count_params(params),
        "max_lr_difference": lr_gap,
        "loss0": loss0,
        "train_loss": train_loss,
        "eval_steps": evals,
        "val_loss": val,
        "step_seconds": seconds,
    }


def summarize(r: dict) -> dict:
    """The figures: agreement of the curves, time per step and time to the target loss."""
    steps, evals, val, seconds = (
        r["recipe"]["steps"],
        r["eval_steps"],
        r["val_loss"],
        r["step_seconds"],
    )
    names = ("funcnn", "torch")
    skip = min(ARGS.untimed_steps, steps - 1)
    steady = {n: np.asarray(seconds[n][skip:]) for n in names}
    paired = steady["funcnn"] / steady["torch"]
    early = min(10, steps)

    target_step = max(s for s in evals if s <= 0.75 * steps)
    target = val["torch"][evals.index(target_step)]
    reach: dict[str, dict] = {}
    for n in names:
        # second reading: the first step's one-off cost (funcnn's compile) replaced by a
        # steady step
        no_compile = [float(np.median(steady[n])), *seconds[n][1:]]
        hit, hit_steady = (
            time_to_target(evals, val[n], ts, target) for ts in (seconds[n], no_compile)
        )
        reach[n] = {
            "step": None if hit is None else hit[0],
            "seconds": None if hit is None else hit[1],
            "seconds_without_first_step": None if hit_steady is None else hit_steady[1],
        }

    def time_ratio(key: str) -> float | None:
        f_s, t_s = reach["funcnn"][key], reach["torch"][key]
        return None if f_s is None or not t_s else f_s / t_s

    def max_gap(a: list[float], b: list[float]) -> float:
        return float(np.max(np.abs(np.subtract(a, b))))

    return {
        "loss0_abs_difference": abs(r["loss0"]["funcnn"] - r["loss0"]["torch"]),
        "train_loss_max_abs_difference_first_10": max_gap(
            r["train_loss"]["funcnn"][:early], r["train_loss"]["torch"][:early]
        ),
        "val_loss_max_abs_difference": max_gap(val["funcnn"], val["torch"]),
        "final_val_loss": {n: val[n][-1] for n in names},
        "first_step_seconds": {n: seconds[n][0] for n in names},
        "ms_per_step": {n: 1e3 * float(np.median(steady[n])) for n in names},
        "ms_per_step_ratio": float(np.median(paired)),
        "timed_steps": int(paired.size),
        "target": {
            "val_loss": target,
            "torch_eval_step": target_step,
            "reached": reach,
            "time_ratio": time_ratio("seconds"),
            "time_ratio_without_first_step": time_ratio("seconds_without_first_step"),
        },
    }


def report(r: dict) -> None:
    ms, tg, env = r["ms_per_step"], r["target"], r["environment"]
    fin, rch = r["final_val_loss"], tg["reached"]

    def reached(n: str) -> str:
        if rch[n]["step"] is None:
            return "not reached"
        return f"{rch[n]['seconds']:.1f} s (step {rch[n]['step']:.1f})"

    def ratio(key: str) -> str:
        return "n/a" if tg[key] is None else f"{tg[key]:.3f}"

    print(
        f"\nnanoGPT CPU recipe, {r['recipe']['steps']} steps, {r['params']:,} params, "
        f"{r['corpus']}\n"
        f"  step-0 loss      funcnn {r['loss0']['funcnn']:.7f}  torch "
        f"{r['loss0']['torch']:.7f}  |Δ| {r['loss0_abs_difference']:.1e}\n"
        f"  train loss |Δ|   max over the first 10 steps "
        f"{r['train_loss_max_abs_difference_first_10']:.1e}\n"
        f"  val loss |Δ|     max over the {len(r['eval_steps'])} evaluations "
        f"{r['val_loss_max_abs_difference']:.1e}\n"
        f"  final val loss   funcnn {fin['funcnn']:.4f}  torch {fin['torch']:.4f}  "
        f"Δ {fin['funcnn'] - fin['torch']:+.1e}\n"
        f"  ms/step          funcnn {ms['funcnn']:.2f}  torch {ms['torch']:.2f}  "
        f"funcnn/torch {r['ms_per_step_ratio']:.3f} (median of {r['timed_steps']} paired "
        f"steps; first step: funcnn {r['first_step_seconds']['funcnn']:.2f} s incl. compile, "
        f"torch {r['first_step_seconds']['torch']:.2f} s)\n"
        f"  to val {tg['val_loss']:.4f}   (torch's at step {tg['torch_eval_step']}) funcnn "
        f"{reached('funcnn')}, torch {reached('torch')}, funcnn/torch {ratio('time_ratio')} "
        f"({ratio('time_ratio_without_first_step')} with each first step counted as a steady "
        "one)\n"
        f"  load average {env['load_start'][0]:.2f} at start, {env['load_end'][0]:.2f} at end"
    )


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_train, ax_val, ax_gap) = plt.subplots(1, 3, figsize=(15, 4))
    for name, colour in (("funcnn", "C0"), ("torch", "C1")):
        ax_train.plot(r["train_loss"][name], colour, lw=0.7, alpha=0.8, label=name)
        ax_val.plot(r["eval_steps"], r["val_loss"][name], colour, marker="o", ms=3, label=name)
    ax_val.axhline(r["target"]["val_loss"], color="grey", ls="--", lw=0.8, label="target")
    # the curves lie on top of each other: the third panel shows how far apart they are
    train_gap = np.subtract(r["train_loss"]["funcnn"], r["train_loss"]["torch"])
    val_gap = np.subtract(r["val_loss"]["funcnn"], r["val_loss"]["torch"])
    ax_gap.plot(train_gap, "C2", lw=0.7, label="training (per batch)")
    ax_gap.plot(r["eval_steps"], val_gap, "C3", marker="o", ms=3, label="validation")
    ax_gap.axhline(0.0, color="grey", lw=0.5)
    ax_train.set(xlabel="step", ylabel="loss (nats/char)", title="training loss (per batch)")
    ax_val.set(xlabel="step", ylabel="loss (nats/char)", title="validation loss")
    ax_gap.set(xlabel="step", ylabel="funcnn − torch (nats/char)", title="difference")
    for ax in (ax_train, ax_val, ax_gap):
        ax.legend()
    fig.suptitle(f"nanoGPT CPU recipe: funcnn vs torch, same init and batches ({r['corpus']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    results = run()
    results.update(summarize(results))
    report(results)
    ARGS.out.mkdir(parents=True, exist_ok=True)
    (ARGS.out / "nanogpt_cpu.json").write_text(json.dumps(results, indent=1))
    plot(results, ARGS.out / "nanogpt_cpu.png")
    print(f"wrote {ARGS.out}/nanogpt_cpu.json and nanogpt_cpu.png")


if __name__ == "__main__":
    main()
