"""Translate English number words to digits with an attentive LSTM encoder-decoder.

"three hundred and twelve" -> "312", for every number from 0 to 999,999. Pairs are
generated on the fly; 2% of the numbers (chosen once by a fixed split seed) are held out
and never trained on, and the reported accuracy is on those.

Default recipe: word embeddings of 64, a bidirectional LSTM encoder of 128 units per
direction, an LSTM decoder of 128 units with additive (Bahdanau) attention of size 128,
batch 64, Adam with learning rate 2e-3, gradient-norm clip 1.0, 1000 steps. Training
numbers have a digit count drawn uniformly from 1 to 6, then a value uniform among the
numbers with that many digits.

Reports the exact-match accuracy (the whole digit string right) on 1000 held-out numbers
with the same spread of digit counts, by greedy decoding and by beam search, and per
digit count. Saves attention.png (the attention weights of one held-out number: which
words each digit looked at), the checkpoint and metrics.json into --out.
"""
import argparse
import os
import sys

import numpy as np

import minireparam as mr
from minireparam import optim
from minireparam.data.numbers import (
    SOURCE_VOCABULARY, TARGET_VOCABULARY, NumberBatch, NumberPairs, digits_to_number, number_to_words,
    tokenize_words,
)
from minireparam.models.seq2seq import Seq2SeqAttention
from minireparam.models.training import (
    Trainer, add_training_arguments, fill_defaults, finish_run, positive_int, run_or_exit,
)

MAX_TARGET_LENGTH = 7   # six digits and </s>
DEFAULTS = {
    "steps": 1000, "embedding_dim": 64, "hidden_size": 128, "attention_size": 128, "batch_size": 64, "lr": 2e-3,
    "clip": 1.0, "eval_every": 250, "eval_count": 1000, "beam_size": 5, "beam_count": 1000,
}
QUICK = {
    "steps": 60, "embedding_dim": 16, "hidden_size": 32, "attention_size": 32, "lr": 1e-2, "eval_every": 30,
    "eval_count": 120, "beam_count": 24,
}
HEATMAP_NUMBER_INDEX = -1   # the largest held-out evaluation number: the longest source


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedding-dim", type=positive_int, metavar="N",
                        help="size of the word and digit embeddings (default: 64)")
    parser.add_argument("--hidden-size", type=positive_int, metavar="N",
                        help="LSTM units in the decoder and in each encoder direction (default: 128)")
    parser.add_argument("--attention-size", type=positive_int, metavar="N",
                        help="hidden size of the additive attention score (default: 128)")
    parser.add_argument("--unidirectional", action="store_true",
                        help="read the words left to right only (default: both directions)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="number pairs per step (default: 64)")
    parser.add_argument("--lr", type=float, metavar="X", help="Adam learning rate (default: 2e-3)")
    parser.add_argument("--clip", type=float, metavar="X", help="clip the global gradient norm to this (default: 1.0)")
    parser.add_argument("--eval-every", type=positive_int, metavar="N",
                        help="steps between held-out accuracy reports (default: 250)")
    parser.add_argument("--eval-count", type=positive_int, metavar="N",
                        help="held-out numbers to evaluate on (default: 1000)")
    parser.add_argument("--beam-size", type=positive_int, metavar="N",
                        help="hypotheses kept by beam search (default: 5)")
    parser.add_argument("--beam-count", type=positive_int, metavar="N",
                        help="held-out numbers also decoded by beam search (default: 1000, all of them)")
    parser.add_argument("--translate", metavar="WORDS", action="append", default=[],
                        help="number words to translate after training, such as 'forty-two'; repeatable")
    add_training_arguments(parser, out="runs/seq2seq_attention", checkpoint_every=500, steps=1000, quick_steps=60)
    parser.epilog = "Defaults above are for the full run; --quick uses a small model and 60 steps."
    return fill_defaults(parser.parse_args(argv), DEFAULTS, QUICK)


def decode_to_text(token_ids):
    return "".join(TARGET_VOCABULARY.decode(token_ids))


def greedy_accuracy(model, numbers, batch_size=500):
    """Exact-match accuracy of greedy decoding over ``numbers``, and the predicted strings."""
    predictions = []
    for start in range(0, len(numbers), batch_size):
        batch = NumberBatch(numbers[start:start + batch_size])
        tokens, _weights = model.greedy_decode(batch.source, batch.source_lengths, MAX_TARGET_LENGTH)
        predictions += [decode_to_text(row) for row in tokens]
    correct = np.array([prediction == str(n) for prediction, n in zip(predictions, numbers.tolist())])
    return float(correct.mean()), predictions, correct


def beam_accuracy(model, numbers, beam_size):
    correct = []
    for number in numbers.tolist():
        batch = NumberBatch([number])
        tokens, _score, _weights = model.beam_search(batch.source[0], batch.source_lengths[0], beam_size,
                                                     MAX_TARGET_LENGTH)
        correct.append(decode_to_text(tokens) == str(number))
    return float(np.mean(correct))


def accuracy_by_digit_count(numbers, correct):
    counts = np.array([len(str(n)) for n in numbers.tolist()])
    return {str(d): float(correct[counts == d].mean()) for d in sorted(set(counts.tolist()))}


def save_attention_heatmap(path, weights, source_words, target_tokens, title):
    """Draw the attention weights (target steps x source words) as a labelled heatmap PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    figure, axis = pyplot.subplots(figsize=(1.0 + 0.7 * len(source_words), 1.2 + 0.5 * len(target_tokens)))
    image = axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(source_words)), source_words, rotation=45, ha="right")
    axis.set_yticks(range(len(target_tokens)), target_tokens)
    axis.set_xlabel("source words")
    axis.set_ylabel("output digits")
    axis.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axis, label="attention weight")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def attention_picture(model, number, path):
    """Decode one number greedily and save its attention heatmap; return the prediction."""
    batch = NumberBatch([number])
    tokens, weights = model.greedy_decode(batch.source, batch.source_lengths, MAX_TARGET_LENGTH)
    steps = min(len(TARGET_VOCABULARY.decode(tokens[0])) + 1, MAX_TARGET_LENGTH)     # the digits and </s>
    target_tokens = [TARGET_VOCABULARY.tokens[i] for i in tokens[0, :steps]]
    words = tokenize_words(number_to_words(number))
    save_attention_heatmap(path, weights[0, :steps, :len(words)], words, target_tokens,
                           f"{number_to_words(number)} -> {decode_to_text(tokens[0])}")
    return decode_to_text(tokens[0])


def translate(model, text):
    words = tokenize_words(text)
    source = SOURCE_VOCABULARY.encode(words)[None, :]
    tokens, _weights = model.greedy_decode(source, np.array([len(words)]), MAX_TARGET_LENGTH)
    return decode_to_text(tokens[0])


def main(argv=None):
    args = parse_args(argv)
    pairs = NumberPairs()
    eval_numbers = pairs.heldout_numbers(args.eval_count)
    for text in args.translate:
        try:
            tokenize_words(text)
        except ValueError as error:
            raise SystemExit(f"error: --translate: {error}") from None

    init_generator, train_generator = mr.Generator(args.seed).spawn(2)
    model = Seq2SeqAttention(
        SOURCE_VOCABULARY.size, TARGET_VOCABULARY.size, args.embedding_dim, args.hidden_size, args.attention_size,
        bidirectional=not args.unidirectional, bos_id=TARGET_VOCABULARY.bos_id, eos_id=TARGET_VOCABULARY.eos_id,
        generator=init_generator,
    )
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    parameters = sum(p.size for p in model.parameters())
    print(f"{parameters} parameters; {int(pairs.heldout_mask.sum())} held-out numbers, evaluating on "
          f"{len(eval_numbers)}")

    def compute_loss(step):
        batch = pairs.training_batch(args.batch_size, train_generator)
        return model.loss(batch.source, batch.source_lengths, batch.decoder_input, batch.target)

    def evaluate():
        return {"heldout_accuracy": greedy_accuracy(model, eval_numbers)[0]}

    trainer = Trainer(
        model, optimizer, compute_loss, generator=train_generator, steps=args.steps, out_dir=args.out,
        checkpoint_every=args.checkpoint_every, clip_grad_norm=args.clip, evaluate=evaluate,
        eval_every=args.eval_every, progress=not args.no_progress, description="seq2seq",
        config={"embedding_dim": args.embedding_dim, "hidden_size": args.hidden_size,
                "attention_size": args.attention_size, "bidirectional": not args.unidirectional,
                "batch_size": args.batch_size, "lr": args.lr, "clip": args.clip, "seed": args.seed,
                "heldout_fraction": pairs.heldout_fraction, "split_seed": pairs.split_seed},
    )
    result = run_or_exit(trainer, args.resume, args.stop_after)

    accuracy, predictions, correct = greedy_accuracy(model, eval_numbers)
    beam_numbers = eval_numbers[np.linspace(0, len(eval_numbers) - 1, min(args.beam_count, len(eval_numbers)))
                                .round().astype(np.int64)]
    beam = beam_accuracy(model, beam_numbers, args.beam_size)
    greedy_on_beam_numbers = greedy_accuracy(model, beam_numbers)[0]
    by_digits = accuracy_by_digit_count(eval_numbers, correct)
    print(f"held-out exact match: greedy {accuracy:.4f} on {len(eval_numbers)} numbers; beam search "
          f"(beam {args.beam_size}) {beam:.4f} vs greedy {greedy_on_beam_numbers:.4f} on {len(beam_numbers)}")
    print("greedy by digit count: " + "  ".join(f"{d} digits {value:.3f}" for d, value in by_digits.items()))
    mistakes = [(n, p) for n, p, ok in zip(eval_numbers.tolist(), predictions, correct) if not ok]
    for number, prediction in mistakes[:5]:
        print(f"  wrong: {number_to_words(number)!r} -> {prediction!r} (expected {number})")

    heatmap_number = int(eval_numbers[HEATMAP_NUMBER_INDEX])
    picture = os.path.join(args.out, "attention.png")
    heatmap_prediction = attention_picture(model, heatmap_number, picture)
    print(f"attention heatmap of {number_to_words(heatmap_number)!r} -> {heatmap_prediction!r}: {picture}")

    translations = {text: translate(model, text) for text in args.translate}
    for text, digits in translations.items():
        parsed = digits_to_number(list(digits))
        print(f"{text!r} -> {digits!r}" + ("" if parsed is not None else " (not a well-formed number)"))

    finish_run(args, result, {
        "heldout_accuracy": accuracy,
        "heldout_accuracy_by_digits": by_digits,
        "eval_count": int(len(eval_numbers)),
        "beam_size": args.beam_size,
        "beam_accuracy": beam,
        "greedy_accuracy_on_beam_numbers": greedy_on_beam_numbers,
        "beam_count": int(len(beam_numbers)),
        "heldout_numbers_total": int(pairs.heldout_mask.sum()),
        "mistakes": [[int(n), p] for n, p in mistakes[:20]],
        "translations": translations,
        "pictures": {"attention": picture},
    }, name="seq2seq_attention")


if __name__ == "__main__":
    sys.exit(main())
