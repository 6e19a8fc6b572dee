"""Train a sentence VAE on Python's bundled documentation and watch the KL term.

An LSTM encoder maps a sentence to q(z|x) over a 16-dimensional Gaussian latent, and an
LSTM decoder regenerates the sentence from z. Default recipe: word level (lowercased
words and punctuation; words seen fewer than twice become <unk>), sentences of 4 to 30
words, embeddings of 128, LSTMs of 256 units, batch 32, Adam with learning rate 1e-3,
gradient-norm clip 5.0, 2000 steps, KL cost annealing (β rises linearly from 0 to 1 over
the first 1000 steps) and word dropout 0.3 (that share of the decoder's input words is
replaced by <unk>). --level char models characters instead (sentences of 20 to 120).

--plain trains without annealing and without word dropout: the decoder then learns to
ignore z and the KL term collapses toward zero (posterior collapse). Run both and
compare the KL (--compare PATH prints another run's numbers beside this one's).

About 10% of the sentences (by a hash of their text) are held out. On those the script
prints the reconstruction term, the KL term and their sum, the negative ELBO (an upper
bound on −log p(x)), all in nats per sentence. It also prints the number of active
latent units: dimensions whose posterior mean varies across sentences by more than 0.01.
Then it decodes sentences sampled from the prior, a few held-out sentences from their
posterior means, and a walk in latent space between the two held-out sentences whose
posterior means lie farthest apart. Saves kl.png (the KL term during training), the
checkpoint and metrics.json into --out.
"""
import argparse
import json
import os
import sys

import numpy as np

import minireparam as mr
from minireparam import optim
from minireparam.data import BatchIterator, DataError
from minireparam.data.sentences import LEVELS, SentenceCorpus
from minireparam.models.history import MetricHistory
from minireparam.models.sentence_vae import SCHEDULES, SentenceVAE, kl_weight
from minireparam.models.training import (
    Trainer, add_training_arguments, fill_defaults, finish_run, positive_int, run_or_exit,
)

DEFAULTS = {
    "steps": 2000, "embedding_dim": 128, "hidden_size": 256, "latent_dim": 16, "batch_size": 32, "lr": 1e-3,
    "clip": 5.0, "anneal_steps": 1000, "word_dropout": 0.3, "eval_every": 500, "samples": 5, "walk_steps": 6,
}
QUICK = {
    "steps": 40, "embedding_dim": 32, "hidden_size": 48, "latent_dim": 8, "anneal_steps": 20, "eval_every": 20,
    "samples": 3, "walk_steps": 4,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--level", choices=LEVELS, default="word", help="model words or characters (default: word)")
    parser.add_argument("--embedding-dim", type=positive_int, metavar="N", help="token embedding size (default: 128)")
    parser.add_argument("--hidden-size", type=positive_int, metavar="N",
                        help="LSTM units of the encoder and of the decoder (default: 256)")
    parser.add_argument("--latent-dim", type=positive_int, metavar="N", help="size of the latent z (default: 16)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="sentences per step (default: 32)")
    parser.add_argument("--lr", type=float, metavar="X", help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--clip", type=float, metavar="X", help="clip the global gradient norm to this (default: 5.0)")
    parser.add_argument("--anneal-steps", type=int, metavar="N",
                        help="steps over which the KL weight β rises from 0 to 1; 0 for no annealing (default: 1000)")
    parser.add_argument("--anneal-schedule", choices=SCHEDULES, default="linear",
                        help="shape of the rise of β: a straight line, or a logistic curve centred at half of "
                             "--anneal-steps (default: linear)")
    parser.add_argument("--word-dropout", type=float, metavar="P",
                        help="share of decoder input tokens replaced by <unk> in training, in [0, 1] (default: 0.3)")
    parser.add_argument("--plain", action="store_true",
                        help="no KL annealing and no word dropout (overrides both), to show the KL collapse")
    parser.add_argument("--eval-every", type=positive_int, metavar="N",
                        help="steps between held-out reports (default: 500)")
    parser.add_argument("--samples", type=positive_int, metavar="N",
                        help="sentences decoded from the prior, and held-out sentences reconstructed (default: 5)")
    parser.add_argument("--walk-steps", type=positive_int, metavar="N",
                        help="points decoded on the latent walk between two sentences, ends included (default: 6)")
    parser.add_argument("--temperature", type=float, default=0.0, metavar="X",
                        help="sampling temperature of the decoded sentences, 0 for the most likely token "
                             "(default: 0)")
    parser.add_argument("--compare", metavar="PATH",
                        help="metrics.json of another sentence_vae.py run, printed beside this run's figures")
    add_training_arguments(parser, out="runs/sentence_vae", checkpoint_every=500, steps=2000, quick_steps=40)
    parser.epilog = "Defaults above are for the full run; --quick uses a small model and 40 steps."
    args = fill_defaults(parser.parse_args(argv), DEFAULTS, QUICK)
    if args.plain:
        args.anneal_steps, args.word_dropout = 0, 0.0
    if not 0.0 <= args.word_dropout <= 1.0:
        parser.error(f"--word-dropout must be in [0, 1], got {args.word_dropout}")
    return args


def batches_of(corpus, id_lists, batch_size=128):
    return [corpus.batch(id_lists[start:start + batch_size]) for start in range(0, len(id_lists), batch_size)]


def held_out_figures(model, corpus, heldout_batches, seed):
    figures = model.evaluate(heldout_batches, mr.Generator(seed))
    figures["active_units"], variances = model.active_units(heldout_batches)
    figures["posterior_mean_variances"] = [float(v) for v in variances]
    return figures


def farthest_pair(vectors):
    """Return the indices (i, j) of the two rows of ``vectors`` farthest apart in Euclidean distance."""
    squared = np.sum(vectors * vectors, axis=1)
    distances = squared[:, None] + squared[None, :] - 2.0 * vectors @ vectors.T
    i, j = np.unravel_index(np.argmax(distances), distances.shape)
    return int(i), int(j)


def save_kl_curve(path, kl_history, beta_history, title):
    """Plot the training KL per sentence (a moving mean over 50 steps) and the weight β on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    window = max(1, min(50, len(kl_history) // 10))
    smoothed = np.convolve(kl_history, np.ones(window) / window, mode="valid")
    steps = np.arange(window, window + len(smoothed))
    figure, axis = pyplot.subplots(figsize=(6.4, 4.0))
    axis.plot(steps, smoothed, color="tab:blue", label=f"KL, mean of {window} steps")
    axis.set_xlabel("step")
    axis.set_ylabel("KL(q(z|x) || p(z)), nats per sentence")
    axis.set_ylim(bottom=0.0)
    weight_axis = axis.twinx()
    weight_axis.plot(np.arange(1, len(beta_history) + 1), beta_history, color="tab:orange", linestyle="--",
                     label="β (KL weight)")
    weight_axis.set_ylabel("β")
    weight_axis.set_ylim(0.0, 1.05)
    axis.set_title(title, fontsize=10)
    lines = axis.get_lines() + weight_axis.get_lines()
    axis.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def print_comparison(path, figures, plain):
    """Print the KL and reconstruction of the run in ``path`` beside this run's."""
    try:
        with open(path, encoding="utf-8") as stream:
            other = json.load(stream)
    except (OSError, ValueError) as error:
        print(f"--compare: cannot read {path}: {error}")
        return
    label = "this run (plain)" if plain else "this run (annealing + word dropout)"
    other_label = "other run (plain)" if other.get("plain") else "other run (annealing + word dropout)"
    print(f"{'':38s}{'KL':>10s}{'reconstruction':>16s}{'active units':>14s}")
    for name, numbers in ((label, figures), (other_label, other)):
        print(f"{name:38s}{numbers['heldout_kl']:10.3f}{numbers['heldout_reconstruction']:16.3f}"
              f"{numbers['active_units']:14d}")


def main(argv=None):
    args = parse_args(argv)
    try:
        corpus = SentenceCorpus(args.level)
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    level = corpus.level
    max_length = corpus.max_tokens
    print(f"{corpus}; {corpus.unknown_rate():.1%} of held-out tokens are <unk>")

    init_generator, train_generator, eval_seed_generator = mr.Generator(args.seed).spawn(3)
    eval_seed = int(eval_seed_generator.integers(0, 2**31))
    vocabulary = corpus.vocabulary
    model = SentenceVAE(vocabulary.size, args.embedding_dim, args.hidden_size, args.latent_dim,
                        word_dropout=args.word_dropout, pad_id=vocabulary.pad_id, bos_id=vocabulary.bos_id,
                        eos_id=vocabulary.eos_id, unk_id=vocabulary.unk_id, generator=init_generator)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    rows = BatchIterator(np.arange(len(corpus.train_ids)), batch_size=args.batch_size, generator=train_generator)
    heldout_batches = batches_of(corpus, corpus.heldout_ids)
    history = MetricHistory()

    def compute_loss(step):
        batch = corpus.batch([corpus.train_ids[i] for i in next(rows)])
        beta = kl_weight(step, args.anneal_steps, args.anneal_schedule)
        loss, figures = model.loss(batch, beta, train_generator)
        history.append(dict(figures, beta=beta))
        return loss

    def evaluate():
        figures = model.evaluate(heldout_batches, mr.Generator(eval_seed))
        return {"heldout_reconstruction": figures["reconstruction"], "heldout_kl": figures["kl"]}

    trainer = Trainer(
        model, optimizer, compute_loss, generator=train_generator, steps=args.steps, out_dir=args.out,
        checkpoint_every=args.checkpoint_every, clip_grad_norm=args.clip,
        extra_state={"rows": rows, "history": history}, evaluate=evaluate, eval_every=args.eval_every,
        progress=not args.no_progress, description="sentence VAE",
        config={"level": level, "min_tokens": corpus.min_tokens, "max_tokens": corpus.max_tokens,
                "vocabulary_size": vocabulary.size, "embedding_dim": args.embedding_dim,
                "hidden_size": args.hidden_size, "latent_dim": args.latent_dim, "batch_size": args.batch_size,
                "lr": args.lr, "clip": args.clip, "anneal_steps": args.anneal_steps,
                "anneal_schedule": args.anneal_schedule, "word_dropout": args.word_dropout, "seed": args.seed},
    )
    result = run_or_exit(trainer, args.resume, args.stop_after)

    figures = held_out_figures(model, corpus, heldout_batches, eval_seed)
    print(f"held-out, nats per sentence: reconstruction {figures['reconstruction']:.3f}, KL {figures['kl']:.3f}, "
          f"negative ELBO {figures['negative_elbo']:.3f} ({figures['nats_per_token']:.3f} nats per token); "
          f"active units {figures['active_units']} of {args.latent_dim}")

    sample_generator = mr.Generator(eval_seed + 1)
    samples = [vocabulary.decode(ids, level) for ids in
               model.sample_prior(args.samples, max_length, args.temperature, sample_generator)]
    print("--- sentences decoded from z ~ Normal(0, I) ---")
    for sentence in samples:
        print(f"  {sentence}")

    print("--- held-out sentences and their decoding from z = posterior mean ---")
    means = model.posterior_means(heldout_batches)
    reconstructions = []
    for index in np.linspace(0, len(corpus.heldout_ids) - 1, args.samples).round().astype(np.int64).tolist():
        decoded = vocabulary.decode(model.decode(means[index:index + 1], max_length)[0], level)
        reconstructions.append([corpus.heldout_sentences[index], decoded])
        print(f"  {corpus.heldout_sentences[index]}\n    -> {decoded}")

    # The two held-out sentences whose posterior means lie farthest apart make the
    # clearest walk: nearby means often decode to one sentence all the way.
    start, end = farthest_pair(means)
    ends = corpus.batch([corpus.heldout_ids[start], corpus.heldout_ids[end]])
    walk = [vocabulary.decode(ids, level) for ids in model.interpolate(ends, args.walk_steps, max_length)]
    print("--- a walk between the posterior means of the two held-out sentences farthest apart ---")
    print(f"  from: {corpus.heldout_sentences[start]}\n  to:   {corpus.heldout_sentences[end]}")
    for index, sentence in enumerate(walk):
        print(f"  {index / max(1, args.walk_steps - 1):.2f}  {sentence}")

    kl_history = history.get("kl")
    picture = os.path.join(args.out, "kl.png")
    save_kl_curve(picture, kl_history, history.get("beta"),
                  "KL term in training: " + ("plain" if args.plain else "KL annealing and word dropout"))
    print(f"KL curve: {picture}")

    metrics = {
        "level": level,
        "plain": bool(args.plain),
        "anneal_steps": args.anneal_steps,
        "word_dropout": args.word_dropout,
        "heldout_reconstruction": figures["reconstruction"],
        "heldout_kl": figures["kl"],
        "heldout_negative_elbo": figures["negative_elbo"],
        "heldout_nats_per_token": figures["nats_per_token"],
        "active_units": figures["active_units"],
        "latent_dim": args.latent_dim,
        "posterior_mean_variances": figures["posterior_mean_variances"],
        "heldout_sentences": len(corpus.heldout_sentences),
        "train_sentences": len(corpus.train_sentences),
        "vocabulary_size": vocabulary.size,
        "kl_history": kl_history,
        "beta_history": history.get("beta"),
        "prior_samples": samples,
        "reconstructions": reconstructions,
        "latent_walk": walk,
        "latent_walk_ends": [corpus.heldout_sentences[start], corpus.heldout_sentences[end]],
        "pictures": {"kl": picture},
    }
    if args.compare:
        print_comparison(args.compare, metrics, args.plain)
    finish_run(args, result, metrics, name="sentence_vae")


if __name__ == "__main__":
    sys.exit(main())
