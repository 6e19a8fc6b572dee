"""A stochastic gradient check: hold the noise fixed, then gradcheck rsample and log_prob.

A reparameterized sample is a deterministic function of the parameters once its noise
(ε for location-scale families, u for inverse-CDF and implicit ones) is fixed, so central
differences apply to it like to any other op.
"""
import numpy as np

from ..gradcheck import GradcheckError, gradcheck
from ..random import Generator
from ..tensor import Tensor


def gradcheck_rsample(distribution, parameters, sample_shape=(3,), generator=None, check_log_prob=True,
                      eps=1e-6, atol=1e-5, rtol=1e-3):
    """Gradcheck a distribution's rsample (and log_prob) with respect to every parameter.

    Args:
        distribution: a function mapping parameter Tensors to a Distribution, for example
            ``lambda loc, scale: Normal(loc, scale)``.
        parameters: the parameter values (arrays or Tensors); they are checked in float64.
        sample_shape: the shape of the fixed noise draw.
        generator: draws the noise (None uses ``Generator(0)``, so the check is repeatable).
        check_log_prob: also check log_prob at a fixed sample, and log_prob of the
            sample itself (the pathwise term of entropy and KL estimates).
        eps, atol, rtol: as in ``minireparam.gradcheck``.

    Returns:
        True when every check passes.

    Raises:
        GradcheckError: naming the check (rsample, log_prob at a fixed value, log_prob
            along the sample path) that failed.
    """
    tensors = [Tensor(np.array(_data(p), dtype=np.float64), requires_grad=True) for p in parameters]
    generator = Generator(0) if generator is None else generator
    reference = distribution(*tensors)
    noise = reference.sample_noise(sample_shape, generator=generator)

    def sample(*values):
        return distribution(*values).rsample_from_noise(noise)

    def log_prob_at_fixed_value(*values):
        return distribution(*values).log_prob(fixed_value)

    def log_prob_along_path(*values):
        d = distribution(*values)
        return d.log_prob(d.rsample_from_noise(noise))

    fixed_value = reference.rsample_from_noise(noise).detach()
    checks = [("rsample_from_noise", sample)]
    if check_log_prob:
        checks += [("log_prob at a fixed value", log_prob_at_fixed_value), ("log_prob along the sample path", log_prob_along_path)]
    for label, function in checks:
        try:
            gradcheck(function, tensors, eps=eps, atol=atol, rtol=rtol)
        except GradcheckError as error:
            raise GradcheckError(f"gradcheck_rsample ({type(reference).__name__}, {label}): {error}") from None
    return True


def _data(value):
    return value.data if isinstance(value, Tensor) else value
