"""Bijections (exp, sigmoid, affine), TransformedDistribution, Independent and LogNormal.

A TransformedDistribution pushes a base distribution through bijections y = f(x); its
density follows from the change of variables
    log p_Y(y) = log p_X(f⁻¹(y)) − log |det ∂f/∂x| at x = f⁻¹(y).
"""
import numpy as np

from .. import ops
from . import constraints
from .distribution import Distribution
from .location_scale import Normal
from .utils import as_parameter, sum_rightmost


class Transform:
    """A bijection with its inverse and log |det Jacobian|.

    Attributes:
        event_dim: how many rightmost axes one application couples (0 for elementwise maps).
        codomain: the constraint its outputs satisfy.
    """

    event_dim = 0
    codomain = constraints.real

    def __call__(self, x):
        raise NotImplementedError

    def inverse(self, y):
        raise NotImplementedError

    def log_abs_det_jacobian(self, x, y):
        """log |∂y/∂x| per element (summed over ``event_dim`` axes), at x and y = f(x)."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class ExpTransform(Transform):
    """y = exp(x), onto (0, ∞)."""

    codomain = constraints.positive

    def __call__(self, x):
        return ops.exp(x)

    def inverse(self, y):
        return ops.log(y)

    def log_abs_det_jacobian(self, x, y):
        return x


class SigmoidTransform(Transform):
    """y = 1/(1 + e^(−x)), onto (0, 1); the inverse clamps y so logit(y) stays finite."""

    codomain = constraints.open_unit_interval

    def __call__(self, x):
        return ops.sigmoid(x)

    def inverse(self, y):
        info = np.finfo(y.dtype)
        clamped = ops.clip(y, float(info.tiny), 1.0 - float(info.epsneg))
        return ops.log(clamped) - ops.log1p(-clamped)

    def log_abs_det_jacobian(self, x, y):
        # log σ'(x) = log σ(x) + log σ(−x) = −softplus(−x) − softplus(x)
        return -ops.softplus(-x) - ops.softplus(x)


class AffineTransform(Transform):
    """y = loc + scale·x elementwise; with ``event_dim`` > 0 the log-determinant sums that many axes."""

    def __init__(self, loc, scale, event_dim=0):
        self.loc = as_parameter(loc)
        self.scale = as_parameter(scale)
        self.event_dim = event_dim

    def __call__(self, x):
        return self.loc + self.scale * x

    def inverse(self, y):
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y):
        per_element = ops.broadcast_to(ops.log(ops.abs(self.scale)), np.broadcast_shapes(self.scale.shape, x.shape))
        return sum_rightmost(per_element, self.event_dim)


class TransformedDistribution(Distribution):
    """The law of f_k(…f_1(x)) for x drawn from ``base_distribution``.

    Args:
        base_distribution: any Distribution; rsample is available when the base has it.
        transforms: a Transform or a list of them, applied first to last.
    """

    def __init__(self, base_distribution, transforms, validate_args=None):
        self.base_dist = base_distribution
        self.transforms = list(transforms) if isinstance(transforms, (list, tuple)) else [transforms]
        event_dim = max([len(base_distribution.event_shape)] + [t.event_dim for t in self.transforms])
        shape = base_distribution.batch_shape + base_distribution.event_shape
        cut = len(shape) - event_dim
        super().__init__(shape[:cut], shape[cut:], validate_args=validate_args)

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    @property
    def support(self):
        return self.transforms[-1].codomain if self.transforms else self.base_dist.support

    @property
    def dtype(self):
        return self.base_dist.dtype

    def _forward(self, x):
        for transform in self.transforms:
            x = transform(x)
        return x

    def sample_noise(self, sample_shape=(), generator=None):
        return self.base_dist.sample_noise(sample_shape, generator)

    def rsample_from_noise(self, noise):
        return self._forward(self.base_dist.rsample_from_noise(noise))

    def rsample(self, sample_shape=(), generator=None):
        return self._forward(self.base_dist.rsample(sample_shape, generator))

    def sample(self, sample_shape=(), generator=None):
        return self._forward(self.base_dist.sample(sample_shape, generator)).detach()

    def log_prob(self, value):
        y = self._to_value(value)
        event_dim = len(self.event_shape)
        correction = 0.0
        for transform in reversed(self.transforms):
            x = transform.inverse(y)
            jacobian = transform.log_abs_det_jacobian(x, y)
            correction = correction + sum_rightmost(jacobian, event_dim - transform.event_dim)
            y = x
        base_log_prob = sum_rightmost(self.base_dist.log_prob(y), event_dim - len(self.base_dist.event_shape))
        return base_log_prob - correction


class LogNormal(TransformedDistribution):
    """LogNormal(loc, scale): exp of a Normal(loc, scale) draw."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive

    def __init__(self, loc, scale, validate_args=None):
        super().__init__(Normal(loc, scale, validate_args=validate_args), ExpTransform(), validate_args=validate_args)
        self.loc, self.scale = self.base_dist.loc, self.base_dist.scale

    @property
    def mean(self):
        return ops.exp(self.loc + 0.5 * self.scale * self.scale)

    @property
    def variance(self):
        scale_squared = self.scale * self.scale
        return ops.expm1(scale_squared) * ops.exp(2.0 * self.loc + scale_squared)

    def entropy(self):
        return self.base_dist.entropy() + self.loc


class Independent(Distribution):
    """Treat the rightmost ``reinterpreted_batch_ndims`` batch axes of a distribution as event axes.

    ``log_prob`` sums over them, so a batch of d Normals becomes one d-dimensional
    diagonal Gaussian.
    """

    def __init__(self, base_distribution, reinterpreted_batch_ndims, validate_args=None):
        batch = base_distribution.batch_shape
        if not 0 <= reinterpreted_batch_ndims <= len(batch):
            raise ValueError(
                f"Independent: reinterpreted_batch_ndims must be in [0, {len(batch)}] for a base "
                f"with batch shape {batch}, got {reinterpreted_batch_ndims}"
            )
        self.base_dist = base_distribution
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims
        cut = len(batch) - reinterpreted_batch_ndims
        super().__init__(batch[:cut], batch[cut:] + base_distribution.event_shape, validate_args=validate_args)

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    @property
    def support(self):
        return self.base_dist.support

    @property
    def dtype(self):
        return self.base_dist.dtype

    def _validate_sample(self, value):
        self.base_dist._validate_sample(value)

    def sample_noise(self, sample_shape=(), generator=None):
        return self.base_dist.sample_noise(sample_shape, generator)

    def rsample_from_noise(self, noise):
        return self.base_dist.rsample_from_noise(noise)

    def rsample(self, sample_shape=(), generator=None):
        return self.base_dist.rsample(sample_shape, generator)

    def sample(self, sample_shape=(), generator=None):
        return self.base_dist.sample(sample_shape, generator)

    def log_prob(self, value):
        return sum_rightmost(self.base_dist.log_prob(value), self.reinterpreted_batch_ndims)

    def entropy(self):
        return sum_rightmost(self.base_dist.entropy(), self.reinterpreted_batch_ndims)

    @property
    def mean(self):
        return self.base_dist.mean

    @property
    def variance(self):
        return self.base_dist.variance

