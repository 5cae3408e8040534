"""Train a character language model and sample from it.

    python scripts/train_lm.py                                  # transformer on stdlib docstrings
    python scripts/train_lm.py --model lstm --steps 2000
    python scripts/train_lm.py --text my.txt --prompt "The " --temperature 0.8 --top-k 10

Reports validation bits per character against the unigram (character-frequency) baseline,
then samples `--length` characters after `--prompt` with a jitted generation loop. With
--out, writes metrics.json, sample.txt and params.ckpt there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax

from funcnn import checkpoint, fusion, sampling
from funcnn.datasets import text as text_data
from funcnn.lab import lm
from funcnn.nn.sequence_models import KINDS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="transformer", choices=KINDS)
    p.add_argument("--text", type=Path, help="UTF-8 training text (default: stdlib docstrings)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate")
    p.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip")
    p.add_argument("--dim", type=int, default=64, help="embedding / model width")
    p.add_argument("--hidden", type=int, default=128, help="rnn/lstm state, bow mlp width")
    p.add_argument("--depth", type=int, default=2, help="transformer blocks / conv layers")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", default="The ")
    p.add_argument("--length", type=int, default=300, help="characters to sample")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--out", type=Path, help="directory for metrics.json, sample.txt, params.ckpt")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    fusion.enable_cpu_multi_output_fusion()  # before any JAX computation; see funcnn.fusion
    corpus = text_data.load_text(args.text) if args.text else text_data.stdlib_docstrings()
    source = args.text or "stdlib module docstrings"
    print(f"text: {source}, {len(corpus):,} characters")

    def report(state, info):
        print(f"  step {int(state.step):6d}  train {info['bits_per_char']:.3f} bits/char")

    model_kwargs = {"dim": args.dim, "hidden": args.hidden, "depth": args.depth}
    if args.model == "transformer":
        model_kwargs.update(heads=args.heads, dropout=args.dropout)
    result = lm.train_char_lm(
        args.model,
        corpus,
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        learning_rate=args.lr,
        warmup_steps=args.warmup,
        weight_decay=args.weight_decay,
        clip_norm=args.clip,
        seed=args.seed,
        steps_per_dispatch=min(100, args.steps),
        callback=report,
        **model_kwargs,
    )
    gain = result.unigram_bits_per_char - result.val_bits_per_char
    print(
        f"{args.model}: {result.num_params:,} params, {1e3 * result.seconds_per_step:.1f} ms/step\n"
        f"validation {result.val_bits_per_char:.3f} bits/char vs unigram "
        f"{result.unigram_bits_per_char:.3f} ({gain:+.3f} bits better)"
    )

    prompt = result.tokenizer.encode(args.prompt)
    ids = sampling.generate(
        result.model,
        result.state.params,
        prompt,
        key=jax.random.key(args.seed + 1),
        length=args.length,
        context=args.seq_len,
        temperature=args.temperature,
        top_k=args.top_k,
    )
    sample = result.tokenizer.decode(ids)
    print(f"--- sample (temperature {args.temperature}, top-k {args.top_k}) ---\n{sample}\n---")

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        metrics = {
            "model": args.model,
            "params": result.num_params,
            "val_bits_per_char": result.val_bits_per_char,
            "unigram_bits_per_char": result.unigram_bits_per_char,
            "ms_per_step": 1e3 * result.seconds_per_step,
            "steps": args.steps,
        }
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (args.out / "sample.txt").write_text(sample)
        checkpoint.save(args.out / "params.ckpt", result.state.params)
        print(f"wrote {args.out}/metrics.json, sample.txt, params.ckpt")


if __name__ == "__main__":
    main()
