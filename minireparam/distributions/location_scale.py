"""Location-scale families: Normal, Laplace, Logistic, Gumbel, Cauchy.

Each draws standard noise ε (from the standard member's inverse CDF applied to uniform
noise in (0, 1), or numpy's normal sampler) and reparameterizes it as
``loc + scale · ε``. ``log_prob`` works with z = (x − loc)/scale and log(scale), never
with scale² on its own, so a scale near the smallest float keeps log_prob finite.
"""
import math

import numpy as np

from .. import ops
from ..ops._util import to_tensor
from ..ops.activation import normal_cdf
from . import constraints
from .distribution import Distribution
from .utils import broadcast_parameters, open_uniform, standard_normal

_LOG_TWO_PI = math.log(2.0 * math.pi)
_EULER_GAMMA = 0.5772156649015329


class _LocationScale(Distribution):
    """Shared parts of a family x = loc + scale · ε with ε drawn from a fixed standard law."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        parameters, batch_shape = broadcast_parameters(type(self).__name__, loc=loc, scale=scale)
        self.loc, self.scale = parameters["loc"], parameters["scale"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample_noise(self, sample_shape=(), generator=None):
        """Standard noise ε (loc 0, scale 1) of shape ``sample_shape + batch_shape``."""
        shape = self._extended_shape(sample_shape)
        return self._standard_noise(shape, self._generator(generator), self.dtype)

    def rsample_from_noise(self, noise):
        return self.loc + self.scale * ops.astype(to_tensor(noise), self.dtype)

    def _standardize(self, value):
        value = self._to_value(value)
        return (value - self.loc) / self.scale


class Normal(_LocationScale):
    """Normal(loc, scale): density exp(−z²/2)/(scale·√(2π)) with z = (x − loc)/scale.

    Args:
        loc: the mean, any shape.
        scale: the standard deviation (> 0), broadcastable with ``loc``.
        validate_args: check the parameters (None uses the global default).

    Example:
        >>> d = Normal(tensor(0.0, requires_grad=True), 1.0)
        >>> z = d.rsample((100,), generator=Generator(0))  # shape (100,)
    """

    def _standard_noise(self, shape, generator, dtype):
        return standard_normal(shape, generator, dtype)

    def log_prob(self, value):
        z = self._standardize(value)
        return -0.5 * z * z - ops.log(self.scale) - 0.5 * _LOG_TWO_PI

    def cdf(self, value):
        return normal_cdf(self._standardize(value))

    def entropy(self):
        return 0.5 + 0.5 * _LOG_TWO_PI + ops.log(self.scale)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return self.scale * self.scale

    @property
    def stddev(self):
        return self.scale


class Laplace(_LocationScale):
    """Laplace(loc, scale): density exp(−|x − loc|/scale) / (2·scale)."""

    def _standard_noise(self, shape, generator, dtype):
        u = open_uniform(shape, generator, np.float64)
        # Inverse CDF of the standard Laplace: log(2u) below the median, −log(2(1 − u)) above.
        epsilon = np.where(u < 0.5, np.log(2.0 * u), -np.log(2.0 * (1.0 - u)))
        return epsilon.astype(dtype)

    def log_prob(self, value):
        z = self._standardize(value)
        return -ops.abs(z) - ops.log(self.scale) - math.log(2.0)

    def cdf(self, value):
        z = self._standardize(value)
        return 0.5 + 0.5 * ops.sign(z) * -ops.expm1(-ops.abs(z))

    def entropy(self):
        return 1.0 + math.log(2.0) + ops.log(self.scale)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return 2.0 * self.scale * self.scale


class Logistic(_LocationScale):
    """Logistic(loc, scale): CDF sigmoid((x − loc)/scale)."""

    def _standard_noise(self, shape, generator, dtype):
        u = open_uniform(shape, generator, np.float64)
        return (np.log(u) - np.log1p(-u)).astype(dtype)  # logit(u), the inverse CDF

    def log_prob(self, value):
        z = self._standardize(value)
        return -z - 2.0 * ops.softplus(-z) - ops.log(self.scale)

    def cdf(self, value):
        return ops.sigmoid(self._standardize(value))

    def entropy(self):
        return ops.log(self.scale) + 2.0

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return self.scale * self.scale * (math.pi**2 / 3.0)


class Gumbel(_LocationScale):
    """Gumbel(loc, scale): CDF exp(−exp(−(x − loc)/scale)), the law of a max of many draws."""

    def _standard_noise(self, shape, generator, dtype):
        u = open_uniform(shape, generator, np.float64)
        return (-np.log(-np.log(u))).astype(dtype)

    def log_prob(self, value):
        z = self._standardize(value)
        return -(z + ops.exp(-z)) - ops.log(self.scale)

    def cdf(self, value):
        return ops.exp(-ops.exp(-self._standardize(value)))

    def entropy(self):
        return ops.log(self.scale) + (1.0 + _EULER_GAMMA)

    @property
    def mean(self):
        return self.loc + self.scale * _EULER_GAMMA

    @property
    def variance(self):
        return self.scale * self.scale * (math.pi**2 / 6.0)


class Cauchy(_LocationScale):
    """Cauchy(loc, scale): density 1/(π·scale·(1 + z²)). Its mean and variance do not exist."""

    def _standard_noise(self, shape, generator, dtype):
        u = open_uniform(shape, generator, np.float64)
        return np.tan(math.pi * (u - 0.5)).astype(dtype)

    def log_prob(self, value):
        z = self._standardize(value)
        return -ops.log1p(z * z) - ops.log(self.scale) - math.log(math.pi)

    def cdf(self, value):
        z = self._standardize(value).data
        return to_tensor(0.5 + np.arctan(z) / math.pi)  # NOTE: computed without a graph (no gradient)

    def entropy(self):
        return ops.log(self.scale) + math.log(4.0 * math.pi)

    @property
    def mean(self):
        """NaN: the Cauchy mean is undefined."""
        return to_tensor(np.full(self.batch_shape, np.nan, dtype=self.dtype))

    @property
    def variance(self):
        """+inf: the Cauchy variance is infinite."""
        return to_tensor(np.full(self.batch_shape, np.inf, dtype=self.dtype))
