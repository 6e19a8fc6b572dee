"""Tensor constructors: constants and random tensors."""
import numpy as np

from . import random as _random
from .tensor import Tensor


def _make(array, requires_grad):
    return Tensor(array, requires_grad=requires_grad)


def zeros(shape, dtype=np.float32, requires_grad=False):
    return _make(np.zeros(shape, dtype=dtype), requires_grad)


def ones(shape, dtype=np.float32, requires_grad=False):
    return _make(np.ones(shape, dtype=dtype), requires_grad)


def full(shape, fill_value, dtype=np.float32, requires_grad=False):
    return _make(np.full(shape, fill_value, dtype=dtype), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return _make(np.zeros(t.shape, dtype=dtype or t.dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return _make(np.ones(t.shape, dtype=dtype or t.dtype), requires_grad)


def arange(start, stop=None, step=1, dtype=None):
    return Tensor(np.arange(start, stop, step, dtype=dtype))


def randn(*shape, dtype=np.float32, generator=None, requires_grad=False):
    """Standard normal samples of ``shape`` from ``generator`` (default: the global one)."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return _make(_random.resolve(generator).normal(shape, dtype), requires_grad)


def rand(*shape, dtype=np.float32, generator=None, requires_grad=False):
    """Uniform samples in [0, 1) of ``shape`` from ``generator`` (default: the global one)."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return _make(_random.resolve(generator).uniform(0.0, 1.0, shape, dtype), requires_grad)
