"""A transformer encoder block with the arguments, parameters and math of
``torch.nn.TransformerEncoderLayer``.

Post-norm (the default, ``norm_first=False``):
    x = norm1(x + dropout1(self_attn(x)))
    x = norm2(x + dropout2(linear2(dropout(activation(linear1(x))))))
Pre-norm (``norm_first=True``):
    x = x + dropout1(self_attn(norm1(x)))
    x = x + dropout2(linear2(dropout(activation(linear1(norm2(x))))))
"""
import numpy as np

from . import functional as F
from .attention import MultiheadAttention
from .layers import Dropout, LayerNorm, Linear
from .module import Module

_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


class TransformerBlock(Module):
    """Self-attention followed by a feed-forward network, each with a residual and LayerNorm.

    Args:
        d_model: the model width E.
        nhead: the number of attention heads (E must be divisible by it).
        dim_feedforward: the hidden width of the feed-forward network.
        dropout: dropout after attention, inside and after the feed-forward network, and
            on the attention weights.
        activation: "relu", "gelu" (exact), "gelu_tanh" (tanh approximation) or a callable.
        layer_norm_eps: eps of both LayerNorms.
        batch_first: inputs are (N, L, E) instead of (L, N, E).
        norm_first: pre-norm instead of post-norm.
        bias: whether the Linear, attention and LayerNorm layers have biases.
        generator: random stream of the initialization and every dropout mask.

    Parameters (PyTorch's names): self_attn.in_proj_weight, self_attn.in_proj_bias,
    self_attn.out_proj.weight, self_attn.out_proj.bias, linear1.*, linear2.*, norm1.*,
    norm2.*.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, generator=None, dtype=np.float32):
        super().__init__()
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(
                    f"TransformerBlock: activation must be 'relu', 'gelu', 'gelu_tanh' or a callable, got {activation!r}"
                )
            self.activation_name = activation
            self.activation = _ACTIVATIONS[activation]
        elif callable(activation):
            self.activation_name = getattr(activation, "__name__", type(activation).__name__)
            self.activation = activation
        else:
            raise TypeError(f"TransformerBlock: activation must be a string or a callable, got {activation!r}")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            generator=generator, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, generator=generator, dtype=dtype)
        self.dropout = Dropout(dropout, generator=generator)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, generator=generator, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout, generator=generator)
        self.dropout2 = Dropout(dropout, generator=generator)
        self.batch_first = batch_first

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """Apply the block.

        Args:
            src: (L, N, E), (N, L, E) with batch_first, or unbatched (L, E).
            src_mask: (L, L) or (N·nhead, L, L) attention mask; boolean True = blocked, or
                floating (added to the scores).
            src_key_padding_mask: (N, L); boolean True = padding, or floating.
            is_causal: block attention to later positions when ``src_mask`` is None.

        Returns:
            A Tensor of the shape of ``src``. A position whose attention row is fully
            masked gets attention output equal to out_proj's bias (never NaN).
        """
        x = src
        if self.norm_first:
            x = x + self._self_attention_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._feed_forward_block(self.norm2(x))
        else:
            x = self.norm1(x + self._self_attention_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._feed_forward_block(x))
        return x

    def _self_attention_block(self, x, attn_mask, key_padding_mask, is_causal):
        attended, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                     need_weights=False, is_causal=is_causal)
        return self.dropout1(attended)

    def _feed_forward_block(self, x):
        hidden = self.dropout(self.activation(self.linear1(x)))
        return self.dropout2(self.linear2(hidden))

    def extra_repr(self):
        return f"activation={self.activation_name!r}, norm_first={self.norm_first}, batch_first={self.batch_first}"


TransformerEncoderLayer = TransformerBlock
