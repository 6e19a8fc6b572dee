"""English number words paired with their digits, for 0 to 999,999, made on the fly.

The words follow British usage, with "and" before the last two digits when something
precedes them and a hyphen inside compound tens:

    312    -> "three hundred and twelve"
    12005  -> "twelve thousand and five"
    999999 -> "nine hundred and ninety-nine thousand nine hundred and ninety-nine"

A model reads the words as word tokens (the hyphen only separates two tokens, so
"ninety-nine" is ``["ninety", "nine"]``) and writes the digits one character at a time.

``NumberPairs`` fixes a held-out set of numbers from its own split seed, independent of
the training seed, so every run evaluates on the same numbers and never trains on them.
Training numbers are drawn with an equal share for every digit count (1 to 6), so that
short numbers, which are rare among 0..999,999, are seen as often as long ones.
"""
import re

import numpy as np

from ..random import resolve
from .errors import DataError

MAX_NUMBER = 999_999
MAX_DIGITS = 6

UNITS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SOURCE_WORDS = sorted(set(UNITS + TENS[2:] + ["hundred", "thousand", "and"]))

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def _below_hundred(n):
    if n < 20:
        return UNITS[n]
    tens, units = divmod(n, 10)
    return TENS[tens] if units == 0 else f"{TENS[tens]}-{UNITS[units]}"


def _below_thousand(n):
    """Words for 1 <= n <= 999 (zero is spelled only for the number 0 itself)."""
    hundreds, rest = divmod(n, 100)
    if hundreds == 0:
        return _below_hundred(rest)
    if rest == 0:
        return f"{UNITS[hundreds]} hundred"
    return f"{UNITS[hundreds]} hundred and {_below_hundred(rest)}"


def number_to_words(n):
    """Spell an integer 0 <= n <= 999,999 in English words (British "and").

    Example:
        >>> number_to_words(312)
        'three hundred and twelve'
        >>> number_to_words(1005)
        'one thousand and five'

    Raises:
        DataError: ``n`` is not an integer in [0, 999999].
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_NUMBER:
        raise DataError(f"number_to_words: expected an integer in [0, {MAX_NUMBER}], got {n!r}")
    n = int(n)
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    if thousands == 0:
        return _below_thousand(rest)
    head = f"{_below_thousand(thousands)} thousand"
    if rest == 0:
        return head
    if rest < 100:
        # "and" joins a remainder without hundreds: "twelve thousand and five".
        return f"{head} and {_below_hundred(rest)}"
    return f"{head} {_below_thousand(rest)}"


def tokenize_words(text):
    """Split number words into word tokens; spaces and hyphens both separate tokens.

    Raises:
        DataError: the text contains a word that is not a number word (all of them are listed).
    """
    tokens = re.findall(r"[a-z]+", text.lower())
    unknown = sorted(set(tokens) - set(SOURCE_WORDS))
    if unknown or not tokens:
        raise DataError(
            f"cannot read {text!r} as number words: unknown words {unknown}; use English number words "
            f"from {SOURCE_WORDS[0]!r} to 'thousand', such as 'three hundred and twelve'"
        )
    return tokens


class Vocabulary:
    """Tokens numbered from 0, with padding at id 0 and begin/end-of-sequence markers.

    Args:
        tokens (list of str): the ordinary tokens, in the order their ids should follow.

    Attributes:
        pad_id, bos_id, eos_id (int): the ids of ``<pad>``, ``<s>`` and ``</s>``.
    """

    def __init__(self, tokens):
        self.tokens = [PAD, BOS, EOS] + list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise DataError("Vocabulary: tokens must be distinct")
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    @property
    def size(self):
        return len(self.tokens)

    def __len__(self):
        return len(self.tokens)

    def encode(self, tokens):
        """Map tokens to an int64 array of ids (no markers added)."""
        unknown = [token for token in tokens if token not in self.index]
        if unknown:
            raise DataError(f"tokens {unknown[:5]} are not in this vocabulary of {self.size}")
        return np.array([self.index[token] for token in tokens], dtype=np.int64)

    def decode(self, ids, stop_at_eos=True):
        """Map ids back to tokens, dropping padding and ``<s>`` and stopping at ``</s>``."""
        tokens = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == self.eos_id and stop_at_eos:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            tokens.append(self.tokens[i])
        return tokens

    def __repr__(self):
        return f"Vocabulary(size={self.size})"


SOURCE_VOCABULARY = Vocabulary(SOURCE_WORDS)
TARGET_VOCABULARY = Vocabulary(list("0123456789"))


def pad_sequences(sequences, pad_id=0):
    """Stack int sequences into a right-padded (n, max_length) int64 array and their lengths."""
    lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
    if lengths.size == 0 or lengths.min() < 1:
        raise DataError("pad_sequences: every sequence needs at least one token")
    padded = np.full((len(sequences), int(lengths.max())), pad_id, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        padded[row, :len(sequence)] = sequence
    return padded, lengths


def _digit_count_range(digits):
    """Return the (low, high) range of numbers with exactly ``digits`` digits (0 counts as one digit)."""
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return low, 10 ** digits - 1


class NumberBatch:
    """One padded batch of (words, digits) pairs.

    Attributes:
        numbers (ndarray of int64): (B,) the numbers.
        source (ndarray of int64): (B, S) word ids, right-padded with ``pad_id``.
        source_lengths (ndarray of int64): (B,) words per number.
        decoder_input (ndarray of int64): (B, T) ``<s>`` followed by the digits, padded.
        target (ndarray of int64): (B, T) the digits followed by ``</s>``; padding is
            ``ignore_index`` (-100), the value cross-entropy skips.
    """

    def __init__(self, numbers, ignore_index=-100):
        self.numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
        sources = [SOURCE_VOCABULARY.encode(tokenize_words(number_to_words(n))) for n in self.numbers.tolist()]
        self.source, self.source_lengths = pad_sequences(sources, SOURCE_VOCABULARY.pad_id)
        digits = [TARGET_VOCABULARY.encode(list(str(n))) for n in self.numbers.tolist()]
        bos, eos = TARGET_VOCABULARY.bos_id, TARGET_VOCABULARY.eos_id
        self.decoder_input, _ = pad_sequences([np.concatenate([[bos], d]) for d in digits], TARGET_VOCABULARY.pad_id)
        target, _ = pad_sequences([np.concatenate([d, [eos]]) for d in digits], TARGET_VOCABULARY.pad_id)
        target[self.decoder_input == TARGET_VOCABULARY.pad_id] = ignore_index
        self.target = target

    def __len__(self):
        return len(self.numbers)


class NumberPairs:
    """The number-translation task: a fixed held-out set and a sampler of training numbers.

    Args:
        heldout_fraction (float): the share of 0..999,999 held out (default 0.02, about
            20,000 numbers), chosen independently for each number.
        split_seed (int): the seed of the held-out choice; keep it fixed to compare runs.

    Attributes:
        heldout_mask (ndarray of bool): (1,000,000,) True for held-out numbers.
    """

    def __init__(self, heldout_fraction=0.02, split_seed=1234):
        if not 0.0 < heldout_fraction < 0.5:
            raise DataError(f"NumberPairs: heldout_fraction must be in (0, 0.5), got {heldout_fraction}")
        self.heldout_fraction = heldout_fraction
        self.split_seed = split_seed
        self.heldout_mask = np.random.default_rng(split_seed).random(MAX_NUMBER + 1) < heldout_fraction

    def is_heldout(self, numbers):
        return self.heldout_mask[np.asarray(numbers, dtype=np.int64)]

    def sample_training_numbers(self, count, generator=None):
        """Draw ``count`` training numbers: a digit count uniform in 1..6, then a number
        uniform among those with that many digits, redrawn while it is held out."""
        generator = resolve(generator)
        numbers = np.empty(count, dtype=np.int64)
        pending = np.arange(count)
        while pending.size:
            digits = generator.integers(1, MAX_DIGITS + 1, size=pending.size)
            low = np.where(digits == 1, 0, 10 ** (digits - 1))
            numbers[pending] = generator.integers(low, 10 ** digits)
            pending = pending[self.heldout_mask[numbers[pending]]]
        return numbers

    def training_batch(self, batch_size, generator=None):
        """Draw a NumberBatch of ``batch_size`` training numbers."""
        return NumberBatch(self.sample_training_numbers(batch_size, generator))

    def heldout_numbers(self, count, seed=0):
        """Choose ``count`` distinct held-out numbers, an equal share per digit count where possible.

        Digit counts with fewer held-out numbers than their share (one-digit numbers often
        have none) pass the rest of their share on to the longer ones. The choice depends
        only on ``count``, ``seed`` and the split, so repeated calls agree.

        Returns:
            ndarray of int64: (count,) numbers sorted ascending.
        """
        rng = np.random.default_rng(seed)
        available = int(self.heldout_mask.sum())
        if not 1 <= count <= available:
            raise DataError(f"heldout_numbers: count must be between 1 and {available}, got {count}")
        chosen = []
        remaining = count
        for digits in range(1, MAX_DIGITS + 1):
            low, high = _digit_count_range(digits)
            candidates = low + np.flatnonzero(self.heldout_mask[low:high + 1])
            share = remaining // (MAX_DIGITS - digits + 1)
            take = min(share, candidates.size)
            chosen.append(rng.choice(candidates, size=take, replace=False))
            remaining -= take
        return np.sort(np.concatenate(chosen)).astype(np.int64)


def digits_to_number(tokens):
    """Read decoded digit tokens as an int, or None when they are not a well-formed number."""
    text = "".join(tokens)
    if not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return None
    return int(text)
