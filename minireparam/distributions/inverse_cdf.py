"""Inverse-CDF reparameterizations: Exponential, Uniform, Kumaraswamy.

Each draws u uniform on (0, 1) and returns F⁻¹(u; θ) written with Tensor ops, so the
gradient with respect to θ is the derivative of the inverse CDF at fixed u.
"""
import numpy as np

from .. import ops
from ..ops._util import to_tensor
from . import constraints
from .distribution import Distribution
from .special import digamma, lgamma
from .utils import broadcast_parameters, check_parameter, open_uniform

_EULER_GAMMA = 0.5772156649015329


class _UniformNoise(Distribution):
    """Shared ``sample_noise``: u uniform on the open interval (0, 1)."""

    has_rsample = True

    def sample_noise(self, sample_shape=(), generator=None):
        """Uniform noise u in (0, 1) of shape ``sample_shape + batch_shape + event_shape``."""
        return open_uniform(self._extended_shape(sample_shape), self._generator(generator), self.dtype)

    def _noise_tensor(self, noise):
        return ops.astype(to_tensor(noise), self.dtype)


class Exponential(_UniformNoise):
    """Exponential(rate): density rate·exp(−rate·x) on x >= 0; x = −log(1 − u)/rate."""

    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative

    def __init__(self, rate, validate_args=None):
        parameters, batch_shape = broadcast_parameters("Exponential", rate=rate)
        self.rate = parameters["rate"]
        super().__init__(batch_shape, validate_args=validate_args)

    def rsample_from_noise(self, noise):
        return -ops.log1p(-self._noise_tensor(noise)) / self.rate

    def log_prob(self, value):
        value = self._to_value(value)
        return ops.log(self.rate) - self.rate * value

    def cdf(self, value):
        return -ops.expm1(-self.rate * self._to_value(value))

    def icdf(self, value):
        return -ops.log1p(-to_tensor(value)) / self.rate

    def entropy(self):
        return 1.0 - ops.log(self.rate)

    @property
    def mean(self):
        return 1.0 / self.rate

    @property
    def variance(self):
        return 1.0 / (self.rate * self.rate)

    @property
    def stddev(self):
        return 1.0 / self.rate


class Uniform(_UniformNoise):
    """Uniform(low, high) on [low, high); x = low + (high − low)·u."""

    arg_constraints = {"low": constraints.real, "high": constraints.real}

    def __init__(self, low, high, validate_args=None):
        parameters, batch_shape = broadcast_parameters("Uniform", low=low, high=high)
        self.low, self.high = parameters["low"], parameters["high"]
        super().__init__(batch_shape, validate_args=validate_args)
        if self._validate_args:
            check_parameter("Uniform", "high - low", self.high.data - self.low.data, constraints.positive)

    @property
    def support(self):
        return constraints.half_open_interval(self.low.data, self.high.data)

    def rsample_from_noise(self, noise):
        return self.low + (self.high - self.low) * self._noise_tensor(noise)

    def log_prob(self, value):
        value = self._to_value(value)
        inside = (value.data >= self.low.data) & (value.data < self.high.data)
        log_density = ops.broadcast_to(-ops.log(self.high - self.low), inside.shape)
        return ops.where(inside, log_density, -np.inf)

    def cdf(self, value):
        value = self._to_value(value)
        return ops.clip((value - self.low) / (self.high - self.low), 0.0, 1.0)

    def icdf(self, value):
        return self.low + (self.high - self.low) * to_tensor(value)

    def entropy(self):
        return ops.log(self.high - self.low)

    @property
    def mean(self):
        return 0.5 * (self.low + self.high)

    @property
    def variance(self):
        width = self.high - self.low
        return width * width / 12.0


class Kumaraswamy(_UniformNoise):
    """Kumaraswamy(a, b) on (0, 1): CDF 1 − (1 − x^a)^b, so x = (1 − (1 − u)^(1/b))^(1/a).

    A Beta-like law with a closed-form inverse CDF, used as a reparameterizable stand-in
    for Beta (see the Kumaraswamy–Beta KL).

    Args:
        concentration1: a > 0 (the exponent of x).
        concentration0: b > 0 (the exponent of 1 − x^a).
    """

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.open_unit_interval

    def __init__(self, concentration1, concentration0, validate_args=None):
        parameters, batch_shape = broadcast_parameters(
            "Kumaraswamy", concentration1=concentration1, concentration0=concentration0)
        self.concentration1 = parameters["concentration1"]
        self.concentration0 = parameters["concentration0"]
        super().__init__(batch_shape, validate_args=validate_args)

    def rsample_from_noise(self, noise):
        u = self._noise_tensor(noise)
        a, b = self.concentration1, self.concentration0
        # log(1 − (1 − u)^(1/b)) = log(−expm1(log1p(−u)/b)), then x = exp(that / a).
        log_one_minus_power = ops.log(-ops.expm1(ops.log1p(-u) / b))
        x = ops.exp(log_one_minus_power / a)
        tiny, top = float(np.finfo(self.dtype).tiny), 1.0 - float(np.finfo(self.dtype).epsneg)
        return ops.clip(x, tiny, top)

    def log_prob(self, value):
        value = self._to_value(value)
        a, b = self.concentration1, self.concentration0
        log_x = ops.log(value)
        log_one_minus_x_a = ops.log(-ops.expm1(a * log_x))
        return ops.log(a) + ops.log(b) + (a - 1.0) * log_x + (b - 1.0) * log_one_minus_x_a

    def cdf(self, value):
        value = self._to_value(value)
        return -ops.expm1(self.concentration0 * ops.log1p(-value ** self.concentration1))

    def moment(self, n):
        """E[x^n] = b·B(1 + n/a, b)."""
        a, b = self.concentration1, self.concentration0
        shifted = 1.0 + n / a
        return ops.exp(ops.log(b) + lgamma(shifted) + lgamma(b) - lgamma(shifted + b))

    def entropy(self):
        # H = (1 − 1/b) + (1 − 1/a)·H_b − log(a·b), with the harmonic number H_b = ψ(b + 1) + γ.
        a, b = self.concentration1, self.concentration0
        harmonic = digamma(b + 1.0) + _EULER_GAMMA
        return (1.0 - 1.0 / b) + (1.0 - 1.0 / a) * harmonic - ops.log(a * b)

    @property
    def mean(self):
        return self.moment(1)

    @property
    def variance(self):
        first = self.moment(1)
        return self.moment(2) - first * first

