"""Text for character-level language models: corpus, splits, vocabulary and windows.

The default corpus is Python's own documentation as shipped in the standard library:
the values of ``pydoc_data.topics.topics`` in sorted key order, joined by blank lines
(465,126 characters on Python 3.11). The last 10% of the characters is the validation
split, so validation text is never seen in training.
"""
import os

import numpy as np

from ..random import resolve
from .errors import DataError

VALIDATION_FRACTION = 0.1


def _topics():
    """Return the ``pydoc_data.topics.topics`` dict (topic name -> help text)."""
    from pydoc_data.topics import topics

    return topics


def default_text():
    """Return the default corpus: every pydoc topic text in sorted key order, joined by a blank line."""
    topics = _topics()
    return "\n\n".join(topics[key] for key in sorted(topics))


def load_topic_paragraphs():
    """Return the (topic, paragraph) pairs of the pydoc topics, in sorted topic order.

    A paragraph is a block of lines between blank lines, with surrounding blank lines
    removed and its indentation kept (code samples in the help text are indented).

    Returns:
        list of (str, str): the topic name (for example ``"assert"``) and one paragraph.
    """
    pairs = []
    topics = _topics()
    for key in sorted(topics):
        for paragraph in _split_paragraphs(topics[key]):
            pairs.append((key, paragraph))
    return pairs


def _split_paragraphs(text):
    paragraphs = []
    current = []
    for line in text.splitlines():
        if line.strip():
            current.append(line.rstrip())
        elif current:
            paragraphs.append("\n".join(current))
            current = []
    if current:
        paragraphs.append("\n".join(current))
    return paragraphs


def read_text_file(path):
    """Read a UTF-8 text file, raising a clear error when it cannot serve as a corpus.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a regular file.
        DataError: the file is empty, or is not valid UTF-8 (the message gives the byte
            offset of the first invalid byte).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"text file not found: {path!r}; pass the path of an existing UTF-8 file, or leave "
            "the text option out to use Python's bundled documentation"
        )
    with open(path, "rb") as handle:
        raw = handle.read()
    if not raw.strip():
        raise DataError(f"text file {path!r} is empty (or only whitespace); pass a file with text in it")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"text file {path!r} is not valid UTF-8: byte {error.start} is {raw[error.start:error.start + 1]!r} "
            f"({error.reason}); convert the file to UTF-8, for example with "
            f"`iconv -f latin1 -t utf-8 {path} > converted.txt`"
        ) from None


class CharVocabulary:
    """A character vocabulary: the sorted distinct characters of a text, numbered from 0.

    Args:
        text (str): the text whose characters make up the vocabulary.

    Example:
        >>> vocabulary = CharVocabulary("hello")
        >>> vocabulary.decode(vocabulary.encode("hello"))
        'hello'
    """

    def __init__(self, text):
        if not text:
            raise DataError("cannot build a character vocabulary from an empty text")
        self.chars = sorted(set(text))
        self.index = {char: i for i, char in enumerate(self.chars)}

    @property
    def size(self):
        """The number of distinct characters."""
        return len(self.chars)

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """Map a string to character ids.

        Returns:
            ndarray of int64, shape (len(text),).

        Raises:
            DataError: ``text`` contains characters outside the vocabulary (all of them are listed).
        """
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            raise DataError(
                f"text contains {len(unknown)} character(s) outside the vocabulary of {self.size}: "
                f"{''.join(unknown)!r}; use only characters that occur in the training text"
            )
        return np.fromiter((self.index[char] for char in text), dtype=np.int64, count=len(text))

    def decode(self, ids):
        """Map character ids (any integer sequence or ndarray) back to a string."""
        ids = np.asarray(ids).reshape(-1)
        bad = ids[(ids < 0) | (ids >= self.size)]
        if bad.size:
            raise DataError(f"character ids {bad[:5].tolist()} are outside [0, {self.size}) for this vocabulary")
        return "".join(self.chars[i] for i in ids.tolist())

    def __repr__(self):
        return f"CharVocabulary(size={self.size})"


class TextCorpus:
    """A text split into training and validation parts, with its vocabulary and ids.

    Args:
        text (str): the whole corpus.
        validation_fraction (float): the share of characters at the end that form the
            validation split (default 0.1).
        source (str): where the text came from, for messages and metrics.

    Attributes:
        vocabulary (CharVocabulary): built from the whole text, so every validation
            character has an id.
        train_ids, validation_ids (ndarray of int64): the two splits, encoded.
    """

    def __init__(self, text, validation_fraction=VALIDATION_FRACTION, source="text"):
        if not 0.0 < validation_fraction < 1.0:
            raise DataError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
        if len(text) < 2:
            raise DataError(f"{source} has {len(text)} character(s); a corpus needs at least 2 to split")
        self.text = text
        self.source = source
        self.validation_fraction = validation_fraction
        split = len(text) - max(1, int(round(len(text) * validation_fraction)))
        self.train_text = text[:split]
        self.validation_text = text[split:]
        self.vocabulary = CharVocabulary(text)
        self.train_ids = self.vocabulary.encode(self.train_text)
        self.validation_ids = self.vocabulary.encode(self.validation_text)

    def __repr__(self):
        return (
            f"TextCorpus(source={self.source!r}, train={len(self.train_text)} chars, "
            f"validation={len(self.validation_text)} chars, vocabulary={self.vocabulary.size})"
        )


def load_corpus(path=None, validation_fraction=VALIDATION_FRACTION):
    """Load the default pydoc corpus, or the UTF-8 file at ``path``, as a TextCorpus."""
    if path is None:
        return TextCorpus(default_text(), validation_fraction, source="pydoc_data.topics")
    return TextCorpus(read_text_file(path), validation_fraction, source=os.fspath(path))


def _check_length(ids, length, split_name):
    if length < 1:
        raise DataError(f"sequence length must be at least 1, got {length}")
    if len(ids) < length + 1:
        raise DataError(
            f"the {split_name} split has {len(ids)} characters, fewer than sequence length + 1 = "
            f"{length + 1}; use a longer text or a shorter sequence length"
        )


def random_windows(ids, batch_size, length, generator=None, split_name="training"):
    """Draw ``batch_size`` windows at uniformly random offsets, for next-character prediction.

    Args:
        ids (ndarray of int64): an encoded split.
        batch_size (int): windows per batch.
        length (int): characters per window.
        generator (Generator | None): the source of the offsets (default: the global one).
        split_name (str): named in the error for a split that is too short.

    Returns:
        (inputs, targets): int64 arrays of shape (batch_size, length), where
        ``targets[b, t]`` is the character after ``inputs[b, t]``.
    """
    _check_length(ids, length, split_name)
    starts = resolve(generator).integers(0, len(ids) - length, size=batch_size)
    offsets = starts[:, None] + np.arange(length + 1)[None, :]
    windows = ids[offsets]
    return windows[:, :-1], windows[:, 1:]


def sequential_windows(ids, length, max_windows=None, split_name="validation"):
    """Cut a split into non-overlapping windows for evaluation (no randomness).

    Every character after the first, up to the last full window, is a target exactly
    once. With ``max_windows`` set and the split longer than that, the windows are
    spread evenly over the whole split instead of taken from its start.

    Returns:
        (inputs, targets): int64 arrays of shape (n_windows, length).
    """
    _check_length(ids, length, split_name)
    n_windows = (len(ids) - 1) // length
    starts = np.arange(n_windows) * length
    if max_windows is not None and n_windows > max_windows:
        starts = starts[np.linspace(0, n_windows - 1, max_windows).round().astype(np.int64)]
    offsets = starts[:, None] + np.arange(length + 1)[None, :]
    windows = ids[offsets]
    return windows[:, :-1], windows[:, 1:]
