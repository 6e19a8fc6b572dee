"""Two VAE-like objectives E_q[f(z)] whose exact gradients are known, for comparing estimators.

Each objective is one step of a VAE's reconstruction term for a single image x, with a
linear decoder and a Gaussian likelihood, so the expectation has a closed form:

* ``GaussianLatentObjective``: q(z) = Normal(μ, σ) over D latent dimensions and
  f(z) = ½‖W z + b − x‖². Then E_q[f] = ½‖W μ + b − x‖² + ½ Σⱼ σⱼ² ‖W[:, j]‖², so
  ∇_μ = Wᵀ (W μ + b − x) and ∇_σⱼ = σⱼ ‖W[:, j]‖².
* ``CategoricalLatentObjective``: q(z) = OneHotCategorical(logits θ) over K classes and
  f(z) = ½‖A z − x‖², where column k of A is the image that class k decodes to. On a
  one-hot z, E_q[f] = Σₖ pₖ fₖ with fₖ = ½‖A[:, k] − x‖², so ∇_θ = p ⊙ (f − Σₖ pₖ fₖ).

The exact gradient is the autodiff gradient of the closed-form expectation, and
``exact_gradient_formula`` writes the formulas above out by hand (the tests compare them).
The parameters are float64 Tensors, so the estimators' statistics are not limited by
float32 rounding.
"""
import numpy as np

from .. import ops
from ..autograd.engine import grad
from ..distributions import Independent, Normal, OneHotCategorical
from ..tensor import Tensor


def _parameter(array):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


class GaussianLatentObjective:
    """E_{Normal(μ, σ)}[½‖W z + b − x‖²] with a fixed random decoder (W, b) and image x.

    Args:
        latent_dim (int): D, the size of z (default 16).
        data_dim (int): the size of x (default 64, an 8x8 image).
        rng (numpy.random.Generator): draws W, b, x, μ and σ.

    Attributes:
        parameters (tuple of Tensor): (μ, σ), each of shape (D,), with requires_grad.
    """

    name = "Gaussian latent"

    def __init__(self, latent_dim=16, data_dim=64, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng
        self.weight = rng.normal(0.0, 1.0 / np.sqrt(latent_dim), size=(data_dim, latent_dim))
        self.bias = rng.normal(0.0, 0.1, size=data_dim)
        self.image = rng.uniform(0.0, 1.0, size=data_dim)
        self.parameters = (_parameter(rng.normal(0.0, 0.5, latent_dim)), _parameter(rng.uniform(0.3, 1.0, latent_dim)))

    def distribution(self, loc, scale):
        # One event of D dimensions, so log_prob sums over them: shape (n,) like f.
        return Independent(Normal(loc, scale), 1)

    def function(self, z):
        """f(z) = ½‖W z + b − x‖² for draws z of shape (n, D); returns shape (n,)."""
        residual = ops.matmul(z, Tensor(self.weight.T)) + Tensor(self.bias - self.image)
        return 0.5 * ops.sum(residual * residual, axis=-1)

    def expectation(self, loc, scale):
        """Return the closed form E_q[f] = ½‖W μ + b − x‖² + ½ Σⱼ σⱼ² ‖W[:, j]‖² as a Tensor."""
        residual = ops.matmul(Tensor(self.weight), loc) + Tensor(self.bias - self.image)
        column_norms = Tensor(np.sum(self.weight ** 2, axis=0))
        return 0.5 * ops.sum(residual * residual) + 0.5 * ops.sum(scale * scale * column_norms)

    def exact_gradient(self):
        """∇ of the closed-form expectation by autodiff, one float64 array per parameter."""
        gradients = grad([self.expectation(*self.parameters)], list(self.parameters))
        return tuple(g.data.copy() for g in gradients)

    def exact_gradient_formula(self):
        """Return the same gradient from the hand-derived formulas: Wᵀ(W μ + b − x) and σⱼ ‖W[:, j]‖²."""
        loc, scale = (p.data for p in self.parameters)
        residual = self.weight @ loc + self.bias - self.image
        return self.weight.T @ residual, scale * np.sum(self.weight ** 2, axis=0)


class CategoricalLatentObjective:
    """E_{OneHotCategorical(θ)}[½‖A z − x‖²] with K fixed class images A[:, k] and an image x.

    Args:
        categories (int): K, the number of classes (default 10).
        data_dim (int): the size of x (default 64).
        rng (numpy.random.Generator): draws A, x and the logits θ.

    Attributes:
        parameters (tuple of Tensor): (θ,), the logits of shape (K,), with requires_grad.
    """

    name = "categorical latent"

    def __init__(self, categories=10, data_dim=64, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng
        self.decoder = rng.uniform(0.0, 1.0, size=(data_dim, categories))
        self.image = rng.uniform(0.0, 1.0, size=data_dim)
        self.parameters = (_parameter(rng.normal(0.0, 1.0, categories)),)

    def distribution(self, logits):
        return OneHotCategorical(logits=logits)

    def function(self, z):
        """f(z) = ½‖A z − x‖² for one-hot or relaxed z of shape (n, K); returns shape (n,)."""
        residual = ops.matmul(z, Tensor(self.decoder.T)) - Tensor(self.image)
        return 0.5 * ops.sum(residual * residual, axis=-1)

    def class_values(self):
        """Return fₖ = ½‖A[:, k] − x‖², the objective at each one-hot z, shape (K,)."""
        return 0.5 * np.sum((self.decoder - self.image[:, None]) ** 2, axis=0)

    def expectation(self, logits):
        """Return the exact E_q[f] = Σₖ softmax(θ)ₖ fₖ as a Tensor."""
        return ops.sum(ops.softmax(logits, axis=-1) * Tensor(self.class_values()))

    def exact_gradient(self):
        """∇_θ of the exact expectation by autodiff, as a one-element tuple of float64 arrays."""
        gradients = grad([self.expectation(*self.parameters)], list(self.parameters))
        return tuple(g.data.copy() for g in gradients)

    def exact_gradient_formula(self):
        """Return the same gradient written out: p ⊙ (f − Σₖ pₖ fₖ)."""
        logits = self.parameters[0].data
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        values = self.class_values()
        return (probabilities * (values - probabilities @ values),)
