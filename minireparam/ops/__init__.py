"""Differentiable ops on Tensors, grouped by family, with numpy's names and keywords.

Each op is a forward and a VJP (see ``minireparam.autograd.node.Op``). ``registry`` holds
a gradcheck case for every differentiable function exported here.
"""
from .elementwise import (
    abs, add, asinh, clip, cos, divide, equal, exp, expm1, greater, greater_equal, isfinite, isnan,
    less, less_equal, log, log1p, logical_and, logical_not, logical_or, maximum, minimum, multiply,
    negative, not_equal, power, sign, sin, sqrt, square, subtract, where, zero_safe_multiply,
)
from .activation import gelu, log_softmax, relu, sigmoid, softmax, softplus, tanh
from .reduce import argmax, argmin, logsumexp, max, mean, min, std, sum, var
from .shape import (
    astype, broadcast_to, concatenate, copy, expand_dims, getitem, inplace_, one_hot, pad, reshape,
    setitem_, split, squeeze, stack, sum_to_shape, swapaxes, take_along_axis, transpose,
)
from .linalg import matmul

# Public functions whose results carry no gradient (exempt from the registry check).
NON_DIFFERENTIABLE = (
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and",
    "logical_or", "logical_not", "argmax", "argmin", "sign", "one_hot", "isfinite", "isnan",
)

DIFFERENTIABLE = (
    "add", "subtract", "multiply", "divide", "power", "negative", "matmul", "exp", "log", "log1p",
    "expm1", "sqrt", "square", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "softplus", "gelu",
    "asinh", "maximum", "minimum", "clip", "where", "sum", "mean", "var", "std", "max", "min",
    "logsumexp", "softmax", "log_softmax", "reshape", "transpose", "swapaxes", "expand_dims",
    "squeeze", "broadcast_to", "getitem", "concatenate", "stack", "split", "pad",
    "take_along_axis", "astype", "copy",
)

__all__ = list(DIFFERENTIABLE + NON_DIFFERENTIABLE)

from . import cases  # noqa: E402,F401  (registers a gradcheck case for every op above)
from . import fused  # noqa: E402,F401  (registers the fused LSTM cell)
