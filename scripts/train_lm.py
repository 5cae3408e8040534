"""Train a character language model and sample from it.

    python scripts/train_lm.py                                  # transformer on stdlib docstrings
    python scripts/train_lm.py --model lstm --steps 2000
    python scripts/train_lm.py --text my.txt --prompt "The " --temperature 0.8 --top-k 10
    python scripts/train_lm.py --out runs/lm          # then, without training again:
    python scripts/train_lm.py --load runs/lm/params.ckpt --prompt "def "
    python scripts/train_lm.py --arch llama --num-kv-heads 2 --out runs/llama  # → runs/llama/hf
    python scripts/train_lm.py --from-pretrained runs/llama/hf --steps 200     # fine-tune it
    python scripts/train_lm.py --load runs/llama/hf --prompt "def "            # sample from it

Reports validation bits per character against the unigram (character-frequency) baseline,
then samples `--length` characters after `--prompt` with a jitted generation loop. With
--out, writes metrics.json (with the history), sample.txt and params.ckpt there; the
checkpoint's metadata holds the model config and the characters, so `--load` rebuilds both.
--arch gpt2|llama|nanogpt trains a `funcnn.models` decoder of that layout instead of --model;
with --out it is written in the Hugging Face layout (out/hf: config.json, model.safetensors,
chars.json), which transformers, --from-pretrained and --load read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jax

from funcnn import models, sampling
from funcnn.datasets import text as text_data
from funcnn.lab import cli, lm
from funcnn.nn.sequence_models import ARCHITECTURES, char_lm
from funcnn.scale import xla
from funcnn.train import checkpoint


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="transformer", choices=ARCHITECTURES)
    p.add_argument("--text", type=Path, help="UTF-8 training text (default: stdlib docstrings)")
    p.add_argument("--steps", type=cli.positive_int, default=1500)
    p.add_argument("--batch-size", type=cli.positive_int, default=32)
    p.add_argument("--seq-len", type=cli.positive_int, default=128)
    cli.add_optimizer_flags(p, learning_rate=3e-3, weight_decay=0.01, clip_norm=1.0)
    p.add_argument("--warmup", type=cli.nonnegative_int, default=100, help="linear warmup steps")
    p.add_argument("--dim", type=cli.positive_int, default=64, help="embedding / model width")
    p.add_argument(
        "--hidden-size", type=cli.positive_int, default=128, help="rnn/lstm state, bow mlp width"
    )
    p.add_argument(
        "--depth", type=cli.positive_int, default=2, help="transformer blocks / conv layers"
    )
    p.add_argument("--num-heads", type=cli.positive_int, default=4)
    p.add_argument("--dropout", type=cli.probability, default=0.0, help="drop probability")
    p.add_argument("--arch", choices=ARCHS, help="a funcnn.models decoder layout (not --model)")
    p.add_argument("--num-kv-heads", type=cli.positive_int, help="--arch llama: kv heads (GQA)")
    p.add_argument(
        "--from-pretrained", type=Path, metavar="DIR", help="start from a Hugging Face directory"
    )
    cli.add_run_flags(p, out=None)
    p.add_argument("--prompt", default="The ")
    p.add_argument("--length", type=cli.positive_int, default=300, help="characters to sample")
    p.add_argument("--temperature", type=cli.positive_float, default=0.8)
    p.add_argument("--top-k", type=cli.positive_int, default=None)
    p.add_argument(
        "--load",
        type=Path,
        metavar="CKPT",
        help="skip training: rebuild the model from a params.ckpt this script wrote and sample",
    )
    return p


VAL_FRACTION = 0.1  # the tail of the text held out for validation bits/char
# The model flags each --model reads; another one, given explicitly, would be ignored.
MODEL_FLAGS = {
    "bow": ("dim", "hidden_size"),
    "rnn": ("dim", "hidden_size"),
    "lstm": ("dim", "hidden_size"),
    "cnn": ("dim", "depth"),
    "transformer": ("dim", "depth", "num_heads", "dropout"),
}
# With --load nothing is trained: only these flags mean anything.
SAMPLING_FLAGS = {"load", "prompt", "length", "temperature", "top_k", "seed", "no_progress"}
OUTPUT_FILES = ("metrics.json", "sample.txt", "params.ckpt")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_flags(args: argparse.Namespace, given: set[str]) -> None:
    """Combinations of flags that would be silently ignored or cannot work (ValueError)."""
    if args.load is not None:
        ignored = sorted(given - SAMPLING_FLAGS)
        if ignored:
            raise ValueError(
                f"{', '.join(map(_flag, ignored))}: not used with --load, which samples from "
                "a trained model without training or writing; drop them (or --load)."
            )
        return
    model_flags = {dest for dests in MODEL_FLAGS.values() for dest in dests}
    unused = sorted((given & model_flags) - set(MODEL_FLAGS[args.model]))
    if unused:
        raise ValueError(
            f"{', '.join(map(_flag, unused))}: not used by --model {args.model}, which reads "
            f"{', '.join(map(_flag, MODEL_FLAGS[args.model]))}."
        )
    if args.model == "transformer" and args.dim % args.num_heads:
        raise ValueError(
            f"--dim {args.dim} must be divisible by --num-heads {args.num_heads} (each head "
            "takes dim/num_heads features)."
        )
    if "warmup" in given and args.warmup >= args.steps:
        raise ValueError(f"--warmup {args.warmup} must be less than --steps {args.steps}.")


def check_text(args: argparse.Namespace, ids: Any, vocab: int) -> None:
    """Preconditions that depend on the text: room for one window of --seq-len + 1
    characters in the training part and in the validation tail; --top-k ≤ its vocabulary."""
    n = len(ids)
    cut = round(n * (1.0 - VAL_FRACTION))  # text_data.train_val_split's cut
    shortest = min(cut, n - cut)
    if shortest < args.seq_len + 1:
        raise ValueError(
            f"--seq-len {args.seq_len} needs {args.seq_len + 1} characters in the training "
            f"part and in the validation tail (the last {VAL_FRACTION:.0%}) of the text, which "
            f"have {cut} and {n - cut} of its {n}; use --seq-len ≤ {max(shortest - 1, 0)} "
            "or a longer --text."
        )
    check_top_k(args, vocab)


def check_top_k(args: argparse.Namespace, vocab: int) -> None:
    """--top-k keeps the k likeliest characters: at most the vocabulary."""
    if args.top_k is not None and args.top_k > vocab:
        raise ValueError(
            f"--top-k {args.top_k} exceeds the vocabulary of {vocab} characters; use ≤ {vocab}."
        )


ARCHS = {"gpt2": models.gpt2_config, "llama": models.llama_config, "nanogpt": models.nanogpt_config}


def build_decoder(args: argparse.Namespace, tokenizer: text_data.CharTokenizer) -> tuple:
    """(Decoder, params or None, tokenizer) for --arch or --from-pretrained (ValueError if the
    flags conflict or the checkpoint cannot read the corpus or the windows)."""
    if args.num_kv_heads is not None and args.arch != "llama":
        raise ValueError("--num-kv-heads needs --arch llama (grouped-query attention).")
    if args.model != "transformer" or (args.arch and args.from_pretrained):
        raise ValueError("--arch, --from-pretrained and --model each choose the model: give one.")
    if args.from_pretrained is None:
        extra = {} if args.num_kv_heads is None else {"num_kv_heads": args.num_kv_heads}
        make = ARCHS[args.arch]
        config = make(
            tokenizer.vocab_size, args.dim, args.depth, args.num_heads, args.seq_len, **extra
        )
        return models.decoder(config.replace(dropout=args.dropout)), None, tokenizer
    model, params = models.from_pretrained(args.from_pretrained)
    chars = args.from_pretrained / "chars.json"
    if chars.exists():
        tokenizer = text_data.CharTokenizer(json.loads(chars.read_text()))
    if model.config.vocab_size < tokenizer.vocab_size or args.seq_len > model.config.max_len:
        raise ValueError(
            f"--from-pretrained {args.from_pretrained}: vocab {model.config.vocab_size} and "
            f"max_len {model.config.max_len} must cover the {tokenizer.vocab_size} characters "
            f"and --seq-len {args.seq_len}."
        )
    return model, params, tokenizer


def model_config(args: argparse.Namespace, tokenizer: text_data.CharTokenizer) -> dict[str, Any]:
    """Everything needed to rebuild the model and its tokenizer; stored in params.ckpt."""
    kwargs = {"dim": args.dim, "hidden": args.hidden_size, "depth": args.depth}
    if args.model == "transformer":
        kwargs.update(num_heads=args.num_heads, dropout=args.dropout)
    return {
        "kind": args.model,
        "vocab": tokenizer.vocab_size,
        "max_len": args.seq_len,
        "chars": tokenizer.chars,
        "model_kwargs": kwargs,
    }


def load_model(path: Path) -> tuple[Any, Any, text_data.CharTokenizer, int]:
    """(model, params, tokenizer, context) rebuilt from a params.ckpt written by this script."""
    if path.is_dir():  # a Hugging Face directory written with --arch … --out
        model, params = models.from_pretrained(path)
        chars = json.loads((path / "chars.json").read_text())
        return model, params, text_data.CharTokenizer(chars), model.config.max_len
    metadata = checkpoint.read_metadata(path)
    if "lm_config" not in metadata:
        raise ValueError(f"{path} has no lm_config metadata: it was not written by train_lm.py.")
    config = metadata["lm_config"]
    kind, vocab, max_len = config["kind"], config["vocab"], config["max_len"]
    model = char_lm(kind, vocab, max_len=max_len, **config["model_kwargs"])
    like, _ = jax.eval_shape(lambda: model.init(jax.random.key(0), (1, config["max_len"])))
    params = checkpoint.restore(path, like=like)
    return model, params, text_data.CharTokenizer(config["chars"]), config["max_len"]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_flags(args, cli.explicit_flags(build_parser, argv))
    except ValueError as error:
        cli.usage_error(parser, error)
    # funcnn's own models only (safe with the option: funcnn._cpu_fusion), and before any
    # JAX computation; see funcnn.scale.xla.
    xla.enable_cpu_multi_output_fusion()
    # A step's XLA:CPU temporaries (one buffer, tens of MiB) stay in glibc's heap instead of
    # being mmap'ed and page-faulted on every call (funcnn.scale.xla.reuse_cpu_buffers).
    xla.reuse_cpu_buffers()
    if args.load is not None:
        try:
            model, params, tokenizer, context = load_model(args.load)
            prompt = tokenizer.encode(args.prompt)
            if prompt.shape[0] == 0:
                raise ValueError("--prompt must have at least one character.")
            check_top_k(args, tokenizer.vocab_size)
        except (OSError, ValueError) as error:
            cli.usage_error(parser, error)
        print(sample_text(args, model, params, tokenizer, prompt, context))
        return 0
    # Every flag is checked before training: the corpus's characters decide which prompts
    # work, its length which windows fit; the model is built (abstractly) once to be sure.
    try:
        corpus = text_data.load_text(args.text) if args.text else text_data.stdlib_docstrings()
        tokenizer = text_data.CharTokenizer.from_text(corpus)
        decoder_model = init = None
        if args.arch or args.from_pretrained or args.num_kv_heads:
            decoder_model, init, tokenizer = build_decoder(args, tokenizer)
        prompt = tokenizer.encode(args.prompt)
        if prompt.shape[0] == 0:
            raise ValueError("--prompt must have at least one character.")
        check_text(args, corpus, tokenizer.vocab_size)
        config = model_config(args, tokenizer)
        model = char_lm(
            args.model, tokenizer.vocab_size, max_len=args.seq_len, **config["model_kwargs"]
        )
        jax.eval_shape(lambda: model.init(jax.random.key(0), (args.batch_size, args.seq_len)))
        if args.out is not None:
            cli.check_output_files(args.out, OUTPUT_FILES)
    except (OSError, ValueError, TypeError) as error:
        cli.usage_error(parser, error)
    source = args.text or "stdlib module docstrings"
    print(f"text: {source}, {len(corpus):,} characters")

    def report(state, info):
        print(f"  step {int(state.step):6d}  train {info['bits_per_char']:.4g} bits/char")

    result = lm.train_char_lm(
        args.arch or args.model,
        corpus,
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup,
        weight_decay=args.weight_decay,
        clip_norm=args.clip_norm,
        val_fraction=VAL_FRACTION,
        seed=args.seed,
        steps_per_dispatch=min(100, args.steps),
        callback=report,
        model=None if decoder_model is None else decoder_model.layer,
        params=init,
        tokenizer=tokenizer,
        **config["model_kwargs"],
    )
    gain = result.unigram_bits_per_char - result.val_bits_per_char
    print(
        f"{args.arch or args.model}: {result.num_params:,} params, "
        f"{1e3 * result.seconds_per_step:.1f} ms/step\n"
        f"validation {result.val_bits_per_char:.3f} bits/char vs unigram "
        f"{result.unigram_bits_per_char:.3f} ({gain:+.3f} bits better)"
    )
    trained = result.model if decoder_model is None else decoder_model
    sample = sample_text(args, trained, result.state.params, tokenizer, prompt, args.seq_len)
    print(f"--- sample (temperature {args.temperature}, top-k {args.top_k}) ---\n{sample}\n---")

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        metrics = {
            "model": args.arch or args.model,
            "params": result.num_params,
            "val_bits_per_char": result.val_bits_per_char,
            "unigram_bits_per_char": result.unigram_bits_per_char,
            "ms_per_step": 1e3 * result.seconds_per_step,
            "steps": args.steps,
            "history": result.history,
        }
        # ms_per_step is NaN when every dispatch compiled: strict JSON writes it as null
        (args.out / "metrics.json").write_text(cli.json_text(metrics))
        (args.out / "sample.txt").write_text(sample)
        if decoder_model is not None:  # the Hugging Face layout, and the characters
            models.save_pretrained(decoder_model, result.state.params, args.out / "hf")
            (args.out / "hf" / "chars.json").write_text(json.dumps(tokenizer.chars))
            print(f"wrote {args.out}/metrics.json, sample.txt, hf/")
            return 0
        params_path = args.out / "params.ckpt"
        checkpoint.save(params_path, result.state.params, metadata={"lm_config": config})
        print(f"wrote {args.out}/metrics.json, sample.txt, params.ckpt")
    return 0


def sample_text(args, model, params, tokenizer, prompt, context: int) -> str:
    key = jax.random.key(args.seed + 1)
    if isinstance(model, models.Decoder):
        if prompt.shape[0] + args.length <= model.config.max_len:  # KV-cached, one program
            ids = models.generate(
                model,
                params,
                prompt[None],
                args.length,
                temperature=args.temperature,
                top_k=args.top_k,
                key=key,
            )
            return tokenizer.decode(ids[0])
        model = model.layer  # longer than its positions: a sliding window of max_len
    ids = sampling.generate(
        model,
        params,
        prompt,
        key=key,
        length=args.length,
        context=context,
        temperature=args.temperature,
        top_k=args.top_k,
    )
    return tokenizer.decode(ids)


if __name__ == "__main__":
    sys.exit(main())
