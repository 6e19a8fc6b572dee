"""KL divergences: a registry of closed forms, and a Monte Carlo estimate for any other pair.

``kl_divergence(p, q)`` = E_p[log p(x) − log q(x)], of shape broadcast(p.batch_shape,
q.batch_shape), differentiable in both distributions' parameters. The closed forms are
written so that KL(p, p) is exactly 0 up to rounding and its gradients are 0, not NaN:
ratios of scales appear through their logs, and terms p·log p use 0·log 0 = 0.
"""
import math
import warnings

import numpy as np

from .. import ops
from .discrete import Bernoulli, Categorical
from .gamma import Beta, Gamma
from .inverse_cdf import Exponential, Kumaraswamy, Uniform
from .linalg import solve_triangular
from .location_scale import Laplace, Normal
from .multivariate_normal import MultivariateNormal
from .special import digamma, lbeta, lgamma
from .transformed import Independent, LogNormal
from .utils import sum_rightmost, xlogy

_KL_REGISTRY = {}
_EULER_GAMMA = 0.5772156649015329

# The Kumaraswamy–Beta KL needs E[log(1 − x)] under Kumaraswamy(a, b), an infinite series
# −b·Σ_{m>=1} B(1 + m/a, b)/m. It is summed to this many terms and the rest is replaced by
# the integral of its leading asymptotic term, Γ(b)·(a/(M + 1/2))^b; the error left is of
# order b·Γ(b + 1)·a^(b+1)·M^(−b−1) (below 1e-5 for a, b in [0.5, 5]).
KUMARASWAMY_BETA_TERMS = 1000


def register_kl(type_p, type_q):
    """Decorator that registers ``function(p, q)`` as the KL of (type_p, type_q) instances."""

    def decorate(function):
        _KL_REGISTRY[(type_p, type_q)] = function
        return function

    return decorate


def _lookup(type_p, type_q):
    """The registered function whose types are the closest ancestors of (type_p, type_q)."""
    best, best_distance = None, None
    for (registered_p, registered_q), function in _KL_REGISTRY.items():
        if issubclass(type_p, registered_p) and issubclass(type_q, registered_q):
            distance = type_p.__mro__.index(registered_p) + type_q.__mro__.index(registered_q)
            if best_distance is None or distance < best_distance:
                best, best_distance = function, distance
    return best


def kl_divergence(p, q):
    """KL(p ‖ q) from the registry of closed forms.

    Args:
        p, q: distributions with broadcastable batch shapes.

    Returns:
        A Tensor of the broadcast batch shape (+inf where q's support misses part of p's).

    Raises:
        NotImplementedError: naming both types when no closed form is registered.
    """
    function = _lookup(type(p), type(q))
    if function is None:
        raise NotImplementedError(
            f"kl_divergence: no closed form is registered for ({type(p).__name__}, "
            f"{type(q).__name__}). Use kl_divergence_mc(p, q, n) for a Monte Carlo estimate "
            "(it needs p.rsample for gradients and q.log_prob), or add one with register_kl."
        )
    return function(p, q)


def kl_divergence_mc(p, q, n, generator=None):
    """Monte Carlo estimate (1/n)·Σᵢ [log p(xᵢ) − log q(xᵢ)] with xᵢ drawn from p.

    The draws use ``p.rsample`` so the estimate is differentiable in p's parameters
    along the sampling path. For p without rsample the draws come from ``p.sample`` and a
    warning says that gradients with respect to p miss that path.

    Args:
        p, q: distributions over the same space.
        n: number of draws.
        generator: a ``minireparam.Generator`` (None uses the default one).

    Returns:
        A Tensor of the broadcast batch shape.
    """
    if p.has_rsample:
        x = p.rsample((n,), generator=generator)
    else:
        warnings.warn(
            f"kl_divergence_mc: {type(p).__name__} has no rsample; the estimate uses sample(), so "
            "its gradient with respect to p's parameters leaves out the sampling path",
            stacklevel=2,
        )
        x = p.sample((n,), generator=generator)
    return ops.mean(p.log_prob(x) - q.log_prob(x), axis=0)


def _infinite_where(condition, value):
    """``value`` with +inf where ``condition`` holds (no gradient flows to those entries)."""
    return ops.where(condition, np.inf, value)


# -- continuous pairs ---------------------------------------------------------------------


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    # ½(σp²/σq² + ((μp − μq)/σq)² − 1) − log(σp/σq)
    ratio = p.scale / q.scale
    shift = (p.loc - q.loc) / q.scale
    return 0.5 * (ratio * ratio + shift * shift - 1.0) - (ops.log(p.scale) - ops.log(q.scale))


@register_kl(LogNormal, LogNormal)
def _kl_lognormal_lognormal(p, q):
    return _kl_normal_normal(p.base_dist, q.base_dist)  # KL is invariant under the shared map exp


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p, q):
    # log(bq/bp) + |μp − μq|/bq + (bp/bq)·exp(−|μp − μq|/bp) − 1
    distance = ops.abs(p.loc - q.loc)
    ratio = p.scale / q.scale
    return (ops.log(q.scale) - ops.log(p.scale)) + distance / q.scale + ratio * ops.exp(-distance / p.scale) - 1.0


@register_kl(Exponential, Exponential)
def _kl_exponential_exponential(p, q):
    ratio = q.rate / p.rate
    return ratio - 1.0 - (ops.log(q.rate) - ops.log(p.rate))


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p, q):
    ap, bp, aq, bq = p.concentration, p.rate, q.concentration, q.rate
    return ((ap - aq) * digamma(ap) - lgamma(ap) + lgamma(aq)
            + aq * (ops.log(bp) - ops.log(bq)) + ap * (bq - bp) / bp)


@register_kl(Beta, Beta)
def _kl_beta_beta(p, q):
    a1, b1, a2, b2 = p.concentration1, p.concentration0, q.concentration1, q.concentration0
    total = a1 + b1
    return (lbeta(a2, b2) - lbeta(a1, b1) + (a1 - a2) * digamma(a1) + (b1 - b2) * digamma(b1)
            + (a2 - a1 + b2 - b1) * digamma(total))


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    # log((bq − aq)/(bp − ap)) when [ap, bp) ⊆ [aq, bq), +inf otherwise.
    outside = (p.low.data < q.low.data) | (p.high.data > q.high.data)
    value = ops.log(q.high - q.low) - ops.log(p.high - p.low)
    return _infinite_where(outside, value)


@register_kl(Uniform, Beta)
def _kl_uniform_beta(p, q):
    # −H(U) − E_U[log Beta(x)], with E_U[log x] and E_U[log(1 − x)] integrated exactly.
    low, high = p.low, p.high
    width = high - low
    outside = (p.low.data < 0) | (p.high.data > 1)
    safe_low = ops.where(outside, 0.0, low)
    safe_high = ops.where(outside, 1.0, high)
    mean_log_x = (xlogy(safe_high, safe_high) - xlogy(safe_low, safe_low)) / width - 1.0
    upper, lower = 1.0 - safe_low, 1.0 - safe_high
    mean_log_1mx = (xlogy(upper, upper) - xlogy(lower, lower)) / width - 1.0
    a, b = q.concentration1, q.concentration0
    value = -ops.log(width) - (a - 1.0) * mean_log_x - (b - 1.0) * mean_log_1mx + lbeta(a, b)
    return _infinite_where(outside, value)


@register_kl(Kumaraswamy, Beta)
def _kl_kumaraswamy_beta(p, q):
    """KL(Kumaraswamy(a, b) ‖ Beta(α, β)) = −H(p) − (α − 1)E[log x] − (β − 1)E[log(1 − x)] + log B(α, β).

    With w = x^a ~ Beta(1, b): E[log x] = −(γ + ψ(b + 1))/a, and
    E[log(1 − x)] = −b·Σ_{m>=1} B(1 + m/a, b)/m, truncated as ``KUMARASWAMY_BETA_TERMS`` states.
    """
    a, b = p.concentration1, p.concentration0
    alpha, beta = q.concentration1, q.concentration0
    mean_log_x = -(digamma(b + 1.0) + _EULER_GAMMA) / a
    mean_log_1mx = _kumaraswamy_mean_log_1mx(a, b)
    return -p.entropy() - (alpha - 1.0) * mean_log_x - (beta - 1.0) * mean_log_1mx + lbeta(alpha, beta)


def _kumaraswamy_mean_log_1mx(a, b):
    terms = KUMARASWAMY_BETA_TERMS
    m = np.arange(1, terms + 1, dtype=a.dtype)
    a_, b_ = ops.expand_dims(a, -1), ops.expand_dims(b, -1)
    shifted = 1.0 + m / a_
    log_beta_terms = lgamma(shifted) + lgamma(b_) - lgamma(shifted + b_)
    head = ops.sum(ops.exp(log_beta_terms) / m, axis=-1)
    # Σ_{m>M} (b/m)·Γ(b)(m/a)^(−b) ≈ Γ(b)·(a/(M + ½))^b: the tail's leading term, integrated.
    tail = ops.exp(lgamma(b) + b * (ops.log(a) - math.log(terms + 0.5)))
    return -(b * head + tail)


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_mvn_mvn(p, q):
    # ½(tr(Σq⁻¹Σp) + ‖Lq⁻¹(μq − μp)‖² − d) + ½log det Σq − ½log det Σp
    d = p.event_shape[0]
    if d != q.event_shape[0]:
        raise ValueError(
            f"kl_divergence: MultivariateNormal event sizes differ: {p.event_shape} and {q.event_shape}")
    difference = q.loc - p.loc
    if p.is_diagonal and q.is_diagonal:
        ratio = p.scale_factor / q.scale_factor
        trace = ops.sum(ratio * ratio, axis=-1)
        whitened = difference / q.scale_factor
    else:
        lower_q, lower_p = q._full_scale_tril(), p._full_scale_tril()
        batch = np.broadcast_shapes(lower_q.shape[:-2], lower_p.shape[:-2], difference.shape[:-1])
        lower_q = ops.broadcast_to(lower_q, batch + (d, d))
        solved = solve_triangular(lower_q, ops.broadcast_to(lower_p, batch + (d, d)))
        trace = ops.sum(solved * solved, axis=(-2, -1))
        column = ops.broadcast_to(ops.expand_dims(difference, -1), batch + (d, 1))
        whitened = ops.squeeze(solve_triangular(lower_q, column), -1)
    mahalanobis = ops.sum(whitened * whitened, axis=-1)
    return 0.5 * (trace + mahalanobis - d) + q.half_log_det() - p.half_log_det()


# -- discrete pairs -----------------------------------------------------------------------


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p, q):
    if p._given == "probs" and q._given == "probs":
        pp, qp = p.probs, q.probs
        positive = xlogy(pp, pp) - xlogy(pp, qp)
        negative = xlogy(1.0 - pp, 1.0 - pp) - xlogy(1.0 - pp, 1.0 - qp)
        return positive + negative
    # With log σ(l) = −softplus(−l) and log(1 − σ(l)) = −softplus(l):
    lp, lq = p.logits, q.logits
    pp = ops.sigmoid(lp)
    return pp * (ops.softplus(-lq) - ops.softplus(-lp)) + (1.0 - pp) * (ops.softplus(lq) - ops.softplus(lp))


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p, q):
    # Σ_k p_k (log p_k − log q_k), with the terms where p_k = 0 set to 0.
    probs = p.probs
    p_is_zero = probs.data == 0
    log_p = ops.where(p_is_zero, 0.0, p._log_probs())
    log_q = ops.where(p_is_zero, 0.0, q._log_probs())
    return ops.sum(ops.where(p_is_zero, 0.0, probs * (log_p - log_q)), axis=-1)


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError(
            "kl_divergence: Independent distributions with different reinterpreted_batch_ndims "
            f"({p.reinterpreted_batch_ndims} and {q.reinterpreted_batch_ndims})")
    return sum_rightmost(kl_divergence(p.base_dist, q.base_dist), p.reinterpreted_batch_ndims)
