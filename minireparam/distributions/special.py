"""Log-gamma, digamma and polygamma: numpy kernels and differentiable ops.

The kernels work for x > 0 (the only domain the distributions need). Each one shifts
small arguments up with the recurrence Γ(x + 1) = x·Γ(x) until x >= ``_ASYMPTOTIC_FROM``
and then evaluates the Stirling (asymptotic) series, whose truncation error there is below
float64 rounding. They return NaN for x < 0 and the pole values at x = 0 (lgamma +inf,
digamma -inf, polygamma(n >= 1) ±inf).

The ops chain: d lgamma/dx = digamma, d digamma/dx = polygamma(1), d polygamma(n)/dx =
polygamma(n + 1), so every one of them can be differentiated again.
"""
import math

import numpy as np

from ..autograd.node import Op
from ..ops._util import to_tensor

_ASYMPTOTIC_FROM = 15.0
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)

# Bernoulli numbers B_2, B_4, ..., B_16, the coefficients of the Stirling series.
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)


def _as_float_array(x):
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def _shift_up(x, per_step):
    """Raise x to at least ``_ASYMPTOTIC_FROM`` in unit steps, all steps in one array op.

    Returns the shifted x + k and Σ_{j<k} per_step(x + j) per element, where k is the
    number of steps that element needs.
    """
    x = np.asarray(x, dtype=np.float64)
    steps = np.clip(np.ceil(_ASYMPTOTIC_FROM - x), 0, _ASYMPTOTIC_FROM + 1)
    offsets = np.arange(int(_ASYMPTOTIC_FROM) + 1, dtype=np.float64)
    taken = offsets < steps[..., None]
    points = np.where(taken, x[..., None] + offsets, 1.0)
    total = np.sum(np.where(taken, per_step(points), 0.0), axis=-1)
    return x + steps, total


def _finish(x, values, at_zero):
    """Put the pole value at x = 0 and NaN at x < 0 (and NaN inputs), keeping x's float dtype."""
    x = np.asarray(x)
    values = np.where(x == 0, at_zero, values)
    values = np.where((x < 0) | np.isnan(x), np.nan, values)
    return values.astype(x.dtype if x.dtype.kind == "f" else np.float64, copy=False)


def lgamma_array(x):
    """log Γ(x) for x > 0, elementwise on an ndarray."""
    x = _as_float_array(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(x > 0, x, 1.0)
        shifted, log_product = _shift_up(safe, np.log)
        inverse = 1.0 / shifted
        inverse_square = inverse * inverse
        series = np.zeros_like(shifted)
        power = inverse
        for k, bernoulli in enumerate(_BERNOULLI, start=1):
            series += bernoulli / (2 * k * (2 * k - 1)) * power
            power = power * inverse_square
        values = (shifted - 0.5) * np.log(shifted) - shifted + _HALF_LOG_TWO_PI + series - log_product
    return _finish(x, values, np.inf)


def digamma_array(x):
    """ψ(x) = d log Γ(x)/dx for x > 0, elementwise on an ndarray."""
    x = _as_float_array(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(x > 0, x, 1.0)
        shifted, reciprocal_sum = _shift_up(safe, lambda y: 1.0 / y)
        inverse_square = 1.0 / (shifted * shifted)
        series = np.zeros_like(shifted)
        power = inverse_square
        for k, bernoulli in enumerate(_BERNOULLI, start=1):
            series += bernoulli / (2 * k) * power
            power = power * inverse_square
        values = np.log(shifted) - 0.5 / shifted - series - reciprocal_sum
    return _finish(x, values, -np.inf)


def polygamma_array(n, x):
    """ψ⁽ⁿ⁾(x), the n-th derivative of the digamma function, for x > 0 and n >= 0."""
    n = int(n)
    if n < 0:
        raise ValueError(f"polygamma: the order n must be >= 0, got {n}")
    if n == 0:
        return digamma_array(x)
    x = _as_float_array(x)
    sign = 1.0 if n % 2 == 1 else -1.0  # (-1)^(n+1)
    n_factorial = math.factorial(n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        safe = np.where(x > 0, x, 1.0)
        # ψ⁽ⁿ⁾(x) = ψ⁽ⁿ⁾(x + 1) + (-1)^(n+1)·n!/x^(n+1)
        shifted, tail = _shift_up(safe, lambda y: y ** -(n + 1.0))
        inverse = 1.0 / shifted
        series = math.factorial(n - 1) * inverse ** n + 0.5 * n_factorial * inverse ** (n + 1)
        for k, bernoulli in enumerate(_BERNOULLI, start=1):
            coefficient = bernoulli * math.factorial(2 * k + n - 1) / math.factorial(2 * k)
            series += coefficient * inverse ** (2 * k + n)
        values = sign * (series + n_factorial * tail)
    return _finish(x, values, sign * np.inf)


def lbeta_array(a, b):
    """log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b)."""
    return lgamma_array(a) + lgamma_array(b) - lgamma_array(np.add(a, b))


# -- differentiable ops -------------------------------------------------------------------


class Lgamma(Op):
    name = "distributions.lgamma"

    def forward(self, x):
        self.save_input("x", 0)
        return lgamma_array(x)

    def vjp(self, g):
        return (g * digamma(self.saved("x")),)


class Polygamma(Op):
    """ψ⁽ⁿ⁾(x) with n fixed; n = 0 is the digamma function."""

    def __init__(self, n):
        self.n = n
        self.name = "distributions.digamma" if n == 0 else f"distributions.polygamma({n})"

    def forward(self, x):
        self.save_input("x", 0)
        return polygamma_array(self.n, x)

    def vjp(self, g):
        return (g * polygamma(self.n + 1, self.saved("x")),)


def lgamma(x):
    """log Γ(x) for x > 0, differentiable (the derivative is ``digamma``).

    Args:
        x: a Tensor or array of any shape.

    Returns:
        A Tensor of x's shape.
    """
    return Lgamma().apply(to_tensor(x))


def digamma(x):
    """ψ(x) = d log Γ(x)/dx for x > 0, differentiable (the derivative is ``polygamma(1, x)``)."""
    return Polygamma(0).apply(to_tensor(x))


def polygamma(n, x):
    """ψ⁽ⁿ⁾(x) for an integer n >= 0 and x > 0, differentiable in x."""
    if int(n) != n or n < 0:
        raise ValueError(f"polygamma: the order n must be an integer >= 0, got {n!r}")
    return Polygamma(int(n)).apply(to_tensor(x))


def lbeta(a, b):
    """log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b), differentiable in both arguments."""
    a, b = to_tensor(a), to_tensor(b)
    return lgamma(a) + lgamma(b) - lgamma(a + b)
