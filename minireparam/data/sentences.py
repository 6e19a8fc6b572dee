"""Sentences of Python's bundled documentation, tokenized by word or by character.

The sentences come from the (topic, paragraph) pairs of ``pydoc_data.topics``: each
paragraph's lines are joined with single spaces and cut after ".", "!" or "?" when the
next word starts with a capital letter, a quote or a bracket. Code paragraphs split
this way give odd "sentences"; the length limits drop most of them.

Every distinct sentence is either a training or a held-out sentence, decided by a CRC-32
hash of its text (about 10% are held out). The hash depends on nothing but the text, so
the sentence VAE and the semantic-search evaluation agree on the split without sharing
any state, and a sentence never trained on stays unseen by every model.
"""
import re
import zlib
from collections import Counter

import numpy as np

from .errors import DataError
from .text import load_topic_paragraphs

HELDOUT_BUCKETS = 10    # one hash bucket in ten is held out
LEVELS = ("word", "char")
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
DEFAULT_LIMITS = {
    "word": {"min_tokens": 4, "max_tokens": 30, "min_count": 2},
    "char": {"min_tokens": 20, "max_tokens": 120, "min_count": 1},
}

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[*])")
# Section-title underlines such as "*****" or "=====" (three or more of one mark).
_RULE = re.compile(r"([*=~^#+-])\1{2,}")
_WORD = re.compile(r"[a-z_][a-z0-9_]*|\d+|\S")


def normalize_whitespace(text):
    """Collapse every run of whitespace into one space and strip the ends."""
    return re.sub(r"\s+", " ", text).strip()


def split_sentences(paragraph, skip_grammar=True):
    """Split a paragraph into sentences (whitespace normalized, empty pieces dropped).

    Title underlines ("*****") are removed first. Grammar rules (lines with "::=") are
    not sentences, so with ``skip_grammar`` a paragraph containing one gives none.
    """
    if skip_grammar and "::=" in paragraph:
        return []
    text = normalize_whitespace(_RULE.sub(" ", paragraph))
    return [piece for piece in _SENTENCE_END.split(text) if piece]


def is_heldout(sentence):
    """True for the sentences held out of training (a fixed 1 in 10, by CRC-32 of the text)."""
    return zlib.crc32(sentence.encode("utf-8")) % HELDOUT_BUCKETS == 0


def tokenize(sentence, level):
    """Split a sentence into tokens.

    ``"word"``: lowercased identifiers and words (``__init__`` stays one token), runs of
    digits, and each other non-space character (punctuation, quotes) on its own.
    ``"char"``: every character, case kept.
    """
    if level == "word":
        return _WORD.findall(sentence.lower())
    if level == "char":
        return list(sentence)
    raise DataError(f"tokenize: level must be one of {LEVELS}, got {level!r}")


def topic_sentences(pairs=None):
    """Return the (topic, sentence) pairs of the documentation, in topic order.

    Args:
        pairs (list of (str, str) | None): (topic, paragraph) pairs; the pydoc ones by default.
    """
    pairs = load_topic_paragraphs() if pairs is None else pairs
    return [(topic, sentence) for topic, paragraph in pairs for sentence in split_sentences(paragraph)]


class TokenVocabulary:
    """Tokens numbered from 0: ``<pad>``, ``<s>``, ``</s>``, ``<unk>``, then the kept tokens.

    Args:
        token_lists (iterable of list of str): tokenized training sentences.
        min_count (int): keep tokens seen at least this often; rarer ones map to ``<unk>``.
        max_size (int | None): keep at most this many ordinary tokens (the most frequent;
            ties broken alphabetically, so the vocabulary is the same on every run).
    """

    def __init__(self, token_lists, min_count=1, max_size=None):
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = sorted((token for token, count in counts.items() if count >= min_count),
                      key=lambda token: (-counts[token], token))
        if max_size is not None:
            kept = kept[:max_size]
        self.tokens = [PAD, BOS, EOS, UNK] + sorted(kept)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = 0, 1, 2, 3

    @property
    def size(self):
        return len(self.tokens)

    def __len__(self):
        return len(self.tokens)

    def encode(self, tokens):
        """Map tokens to int64 ids, unknown ones to ``<unk>``."""
        return np.array([self.index.get(token, self.unk_id) for token in tokens], dtype=np.int64)

    def decode(self, ids, level="word"):
        """Map ids to text up to the first ``</s>``; words are joined by spaces, characters directly."""
        tokens = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                tokens.append(self.tokens[i])
        return (" " if level == "word" else "").join(tokens)

    def state(self):
        return list(self.tokens)

    def __repr__(self):
        return f"TokenVocabulary(size={self.size})"


class SentenceBatch:
    """A right-padded batch of sentences for a sentence VAE.

    Attributes:
        tokens (ndarray of int64): (B, L) the token ids, padded with ``pad_id``.
        lengths (ndarray of int64): (B,) tokens per sentence.
        decoder_input (ndarray of int64): (B, L + 1) ``<s>`` then the tokens.
        target (ndarray of int64): (B, L + 1) the tokens then ``</s>``; padding is -100.
    """

    def __init__(self, id_lists, vocabulary, ignore_index=-100):
        lengths = np.array([len(ids) for ids in id_lists], dtype=np.int64)
        if lengths.size == 0 or lengths.min() < 1:
            raise DataError("SentenceBatch: every sentence needs at least one token")
        width = int(lengths.max())
        tokens = np.full((len(id_lists), width), vocabulary.pad_id, dtype=np.int64)
        for row, ids in enumerate(id_lists):
            tokens[row, :len(ids)] = ids
        self.tokens = tokens
        self.lengths = lengths
        self.decoder_input = np.concatenate([np.full((len(id_lists), 1), vocabulary.bos_id), tokens], axis=1)
        target = np.concatenate([tokens, np.full((len(id_lists), 1), vocabulary.pad_id)], axis=1)
        target[np.arange(len(id_lists)), lengths] = vocabulary.eos_id
        positions = np.arange(width + 1)[None, :]
        target[positions > lengths[:, None]] = ignore_index
        self.target = target

    def __len__(self):
        return len(self.lengths)


class SentenceCorpus:
    """The documentation's sentences, split into training and held-out ones, with a vocabulary.

    Args:
        level (str): ``"word"`` or ``"char"``.
        min_tokens, max_tokens (int): keep sentences with this many tokens (defaults:
            4 to 30 words, or 20 to 120 characters).
        min_count (int): a word must occur this often in the training sentences to get an
            id of its own (default 2; 1 at the character level).
        pairs (list of (str, str) | None): (topic, paragraph) pairs (default: pydoc's).

    Attributes:
        train_sentences, heldout_sentences (list of str): distinct sentences, in first-seen order.
        train_ids, heldout_ids (list of ndarray): their token ids.
        topics (dict): sentence -> sorted list of the topics whose paragraphs contain it.
        vocabulary (TokenVocabulary): built from the training sentences only.
    """

    def __init__(self, level="word", min_tokens=None, max_tokens=None, min_count=None, pairs=None):
        if level not in LEVELS:
            raise DataError(f"SentenceCorpus: level must be one of {LEVELS}, got {level!r}")
        self.level = level
        defaults = DEFAULT_LIMITS[level]
        self.min_tokens = defaults["min_tokens"] if min_tokens is None else min_tokens
        self.max_tokens = defaults["max_tokens"] if max_tokens is None else max_tokens
        min_count = defaults["min_count"] if min_count is None else min_count

        self.topics = {}
        for topic, sentence in topic_sentences(pairs):
            if self.min_tokens <= len(tokenize(sentence, level)) <= self.max_tokens:
                self.topics.setdefault(sentence, set()).add(topic)
        self.topics = {sentence: sorted(topics) for sentence, topics in self.topics.items()}
        self.train_sentences = [s for s in self.topics if not is_heldout(s)]
        self.heldout_sentences = [s for s in self.topics if is_heldout(s)]
        if not self.train_sentences or not self.heldout_sentences:
            raise DataError(
                f"SentenceCorpus: {len(self.train_sentences)} training and {len(self.heldout_sentences)} held-out "
                f"sentences have {self.min_tokens} to {self.max_tokens} tokens; widen the length limits"
            )
        train_tokens = [tokenize(s, level) for s in self.train_sentences]
        self.vocabulary = TokenVocabulary(train_tokens, min_count=min_count)
        self.train_ids = [self.vocabulary.encode(tokens) for tokens in train_tokens]
        self.heldout_ids = [self.vocabulary.encode(tokenize(s, level)) for s in self.heldout_sentences]

    def encode(self, sentence):
        """Token ids of any text at this corpus's level (unknown tokens become ``<unk>``)."""
        return self.vocabulary.encode(tokenize(sentence, self.level))

    def batch(self, id_lists):
        return SentenceBatch(id_lists, self.vocabulary)

    def unknown_rate(self, which="heldout"):
        """Return the share of tokens that map to ``<unk>`` in the held-out or training sentences."""
        id_lists = self.heldout_ids if which == "heldout" else self.train_ids
        ids = np.concatenate(id_lists)
        return float(np.mean(ids == self.vocabulary.unk_id))

    def __repr__(self):
        return (f"SentenceCorpus(level={self.level!r}, train={len(self.train_sentences)}, "
                f"heldout={len(self.heldout_sentences)}, vocabulary={self.vocabulary.size})")
