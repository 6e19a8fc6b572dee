"""A sentence VAE: an LSTM encoder to a Gaussian latent, an LSTM decoder back to tokens.

The encoder reads a sentence (word or character ids) with an LSTM, and its final hidden
state gives the mean and log-variance of q(z|x) = Normal(μ, σ). A latent drawn with the
reparameterization z = μ + σ·ε sets the decoder's initial hidden state (tanh of a linear
map) and is also appended to the decoder's input at every step, so every prediction is
conditioned on it. The decoder is a language model over the sentence, ``<s>`` to ``</s>``.

The loss per sentence is the negative ELBO, reconstruction + β·KL, where the
reconstruction is the summed token cross-entropy in nats and the KL to p(z) =
Normal(0, I) is analytic. Two training aids fight posterior collapse (the decoder
learning to ignore z, which drives the KL to zero):

* KL cost annealing: β rises from 0 to 1 over the first steps, so the encoder learns to
  put information in z before the KL cost presses it towards the prior;
* word dropout: a share of the decoder's input tokens is replaced by ``<unk>``, so the
  decoder cannot predict every token from the previous ones alone and leans on z.

``active_units`` counts the latent dimensions the model uses: a dimension u is active
when Cov_x(E_q[z_u | x]) > 0.01, that is, when its posterior mean moves with the input.
"""
import math

import numpy as np

from .. import nn, ops
from ..autograd.grad_mode import no_grad
from ..distributions import Normal, kl_divergence
from ..errors import ShapeError
from ..nn import functional as F
from ..ops._util import to_tensor
from ..random import resolve
from .language import sample_next

ACTIVE_UNIT_THRESHOLD = 0.01
SCHEDULES = ("linear", "logistic")


def kl_weight(step, anneal_steps, schedule="linear"):
    """β at ``step`` (from 1): 1 without annealing, else rising from about 0 to 1 over ``anneal_steps``.

    ``"linear"`` is min(1, step / anneal_steps). ``"logistic"`` is 1 / (1 + exp(−10·(step /
    anneal_steps − 0.5))): flat near 0 at first, 0.5 at the midpoint, near 1 at the end.
    """
    if anneal_steps <= 0:
        return 1.0
    if schedule not in SCHEDULES:
        raise ValueError(f"kl_weight: schedule must be one of {SCHEDULES}, got {schedule!r}")
    progress = step / anneal_steps
    if schedule == "linear":
        return float(min(1.0, progress))
    return float(1.0 / (1.0 + math.exp(-10.0 * (progress - 0.5))))


def _final_states(outputs, lengths):
    """outputs (B, T, H) -> the output at position length - 1 of each row, (B, H)."""
    index = np.broadcast_to((np.asarray(lengths) - 1)[:, None, None], (outputs.shape[0], 1, outputs.shape[2]))
    return ops.squeeze(ops.take_along_axis(outputs, np.ascontiguousarray(index), axis=1), 1)


class SentenceVAE(nn.Module):
    """Encode sentences to a Gaussian latent and decode them back with LSTMs.

    Args:
        vocab_size (int): tokens, including ``<pad>``, ``<s>``, ``</s>`` and ``<unk>``.
        embedding_dim (int): token embedding size, shared by encoder and decoder (default 128).
        hidden_size (int): LSTM units of the encoder and of the decoder (default 256).
        latent_dim (int): size of z (default 16).
        word_dropout (float): share of decoder input tokens replaced by ``<unk>`` in training.
        pad_id, bos_id, eos_id, unk_id (int): the special token ids.
        generator (Generator | None): the initialization stream.

    Shapes:
        tokens (B, L) int64 right-padded, lengths (B,), decoder_input and target (B, L + 1).
    """

    def __init__(self, vocab_size, embedding_dim=128, hidden_size=256, latent_dim=16, word_dropout=0.0,
                 pad_id=0, bos_id=1, eos_id=2, unk_id=3, generator=None):
        super().__init__()
        if not 0.0 <= word_dropout <= 1.0:
            raise ValueError(f"SentenceVAE: word_dropout must be in [0, 1], got {word_dropout}")
        self.vocab_size = vocab_size
        self.latent_dim = latent_dim
        self.word_dropout = word_dropout
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = pad_id, bos_id, eos_id, unk_id
        self.embedding = nn.Embedding(vocab_size, embedding_dim, generator=generator)
        self.encoder = nn.LSTM(embedding_dim, hidden_size, batch_first=True, generator=generator)
        self.to_mean = nn.Linear(hidden_size, latent_dim, generator=generator)
        self.to_logvar = nn.Linear(hidden_size, latent_dim, generator=generator)
        self.latent_to_hidden = nn.Linear(latent_dim, hidden_size, generator=generator)
        self.decoder = nn.LSTM(embedding_dim + latent_dim, hidden_size, batch_first=True, generator=generator)
        self.head = nn.Linear(hidden_size, vocab_size, generator=generator)

    # -- the two halves -----------------------------------------------------------------------

    def encode(self, tokens, lengths):
        """Return q(z|x) as a Normal with batch shape (B, latent_dim)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if tokens.ndim != 2 or lengths.shape != (tokens.shape[0],):
            raise ShapeError(f"SentenceVAE.encode: tokens must be (B, L) with lengths (B,), got {tokens.shape} "
                             f"and {lengths.shape}")
        if lengths.min() < 1 or lengths.max() > tokens.shape[1]:
            raise ValueError(f"SentenceVAE.encode: lengths must be in [1, {tokens.shape[1]}], got "
                             f"{lengths.min()}..{lengths.max()}")
        outputs, _state = self.encoder(self.embedding(to_tensor(tokens)))
        final = _final_states(outputs, lengths)
        return Normal(self.to_mean(final), ops.exp(0.5 * self.to_logvar(final)))

    def initial_state(self, z):
        h0 = ops.expand_dims(ops.tanh(self.latent_to_hidden(z)), 0)
        return h0, to_tensor(np.zeros(h0.shape, dtype=h0.dtype))

    def decode_logits(self, z, decoder_input, state=None):
        """Logits (B, T, V) of the next token at every decoder input position, and the final state.

        Without ``state`` the decoder starts from the state ``z`` sets; pass the returned
        state to continue a sequence one step at a time.
        """
        decoder_input = np.asarray(decoder_input, dtype=np.int64)
        embedded = self.embedding(to_tensor(decoder_input))
        repeated = ops.broadcast_to(ops.expand_dims(z, 1), (z.shape[0], decoder_input.shape[1], self.latent_dim))
        outputs, state = self.decoder(ops.concatenate([embedded, repeated], axis=-1),
                                      self.initial_state(z) if state is None else state)
        return self.head(outputs), state

    def drop_words(self, decoder_input, generator=None):
        """Replace each non-padding input token after ``<s>`` by ``<unk>`` with probability ``word_dropout``."""
        decoder_input = np.array(decoder_input, dtype=np.int64)
        if not self.training or self.word_dropout == 0.0:
            return decoder_input
        uniform = resolve(generator).uniform(0.0, 1.0, size=decoder_input.shape, dtype=np.float64)
        droppable = (decoder_input != self.pad_id) & (decoder_input != self.bos_id)
        decoder_input[droppable & (uniform < self.word_dropout)] = self.unk_id
        return decoder_input

    # -- losses -------------------------------------------------------------------------------

    def loss_terms(self, batch, generator=None, use_mean=False):
        """Reconstruction and KL in nats per sentence, averaged over the batch (as Tensors).

        Args:
            batch (SentenceBatch): tokens, lengths, decoder_input and target.
            generator (Generator | None): the stream of ε and of the word-dropout mask.
            use_mean (bool): decode from z = μ instead of a sample.
        """
        q = self.encode(batch.tokens, batch.lengths)
        z = q.mean if use_mean else q.rsample(generator=generator)
        logits, _state = self.decode_logits(z, self.drop_words(batch.decoder_input, generator))
        count = len(batch.lengths)
        reconstruction = F.cross_entropy(logits.reshape(-1, self.vocab_size),
                                         np.asarray(batch.target, dtype=np.int64).reshape(-1),
                                         ignore_index=-100, reduction="sum") / count
        kl = ops.sum(kl_divergence(q, self.prior(z.dtype))) / count
        return reconstruction, kl

    def loss(self, batch, beta=1.0, generator=None):
        """Compute the training loss reconstruction + β·KL; return it and the two terms as floats."""
        reconstruction, kl = self.loss_terms(batch, generator)
        return reconstruction + beta * kl, {"reconstruction": float(reconstruction.item()), "kl": float(kl.item())}

    def prior(self, dtype=np.float32):
        zeros = np.zeros(self.latent_dim, dtype=dtype)
        return Normal(to_tensor(zeros), to_tensor(zeros + 1.0))

    def evaluate(self, batches, generator=None):
        """Mean reconstruction, KL and negative ELBO in nats per sentence over ``batches``.

        Each sentence's reconstruction uses one latent sample (from ``generator``); word
        dropout is off because the model is put in eval mode.
        """
        was_training = self.training
        self.eval()
        totals = {"reconstruction": 0.0, "kl": 0.0}
        tokens = 0
        count = 0
        with no_grad():
            for batch in batches:
                reconstruction, kl = self.loss_terms(batch, generator)
                totals["reconstruction"] += float(reconstruction.item()) * len(batch)
                totals["kl"] += float(kl.item()) * len(batch)
                tokens += int(np.sum(batch.lengths + 1))
                count += len(batch)
        self.train(was_training)
        figures = {name: value / count for name, value in totals.items()}
        figures["negative_elbo"] = figures["reconstruction"] + figures["kl"]
        figures["nats_per_token"] = figures["negative_elbo"] * count / tokens
        return figures

    def posterior_means(self, batches):
        """E_q[z | x] for every sentence of ``batches``, as a float64 ndarray (n, latent_dim)."""
        rows = []
        with no_grad():
            for batch in batches:
                rows.append(self.encode(batch.tokens, batch.lengths).mean.data.astype(np.float64))
        return np.concatenate(rows)

    def active_units(self, batches, threshold=ACTIVE_UNIT_THRESHOLD):
        """Count the latent dimensions whose posterior mean varies across sentences by more than ``threshold``.

        Returns:
            (count, variances): the number of active units and each dimension's variance
            of E_q[z_u | x] over the sentences.
        """
        variances = self.posterior_means(batches).var(axis=0)
        return int(np.sum(variances > threshold)), variances

    # -- generation ---------------------------------------------------------------------------

    def decode(self, z, max_length, temperature=0.0, generator=None):
        """Generate one sentence per row of z, token by token, until ``</s>`` or ``max_length``.

        Args:
            z: (B, latent_dim) latents (Tensor or array, cast to the model's dtype).
            max_length (int): the most tokens per sentence, ``</s>`` excluded.
            temperature (float): 0 takes the most likely token; above 0 samples.
            generator (Generator | None): the sampling stream.

        Returns:
            list of ndarray of int64: the token ids of each sentence (without ``</s>``).
        """
        was_training = self.training
        self.eval()
        z = to_tensor(np.asarray(z.data if hasattr(z, "data") else z, dtype=self.head.weight.dtype))
        batch = z.shape[0]
        generated = np.full((batch, max_length), self.eos_id, dtype=np.int64)
        finished = np.zeros(batch, dtype=bool)
        previous = np.full((batch, 1), self.bos_id, dtype=np.int64)
        state = None
        with no_grad():
            for t in range(max_length):
                logits, state = self.decode_logits(z, previous, state)
                choice = sample_next(logits.data[:, -1, :], temperature, generator)
                choice[finished] = self.eos_id
                generated[:, t] = choice
                finished |= choice == self.eos_id
                if finished.all():
                    break
                previous = choice[:, None]
        self.train(was_training)
        return [row[:np.argmax(row == self.eos_id)] if (row == self.eos_id).any() else row for row in generated]

    def sample_prior(self, count, max_length, temperature=0.0, generator=None):
        """Decode ``count`` latents drawn from p(z) = Normal(0, I)."""
        z = resolve(generator).normal(size=(count, self.latent_dim), dtype=self.head.weight.dtype)
        return self.decode(z, max_length, temperature, generator)

    def interpolate(self, batch, steps, max_length):
        """Decode ``steps`` evenly spaced points on the line between the posterior means of two sentences.

        Args:
            batch (SentenceBatch): exactly two sentences, the start and the end.
        """
        if len(batch) != 2:
            raise ValueError(f"SentenceVAE.interpolate: needs a batch of 2 sentences, got {len(batch)}")
        with no_grad():
            means = self.encode(batch.tokens, batch.lengths).mean.data
        weights = np.linspace(0.0, 1.0, steps, dtype=means.dtype)[:, None]
        return self.decode((1.0 - weights) * means[0] + weights * means[1], max_length)
