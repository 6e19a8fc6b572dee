"""Supports and parameter domains: each constraint checks an ndarray and describes itself.

``check(values)`` returns a boolean array (False where a value is outside the set, and for
NaN); constraints on whole events (a simplex, a Cholesky factor) reduce over their
``event_dim`` rightmost axes. ``description`` completes the sentence "must be …" in errors.
"""
import numpy as np


class Constraint:
    """A set of allowed values: ``check`` marks membership, ``description`` names the set."""

    event_dim = 0
    is_discrete = False
    description = "valid"

    def check(self, values):
        raise NotImplementedError

    def __repr__(self):
        return f"constraints.{type(self).__name__.lstrip('_')}({self.description})"


class _Real(Constraint):
    description = "a finite real number"

    def check(self, values):
        return np.isfinite(values)


class _GreaterThan(Constraint):
    def __init__(self, lower, inclusive=False):
        self.lower = lower
        self.inclusive = inclusive
        sign = ">=" if inclusive else ">"
        self.description = f"{sign} {lower:g}"

    def check(self, values):
        values = np.asarray(values)
        inside = values >= self.lower if self.inclusive else values > self.lower
        return inside & ~np.isnan(values) & (values < np.inf)


class _Interval(Constraint):
    """[low, high], with each end open or closed."""

    def __init__(self, low, high, open_low=False, open_high=False):
        self.low, self.high = low, high
        self.open_low, self.open_high = open_low, open_high
        left = "(" if open_low else "["
        right = ")" if open_high else "]"
        self.description = f"in {left}{low:g}, {high:g}{right}"

    def check(self, values):
        values = np.asarray(values)
        above = values > self.low if self.open_low else values >= self.low
        below = values < self.high if self.open_high else values <= self.high
        return above & below


class _DependentInterval(Constraint):
    """low < x < high for per-element bounds (the support of Uniform(low, high))."""

    def __init__(self, low, high):
        self.low, self.high = low, high
        self.description = "between the distribution's low and high"

    def check(self, values):
        return (np.asarray(values) >= self.low) & (np.asarray(values) < self.high)


class _Boolean(Constraint):
    is_discrete = True
    description = "0 or 1"

    def check(self, values):
        values = np.asarray(values)
        return (values == 0) | (values == 1)


class _NonNegativeInteger(Constraint):
    is_discrete = True
    description = "a non-negative integer"

    def check(self, values):
        values = np.asarray(values)
        return (values >= 0) & (np.floor(values) == values)


class _IntegerInterval(Constraint):
    is_discrete = True

    def __init__(self, low, high):
        self.low, self.high = low, high
        self.description = f"an integer in [{low}, {high}]"

    def check(self, values):
        values = np.asarray(values)
        return (values >= self.low) & (values <= self.high) & (np.floor(values) == values)


class _OneHot(Constraint):
    is_discrete = True
    event_dim = 1
    description = "a one-hot vector"

    def check(self, values):
        values = np.asarray(values)
        is_binary = ((values == 0) | (values == 1)).all(axis=-1)
        return is_binary & (values.sum(axis=-1) == 1)


class _Simplex(Constraint):
    """Non-negative vectors that sum to 1 (to a tolerance that fits the dtype)."""

    event_dim = 1
    description = "a probability vector (non-negative, summing to 1 along the last axis)"

    def check(self, values):
        values = np.asarray(values)
        tolerance = 1e-6 if values.dtype == np.float64 else 1e-4
        return (values >= 0).all(axis=-1) & (np.abs(values.sum(axis=-1) - 1.0) <= tolerance)


class _RealVector(Constraint):
    event_dim = 1
    description = "a vector of finite reals"

    def check(self, values):
        return np.isfinite(values).all(axis=-1)


class _PositiveVector(Constraint):
    event_dim = 1
    description = "a vector of positive finite reals"

    def check(self, values):
        values = np.asarray(values)
        return ((values > 0) & (values < np.inf)).all(axis=-1)


class _NonNegativeVector(Constraint):
    """Unnormalized class probabilities: non-negative, finite, with a positive sum."""

    event_dim = 1
    description = "non-negative and finite with a positive sum along the last axis"

    def check(self, values):
        values = np.asarray(values)
        inside = ((values >= 0) & (values < np.inf)).all(axis=-1)
        return inside & (values.sum(axis=-1) > 0)


class _LogitsVector(Constraint):
    """Unnormalized log-probabilities: −inf masks a class, but NaN and +inf are invalid."""

    event_dim = 1
    description = "free of NaN and +inf with at least one finite entry along the last axis"

    def check(self, values):
        values = np.asarray(values)
        valid = (~np.isnan(values) & (values < np.inf)).all(axis=-1)
        return valid & np.isfinite(values).any(axis=-1)


class _LowerCholesky(Constraint):
    event_dim = 2
    description = "lower triangular with a positive diagonal (a Cholesky factor)"

    def check(self, values):
        values = np.asarray(values)
        upper = np.triu(values, k=1)
        diagonal = np.diagonal(values, axis1=-2, axis2=-1)
        zero_above = (upper == 0).all(axis=(-2, -1))
        return zero_above & (diagonal > 0).all(axis=-1) & np.isfinite(values).all(axis=(-2, -1))


class _PositiveDefinite(Constraint):
    event_dim = 2
    description = "symmetric positive definite"

    def check(self, values):
        values = np.asarray(values, dtype=np.float64)
        symmetric = np.isclose(values, np.swapaxes(values, -1, -2), rtol=1e-6, atol=1e-8).all(axis=(-2, -1))
        eigenvalues = np.linalg.eigvalsh(np.where(np.isfinite(values), values, 0.0))
        return symmetric & (eigenvalues > 0).all(axis=-1)


real = _Real()
positive = _GreaterThan(0.0)
nonnegative = _GreaterThan(0.0, inclusive=True)
unit_interval = _Interval(0.0, 1.0)
open_unit_interval = _Interval(0.0, 1.0, open_low=True, open_high=True)
boolean = _Boolean()
nonnegative_integer = _NonNegativeInteger()
one_hot = _OneHot()
simplex = _Simplex()
real_vector = _RealVector()
positive_vector = _PositiveVector()
nonnegative_vector = _NonNegativeVector()
logits_vector = _LogitsVector()
lower_cholesky = _LowerCholesky()
positive_definite = _PositiveDefinite()


def greater_than(lower):
    return _GreaterThan(lower)


def interval(low, high):
    return _Interval(low, high)


def half_open_interval(low, high):
    """[low, high) for per-element bounds (arrays), the support of Uniform."""
    return _DependentInterval(low, high)


def integer_interval(low, high):
    return _IntegerInterval(low, high)
