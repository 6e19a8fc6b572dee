"""Implicit reparameterization for Gamma and Beta: samplers and gradient ops.

A sample z with CDF F(z; θ) = u is differentiated at fixed u by the implicit function
theorem, dz/dθ = −(∂F/∂θ)/(∂F/∂z), so no inverse CDF is ever differentiated. The value of
z may come from any exact sampler. Here it comes from Marsaglia–Tsang rejection sampling
in log space (or from the numerical inverse CDF, when the noise u is given), and the op
below attaches the gradient.

Small concentrations need log space: a Gamma(0.001) draw is around e^(−1000), below the
smallest float64, so the sampler returns log z, using
    log G(α) = log G(α + 1) + log(U)/α   (U uniform on (0, 1]) for α < 1.
Beta and Dirichlet are built from these log-Gamma draws (a sigmoid of the difference, a
softmax), which never forms 0/0.
"""
import numpy as np

from ..autograd.node import Op
from .incomplete import beta_cdf_parts, gamma_cdf_parts


def sample_log_standard_gamma(concentration, generator):
    """Draw log G with G ~ Gamma(concentration, 1), elementwise, in float64.

    Args:
        concentration: float64 array of positive shape parameters (the output's shape).
        generator: a ``minireparam.Generator``.

    Returns:
        A float64 array of log-samples, finite for any concentration > 0.
    """
    concentration = np.asarray(concentration, dtype=np.float64)
    flat = concentration.reshape(-1)
    small = flat < 1.0
    boosted = np.where(small, flat + 1.0, flat)
    log_sample = _marsaglia_tsang_log(boosted, generator.numpy)
    if small.any():
        # 1 − random() lies in (0, 1], so its log is finite.
        log_u = np.log1p(-generator.numpy.random(int(small.sum())))
        log_sample[small] += log_u / flat[small]
    return log_sample.reshape(concentration.shape)


def _marsaglia_tsang_log(concentration, rng):
    """Log of Gamma(α, 1) draws for α >= 1 by Marsaglia and Tsang's squeeze-free method.

    With d = α − 1/3 and c = 1/√(9d), propose v = (1 + c·x)³ for x ~ N(0, 1) and accept
    d·v when log U < x²/2 + d − d·v + d·log v. Rejected elements are redrawn in the next
    round; the acceptance rate is above 95%, so a few rounds finish every element.
    """
    d = concentration - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    log_sample = np.empty_like(concentration)
    pending = np.arange(concentration.size)
    while pending.size:
        x = rng.standard_normal(pending.size)
        u = rng.random(pending.size)
        d_p, c_p = d[pending], c[pending]
        v = (1.0 + c_p * x) ** 3
        with np.errstate(invalid="ignore", divide="ignore"):
            log_v = np.log(v)
            accept = (v > 0) & (np.log(u) < 0.5 * x * x + d_p - d_p * v + d_p * log_v)
        log_sample[pending[accept]] = np.log(d_p[accept]) + log_v[accept]
        pending = pending[~accept]
    return log_sample


class GammaImplicit(Op):
    """Output: fixed log-samples log z of Gamma(α, 1). VJP: d log z/dα at fixed CDF value.

    The samples are drawn before the op runs and passed in; the op only attaches the
    implicit gradient −(∂P/∂α)/(z·pdf(z)), where P is the regularized incomplete gamma function.
    """

    name = "distributions.gamma_implicit"
    once_differentiable = True

    def __init__(self, log_sample):
        self.log_sample = np.asarray(log_sample, dtype=np.float64)

    def forward(self, concentration):
        self.save_input("concentration", 0)
        return self.log_sample.astype(concentration.dtype)

    def vjp(self, g):
        concentration = np.broadcast_to(self.saved("concentration").data, self.log_sample.shape)
        dlogz_dalpha = gamma_cdf_parts(concentration, self.log_sample)["dlogx_da"]
        return (g * dlogz_dalpha.astype(g.dtype),)


class BetaImplicit(Op):
    """Output: Beta(a, b) samples x = sigmoid(logit), clamped into (0, 1). VJP: dx/da, dx/db at fixed CDF value.

    The logits are drawn before the op runs; the gradients are −(∂I/∂θ)/pdf(x), with I the
    regularized incomplete beta function, evaluated from the logit so that they stay
    finite when x rounds to 0 or 1.
    """

    name = "distributions.beta_implicit"
    once_differentiable = True

    def __init__(self, logit):
        self.logit = np.asarray(logit, dtype=np.float64)

    def forward(self, concentration1, concentration0):
        self.save_input("concentration1", 0)
        self.save_input("concentration0", 1)
        dtype = np.result_type(concentration1.dtype, concentration0.dtype)
        info = np.finfo(dtype)
        x = np.exp(-np.logaddexp(0.0, -self.logit))
        return np.clip(x, info.tiny, 1.0 - info.epsneg).astype(dtype)

    def vjp(self, g):
        shape = self.logit.shape
        a = np.broadcast_to(self.saved("concentration1").data, shape)
        b = np.broadcast_to(self.saved("concentration0").data, shape)
        parts = beta_cdf_parts(a, b, self.logit)
        return g * parts["dx_da"].astype(g.dtype), g * parts["dx_db"].astype(g.dtype)
