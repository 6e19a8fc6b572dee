"""Cholesky factorization and triangular solves as differentiable ops (batched over leading axes).

Both VJPs are written with these same ops, so they can be differentiated again.
"""
import numpy as np

from .. import ops
from ..autograd.node import Op
from ..errors import ShapeError
from ..ops._util import to_tensor


def _matrix_transpose(x):
    return ops.swapaxes(x, -1, -2)


def _lower_mask(n, dtype, strict=False):
    return np.tril(np.ones((n, n), dtype=dtype), k=-1 if strict else 0)


class SolveTriangular(Op):
    """X = A⁻¹ B with A = L or Lᵀ for a lower-triangular L of shape (..., n, n); B is (..., n, k)."""

    name = "distributions.solve_triangular"

    def __init__(self, transpose):
        self.transpose = transpose

    def forward(self, lower, right):
        self.save_input("lower", 0)
        self.save_output("solution")
        matrix = np.tril(lower)
        if self.transpose:
            matrix = np.swapaxes(matrix, -1, -2)
        batch = np.broadcast_shapes(matrix.shape[:-2], right.shape[:-2])
        matrix = np.broadcast_to(matrix, batch + matrix.shape[-2:])
        right = np.broadcast_to(right, batch + right.shape[-2:])
        return np.linalg.solve(matrix, right)

    def vjp(self, g):
        lower, solution = self.saved("lower"), self.saved("solution")
        grad_right = solve_triangular(lower, g, transpose=not self.transpose)  # A⁻ᵀ Ḡ
        grad_matrix = -ops.matmul(grad_right, _matrix_transpose(solution))      # Ā = −B̄ Xᵀ
        if self.transpose:
            grad_matrix = _matrix_transpose(grad_matrix)
        mask = _lower_mask(lower.shape[-1], lower.dtype)
        return grad_matrix * mask, grad_right


def solve_triangular(lower, right, transpose=False):
    """Solve L X = B (or Lᵀ X = B when ``transpose``) for a lower-triangular L.

    Args:
        lower: (..., n, n); only its lower triangle is read.
        right: (..., n, k), batch axes broadcasting with ``lower``'s.
        transpose: solve with Lᵀ.

    Returns:
        X of shape (broadcast batch, n, k).
    """
    lower, right = to_tensor(lower), to_tensor(right)
    if lower.ndim < 2 or lower.shape[-1] != lower.shape[-2] or right.ndim < 2 or right.shape[-2] != lower.shape[-1]:
        raise ShapeError(
            f"solve_triangular: expected lower (..., n, n) and right (..., n, k), got "
            f"{lower.shape} and {right.shape}"
        )
    return SolveTriangular(transpose).apply(lower, right)


class Cholesky(Op):
    """L with L Lᵀ = A for a symmetric positive-definite A; only A's lower triangle is read."""

    name = "distributions.cholesky"

    def forward(self, matrix):
        self.save_output("lower")
        try:
            return np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"cholesky: the matrix of shape {matrix.shape} is not positive definite (its "
                "Cholesky factorization failed). Check the covariance, for example add a small "
                "multiple of the identity."
            ) from None

    def vjp(self, g):
        # With P = Φ(Lᵀ Ḡ) (lower triangle, diagonal halved): Ā = sym(L⁻ᵀ P L⁻¹).
        lower = self.saved("lower")
        n = lower.shape[-1]
        product = ops.matmul(_matrix_transpose(lower), g)
        phi = product * _lower_mask(n, lower.dtype, strict=True) + product * (0.5 * np.eye(n, dtype=lower.dtype))
        left = solve_triangular(lower, phi, transpose=True)                                  # L⁻ᵀ P
        both = _matrix_transpose(solve_triangular(lower, _matrix_transpose(left), transpose=True))  # L⁻ᵀ P L⁻¹
        return (0.5 * (both + _matrix_transpose(both)),)


def cholesky(matrix):
    """Lower Cholesky factor of a symmetric positive-definite (..., n, n) matrix, differentiable."""
    matrix = to_tensor(matrix)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ShapeError(f"cholesky: expected a (..., n, n) matrix, got shape {matrix.shape}")
    return Cholesky().apply(matrix)
