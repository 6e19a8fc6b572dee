"""Reductions over an axis, a tuple of axes or the whole tensor (numpy's ``axis``/``keepdims``)."""
import numpy as np

from ..autograd.node import Op
from ._util import keepdims_shape, normalize_axes, to_tensor
from .elementwise import exp, sqrt, where
from .shape import broadcast_to, reshape


def _expand_to_input(g, input_shape, axes):
    """Broadcast a reduced cotangent back to the input's shape (a view, no copy)."""
    return broadcast_to(reshape(g, keepdims_shape(input_shape, axes)), input_shape)


def _expand_array_to_input(g, input_shape, axes):
    """``_expand_to_input`` on an ndarray (a read-only broadcast view)."""
    return np.broadcast_to(g.reshape(keepdims_shape(input_shape, axes)), input_shape)


class Sum(Op):
    name = "sum"

    def __init__(self, axes, keepdims):
        self.axes = axes
        self.keepdims = keepdims

    def forward(self, x):
        return np.sum(x, axis=self.axes, keepdims=self.keepdims)

    def vjp(self, g):
        return (_expand_to_input(g, self.input_meta[0][0], self.axes),)

    def vjp_arrays(self, g):
        return (_expand_array_to_input(g, self.input_meta[0][0], self.axes),)


def sum(x, axis=None, keepdims=False):  # noqa: A001  (numpy's name)
    x = to_tensor(x)
    axes = normalize_axes(axis, x.ndim, "sum")
    return Sum(axes, keepdims).apply(x)


def mean(x, axis=None, keepdims=False):
    x = to_tensor(x)
    axes = normalize_axes(axis, x.ndim, "mean")
    count = int(np.prod([x.shape[a] for a in axes]))
    if count == 0:
        raise ValueError(f"mean: the reduced axes {axes} of shape {x.shape} are empty")
    return sum(x, axes, keepdims) * (1.0 / count)


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance with numpy's ``ddof`` (0: divide by n, 1: by n − 1)."""
    x = to_tensor(x)
    axes = normalize_axes(axis, x.ndim, "var")
    count = int(np.prod([x.shape[a] for a in axes]))
    if count - ddof <= 0:
        raise ValueError(f"var: {count} elements along axes {axes} with ddof={ddof} leave no degrees of freedom")
    centered = x - mean(x, axes, keepdims=True)
    return sum(centered * centered, axes, keepdims) * (1.0 / (count - ddof))


def std(x, axis=None, keepdims=False, ddof=0):
    """Standard deviation; at zero variance its gradient is NaN unless the cotangent is 0."""
    return sqrt(var(x, axis, keepdims, ddof))


class Max(Op):
    """max (or min) along axes; tied entries share the cotangent equally."""

    name = "max"
    reduce = staticmethod(np.max)

    def __init__(self, axes, keepdims):
        self.axes = axes
        self.keepdims = keepdims

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"{self.name}: cannot reduce an empty tensor of shape {x.shape}")
        out = self.reduce(x, axis=self.axes, keepdims=True)
        winners = (x == out).astype(x.dtype)
        self.save_array("share", winners / winners.sum(axis=self.axes, keepdims=True))
        return out if self.keepdims else out.reshape(np.delete(out.shape, self.axes))

    def vjp(self, g):
        return (_expand_to_input(g, self.input_meta[0][0], self.axes) * self.saved("share"),)

    def vjp_arrays(self, g):
        return (_expand_array_to_input(g, self.input_meta[0][0], self.axes) * self.saved_data("share"),)


class Min(Max):
    name = "min"
    reduce = staticmethod(np.min)


def max(x, axis=None, keepdims=False):  # noqa: A001  (numpy's name)
    x = to_tensor(x)
    return Max(normalize_axes(axis, x.ndim, "max"), keepdims).apply(x)


def min(x, axis=None, keepdims=False):  # noqa: A001  (numpy's name)
    x = to_tensor(x)
    return Min(normalize_axes(axis, x.ndim, "min"), keepdims).apply(x)


class LogSumExp(Op):
    """log Σ exp(x) along axes, shifted by the (constant) max so it never overflows.

    A slice that is entirely -inf gives -inf and a zero gradient; -inf entries get 0.
    """

    name = "logsumexp"

    def __init__(self, axes, keepdims):
        self.axes = axes
        self.keepdims = keepdims

    def forward(self, x):
        self.save_input("x", 0)
        self.save_output("lse")
        shift = np.max(x, axis=self.axes, keepdims=True) if x.size else np.zeros((), dtype=x.dtype)
        shift = np.where(np.isfinite(shift), shift, np.zeros((), dtype=x.dtype))
        with np.errstate(divide="ignore"):
            out = np.log(np.sum(np.exp(x - shift), axis=self.axes, keepdims=True)) + shift
        return out if self.keepdims else out.reshape(np.delete(out.shape, self.axes))

    def vjp(self, g):
        x = self.saved("x")
        lse = reshape(self.saved("lse"), keepdims_shape(x.shape, self.axes))
        lse_finite = where(np.isneginf(lse.data), 0.0, lse)
        probabilities = exp(x - lse_finite)  # softmax; exp(-inf) = 0 in all -inf slices
        return (_expand_to_input(g, x.shape, self.axes) * probabilities,)


def logsumexp(x, axis=None, keepdims=False):
    x = to_tensor(x)
    return LogSumExp(normalize_axes(axis, x.ndim, "logsumexp"), keepdims).apply(x)


def argmax(x, axis=None, keepdims=False):
    """Indices of the maximum (int64, no gradient); ``axis=None`` indexes the flattened tensor."""
    return to_tensor(np.argmax(to_tensor(x).data, axis=axis, keepdims=keepdims))


def argmin(x, axis=None, keepdims=False):
    """Indices of the minimum (int64, no gradient); ``axis=None`` indexes the flattened tensor."""
    return to_tensor(np.argmin(to_tensor(x).data, axis=axis, keepdims=keepdims))

