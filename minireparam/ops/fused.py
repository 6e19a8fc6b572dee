"""Fused ops: a chain of elementwise steps as one tape node with a hand-written VJP.

A fused op replaces several nodes (and the temporary arrays between them) by one. Each op
comes in two layers:

* array kernels (``lstm_cell_forward``, ``lstm_cell_backward``) that write into
  caller-owned buffers, so a loop over time steps can reuse its buffers instead of
  allocating new arrays at every step. They run on the active kernel backend: the C
  kernels, or their numpy reference in ``backend.numpy_backend``;
* an ``Op`` around the kernels for the tape, with its own entry in the gradcheck registry.

The ops here are once-differentiable: their VJPs call the array kernels, so
``create_graph=True`` through them raises. The op-by-op versions (``nn.rnn.lstm_step``)
remain the twice-differentiable reference.

Importing this module (``minireparam.ops`` does) registers its gradcheck cases.
"""
import numpy as np

from .. import backend as _backend
from ..autograd.node import Op
from ..backend.numpy_backend import sigmoid_into
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import to_tensor
from .registry import Case, register

__all__ = ["lstm_cell", "lstm_cell_forward", "lstm_cell_backward", "sigmoid_into"]


# -- array kernels ----------------------------------------------------------------------------


def lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h):
    """Run one LSTM step's elementwise part on the active backend, writing into the given buffers.

    i, f, o = σ(·), g = tanh(·) over the gate blocks of ``pre`` (PyTorch's order i, f, g, o),
    c = f·c_prev + i·g and h = o·tanh(c). ``backend.numpy_backend.lstm_cell_forward`` is the
    reference and documents every argument, its shape and the aliasing it allows.
    """
    _backend.current().lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h)


def lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch):
    """Write one LSTM step's cotangents (of the pre-activations and of c_prev) on the active backend.

    ``backend.numpy_backend.lstm_cell_backward`` is the reference and documents every
    argument; ``dc_prev`` may be ``dc``, so a loop over time can carry one buffer.
    """
    _backend.current().lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch)


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
