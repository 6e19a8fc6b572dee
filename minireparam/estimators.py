"""Gradient estimators for ∇_θ E_{q_θ}[f(z)], and a helper that measures their bias and variance.

Three families, each a function returning one gradient array per parameter:

* ``reparameterization_gradient``: z = g(ε; θ) through ``rsample``, then the average of
  ∇_θ f(g(ε; θ)). Unbiased, usually the lowest variance, needs a reparameterizable q.
* ``score_function_gradient`` (REINFORCE): the average of (f(z) − b)·∇_θ log q(z) with z
  from ``sample``. It is unbiased for any q with a differentiable log_prob, as long as the
  baseline b does not depend on the draw it multiplies. The baselines offered are none, a
  moving average of earlier batches (``MovingAverageBaseline``), and the leave-one-out
  mean of the other draws in the batch (``baseline="leave_one_out"``).
* ``relaxed_gradient``: for Bernoulli and categorical q, replace the draw by a Concrete
  (Gumbel-softmax) sample at a temperature, optionally straight-through (a hard one-hot
  forward value with the relaxed gradient). Biased, low variance.

``measure_estimator`` runs an estimator many times on independent generator streams and
reports the mean, the bias against a known exact gradient, and the variance.

The function f must not depend on θ and must map a batch of draws of shape
(num_samples, *batch_shape, *event_shape) to values of shape (num_samples, *batch_shape)
(or any shape that sums to the objective). The objective is the sum over the batch of
the mean over samples.
"""
from dataclasses import dataclass

import numpy as np

from . import ops
from .autograd.engine import grad
from .autograd.grad_mode import no_grad
from .random import resolve
from .tensor import Tensor


def _gradients(objective, parameters):
    gradients = grad([objective], list(parameters), allow_unused=True)
    return tuple(
        np.zeros(p.shape, dtype=p.dtype) if g is None else np.array(g.data, copy=True)
        for p, g in zip(parameters, gradients)
    )


def _per_sample_mean(values):
    """Σ over the batch of the mean over the leading sample axis."""
    return ops.sum(ops.mean(values, axis=0))


def _check_parameters(name, parameters):
    for index, p in enumerate(parameters):
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise TypeError(
                f"{name}: parameter {index} must be a Tensor with requires_grad=True, got "
                f"{type(p).__name__}{'' if not isinstance(p, Tensor) else ' without requires_grad'}"
            )


# -- (a) reparameterization ---------------------------------------------------------------


def reparameterization_gradient(distribution, parameters, function, num_samples=1, generator=None):
    """Pathwise estimate: (1/n)·Σᵢ ∇_θ f(zᵢ) with zᵢ = q.rsample(), gradients through the sampler.

    Args:
        distribution: maps the parameters to a Distribution with ``has_rsample``.
        parameters: Tensors with ``requires_grad=True``.
        function: f, mapping draws (n, *batch, *event) to values (n, *batch).
        num_samples: n.
        generator: a ``minireparam.Generator`` (None uses the default one).

    Returns:
        A tuple of ndarrays, one gradient per parameter.
    """
    _check_parameters("reparameterization_gradient", parameters)
    q = distribution(*parameters)
    if not q.has_rsample:
        raise NotImplementedError(
            f"reparameterization_gradient: {type(q).__name__} has no rsample; use "
            "score_function_gradient or relaxed_gradient"
        )
    z = q.rsample((num_samples,), generator=generator)
    return _gradients(_per_sample_mean(function(z)), parameters)


# -- (b) score function -------------------------------------------------------------------


class MovingAverageBaseline:
    """An exponential moving average of f over earlier batches, used as a REINFORCE baseline.

    The baseline for a batch is computed before that batch is seen, so it is independent
    of the draws it multiplies and the estimate stays unbiased. The first batch gets 0.

    Args:
        decay: the weight of the old average in each update, in [0, 1).
    """

    def __init__(self, decay=0.9):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"MovingAverageBaseline: decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.value = None

    def current(self, like):
        """Return the baseline for the next batch, broadcastable with one sample's values."""
        if self.value is None:
            return np.zeros(like.shape[1:], dtype=like.dtype)
        return self.value

    def update(self, values):
        batch_mean = values.mean(axis=0)
        if self.value is None:
            self.value = batch_mean
        else:
            self.value = self.decay * self.value + (1.0 - self.decay) * batch_mean


def _baseline_values(baseline, values):
    """Per-draw baselines b with the shape of ``values`` (an ndarray of f, samples first)."""
    if baseline is None:
        return np.zeros_like(values)
    if isinstance(baseline, MovingAverageBaseline):
        return np.broadcast_to(baseline.current(values), values.shape)
    if baseline == "leave_one_out":
        n = values.shape[0]
        if n < 2:
            raise ValueError("score_function_gradient: the leave-one-out baseline needs num_samples >= 2")
        return (values.sum(axis=0, keepdims=True) - values) / (n - 1)
    raise ValueError(
        "score_function_gradient: baseline must be None, 'leave_one_out' or a "
        f"MovingAverageBaseline, got {baseline!r}"
    )


def score_function_gradient(distribution, parameters, function, num_samples=2, baseline=None, generator=None):
    """REINFORCE estimate: (1/n)·Σᵢ (f(zᵢ) − bᵢ)·∇_θ log q(zᵢ) with zᵢ = q.sample().

    Args:
        distribution: maps the parameters to a Distribution with a differentiable log_prob.
        parameters: Tensors with ``requires_grad=True``.
        function: f, mapping draws (n, *batch, *event) to values (n, *batch).
        num_samples: n.
        baseline: None, ``"leave_one_out"`` (bᵢ = mean of f over the other draws) or a
            ``MovingAverageBaseline`` (updated with this batch after use).
        generator: a ``minireparam.Generator`` (None uses the default one).

    Returns:
        A tuple of ndarrays, one gradient per parameter.
    """
    _check_parameters("score_function_gradient", parameters)
    q = distribution(*parameters)
    z = q.sample((num_samples,), generator=generator)
    with no_grad():
        values = np.asarray(function(z).data, dtype=np.float64)
    advantages = values - _baseline_values(baseline, values)
    if isinstance(baseline, MovingAverageBaseline):
        baseline.update(values)
    log_prob = q.log_prob(z)
    weights = Tensor(advantages.astype(log_prob.dtype))
    return _gradients(_per_sample_mean(weights * log_prob), parameters)


# -- (c) relaxed and straight-through -----------------------------------------------------


def relaxed_gradient(distribution, parameters, function, temperature, num_samples=1, straight_through=False,
                     generator=None):
    """Concrete / Gumbel-softmax estimate for a Bernoulli, Categorical or OneHotCategorical q.

    The draw is replaced by a relaxed sample at ``temperature`` with the same logits. With
    ``straight_through``, its forward value is the hard sample (rounded to 0/1 or one-hot)
    while gradients follow the relaxed one. Both versions are biased; the bias shrinks
    with the temperature while the variance grows.

    Args:
        distribution: maps the parameters to a Bernoulli, Categorical or OneHotCategorical.
        parameters: Tensors with ``requires_grad=True``.
        function: f; it receives values in [0, 1] (Bernoulli) or vectors on the simplex
            (categorical, one-hot when hard), of shape (n, *batch[, K]).
        temperature: τ > 0.
        num_samples: n.
        straight_through: use hard forward values.
        generator: a ``minireparam.Generator`` (None uses the default one).

    Returns:
        A tuple of ndarrays, one gradient per parameter.
    """
    from .distributions import Bernoulli, Categorical, RelaxedBernoulli, RelaxedOneHotCategorical
    from .distributions.relaxed import StraightThroughOneHot, StraightThroughRound

    _check_parameters("relaxed_gradient", parameters)
    q = distribution(*parameters)
    if isinstance(q, Bernoulli):
        relaxed = RelaxedBernoulli(temperature, logits=q.logits)
        z = relaxed.rsample((num_samples,), generator=generator)
        if straight_through:
            z = StraightThroughRound().apply(z)
    elif isinstance(q, Categorical):
        relaxed = RelaxedOneHotCategorical(temperature, logits=q.logits)
        z = relaxed.rsample((num_samples,), generator=generator)
        if straight_through:
            z = StraightThroughOneHot().apply(z)
    else:
        raise TypeError(
            f"relaxed_gradient: expected a Bernoulli, Categorical or OneHotCategorical, got {type(q).__name__}"
        )
    return _gradients(_per_sample_mean(function(z)), parameters)


# -- measuring bias and variance ----------------------------------------------------------


@dataclass
class EstimatorReport:
    """Statistics of repeated gradient estimates, one array per parameter.

    Attributes:
        mean: the average estimate.
        bias: mean − exact.
        variance: the per-element variance of one estimate (ddof = 1).
        standard_error: √(variance / repeats), the standard error of ``mean``.
        repeats: how many independent estimates were drawn.
    """

    mean: tuple
    bias: tuple
    variance: tuple
    standard_error: tuple
    repeats: int

    def bias_z_scores(self):
        """|bias| / standard_error per element: above about 5, the bias is not noise."""
        return tuple(np.abs(b) / np.maximum(se, np.finfo(np.float64).tiny) for b, se in zip(self.bias, self.standard_error))

    def total_variance(self):
        """Σ of the per-element variances over all parameters (a scalar summary)."""
        return float(sum(np.sum(v) for v in self.variance))


def measure_estimator(estimator, exact, repeats=200, generator=None):
    """Run ``estimator`` ``repeats`` times on independent streams; report bias and variance.

    Args:
        estimator: maps a ``minireparam.Generator`` to a tuple of gradient arrays (for
            example ``lambda g: score_function_gradient(..., generator=g)``).
        exact: the exact gradients, one array per parameter, in the same order.
        repeats: the number of independent estimates (>= 2).
        generator: the parent stream; each repeat gets a child from ``spawn``, so the
            streams do not overlap and the report is reproducible from its seed.

    Returns:
        An ``EstimatorReport``.
    """
    if repeats < 2:
        raise ValueError(f"measure_estimator: repeats must be >= 2 to estimate a variance, got {repeats}")
    streams = resolve(generator).spawn(repeats)
    draws = [tuple(np.asarray(g, dtype=np.float64) for g in estimator(stream)) for stream in streams]
    if len(draws[0]) != len(exact):
        raise ValueError(
            f"measure_estimator: the estimator returned {len(draws[0])} gradients but exact has {len(exact)}")
    stacked = [np.stack([d[i] for d in draws]) for i in range(len(exact))]
    mean = tuple(s.mean(axis=0) for s in stacked)
    variance = tuple(s.var(axis=0, ddof=1) for s in stacked)
    bias = tuple(m - np.asarray(e, dtype=np.float64) for m, e in zip(mean, exact))
    standard_error = tuple(np.sqrt(v / repeats) for v in variance)
    return EstimatorReport(mean, bias, variance, standard_error, repeats)
