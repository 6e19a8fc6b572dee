"""Offline data sets for the examples: Python's bundled documentation and 8x8 digits.

Nothing here downloads: the text comes from ``pydoc_data`` (part of the standard
library) and the digits from scikit-learn's bundled copy. Arrays are plain ndarrays, so
a model converts them to Tensors where it needs them.
"""
from .batching import BatchIterator, iterate_in_order
from .digits import DigitsSplit, load_digits
from .errors import DataError
from .text import (
    CharVocabulary, TextCorpus, default_text, load_corpus, load_topic_paragraphs, random_windows,
    read_text_file, sequential_windows,
)

__all__ = [
    "BatchIterator", "iterate_in_order", "DigitsSplit", "load_digits", "DataError", "CharVocabulary",
    "TextCorpus", "default_text", "load_corpus", "load_topic_paragraphs", "random_windows",
    "read_text_file", "sequential_windows",
]
