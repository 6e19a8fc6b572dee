"""The Tensor: a numpy array plus the link to the op that produced it.

A Tensor owns ``data`` (an ndarray), ``requires_grad``, ``grad`` (an ndarray of the same
shape and dtype, or None) and, when an op produced it while recording, ``grad_fn`` (that
op's graph node). Arithmetic and methods forward to the functions in ``minireparam.ops``.

Writing into ``.data`` or into the array returned by ``numpy()`` bypasses the tape: such
writes are not version-checked, so a backward pass may silently use the changed values.
"""
import numpy as np

from .autograd.grad_mode import state

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_new_object = object.__new__  # bound once: Tensor._make runs for every op result


class Tensor:
    """An n-dimensional array that records the ops applied to it for reverse-mode autodiff."""

    __slots__ = ("data", "grad", "requires_grad", "_node", "_version", "__weakref__")

    # Make numpy defer to Tensor's reflected operators (``array * tensor``).
    __array_ufunc__ = None

    def __init__(self, data, dtype=None, requires_grad=False):
        self.data = as_array(data, dtype)
        self.grad = None
        self.requires_grad = False
        self._node = None
        self._version = [0]
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _make(data, node, requires_grad, version_box=None):
        """Wrap an ndarray without conversion (the ops' fast path); always a plain Tensor."""
        tensor = _new_object(Tensor)  # skips __init__ and its conversions
        tensor.data = data
        tensor.grad = None
        tensor.requires_grad = requires_grad
        tensor._node = node
        tensor._version = [0] if version_box is None else version_box
        return tensor

    # -- array attributes ----------------------------------------------------------------

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    @property
    def T(self):
        return ops.transpose(self)

    @property
    def grad_fn(self):
        return self._node

    @property
    def is_leaf(self):
        return self._node is None

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use (t).any() or (t).all() on the array from .numpy()"
            )
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.data.reshape(()))

    __hash__ = object.__hash__

    # -- conversion ----------------------------------------------------------------------

    def numpy(self):
        """Return the underlying array (shared, not copied; writes bypass the tape)."""
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): the tensor has {self.data.size} elements, expected exactly 1")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def detach(self):
        """Return a Tensor sharing this data, cut from the graph (no grad_fn, no grad)."""
        return Tensor._make(self.data, None, False, self._version)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place and return self."""
        if requires_grad and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"requires_grad=True on a {self.data.dtype} tensor: only floating tensors can "
                "require gradients (float32 or float64). Convert it first, for example "
                "tensor(x, dtype='float64', requires_grad=True)."
            )
        if not requires_grad and self._node is not None:
            raise RuntimeError(
                "requires_grad_(False) on a non-leaf tensor; use detach() to cut it from the graph"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self):
        """Clear the accumulated gradient (same as ``t.grad = None``)."""
        self.grad = None

    def astype(self, dtype):
        return ops.astype(self, dtype)

    def float(self):
        return ops.astype(self, np.float32)

    def double(self):
        return ops.astype(self, np.float64)

    def copy(self):
        return ops.copy(self)

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        Args:
            grad: the cotangent, of self's shape; may be omitted only for a scalar.
            retain_graph: keep saved values so the graph can be backpropagated again.
        """
        _engine.backward(self, grad, retain_graph=retain_graph)

    # -- representation ------------------------------------------------------------------

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype not in (np.dtype(np.float32), np.dtype(np.int64), np.dtype(bool)):
            extras.append(f"dtype={self.data.dtype}")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        suffix = "".join(", " + extra for extra in extras)
        return f"tensor({body}{suffix})"

    # -- arithmetic ----------------------------------------------------------------------
    # ``+``, ``-``, ``*`` and ``/`` with the tensor on the left are the ops functions
    # themselves, bound at the end of this module (one Python call fewer per op).

    def __radd__(self, other):
        return ops.add(other, self)

    def __rsub__(self, other):
        return ops.subtract(other, self)

    def __rmul__(self, other):
        return ops.multiply(other, self)

    def __rtruediv__(self, other):
        return ops.divide(other, self)

    def __pow__(self, other):
        return ops.power(self, other)

    def __rpow__(self, other):
        return ops.power(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    # Comparisons and logic give boolean tensors without gradient.
    def __eq__(self, other):
        return ops.equal(self, other)

    def __ne__(self, other):
        return ops.not_equal(self, other)

    def __lt__(self, other):
        return ops.less(self, other)

    def __le__(self, other):
        return ops.less_equal(self, other)

    def __gt__(self, other):
        return ops.greater(self, other)

    def __ge__(self, other):
        return ops.greater_equal(self, other)

    def __and__(self, other):
        return ops.logical_and(self, other)

    def __or__(self, other):
        return ops.logical_or(self, other)

    def __invert__(self):
        return ops.logical_not(self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # -- in-place operations -------------------------------------------------------------

    def __setitem__(self, index, value):
        ops.setitem_(self, index, value)

    def __iadd__(self, other):
        return ops.inplace_(self, ops.add, other)

    def __isub__(self, other):
        return ops.inplace_(self, ops.subtract, other)

    def __imul__(self, other):
        return ops.inplace_(self, ops.multiply, other)

    def __itruediv__(self, other):
        return ops.inplace_(self, ops.divide, other)

    def _bump_version(self):
        """Record that ``data`` was changed in place (optimizers call this after updates)."""
        self._version[0] += 1

    # -- methods that mirror the functions in minireparam.ops ---------------------------

    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return ops.var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis=None, keepdims=False, ddof=0):
        return ops.std(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False):
        return ops.argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return ops.argmin(self, axis=axis, keepdims=keepdims)

    def logsumexp(self, axis=None, keepdims=False):
        return ops.logsumexp(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.transpose(self, axes or None)

    def swapaxes(self, axis1, axis2):
        return ops.swapaxes(self, axis1, axis2)

    def squeeze(self, axis=None):
        return ops.squeeze(self, axis)

    def expand_dims(self, axis):
        return ops.expand_dims(self, axis)

    def broadcast_to(self, shape):
        return ops.broadcast_to(self, shape)

    def flatten(self):
        return ops.reshape(self, (-1,))

    def clip(self, a_min=None, a_max=None):
        return ops.clip(self, a_min, a_max)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def softmax(self, axis=-1):
        return ops.softmax(self, axis=axis)

    def log_softmax(self, axis=-1):
        return ops.log_softmax(self, axis=axis)


def as_array(data, dtype=None):
    """Convert ``data`` to an ndarray by the library's dtype rules.

    Python floats (and lists containing floats) become float32; Python ints become int64;
    numpy arrays keep their dtype; an explicit ``dtype`` wins. float16 is widened to float32.
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=np.dtype(dtype))
    if isinstance(data, np.ndarray):
        array = data
    elif isinstance(data, np.generic):
        array = np.asarray(data)
    else:
        array = np.array(data)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    if array.dtype.kind not in "fiub":
        raise TypeError(
            f"tensor(): unsupported data of dtype {array.dtype}; expected floats, integers or booleans"
        )
    return array


def tensor(data, dtype=None, requires_grad=False):
    """Create a leaf Tensor from a Python number, nested list, ndarray or Tensor.

    Python floats become float32 and numpy arrays keep their dtype; ndarrays are
    wrapped without a copy. ``requires_grad=True`` needs a floating dtype.
    """
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def is_recording(*tensors):
    return state.grad_enabled and any(t.requires_grad for t in tensors)


from . import ops  # noqa: E402  (ops needs Tensor defined first)
from .autograd import engine as _engine, node as _node  # noqa: E402

# The tape runs Tensor ops at call time but is imported before them: hand over the
# references once here instead of importing inside every call on the hot path.
_node.Tensor = _engine.Tensor = Tensor
_engine.ops = ops

# ``tensor + other`` calls ops.add(tensor, other) with no method in between.
Tensor.__add__ = ops.add
Tensor.__sub__ = ops.subtract
Tensor.__mul__ = ops.multiply
Tensor.__truediv__ = ops.divide
