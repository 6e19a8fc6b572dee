"""A character-level LSTM language model: embedding, LSTM, linear read-out.

Each character id becomes an embedding vector, the LSTM reads the sequence left to
right, and a linear layer turns every hidden state into logits over the next character.
Parameter names match PyTorch's for the same layers (``embedding.weight``,
``lstm.weight_ih_l0``, ``head.weight``), so weights convert by array.
"""
import numpy as np

from .. import nn
from ..autograd.grad_mode import no_grad
from ..nn import functional as F
from ..ops._util import to_tensor
from .language import sample_next


class CharLSTM(nn.Module):
    """Predict the next character from the ones before it.

    Args:
        vocab_size (int): number of distinct characters V.
        embedding_dim (int): size of a character's embedding vector (default 64).
        hidden_size (int): LSTM state size H (default 256).
        num_layers (int): stacked LSTM layers (default 1).
        dropout (float): dropout between LSTM layers (only with num_layers > 1).
        generator (Generator | None): the initialization stream.
        dropout_generator (Generator | None): the dropout stream (the training one).

    Shapes:
        ids: (batch, time) int64 -> logits (batch, time, V), state ((layers, batch, H), (layers, batch, H)).
    """

    def __init__(self, vocab_size, embedding_dim=64, hidden_size=256, num_layers=1, dropout=0.0,
                 generator=None, dropout_generator=None):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim, generator=generator)
        self.lstm = nn.LSTM(
            embedding_dim, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout,
            generator=generator,
        )
        # nn.LSTM draws its dropout masks from the generator it keeps. Pointing it at the
        # training stream means a checkpoint of that stream fixes the masks too.
        self.lstm.generator = dropout_generator
        self.head = nn.Linear(hidden_size, vocab_size, generator=generator)

    def forward(self, ids, state=None):
        """Return next-character logits for every position, and the final LSTM state."""
        vectors = self.embedding(to_tensor(np.asarray(ids, dtype=np.int64)))
        hidden, state = self.lstm(vectors, state)
        return self.head(hidden), state

    def loss(self, inputs, targets):
        """Mean next-character cross-entropy in nats, over every (batch, time) position."""
        logits, _state = self(inputs)
        flat_logits = logits.reshape(-1, self.vocab_size)
        return F.cross_entropy(flat_logits, np.asarray(targets, dtype=np.int64).reshape(-1))

    def generate(self, prompt_ids, length, temperature=1.0, generator=None):
        """Continue a prompt by ``length`` sampled characters.

        The prompt runs through the LSTM in one call. Then each sampled character is fed
        back in with the carried state, one step at a time.

        Args:
            prompt_ids (ndarray of int64): shape (prompt_length,), at least one id.
            length (int): characters to sample.
            temperature (float): sampling temperature (0 picks the most likely character).
            generator (Generator | None): the sampling stream.

        Returns:
            ndarray of int64, shape (length,): the sampled ids (the prompt not included).
        """
        prompt_ids = np.asarray(prompt_ids, dtype=np.int64).reshape(-1)
        if prompt_ids.size == 0:
            raise ValueError("CharLSTM.generate: the prompt must contain at least one character")
        was_training = self.training
        self.eval()
        sampled = np.zeros(length, dtype=np.int64)
        with no_grad():
            logits, state = self(prompt_ids[None, :])
            for t in range(length):
                next_id = sample_next(logits.data[:, -1, :], temperature, generator)
                sampled[t] = next_id[0]
                logits, state = self(next_id[None, :], state)
        self.train(was_training)
        return sampled
