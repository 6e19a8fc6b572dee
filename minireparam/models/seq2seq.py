"""A sequence-to-sequence translator: LSTM encoder, LSTM decoder with additive attention.

The encoder embeds the source tokens and reads them with an LSTM, by default in both
directions, giving one memory vector per source position. The decoder is a conditional
language model over target tokens: at step t it scores every memory vector against its
previous hidden state s_{t-1} with additive (Bahdanau) attention,

    e_tj = vᵀ tanh(W_q s_{t-1} + W_k m_j),    α_t = softmax_j(e_t),    c_t = Σ_j α_tj m_j,

feeds the previous target token's embedding together with the context c_t to an
LSTM cell, and reads next-token logits out of [s_t; c_t]. Padded source positions get
weight zero, because their scores are set to -inf before the softmax.

Sources are right-padded batches with their lengths. The LSTM layers take no masks, so
the backward direction reads each sequence reversed within its own length, with the
padding left at the end, and its outputs are put back in source order. Neither
direction then reads padding before a real token.
"""
import numpy as np

from .. import nn, ops
from ..autograd.grad_mode import no_grad
from ..errors import ShapeError
from ..nn import functional as F
from ..ops._util import to_tensor


def reverse_within_lengths(lengths, max_length):
    """Index array (B, S) that reverses positions 0..len-1 of each row and keeps padding in place.

    The map is its own inverse, so the same indices put reversed outputs back in order.
    """
    positions = np.arange(max_length)[None, :]
    lengths = np.asarray(lengths, dtype=np.int64)[:, None]
    return np.where(positions < lengths, lengths - 1 - positions, positions).astype(np.int64)


def _gather_time(sequence, indices):
    """sequence (B, S, H) and indices (B, K) -> sequence[b, indices[b, k]] as (B, K, H)."""
    full = np.broadcast_to(indices[:, :, None], indices.shape + (sequence.shape[-1],))
    return ops.take_along_axis(sequence, np.ascontiguousarray(full), axis=1)


class AdditiveAttention(nn.Module):
    """Bahdanau attention: e_j = vᵀ tanh(W_q q + W_k k_j), weights softmax(e) over valid j.

    Args:
        query_size (int): size of the query (the decoder state).
        key_size (int): size of each memory vector.
        attention_size (int): size of the hidden layer inside the score.
        generator (Generator | None): the initialization stream.

    Shapes:
        ``project_memory``: memory (B, S, key_size) -> keys (B, S, attention_size).
        ``forward``: query (B, query_size), keys (B, S, A), memory (B, S, key_size), mask
        (B, S) bool (True: a real position) -> context (B, key_size), weights (B, S).
    """

    def __init__(self, query_size, key_size, attention_size, generator=None):
        super().__init__()
        self.query_projection = nn.Linear(query_size, attention_size, bias=False, generator=generator)
        self.key_projection = nn.Linear(key_size, attention_size, generator=generator)
        self.score = nn.Linear(attention_size, 1, bias=False, generator=generator)

    def project_memory(self, memory):
        """W_k m_j for every position, computed once per source batch and reused each step."""
        return self.key_projection(memory)

    def forward(self, query, keys, memory, mask):
        hidden = ops.tanh(keys + ops.expand_dims(self.query_projection(query), 1))
        scores = ops.squeeze(self.score(hidden), -1)
        scores = ops.where(mask, scores, -np.inf)
        weights = ops.softmax(scores, axis=-1)
        context = ops.squeeze(ops.matmul(ops.expand_dims(weights, 1), memory), 1)
        return context, weights


class EncodedSource:
    """The encoder's outputs that the decoder uses, for a batch of sources.

    Attributes:
        memory (Tensor): (B, S, D·H) encoder outputs.
        keys (Tensor): (B, S, A) the attention's projection of the memory.
        mask (ndarray of bool): (B, S), True at real (non-padding) positions.
        state (tuple of Tensor): the decoder's initial (h, c), each (B, H).
        summary (Tensor): (B, D·H) the final encoder states of both directions.
    """

    def __init__(self, memory, keys, mask, state, summary):
        self.memory = memory
        self.keys = keys
        self.mask = mask
        self.state = state
        self.summary = summary

    def repeat(self, count):
        """Repeat the single source ``count`` times along the batch axis (for beam search)."""
        if self.memory.shape[0] != 1:
            raise ShapeError(f"EncodedSource.repeat: needs a batch of one source, got {self.memory.shape[0]}")

        def tile(tensor):
            return ops.broadcast_to(tensor, (count,) + tensor.shape[1:])

        return EncodedSource(tile(self.memory), tile(self.keys), np.repeat(self.mask, count, axis=0),
                             tuple(tile(part) for part in self.state), tile(self.summary))


class Seq2SeqAttention(nn.Module):
    """Translate token sequences with an LSTM encoder and an attentive LSTM decoder.

    Args:
        source_vocab_size (int): source tokens (id 0 is padding).
        target_vocab_size (int): target tokens, including padding, ``<s>`` and ``</s>``.
        embedding_dim (int): size of the source and target embeddings (default 64).
        hidden_size (int): LSTM units per direction in the encoder and in the decoder (default 128).
        attention_size (int): hidden size of the additive score (default 128).
        bidirectional (bool): read the source in both directions (default True).
        bos_id, eos_id (int): the target ids that start and end a sequence.
        generator (Generator | None): the initialization stream.

    Shapes:
        source: (B, S) int64 right-padded, source_lengths: (B,), decoder_input and
        target: (B, T) -> logits (B, T, target_vocab_size).
    """

    def __init__(self, source_vocab_size, target_vocab_size, embedding_dim=64, hidden_size=128,
                 attention_size=128, bidirectional=True, bos_id=1, eos_id=2, generator=None):
        super().__init__()
        self.target_vocab_size = target_vocab_size
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        self.bos_id = bos_id
        self.eos_id = eos_id
        memory_size = hidden_size * (2 if bidirectional else 1)

        self.source_embedding = nn.Embedding(source_vocab_size, embedding_dim, generator=generator)
        self.encoder_forward = nn.LSTM(embedding_dim, hidden_size, batch_first=True, generator=generator)
        if bidirectional:
            self.encoder_backward = nn.LSTM(embedding_dim, hidden_size, batch_first=True, generator=generator)
        self.bridge = nn.Linear(memory_size, hidden_size, generator=generator)

        self.target_embedding = nn.Embedding(target_vocab_size, embedding_dim, generator=generator)
        self.attention = AdditiveAttention(hidden_size, memory_size, attention_size, generator=generator)
        self.decoder_cell = nn.LSTMCell(embedding_dim + memory_size, hidden_size, generator=generator)
        self.output = nn.Linear(hidden_size + memory_size, target_vocab_size, generator=generator)

    # -- encoder ------------------------------------------------------------------------------

    def encode(self, source, source_lengths):
        """Read a padded batch of sources; return an EncodedSource."""
        source = np.asarray(source, dtype=np.int64)
        lengths = np.asarray(source_lengths, dtype=np.int64)
        if source.ndim != 2 or lengths.shape != (source.shape[0],):
            raise ShapeError(
                f"Seq2SeqAttention.encode: source must be (B, S) with lengths (B,), got {source.shape} "
                f"and {lengths.shape}"
            )
        if lengths.min() < 1 or lengths.max() > source.shape[1]:
            raise ValueError(
                f"Seq2SeqAttention.encode: source lengths must be in [1, {source.shape[1]}], got "
                f"{lengths.min()}..{lengths.max()}"
            )
        last = (lengths - 1)[:, None]

        forward_outputs, _ = self.encoder_forward(self.source_embedding(to_tensor(source)))
        memory = forward_outputs
        summary = ops.squeeze(_gather_time(forward_outputs, last), 1)
        if self.bidirectional:
            reverse = reverse_within_lengths(lengths, source.shape[1])
            reversed_ids = np.take_along_axis(source, reverse, axis=1)
            backward_reversed, _ = self.encoder_backward(self.source_embedding(to_tensor(reversed_ids)))
            backward_outputs = _gather_time(backward_reversed, reverse)
            memory = ops.concatenate([forward_outputs, backward_outputs], axis=-1)
            backward_final = ops.squeeze(_gather_time(backward_reversed, last), 1)
            summary = ops.concatenate([summary, backward_final], axis=-1)

        mask = np.arange(source.shape[1])[None, :] < lengths[:, None]
        h0 = ops.tanh(self.bridge(summary))
        c0 = to_tensor(np.zeros(h0.shape, dtype=h0.dtype))
        return EncodedSource(memory, self.attention.project_memory(memory), mask, (h0, c0), summary)

    # -- decoder ------------------------------------------------------------------------------

    def decode_step(self, previous_ids, state, encoded):
        """One decoder step from the previous target ids (B,); returns (logits (B, V), state, weights (B, S))."""
        h, c = state
        context, weights = self.attention(h, encoded.keys, encoded.memory, encoded.mask)
        embedded = self.target_embedding(to_tensor(np.asarray(previous_ids, dtype=np.int64)))
        h, c = self.decoder_cell(ops.concatenate([embedded, context], axis=-1), (h, c))
        logits = self.output(ops.concatenate([h, context], axis=-1))
        return logits, (h, c), weights

    def forward(self, source, source_lengths, decoder_input):
        """Teacher-forced logits for every target step, and the attention weights (B, T, S)."""
        decoder_input = np.asarray(decoder_input, dtype=np.int64)
        encoded = self.encode(source, source_lengths)
        state = encoded.state
        step_logits, step_weights = [], []
        for t in range(decoder_input.shape[1]):
            logits, state, weights = self.decode_step(decoder_input[:, t], state, encoded)
            step_logits.append(logits)
            step_weights.append(weights)
        return ops.stack(step_logits, axis=1), ops.stack(step_weights, axis=1)

    def loss(self, source, source_lengths, decoder_input, target):
        """Mean cross-entropy in nats per target token; targets of -100 (padding) are skipped."""
        logits, _weights = self(source, source_lengths, decoder_input)
        return F.cross_entropy(logits.reshape(-1, self.target_vocab_size),
                               np.asarray(target, dtype=np.int64).reshape(-1), ignore_index=-100)

    # -- inference ----------------------------------------------------------------------------

    def greedy_decode(self, source, source_lengths, max_length):
        """Pick the most likely token at every step until ``</s>`` or ``max_length`` tokens.

        Returns:
            (tokens, weights). ``tokens`` is an int64 array (B, max_length) that has
            ``eos_id`` from each sequence's end on, the produced ``</s>`` included.
            ``weights`` is a float array (B, max_length, S) of each step's attention
            weights, zero after the end.
        """
        with no_grad():
            encoded = self.encode(source, source_lengths)
            batch = encoded.memory.shape[0]
            tokens = np.full((batch, max_length), self.eos_id, dtype=np.int64)
            weights = np.zeros((batch, max_length, encoded.memory.shape[1]), dtype=np.float64)
            previous = np.full(batch, self.bos_id, dtype=np.int64)
            finished = np.zeros(batch, dtype=bool)
            state = encoded.state
            for t in range(max_length):
                logits, state, step_weights = self.decode_step(previous, state, encoded)
                choice = np.argmax(logits.data, axis=-1).astype(np.int64)
                choice[finished] = self.eos_id
                tokens[:, t] = choice
                weights[~finished, t] = step_weights.data[~finished]
                finished |= choice == self.eos_id
                previous = choice
                if finished.all():
                    break
        return tokens, weights

    def beam_search(self, source, source_length, beam_size, max_length, length_penalty=0.0):
        """Search for the most likely target of one source with a beam of ``beam_size`` hypotheses.

        At every step each live hypothesis is extended by every token, and the
        ``beam_size`` best extensions by total log-probability are kept. Those that end
        in ``</s>`` are set aside as finished. Without a length penalty the search stops
        once the best finished score beats every live one, since extending a hypothesis
        can only lower its log-probability. With beam_size 1 this is greedy decoding.

        Args:
            source (ndarray of int64): (S,) the source ids of one sequence.
            source_length (int): how many of them are real tokens.
            beam_size (int): hypotheses kept per step (>= 1).
            max_length (int): the most target tokens, ``</s>`` included.
            length_penalty (float): rank finished hypotheses by log p / length**alpha
                (0 ranks by log p).

        Returns:
            (tokens, log_probability, weights): the best hypothesis as an int64 array
            ending in ``</s>`` (or cut at ``max_length``), its total log-probability in
            nats, and its attention weights (len(tokens), S).
        """
        if beam_size < 1:
            raise ValueError(f"beam_search: beam_size must be >= 1, got {beam_size}")
        source = np.asarray(source, dtype=np.int64).reshape(1, -1)
        with no_grad():
            encoded = self.encode(source, np.array([source_length]))
            beams = [([], 0.0, [])]      # (tokens, log-probability, attention rows), all alive
            state = encoded.state
            finished = []
            for _ in range(max_length):
                beams, state, newly_finished = self._extend_beams(beams, state, encoded, beam_size)
                finished += newly_finished
                if not beams or (length_penalty == 0.0 and finished
                                 and max(score for _, score, _ in finished) >= beams[0][1]):
                    break
            candidates = finished if finished else beams

        def rank(hypothesis):
            tokens, score, _ = hypothesis
            return score / (len(tokens) ** length_penalty) if length_penalty else score

        best_tokens, best_score, best_weights = max(candidates, key=rank)
        return np.array(best_tokens, dtype=np.int64), float(best_score), np.array(best_weights)

    def _extend_beams(self, beams, state, encoded, beam_size):
        """Extend every live beam by one token; return (live beams, their state, finished ones).

        ``encoded`` is the encoding of the single source (batch 1); ``state`` has one row per beam.
        """
        count = len(beams)
        previous = np.array([tokens[-1] if tokens else self.bos_id for tokens, _, _ in beams], dtype=np.int64)
        logits, (h, c), weights = self.decode_step(previous, state, encoded.repeat(count))
        log_probabilities = ops.log_softmax(logits, axis=-1).data.astype(np.float64)
        totals = np.array([score for _, score, _ in beams])[:, None] + log_probabilities
        # A stable sort keeps the lowest token id first among equal scores, as argmax does.
        order = np.argsort(-totals, axis=None, kind="stable")[:beam_size]
        live, rows, finished = [], [], []
        for flat in order.tolist():
            row, token = divmod(flat, log_probabilities.shape[1])
            tokens, _, attention_rows = beams[row]
            extended = (tokens + [token], float(totals[row, token]),
                        attention_rows + [weights.data[row].astype(np.float64)])
            if token == self.eos_id:
                finished.append(extended)
            else:
                live.append(extended)
                rows.append(row)
        if not live:
            return [], None, finished
        rows = np.array(rows)
        return live, (h[rows], c[rows]), finished
