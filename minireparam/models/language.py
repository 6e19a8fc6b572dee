"""Pieces shared by the character language models: bits per character and sampling.

Bits per character is the mean next-character cross-entropy in nats divided by ln 2.
A model that predicts every character uniformly among V scores log2(V) bits (6.7 for
the 103 characters of the default corpus).
"""
import math

import numpy as np

from ..autograd.grad_mode import no_grad
from ..random import resolve

LN2 = math.log(2.0)


def bits_per_character(loss_fn, inputs, targets, batch_size=128):
    """Return the mean cross-entropy in bits per character over all windows.

    Args:
        loss_fn (callable): ``loss_fn(inputs, targets) -> Tensor``, the mean cross-entropy
            in nats of one batch (for example ``model.loss``).
        inputs, targets (ndarray of int64): windows of shape (n, length).
        batch_size (int): windows per forward pass.

    Returns:
        float: total nats over every target character, divided by their count and ln 2.
    """
    total_nats = 0.0
    count = 0
    with no_grad():
        for start in range(0, len(inputs), batch_size):
            batch_inputs = inputs[start:start + batch_size]
            batch_targets = targets[start:start + batch_size]
            loss = loss_fn(batch_inputs, batch_targets).item()
            total_nats += loss * batch_targets.size
            count += batch_targets.size
    return total_nats / count / LN2


def sample_next(logits, temperature, generator=None):
    """Draw one id per row from softmax(logits / temperature), or the argmax at temperature 0.

    Args:
        logits (ndarray): shape (batch, vocabulary).
        temperature (float): >= 0; below 1 sharpens the distribution, above 1 flattens it.
        generator (Generator | None): the source of the uniform draws.

    Returns:
        ndarray of int64, shape (batch,).
    """
    if temperature < 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return logits.argmax(axis=-1).astype(np.int64)

    scaled = logits / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    probabilities = np.exp(scaled)
    cumulative = np.cumsum(probabilities, axis=-1)
    cumulative /= cumulative[:, -1:]
    # Inverse-CDF sampling: the first id whose cumulative probability exceeds u.
    uniform = resolve(generator).uniform(0.0, 1.0, size=(len(logits), 1), dtype=np.float64)
    choice = (cumulative <= uniform).sum(axis=-1)
    return np.minimum(choice, logits.shape[-1] - 1).astype(np.int64)


def default_prompt(vocabulary, text, preferred="The "):
    """Return ``preferred`` if every character of it is in ``vocabulary``, else the first character of ``text``.

    A user's own corpus may lack the characters of the usual prompt, and sampling then
    still has a valid start.
    """
    if set(preferred) <= set(vocabulary.chars):
        return preferred
    return text[0]
