"""Shape ops: views, indexing, joining and splitting, padding, casts and in-place writes.

View ops (reshape, transpose, swapaxes, expand_dims, squeeze, broadcast_to, basic slicing)
return numpy views, so they cost no copy; their output shares the input's version counter.
The VJP of indexing returns a ``SparseGrad`` that the engine adds into one buffer per
tensor, instead of a full-size zero array per slice.
"""
import numbers

import numpy as np

from ..autograd.engine import SparseGrad
from ..autograd.grad_mode import state
from ..autograd.node import Op
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import normalize_axes, normalize_axis, to_tensor

# -- views --------------------------------------------------------------------------------


class Reshape(Op):
    name = "reshape"
    is_view = True

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ShapeError(
                f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {self.shape}"
            ) from None

    def vjp(self, g):
        return (reshape(g, self.input_meta[0][0]),)

    def vjp_arrays(self, g):
        return (g.reshape(self.input_meta[0][0]),)


def reshape(x, shape):
    x = to_tensor(x)
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if shape == x.shape:
        return x
    return Reshape(shape).apply(x)


class Transpose(Op):
    name = "transpose"
    is_view = True

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return np.transpose(x, self.axes)

    def vjp(self, g):
        return (transpose(g, tuple(np.argsort(self.axes))),)

    def vjp_arrays(self, g):
        return (np.transpose(g, tuple(np.argsort(self.axes))),)


def transpose(x, axes=None):
    """Permute all axes as numpy does; ``axes=None`` reverses them."""
    x = to_tensor(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    axes = tuple(int(a) % max(x.ndim, 1) for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    return Transpose(axes).apply(x)


def swapaxes(x, axis1, axis2):
    x = to_tensor(x)
    axis1 = normalize_axis(axis1, x.ndim, "swapaxes")
    axis2 = normalize_axis(axis2, x.ndim, "swapaxes")
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return Transpose(tuple(axes)).apply(x)


def expand_dims(x, axis):
    x = to_tensor(x)
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    new_ndim = x.ndim + len(axes)
    axes = normalize_axes(axes, new_ndim, "expand_dims")
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return reshape(x, tuple(shape))


def squeeze(x, axis=None):
    x = to_tensor(x)
    if axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = normalize_axes(axis, x.ndim, "squeeze")
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


class BroadcastTo(Op):
    name = "broadcast_to"
    is_view = True

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        try:
            return np.broadcast_to(x, self.shape)
        except ValueError:
            raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {self.shape}") from None

    def vjp(self, g):
        return (g,)  # the engine sums g back to the input's shape

    def vjp_arrays(self, g):
        return (g,)


def broadcast_to(x, shape):
    x = to_tensor(x)
    shape = tuple(shape)
    if shape == x.shape:
        return x
    return BroadcastTo(shape).apply(x)


class SumToShape(Op):
    """Sum over the axes that broadcasting added or stretched, giving ``shape``."""

    name = "sum_to_shape"

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return sum_to_shape_array(x, self.shape)

    def vjp(self, g):
        return (broadcast_to(g, self.input_meta[0][0]),)

    def vjp_arrays(self, g):
        return (np.broadcast_to(g, self.input_meta[0][0]),)


def sum_to_shape_array(x, shape):
    """Sum the ndarray ``x`` over the axes broadcasting added or stretched, giving ``shape``."""
    leading = x.ndim - len(shape)
    if leading < 0:
        raise ShapeError(f"sum_to_shape: cannot reduce shape {x.shape} to the larger shape {shape}")
    stretched = tuple(leading + i for i, n in enumerate(shape) if n == 1 and x.shape[leading + i] != 1)
    out = x.sum(axis=tuple(range(leading)) + stretched, keepdims=True) if leading or stretched else x
    return out.reshape(shape)


def sum_to_shape(x, shape):
    x = to_tensor(x)
    if x.shape == tuple(shape):
        return x
    return SumToShape(tuple(shape)).apply(x)


# -- casts and copies ---------------------------------------------------------------------


class AsType(Op):
    name = "astype"

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        return x.astype(self.dtype)

    def vjp(self, g):
        return (astype(g, self.input_meta[0][1]),)

    def vjp_arrays(self, g):
        return (g.astype(self.input_meta[0][1], copy=False),)


def astype(x, dtype):
    """Cast to ``dtype``; gradients are cast back to the input's dtype."""
    x = to_tensor(x)
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if dtype.kind != "f":
        return Tensor._make(x.data.astype(dtype), None, False)
    return AsType(dtype).apply(x)


class Copy(Op):
    name = "copy"

    def forward(self, x):
        return x.copy()

    def vjp(self, g):
        return (g,)

    def vjp_arrays(self, g):
        return (g,)


def copy(x):
    return Copy().apply(to_tensor(x))


# -- indexing -----------------------------------------------------------------------------


def _normalize_index(index):
    """Replace Tensors inside an index by their arrays; return (index, basic)."""
    items = index if isinstance(index, tuple) else (index,)
    converted = []
    basic = True
    for item in items:
        if isinstance(item, Tensor):
            item = item.data
        if isinstance(item, list):
            item = np.asarray(item)
        if isinstance(item, np.ndarray):
            if item.dtype.kind not in "iub":
                raise IndexError(f"getitem: index arrays must be integers or booleans, got dtype {item.dtype}")
            if item.dtype.kind != "b":
                basic = False  # integer arrays may repeat an element
        elif not (item is None or item is Ellipsis or isinstance(item, (slice, numbers.Integral))):
            raise IndexError(f"getitem: unsupported index {item!r}")
        converted.append(item)
    normalized = tuple(converted) if isinstance(index, tuple) else converted[0]
    return normalized, basic


class GetItem(Op):
    name = "getitem"

    def __init__(self, index, basic):
        self.index = index
        self.basic = basic
        self.is_view = basic

    def forward(self, x):
        return x[self.index]

    def vjp(self, g):
        if state.grad_enabled:  # create_graph: build the gradient with a differentiable op
            return (IndexAdd(self.index, self.basic, self.input_meta[0][0]).apply(g),)
        return (SparseGrad(self.index, g.data, self.basic),)

    def vjp_arrays(self, g):
        return (SparseGrad(self.index, g, self.basic),)


class IndexAdd(Op):
    """Zeros of ``shape`` with ``g`` added at ``index`` (the dense form of a SparseGrad)."""

    name = "index_add"

    def __init__(self, index, basic, shape):
        self.index = index
        self.basic = basic
        self.shape = shape

    def forward(self, g):
        out = np.zeros(self.shape, dtype=g.dtype)
        SparseGrad(self.index, g, self.basic).add_into(out)
        return out

    def vjp(self, c):
        return (GetItem(self.index, self.basic).apply(c),)

    def vjp_arrays(self, c):
        return (c[self.index],)


def getitem(x, index):
    """``x[index]`` with numpy's rules: slices, integers, integer arrays and boolean masks."""
    x = to_tensor(x)
    index, basic = _normalize_index(index)
    try:
        return GetItem(index, basic).apply(x)
    except IndexError as error:
        raise IndexError(f"getitem: index {index!r} is invalid for shape {x.shape}: {error}") from None


class SetItem(Op):
    """``out = x`` with ``out[index] = value``: the out-of-place form of ``x[index] = value``."""

    name = "setitem"

    def __init__(self, index, basic):
        self.index = index
        self.basic = basic

    def forward(self, x, value):
        out = x.copy()
        out[self.index] = value
        kept = np.ones(x.shape, dtype=bool)
        kept[self.index] = False
        self.save_array("kept", kept)
        return out

    def vjp(self, g):
        grad_value = GetItem(self.index, self.basic).apply(g)
        return g * self.saved("kept"), grad_value


def setitem_(x, index, value):
    """Write ``value`` into ``x[index]`` (Tensor.__setitem__)."""
    index, basic = _normalize_index(index)
    value_requires_grad = isinstance(value, Tensor) and value.requires_grad
    if state.grad_enabled and (x.requires_grad or value_requires_grad):
        _check_inplace_allowed(x, "setitem")
        if not isinstance(value, Tensor):
            value = Tensor._make(np.asarray(value, dtype=x.dtype), None, False)
        _rebind(x, SetItem(index, basic).apply(x, value))
        return
    x.data[index] = value.data if isinstance(value, Tensor) else value
    x._version[0] += 1


def inplace_(x, function, other):
    """Apply ``x = function(x, other)`` in place (``+=``, ``-=``, ``*=``, ``/=``)."""
    other_requires = isinstance(other, Tensor) and other.requires_grad
    if state.grad_enabled and (x.requires_grad or other_requires):
        _check_inplace_allowed(x, function.__name__)
        result = function(x, other)
        if result.dtype != x.dtype:
            raise TypeError(
                f"in-place {function.__name__}: the result is {result.dtype}, which cannot be "
                f"stored in a {x.dtype} tensor; use the out-of-place form instead"
            )
        _rebind(x, result)
        return x
    ufunc = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.true_divide}
    other_data = other.data if isinstance(other, Tensor) else other
    try:
        ufunc[function.__name__](x.data, other_data, out=x.data)
    except (TypeError, ValueError) as error:  # numpy raises UFuncTypeError, a TypeError
        raise type(error)(f"in-place {function.__name__} on a {x.dtype} tensor of shape {x.shape}: {error}") from None
    x._version[0] += 1
    return x


def _check_inplace_allowed(x, op_name):
    if x._node is None and x.requires_grad:
        raise RuntimeError(
            f"in-place {op_name} on a leaf tensor that requires grad: its gradient would be lost. "
            "Update it inside `with minireparam.no_grad():` (as optimizers do) or use an out-of-place op."
        )


def _rebind(x, result):
    """Make ``x`` the result of a recorded in-place op.

    The previous array is left untouched, so graphs that saved ``x`` keep their values;
    ``x`` gets the new array and a fresh version counter.
    NOTE: arrays obtained earlier from ``x.numpy()`` keep the old values.
    """
    x.data = result.data
    x._node = result._node
    x.requires_grad = True
    x._version = result._version


# -- joining, splitting, padding ----------------------------------------------------------


class Concatenate(Op):
    name = "concatenate"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *arrays):
        try:
            return np.concatenate(arrays, axis=self.axis)
        except ValueError:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ShapeError(
                f"concatenate: all shapes must match except along axis {self.axis}, got {shapes}"
            ) from None

    def vjp(self, g):
        grads, start = [], 0
        for shape, _dtype in self.input_meta:
            stop = start + shape[self.axis]
            index = (slice(None),) * self.axis + (slice(start, stop),)
            grads.append(getitem(g, index))
            start = stop
        return tuple(grads)


def concatenate(tensors, axis=0):
    tensors = [to_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: need at least one tensor")
    axis = normalize_axis(axis, tensors[0].ndim, "concatenate")
    return Concatenate(axis).apply(*tensors)


class Stack(Op):
    name = "stack"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *arrays):
        try:
            return np.stack(arrays, axis=self.axis)
        except ValueError:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ShapeError(f"stack: all tensors must have the same shape, got {shapes}") from None

    def vjp(self, g):
        prefix = (slice(None),) * self.axis
        return tuple(getitem(g, prefix + (i,)) for i in range(len(self.input_meta)))


def stack(tensors, axis=0):
    tensors = [to_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: need at least one tensor")
    axis = normalize_axis(axis, tensors[0].ndim + 1, "stack")
    return Stack(axis).apply(*tensors)


def split(x, indices_or_sections, axis=0):
    """Split into a list of slices (numpy.split); their gradients share one buffer."""
    x = to_tensor(x)
    axis = normalize_axis(axis, x.ndim, "split")
    length = x.shape[axis]
    if isinstance(indices_or_sections, numbers.Integral):
        sections = int(indices_or_sections)
        if sections <= 0 or length % sections:
            raise ValueError(f"split: axis {axis} of length {length} cannot be split into {sections} equal sections")
        bounds = list(range(0, length + 1, length // sections)) if length else [0] * (sections + 1)
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [length]
    prefix = (slice(None),) * axis
    return [getitem(x, prefix + (slice(start, stop),)) for start, stop in zip(bounds[:-1], bounds[1:])]


class Pad(Op):
    """Constant padding (numpy.pad with mode="constant"); the VJP slices the cotangent."""

    name = "pad"

    def __init__(self, pad_width, constant_values):
        self.pad_width = pad_width
        self.constant_values = constant_values

    def forward(self, x):
        return np.pad(x, self.pad_width, mode="constant", constant_values=self.constant_values)

    def vjp(self, g):
        index = tuple(slice(before, g.shape[i] - after) for i, (before, after) in enumerate(self.pad_width))
        return (getitem(g, index),)


def pad(x, pad_width, mode="constant", constant_values=0):
    x = to_tensor(x)
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is supported, got {mode!r}")
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    if (widths < 0).any():
        raise ValueError(f"pad: pad widths must be non-negative, got {pad_width!r}")
    return Pad(tuple(map(tuple, widths.tolist())), constant_values).apply(x)


class TakeAlongAxis(Op):
    name = "take_along_axis"

    def __init__(self, indices, axis):
        self.indices = indices
        self.axis = axis

    def forward(self, x):
        return np.take_along_axis(x, self.indices, axis=self.axis)

    def vjp(self, g):
        return (ScatterAddAlongAxis(self.indices, self.axis, self.input_meta[0][0]).apply(g),)


class ScatterAddAlongAxis(Op):
    """Zeros of ``shape`` with ``g`` added at ``indices`` along ``axis`` (repeats accumulate)."""

    name = "scatter_add_along_axis"

    def __init__(self, indices, axis, shape):
        self.indices = indices
        self.axis = axis
        self.shape = shape

    def forward(self, g):
        out = np.zeros(self.shape, dtype=g.dtype)
        grids = list(np.ix_(*[np.arange(n) for n in self.indices.shape]))
        grids[self.axis] = self.indices
        np.add.at(out, tuple(grids), g)
        return out

    def vjp(self, c):
        return (TakeAlongAxis(self.indices, self.axis).apply(c),)


def take_along_axis(x, indices, axis):
    x = to_tensor(x)
    indices = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise IndexError(f"take_along_axis: indices must be integers, got dtype {indices.dtype}")
    if indices.ndim != x.ndim:
        raise ShapeError(
            f"take_along_axis: indices of shape {indices.shape} must have as many dimensions as x of shape {x.shape}"
        )
    axis = normalize_axis(axis, x.ndim, "take_along_axis")
    if indices.size and (indices.min() < -x.shape[axis] or indices.max() >= x.shape[axis]):
        raise IndexError(
            f"take_along_axis: indices must lie in [{-x.shape[axis]}, {x.shape[axis]}) for axis {axis} "
            f"of shape {x.shape}, got values from {indices.min()} to {indices.max()}"
        )
    return TakeAlongAxis(indices, axis).apply(x)


def one_hot(indices, num_classes=-1, dtype=np.float32):
    """One-hot encoding along a new last axis (no gradient)."""
    indices = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be integers, got dtype {indices.dtype}")
    if num_classes < 0:
        num_classes = int(indices.max()) + 1 if indices.size else 0
    if indices.size and (indices.min() < 0 or indices.max() >= num_classes):
        raise IndexError(
            f"one_hot: indices must lie in [0, {num_classes}), got values from {indices.min()} to {indices.max()}"
        )
    out = np.zeros(indices.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, indices[..., None], 1, axis=-1)
    return to_tensor(out)
