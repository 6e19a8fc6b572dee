"""The op registry: every differentiable function with a builder of random valid inputs.

Each entry names a public differentiable function, states the input domain it needs and
gives a ``build(draw)`` function that returns a ``Case``: a function of Tensors and the
float arrays to call it with. The tests gradcheck every entry over shapes drawn by
hypothesis, and ``python -m minireparam.gradcheck`` prints a table over all of them.

Higher layers (nn, distributions) call ``register`` when they are imported, so the core
never imports them.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Case:
    """One gradcheck case: ``function(*tensors)`` with tensors made from ``inputs``."""

    function: Callable
    inputs: list
    description: str = ""
    eps: float = None  # a finite-difference step for this case, when the default does not suit


@dataclass
class OpSpec:
    """A registry entry.

    Attributes:
        name: the public name (``exp``, ``nn.functional.cross_entropy``, ``nn.LSTM``).
        build: ``build(draw) -> Case``, drawing shapes and values through ``draw``.
        domain: the inputs' domain in words (for example "x > 0", "away from 0").
        second_order: whether gradgradcheck applies (smooth ops).
        exports: the public names this entry covers (defaults to ``name`` alone).
    """

    name: str
    build: Callable
    domain: str = "all reals"
    second_order: bool = True
    exports: tuple = field(default_factory=tuple)


REGISTRY = {}


def register(name, build, domain="all reals", second_order=True, exports=None):
    """Add an entry; registering the same name twice replaces it (modules may be reloaded)."""
    REGISTRY[name] = OpSpec(name, build, domain, second_order, tuple(exports or (name,)))
    return REGISTRY[name]


def covered_names():
    """Return the set of public names that some registry entry gradchecks."""
    return {export for spec in REGISTRY.values() for export in spec.exports}


class RandomDraw:
    """Draws shapes, options and arrays from a numpy Generator.

    The tests subclass it to draw the discrete choices through hypothesis instead, so the
    same builders serve the command-line table and the property tests.
    """

    def __init__(self, rng):
        self.rng = rng

    # Discrete choices (overridden by the hypothesis-backed subclass).

    def integers(self, low, high):
        """Draw an int in [low, high] (both included)."""
        return int(self.rng.integers(low, high + 1))

    def boolean(self):
        return bool(self.rng.integers(0, 2))

    def sample(self, options):
        options = list(options)
        return options[self.integers(0, len(options) - 1)]

    # Shapes built from the choices above.

    def shape(self, min_dims=0, max_dims=3, min_side=1, max_side=4):
        return tuple(self.integers(min_side, max_side) for _ in range(self.integers(min_dims, max_dims)))

    def broadcastable_to(self, shape):
        """Draw a shape that broadcasts to ``shape``: some leading dims dropped, some sides set to 1."""
        dropped = self.integers(0, len(shape))
        return tuple(1 if self.boolean() else n for n in shape[dropped:])

    def axis_and_keepdims(self, ndim):
        """Draw an ``axis`` argument (None, an int or a tuple) and a ``keepdims`` flag."""
        keepdims = self.boolean()
        if ndim == 0:
            return None, keepdims
        kind = self.sample(["none", "int", "negative", "tuple"])
        if kind == "none":
            return None, keepdims
        if kind == "int":
            return self.integers(0, ndim - 1), keepdims
        if kind == "negative":
            return -self.integers(1, ndim), keepdims
        axes = tuple(a for a in range(ndim) if self.boolean())
        return axes, keepdims

    # Values.

    def array(self, shape, low=-2.0, high=2.0, away_from=(), min_gap=0.1, contiguous=None):
        """Draw a float64 array of uniform values in [low, high), at least ``min_gap`` from ``away_from``.

        Unless ``contiguous`` is given, the array is sometimes a non-contiguous view
        (a strided slice or a transposed layout) with the same values.
        """
        values = self.rng.uniform(low, high, size=shape)
        for point in away_from:
            near = np.abs(values - point) < min_gap
            values = np.where(near, point + np.where(values >= point, min_gap, -min_gap) * 2, values)
        if contiguous is None:
            contiguous = self.boolean()
        return values if contiguous else _non_contiguous_copy(values, self.boolean())


def _non_contiguous_copy(values, strided):
    """Return an array equal to ``values`` whose memory layout is not C-contiguous."""
    if values.ndim == 0:
        return values
    if strided or values.ndim == 1:
        wide = np.zeros(values.shape[:-1] + (2 * values.shape[-1],))
        wide[..., ::2] = values
        return wide[..., ::2]
    return np.asfortranarray(values)
