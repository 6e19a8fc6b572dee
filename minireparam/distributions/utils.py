"""Helpers shared by the distributions: parameter conversion, noise, safe logs."""
import numbers

import numpy as np

from .. import ops
from ..errors import ParameterValueError, ShapeError
from ..tensor import Tensor


def as_parameter(value, dtype=None):
    """Return ``value`` as a floating Tensor (Tensors keep their graph; ints become floats)."""
    if isinstance(value, Tensor):
        if value.dtype.kind != "f":
            return Tensor._make(value.data.astype(dtype or np.float32), None, False)
        if dtype is not None and value.dtype != dtype:
            return ops.astype(value, dtype)
        return value
    array = np.asarray(value)
    if dtype is None:
        dtype = array.dtype if array.dtype.kind == "f" and not _is_python_number(value) else np.float32
    if array.dtype == np.float16:
        dtype = np.float32
    return Tensor._make(array.astype(dtype), None, False)


def _is_python_number(value):
    return isinstance(value, numbers.Number) and not isinstance(value, np.generic)


def common_dtype(*values):
    """float64 when any array or Tensor among ``values`` is float64, float32 otherwise."""
    for value in values:
        data = value.data if isinstance(value, Tensor) else value
        if isinstance(data, (np.ndarray, np.generic)) and data.dtype == np.float64:
            return np.dtype(np.float64)
    return np.dtype(np.float32)


def broadcast_parameters(owner, event_dims=None, **named):
    """Convert parameters to Tensors of one float dtype and broadcast them to one shape.

    Args:
        owner: the distribution's name, for errors.
        event_dims: per parameter, how many rightmost axes belong to the event and are
            left out of the broadcast (default 0 for every parameter).
        **named: the parameters by name.

    Returns:
        (dict name -> Tensor, the common batch shape).

    Raises:
        ShapeError: naming every parameter and its shape when the shapes do not broadcast.
    """
    event_dims = event_dims or {}
    dtype = common_dtype(*named.values())
    tensors = {name: as_parameter(value, dtype) for name, value in named.items()}
    batch_shapes = {name: t.shape[:t.ndim - event_dims.get(name, 0)] for name, t in tensors.items()}
    try:
        batch_shape = np.broadcast_shapes(*batch_shapes.values())
    except ValueError:
        listed = ", ".join(f"{name} {shape}" for name, shape in batch_shapes.items())
        raise ShapeError(
            f"{owner}: the parameter shapes do not broadcast together: {listed}. "
            "Trailing dimensions must be equal or 1."
        ) from None
    for name, t in tensors.items():
        target = tuple(batch_shape) + t.shape[t.ndim - event_dims.get(name, 0):]
        if t.shape != target:
            tensors[name] = ops.broadcast_to(t, target)
    return tensors, tuple(batch_shape)


def check_parameter(owner, name, value, constraint):
    """Raise ValueError naming the parameter and showing bad values when outside ``constraint``."""
    data = value.data if isinstance(value, Tensor) else np.asarray(value)
    valid = np.asarray(constraint.check(data))
    if valid.all():
        return
    bad = np.argwhere(~valid) if valid.ndim else np.zeros((1, 0), dtype=int)
    shown = []
    for index in bad[:5]:
        index = tuple(int(i) for i in index)
        value = np.asarray(data[index]).tolist()
        shown.append(f"{value!r}" if not index else f"{value!r} at {index}")
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    bad_values = np.asarray(data)[~valid] if valid.ndim else np.asarray(data).reshape(-1)
    non_finite = bool(np.issubdtype(bad_values.dtype, np.floating) and not np.isfinite(bad_values).all())
    advice = ("NaN or infinite parameters usually mean that training diverged: lower the learning rate."
              if non_finite else "Pass valid values, or validate_args=False to skip this check.")
    raise ParameterValueError(
        f"{owner}: parameter '{name}' must be {constraint.description}, got {', '.join(shown)}{more}. {advice}",
        non_finite=non_finite,
    )


def open_uniform(shape, generator, dtype):
    """Uniform noise on the open interval (0, 1) in ``dtype``: never exactly 0 or 1."""
    info = np.finfo(dtype)
    u = generator.numpy.random(shape).astype(dtype)
    return np.clip(u, info.tiny, 1.0 - info.epsneg)


def standard_normal(shape, generator, dtype):
    return generator.numpy.standard_normal(shape).astype(dtype)


def xlogy(x, y):
    """x·log(y) with 0·log(0) = 0 and zero (not NaN) gradients at that point.

    Where y > 0 the gradient with respect to x is log(y) as usual, also at x = 0.
    """
    x_data = x.data if isinstance(x, Tensor) else np.asarray(x)
    y_data = y.data if isinstance(y, Tensor) else np.asarray(y)
    both_zero = (x_data == 0) & (y_data == 0)
    safe_y = ops.where(both_zero, 1.0, y)
    return ops.where(both_zero, 0.0, x * ops.log(safe_y))


def probs_to_logits(probs, is_binary=False):
    """Logits of probabilities, clamped away from 0 and 1 so they stay finite."""
    clamped = clamp_probs(probs)
    if is_binary:
        return ops.log(clamped) - ops.log1p(-clamped)
    return ops.log(clamped)


def logits_to_probs(logits, is_binary=False):
    if is_binary:
        return ops.sigmoid(logits)
    return ops.softmax(logits, axis=-1)


def clamp_probs(probs):
    """Clip probabilities into [eps, 1 − eps] (eps the dtype's machine epsilon)."""
    eps = float(np.finfo(probs.dtype).eps)
    return ops.clip(probs, eps, 1.0 - eps)


def sum_rightmost(value, dims):
    """Sum the ``dims`` rightmost axes of ``value`` (none when dims is 0)."""
    if dims == 0:
        return value
    return ops.sum(value, axis=tuple(range(value.ndim - dims, value.ndim)))


class lazy_property:
    """A property computed on first access and then stored on the instance.

    Parameters given in two forms (``probs`` or ``logits``) use it so the form that was
    passed is stored at construction and the other is derived only when asked for.
    """

    def __init__(self, function):
        self.function = function
        self.__doc__ = function.__doc__
        self.name = function.__name__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = self.function(instance)
        instance.__dict__[self.name] = value
        return value
