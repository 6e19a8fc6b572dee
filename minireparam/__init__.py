"""minireparam: a from-scratch reverse-mode autodiff engine on numpy with a small C core."""
__version__ = "0.1.0"

from .tensor import Tensor, tensor
from .autograd import (
    GraphReleasedError, InplaceModifiedError, Op, detect_anomaly, enable_grad, grad, is_anomaly_enabled,
    is_grad_enabled, no_grad, set_grad_enabled, to_dot,
)
from .ops import *  # noqa: F401,F403  (numpy-named tensor functions: exp, matmul, where, ...)
from .ops import __all__ as _ops_all
from .creation import arange, full, ones, ones_like, rand, randn, zeros, zeros_like
from .random import Generator, default_generator, manual_seed
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .errors import DTypeError, ShapeError
from .serialization import load, save
from . import allocator, backend

float32 = "float32"
float64 = "float64"

__all__ = [
    "Tensor", "tensor", "grad", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "detect_anomaly", "is_anomaly_enabled", "to_dot", "gradcheck", "gradgradcheck", "GradcheckError",
    "Generator", "manual_seed", "default_generator", "zeros", "ones", "full", "zeros_like", "ones_like",
    "arange", "randn", "rand", "ShapeError", "DTypeError", "GraphReleasedError", "InplaceModifiedError",
    "Op", "allocator", "backend", "float32", "float64", "__version__", "save", "load",
] + list(_ops_all)
