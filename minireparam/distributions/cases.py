"""Gradcheck cases for the registry: special functions, linear algebra, distributions, KL pairs.

A distribution case fixes its noise and its evaluation point (drawn from a seed that the
draw picks). It returns every differentiable output at once: rsample through the noise
map, log_prob, entropy, mean and variance, as the distribution has them.
"""
import numpy as np

from .. import ops
from ..ops.registry import Case, register
from ..random import Generator
from ..tensor import Tensor
from . import discrete, gamma, inverse_cdf, kl, linalg, location_scale, multivariate_normal, relaxed, special, transformed

# -- special functions and linear algebra -------------------------------------------------


def _unary(function, low, high):
    def build(draw):
        x = draw.array(draw.shape(), low, high)
        return Case(function, [x], f"shape {x.shape}")

    return build


def _build_lbeta(draw):
    shape = draw.shape(min_dims=1)
    a = draw.array(shape, 0.3, 4.0)
    b = draw.array(draw.broadcastable_to(shape), 0.3, 4.0)
    return Case(special.lbeta, [a, b], f"shapes {a.shape} and {b.shape}")


def _build_cholesky(draw):
    n = draw.integers(1, 3)
    batch = draw.shape(0, 1, 1, 2)
    raw = draw.array(batch + (n, n), -1.0, 1.0)

    def function(values):
        covariance = ops.matmul(values, ops.swapaxes(values, -1, -2)) + np.eye(n)
        return linalg.cholesky(covariance)

    return Case(function, [raw], f"covariance from a {raw.shape} factor")


def _build_solve_triangular(draw):
    n = draw.integers(1, 3)
    batch = draw.shape(0, 1, 1, 2)
    lower = draw.array(batch + (n, n), 1.0, 2.0)
    right = draw.array(draw.broadcastable_to(batch) + (n, draw.integers(1, 2)), -1.0, 1.0)
    transpose = draw.boolean()
    return Case(lambda l, b: linalg.solve_triangular(l, b, transpose=transpose), [lower, right],
                f"lower {lower.shape}, right {right.shape}, transpose={transpose}")


register("distributions.lgamma", _unary(special.lgamma, 0.2, 6.0), domain="x > 0")
register("distributions.digamma", _unary(special.digamma, 0.2, 6.0), domain="x > 0")
register("distributions.polygamma", _unary(lambda x: special.polygamma(1, x), 0.2, 6.0), domain="x > 0")
register("distributions.lbeta", _build_lbeta, domain="a, b > 0")
register("distributions.cholesky", _build_cholesky, domain="symmetric positive definite")
register("distributions.solve_triangular", _build_solve_triangular, domain="diagonal in [1, 2]")

# -- distributions ------------------------------------------------------------------------


def _scalar(low, high):
    """Make a parameter builder whose arrays broadcast to the batch shape."""
    return lambda draw, batch, k: draw.array(draw.broadcastable_to(batch), low, high)


def _vector(low, high):
    """Make a parameter builder whose arrays have shape batch + (k,)."""
    return lambda draw, batch, k: draw.array(batch + (k,), low, high)


def _factor(draw, batch, k):
    return draw.array(batch + (k, k), -1.0, 1.0)


_ALL_OUTPUTS = ("rsample", "log_prob", "entropy", "mean", "variance")


def _outputs(d, noise, value, outputs):
    results = []
    if "rsample" in outputs:
        results.append(d.rsample_from_noise(noise))
    if "log_prob" in outputs:
        results.append(d.log_prob(value))
    if "entropy" in outputs:
        results.append(d.entropy())
    if "mean" in outputs:
        results.append(d.mean)
    if "variance" in outputs:
        results.append(d.variance)
    return tuple(results)


def _register_distribution(name, factory, parameters, outputs=_ALL_OUTPUTS, domain="", max_batch_side=3):
    """Register one case per distribution.

    The implicit samplers (Gamma, Beta, Dirichlet) invert their CDF numerically on every
    function evaluation of the gradcheck, so their cases use batch sides of 1 to bound the time.
    """

    def build(draw):
        batch = draw.shape(0, 2, 1, max_batch_side)
        k = draw.integers(2, 3)
        arrays = [make(draw, batch, k) for make in parameters]
        generator = Generator(draw.integers(0, 2**31 - 1))
        reference = factory(*[Tensor(np.array(a, dtype=np.float64)) for a in arrays])
        noise = reference.sample_noise((2,), generator) if "rsample" in outputs else None
        value = reference.sample((2,), generator)
        return Case(lambda *tensors: _outputs(factory(*tensors), noise, value, outputs), arrays,
                    f"{name} with batch shape {batch}")

    exports = tuple(f"distributions.{name}.{output}" for output in outputs)
    register(f"distributions.{name}", build, domain=domain or "parameters inside their domain",
             second_order=False, exports=exports)


ls, ic = location_scale, inverse_cdf
_register_distribution("Normal", ls.Normal, [_scalar(-2, 2), _scalar(0.5, 2)])
_register_distribution("Laplace", ls.Laplace, [_scalar(-2, 2), _scalar(0.5, 2)])
_register_distribution("Logistic", ls.Logistic, [_scalar(-2, 2), _scalar(0.5, 2)])
_register_distribution("Gumbel", ls.Gumbel, [_scalar(-2, 2), _scalar(0.5, 2)])
_register_distribution("Cauchy", ls.Cauchy, [_scalar(-2, 2), _scalar(0.5, 2)], ("rsample", "log_prob", "entropy"))
_register_distribution("LogNormal", transformed.LogNormal, [_scalar(-1, 1), _scalar(0.5, 1.5)])
_register_distribution("Exponential", ic.Exponential, [_scalar(0.5, 3)])
_register_distribution("Uniform", ic.Uniform, [_scalar(-2, -1), _scalar(1, 2)])
_register_distribution("Kumaraswamy", ic.Kumaraswamy, [_scalar(0.5, 3), _scalar(0.5, 3)])
_register_distribution("Gamma", gamma.Gamma, [_scalar(0.5, 3), _scalar(0.5, 2)], domain="concentration in [0.5, 3]", max_batch_side=1)
_register_distribution("Beta", gamma.Beta, [_scalar(0.5, 3), _scalar(0.5, 3)], domain="concentrations in [0.5, 3]", max_batch_side=1)
_register_distribution("Dirichlet", gamma.Dirichlet, [_vector(0.5, 3)], domain="concentrations in [0.5, 3]", max_batch_side=1)
_register_distribution(
    "MultivariateNormal", lambda loc, factor: multivariate_normal.MultivariateNormal(
        loc, covariance_matrix=ops.matmul(factor, ops.swapaxes(factor, -1, -2)) + np.eye(factor.shape[-1])),
    [_vector(-2, 2), _factor], domain="covariance = F Fᵀ + I")
_register_distribution(
    "MultivariateNormal.scale_diag",
    lambda loc, scale: multivariate_normal.MultivariateNormal(loc, scale_diag=scale),
    [_vector(-2, 2), _vector(0.5, 2)])
_register_distribution(
    "Independent", lambda loc, scale: transformed.Independent(ls.Normal(loc, scale), 1),
    [_vector(-2, 2), _vector(0.5, 2)])
_register_distribution(
    "TransformedDistribution", lambda loc, scale: transformed.TransformedDistribution(
        ls.Normal(loc, scale), [transformed.SigmoidTransform(), transformed.AffineTransform(1.0, 2.0)]),
    [_scalar(-1, 1), _scalar(0.5, 1.5)], ("rsample", "log_prob"))
_register_distribution(
    "RelaxedBernoulli", lambda t, logits: relaxed.RelaxedBernoulli(t, logits=logits),
    [_scalar(0.5, 2), _scalar(-2, 2)], ("rsample", "log_prob"))
_register_distribution(
    "RelaxedOneHotCategorical", lambda t, logits: relaxed.RelaxedOneHotCategorical(t, logits=logits),
    [_scalar(0.5, 2), _vector(-2, 2)], ("rsample", "log_prob"))
_register_distribution(
    "Bernoulli", lambda logits: discrete.Bernoulli(logits=logits), [_scalar(-2, 2)],
    ("log_prob", "entropy", "mean", "variance"))
_register_distribution(
    "Bernoulli.probs", lambda probs: discrete.Bernoulli(probs=probs), [_scalar(0.1, 0.9)],
    ("log_prob", "entropy", "mean", "variance"))
_register_distribution(
    "Categorical", lambda logits: discrete.Categorical(logits=logits), [_vector(-2, 2)], ("log_prob", "entropy"))
_register_distribution(
    "OneHotCategorical", lambda logits: discrete.OneHotCategorical(logits=logits), [_vector(-2, 2)],
    ("log_prob", "entropy", "mean", "variance"))
_register_distribution("Poisson", discrete.Poisson, [_scalar(0.5, 3)], ("log_prob", "mean", "variance"))

# -- KL pairs -----------------------------------------------------------------------------


def _register_kl(label, make_p, p_parameters, make_q, q_parameters, min_batch_dims=0):
    count = len(p_parameters)

    def build(draw):
        batch = draw.shape(min_batch_dims, 2, 1, 3)
        k = draw.integers(2, 3)
        arrays = [make(draw, batch, k) for make in p_parameters + q_parameters]

        def function(*tensors):
            return kl.kl_divergence(make_p(*tensors[:count]), make_q(*tensors[count:]))

        return Case(function, arrays, f"KL({label}) with batch shape {batch}")

    register(f"distributions.kl_divergence({label})", build, second_order=False)


_positive, _real = _scalar(0.5, 3), _scalar(-2, 2)
_register_kl("Normal, Normal", ls.Normal, [_real, _positive], ls.Normal, [_real, _positive])
_register_kl("Laplace, Laplace", ls.Laplace, [_real, _positive], ls.Laplace, [_real, _positive])
_register_kl("Exponential, Exponential", ic.Exponential, [_positive], ic.Exponential, [_positive])
_register_kl("Gamma, Gamma", gamma.Gamma, [_positive, _positive], gamma.Gamma, [_positive, _positive])
_register_kl("Beta, Beta", gamma.Beta, [_positive, _positive], gamma.Beta, [_positive, _positive])
_register_kl("Uniform, Uniform", ic.Uniform, [_scalar(-1, -0.5), _scalar(0.5, 1)],
             ic.Uniform, [_scalar(-3, -2), _scalar(2, 3)])
_register_kl("Uniform, Beta", ic.Uniform, [_scalar(0.1, 0.3), _scalar(0.6, 0.9)], gamma.Beta, [_positive, _positive])
_register_kl("Kumaraswamy, Beta", ic.Kumaraswamy, [_scalar(0.5, 3), _scalar(0.5, 3)], gamma.Beta, [_positive, _positive])
_register_kl("Bernoulli, Bernoulli", lambda p: discrete.Bernoulli(probs=p), [_scalar(0.1, 0.9)],
             lambda q: discrete.Bernoulli(logits=q), [_real])
_register_kl("Categorical, Categorical", lambda p: discrete.Categorical(logits=p), [_vector(-2, 2)],
             lambda q: discrete.Categorical(logits=q), [_vector(-2, 2)])
_register_kl(
    "MultivariateNormal, MultivariateNormal",
    lambda loc, f: multivariate_normal.MultivariateNormal(
        loc, covariance_matrix=ops.matmul(f, ops.swapaxes(f, -1, -2)) + np.eye(f.shape[-1])),
    [_vector(-2, 2), _factor],
    lambda loc, s: multivariate_normal.MultivariateNormal(loc, scale_diag=s), [_vector(-2, 2), _vector(0.5, 2)])
_register_kl(
    "MultivariateNormal diagonal, MultivariateNormal diagonal",
    lambda loc, s: multivariate_normal.MultivariateNormal(loc, scale_diag=s), [_vector(-2, 2), _vector(0.5, 2)],
    lambda loc, s: multivariate_normal.MultivariateNormal(loc, scale_diag=s), [_vector(-2, 2), _vector(0.5, 2)])
