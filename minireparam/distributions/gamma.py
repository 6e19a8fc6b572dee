"""Gamma, Beta and Dirichlet with implicit reparameterization gradients (see ``implicit.py``).

``rsample`` draws log-Gamma variates in log space and attaches implicit gradients;
``rsample_from_noise(u)`` instead computes the same kind of sample from uniform noise
through the numerical inverse CDF, so a gradient check can hold u fixed. Both paths carry
the same implicit gradient formula.
"""
import numpy as np

from .. import ops
from ..errors import ShapeError
from . import constraints
from .distribution import Distribution
from .implicit import BetaImplicit, GammaImplicit, sample_log_standard_gamma
from .incomplete import log_gammaincinv, logit_betaincinv
from .special import digamma, lbeta, lgamma
from .utils import as_parameter, broadcast_parameters, open_uniform, xlogy


class _UniformNoise(Distribution):
    has_rsample = True

    def sample_noise(self, sample_shape=(), generator=None):
        """Uniform noise u in (0, 1) of shape ``sample_shape + batch_shape + event_shape``."""
        return open_uniform(self._extended_shape(sample_shape), self._generator(generator), np.float64)


def _log_gamma_from_log_sample(concentration, log_sample):
    """log z with implicit gradients, clamped below at log(tiny) of the dtype."""
    log_z = GammaImplicit(log_sample).apply(concentration)
    return ops.clip(log_z, float(np.log(np.finfo(concentration.dtype).tiny)), None)


class Gamma(_UniformNoise):
    """Gamma(concentration α, rate β): density β^α x^(α−1) e^(−βx) / Γ(α) on x > 0.

    Samples are z/β with z ~ Gamma(α, 1) drawn in log space; the gradient with respect to
    α is implicit and the one with respect to β is explicit.

    Args:
        concentration: α > 0.
        rate: β > 0, broadcastable with α.
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive

    def __init__(self, concentration, rate, validate_args=None):
        parameters, batch_shape = broadcast_parameters("Gamma", concentration=concentration, rate=rate)
        self.concentration, self.rate = parameters["concentration"], parameters["rate"]
        super().__init__(batch_shape, validate_args=validate_args)

    def _full_concentration(self, shape):
        return np.broadcast_to(self.concentration.data.astype(np.float64), shape)

    def rsample(self, sample_shape=(), generator=None):
        shape = self._extended_shape(sample_shape)
        log_sample = sample_log_standard_gamma(self._full_concentration(shape), self._generator(generator))
        return ops.exp(_log_gamma_from_log_sample(self.concentration, log_sample)) / self.rate

    def rsample_from_noise(self, noise):
        noise = np.asarray(noise, dtype=np.float64)
        log_sample = log_gammaincinv(self._full_concentration(noise.shape), noise)
        return ops.exp(_log_gamma_from_log_sample(self.concentration, log_sample)) / self.rate

    def log_prob(self, value):
        value = self._to_value(value)
        alpha, rate = self.concentration, self.rate
        return alpha * ops.log(rate) + xlogy(alpha - 1.0, value) - rate * value - lgamma(alpha)

    def entropy(self):
        alpha = self.concentration
        return alpha - ops.log(self.rate) + lgamma(alpha) + (1.0 - alpha) * digamma(alpha)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def variance(self):
        return self.concentration / (self.rate * self.rate)


class Beta(_UniformNoise):
    """Beta(concentration1 a, concentration0 b): density x^(a−1) (1 − x)^(b−1) / B(a, b) on (0, 1).

    Samples are sigmoid(log G_a − log G_b) for independent log-Gamma draws, which stays
    exact for tiny a and b: Beta(1e-3, 1e-3) puts its mass next to 0 and 1. Samples are
    clamped into [tiny, 1 − ε] of the dtype so that log_prob stays finite. Gradients are
    the implicit ones of the Beta CDF.
    """

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval

    def __init__(self, concentration1, concentration0, validate_args=None):
        parameters, batch_shape = broadcast_parameters(
            "Beta", concentration1=concentration1, concentration0=concentration0)
        self.concentration1, self.concentration0 = parameters["concentration1"], parameters["concentration0"]
        super().__init__(batch_shape, validate_args=validate_args)

    def rsample(self, sample_shape=(), generator=None):
        shape = self._extended_shape(sample_shape)
        generator = self._generator(generator)
        a = np.broadcast_to(self.concentration1.data.astype(np.float64), shape)
        b = np.broadcast_to(self.concentration0.data.astype(np.float64), shape)
        logit = sample_log_standard_gamma(a, generator) - sample_log_standard_gamma(b, generator)
        return BetaImplicit(logit).apply(self.concentration1, self.concentration0)

    def rsample_from_noise(self, noise):
        noise = np.asarray(noise, dtype=np.float64)
        a = np.broadcast_to(self.concentration1.data.astype(np.float64), noise.shape)
        b = np.broadcast_to(self.concentration0.data.astype(np.float64), noise.shape)
        return BetaImplicit(logit_betaincinv(a, b, noise)).apply(self.concentration1, self.concentration0)

    def log_prob(self, value):
        value = self._to_value(value)
        a, b = self.concentration1, self.concentration0
        return xlogy(a - 1.0, value) + xlogy(b - 1.0, 1.0 - value) - lbeta(a, b)

    def entropy(self):
        a, b = self.concentration1, self.concentration0
        total = a + b
        return lbeta(a, b) - (a - 1.0) * digamma(a) - (b - 1.0) * digamma(b) + (total - 2.0) * digamma(total)

    @property
    def mean(self):
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def variance(self):
        a, b = self.concentration1, self.concentration0
        total = a + b
        return a * b / (total * total * (total + 1.0))


class Dirichlet(_UniformNoise):
    """Dirichlet(concentration α) on the simplex: density Π x_k^(α_k − 1) / B(α).

    Samples are softmax(log G) for independent log-Gamma draws log G_k with implicit
    gradients, clamped below at the dtype's tiny.

    Args:
        concentration: (..., K) positive concentrations.

    Shapes:
        batch_shape is concentration.shape[:-1]; event_shape is (K,).
    """

    arg_constraints = {"concentration": constraints.positive_vector}
    support = constraints.simplex

    def __init__(self, concentration, validate_args=None):
        concentration = as_parameter(concentration)
        if concentration.ndim < 1 or concentration.shape[-1] < 2:
            raise ShapeError(
                f"Dirichlet: concentration must have shape (..., K) with K >= 2, got {concentration.shape}")
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:], validate_args=validate_args)

    def _from_log_gammas(self, log_sample):
        log_g = _log_gamma_from_log_sample(self.concentration, log_sample)
        x = ops.softmax(log_g, axis=-1)
        return ops.clip(x, float(np.finfo(self.dtype).tiny), None)

    def rsample(self, sample_shape=(), generator=None):
        shape = self._extended_shape(sample_shape)
        alpha = np.broadcast_to(self.concentration.data.astype(np.float64), shape)
        return self._from_log_gammas(sample_log_standard_gamma(alpha, self._generator(generator)))

    def rsample_from_noise(self, noise):
        noise = np.asarray(noise, dtype=np.float64)
        alpha = np.broadcast_to(self.concentration.data.astype(np.float64), noise.shape)
        return self._from_log_gammas(log_gammaincinv(alpha, noise))

    def log_prob(self, value):
        value = self._to_value(value)
        alpha = self.concentration
        log_normalizer = ops.sum(lgamma(alpha), axis=-1) - lgamma(ops.sum(alpha, axis=-1))
        return ops.sum(xlogy(alpha - 1.0, value), axis=-1) - log_normalizer

    def entropy(self):
        alpha = self.concentration
        total = ops.sum(alpha, axis=-1)
        k = alpha.shape[-1]
        log_normalizer = ops.sum(lgamma(alpha), axis=-1) - lgamma(total)
        return log_normalizer + (total - k) * digamma(total) - ops.sum((alpha - 1.0) * digamma(alpha), axis=-1)

    @property
    def mean(self):
        return self.concentration / ops.sum(self.concentration, axis=-1, keepdims=True)

    @property
    def variance(self):
        total = ops.sum(self.concentration, axis=-1, keepdims=True)
        return self.concentration * (total - self.concentration) / (total * total * (total + 1.0))
