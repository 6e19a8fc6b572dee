"""Relaxed discrete distributions (Concrete / Gumbel-softmax) and the straight-through variant.

A relaxed one-hot sample is softmax((logits + G)/τ) with G standard Gumbel noise. As the
temperature τ goes to 0, it approaches the one-hot vector of argmax(logits + G), which is
an exact Categorical draw (the Gumbel-max trick). The binary case is
sigmoid((logits + L)/τ) with L standard logistic noise.

At very small temperatures the samples are exactly one-hot in floating point and their
gradients are exactly 0 (the softmax and sigmoid saturate), never NaN. Samples are not
clamped, so they can be exactly 0 or 1; ``log_prob`` clamps its input into the open
interval so that such boundary values still give a finite log-density.
"""
import math

import numpy as np

from .. import ops
from ..autograd.node import Op
from ..errors import ShapeError
from ..ops._util import to_tensor
from . import constraints
from .distribution import Distribution
from .utils import as_parameter, broadcast_parameters, check_parameter, lazy_property, logits_to_probs, open_uniform, probs_to_logits


def _check_temperature(owner, temperature, validate_args):
    if validate_args is None:
        validate_args = Distribution._validate_default
    if validate_args:
        check_parameter(owner, "temperature", temperature, constraints.positive)


def _clamp_open(value):
    info = np.finfo(value.dtype)
    return ops.clip(value, float(info.tiny), 1.0 - float(info.epsneg))


class RelaxedBernoulli(Distribution):
    """Binary Concrete: x = sigmoid((logits + L)/τ) on (0, 1), L standard logistic.

    Args:
        temperature: τ > 0, broadcastable with the probabilities.
        probs or logits: the probability of 1 (exactly one of the two).
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("RelaxedBernoulli: give exactly one of probs or logits")
        name, value = ("probs", probs) if probs is not None else ("logits", logits)
        _check_temperature("RelaxedBernoulli", as_parameter(temperature), validate_args)
        parameters, batch_shape = broadcast_parameters("RelaxedBernoulli", temperature=temperature, **{name: value})
        self.temperature = parameters["temperature"]
        self.__dict__[name] = parameters[name]
        super().__init__(batch_shape, validate_args=validate_args)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits, is_binary=True)

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=True)

    def sample_noise(self, sample_shape=(), generator=None):
        """Standard logistic noise L = log u − log(1 − u) of shape ``sample_shape + batch_shape``."""
        u = open_uniform(self._extended_shape(sample_shape), self._generator(generator), np.float64)
        return (np.log(u) - np.log1p(-u)).astype(self.dtype)

    def rsample_from_noise(self, noise):
        noise = ops.astype(to_tensor(noise), self.dtype)
        return ops.sigmoid((self.logits + noise) / self.temperature)

    def log_prob(self, value):
        value = _clamp_open(self._to_value(value))
        # y = logit(x) has density τ·f_L(τy − logits), f_L the standard logistic density,
        # and x = sigmoid(y) divides it by σ'(y) = exp(−softplus(−y) − softplus(y)).
        y = ops.log(value) - ops.log1p(-value)
        shifted = self.temperature * y - self.logits
        log_density_y = ops.log(self.temperature) - shifted - 2.0 * ops.softplus(-shifted)
        return log_density_y + ops.softplus(-y) + ops.softplus(y)


class StraightThroughOneHot(Op):
    """Forward: the one-hot vector of argmax along the last axis. Backward: the identity.

    The straight-through estimator: the forward value is a hard sample while the
    gradient is that of the relaxed sample it was computed from (a biased estimate).
    """

    name = "distributions.straight_through_one_hot"

    def forward(self, relaxed):
        index = np.argmax(relaxed, axis=-1)
        return np.eye(relaxed.shape[-1], dtype=relaxed.dtype)[index]

    def vjp(self, g):
        return (g,)


class StraightThroughRound(Op):
    """Forward: 1 where the relaxed binary sample is above 1/2, else 0. Backward: the identity."""

    name = "distributions.straight_through_round"

    def forward(self, relaxed):
        return (relaxed > 0.5).astype(relaxed.dtype)

    def vjp(self, g):
        return (g,)


class RelaxedOneHotCategorical(Distribution):
    """Concrete / Gumbel-softmax on the simplex: x = softmax((logits + G)/τ).

    Args:
        temperature: τ > 0, broadcastable with the batch shape.
        probs or logits: (..., K) class probabilities or logits (exactly one).
        hard: return one-hot samples whose gradient is that of the relaxed sample
            (straight-through). ``log_prob`` still refers to the relaxed density.

    Shapes:
        event_shape is (K,); samples are ``sample_shape + batch_shape + (K,)``.
    """

    arg_constraints = {"probs": constraints.nonnegative_vector, "logits": constraints.logits_vector}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, hard=False, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("RelaxedOneHotCategorical: give exactly one of probs or logits")
        name, value = ("probs", probs) if probs is not None else ("logits", logits)
        value = as_parameter(value)
        if value.ndim < 1:
            raise ShapeError(f"RelaxedOneHotCategorical: {name} must have a class axis (..., K), got shape {value.shape}")
        _check_temperature("RelaxedOneHotCategorical", as_parameter(temperature), validate_args)
        parameters, batch_shape = broadcast_parameters(
            "RelaxedOneHotCategorical", {name: 1}, temperature=temperature, **{name: value})
        self.temperature = parameters["temperature"]
        self.__dict__[name] = parameters[name]
        self.hard = bool(hard)
        super().__init__(batch_shape, value.shape[-1:], validate_args=validate_args)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits)

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs / ops.sum(self.probs, axis=-1, keepdims=True))

    def sample_noise(self, sample_shape=(), generator=None):
        """Standard Gumbel noise G = −log(−log u) of shape ``sample_shape + batch_shape + (K,)``."""
        u = open_uniform(self._extended_shape(sample_shape), self._generator(generator), np.float64)
        return (-np.log(-np.log(u))).astype(self.dtype)

    def rsample_from_noise(self, noise):
        noise = ops.astype(to_tensor(noise), self.dtype)
        temperature = ops.expand_dims(self.temperature, -1)
        relaxed = ops.softmax((self.logits + noise) / temperature, axis=-1)
        if self.hard:
            return StraightThroughOneHot().apply(relaxed)
        return relaxed

    def log_prob(self, value):
        # The Concrete density on the first K − 1 coordinates:
        # log p(x) = log (K−1)! + (K−1) log τ + Σ_k (l_k − (τ+1) log x_k) − K·logsumexp_k(l_k − τ log x_k).
        value = self._to_value(value)
        log_x = ops.log(ops.clip(value, float(np.finfo(value.dtype).tiny), 1.0))
        k = self.event_shape[0]
        temperature = ops.expand_dims(self.temperature, -1)
        logits = self.logits
        scores = logits - temperature * log_x
        total = ops.sum(logits - (temperature + 1.0) * log_x, axis=-1)
        return (math.lgamma(k) + (k - 1) * ops.log(self.temperature)) + total - k * ops.logsumexp(scores, axis=-1)

