"""Train a tiny decoder-only transformer (GPT-style) on Python's bundled documentation.

Default recipe: d_model 128, 4 heads, 2 pre-LayerNorm blocks with a 4x GELU MLP,
context 128 with learned position embeddings, no dropout, batch 16, gradient-norm clip
1.0, 2000 steps. Adam's learning rate rises linearly to 3e-3 over 100 steps and then
decays along a cosine to a tenth of that. The batches hold as many
characters as char_lstm.py's (16 x 128 = 32 x 64), and the text and its 90/10 split are
the same, so the two validation figures compare directly.

Prints the training and validation bits per character, the character LSTM's
validation figure beside it when that run's metrics file exists (--compare), and a
sample that continues --prompt. Writes the checkpoint and metrics.json into --out.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

import minireparam as mr
from minireparam import optim
from minireparam.data import DataError, load_corpus, random_windows, sequential_windows
from minireparam.models import TinyGPT, Trainer, bits_per_character
from minireparam.models.language import default_prompt
from minireparam.models.training import (
    add_training_arguments, fill_defaults, finish_run, non_negative_float, positive_int, run_or_exit,
)

DEFAULTS = {
    "steps": 2000, "d_model": 128, "heads": 4, "layers": 2, "context": 128, "dropout": 0.0,
    "batch_size": 16, "lr": 3e-3, "warmup": 100, "clip": 1.0, "eval_every": 500, "eval_windows": None,
    "sample_length": 400,
}
QUICK = {
    "steps": 30, "d_model": 32, "heads": 2, "layers": 1, "context": 32, "batch_size": 8, "lr": 3e-3,
    "warmup": 5, "eval_every": 15, "eval_windows": 16, "sample_length": 60,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", metavar="FILE", help="train on this UTF-8 text file (default: the pydoc topics)")
    parser.add_argument("--d-model", type=positive_int, metavar="N", help="width of the token vectors (default: 128)")
    parser.add_argument("--heads", type=positive_int, metavar="N", help="attention heads per block (default: 4)")
    parser.add_argument("--layers", type=positive_int, metavar="N", help="transformer blocks (default: 2)")
    parser.add_argument("--context", type=positive_int, metavar="N",
                        help="characters per window, the context length (default: 128)")
    parser.add_argument("--dropout", type=float, metavar="X", help="dropout probability (default: 0.0)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="windows per step (default: 16)")
    parser.add_argument("--lr", type=float, metavar="X", help="peak Adam learning rate, after warm-up (default: 3e-3)")
    parser.add_argument("--warmup", type=int, metavar="N", help="steps of linear learning-rate warm-up (default: 100)")
    parser.add_argument("--clip", type=float, metavar="X", help="clip the global gradient norm to this (default: 1.0)")
    parser.add_argument("--eval-every", type=positive_int, metavar="N",
                        help="steps between validation reports (default: 500)")
    parser.add_argument("--eval-windows", type=positive_int, metavar="N",
                        help="windows to score in each split (default: the whole validation split)")
    parser.add_argument("--prompt", metavar="TEXT", help="text the sample continues (default: 'The ', or the text's "
                        "first character if the text lacks those characters)")
    parser.add_argument("--temperature", type=non_negative_float, default=0.8, metavar="X",
                        help="sampling temperature, 0 for the most likely character (default: 0.8)")
    parser.add_argument("--sample-length", type=int, metavar="N", help="characters to sample (default: 400)")
    parser.add_argument("--compare", default="runs/char_lstm/metrics.json", metavar="PATH",
                        help="the char-LSTM metrics to print beside ours (default: runs/char_lstm/metrics.json)")
    add_training_arguments(parser, out="runs/tiny_gpt", checkpoint_every=500, steps=2000, quick_steps=30)
    parser.epilog = "Defaults above are for the full run; --quick uses a small model and 30 steps."
    return fill_defaults(parser.parse_args(argv), DEFAULTS, QUICK)


def warmup_then_cosine(optimizer, warmup, steps):
    """Rise linearly to the peak rate over ``warmup`` steps, then follow a cosine down to a tenth of it."""
    warmup = max(1, min(warmup, steps - 1))
    peak = optimizer.param_groups[0]["lr"]
    rise = optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warmup, total_iters=warmup)
    decay = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps - warmup), eta_min=peak / 10)
    return optim.lr_scheduler.SequentialLR(optimizer, [rise, decay], milestones=[warmup])


def lstm_validation_figure(path):
    """Return the char-LSTM run's validation bits per character from its metrics, or None."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream).get("validation_bits_per_char")


def main(argv=None):
    args = parse_args(argv)
    try:
        corpus = load_corpus(args.text)
        validation = sequential_windows(corpus.validation_ids, args.context, args.eval_windows, "validation")
        training_sample = sequential_windows(corpus.train_ids, args.context, len(validation[0]), "training")
        if args.prompt is None:
            args.prompt = default_prompt(corpus.vocabulary, corpus.train_text)
        prompt_ids = corpus.vocabulary.encode(args.prompt)
    except (OSError, DataError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{corpus}; {len(validation[0])} validation windows of {args.context}")

    init_generator, train_generator, sample_generator = mr.Generator(args.seed).spawn(3)
    model = TinyGPT(corpus.vocabulary.size, context=args.context, d_model=args.d_model, n_heads=args.heads,
                    n_layers=args.layers, dropout=args.dropout, generator=init_generator,
                    dropout_generator=train_generator)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = warmup_then_cosine(optimizer, args.warmup, args.steps)

    def compute_loss(step):
        inputs, targets = random_windows(corpus.train_ids, args.batch_size, args.context, train_generator)
        return model.loss(inputs, targets)

    def evaluate():
        return {"validation_bits_per_char": bits_per_character(model.loss, *validation, batch_size=32)}

    trainer = Trainer(
        model, optimizer, compute_loss, generator=train_generator, steps=args.steps, out_dir=args.out,
        checkpoint_every=args.checkpoint_every, clip_grad_norm=args.clip, scheduler=scheduler,
        evaluate=evaluate, eval_every=args.eval_every, progress=not args.no_progress, description="tiny GPT",
        config={
            "text": corpus.source, "d_model": args.d_model, "heads": args.heads, "layers": args.layers,
            "context": args.context, "dropout": args.dropout, "batch_size": args.batch_size, "lr": args.lr,
            "warmup": args.warmup, "clip": args.clip, "seed": args.seed,
            # The cosine decay spans all steps, so another total would change the recipe.
            "schedule_steps": args.steps,
        },
    )
    result = run_or_exit(trainer, args.resume, args.stop_after)

    train_bpc = bits_per_character(model.loss, *training_sample, batch_size=32)
    validation_bpc = bits_per_character(model.loss, *validation, batch_size=32)
    print(f"tiny GPT: train {train_bpc:.4f} bits/char, validation {validation_bpc:.4f} bits/char "
          f"(uniform guessing: {math.log2(corpus.vocabulary.size):.2f})")
    lstm_bpc = lstm_validation_figure(args.compare)
    if lstm_bpc is None:
        print(f"char-LSTM: no metrics at {args.compare}; run examples/char_lstm.py to compare")
    else:
        print(f"char-LSTM: validation {lstm_bpc:.4f} bits/char (from {args.compare})")

    sample_ids = model.generate(prompt_ids, args.sample_length, args.temperature, sample_generator)
    sample = args.prompt + corpus.vocabulary.decode(sample_ids)
    print(f"--- sample (temperature {args.temperature}) ---\n{sample}\n---")

    finish_run(args, result, {
        "train_bits_per_char": train_bpc,
        "validation_bits_per_char": validation_bpc,
        "char_lstm_validation_bits_per_char": lstm_bpc,
        "validation_characters": int(np.size(validation[1])),
        "vocabulary_size": corpus.vocabulary.size,
        "text": corpus.source,
        "sample": sample,
    }, name="tiny_gpt")


if __name__ == "__main__":
    sys.exit(main())
