"""Helpers shared by the op families: argument conversion and axis checks."""
import numbers

import numpy as np

from ..errors import ShapeError
from ..tensor import Tensor, as_array


def to_tensor(value):
    """Return ``value`` as a Tensor (Tensors pass through unchanged)."""
    if isinstance(value, Tensor):
        return value
    return Tensor._make(as_array(value), None, False)


def to_tensor_pair(a, b):
    """Convert two operands, giving a Python scalar the dtype of the other floating operand.

    This keeps ``float32_tensor * 2.0`` in float32, as numpy does for Python scalars.
    """
    type_a, type_b = type(a), type(b)
    if type_a is Tensor:
        if type_b is Tensor:
            return a, b
        if type_b is float and a.data.dtype.kind == "f":  # the hot case: tensor op float
            return a, Tensor._make(np.array(b, dtype=a.data.dtype), None, False)
    elif type_b is Tensor and type_a is float and b.data.dtype.kind == "f":
        return Tensor._make(np.array(a, dtype=b.data.dtype), None, False), b

    if _is_python_scalar(a) and isinstance(b, Tensor):
        return _scalar_like(a, b), b
    if _is_python_scalar(b) and isinstance(a, Tensor):
        return a, _scalar_like(b, a)
    return to_tensor(a), to_tensor(b)


def _is_python_scalar(value):
    if type(value) in (float, int, bool):  # fast path for the common cases
        return True
    return isinstance(value, numbers.Number) and not isinstance(value, np.generic)


def _scalar_like(value, other):
    dtype = other.data.dtype
    if dtype.kind == "f" and type(value) is not bool:
        return Tensor._make(np.array(value, dtype=dtype), None, False)
    if isinstance(value, bool):
        return Tensor._make(np.asarray(value), None, False)
    if isinstance(value, numbers.Integral):
        return Tensor._make(np.asarray(value, dtype=np.int64), None, False)
    return Tensor._make(np.asarray(value, dtype=np.float32), None, False)


def normalize_axes(axis, ndim, op_name):
    """Return ``axis`` (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    normalized = []
    for ax in axes:
        if not isinstance(ax, numbers.Integral):
            raise TypeError(f"{op_name}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= ax < max(ndim, 1) or (ndim == 0 and ax not in (0, -1)):
            raise np.exceptions.AxisError(
                f"{op_name}: axis {ax} is out of range for a tensor with {ndim} dimensions "
                f"(valid axes are {-ndim} to {ndim - 1})"
            )
        normalized.append(int(ax) % max(ndim, 1))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op_name}: repeated axis in {axis!r}")
    return tuple(sorted(normalized))


def normalize_axis(axis, ndim, op_name):
    """Return a single ``axis`` as a non-negative int, with a clear error when out of range."""
    return normalize_axes(int(axis), ndim, op_name)[0]


def keepdims_shape(shape, axes):
    """Return ``shape`` with every axis in ``axes`` set to 1."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def broadcast_error(op_name, *shapes):
    listed = " and ".join(str(tuple(s)) for s in shapes)
    return ShapeError(
        f"{op_name}: operands could not be broadcast together: shapes {listed}. "
        "Trailing dimensions must be equal or 1."
    )
