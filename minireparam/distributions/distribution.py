"""The ``Distribution`` base class: shapes, validation, and the sample/rsample contract.

Shapes follow one rule: a draw with ``sample_shape`` has shape
``sample_shape + batch_shape + event_shape``, and ``log_prob`` of such a value has shape
``sample_shape + batch_shape`` (the event axes are summed).

``rsample`` is split in two so that a gradient check can hold the randomness fixed:
``sample_noise`` draws parameter-free noise (standard normal ε, uniform u, …) and
``rsample_from_noise`` maps it to a sample differentiably. ``sample`` is ``rsample``
without a graph, except for distributions that override it.
"""
import numpy as np

from .. import ops
from ..autograd.grad_mode import no_grad
from ..errors import ShapeError
from ..random import resolve
from ..tensor import Tensor
from .utils import check_parameter


class Distribution:
    """Base class of probability distributions with batch and event shapes.

    Class attributes a subclass sets:
        arg_constraints: parameter name -> constraint, checked at construction.
        support: the constraint that samples satisfy (and ``log_prob`` expects).
        has_rsample: True when ``rsample`` carries gradients to the parameters.
    """

    arg_constraints = {}
    support = None
    has_rsample = False
    _validate_default = True

    @staticmethod
    def set_default_validate_args(value):
        """Turn argument validation on or off for distributions built without ``validate_args``."""
        Distribution._validate_default = bool(value)

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = tuple(int(n) for n in batch_shape)
        self._event_shape = tuple(int(n) for n in event_shape)
        self._validate_args = Distribution._validate_default if validate_args is None else bool(validate_args)
        if self._validate_args:
            self._validate_parameters()

    def _validate_parameters(self):
        name = type(self).__name__
        for parameter, constraint in self.arg_constraints.items():
            if parameter in self.__dict__:  # a probs/logits pair stores only the one given
                check_parameter(name, parameter, self.__dict__[parameter], constraint)

    # -- shapes and dtype -----------------------------------------------------------------

    @property
    def batch_shape(self):
        """The shape of independent (not identically distributed) draws."""
        return self._batch_shape

    @property
    def event_shape(self):
        """The shape of one draw of a single distribution (``()`` for scalars)."""
        return self._event_shape

    @property
    def dtype(self):
        """The float dtype of the parameters, and so of samples and log-densities."""
        for value in self.__dict__.values():
            if isinstance(value, Tensor) and value.dtype.kind == "f":
                return value.dtype
        return np.dtype(np.float32)

    def _extended_shape(self, sample_shape=()):
        if isinstance(sample_shape, (int, np.integer)):
            sample_shape = (int(sample_shape),)
        return tuple(sample_shape) + self._batch_shape + self._event_shape

    # -- sampling -------------------------------------------------------------------------

    def sample(self, sample_shape=(), generator=None):
        """Draw values without a graph.

        Args:
            sample_shape: leading shape of independent draws.
            generator: a ``minireparam.Generator`` (None uses the default one).

        Returns:
            A Tensor of shape ``sample_shape + batch_shape + event_shape``.
        """
        with no_grad():
            return self.rsample(sample_shape, generator).detach()

    def rsample(self, sample_shape=(), generator=None):
        """Draw values through which gradients flow to the parameters (reparameterization).

        Returns:
            A Tensor of shape ``sample_shape + batch_shape + event_shape``.

        Raises:
            NotImplementedError: for distributions without a reparameterized sampler.
        """
        if not self.has_rsample:
            raise NotImplementedError(
                f"{type(self).__name__} has no reparameterized sampler (rsample). Draw with "
                "sample() and estimate gradients with the score function (REINFORCE), for "
                "example minireparam.estimators.score_function_gradient, or use a relaxed "
                "distribution such as RelaxedOneHotCategorical."
            )
        noise = self.sample_noise(sample_shape, generator)
        return self.rsample_from_noise(noise)

    def sample_noise(self, sample_shape=(), generator=None):
        """Draw the parameter-free noise that ``rsample_from_noise`` maps to a sample."""
        raise NotImplementedError(f"{type(self).__name__} does not define sample_noise")

    def rsample_from_noise(self, noise):
        """Map noise from ``sample_noise`` to a sample, differentiably in the parameters."""
        raise NotImplementedError(f"{type(self).__name__} does not define rsample_from_noise")

    def _generator(self, generator):
        return resolve(generator)

    # -- densities and moments ------------------------------------------------------------

    def log_prob(self, value):
        """Log-density (or log-mass) of ``value``, of shape ``sample_shape + batch_shape``."""
        raise NotImplementedError(f"{type(self).__name__} does not define log_prob")

    def entropy(self):
        """Differential entropy (or Shannon entropy for discrete), of shape ``batch_shape``."""
        raise NotImplementedError(f"{type(self).__name__} does not define entropy")

    def cdf(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not define cdf")

    def icdf(self, value):
        raise NotImplementedError(f"{type(self).__name__} does not define icdf")

    @property
    def mean(self):
        raise NotImplementedError(f"{type(self).__name__} does not define mean")

    @property
    def variance(self):
        raise NotImplementedError(f"{type(self).__name__} does not define variance")

    @property
    def stddev(self):
        return ops.sqrt(self.variance)

    # -- value checks ---------------------------------------------------------------------

    def _to_value(self, value):
        """Convert ``value`` to a Tensor of the distribution's dtype and check it when validating."""
        if not isinstance(value, Tensor):
            value = Tensor._make(np.asarray(value, dtype=self.dtype), None, False)
        elif value.dtype.kind != "f":
            value = Tensor._make(value.data.astype(self.dtype), None, False)
        if self._validate_args:
            self._validate_sample(value)
        return value

    def _validate_sample(self, value):
        name = type(self).__name__
        event_ndim = len(self._event_shape)
        if value.ndim < event_ndim or value.shape[value.ndim - event_ndim:] != self._event_shape:
            raise ShapeError(
                f"{name}.log_prob: the value's shape {value.shape} must end in the event shape "
                f"{self._event_shape}"
            )
        try:
            np.broadcast_shapes(value.shape, self._batch_shape + self._event_shape)
        except ValueError:
            raise ShapeError(
                f"{name}.log_prob: a value of shape {value.shape} does not broadcast with the "
                f"batch and event shape {self._batch_shape + self._event_shape}"
            ) from None
        support = self.support
        if support is None:
            return
        inside = np.asarray(support.check(value.data))
        if not inside.all():
            index = tuple(int(i) for i in np.argwhere(~inside)[0]) if inside.ndim else ()
            shown = np.asarray(value.data[index]).tolist()
            raise ValueError(
                f"{name}.log_prob: the value must be in the support ({support.description}), "
                f"got {shown!r} at index {index} ({int((~inside).sum())} values outside). "
                "Pass values from the support, or validate_args=False to skip this check."
            )

    def __repr__(self):
        parameters = ", ".join(
            f"{name}: {tuple(self.__dict__[name].shape)}" for name in self.arg_constraints if name in self.__dict__
        )
        return f"{type(self).__name__}({parameters})"
