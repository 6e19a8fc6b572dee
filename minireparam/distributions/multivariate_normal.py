"""MultivariateNormal with a full covariance (through its Cholesky factor) or a diagonal one."""
import math

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..ops._util import to_tensor
from . import constraints
from .distribution import Distribution
from .linalg import cholesky, solve_triangular
from .utils import broadcast_parameters, check_parameter, lazy_property, standard_normal

_LOG_TWO_PI = math.log(2.0 * math.pi)


class MultivariateNormal(Distribution):
    """N(loc, Σ) on vectors of size d, reparameterized as x = loc + L ε with Σ = L Lᵀ.

    Give exactly one of ``covariance_matrix``, ``precision_matrix``, ``scale_tril`` (a
    lower-triangular L with a positive diagonal) or ``scale_diag`` (the standard deviations
    of a diagonal Σ, which keeps every operation O(d)).

    Args:
        loc: (..., d) means.
        covariance_matrix, precision_matrix, scale_tril: (..., d, d).
        scale_diag: (..., d) positive standard deviations.
        validate_args: check the parameters (None uses the global default).

    Shapes:
        batch_shape is the broadcast of loc's and the matrix's leading axes; event_shape is (d,).
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "covariance_matrix": constraints.positive_definite,
        "precision_matrix": constraints.positive_definite,
        "scale_tril": constraints.lower_cholesky,
        "scale_diag": constraints.positive_vector,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None,
                 scale_diag=None, validate_args=None):
        given = {name: value for name, value in (
            ("covariance_matrix", covariance_matrix), ("precision_matrix", precision_matrix),
            ("scale_tril", scale_tril), ("scale_diag", scale_diag)) if value is not None}
        if len(given) != 1:
            raise ValueError(
                "MultivariateNormal: give exactly one of covariance_matrix, precision_matrix, "
                f"scale_tril or scale_diag, got {sorted(given) or 'none'}"
            )
        (form, matrix), = given.items()
        self.is_diagonal = form == "scale_diag"
        event_dims = {"loc": 1, form: 1 if self.is_diagonal else 2}
        self._check_sizes(loc, form, matrix)
        parameters, batch_shape = broadcast_parameters("MultivariateNormal", event_dims, loc=loc, **{form: matrix})
        self.loc = parameters["loc"]
        setattr(self, form, parameters[form])
        if validate_args is None:
            validate_args = Distribution._validate_default
        if validate_args and form in ("covariance_matrix", "precision_matrix"):
            check_parameter("MultivariateNormal", form, parameters[form], self.arg_constraints[form])
        super().__init__(batch_shape, self.loc.shape[-1:], validate_args=validate_args)
        self._scale = self._factor(form, parameters[form])

    @staticmethod
    def _check_sizes(loc, form, matrix):
        loc_shape = np.shape(loc.data if hasattr(loc, "data") else loc)
        matrix_shape = np.shape(matrix.data if hasattr(matrix, "data") else matrix)
        if len(loc_shape) < 1:
            raise ShapeError(f"MultivariateNormal: loc must have at least one axis (..., d), got shape {loc_shape}")
        d = loc_shape[-1]
        if form == "scale_diag":
            expected_ok = len(matrix_shape) >= 1 and matrix_shape[-1] == d
            expected = "(..., d)"
        else:
            expected_ok = len(matrix_shape) >= 2 and matrix_shape[-2:] == (d, d)
            expected = "(..., d, d)"
        if not expected_ok:
            raise ShapeError(
                f"MultivariateNormal: {form} must have shape {expected} with d = {d} from loc "
                f"{loc_shape}, got {matrix_shape}"
            )

    def _validate_parameters(self):
        for name in ("loc", "scale_tril", "scale_diag"):
            if name in self.__dict__:
                check_parameter("MultivariateNormal", name, self.__dict__[name], self.arg_constraints[name])

    @staticmethod
    def _factor(form, matrix):
        """Return the scale factor: L for full forms, the standard deviations for scale_diag."""
        if form in ("scale_tril", "scale_diag"):
            return matrix
        if form == "covariance_matrix":
            return cholesky(matrix)
        # Σ = P⁻¹ = U⁻ᵀ U⁻¹ with P = U Uᵀ, then L = cholesky(Σ).
        precision_factor = cholesky(matrix)
        n = matrix.shape[-1]
        identity = to_tensor(np.broadcast_to(np.eye(n, dtype=matrix.dtype), matrix.shape).copy())
        inverse_factor = solve_triangular(precision_factor, identity)
        covariance = ops.matmul(ops.swapaxes(inverse_factor, -1, -2), inverse_factor)
        return cholesky(covariance)

    @property
    def scale_factor(self):
        """L with Σ = L Lᵀ (full) or the (..., d) standard deviations (diagonal)."""
        return self._scale

    def _full_scale_tril(self):
        if self.is_diagonal:
            return ops.expand_dims(self._scale, -1) * np.eye(self.event_shape[0], dtype=self.dtype)
        return self._scale

    # -- sampling -------------------------------------------------------------------------

    def sample_noise(self, sample_shape=(), generator=None):
        """Standard normal ε of shape ``sample_shape + batch_shape + (d,)``."""
        return standard_normal(self._extended_shape(sample_shape), self._generator(generator), self.dtype)

    def rsample_from_noise(self, noise):
        epsilon = ops.astype(to_tensor(noise), self.dtype)
        if self.is_diagonal:
            return self.loc + self._scale * epsilon
        return self.loc + ops.squeeze(ops.matmul(self._scale, ops.expand_dims(epsilon, -1)), -1)

    # -- densities and moments ------------------------------------------------------------

    def _whiten(self, difference):
        """L⁻¹ (x − loc), so that the Mahalanobis term is its squared norm."""
        if self.is_diagonal:
            return difference / self._scale
        target_batch = np.broadcast_shapes(difference.shape[:-1], self.batch_shape)
        lower = ops.broadcast_to(self._scale, target_batch + self._scale.shape[-2:])
        column = ops.broadcast_to(ops.expand_dims(difference, -1), target_batch + difference.shape[-1:] + (1,))
        return ops.squeeze(solve_triangular(lower, column), -1)

    def half_log_det(self):
        """½ log det Σ = Σᵢ log Lᵢᵢ, of shape batch_shape."""
        if self.is_diagonal:
            return ops.sum(ops.log(self._scale), axis=-1)
        diagonal = ops.sum(self._scale * np.eye(self.event_shape[0], dtype=self.dtype), axis=-1)
        return ops.sum(ops.log(diagonal), axis=-1)

    def log_prob(self, value):
        value = self._to_value(value)
        whitened = self._whiten(value - self.loc)
        mahalanobis = ops.sum(whitened * whitened, axis=-1)
        d = self.event_shape[0]
        return -0.5 * (d * _LOG_TWO_PI + mahalanobis) - self.half_log_det()

    def entropy(self):
        d = self.event_shape[0]
        return 0.5 * d * (1.0 + _LOG_TWO_PI) + self.half_log_det()

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        if self.is_diagonal:
            return self._scale * self._scale
        return ops.sum(self._scale * self._scale, axis=-1)

    @lazy_property
    def scale_tril(self):
        """L of shape batch_shape + (d, d), whichever form was given."""
        return self._full_scale_tril()

    @lazy_property
    def covariance_matrix(self):
        """Σ = L Lᵀ of shape batch_shape + (d, d), whichever form was given."""
        lower = self._full_scale_tril()
        return ops.matmul(lower, ops.swapaxes(lower, -1, -2))

    @lazy_property
    def precision_matrix(self):
        """Σ⁻¹ = L⁻ᵀ L⁻¹ of shape batch_shape + (d, d)."""
        lower = self._full_scale_tril()
        n = self.event_shape[0]
        identity = to_tensor(np.broadcast_to(np.eye(n, dtype=self.dtype), lower.shape).copy())
        inverse_factor = solve_triangular(lower, identity)
        return ops.matmul(ops.swapaxes(inverse_factor, -1, -2), inverse_factor)
