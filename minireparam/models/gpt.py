"""A tiny decoder-only transformer (GPT-style) over characters.

Token embeddings plus learned position embeddings go through a stack of pre-LayerNorm
transformer blocks with a causal mask (position t attends to positions <= t only), a
final LayerNorm and a linear read-out to next-character logits. The default size
(d_model 128, 4 heads, 2 blocks, a 4x MLP, context 128) trains on two CPU cores in
minutes.
"""
import numpy as np

from .. import nn
from ..autograd.grad_mode import no_grad
from ..nn import functional as F
from ..ops._util import to_tensor
from .language import sample_next

# GPT-2's initialization scale for the embeddings: small vectors keep the sum of token
# and position embeddings well inside LayerNorm's useful range at the start.
EMBEDDING_INIT_STD = 0.02


class TinyGPT(nn.Module):
    """Predict the next character with causal self-attention over the last ``context`` ones.

    Args:
        vocab_size (int): number of distinct characters V.
        context (int): maximum sequence length (positions 0 .. context-1 have embeddings).
        d_model (int): width of every token vector (default 128).
        n_heads (int): attention heads per block (default 4; must divide d_model).
        n_layers (int): transformer blocks (default 2).
        dropout (float): dropout on the embeddings and inside every block (default 0.1).
        generator (Generator | None): the initialization stream.
        dropout_generator (Generator | None): the dropout stream (the training one).

    Shapes:
        ids: (batch, time) int64 with time <= context -> logits (batch, time, V).
    """

    def __init__(self, vocab_size, context=128, d_model=128, n_heads=4, n_layers=2, dropout=0.1,
                 generator=None, dropout_generator=None):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"TinyGPT: d_model {d_model} must be divisible by n_heads {n_heads}")
        self.vocab_size = vocab_size
        self.context = context
        self.token_embedding = nn.Embedding(vocab_size, d_model, generator=generator)
        self.position_embedding = nn.Embedding(context, d_model, generator=generator)
        nn.init.normal_(self.token_embedding.weight, std=EMBEDDING_INIT_STD, generator=generator)
        nn.init.normal_(self.position_embedding.weight, std=EMBEDDING_INIT_STD, generator=generator)
        self.dropout = nn.Dropout(dropout, generator=dropout_generator)
        self.blocks = nn.ModuleList([
            nn.TransformerBlock(
                d_model, n_heads, dim_feedforward=4 * d_model, dropout=dropout, activation="gelu",
                norm_first=True, batch_first=True, generator=generator,
            )
            for _ in range(n_layers)
        ])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, generator=generator)
        self._use_dropout_generator(dropout_generator)

    def _use_dropout_generator(self, generator):
        """Draw every dropout mask from ``generator`` (the layers keep their init stream otherwise).

        Dropout and MultiheadAttention use their ``generator`` attribute only for masks
        once initialized, so pointing it at the training stream makes a checkpoint of
        that stream fix the masks of a resumed run.
        """
        for module in self.modules():
            if isinstance(module, (nn.Dropout, nn.MultiheadAttention)):
                module.generator = generator

    def forward(self, ids):
        """Return next-character logits of shape (batch, time, V)."""
        ids = np.asarray(ids, dtype=np.int64)
        time = ids.shape[1]
        if time > self.context:
            raise ValueError(
                f"TinyGPT: sequence length {time} exceeds the context of {self.context}; "
                "pass at most the last `context` characters"
            )
        positions = np.arange(time, dtype=np.int64)
        x = self.token_embedding(to_tensor(ids)) + self.position_embedding(to_tensor(positions))
        x = self.dropout(x)

        # True above the diagonal: position t may not attend to any later position.
        causal_mask = np.triu(np.ones((time, time), dtype=bool), k=1)
        for block in self.blocks:
            x = block(x, src_mask=causal_mask)
        return self.head(self.norm(x))

    def loss(self, inputs, targets):
        """Mean next-character cross-entropy in nats, over every (batch, time) position."""
        logits = self(inputs)
        flat_logits = logits.reshape(-1, self.vocab_size)
        return F.cross_entropy(flat_logits, np.asarray(targets, dtype=np.int64).reshape(-1))

    def generate(self, prompt_ids, length, temperature=1.0, generator=None):
        """Continue a prompt by ``length`` sampled characters.

        Each step runs the model on the last ``context`` characters (prompt and samples
        so far) and samples from the logits at the last position.

        Returns:
            ndarray of int64, shape (length,): the sampled ids (the prompt not included).
        """
        prompt_ids = np.asarray(prompt_ids, dtype=np.int64).reshape(-1)
        if prompt_ids.size == 0:
            raise ValueError("TinyGPT.generate: the prompt must contain at least one character")
        was_training = self.training
        self.eval()
        ids = prompt_ids.copy()
        with no_grad():
            for _ in range(length):
                window = ids[-self.context:]
                logits = self(window[None, :])
                next_id = sample_next(logits.data[:, -1, :], temperature, generator)
                ids = np.concatenate([ids, next_id])
        self.train(was_training)
        return ids[prompt_ids.size:]
