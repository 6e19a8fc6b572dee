"""Search Python's documentation paragraphs by meaning, with a trained sentence encoder.

Every paragraph of the pydoc topics is embedded as the mean of its sentences' vectors,
and a text query returns the paragraphs with the highest cosine similarity. The encoder
comes from --checkpoint: a sentence VAE checkpoint from examples/sentence_vae.py (the
vector is the posterior mean E_q[z|x]) or a character LSTM checkpoint from
examples/char_lstm.py (the vector is the LSTM's hidden state after the sentence's last
character). With --quick the script trains a small sentence VAE itself for a few
seconds instead, so it runs without any checkpoint.

Evaluation: the held-out sentences of the sentence VAE's split (1 in 10 by a hash of the
text, never trained on) that have 4 to 30 words are the queries. Each is removed from
the indexed paragraphs. A query is found when one of the 5 nearest paragraphs belongs
to a topic whose text contained it. The script prints this recall@5 for the encoder,
for a bag-of-characters baseline (character counts, cosine similarity) and for a
random ranking. With a char-LSTM checkpoint only sentences from the topics in the
language model's validation split count, since it trained on the others' text.

Writes metrics.json (and with --quick the encoder's checkpoint) into --out.
"""
import argparse
import os
import sys
import time

import numpy as np

import minireparam as mr
from minireparam import optim
from minireparam.data import BatchIterator, CharVocabulary, DataError, load_corpus
from minireparam.data.sentences import SentenceCorpus, tokenize
from minireparam.data.text import default_text
from minireparam.models import CharLSTM
from minireparam.models.search import (
    LanguageModelEncoder, SearchIndex, SentenceVAEEncoder, bag_of_characters, chance_recall_at_k,
    make_search_task, recall_at_k, validation_topics,
)
from minireparam.models.sentence_vae import SentenceVAE, kl_weight
from minireparam.models.training import (
    Trainer, add_training_arguments, fill_defaults, finish_run, format_seconds, kernel_info, positive_int,
    run_or_exit, write_metrics,
)
from minireparam.serialization import CheckpointError

QUERY_WORDS = (4, 30)
DEFAULT_QUERY = "how do I handle an exception raised inside a with statement"
DEFAULTS = {"steps": 0, "k": 5, "show": 3}
QUICK = {"steps": 60}
QUICK_MODEL = {"embedding_dim": 32, "hidden_size": 64, "latent_dim": 16, "batch_size": 32, "lr": 3e-3,
               "anneal_steps": 30, "word_dropout": 0.3}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/sentence_vae/checkpoint.mrp", metavar="PATH",
                        help="a checkpoint of examples/sentence_vae.py or examples/char_lstm.py "
                             "(default: runs/sentence_vae/checkpoint.mrp; ignored with --quick)")
    parser.add_argument("--query", action="append", default=[], metavar="TEXT",
                        help=f"a question to answer from the documentation; repeatable (default: {DEFAULT_QUERY!r})")
    parser.add_argument("--k", type=positive_int, metavar="N",
                        help="paragraphs per query in the evaluation, the k of recall@k (default: 5)")
    parser.add_argument("--show", type=positive_int, metavar="N",
                        help="paragraphs printed for each --query (default: 3)")
    parser.add_argument("--max-queries", type=positive_int, metavar="N",
                        help="evaluate on at most N held-out sentences (default: all of them)")
    add_training_arguments(parser, out="runs/semantic_search", checkpoint_every=50, steps=0, quick_steps=60)
    parser.epilog = ("Without --quick nothing is trained (--steps is for --quick, default 60 there), so "
                     "--checkpoint must exist.")
    args = fill_defaults(parser.parse_args(argv), DEFAULTS, QUICK)
    if not args.query:
        args.query = [DEFAULT_QUERY]
    return args


def train_quick_encoder(args):
    """Train a small word-level sentence VAE with the shared harness; return (encoder, result)."""
    corpus = SentenceCorpus("word")
    init_generator, train_generator = mr.Generator(args.seed).spawn(2)
    settings = QUICK_MODEL
    vocabulary = corpus.vocabulary
    model = SentenceVAE(vocabulary.size, settings["embedding_dim"], settings["hidden_size"], settings["latent_dim"],
                        word_dropout=settings["word_dropout"], pad_id=vocabulary.pad_id, bos_id=vocabulary.bos_id,
                        eos_id=vocabulary.eos_id, unk_id=vocabulary.unk_id, generator=init_generator)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    rows = BatchIterator(np.arange(len(corpus.train_ids)), batch_size=settings["batch_size"],
                         generator=train_generator)

    def compute_loss(step):
        batch = corpus.batch([corpus.train_ids[i] for i in next(rows)])
        loss, _figures = model.loss(batch, kl_weight(step, settings["anneal_steps"]), train_generator)
        return loss

    trainer = Trainer(
        model, optimizer, compute_loss, generator=train_generator, steps=args.steps, out_dir=args.out,
        checkpoint_every=args.checkpoint_every, clip_grad_norm=5.0, extra_state={"rows": rows},
        progress=not args.no_progress, description="encoder", config=dict(settings, seed=args.seed),
    )
    result = run_or_exit(trainer, args.resume, args.stop_after)
    return SentenceVAEEncoder(model, vocabulary, "word"), "sentence VAE (trained with --quick)", result


def load_encoder(path):
    """Rebuild the encoder a training checkpoint describes; return (encoder, description, query topics)."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: checkpoint not found: {path}; train one with examples/sentence_vae.py "
                         "(or examples/char_lstm.py), or run with --quick to train a small encoder here")
    try:
        state = mr.load(path)
    except CheckpointError as error:
        raise SystemExit(f"error: {error}") from None
    config = state.get("config", {}) if isinstance(state, dict) else {}
    if "latent_dim" in config and "level" in config:
        return load_sentence_vae(state, config, path)
    if "text" in config and "hidden_size" in config:
        return load_char_lstm(state, config, path)
    raise SystemExit(f"error: {path} is not a checkpoint of examples/sentence_vae.py or examples/char_lstm.py")


def load_sentence_vae(state, config, path):
    corpus = SentenceCorpus(config["level"], config["min_tokens"], config["max_tokens"])
    vocabulary = corpus.vocabulary
    if vocabulary.size != config["vocabulary_size"]:
        raise SystemExit(
            f"error: {path} was trained with a vocabulary of {config['vocabulary_size']} tokens, but this Python's "
            f"documentation gives {vocabulary.size}; retrain examples/sentence_vae.py with this Python"
        )
    model = SentenceVAE(vocabulary.size, config["embedding_dim"], config["hidden_size"], config["latent_dim"],
                        pad_id=vocabulary.pad_id, bos_id=vocabulary.bos_id, eos_id=vocabulary.eos_id,
                        unk_id=vocabulary.unk_id)
    model.load_state_dict(state["model"])
    description = f"sentence VAE ({config['level']} level, latent {config['latent_dim']}, step {state['step']})"
    return SentenceVAEEncoder(model, vocabulary, config["level"]), description, None


def load_char_lstm(state, config, path):
    source = config["text"]
    try:
        text = default_text() if source == "pydoc_data.topics" else load_corpus(source).text
    except (OSError, DataError) as error:
        raise SystemExit(f"error: cannot rebuild the vocabulary of {path} from its text {source!r}: {error}") from None
    vocabulary = CharVocabulary(text)
    model = CharLSTM(vocabulary.size, config["embedding_dim"], config["hidden_size"])
    model.load_state_dict(state["model"])
    description = f"char-LSTM final hidden state ({config['hidden_size']} units, step {state['step']})"
    # The language model trained on the first 90% of the text: evaluate on the rest only.
    topics = validation_topics() if source == "pydoc_data.topics" else None
    return LanguageModelEncoder(model, vocabulary), description, topics


def accept_query(sentence):
    return QUERY_WORDS[0] <= len(tokenize(sentence, "word")) <= QUERY_WORDS[1]


def evaluate(encoder, task, k):
    """Recall@k of the encoder, the bag-of-characters baseline and a random ranking; and the encoder's index."""
    topics = [topic for topic, _ in task.paragraphs]
    texts = [" ".join(sentences) for _, sentences in task.paragraphs]
    query_sentences = [sentence for sentence, _ in task.queries]
    query_topics = [wanted for _, wanted in task.queries]

    started = time.perf_counter()
    index = SearchIndex(encoder.encode_paragraphs([sentences for _, sentences in task.paragraphs]), topics, texts)
    encoder_recall, _hits = recall_at_k(index, encoder.encode_sentences(query_sentences), query_topics, k)
    seconds = time.perf_counter() - started

    alphabet = "".join(sorted(set("".join(texts))))
    baseline = SearchIndex(bag_of_characters(texts, alphabet), topics, texts)
    baseline_recall, _ = recall_at_k(baseline, bag_of_characters(query_sentences, alphabet), query_topics, k)
    figures = {
        "encoder_recall": encoder_recall,
        "bag_of_characters_recall": baseline_recall,
        "random_recall": chance_recall_at_k(index, query_topics, k),
        "encode_seconds": seconds,
    }
    return figures, index


def answer(encoder, index, query, show):
    indices, similarities = index.search(encoder.encode_sentences([query]), show)
    print(f"--- {query!r} ---")
    for i, similarity in zip(indices[0].tolist(), similarities[0].tolist()):
        text = index.texts[i]
        print(f"  [{similarity:.3f}] ({index.topics[i]}) {text[:160]}{'...' if len(text) > 160 else ''}")


def main(argv=None):
    args = parse_args(argv)
    result = None
    allowed_topics = None
    if args.quick:
        encoder, description, result = train_quick_encoder(args)
    else:
        encoder, description, allowed_topics = load_encoder(args.checkpoint)
    task = make_search_task(accept_query, allowed_topics, args.max_queries)
    print(f"encoder: {description}; {len(task.paragraphs)} paragraphs indexed, {len(task.queries)} held-out queries")

    figures, index = evaluate(encoder, task, args.k)
    print(f"recall@{args.k} of the held-out sentences' topics: encoder {figures['encoder_recall']:.3f}, "
          f"bag of characters {figures['bag_of_characters_recall']:.3f}, random ranking "
          f"{figures['random_recall']:.3f} ({format_seconds(figures['encode_seconds'])} to embed and search)")
    for query in args.query:
        answer(encoder, index, query, args.show)

    figures.update({
        "encoder": description,
        "k": args.k,
        "paragraphs": len(task.paragraphs),
        "queries": len(task.queries),
        "query_topics_restricted": allowed_topics is not None,
        "checkpoint_used": None if args.quick else args.checkpoint,
        "example_queries": args.query,
    })
    if result is not None:
        finish_run(args, result, figures, name="semantic_search")
        return
    metrics = dict(figures, example="semantic_search", seed=args.seed, steps=0, quick=False, kernels=kernel_info())
    write_metrics(args.metrics, metrics)
    print(f"metrics written to {args.metrics}")


if __name__ == "__main__":
    sys.exit(main())
