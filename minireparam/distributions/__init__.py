"""Probability distributions with reparameterized sampling, in PyTorch's vocabulary.

Every distribution has ``sample`` (no graph) and ``log_prob``; those with
``has_rsample = True`` also have ``rsample``, whose draws carry gradients to the
parameters, and the pair ``sample_noise`` / ``rsample_from_noise`` that splits a draw into
parameter-free noise and a differentiable map (``gradcheck_rsample`` uses it).

Reparameterizations:

* location-scale, x = loc + scale·ε: Normal, Laplace, Logistic, Gumbel, Cauchy,
  MultivariateNormal (x = loc + L ε), and LogNormal (exp of a Normal);
* inverse CDF, x = F⁻¹(u; θ): Exponential, Uniform, Kumaraswamy;
* relaxed discrete (Gumbel-softmax / Concrete): RelaxedBernoulli, RelaxedOneHotCategorical,
  with ``hard=True`` for straight-through one-hot samples;
* implicit, dz/dθ = −(∂F/∂θ)/(∂F/∂z): Gamma, Beta, Dirichlet.

Bernoulli, Categorical, OneHotCategorical and Poisson have no ``rsample``; use the
score-function estimator in ``minireparam.estimators`` for them.

Import it explicitly (``import minireparam.distributions``): the core package does not.
"""
from . import constraints
from .constraints import Constraint
from .discrete import Bernoulli, Categorical, OneHotCategorical, Poisson
from .distribution import Distribution
from .gamma import Beta, Dirichlet, Gamma
from .gradcheck import gradcheck_rsample
from .inverse_cdf import Exponential, Kumaraswamy, Uniform
from .kl import kl_divergence, kl_divergence_mc, register_kl
from .linalg import cholesky, solve_triangular
from .location_scale import Cauchy, Gumbel, Laplace, Logistic, Normal
from .multivariate_normal import MultivariateNormal
from .relaxed import RelaxedBernoulli, RelaxedOneHotCategorical
from .special import digamma, lbeta, lgamma, polygamma
from .transformed import (
    AffineTransform, ExpTransform, Independent, LogNormal, SigmoidTransform, Transform, TransformedDistribution,
)

__all__ = [
    "Distribution", "Constraint", "constraints",
    "Normal", "LogNormal", "Laplace", "Logistic", "Gumbel", "Cauchy", "Exponential", "Uniform",
    "Kumaraswamy", "MultivariateNormal", "Independent", "TransformedDistribution", "Transform",
    "ExpTransform", "SigmoidTransform", "AffineTransform", "RelaxedBernoulli",
    "RelaxedOneHotCategorical", "Gamma", "Beta", "Dirichlet", "Bernoulli", "Categorical",
    "OneHotCategorical", "Poisson", "kl_divergence", "kl_divergence_mc", "register_kl",
    "gradcheck_rsample", "lgamma", "digamma", "polygamma", "lbeta", "cholesky", "solve_triangular",
]

from . import cases  # noqa: E402,F401  (registers gradcheck cases for the differentiable pieces)
