"""Elementwise arithmetic and math functions, with broadcasting.

Every VJP returns gradients of the output's shape; the engine sums them back to each
input's shape. Ops whose local derivative can be infinite (division, log, sqrt, pow)
multiply the cotangent by it through ``zero_safe_multiply``, so an incoming gradient of
exactly 0 stays 0 instead of becoming 0·inf = NaN. That rule is what keeps
``where(x == 0, x / 2, sqrt(x) + 1)`` free of NaN gradients at x = 0.

Each op also has ``vjp_arrays``, the same VJP on ndarrays, which the engine uses when the
backward pass is not recorded. It repeats the numpy operations that ``vjp``'s Tensor ops
run, in the same order, so both give the same values (tests/test_fast_paths.py checks it).
"""
import numpy as np

from ..autograd.grad_mode import state
from ..autograd.node import Op
from ..tensor import Tensor
from ._util import broadcast_error, to_tensor, to_tensor_pair

# -- binary arithmetic --------------------------------------------------------------------


class Add(Op):
    name = "add"

    def forward(self, a, b):
        try:
            return np.add(a, b)
        except ValueError:
            raise broadcast_error(self.name, a.shape, b.shape) from None

    def vjp(self, g):
        return g, g

    def vjp_arrays(self, g):
        return g, g


class Subtract(Op):
    name = "subtract"

    def forward(self, a, b):
        try:
            return np.subtract(a, b)
        except ValueError:
            raise broadcast_error(self.name, a.shape, b.shape) from None

    def vjp(self, g):
        return g, -g

    def vjp_arrays(self, g):
        return g, np.negative(g)


class Multiply(Op):
    name = "multiply"

    def forward(self, a, b):
        self.save_input("a", 0)
        self.save_input("b", 1)
        try:
            return np.multiply(a, b)
        except ValueError:
            raise broadcast_error(self.name, a.shape, b.shape) from None

    def vjp(self, g):
        grad_a = g * self.saved("b") if self.parents[0] is not None else None
        grad_b = g * self.saved("a") if self.parents[1] is not None else None
        return grad_a, grad_b

    def vjp_arrays(self, g):
        grad_a = g * self.saved_data("b") if self.parents[0] is not None else None
        grad_b = g * self.saved_data("a") if self.parents[1] is not None else None
        return grad_a, grad_b


class Divide(Op):
    name = "divide"

    def forward(self, a, b):
        self.save_input("b", 1)
        self.save_output("out")
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.true_divide(a, b)
        except ValueError:
            raise broadcast_error(self.name, a.shape, b.shape) from None

    def vjp(self, g):
        b = self.saved("b")
        grad_a = grad_b = None
        if self.parents[0] is not None:
            grad_a = zero_safe_multiply(g, 1.0 / b)         # d(a/b)/da = 1/b
        if self.parents[1] is not None:
            grad_b = zero_safe_multiply(g, -self.saved("out") / b)  # d(a/b)/db = -a/b² = -out/b
        return grad_a, grad_b

    def vjp_arrays(self, g):
        b = self.saved_data("b")
        grad_a = grad_b = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.parents[0] is not None:
                grad_a = _zero_safe_multiply_arrays(g, np.true_divide(1.0, b))
            if self.parents[1] is not None:
                d_b = np.true_divide(np.negative(self.saved_data("out")), b)
                grad_b = _zero_safe_multiply_arrays(g, d_b)
        return grad_a, grad_b


class Power(Op):
    """``a ** b``.

    Gradients at the edges follow PyTorch: d(x**0)/dx is 0 (also at x = 0), and
    d(a**b)/db is 0 where a = 0.
    """

    name = "power"

    def forward(self, a, b):
        self.save_input("a", 0)
        self.save_input("b", 1)
        self.save_output("out")
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.power(a, b)
        except ValueError:
            raise broadcast_error(self.name, a.shape, b.shape) from None

    def vjp(self, g):
        a, b, out = self.saved("a"), self.saved("b"), self.saved("out")
        grad_a = grad_b = None
        if self.parents[0] is not None:
            exponent_is_zero = b == 0
            d_a = where(exponent_is_zero, 0.0, b * a ** where(exponent_is_zero, 1.0, b - 1))
            grad_a = zero_safe_multiply(g, d_a)             # d(a**b)/da = b·a**(b-1)
        if self.parents[1] is not None:
            base_is_zero = a == 0
            d_b = where(base_is_zero, 0.0, out * log(where(base_is_zero, 1.0, a)))
            grad_b = zero_safe_multiply(g, d_b)             # d(a**b)/db = a**b·log(a)
        return grad_a, grad_b

    def vjp_arrays(self, g):
        a, b, out = self.saved_data("a"), self.saved_data("b"), self.saved_data("out")
        grad_a = grad_b = None
        if self.parents[0] is not None:
            exponent_is_zero = b == 0
            lowered = b - 1
            lowered = np.where(exponent_is_zero, np.array(1.0, dtype=lowered.dtype), lowered)
            with np.errstate(divide="ignore", invalid="ignore"):
                d_a = b * np.power(a, lowered)
            d_a = np.where(exponent_is_zero, np.array(0.0, dtype=d_a.dtype), d_a)
            grad_a = _zero_safe_multiply_arrays(g, d_a)
        if self.parents[1] is not None:
            base_is_zero = a == 0
            safe_base = np.where(base_is_zero, np.array(1.0, dtype=a.dtype), a)
            with np.errstate(divide="ignore", invalid="ignore"):
                d_b = out * np.log(safe_base)
            d_b = np.where(base_is_zero, np.array(0.0, dtype=d_b.dtype), d_b)
            grad_b = _zero_safe_multiply_arrays(g, d_b)
        return grad_a, grad_b


class ZeroSafeMultiply(Op):
    """``g * d`` except that the result is exactly 0 wherever ``g`` is 0.

    The one place that implements the zero-cotangent rule: VJPs of ops whose local
    derivative ``d`` can be inf or NaN multiply through this op.
    """

    name = "zero_safe_multiply"

    def forward(self, g, d):
        self.save_input("g", 0)
        self.save_input("d", 1)
        return _zero_safe_multiply_arrays(g, d)

    def vjp(self, c):
        g, d = self.saved("g"), self.saved("d")
        return zero_safe_multiply(c, d), zero_safe_multiply(c, g)

    def vjp_arrays(self, c):
        g, d = self.saved_data("g"), self.saved_data("d")
        return _zero_safe_multiply_arrays(c, d), _zero_safe_multiply_arrays(c, g)


def _zero_safe_multiply_arrays(g, d):
    with np.errstate(invalid="ignore", over="ignore"):
        product = np.multiply(g, d)
    return np.where(g == 0, np.zeros((), dtype=product.dtype), product)


def zero_safe_multiply(g, d):
    g, d = to_tensor_pair(g, d)
    return ZeroSafeMultiply().apply(g, d)


class AddScalar(Op):
    """``x + c`` for a Python float ``c``: one input, so less to record than ``add``."""

    name = "add"

    def __init__(self, constant):
        self.constant = constant

    def forward(self, x):
        return x + self.constant

    def vjp(self, g):
        return (g,)

    def vjp_arrays(self, g):
        return (g,)


class MultiplyScalar(Op):
    """``x * c`` for a Python float ``c``: one input, so less to record than ``multiply``."""

    name = "multiply"

    def __init__(self, constant):
        self.constant = constant

    def forward(self, x):
        return x * self.constant

    def vjp(self, g):
        return (MultiplyScalar(self.constant).apply(g),)

    def vjp_arrays(self, g):
        return (g * self.constant,)


def _float_operand(a, b):
    """Return (tensor, float) when one operand is a floating Tensor and the other a float."""
    if type(b) is float and type(a) is Tensor and a.data.dtype.kind == "f":
        return a, b
    if type(a) is float and type(b) is Tensor and b.data.dtype.kind == "f":
        return b, a
    return None, None


# add, subtract and multiply first test for their commonest call, two plain Tensors. It
# needs no operand conversion, and when nothing is recorded (no_grad code, unrecorded
# VJPs) the ufunc runs directly, with no node. This path is written out in each function
# because one more Python call added about 4% to an unrecorded op on an 8x8 tensor.
# Anomaly mode takes the full path, which checks every output for NaN.


def add(a, b):
    if type(a) is Tensor and type(b) is Tensor:
        if (state.grad_enabled and (a.requires_grad or b.requires_grad)) or state.anomaly_enabled:
            return Add().apply(a, b)
        try:
            out = np.add(a.data, b.data)
        except ValueError:
            raise broadcast_error("add", a.shape, b.shape) from None
        return Tensor._make(out if type(out) is np.ndarray else np.asarray(out), None, False)

    tensor, constant = _float_operand(a, b)
    if tensor is not None:
        return AddScalar(constant).apply(tensor)
    a, b = to_tensor_pair(a, b)
    return Add().apply(a, b)


def subtract(a, b):
    if type(a) is Tensor and type(b) is Tensor:
        if (state.grad_enabled and (a.requires_grad or b.requires_grad)) or state.anomaly_enabled:
            return Subtract().apply(a, b)
        try:
            out = np.subtract(a.data, b.data)
        except ValueError:
            raise broadcast_error("subtract", a.shape, b.shape) from None
        return Tensor._make(out if type(out) is np.ndarray else np.asarray(out), None, False)

    if type(b) is float and type(a) is Tensor and a.data.dtype.kind == "f":
        return AddScalar(-b).apply(a)
    a, b = to_tensor_pair(a, b)
    return Subtract().apply(a, b)


def multiply(a, b):
    if type(a) is Tensor and type(b) is Tensor:
        if (state.grad_enabled and (a.requires_grad or b.requires_grad)) or state.anomaly_enabled:
            return Multiply().apply(a, b)
        try:
            out = np.multiply(a.data, b.data)
        except ValueError:
            raise broadcast_error("multiply", a.shape, b.shape) from None
        return Tensor._make(out if type(out) is np.ndarray else np.asarray(out), None, False)

    tensor, constant = _float_operand(a, b)
    if tensor is not None:
        return MultiplyScalar(constant).apply(tensor)
    a, b = to_tensor_pair(a, b)
    return Multiply().apply(a, b)


def divide(a, b):
    """True division; integer operands promote to float (``[3] / 2`` is 1.5)."""
    a, b = to_tensor_pair(a, b)
    return Divide().apply(a, b)


def power(a, b):
    a, b = to_tensor_pair(a, b)
    return Power().apply(a, b)


# -- unary math ---------------------------------------------------------------------------


class Negative(Op):
    name = "negative"

    def forward(self, x):
        return np.negative(x)

    def vjp(self, g):
        return (-g,)

    def vjp_arrays(self, g):
        return (np.negative(g),)


class Exp(Op):
    name = "exp"

    def forward(self, x):
        self.save_output("y")
        return np.exp(x)

    def vjp(self, g):
        return (g * self.saved("y"),)                      # d exp(x)/dx = exp(x)

    def vjp_arrays(self, g):
        return (g * self.saved_data("y"),)


class Expm1(Op):
    name = "expm1"

    def forward(self, x):
        self.save_output("y")
        return np.expm1(x)

    def vjp(self, g):
        return (g * (self.saved("y") + 1.0),)              # d(e^x - 1)/dx = e^x

    def vjp_arrays(self, g):
        return (g * (self.saved_data("y") + 1.0),)


class Log(Op):
    name = "log"

    def forward(self, x):
        self.save_input("x", 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)

    def vjp(self, g):
        return (zero_safe_multiply(g, 1.0 / self.saved("x")),)

    def vjp_arrays(self, g):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (_zero_safe_multiply_arrays(g, np.true_divide(1.0, self.saved_data("x"))),)


class Log1p(Op):
    name = "log1p"

    def forward(self, x):
        self.save_input("x", 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log1p(x)

    def vjp(self, g):
        return (zero_safe_multiply(g, 1.0 / (self.saved("x") + 1.0)),)

    def vjp_arrays(self, g):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (_zero_safe_multiply_arrays(g, np.true_divide(1.0, self.saved_data("x") + 1.0)),)


class Sqrt(Op):
    """Square root; its derivative at 0 is +inf, as in PyTorch (0 when the cotangent is 0)."""

    name = "sqrt"

    def forward(self, x):
        self.save_output("y")
        with np.errstate(invalid="ignore"):
            return np.sqrt(x)

    def vjp(self, g):
        return (zero_safe_multiply(g, 0.5 / self.saved("y")),)

    def vjp_arrays(self, g):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (_zero_safe_multiply_arrays(g, np.true_divide(0.5, self.saved_data("y"))),)


class Abs(Op):
    """Absolute value; its derivative at 0 is 0, as in PyTorch."""

    name = "abs"

    def forward(self, x):
        self.save_array("sign", np.sign(x))
        return np.abs(x)

    def vjp(self, g):
        return (g * self.saved("sign"),)

    def vjp_arrays(self, g):
        return (g * self.saved_data("sign"),)


class Sin(Op):
    name = "sin"

    def forward(self, x):
        self.save_input("x", 0)
        return np.sin(x)

    def vjp(self, g):
        return (g * cos(self.saved("x")),)

    def vjp_arrays(self, g):
        return (g * np.cos(self.saved_data("x")),)


class Cos(Op):
    name = "cos"

    def forward(self, x):
        self.save_input("x", 0)
        return np.cos(x)

    def vjp(self, g):
        return (-g * sin(self.saved("x")),)

    def vjp_arrays(self, g):
        return (np.negative(g) * np.sin(self.saved_data("x")),)


class Asinh(Op):
    name = "asinh"

    def forward(self, x):
        self.save_input("x", 0)
        return np.arcsinh(x)

    def vjp(self, g):
        x = self.saved("x")
        return (g / sqrt(x * x + 1.0),)                    # d asinh(x)/dx = 1/sqrt(x² + 1)

    def vjp_arrays(self, g):
        x = self.saved_data("x")
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.true_divide(g, np.sqrt(x * x + 1.0)),)


def negative(x):
    return Negative().apply(to_tensor(x))


def exp(x):
    return Exp().apply(to_tensor(x))


def expm1(x):
    return Expm1().apply(to_tensor(x))


def log(x):
    return Log().apply(to_tensor(x))


def log1p(x):
    return Log1p().apply(to_tensor(x))


def sqrt(x):
    return Sqrt().apply(to_tensor(x))


def abs(x):  # noqa: A001  (numpy's name)
    return Abs().apply(to_tensor(x))


def sin(x):
    return Sin().apply(to_tensor(x))


def cos(x):
    return Cos().apply(to_tensor(x))


def asinh(x):
    return Asinh().apply(to_tensor(x))


def square(x):
    return multiply(x, x)


# -- selection ----------------------------------------------------------------------------


class Maximum(Op):
    """Elementwise maximum; where a == b the gradient is split equally, as in PyTorch."""

    name = "maximum"
    combine = np.maximum
    a_wins = np.greater

    def forward(self, a, b):
        try:
            out = self.combine(a, b)
        except ValueError:
            raise broadcast_error(self.name, a.shape, b.shape) from None
        wins = self.a_wins(a, b).astype(out.dtype)
        ties = (a == b).astype(out.dtype)
        self.save_array("weight_a", wins + 0.5 * ties)
        return out

    def vjp(self, g):
        weight_a = self.saved("weight_a")
        return g * weight_a, g * (1.0 - weight_a)

    def vjp_arrays(self, g):
        weight_a = self.saved_data("weight_a")
        return g * weight_a, g * (1.0 - weight_a)


class Minimum(Maximum):
    """Elementwise minimum; where a == b the gradient is split equally, as in PyTorch."""

    name = "minimum"
    combine = np.minimum
    a_wins = np.less


def maximum(a, b):
    a, b = to_tensor_pair(a, b)
    return Maximum().apply(a, b)


def minimum(a, b):
    a, b = to_tensor_pair(a, b)
    return Minimum().apply(a, b)


class Clip(Op):
    """Clamp to [a_min, a_max]; the gradient passes where a_min <= x <= a_max (PyTorch's rule)."""

    name = "clip"

    def __init__(self, a_min, a_max):
        self.a_min = a_min
        self.a_max = a_max

    def forward(self, x):
        inside = np.ones(x.shape, dtype=bool)
        if self.a_min is not None:
            inside &= x >= self.a_min
        if self.a_max is not None:
            inside &= x <= self.a_max
        self.save_array("inside", inside)
        return np.clip(x, self.a_min, self.a_max)

    def vjp(self, g):
        return (g * self.saved("inside"),)

    def vjp_arrays(self, g):
        return (g * self.saved_data("inside"),)


def clip(x, a_min=None, a_max=None):
    """Clamp ``x`` into [a_min, a_max]; the bounds are constants (scalars or arrays)."""
    if a_min is None and a_max is None:
        raise ValueError("clip: at least one of a_min and a_max must be given")
    a_min = a_min.data if isinstance(a_min, Tensor) else a_min
    a_max = a_max.data if isinstance(a_max, Tensor) else a_max
    return Clip(a_min, a_max).apply(to_tensor(x))


class Where(Op):
    """``where(cond, a, b)``: each branch gets the cotangent only where it was selected."""

    name = "where"

    def __init__(self, condition):
        self.condition = condition

    def forward(self, a, b):
        try:
            return _select(self.condition, a, b)
        except ValueError:
            raise broadcast_error(self.name, self.condition.shape, a.shape, b.shape) from None

    def vjp(self, g):
        zero = np.zeros((), dtype=g.dtype)
        condition = to_tensor(self.condition)
        grad_a = where(condition, g, zero) if self.parents[0] is not None else None
        grad_b = where(condition, zero, g) if self.parents[1] is not None else None
        return grad_a, grad_b

    def vjp_arrays(self, g):
        zero = np.zeros((), dtype=g.dtype)
        grad_a = _select(self.condition, g, zero) if self.parents[0] is not None else None
        grad_b = _select(self.condition, zero, g) if self.parents[1] is not None else None
        return grad_a, grad_b


# Smaller outputs use np.where: with a causal mask the fill-and-copy path only became faster
# between 16K and 64K float32 elements (numpy 2.4.6, one core), an estimate from a few shapes.
_FILL_MIN_SIZE = 65536


def _select(condition, a, b):
    """Return ``np.where(condition, a, b)``, the same values and dtype, computed faster for masks.

    The fast case is a 0-d constant branch with a boolean ``condition`` smaller than the
    output: a broadcast mask, such as a causal mask over a batch of attention scores. Then
    the output is filled with the constant, and the other branch is copied in where the
    mask selects it. For a (128, 128) causal mask over 2M float32 scores that takes 0.8 ms
    of CPU against 1.4 ms for np.where (numpy 2.4.6, one core).
    NOTE: for a broadcast mask of random bits the masked copy is about 2 times slower than
    np.where. The masks this library builds (causal, padding, support) come in long runs.
    """
    if condition.ndim == 0 or (a.ndim != 0 and b.ndim != 0):
        return np.where(condition, a, b)
    shape = np.broadcast_shapes(condition.shape, a.shape, b.shape)
    if condition.shape == shape or np.prod(shape) < _FILL_MIN_SIZE:
        return np.where(condition, a, b)

    out = np.empty(shape, dtype=np.result_type(a, b))
    if b.ndim == 0:  # fill with b, then copy a where the condition is True
        np.copyto(out, b)
        np.copyto(out, a, where=condition)
    else:  # fill with a, then copy b where the condition is False
        np.copyto(out, a)
        np.copyto(out, b, where=~condition)
    return out


def where(condition, a, b):
    """Select from ``a`` where ``condition`` is True and from ``b`` elsewhere.

    ``condition`` is a boolean Tensor or array (no gradient); ``a`` and ``b`` broadcast.
    """
    condition = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if condition.dtype != bool:
        condition = condition.astype(bool)
    a, b = to_tensor_pair(a, b)
    return Where(condition).apply(a, b)


# -- no gradient --------------------------------------------------------------------------


def _no_grad_binary(numpy_function):
    def function(a, b):
        a, b = to_tensor_pair(a, b)
        try:
            return to_tensor(numpy_function(a.data, b.data))
        except ValueError:
            raise broadcast_error(numpy_function.__name__, a.shape, b.shape) from None

    function.__name__ = numpy_function.__name__
    function.__doc__ = f"numpy.{numpy_function.__name__} on tensors; the result has no gradient."
    return function


equal = _no_grad_binary(np.equal)
not_equal = _no_grad_binary(np.not_equal)
less = _no_grad_binary(np.less)
less_equal = _no_grad_binary(np.less_equal)
greater = _no_grad_binary(np.greater)
greater_equal = _no_grad_binary(np.greater_equal)
logical_and = _no_grad_binary(np.logical_and)
logical_or = _no_grad_binary(np.logical_or)


def logical_not(x):
    """numpy.logical_not on a tensor; the result has no gradient."""
    return to_tensor(np.logical_not(to_tensor(x).data))


def sign(x):
    """numpy.sign on a tensor; the result has no gradient (its derivative is 0 almost everywhere)."""
    return to_tensor(np.sign(to_tensor(x).data))


def isfinite(x):
    return to_tensor(np.isfinite(to_tensor(x).data))


def isnan(x):
    return to_tensor(np.isnan(to_tensor(x).data))
