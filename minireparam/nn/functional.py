"""Stateless neural-network functions: activations, layers' math, losses and attention.

Names, arguments and layouts follow ``torch.nn.functional``: losses take classes on axis 1
(inputs of shape (N, C, ...)), and functions that take an axis accept ``axis=`` or its
alias ``dim=``. Everything is built from differentiable ops, so gradients come from the
tape. Three functions have ops of their own: ``cross_entropy`` runs the backend's fused
kernel (C or numpy), ``binary_cross_entropy`` has a VJP that stays finite at 0 and 1, and
``layer_norm`` is one node with a closed-form VJP.

Randomness (``dropout``) comes from ``generator`` or the default generator.
"""
import math
import numbers
import warnings

import numpy as np

from .. import backend as _backend
from .. import ops
from .. import random as _random
from ..autograd.node import Op
from ..errors import DTypeError, ShapeError
from ..ops._util import to_tensor
from ..ops.activation import SoftmaxBackward
from ..tensor import Tensor

__all__ = [
    "relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout", "linear", "embedding",
    "layer_norm", "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "scaled_dot_product_attention",
]

# Exports whose results carry no gradient (none at the moment): the registry test checks
# that every other name in __all__ has a gradcheck entry.
NON_DIFFERENTIABLE = ()

_REDUCTIONS = ("mean", "sum", "none")

# binary_cross_entropy clamps log(p) and log(1 - p) from below at this value, as PyTorch
# does, so probabilities of exactly 0 or 1 give a finite loss (at most 100 per element).
BCE_LOG_CLAMP = -100.0


# -- argument helpers ---------------------------------------------------------------------


def _resolve_axis(axis, dim, function, default=None):
    """Return the axis from ``axis=`` or its PyTorch alias ``dim=`` (not both)."""
    if axis is not None and dim is not None and axis != dim:
        raise TypeError(f"{function}: got axis={axis} and dim={dim}; pass only one (dim is an alias of axis)")
    chosen = axis if axis is not None else dim
    return default if chosen is None else chosen


def _check_reduction(reduction, function):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{function}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss, reduction):
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


# -- activations --------------------------------------------------------------------------


def relu(input):
    """max(x, 0) elementwise; the derivative at 0 is 0."""
    return ops.relu(input)


def gelu(input, approximate="none"):
    """GELU: x·Φ(x) exactly (``approximate="none"``) or with PyTorch's tanh formula (``"tanh"``)."""
    return ops.gelu(input, approximate=approximate)


def sigmoid(input):
    return ops.sigmoid(input)


def tanh(input):
    return ops.tanh(input)


def softmax(input, axis=None, dim=None):
    """exp(x) / Σ exp(x) along ``axis`` (alias ``dim``, default -1).

    A slice that is entirely -inf gives zeros (a query that may attend to nothing).
    """
    return ops.softmax(input, axis=_resolve_axis(axis, dim, "softmax", -1))


def log_softmax(input, axis=None, dim=None):
    """x − logsumexp(x) along ``axis`` (alias ``dim``, default -1)."""
    return ops.log_softmax(input, axis=_resolve_axis(axis, dim, "log_softmax", -1))


# -- dropout ------------------------------------------------------------------------------


def dropout(input, p=0.5, training=True, generator=None):
    """Zero each element with probability ``p`` and scale the rest by 1/(1 − p).

    Args:
        input: a Tensor of any shape.
        p: the drop probability, in [0, 1]. With p = 1 the output is all zeros.
        training: when False (or p = 0) the input is returned unchanged.
        generator: the random stream of the mask (default: the global generator).

    Returns:
        A Tensor of the input's shape; the gradient passes only through kept elements.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    input = to_tensor(input)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * np.zeros((), dtype=input.dtype)
    uniform = _random.resolve(generator).uniform(0.0, 1.0, input.shape, np.float64)
    scaled_mask = np.where(uniform >= p, 1.0 / (1.0 - p), 0.0).astype(input.dtype)
    return input * scaled_mask


# -- layers' math -------------------------------------------------------------------------


class _Linear(Op):
    """y = x·Wᵀ + b as one node: the bias is written first and the GEMM accumulates onto it.

    Inputs: x (..., in), W (out, in) and, when given, b (out,). Leading dimensions of x
    are flattened into the R rows of one GEMM. The VJP over the rows:
        dx = g·W,  dW = gᵀ·x,  db = Σ_rows g
    A plain backward runs it on the saved arrays with the backend's GEMM (``vjp_arrays``).
    Under ``create_graph=True``, ``vjp`` computes it with Tensor ops, which are recorded
    and so differentiable again.
    """

    name = "linear"

    def forward(self, x, weight, *bias):
        self.rows = math.prod(x.shape[:-1])  # not reshape(-1, ...): it fails on empty inputs
        rows = x.reshape(self.rows, weight.shape[1])
        out = np.empty((self.rows, weight.shape[0]), dtype=x.dtype)
        if bias:
            out[...] = bias[0]
        _backend.current().gemm(rows, weight, out, trans_b=True, beta=1.0 if bias else 0.0)

        self.save_input("x", 0)
        self.save_input("weight", 1)
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def vjp_arrays(self, g):
        matmul = _backend.current().matmul
        x, weight = self.saved_data("x"), self.saved_data("weight")
        g_rows = g.reshape(self.rows, weight.shape[0])
        grad_x = grad_weight = grad_bias = None
        if self.parents[0] is not None:
            grad_x = matmul(g_rows, weight).reshape(x.shape)
        if self.parents[1] is not None:
            grad_weight = matmul(g_rows, x.reshape(self.rows, weight.shape[1]), trans_a=True)
        if len(self.parents) == 3 and self.parents[2] is not None:
            grad_bias = g_rows.sum(axis=0)
        return (grad_x, grad_weight, grad_bias)[:len(self.parents)]

    def vjp(self, g):
        x, weight = self.saved("x"), self.saved("weight")
        g_rows = ops.reshape(g, (self.rows, weight.shape[0]))
        grad_x = ops.reshape(ops.matmul(g_rows, weight), x.shape)
        grad_weight = ops.matmul(ops.transpose(g_rows), ops.reshape(x, (self.rows, weight.shape[1])))
        grads = (grad_x, grad_weight, ops.sum(g_rows, axis=0))
        return grads[:len(self.parents)]


def linear(input, weight, bias=None):
    """y = x·Wᵀ + b.

    Args:
        input: (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.

    Returns:
        (..., out_features). Leading dimensions are flattened into one GEMM, so the
        weight gradient is one GEMM as well. All operands must have one float dtype, as
        in PyTorch: a float64 input into a float32 layer raises DTypeError.
    """
    input, weight = to_tensor(input), to_tensor(weight)
    if weight.ndim != 2:
        raise ShapeError(f"linear: weight must have shape (out_features, in_features), got {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(
            f"linear: input of shape {input.shape} does not fit weight of shape {weight.shape}: the last "
            f"dimension of the input must be in_features = {weight.shape[1]}"
        )
    operands = [input, weight]
    if bias is not None:
        bias = to_tensor(bias)
        if bias.shape != (weight.shape[0],):
            raise ShapeError(
                f"linear: bias has shape {bias.shape}, expected (out_features,) = ({weight.shape[0]},) for weight "
                f"of shape {weight.shape}"
            )
        operands.append(bias)
    if input.dtype.kind != "f":
        raise DTypeError(f"linear: the input must be float32 or float64, got {input.dtype}; convert it with .astype()")
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and tensor.dtype != input.dtype:
            raise DTypeError(
                f"linear: the input is {input.dtype} but the {name} is {tensor.dtype}; convert the input with "
                ".astype() or the module with .float() or .double()"
            )
    return _Linear().apply(*operands)


class _MaskGradient(Op):
    """Identity in the forward; the VJP multiplies the cotangent by a constant mask."""

    name = "mask_gradient"

    def __init__(self, mask):
        self.mask = mask

    def forward(self, x):
        return x

    def vjp(self, g):
        return (g * self.mask,)


def embedding(input, weight, padding_idx=None):
    """Look up rows of ``weight``: out[..., :] = weight[input[...], :].

    Args:
        input: integer indices of any shape, each in [0, num_embeddings).
        weight: (num_embeddings, embedding_dim).
        padding_idx: an index whose row receives no gradient (negative counts from the end).

    Returns:
        input.shape + (embedding_dim,). The weight gradient is accumulated into one
        buffer with repeated indices summed.
    """
    weight = to_tensor(weight)
    indices = input.data if isinstance(input, Tensor) else np.asarray(input)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {indices.dtype}")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must have shape (num_embeddings, embedding_dim), got {weight.shape}")
    count = weight.shape[0]
    if indices.size and (indices.min() < 0 or indices.max() >= count):
        raise IndexError(
            f"embedding: indices must lie in [0, {count}), got values from {indices.min()} to {indices.max()}"
        )
    out = ops.getitem(weight, indices)
    if padding_idx is not None:
        padding_idx = _normalize_padding_idx(padding_idx, count)
        keep = (indices != padding_idx)[..., None].astype(weight.dtype)
        out = _MaskGradient(keep).apply(out)
    return out


def _normalize_padding_idx(padding_idx, count):
    if not -count <= padding_idx < count:
        raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for {count} embeddings")
    return padding_idx % count


class _LayerNorm(Op):
    """LayerNorm over the last ``n`` elements of every row, as one node.

    Inputs: x (..., n) viewed as rows (R, n), then weight (n,) and bias (n,) when given.
    Saved values: x̂ = (x − mean)·rstd and rstd = 1/√(var + eps), one per row.

    The VJP of y = x̂·w + b, with gw = g·w and means taken over each row:
        dx = rstd · (gw − mean(gw) − x̂ · mean(gw · x̂)),  dw = Σ_rows g·x̂,  db = Σ_rows g
    A plain backward evaluates it on the saved arrays (``vjp_arrays``); under
    ``create_graph=True`` it is written with Tensor ops from x (``vjp``), so higher
    derivatives flow through it.
    """

    name = "layer_norm"
    vjp_arrays_in_vjp_order = False

    def __init__(self, count, eps, has_weight, has_bias):
        self.count = count
        self.eps = eps
        self.has_weight = has_weight
        self.has_bias = has_bias

    def forward(self, x, *affine):
        rows = x.reshape(x.size // self.count if self.count else 0, self.count)
        x_hat = rows - rows.mean(axis=1, keepdims=True) if x.size else rows.copy()
        rstd = np.mean(x_hat * x_hat, axis=1, keepdims=True) if x.size else x_hat[:, :1].copy()
        rstd += self.eps
        np.sqrt(rstd, out=rstd)
        np.reciprocal(rstd, out=rstd)
        x_hat *= rstd

        self.save_input("x", 0)
        self.save_array("x_hat", x_hat)
        self.save_array("rstd", rstd)
        if self.has_weight:
            self.save_input("weight", 1)
        out = x_hat * affine[0].reshape(-1) if self.has_weight else x_hat.copy()
        if self.has_bias:
            out += affine[-1].reshape(-1)
        return out.reshape(x.shape)

    def vjp_arrays(self, g):
        x_hat, rstd = self.saved_data("x_hat"), self.saved_data("rstd")
        g_rows = g.reshape(x_hat.shape)
        grads = []

        # weight: Σ_rows g·x̂. The same product, times w, is gw·x̂ for dx below.
        g_x_hat = g_rows * x_hat
        if self.has_weight:
            weight = self.saved_data("weight").reshape(-1)
            grad_weight = g_x_hat.sum(axis=0)
            g_x_hat *= weight
            g_w = g_rows * weight
        else:
            g_w = g_rows.copy()

        # dx = rstd · (gw − mean(gw) − x̂ · mean(gw·x̂)), reusing g_x_hat for the last term.
        if g_w.size:  # an empty input has no means to take (and no gradient to fill)
            mean_g_x_hat = g_x_hat.mean(axis=1, keepdims=True)
            g_w -= g_w.mean(axis=1, keepdims=True)
            np.multiply(x_hat, mean_g_x_hat, out=g_x_hat)
            g_w -= g_x_hat
            g_w *= rstd
        grads.append(g_w.reshape(g.shape))

        if self.has_weight:
            grads.append(grad_weight.reshape(self.input_meta[1][0]))
        if self.has_bias:
            grads.append(g_rows.sum(axis=0).reshape(self.input_meta[-1][0]))
        return tuple(grads)

    def vjp(self, g):
        x = self.saved("x")
        shape = x.shape
        row_shape = (x.size // self.count if self.count else 0, self.count)
        rows = ops.reshape(x, row_shape)
        centered = rows - ops.mean(rows, axis=1, keepdims=True)
        rstd = 1.0 / ops.sqrt(ops.mean(centered * centered, axis=1, keepdims=True) + self.eps)
        x_hat = centered * rstd
        g_rows = ops.reshape(g, row_shape)
        grads = []

        g_w = g_rows
        if self.has_weight:
            weight = self.saved("weight")
            g_w = g_rows * ops.reshape(weight, (-1,))
        mean_g_w = ops.mean(g_w, axis=1, keepdims=True)
        mean_g_w_x_hat = ops.mean(g_w * x_hat, axis=1, keepdims=True)
        grads.append(ops.reshape(rstd * (g_w - mean_g_w - x_hat * mean_g_w_x_hat), shape))

        if self.has_weight:
            grads.append(ops.reshape(ops.sum(g_rows * x_hat, axis=0), weight.shape))
        if self.has_bias:
            grads.append(ops.reshape(ops.sum(g_rows, axis=0), self.input_meta[-1][0]))
        return tuple(grads)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the last dimensions to mean 0 and variance 1, then scale and shift.

    y = (x − mean) / √(var + eps) · weight + bias, with the biased variance (divide by n),
    over the trailing dimensions given by ``normalized_shape``. One tape node with a
    hand-written VJP (see ``_LayerNorm``).

    Args:
        input: (..., *normalized_shape).
        normalized_shape: an int or a tuple, the trailing dimensions to normalize over.
        weight, bias: None or of shape ``normalized_shape``.
        eps: added to the variance before the square root.

    Returns:
        A Tensor of the input's shape.
    """
    input = to_tensor(input)
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    count = len(normalized_shape)
    if count == 0 or input.shape[-count:] != normalized_shape:
        raise ShapeError(
            f"layer_norm: normalized_shape {normalized_shape} must match the trailing dimensions of the "
            f"input of shape {input.shape}"
        )
    affine = []
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is None:
            continue
        tensor = to_tensor(tensor)
        if tensor.shape != normalized_shape:
            raise ShapeError(
                f"layer_norm: {name} has shape {tensor.shape}, expected normalized_shape {normalized_shape}"
            )
        if tensor.dtype != input.dtype:
            raise TypeError(
                f"layer_norm: {name} is {tensor.dtype} but the input is {input.dtype}; convert one with .astype()"
            )
        affine.append(tensor)
    if input.dtype.kind != "f":
        raise TypeError(f"layer_norm: the input must be float32 or float64, got {input.dtype}")
    size = math.prod(normalized_shape)
    return _LayerNorm(size, eps, weight is not None, bias is not None).apply(input, *affine)


# -- classification losses ----------------------------------------------------------------


class _ClassLayout:
    """Moves the class axis (axis 1, or axis 0 of a 1-D input) last and flattens to rows (M, C)."""

    def __init__(self, shape):
        self.shape = shape
        if len(shape) == 1:
            self.permutation = (0,)
        else:
            self.permutation = (0,) + tuple(range(2, len(shape))) + (1,)
        self.inverse = tuple(np.argsort(self.permutation))
        self.moved_shape = tuple(shape[axis] for axis in self.permutation)
        self.classes = shape[0] if len(shape) == 1 else shape[1]

    def rows_array(self, array):
        return np.ascontiguousarray(np.transpose(array, self.permutation)).reshape(-1, self.classes)

    def unrows_array(self, rows):
        return np.transpose(rows.reshape(self.moved_shape), self.inverse)

    def rows(self, tensor):
        return ops.reshape(ops.transpose(tensor, self.permutation), (-1, self.classes))

    def unrows(self, rows):
        return ops.transpose(ops.reshape(rows, self.moved_shape), self.inverse)


def _check_class_target(input, target, function):
    """Check an index target against an input of shape (C,), (N, C) or (N, C, d1, ...)."""
    if input.ndim == 0:
        raise ShapeError(f"{function}: the input must have a class axis, got a 0-d tensor")
    expected = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ShapeError(
            f"{function}: a class-index target for input of shape {input.shape} must have shape {expected} "
            f"(the input's shape without the class axis 1), got {target.shape}"
        )


def _check_target_range(target, classes, ignore_index, function):
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= classes))
    if bad.any():
        value = target[bad].flat[0]
        raise IndexError(
            f"{function}: target {value} is out of range for {classes} classes (valid targets are 0 to "
            f"{classes - 1}, or ignore_index={ignore_index})"
        )
    return valid


def _as_index_array(target):
    array = target.data if isinstance(target, Tensor) else np.asarray(target)
    return array


class _CrossEntropy(Op):
    """Cross-entropy from logits with index targets, through the backend's fused kernel.

    The forward keeps the per-row logsumexp (``lse``), so the backward needs no second
    softmax pass. The VJP is the op ``_CrossEntropyBackward``, which is differentiable in
    turn, so second derivatives pass through.
    """

    name = "cross_entropy"

    def __init__(self, target_rows, ignore_index, reduction, label_smoothing, layout, target_shape, valid_count):
        self.target_rows = target_rows
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.layout = layout
        self.target_shape = target_shape
        self.valid_count = valid_count

    def forward(self, x):
        logits = self.layout.rows_array(x)
        loss, lse = _backend.current().cross_entropy(
            logits, self.target_rows, ignore_index=self.ignore_index, reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )
        self.save_input("x", 0)
        self.save_array("lse", lse)
        loss = np.asarray(loss, dtype=x.dtype)
        if self.reduction == "none":
            return loss.reshape(self.target_shape)
        if self.reduction == "mean" and self.valid_count == 0:
            return np.asarray(np.nan, dtype=x.dtype)  # 0 / 0, as in PyTorch
        return loss.reshape(())

    def vjp(self, g):
        backward = _CrossEntropyBackward(self)
        return (backward.apply(self.saved("x"), g),)


class _CrossEntropyBackward(Op):
    """dlogits = scale_r · (softmax(x_r) − q_r) per row r, with q the smoothed one-hot target.

    The row scale is the upstream gradient (per row for reduction="none"), divided by
    the number of non-ignored rows for "mean", and 0 on ignored rows.
    """

    name = "cross_entropy_backward"

    def __init__(self, forward_op):
        self.forward_op = forward_op
        self.lse = forward_op.saved("lse").data

    def forward(self, x, g):
        spec = self.forward_op
        self.save_input("x", 0)
        self.save_input("g", 1)
        if spec.reduction == "mean" and spec.valid_count == 0:
            return np.zeros_like(x)
        grad_loss = g.reshape(-1) if spec.reduction == "none" else g.reshape(())
        logits = spec.layout.rows_array(x)
        dlogits = _backend.current().cross_entropy_backward(
            logits, spec.target_rows, self.lse, grad_loss, ignore_index=spec.ignore_index,
            reduction=spec.reduction, label_smoothing=spec.label_smoothing,
        )
        return np.ascontiguousarray(spec.layout.unrows_array(np.asarray(dlogits, dtype=x.dtype)))

    def vjp(self, c):
        spec = self.forward_op
        x, g = self.saved("x"), self.saved("g")
        if spec.reduction == "mean" and spec.valid_count == 0:
            return ops.multiply(c, 0.0), ops.multiply(g, 0.0)
        layout = spec.layout
        valid = (spec.target_rows != spec.ignore_index).astype(x.dtype)
        probabilities = ops.softmax(layout.rows(x), axis=-1)
        c_rows = layout.rows(c)

        scale = ops.reshape(g, (-1,)) if spec.reduction == "none" else g
        if spec.reduction == "mean":
            scale = scale * (1.0 / spec.valid_count)
        scale = ops.reshape(scale * valid, (-1, 1))
        c_dot_p = ops.sum(c_rows * probabilities, axis=-1, keepdims=True)
        grad_x = layout.unrows(scale * probabilities * (c_rows - c_dot_p))

        smoothed = _smoothed_one_hot(spec.target_rows, layout.classes, spec.label_smoothing, x.dtype)
        per_row = ops.sum(c_rows * (probabilities - smoothed), axis=-1) * valid
        if spec.reduction == "none":
            grad_g = ops.reshape(per_row, g.shape)
        else:
            grad_g = ops.sum(per_row)
            if spec.reduction == "mean":
                grad_g = grad_g * (1.0 / spec.valid_count)
        return grad_x, grad_g


def _smoothed_one_hot(target_rows, classes, label_smoothing, dtype):
    """q = (1 − ε)·onehot(t) + ε/C per row; ignored rows get any valid class (their scale is 0)."""
    safe = np.where((target_rows >= 0) & (target_rows < classes), target_rows, 0)
    q = np.full((target_rows.shape[0], classes), label_smoothing / classes, dtype=dtype)
    q[np.arange(target_rows.shape[0]), safe] += 1.0 - label_smoothing
    return q


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits and class targets (log_softmax followed by nll_loss).

    Args:
        input: logits of shape (C,), (N, C) or (N, C, d1, ...): classes on axis 1.
        target: class indices of shape (), (N,) or (N, d1, ...), or class probabilities of
            the input's shape (a float array).
        weight: optional (C,) class weights (then the op is composed from log_softmax).
        ignore_index: index targets equal to it add nothing to the loss or the count.
        reduction: "mean" (over non-ignored targets, weighted by ``weight``), "sum" or "none".
        label_smoothing: ε in [0, 1]; the target becomes (1 − ε)·onehot + ε/C.

    Returns:
        A scalar Tensor, or the target's shape (index targets) or the input's shape without
        axis 1 (probability targets) for reduction="none". A mean over zero non-ignored
        targets is NaN (0/0, as in PyTorch) and its gradient is 0.

    Index targets without class weights run the backend's fused kernel; everything else is
    composed from differentiable ops.
    """
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    input = to_tensor(input)
    if input.dtype.kind != "f":
        raise TypeError(f"cross_entropy: the input must be floating-point logits, got dtype {input.dtype}")
    target_array = _as_index_array(target)
    if target_array.dtype.kind == "f":
        return _cross_entropy_probabilities(input, to_tensor(target), weight, reduction, label_smoothing)

    _check_class_target(input, target_array, "cross_entropy")
    layout = _ClassLayout(input.shape)
    target_rows = np.ascontiguousarray(target_array.reshape(-1).astype(np.int64))
    valid = _check_target_range(target_rows, layout.classes, ignore_index, "cross_entropy")
    if weight is not None:
        return _weighted_cross_entropy(input, target_array, weight, ignore_index, reduction, label_smoothing)
    op = _CrossEntropy(target_rows, ignore_index, reduction, label_smoothing, layout, target_array.shape,
                       int(valid.sum()))
    return op.apply(input)


def _class_axis(input):
    return 0 if input.ndim == 1 else 1


def _broadcast_class_weight(weight, input):
    """Reshape (C,) class weights to broadcast along the input's class axis."""
    weight = to_tensor(weight)
    classes = input.shape[_class_axis(input)]
    if weight.shape != (classes,):
        raise ShapeError(f"class weight must have shape ({classes},) for input of shape {input.shape}, got {weight.shape}")
    shape = [1] * input.ndim
    shape[_class_axis(input)] = classes
    return ops.reshape(weight, tuple(shape))


def _weighted_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing):
    log_probabilities = ops.log_softmax(input, axis=_class_axis(input))
    nll = nll_loss(log_probabilities, target, weight, ignore_index, reduction)
    if label_smoothing == 0.0:
        return nll
    # The smoothing term is -Σ_c w_c·log p_c per target, normalized like the nll term.
    valid = target != ignore_index
    per_target = -ops.sum(log_probabilities * _broadcast_class_weight(weight, input), axis=_class_axis(input))
    per_target = ops.where(valid, per_target, 0.0)
    if reduction == "none":
        smooth = per_target
    elif reduction == "sum":
        smooth = ops.sum(per_target)
    else:
        target_weight = ops.getitem(to_tensor(weight), np.where(valid, target, 0)) * valid.astype(input.dtype)
        if not valid.any():
            return nll  # NaN with gradient 0, as the nll term already is
        smooth = ops.sum(per_target) / ops.sum(target_weight)
    classes = input.shape[_class_axis(input)]
    return nll * (1.0 - label_smoothing) + smooth * (label_smoothing / classes)


def _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing):
    if target.shape != input.shape:
        raise ShapeError(
            f"cross_entropy: a probability target must have the input's shape {input.shape}, got {target.shape}"
        )
    axis = _class_axis(input)
    classes = input.shape[axis]
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
    terms = ops.log_softmax(input, axis=axis) * target
    if weight is not None:
        terms = terms * _broadcast_class_weight(weight, input)
    per_sample = -ops.sum(terms, axis=axis)
    return _reduce(per_sample, reduction)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood: −input[n, target[n], ...] · weight[target[n]].

    Args:
        input: log-probabilities of shape (C,), (N, C) or (N, C, d1, ...).
        target: class indices of shape (), (N,) or (N, d1, ...).
        weight: optional (C,) class weights.
        ignore_index: targets equal to it contribute 0 and are left out of the mean.
        reduction: "mean" divides by the summed weights of the non-ignored targets
            (NaN, with gradient 0, when there are none); "sum"; or "none".
    """
    _check_reduction(reduction, "nll_loss")
    input = to_tensor(input)
    target = _as_index_array(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold integer class indices, got dtype {target.dtype}")
    _check_class_target(input, target, "nll_loss")
    axis = _class_axis(input)
    classes = input.shape[axis]
    valid = _check_target_range(target, classes, ignore_index, "nll_loss")
    safe_target = np.where(valid, target, 0).astype(np.int64)

    picked = ops.squeeze(ops.take_along_axis(input, np.expand_dims(safe_target, axis), axis), axis)
    if weight is None:
        target_weight = valid.astype(input.dtype)
    else:
        weights = to_tensor(weight)
        if weights.shape != (classes,):
            raise ShapeError(f"nll_loss: weight must have shape ({classes},), got {weights.shape}")
        target_weight = ops.getitem(weights, safe_target) * valid.astype(input.dtype)
    losses = -picked * target_weight

    if reduction == "none":
        return losses
    total = ops.sum(losses)
    if reduction == "sum":
        return total
    total_weight = target_weight.data.sum() if isinstance(target_weight, Tensor) else target_weight.sum()
    if total_weight == 0:
        return total * 0.0 + np.asarray(np.nan, dtype=input.dtype)  # 0 / 0 as in PyTorch, gradient 0
    return total / target_weight.sum() if isinstance(target_weight, Tensor) else total * (1.0 / total_weight)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error (input − target)², reduced by ``reduction``; both sides get gradients."""
    _check_reduction(reduction, "mse_loss")
    input, target = to_tensor(input), to_tensor(target)
    if input.shape != target.shape:
        warnings.warn(
            f"mse_loss: input shape {input.shape} and target shape {target.shape} differ and will be "
            "broadcast, which is rarely intended",
            stacklevel=2,
        )
    difference = input - target
    return _reduce(difference * difference, reduction)


class _BinaryCrossEntropy(Op):
    """−[t·log p + (1 − t)·log(1 − p)] with both logs clamped at ``BCE_LOG_CLAMP``.

    The VJP in p is (p − t) / max(p·(1 − p), 1e-12), PyTorch's formula: the exact
    derivative inside (0, 1), and finite at p = 0 and p = 1.
    """

    name = "binary_cross_entropy"

    def forward(self, p, t):
        self.save_input("p", 0)
        self.save_input("t", 1)
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), BCE_LOG_CLAMP)
            log_q = np.maximum(np.log1p(-p), BCE_LOG_CLAMP)
        return -(t * log_p + (1.0 - t) * log_q)

    def vjp(self, g):
        p, t = self.saved("p"), self.saved("t")
        grad_p = grad_t = None
        if self.parents[0] is not None:
            grad_p = g * (p - t) / ops.maximum(p * (1.0 - p), 1e-12)
        if self.parents[1] is not None:
            log_p = ops.clip(ops.log(p), a_min=BCE_LOG_CLAMP)
            log_q = ops.clip(ops.log1p(-p), a_min=BCE_LOG_CLAMP)
            grad_t = g * (log_q - log_p)
        return grad_p, grad_t


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy on probabilities in [0, 1].

    log(p) and log(1 − p) are clamped at −100 (``BCE_LOG_CLAMP``, as in PyTorch), so
    p = 0 or 1 gives a finite loss of at most 100 per element and a finite gradient,
    never NaN. For logits, ``binary_cross_entropy_with_logits`` is exact instead.

    Args:
        input: probabilities of any shape.
        target: values in [0, 1] of the input's shape.
        weight: optional per-element weights that broadcast to the input's shape.
        reduction: "mean", "sum" or "none".
    """
    _check_reduction(reduction, "binary_cross_entropy")
    input, target = to_tensor(input), to_tensor(target)
    if input.shape != target.shape:
        raise ShapeError(
            f"binary_cross_entropy: target shape {target.shape} must equal input shape {input.shape}"
        )
    if input.size and (np.nanmin(input.data) < 0.0 or np.nanmax(input.data) > 1.0):
        raise ValueError(
            f"binary_cross_entropy: input probabilities must lie in [0, 1], got values from "
            f"{np.nanmin(input.data)} to {np.nanmax(input.data)}; for logits use binary_cross_entropy_with_logits"
        )
    if target.dtype != input.dtype:
        target = ops.astype(target, input.dtype)
    loss = _BinaryCrossEntropy().apply(input, target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """Binary cross-entropy on logits z, exact for any z (including ±1e4).

    loss = (1 − t)·z + (1 + (pos_weight − 1)·t)·softplus(−z), which equals
    −[pos_weight·t·log σ(z) + (1 − t)·log(1 − σ(z))] without ever forming σ(z). The
    gradient in z is (1 − t) − (1 + (pos_weight − 1)·t)·σ(−z); for t = 1 and z = −50
    it is −1.0 exactly.

    Args:
        input: logits of any shape.
        target: values in [0, 1] of the input's shape.
        weight: optional per-element weights that broadcast to the input's shape.
        reduction: "mean", "sum" or "none".
        pos_weight: optional weight of the positive term, broadcast along the last axis
            (one value per class for multi-label problems).
    """
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    input, target = to_tensor(input), to_tensor(target)
    if input.shape != target.shape:
        raise ShapeError(
            f"binary_cross_entropy_with_logits: target shape {target.shape} must equal input shape {input.shape}"
        )
    softplus_of_negative = ops.softplus(-input)
    if pos_weight is None:
        loss = (1.0 - target) * input + softplus_of_negative
    else:
        log_weight = 1.0 + (pos_weight - 1.0) * target
        loss = (1.0 - target) * input + log_weight * softplus_of_negative
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


# -- attention ----------------------------------------------------------------------------


def causal_mask(query_length, key_length):
    """Boolean (L, S) mask, True where query i may attend to key j (j <= i), as PyTorch's is_causal."""
    return np.tril(np.ones((query_length, key_length), dtype=bool))


class _ScaledMaskedSoftmax(Op):
    """Attention weights softmax(scale·s) over the last axis, −inf where not ``allowed``, as one node.

    One node in place of three (scale, mask, softmax), and one pass for the first two. The
    VJP is scale·(softmax's VJP): masked entries have weight 0, so their gradient is 0.
    It stays differentiable, through ``SoftmaxBackward``.
    """

    name = "scaled_masked_softmax"

    def __init__(self, scale, allowed):
        self.scale = scale
        self.blocked = None if allowed is None else ~allowed

    def forward(self, scores):
        weights = np.multiply(scores, self.scale, dtype=scores.dtype)
        if self.blocked is not None:
            np.copyto(weights, -np.inf, where=self.blocked)
        _backend.current().softmax(weights, out=weights)
        self.save_output("weights")
        return weights

    def vjp(self, g):
        return (SoftmaxBackward(-1).apply(self.saved("weights"), g) * self.scale,)

    def vjp_arrays(self, g):
        grad = _backend.current().softmax_backward(self.saved_data("weights"), g)
        grad *= self.scale
        return (grad,)


def attention(query, key, value, allowed=None, additive=None, dropout_p=0.0, scale=None, generator=None):
    """Softmax attention with the masks already resolved; returns (output, weights after dropout).

    Args:
        query: (..., L, E); key: (..., S, E); value: (..., S, Ev).
        allowed: boolean array broadcasting to (..., L, S), True where attending is allowed.
        additive: array or Tensor broadcasting to (..., L, S), added to the scores.
        dropout_p: dropout on the attention weights.

    A query row with no allowed key (or only -inf scores) gets weights of zero, so its
    output row is zero and no NaN reaches any gradient.
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = ops.matmul(query, ops.swapaxes(key, -1, -2))
    if additive is None and (allowed is None or np.broadcast_shapes(allowed.shape, scores.shape) == scores.shape):
        weights = _ScaledMaskedSoftmax(float(scale), allowed).apply(scores)
    else:
        scores = scores * scale + additive if additive is not None else scores * scale
        if allowed is not None:
            scores = ops.where(allowed, scores, -np.inf)
        weights = ops.softmax(scores, axis=-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True, generator=generator)
    return ops.matmul(weights, value), weights


def split_mask(mask, function):
    """Split a PyTorch-style mask into (allowed boolean array or None, additive float or None).

    ``mask`` is boolean with True meaning "may attend" (scaled_dot_product_attention's
    convention) or floating (added to the scores).
    """
    if mask is None:
        return None, None
    array = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if array.dtype == bool:
        return array, None
    if array.dtype.kind != "f":
        raise TypeError(f"{function}: attn_mask must be boolean or floating, got dtype {array.dtype}")
    return None, mask if isinstance(mask, Tensor) else array


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 generator=None):
    """softmax(Q·Kᵀ·scale + mask)·V over the last two axes, with batch axes broadcast.

    Args:
        query: (..., L, E).
        key: (..., S, E).
        value: (..., S, Ev).
        attn_mask: boolean (True: may attend, as in PyTorch) or floating (added to the
            scores), broadcasting to (..., L, S).
        dropout_p: dropout probability on the attention weights (applied whenever > 0).
        is_causal: attend only to keys j <= i (PyTorch's top-left aligned causal mask);
            cannot be combined with ``attn_mask``.
        scale: the score scale, 1/√E by default.
        generator: the random stream of the dropout mask.

    Returns:
        (..., L, Ev). A query row that may attend to no key gives a zero row (PyTorch
        gives NaN there), and its gradients are zero.
    """
    query, key, value = to_tensor(query), to_tensor(key), to_tensor(value)
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError(
            f"scaled_dot_product_attention: query, key and value need at least 2 dimensions (..., L, E), "
            f"got {query.shape}, {key.shape} and {value.shape}"
        )
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(
            f"scaled_dot_product_attention: shapes do not fit: query {query.shape} and key {key.shape} need the "
            f"same last dimension E, and key and value the same sequence length S (value is {value.shape})"
        )
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
    allowed, additive = split_mask(attn_mask, "scaled_dot_product_attention")
    if is_causal:
        allowed = causal_mask(query.shape[-2], key.shape[-2])
    out, _weights = attention(query, key, value, allowed, additive, dropout_p, scale, generator)
    return out
