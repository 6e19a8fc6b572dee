"""Gradcheck cases for the core ops: one builder of random valid inputs per op.

Each builder draws shapes (including broadcasting pairs, size-1 dimensions and axis and
keepdims variants) and values inside the op's domain, away from kinks and poles.
"""
import numpy as np

from . import activation, elementwise, linalg, reduce, shape
from .registry import Case, register

# -- elementwise --------------------------------------------------------------------------


def _unary(function, low=-2.0, high=2.0, away_from=()):
    def build(draw):
        x = draw.array(draw.shape(), low, high, away_from)
        return Case(function, [x], f"shape {x.shape}")

    return build


def _binary(function, low=-2.0, high=2.0, b_low=None, b_high=None, b_away_from=()):
    def build(draw):
        out_shape = draw.shape(min_dims=1)
        a_shape, b_shape = draw.broadcastable_to(out_shape), draw.broadcastable_to(out_shape)
        if draw.boolean():
            a_shape, b_shape = out_shape, b_shape
        a = draw.array(a_shape, low, high)
        b = draw.array(b_shape, low if b_low is None else b_low, high if b_high is None else b_high, b_away_from)
        return Case(function, [a, b], f"shapes {a.shape} and {b.shape}")

    return build


def _scalar_operand(function):
    def build(draw):
        scalar = draw.sample([0.5, 2.0, -1.5])
        x = draw.array(draw.shape(), 0.5, 2.0)
        if draw.boolean():
            return Case(lambda t: function(t, scalar), [x], f"tensor op {scalar}")
        return Case(lambda t: function(scalar, t), [x], f"{scalar} op tensor")

    return build


def _binary_or_scalar(function, **kwargs):
    tensor_build, scalar_build = _binary(function, **kwargs), _scalar_operand(function)

    def build(draw):
        return scalar_build(draw) if draw.integers(0, 3) == 0 else tensor_build(draw)

    return build


register("add", _binary_or_scalar(elementwise.add))
register("subtract", _binary_or_scalar(elementwise.subtract))
register("multiply", _binary_or_scalar(elementwise.multiply))
register("divide", _binary_or_scalar(elementwise.divide, b_low=0.5, b_high=2.0), domain="divisor in [0.5, 2]")
register("power", _binary(elementwise.power, low=0.5, high=2.0), domain="base in [0.5, 2]")
register("negative", _unary(elementwise.negative))
register("exp", _unary(elementwise.exp))
register("expm1", _unary(elementwise.expm1))
register("log", _unary(elementwise.log, 0.2, 3.0), domain="x > 0")
register("log1p", _unary(elementwise.log1p, -0.7, 3.0), domain="x > -1")
register("sqrt", _unary(elementwise.sqrt, 0.2, 3.0), domain="x > 0")
register("square", _unary(elementwise.square))
register("abs", _unary(elementwise.abs, away_from=(0.0,)), domain="away from the kink at 0", second_order=True)
register("sin", _unary(elementwise.sin))
register("cos", _unary(elementwise.cos))
register("asinh", _unary(elementwise.asinh))
register("tanh", _unary(activation.tanh, -3.0, 3.0))
register("sigmoid", _unary(activation.sigmoid, -4.0, 4.0))
register("relu", _unary(activation.relu, away_from=(0.0,)), domain="away from the kink at 0")
register("softplus", _unary(activation.softplus, -4.0, 4.0))
register("maximum", _binary(elementwise.maximum), domain="ties have probability 0")
register("minimum", _binary(elementwise.minimum), domain="ties have probability 0")


def _build_gelu(draw):
    approximate = draw.sample(["none", "tanh"])
    x = draw.array(draw.shape(), -3.0, 3.0)
    return Case(lambda t: activation.gelu(t, approximate=approximate), [x], f"approximate={approximate}")


def _build_clip(draw):
    bounds = draw.sample([(-0.5, 0.5), (None, 0.3), (-0.3, None)])
    x = draw.array(draw.shape(), away_from=[b for b in bounds if b is not None])
    return Case(lambda t: elementwise.clip(t, *bounds), [x], f"bounds {bounds}")


def _build_where(draw):
    out_shape = draw.shape(min_dims=1)
    condition = draw.rng.random(draw.broadcastable_to(out_shape)) < 0.5
    a = draw.array(draw.broadcastable_to(out_shape))
    b = draw.array(out_shape)
    return Case(lambda x, y: elementwise.where(condition, x, y), [a, b], f"condition {condition.shape}")


register("gelu", _build_gelu)
register("clip", _build_clip, domain="away from the bounds")
register("where", _build_where)

# -- reductions ---------------------------------------------------------------------------


def _reduction(function, low=-2.0, high=2.0, min_side=1, **options):
    def build(draw):
        x = draw.array(draw.shape(min_side=min_side), low, high)
        axis, keepdims = draw.axis_and_keepdims(x.ndim)
        return Case(lambda t: function(t, axis=axis, keepdims=keepdims, **options), [x],
                    f"shape {x.shape} axis={axis} keepdims={keepdims}")

    return build


def _build_var(function):
    def build(draw):
        x = draw.array(draw.shape(min_dims=1, min_side=3))
        axis, keepdims = draw.axis_and_keepdims(x.ndim)
        if axis == ():
            axis = None  # an empty reduction leaves one element, too few for ddof=1
        ddof = draw.sample([0, 1])
        return Case(lambda t: function(t, axis=axis, keepdims=keepdims, ddof=ddof), [x],
                    f"shape {x.shape} axis={axis} ddof={ddof}")

    return build


register("sum", _reduction(reduce.sum))
register("mean", _reduction(reduce.mean))
register("var", _build_var(reduce.var))
register("std", _build_var(reduce.std))
register("max", _reduction(reduce.max), domain="no ties (tie sharing has its own test)")
register("min", _reduction(reduce.min), domain="no ties (tie sharing has its own test)")
register("logsumexp", _reduction(reduce.logsumexp, -3.0, 3.0))


def _softmax_family(function):
    def build(draw):
        x = draw.array(draw.shape(min_dims=1), -3.0, 3.0)
        axis = draw.integers(-x.ndim, x.ndim - 1)
        return Case(lambda t: function(t, axis=axis), [x], f"shape {x.shape} axis={axis}")

    return build


register("softmax", _softmax_family(activation.softmax))
register("log_softmax", _softmax_family(activation.log_softmax))

# -- shapes -------------------------------------------------------------------------------


def _build_reshape(draw):
    x = draw.array(draw.shape(min_dims=1))
    target = (-1,) if draw.boolean() else tuple(reversed(x.shape))
    return Case(lambda t: shape.reshape(t, target), [x], f"{x.shape} -> {target}")


def _build_transpose(draw):
    x = draw.array(draw.shape())
    axes = tuple(draw.rng.permutation(x.ndim)) if draw.boolean() else None
    return Case(lambda t: shape.transpose(t, axes), [x], f"{x.shape} axes={axes}")


def _build_swapaxes(draw):
    x = draw.array(draw.shape(min_dims=1))
    a, b = draw.integers(0, x.ndim - 1), draw.integers(-x.ndim, x.ndim - 1)
    return Case(lambda t: shape.swapaxes(t, a, b), [x], f"{x.shape} swap {a},{b}")


def _build_expand_dims(draw):
    x = draw.array(draw.shape())
    axis = draw.integers(-x.ndim - 1, x.ndim)
    return Case(lambda t: shape.expand_dims(t, axis), [x], f"{x.shape} axis={axis}")


def _build_squeeze(draw):
    dims = list(draw.shape(min_dims=1))
    dims.insert(draw.integers(0, len(dims)), 1)
    x = draw.array(tuple(dims))
    axis = None if draw.boolean() else dims.index(1)
    return Case(lambda t: shape.squeeze(t, axis), [x], f"{x.shape} axis={axis}")


def _build_broadcast_to(draw):
    target = draw.shape(min_dims=1)
    x = draw.array(draw.broadcastable_to(target))
    return Case(lambda t: shape.broadcast_to(t, target), [x], f"{x.shape} -> {target}")


def _build_getitem(draw):
    x = draw.array(draw.shape(min_dims=2, max_dims=3, min_side=2))
    kind = draw.sample(["slice", "int", "repeated_integers", "mask", "mixed"])
    if kind == "slice":
        index = (slice(1, None), slice(None, None, -1))
    elif kind == "int":
        index = (draw.integers(-x.shape[0], x.shape[0] - 1),)
    elif kind == "repeated_integers":
        index = (np.array([0, 1, 0, 0]),)  # repeated indices must accumulate
    elif kind == "mask":
        index = (draw.rng.random(x.shape) < 0.5,)
    else:
        index = (Ellipsis, np.array([1, 1, 0]))
    return Case(lambda t: shape.getitem(t, index), [x], f"{x.shape}[{kind}]")


def _build_concatenate(draw):
    base = list(draw.shape(min_dims=1))
    axis = draw.integers(0, len(base) - 1)
    arrays = []
    for _ in range(draw.integers(1, 3)):
        base[axis] = draw.integers(1, 3)
        arrays.append(draw.array(tuple(base)))
    return Case(lambda *ts: shape.concatenate(ts, axis=axis), arrays, f"{len(arrays)} parts axis={axis}")


def _build_stack(draw):
    item_shape = draw.shape()
    arrays = [draw.array(item_shape) for _ in range(draw.integers(1, 3))]
    axis = draw.integers(-len(item_shape) - 1, len(item_shape))
    return Case(lambda *ts: shape.stack(ts, axis=axis), arrays, f"{len(arrays)} of {item_shape} axis={axis}")


def _build_split(draw):
    x = draw.array(draw.shape(min_dims=1, min_side=2))
    axis = draw.integers(0, x.ndim - 1)
    points = sorted({draw.integers(0, x.shape[axis]) for _ in range(2)})

    def split_and_join(t):
        parts = shape.split(t, points, axis=axis)
        weights = [(i + 1.0) for i in range(len(parts))]  # weigh parts so a swapped slice is caught
        return shape.concatenate([p * w for p, w in zip(parts, weights)], axis=axis)

    return Case(split_and_join, [x], f"{x.shape} at {points} axis={axis}")


def _build_pad(draw):
    x = draw.array(draw.shape(min_dims=1))
    widths = [(draw.integers(0, 2), draw.integers(0, 2)) for _ in range(x.ndim)]
    return Case(lambda t: shape.pad(t, widths, constant_values=0.5), [x], f"{x.shape} pad {widths}")


def _build_take_along_axis(draw):
    x = draw.array(draw.shape(min_dims=1, min_side=2))
    axis = draw.integers(0, x.ndim - 1)
    index_shape = list(x.shape)
    index_shape[axis] = draw.integers(1, 4)
    indices = draw.rng.integers(0, x.shape[axis], size=index_shape)
    return Case(lambda t: shape.take_along_axis(t, indices, axis), [x], f"{x.shape} axis={axis}")


def _build_astype(draw):
    """Round trip through float32 on values and steps that float32 represents exactly."""
    x = np.round(draw.array(draw.shape(), contiguous=True) * 256.0) / 256.0
    return Case(lambda t: shape.astype(shape.astype(t, np.float32), np.float64), [x], "float64 -> float32 -> float64",
                eps=2.0 ** -12)


register("reshape", _build_reshape)
register("transpose", _build_transpose)
register("swapaxes", _build_swapaxes)
register("expand_dims", _build_expand_dims)
register("squeeze", _build_squeeze)
register("broadcast_to", _build_broadcast_to)
register("getitem", _build_getitem)
register("concatenate", _build_concatenate)
register("stack", _build_stack)
register("split", _build_split)
register("pad", _build_pad)
register("take_along_axis", _build_take_along_axis)
register("copy", _unary(shape.copy))
register("astype", _build_astype, domain="multiples of 2**-8, exact in float32")

# -- linear algebra -----------------------------------------------------------------------


def _build_matmul(draw):
    m, k, n = draw.integers(1, 4), draw.integers(1, 4), draw.integers(1, 4)
    kind = draw.sample(["2d", "batched", "broadcast", "vector_left", "vector_right", "both_vectors"])
    if kind == "2d":
        a_shape, b_shape = (m, k), (k, n)
    elif kind == "batched":
        batch = draw.integers(1, 3)
        a_shape, b_shape = (batch, m, k), (batch, k, n)
    elif kind == "broadcast":
        a_shape, b_shape = (2, 1, m, k), (3, k, n)
    elif kind == "vector_left":
        a_shape, b_shape = (k,), (2, k, n)
    elif kind == "vector_right":
        a_shape, b_shape = (2, m, k), (k,)
    else:
        a_shape, b_shape = (k,), (k,)
    a, b = draw.array(a_shape), draw.array(b_shape)
    return Case(linalg.matmul, [a, b], f"{a.shape} @ {b.shape}")


register("matmul", _build_matmul)
