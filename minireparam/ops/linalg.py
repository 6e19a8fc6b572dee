"""Matrix multiplication with numpy.matmul's rules, on the active kernel backend.

The VJP is dA = dC·Bᵀ and dB = Aᵀ·dC. The transposes are views (swapaxes), and the backend
passes a transposed view to its GEMM as a transpose flag, so no transposed copy is made.
Broadcast batch dimensions are summed back by the engine.
"""
import numpy as np

from .. import backend as _backend
from ..autograd.node import Op
from ..errors import ShapeError
from ._util import to_tensor
from .shape import reshape, swapaxes


class MatMul(Op):
    """C = A·B for A of shape (..., M, K) and B of shape (..., K, N), batch dims broadcast."""

    name = "matmul"

    def forward(self, a, b):
        self.save_input("a", 0)
        self.save_input("b", 1)
        return _backend.current().matmul(a, b)

    def vjp(self, g):
        grad_a = grad_b = None
        if self.parents[0] is not None:
            grad_a = matmul(g, swapaxes(self.saved("b"), -1, -2))
        if self.parents[1] is not None:
            grad_b = matmul(swapaxes(self.saved("a"), -1, -2), g)
        return grad_a, grad_b

    def vjp_arrays(self, g):
        kernels = _backend.current()
        grad_a = grad_b = None
        if self.parents[0] is not None:
            grad_a = kernels.matmul(g, np.swapaxes(self.saved_data("b"), -1, -2))
        if self.parents[1] is not None:
            grad_b = kernels.matmul(np.swapaxes(self.saved_data("a"), -1, -2), g)
        return grad_a, grad_b


def _check_shapes(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(
            f"matmul: operands must have at least one dimension, got shapes {a.shape} and {b.shape}; "
            "use * to multiply by a scalar"
        )
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ShapeError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned: the last dimension of the "
            f"first ({k_a}) must equal the {'only' if b.ndim == 1 else 'second-to-last'} dimension "
            f"of the second ({k_b})"
        )
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(
            f"matmul: the batch dimensions of shapes {a.shape} and {b.shape} do not broadcast"
        ) from None
    if a.dtype.kind != "f" or b.dtype.kind != "f":
        raise TypeError(f"matmul: operands must be float32 or float64, got {a.dtype} and {b.dtype}")


def matmul(a, b):
    """numpy.matmul on tensors: 1-D, 2-D and batched operands with broadcast batch dims."""
    a, b = to_tensor(a), to_tensor(b)
    _check_shapes(a, b)
    if a.dtype != b.dtype:  # promote as numpy does (float32 with float64 gives float64)
        common = np.result_type(a.dtype, b.dtype)
        a, b = a.astype(common), b.astype(common)
    a_is_vector, b_is_vector = a.ndim == 1, b.ndim == 1
    if a_is_vector:
        a = reshape(a, (1,) + a.shape)
    if b_is_vector:
        b = reshape(b, b.shape + (1,))
    out = MatMul().apply(a, b)
    if a_is_vector and b_is_vector:
        return reshape(out, out.shape[:-2])
    if a_is_vector:
        return reshape(out, out.shape[:-2] + out.shape[-1:])
    if b_is_vector:
        return reshape(out, out.shape[:-1])
    return out
