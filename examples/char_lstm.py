"""Train a character-level LSTM language model on Python's bundled documentation.

Default recipe: embedding 64, one LSTM layer of 256, windows of 64 characters, batch 32,
Adam with learning rate 2e-3, gradient-norm clip 1.0, 2000 steps (a few minutes on two
CPU cores). The text is the pydoc topics that ship with Python, or any UTF-8 file given
with --text; its last 10% is held out for validation.

Prints the training and validation bits per character (lower is better; guessing
uniformly among the ~100 characters scores about 6.7) and a sample that continues
--prompt. Writes the checkpoint and metrics.json into --out.
"""
import argparse
import math
import sys

import numpy as np

import minireparam as mr
from minireparam import optim
from minireparam.data import DataError, load_corpus, random_windows, sequential_windows
from minireparam.models import CharLSTM, Trainer, bits_per_character
from minireparam.models.language import default_prompt
from minireparam.models.training import (
    add_training_arguments, fill_defaults, finish_run, non_negative_float, positive_int, run_or_exit,
)

DEFAULTS = {
    "steps": 2000, "embedding_dim": 64, "hidden_size": 256, "seq_len": 64, "batch_size": 32,
    "lr": 2e-3, "clip": 1.0, "eval_every": 500, "eval_windows": None, "sample_length": 400,
}
QUICK = {
    "steps": 40, "embedding_dim": 16, "hidden_size": 64, "seq_len": 32, "batch_size": 16,
    "lr": 1e-2, "eval_every": 20, "eval_windows": 32, "sample_length": 80,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", metavar="FILE", help="train on this UTF-8 text file (default: the pydoc topics)")
    parser.add_argument("--embedding-dim", type=positive_int, metavar="N",
                        help="character embedding size (default: 64)")
    parser.add_argument("--hidden-size", type=positive_int, metavar="N", help="LSTM units (default: 256)")
    parser.add_argument("--seq-len", type=positive_int, metavar="N",
                        help="characters per training window (default: 64)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="windows per step (default: 32)")
    parser.add_argument("--lr", type=float, metavar="X", help="Adam learning rate (default: 2e-3)")
    parser.add_argument("--clip", type=float, metavar="X", help="clip the global gradient norm to this (default: 1.0)")
    parser.add_argument("--eval-every", type=positive_int, metavar="N",
                        help="steps between validation reports (default: 500)")
    parser.add_argument(
        "--eval-windows", type=positive_int, metavar="N",
        help="windows to score in each split (default: all of the validation split, "
             "and as many from the training split)",
    )
    parser.add_argument("--prompt", metavar="TEXT", help="text the sample continues (default: 'The ', or the text's "
                        "first character if the text lacks those characters)")
    parser.add_argument("--temperature", type=non_negative_float, default=0.8, metavar="X",
                        help="sampling temperature, 0 for the most likely character (default: 0.8)")
    parser.add_argument("--sample-length", type=int, metavar="N", help="characters to sample (default: 400)")
    add_training_arguments(parser, out="runs/char_lstm", checkpoint_every=500, steps=2000, quick_steps=40)
    parser.epilog = "Defaults above are for the full run; --quick uses a small model and 40 steps."
    return fill_defaults(parser.parse_args(argv), DEFAULTS, QUICK)


def main(argv=None):
    args = parse_args(argv)
    try:
        corpus = load_corpus(args.text)
        validation = sequential_windows(corpus.validation_ids, args.seq_len, args.eval_windows, "validation")
        training_sample = sequential_windows(corpus.train_ids, args.seq_len, len(validation[0]), "training")
        if args.prompt is None:
            args.prompt = default_prompt(corpus.vocabulary, corpus.train_text)
        prompt_ids = corpus.vocabulary.encode(args.prompt)
    except (OSError, DataError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{corpus}; {len(validation[0])} validation windows of {args.seq_len}")

    # Separate streams: the weights' initialization, the training draws (window offsets),
    # and the sample at the end. Only the training stream goes into checkpoints.
    init_generator, train_generator, sample_generator = mr.Generator(args.seed).spawn(3)
    model = CharLSTM(corpus.vocabulary.size, args.embedding_dim, args.hidden_size,
                     generator=init_generator, dropout_generator=train_generator)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)

    def compute_loss(step):
        inputs, targets = random_windows(corpus.train_ids, args.batch_size, args.seq_len, train_generator)
        return model.loss(inputs, targets)

    def evaluate():
        return {"validation_bits_per_char": bits_per_character(model.loss, *validation)}

    trainer = Trainer(
        model, optimizer, compute_loss, generator=train_generator, steps=args.steps, out_dir=args.out,
        checkpoint_every=args.checkpoint_every, clip_grad_norm=args.clip, evaluate=evaluate,
        eval_every=args.eval_every, progress=not args.no_progress, description="char-LSTM",
        config={
            "text": corpus.source, "embedding_dim": args.embedding_dim, "hidden_size": args.hidden_size,
            "seq_len": args.seq_len, "batch_size": args.batch_size, "lr": args.lr, "clip": args.clip,
            "seed": args.seed,
        },
    )
    result = run_or_exit(trainer, args.resume, args.stop_after)

    train_bpc = bits_per_character(model.loss, *training_sample)
    validation_bpc = bits_per_character(model.loss, *validation)
    print(f"train {train_bpc:.4f} bits/char, validation {validation_bpc:.4f} bits/char "
          f"(uniform guessing: {math.log2(corpus.vocabulary.size):.2f})")

    sample_ids = model.generate(prompt_ids, args.sample_length, args.temperature, sample_generator)
    sample = args.prompt + corpus.vocabulary.decode(sample_ids)
    print(f"--- sample (temperature {args.temperature}) ---\n{sample}\n---")

    finish_run(args, result, {
        "train_bits_per_char": train_bpc,
        "validation_bits_per_char": validation_bpc,
        "validation_characters": int(np.size(validation[1])),
        "vocabulary_size": corpus.vocabulary.size,
        "text": corpus.source,
        "sample": sample,
    }, name="char_lstm")


if __name__ == "__main__":
    sys.exit(main())
