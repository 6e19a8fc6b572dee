"""Discrete distributions: Bernoulli, Categorical, OneHotCategorical, Poisson.

None of them has a reparameterized sampler: gradients of expectations under them come
from the score-function estimator (``minireparam.estimators``) or from the relaxed
distributions in ``relaxed.py``. Their ``log_prob`` is differentiable in the parameters.
"""
import numpy as np

from .. import ops
from ..autograd.grad_mode import no_grad
from ..errors import ShapeError
from ..ops._util import to_tensor
from . import constraints
from .distribution import Distribution
from .special import lgamma
from .utils import (
    as_parameter, broadcast_parameters, lazy_property, logits_to_probs, open_uniform, probs_to_logits, xlogy,
)


def _one_of(owner, probs, logits):
    if (probs is None) == (logits is None):
        raise ValueError(f"{owner}: give exactly one of probs or logits, got {'both' if probs is not None else 'neither'}")
    return ("probs", probs) if probs is not None else ("logits", logits)


class Bernoulli(Distribution):
    """Bernoulli(probs) or Bernoulli(logits=...) on {0, 1}; samples are floats 0.0 and 1.0."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean

    def __init__(self, probs=None, logits=None, validate_args=None):
        name, value = _one_of("Bernoulli", probs, logits)
        parameters, batch_shape = broadcast_parameters("Bernoulli", **{name: value})
        self.__dict__[name] = parameters[name]
        self._given = name
        super().__init__(batch_shape, validate_args=validate_args)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits, is_binary=True)

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=True)

    def sample(self, sample_shape=(), generator=None):
        """Draw 0.0/1.0 values of shape ``sample_shape + batch_shape`` (no gradient)."""
        shape = self._extended_shape(sample_shape)
        u = open_uniform(shape, self._generator(generator), np.float64)
        with no_grad():
            probs = self.probs.data
        return to_tensor((u < probs).astype(self.dtype))

    def log_prob(self, value):
        value = self._to_value(value)
        if self._given == "probs":
            # x log p + (1 − x) log(1 − p), with 0·log 0 = 0 at p ∈ {0, 1}.
            return xlogy(value, self.probs) + xlogy(1.0 - value, 1.0 - self.probs)
        return value * self.logits - ops.softplus(self.logits)

    def entropy(self):
        if self._given == "probs":
            p = self.probs
            return -(xlogy(p, p) + xlogy(1.0 - p, 1.0 - p))
        logits = self.logits
        return ops.softplus(logits) - ops.sigmoid(logits) * logits

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        return self.probs * (1.0 - self.probs)


class Categorical(Distribution):
    """Categorical over K classes: ``probs`` (non-negative, normalized here) or ``logits``.

    Samples are int64 class indices of shape ``sample_shape + batch_shape``, drawn by
    Gumbel-max: argmax_k (logits_k + G_k) with G_k standard Gumbel noise.

    Args:
        probs: (..., K) non-negative weights with a positive sum.
        logits: (..., K) unnormalized log-probabilities (−inf masks a class).
    """

    arg_constraints = {"probs": constraints.nonnegative_vector, "logits": constraints.logits_vector}

    def __init__(self, probs=None, logits=None, validate_args=None):
        name, value = _one_of(type(self).__name__, probs, logits)
        value = as_parameter(value)
        if value.ndim < 1:
            raise ShapeError(f"{type(self).__name__}: {name} must have a class axis (..., K), got shape {value.shape}")
        self._num_events = value.shape[-1]
        self._given = name
        self.__dict__[name] = value
        super().__init__(value.shape[:-1], self._event_shape_for(), validate_args=validate_args)
        if name == "probs":
            self.__dict__["probs"] = value / ops.sum(value, axis=-1, keepdims=True)
        else:
            self.__dict__["logits"] = value - ops.logsumexp(value, axis=-1, keepdims=True)

    def _event_shape_for(self):
        return ()

    @property
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @property
    def num_events(self):
        return self._num_events

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits)

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs)

    def _log_probs(self):
        """Normalized log-probabilities with exactly −inf where a probability is 0."""
        if self._given == "logits":
            return self.logits
        probs = self.probs
        zero = probs.data == 0
        return ops.where(zero, -np.inf, ops.log(ops.where(zero, 1.0, probs)))

    def sample(self, sample_shape=(), generator=None):
        shape = self._extended_shape(sample_shape)[:-len(self.event_shape) or None] + (self._num_events,)
        u = open_uniform(shape, self._generator(generator), np.float64)
        gumbel = -np.log(-np.log(u))
        with no_grad():
            log_probs = self._log_probs().data
        return to_tensor(np.argmax(log_probs + gumbel, axis=-1).astype(np.int64))

    def log_prob(self, value):
        value = to_tensor(value)
        if self._validate_args:
            self._validate_sample(value)
        return self._log_prob_of_indices(value.data.astype(np.int64))

    def _log_prob_of_indices(self, indices):
        log_probs = self._log_probs()
        shape = np.broadcast_shapes(indices.shape, self.batch_shape)
        log_probs = ops.broadcast_to(log_probs, shape + (self._num_events,))
        indices = np.broadcast_to(indices, shape)[..., None]
        return ops.squeeze(ops.take_along_axis(log_probs, indices, axis=-1), -1)

    def entropy(self):
        return -ops.sum(xlogy(self.probs, self.probs), axis=-1)

    @property
    def mean(self):
        """NaN, as for any categorical law whose labels have no numeric meaning."""
        return to_tensor(np.full(self.batch_shape, np.nan, dtype=self.dtype))

    @property
    def variance(self):
        return to_tensor(np.full(self.batch_shape, np.nan, dtype=self.dtype))


class OneHotCategorical(Categorical):
    """Categorical with one-hot samples: values of shape ``sample_shape + batch_shape + (K,)``."""

    def _event_shape_for(self):
        return (self._num_events,)

    @property
    def support(self):
        return constraints.one_hot

    def sample(self, sample_shape=(), generator=None):
        indices = super().sample(sample_shape, generator).data
        return to_tensor(np.eye(self._num_events, dtype=self.dtype)[indices])

    def log_prob(self, value):
        value = to_tensor(value)
        if self._validate_args:
            self._validate_sample(value)
        return self._log_prob_of_indices(np.argmax(value.data, axis=-1))

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        return self.probs * (1.0 - self.probs)


class Poisson(Distribution):
    """Poisson(rate) on {0, 1, 2, …}: P(k) = rate^k e^(−rate) / k!. Samples are floats."""

    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=None):
        parameters, batch_shape = broadcast_parameters("Poisson", rate=rate)
        self.rate = parameters["rate"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, sample_shape=(), generator=None):
        shape = self._extended_shape(sample_shape)
        rate = np.broadcast_to(self.rate.data, shape)
        return to_tensor(self._generator(generator).numpy.poisson(rate).astype(self.dtype))

    def log_prob(self, value):
        value = self._to_value(value)
        return xlogy(value, self.rate) - self.rate - lgamma(value + 1.0)

    @property
    def mean(self):
        return self.rate

    @property
    def variance(self):
        return self.rate
