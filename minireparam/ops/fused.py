"""Fused ops: a chain of elementwise steps as one tape node with a hand-written VJP.

A fused op replaces several nodes (and the temporary arrays between them) by one. Each op
comes in two layers:

* array kernels (``lstm_cell_forward``, ``lstm_cell_backward``) that write into
  caller-owned buffers, so a loop over time steps can reuse its buffers instead of
  allocating new arrays at every step. This is the numpy reference of the kernels, and a
  C version must produce the same values;
* an ``Op`` around the kernels for the tape, with its own entry in the gradcheck registry.

The ops here are once-differentiable: their VJPs call the array kernels, so
``create_graph=True`` through them raises. The op-by-op versions (``nn.rnn.lstm_step``)
remain the twice-differentiable reference.

Importing this module (``minireparam.ops`` does) registers its gradcheck cases.
"""
import numpy as np

from ..autograd.node import Op
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import to_tensor
from .registry import Case, register

__all__ = ["lstm_cell", "lstm_cell_forward", "lstm_cell_backward", "sigmoid_into"]


# -- array kernels ----------------------------------------------------------------------------


def sigmoid_into(x, out):
    """Write σ(x) = 1 / (1 + e^−x) into ``out`` (which may be ``x``) and return it.

    For x < −88 (float32) e^−x overflows to inf and σ is exactly 0, its correct rounded
    value, so the overflow warning is silenced.
    """
    with np.errstate(over="ignore"):
        # NOTE: not np.negative(x, out=out): numpy 2.4.6 writes wrong float64 values when
        # ``out`` is a (n, 1) column of a wider array; multiplying by -1 is exact and unaffected.
        np.multiply(x, -1.0, out=out)
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


def _gate_blocks(array, hidden):
    """Split the last axis of (..., 4H) into the four gate blocks i, f, g, o (views)."""
    return tuple(array[..., k * hidden:(k + 1) * hidden] for k in range(4))


def lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h):
    """Run one LSTM step's elementwise part, writing every result into the given buffers.

    With the pre-activations of the gates in PyTorch's order (i, f, g, o):
        i, f, o = σ(·);  g = tanh(·);  c = f·c_prev + i·g;  h = o·tanh(c)

    Args:
        pre: (..., 4H) pre-activations x·W_ihᵀ + b_ih + h_prev·W_hhᵀ + b_hh (read only).
        c_prev: (..., H) the previous cell state.
        gates: (..., 4H) output buffer for the activated gates (kept for the backward).
        c: (..., H) output buffer for the new cell state.
        tanh_c: (..., H) output buffer for tanh(c) (kept for the backward).
        h: (..., H) output buffer for the new hidden state.
    """
    hidden = c_prev.shape[-1]
    sigmoid_into(pre[..., :2 * hidden], gates[..., :2 * hidden])
    np.tanh(pre[..., 2 * hidden:3 * hidden], out=gates[..., 2 * hidden:3 * hidden])
    sigmoid_into(pre[..., 3 * hidden:], gates[..., 3 * hidden:])
    i, f, g, o = _gate_blocks(gates, hidden)

    np.multiply(f, c_prev, out=c)
    np.multiply(i, g, out=tanh_c)  # tanh_c stores i·g until the tanh below overwrites it
    c += tanh_c
    np.tanh(c, out=tanh_c)
    np.multiply(o, tanh_c, out=h)


def lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch):
    """Write the cotangents of one LSTM step's pre-activations and previous cell state.

    Args:
        dh: (..., H) cotangent of h (read only).
        dc: (..., H) cotangent of c from everything except h (read only; may be ``dc_prev``).
        gates, c_prev, tanh_c: the forward's activated gates (..., 4H), previous cell state
            and tanh(c), as saved by ``lstm_cell_forward``.
        d_pre: (..., 4H) output buffer for the cotangent of the pre-activations.
        dc_prev: (..., H) output buffer for the cotangent of c_prev; may alias ``dc``, so a
            loop over time can carry one dc buffer.
        scratch: (..., H) work buffer; on return it contains the total cotangent of c.
    """
    hidden = c_prev.shape[-1]
    i, f, g, o = _gate_blocks(gates, hidden)
    d_i, d_f, d_g, d_o = _gate_blocks(d_pre, hidden)

    # Total cotangent of c: dc + dh·o·(1 − tanh²c), from h = o·tanh(c).
    total = scratch
    np.multiply(tanh_c, tanh_c, out=total)
    np.subtract(1.0, total, out=total)
    total *= o
    total *= dh
    total += dc

    # d_o = dh·tanh(c)·σ'(o), with σ' = σ·(1 − σ) from the activated gate.
    np.subtract(1.0, o, out=d_o)
    d_o *= o
    d_o *= tanh_c
    d_o *= dh
    # c = f·c_prev + i·g: d_i = total·g·σ'(i), d_f = total·c_prev·σ'(f), d_g = total·i·(1 − g²).
    np.subtract(1.0, i, out=d_i)
    d_i *= i
    d_i *= g
    d_i *= total
    np.subtract(1.0, f, out=d_f)
    d_f *= f
    d_f *= c_prev
    d_f *= total
    np.multiply(g, g, out=d_g)
    np.subtract(1.0, d_g, out=d_g)
    d_g *= i
    d_g *= total

    np.multiply(total, f, out=dc_prev)


# -- ops for the tape -------------------------------------------------------------------------


class LSTMCell(Op):
    """One LSTM step's elementwise part as one node; the output packs (h, c) as (2, ..., H)."""

    name = "lstm_cell"
    once_differentiable = True

    def forward(self, pre, c_prev):
        gates = np.empty_like(pre)
        packed = np.empty((2,) + c_prev.shape, dtype=pre.dtype)
        tanh_c = np.empty_like(c_prev)
        lstm_cell_forward(pre, c_prev, gates, packed[1], tanh_c, packed[0])

        self.save_input("c_prev", 1)
        self.save_array("gates", gates)
        self.save_array("tanh_c", tanh_c)
        return packed

    def vjp(self, g):
        c_prev = self.saved("c_prev").data
        gates, tanh_c = self.saved("gates").data, self.saved("tanh_c").data
        d_pre = np.empty_like(gates)
        dc_prev = np.empty_like(c_prev)
        lstm_cell_backward(g.data[0], g.data[1], gates, c_prev, tanh_c, d_pre, dc_prev, np.empty_like(c_prev))
        return Tensor._make(d_pre, None, False), Tensor._make(dc_prev, None, False)


def lstm_cell(gates, c_prev):
    """One LSTM step from the gates' pre-activations: returns (h, c) as one fused tape node.

    Computes the same values as ``nn.rnn.lstm_step`` after its GEMM:
    i, f, o = σ(·), g = tanh(·) over the gate blocks (PyTorch's order i, f, g, o),
    c = f·c_prev + i·g and h = o·tanh(c). Once-differentiable.

    Args:
        gates: (..., 4H) pre-activations, x·W_ihᵀ + b_ih + h_prev·W_hhᵀ + b_hh.
        c_prev: (..., H) previous cell state, with the same leading shape.

    Returns:
        (h, c), each of shape (..., H).

    Example:
        >>> import numpy as np, minireparam as mr
        >>> from minireparam.ops.fused import lstm_cell
        >>> h, c = lstm_cell(mr.tensor(np.zeros((2, 12), np.float32)), mr.tensor(np.ones((2, 3), np.float32)))
        >>> h.shape, float(c.data[0, 0])
        ((2, 3), 0.5)
    """
    gates, c_prev = to_tensor(gates), to_tensor(c_prev)
    if c_prev.ndim == 0 or gates.shape != c_prev.shape[:-1] + (4 * c_prev.shape[-1],):
        raise ShapeError(
            f"lstm_cell: gates of shape {gates.shape} do not fit c_prev of shape {c_prev.shape}: gates must be "
            "c_prev's shape with the last dimension 4·H (blocks i, f, g, o)"
        )
    if gates.dtype != c_prev.dtype or gates.dtype.kind != "f":
        raise TypeError(
            f"lstm_cell: gates and c_prev must have the same floating dtype, got {gates.dtype} and {c_prev.dtype}"
        )
    packed = LSTMCell().apply(gates, c_prev)
    return packed[0], packed[1]


# -- gradcheck cases --------------------------------------------------------------------------


def _build_lstm_cell(draw):
    leading = draw.shape(min_dims=0, max_dims=2, max_side=3)
    hidden = draw.integers(1, 3)
    # Pre-activations in [−3, 3] keep σ' and tanh' well above the finite-difference noise.
    gates = draw.array(leading + (4 * hidden,), -3.0, 3.0)
    c_prev = draw.array(leading + (hidden,), -2.0, 2.0)
    return Case(lstm_cell, [gates, c_prev], f"gates {gates.shape}, c_prev {c_prev.shape}")


register("fused.lstm_cell", _build_lstm_cell, domain="gates in [-3, 3]", second_order=False,
         exports=("fused.lstm_cell",))
