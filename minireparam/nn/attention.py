"""Multi-head attention with PyTorch's parameters, masks and shapes.

The math of one call, for embed_dim E, heads H and head size D = E / H:

1. project: q = x_q·W_qᵀ + b_q, k = x_k·W_kᵀ + b_k, v = x_v·W_vᵀ + b_v, where W_q, W_k,
   W_v are the three row blocks of ``in_proj_weight`` (3E, E). Self-attention (query,
   key and value the same Tensor) does the three in one GEMM;
2. split heads: (N, L, E) -> (N, H, L, D);
3. attend per head: softmax(q·kᵀ/√D + masks)·v, as batched GEMMs over (N, H) and the
   backend's softmax;
4. merge heads and apply ``out_proj``.

Masks follow ``torch.nn.MultiheadAttention``: boolean ``attn_mask`` and
``key_padding_mask`` entries that are True are blocked; floating masks are added to the
scores. A query that may attend to no key gets zero attention weights, so its attention
output is the bias of ``out_proj`` and no NaN appears in the output or any gradient
(PyTorch gives NaN there).
"""
import numpy as np

from .. import ops
from ..errors import ShapeError
from ..ops._util import to_tensor
from ..tensor import Tensor
from . import functional as F
from . import init
from .layers import Linear
from .module import Module, Parameter


class MultiheadAttention(Module):
    """Multi-head attention (``torch.nn.MultiheadAttention``'s arguments and parameters).

    Args:
        embed_dim: E, the model width (and the query's feature size).
        num_heads: H; E must be divisible by H.
        dropout: dropout probability on the attention weights (training mode only).
        bias: whether the projections have biases.
        add_bias_kv: learn ``bias_k`` and ``bias_v`` (1, 1, E), appended to the keys and
            values as one extra position.
        add_zero_attn: append one position of zeros to the keys and values (per head).
        kdim, vdim: feature sizes of key and value (default E). When either differs from
            E, the projections are ``q_proj_weight``, ``k_proj_weight`` and
            ``v_proj_weight`` instead of ``in_proj_weight``.
        batch_first: inputs and outputs are (N, L, E) instead of (L, N, E).
        generator: random stream of the initialization and of the dropout masks.

    Parameters: in_proj_weight (3E, E) from xavier_uniform_, in_proj_bias (3E,) zeros,
    out_proj.weight (E, E) with Linear's default init, out_proj.bias (E,) zeros.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, generator=None, dtype=np.float32):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be a positive multiple of num_heads ({num_heads})"
            )
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        dtype = np.dtype(dtype)
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.add_zero_attn = add_zero_attn
        self.generator = generator

        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.zeros((3 * embed_dim, embed_dim), dtype=dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(np.zeros((embed_dim, embed_dim), dtype=dtype))
            self.k_proj_weight = Parameter(np.zeros((embed_dim, self.kdim), dtype=dtype))
            self.v_proj_weight = Parameter(np.zeros((embed_dim, self.vdim), dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(np.zeros((3 * embed_dim,), dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, generator=generator, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(np.zeros((1, 1, embed_dim), dtype=dtype))
            self.bias_v = Parameter(np.zeros((1, 1, embed_dim), dtype=dtype))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters(generator)

    def _reset_parameters(self, generator):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight, generator=generator)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(weight, generator=generator)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k, generator=generator)
            init.xavier_normal_(self.bias_v, generator=generator)

    def __setattr__(self, name, value):
        if name in ("bias_k", "bias_v") and value is None:
            self.register_parameter(name, None)
            return
        super().__setattr__(name, value)

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"

    # -- forward -------------------------------------------------------------------------

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        """Attend from ``query`` to ``key``/``value``.

        Args:
            query: (L, N, E), or (N, L, E) with batch_first, or unbatched (L, E).
            key: (S, N, kdim) (same layout rules); value: (S, N, vdim).
            key_padding_mask: (N, S) or (S,) unbatched; boolean True = padding (blocked),
                or floating (added to the scores).
            need_weights: also return the attention weights.
            attn_mask: (L, S) or (N·H, L, S); boolean True = blocked, or floating (added).
            average_attn_weights: average the returned weights over heads.
            is_causal: with no ``attn_mask``, block keys after each query (j > i); with an
                ``attn_mask``, a hint that it is causal (the mask given is used).

        Returns:
            (output, weights): output (L, N, E) (or the input's layout); weights (N, L, S)
            averaged or (N, H, L, S), or None without ``need_weights``.
        """
        query, key, value = to_tensor(query), to_tensor(key), to_tensor(value)
        unbatched = self._check_inputs(query, key, value)
        self_attention = query is key and key is value
        if unbatched:
            query, key, value = (ops.expand_dims(t, 0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = _expand_mask(key_padding_mask)
        elif not self.batch_first:
            query, key, value = (ops.swapaxes(t, 0, 1) for t in (query, key, value))

        q, k, v = self._project(query, key, value, self_attention)
        batch, target_length = q.shape[0], q.shape[1]
        if self.bias_k is not None:
            k = ops.concatenate([k, ops.broadcast_to(self.bias_k, (batch, 1, self.embed_dim))], axis=1)
            v = ops.concatenate([v, ops.broadcast_to(self.bias_v, (batch, 1, self.embed_dim))], axis=1)
        q, k, v = (self._split_heads(t) for t in (q, k, v))
        if self.add_zero_attn:
            zeros = np.zeros((batch, self.num_heads, 1, self.head_dim), dtype=k.dtype)
            k = ops.concatenate([k, zeros], axis=2)
            v = ops.concatenate([v, zeros], axis=2)

        source_length = k.shape[2]
        appended = source_length - key.shape[1]
        allowed, additive = self._merge_masks(attn_mask, key_padding_mask, is_causal, batch, target_length,
                                              source_length, appended)
        dropout_p = self.dropout if self.training else 0.0
        heads, weights = F.attention(q, k, v, allowed, additive, dropout_p, None, self.generator)

        merged = ops.reshape(ops.transpose(heads, (0, 2, 1, 3)), (batch, target_length, self.embed_dim))
        output = self.out_proj(merged)
        if unbatched:
            output = ops.squeeze(output, 0)
        elif not self.batch_first:
            output = ops.swapaxes(output, 0, 1)
        if not need_weights:
            return output, None
        if average_attn_weights:
            weights = ops.mean(weights, axis=1)
        return output, (ops.squeeze(weights, 0) if unbatched else weights)

    def _check_inputs(self, query, key, value):
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(
                "MultiheadAttention: query, key and value must all be 3-D (batched) or all 2-D (unbatched), "
                f"got {query.shape}, {key.shape} and {value.shape}"
            )
        sizes = (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim))
        for name, tensor, expected in sizes:
            if tensor.shape[-1] != expected:
                raise ShapeError(f"MultiheadAttention: {name} has {tensor.shape[-1]} features, expected {expected}")
        batch_axis = 0 if self.batch_first else 1
        if query.ndim == 3:
            if not query.shape[batch_axis] == key.shape[batch_axis] == value.shape[batch_axis]:
                raise ShapeError(
                    f"MultiheadAttention: batch sizes differ: query {query.shape}, key {key.shape}, "
                    f"value {value.shape} (batch_first={self.batch_first})"
                )
        sequence_axis = 1 if query.ndim == 3 and self.batch_first else 0
        if key.shape[sequence_axis] != value.shape[sequence_axis]:
            raise ShapeError(f"MultiheadAttention: key {key.shape} and value {value.shape} have different lengths")
        return query.ndim == 2

    def _project(self, query, key, value, self_attention):
        """Return q, k, v of shape (N, L or S, E)."""
        bias = self.in_proj_bias
        bias_q, bias_k, bias_v = (None, None, None) if bias is None else ops.split(bias, 3)
        if self._qkv_same_embed_dim:
            if self_attention:
                return ops.split(F.linear(query, self.in_proj_weight, bias), 3, axis=-1)
            w_q, w_k, w_v = ops.split(self.in_proj_weight, 3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(query, w_q, bias_q), F.linear(key, w_k, bias_k), F.linear(value, w_v, bias_v)

    def _split_heads(self, x):
        batch, length, _ = x.shape
        return ops.transpose(ops.reshape(x, (batch, length, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def _merge_masks(self, attn_mask, key_padding_mask, is_causal, batch, target_length, source_length, appended):
        """Combine the masks into (allowed boolean (N, H, L, S) or None, additive scores or None).

        ``appended`` counts key positions added by add_bias_kv and add_zero_attn; masks
        are padded so that those positions may always be attended.
        """
        allowed, additive = None, None
        if attn_mask is not None:
            mask = _mask_array_or_tensor(attn_mask)
            expected = [(target_length, source_length - appended),
                        (batch * self.num_heads, target_length, source_length - appended)]
            if tuple(mask.shape) not in expected:
                raise ShapeError(f"MultiheadAttention: attn_mask has shape {mask.shape}, expected one of {expected}")
            if len(mask.shape) == 3:
                mask = _reshape(mask, (batch, self.num_heads, target_length, source_length - appended))
            mask = _pad_last_axis(mask, appended)
            allowed, additive = _split_blocking_mask(mask, "attn_mask")
        elif is_causal:
            allowed = F.causal_mask(target_length, source_length)

        if key_padding_mask is not None:
            mask = _mask_array_or_tensor(key_padding_mask)
            if tuple(mask.shape) != (batch, source_length - appended):
                raise ShapeError(
                    f"MultiheadAttention: key_padding_mask has shape {mask.shape}, expected "
                    f"{(batch, source_length - appended)} (batch, source length)"
                )
            mask = _reshape(_pad_last_axis(mask, appended), (batch, 1, 1, source_length))
            padding_allowed, padding_additive = _split_blocking_mask(mask, "key_padding_mask")
            if padding_allowed is not None:
                allowed = padding_allowed if allowed is None else allowed & padding_allowed
            if padding_additive is not None:
                additive = padding_additive if additive is None else additive + padding_additive
        return allowed, additive


def _expand_mask(mask):
    if isinstance(mask, Tensor):
        return ops.expand_dims(mask, 0) if mask.dtype.kind == "f" else Tensor(mask.data[None])
    return np.asarray(mask)[None]


def _mask_array_or_tensor(mask):
    """Floating Tensors stay Tensors (they may carry gradients); everything else becomes an array."""
    if isinstance(mask, Tensor):
        return mask if mask.dtype.kind == "f" else mask.data
    return np.asarray(mask)


def _reshape(mask, shape):
    return ops.reshape(mask, shape) if isinstance(mask, Tensor) else mask.reshape(shape)


def _pad_last_axis(mask, count):
    """Append ``count`` positions that are never blocked (False, or 0.0 for float masks)."""
    if count == 0:
        return mask
    widths = [(0, 0)] * (len(mask.shape) - 1) + [(0, count)]
    if isinstance(mask, Tensor):
        return ops.pad(mask, widths)
    return np.pad(mask, widths, constant_values=False if mask.dtype == bool else 0)


def _split_blocking_mask(mask, label):
    """(allowed, additive) from a mask where boolean True means blocked."""
    if isinstance(mask, Tensor):
        return None, mask
    if mask.dtype == bool:
        return ~mask, None
    if mask.dtype.kind != "f":
        raise TypeError(f"MultiheadAttention: {label} must be boolean or floating, got dtype {mask.dtype}")
    return None, mask
