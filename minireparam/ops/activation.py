"""Activations and the softmax family.

softmax and log_softmax run on the active kernel backend (C or numpy). Their VJPs are
ops of their own (``SoftmaxBackward``, ``LogSoftmaxBackward``) that call the backend's
fused backward kernels and have VJPs in turn, so second derivatives pass through them.

Masking convention: an entry of -inf gets probability 0 and gradient exactly 0. A row
that is entirely -inf (a query that may attend to nothing) gives softmax zeros,
log_softmax -inf and zero gradients, and never puts NaN into other rows.
"""
import math

import numpy as np

from .. import backend as _backend
from ..autograd.grad_mode import state
from ..autograd.node import Op
from ..tensor import Tensor
from ._util import normalize_axis, to_tensor
from .registry import Case, register
from .elementwise import exp, where

# -- tanh, sigmoid, relu, softplus --------------------------------------------------------


class Tanh(Op):
    name = "tanh"

    def forward(self, x):
        self.save_output("y")
        return np.tanh(x)

    def vjp(self, g):
        return (TanhBackward().apply(self.saved("y"), g),)

    def vjp_arrays(self, g):
        # The same arithmetic as TanhBackward.forward, without recording a node.
        y = self.saved_data("y")
        if _fused_tanh_backward_pays(y, g):
            return (_backend.current().tanh_backward(y, g),)
        return (g * (1.0 - y * y),)


class TanhBackward(Op):
    """dx = g·(1 − y²) from the output y = tanh(x), in one op (differentiable in y and g).

    1 − y² is the same at x and −x because tanh is odd.
    """

    name = "tanh_backward"

    def forward(self, y, g):
        self.save_input("y", 0)
        self.save_input("g", 1)
        if _fused_tanh_backward_pays(y, g):
            return _backend.current().tanh_backward(y, g)  # one fused pass
        return g * (1.0 - y * y)

    def vjp(self, c):
        y, g = self.saved("y"), self.saved("g")
        return c * g * y * -2.0, TanhBackward().apply(y, c)


class Sigmoid(Op):
    """Logistic sigmoid, computed without overflow for any x (on the kernel backend)."""

    name = "sigmoid"

    def forward(self, x):
        self.save_input("x", 0)
        self.save_output("y")
        return _backend.current().sigmoid(x)

    def vjp(self, g):
        x = self.saved("x")
        derivative = self._derivative(x.data, self.saved_data("y"))
        return (SigmoidBackward().apply(x, Tensor._make(derivative, None, False), g),)

    def vjp_arrays(self, g):
        return (g * self._derivative(self.saved_data("x"), self.saved_data("y")),)

    @staticmethod
    def _derivative(x, y):
        # σ'(x) = σ(x)·σ(−x) with both factors computed directly, so it is exactly the same at
        # x and −x (the usual y·(1 − y) rounds to 0 at x = 20 in float32 but not at x = −20).
        return np.asarray(y * _backend.current().sigmoid(np.asarray(np.multiply(x, -1))))


class SigmoidBackward(Op):
    """dx = g·σ'(x), with σ'(x) precomputed by the forward; differentiable in x and g."""

    name = "sigmoid_backward"

    def forward(self, x, derivative, g):
        self.save_input("x", 0)
        self.save_input("derivative", 1)
        self.save_input("g", 2)
        return g * derivative

    def vjp(self, c):
        x, derivative, g = self.saved("x"), self.saved("derivative"), self.saved("g")
        second_derivative = sigmoid_derivative(x) * -tanh(x * 0.5)  # σ'' = σ'·(1 − 2σ) = −σ'·tanh(x/2)
        return c * g * second_derivative, None, SigmoidBackward().apply(x, derivative, c)


class SigmoidDerivative(Op):
    """σ'(x) = e^−|x| / (1 + e^−|x|)², exactly symmetric in x and −x and finite everywhere."""

    name = "sigmoid_derivative"

    def forward(self, x):
        self.save_input("x", 0)
        e = np.exp(-np.abs(x))
        return e / (1.0 + e) ** 2

    def vjp(self, g):
        x = self.saved("x")
        return (g * sigmoid_derivative(x) * -tanh(x * 0.5),)


class Relu(Op):
    """max(x, 0); the derivative at 0 is 0, and NaN stays NaN, as in PyTorch."""

    name = "relu"

    def forward(self, x):
        self.save_array("positive", x > 0)
        # np.maximum propagates NaN (np.where(x > 0, x, 0) turned it into 0) and is
        # about twice as fast as np.where on float32.
        return np.maximum(x, np.zeros((), dtype=x.dtype))

    def vjp(self, g):
        return (g * self.saved("positive"),)


class Softplus(Op):
    """log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|) so it never overflows."""

    name = "softplus"

    def forward(self, x):
        self.save_input("x", 0)
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def vjp(self, g):
        return (g * sigmoid(self.saved("x")),)


def _same_layout(a, b):
    """True when a fused backend kernel can take a and b as they are: same shape and float dtype."""
    return a.shape == b.shape and a.dtype == b.dtype and a.dtype in _FLOAT_DTYPES


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Below this size, g·(1 − y²) in numpy costs less than the fixed cost of a C call, about
# 4.5 µs through cffi and its checks. At 64 float32 elements numpy takes 1.2 µs and the
# C path 4.6 µs; the two break even near 16,384.
_FUSED_TANH_BACKWARD_MIN_SIZE = 16384


def _fused_tanh_backward_pays(y, g):
    """True when the backend's fused tanh_backward should run: large arrays of one layout."""
    return y.size >= _FUSED_TANH_BACKWARD_MIN_SIZE and _same_layout(y, g)


def tanh(x):
    x = to_tensor(x)
    if not (state.grad_enabled and x.requires_grad) and not state.anomaly_enabled:
        return Tensor._make(np.asarray(np.tanh(x.data)), None, False)  # unrecorded: skip the node
    return Tanh().apply(x)


def sigmoid(x):
    return Sigmoid().apply(to_tensor(x))


def sigmoid_derivative(x):
    return SigmoidDerivative().apply(to_tensor(x))


def relu(x):
    return Relu().apply(to_tensor(x))


def softplus(x):
    return Softplus().apply(to_tensor(x))


# -- GELU ---------------------------------------------------------------------------------

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_TANH_CUBIC = 0.044715


class Gelu(Op):
    """GELU: x·Φ(x) exactly, or PyTorch's tanh approximation with ``approximate="tanh"``."""

    name = "gelu"

    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, x):
        self.save_input("x", 0)
        if self.approximate == "tanh":
            return _backend.current().gelu_tanh(x)
        return x * normal_cdf_array(x)

    def vjp(self, g):
        x = self.saved("x")
        if self.approximate == "tanh":
            return (GeluTanhBackward().apply(x, g),)
        # d(xΦ(x))/dx = Φ(x) + x·φ(x)
        derivative = normal_cdf(x) + x * exp(x * x * -0.5) * (1.0 / math.sqrt(2.0 * math.pi))
        return (g * derivative,)


class GeluTanhBackward(Op):
    """dx = g·gelu'(x) for GELU's tanh approximation, fused in the backend; differentiable in x and g.

    With u = √(2/π)(x + 0.044715x³), s = σ(2u) and w = d(2u)/dx, gelu(x) = x·s, so
    gelu'(x) = s + x·w·σ'(2u) and gelu''(x) = σ'(2u)·(2w + x·w' − x·w²·tanh(u)),
    using σ'' = σ'·(1 − 2σ) and 1 − 2σ(2u) = −tanh(u).
    """

    name = "gelu_tanh_backward"

    def forward(self, x, g):
        self.save_input("x", 0)
        self.save_input("g", 1)
        if _same_layout(x, g):
            return _backend.current().gelu_tanh_backward(x, g)
        return g * _backend.current().gelu_tanh_backward(x, np.ones_like(x))

    def vjp(self, c):
        x, g = self.saved("x"), self.saved("g")
        u = _SQRT_2_OVER_PI * (x + _TANH_CUBIC * x * x * x)
        w = (2.0 * _SQRT_2_OVER_PI) * (1.0 + (3.0 * _TANH_CUBIC) * x * x)
        w_prime_times_x = (12.0 * _SQRT_2_OVER_PI * _TANH_CUBIC) * x * x
        second_derivative = sigmoid_derivative(2.0 * u) * (2.0 * w + w_prime_times_x - x * w * w * tanh(u))
        return c * g * second_derivative, GeluTanhBackward().apply(x, c)


class NormalCdf(Op):
    """Φ(x), the standard normal CDF; its derivative is the density φ(x)."""

    name = "normal_cdf"

    def forward(self, x):
        self.save_input("x", 0)
        return normal_cdf_array(x)

    def vjp(self, g):
        x = self.saved("x")
        return (g * exp(x * x * -0.5) * (1.0 / math.sqrt(2.0 * math.pi)),)


def normal_cdf_array(x):
    """Φ(x) on an ndarray, through erf (scipy's when installed, else the math module's)."""
    return (0.5 * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype, copy=False)


def _erf(x):
    try:
        from scipy.special import erf
    except ImportError:
        erf = np.vectorize(math.erf, otypes=[np.float64])
    return erf(x)


def gelu(x, approximate="none"):
    """GELU activation: ``approximate="none"`` is exact (x·Φ(x)); ``"tanh"`` is PyTorch's approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu(approximate).apply(to_tensor(x))


def normal_cdf(x):
    return NormalCdf().apply(to_tensor(x))


def gelu_tanh_backward(x, g):
    """g·gelu'(x) for GELU's tanh approximation, as a differentiable op (for the gradcheck registry)."""
    return GeluTanhBackward().apply(to_tensor(x), to_tensor(g))


# -- softmax family -----------------------------------------------------------------------


def _to_last_axis(array, axis):
    return array if axis == array.ndim - 1 else np.moveaxis(array, axis, -1)


def _from_last_axis(array, axis):
    return array if axis == array.ndim - 1 else np.moveaxis(array, -1, axis)


def _kernel_on_axis(kernel, axis, *arrays):
    """Run a last-axis backend kernel along ``axis`` (moving it last and back)."""
    moved = [np.ascontiguousarray(_to_last_axis(a, axis)) for a in arrays]
    return _from_last_axis(kernel(*moved), axis)


class Softmax(Op):
    name = "softmax"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.save_output("y")
        return _kernel_on_axis(_backend.current().softmax, self.axis, x)

    def vjp(self, g):
        return (SoftmaxBackward(self.axis).apply(self.saved("y"), g),)


class SoftmaxBackward(Op):
    """dx = y·(g − Σ g·y), fused in the backend; differentiable in y and g."""

    name = "softmax_backward"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, y, g):
        self.save_input("y", 0)
        self.save_input("g", 1)
        return _kernel_on_axis(_backend.current().softmax_backward, self.axis, y, g)

    def vjp(self, c):
        y, g = self.saved("y"), self.saved("g")
        c_dot_y = (c * y).sum(axis=self.axis, keepdims=True)
        g_dot_y = (g * y).sum(axis=self.axis, keepdims=True)
        grad_y = c * (g - g_dot_y) - g * c_dot_y
        grad_g = SoftmaxBackward(self.axis).apply(y, c)  # the map g -> dx is self-adjoint
        return grad_y, grad_g


class LogSoftmax(Op):
    name = "log_softmax"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.save_output("y")
        return _kernel_on_axis(_backend.current().log_softmax, self.axis, x)

    def vjp(self, g):
        return (LogSoftmaxBackward(self.axis).apply(self.saved("y"), g),)


class LogSoftmaxBackward(Op):
    """dx = g − softmax·Σ g, fused in the backend; zero where the input was -inf."""

    name = "log_softmax_backward"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, y, g):
        self.save_input("y", 0)
        self.save_input("g", 1)
        dx = _kernel_on_axis(_backend.current().log_softmax_backward, self.axis, y, g)
        self.save_array("masked", y == -np.inf)
        # An input of -inf cannot be moved by a finite step, so its gradient is 0.
        return np.where(y == -np.inf, np.zeros((), dtype=dx.dtype), dx)

    def vjp(self, c):
        y, g = self.saved("y"), self.saved("g")
        kept = ~self.saved("masked").data
        c = where(kept, c, 0.0)
        p = exp(y)
        g_sum = g.sum(axis=self.axis, keepdims=True)
        grad_y = -c * p * g_sum                                  # d(g − e^y·Σg)/dy
        grad_g = c - (c * p).sum(axis=self.axis, keepdims=True)  # d(g − e^y·Σg)/dg
        return grad_y, grad_g


def softmax(x, axis=-1):
    """exp(x) / Σ exp(x) along ``axis``; see the module docstring for -inf rows."""
    x = to_tensor(x)
    return Softmax(normalize_axis(axis, x.ndim, "softmax")).apply(x)


def log_softmax(x, axis=-1):
    """x − logsumexp(x) along ``axis``; see the module docstring for -inf rows."""
    x = to_tensor(x)
    return LogSoftmax(normalize_axis(axis, x.ndim, "log_softmax")).apply(x)


__all__ = ["tanh", "sigmoid", "relu", "softplus", "gelu", "softmax", "log_softmax"]


# -- gradcheck cases ----------------------------------------------------------------------


def _build_gelu_tanh_backward(draw):
    shape = draw.shape()
    x = draw.array(shape, -3.0, 3.0)
    g = draw.array(shape, -2.0, 2.0)
    return Case(gelu_tanh_backward, [x, g], f"x {x.shape}")


register("gelu_tanh_backward", _build_gelu_tanh_backward, domain="x in [-3, 3]")
