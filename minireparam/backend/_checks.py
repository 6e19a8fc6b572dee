"""Argument checks shared by the numpy and the C backend.

Both backends run the same checks before computing, so they raise the same errors with
the same messages. The C backend runs them before any C call.
"""
import numpy as np

from ..errors import DTypeError, ShapeError

# The GEMM rungs, by name; the number is the MR_GEMM_* value of csrc/minireparam.h.
GEMM_VARIANTS = {
    "auto": 0,
    "naive": 1,
    "loop_order": 2,
    "blocked": 3,
    "packed": 4,
    "threaded": 5,
    "small": 6,
}

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("none", "mean", "sum")


def check_variant(op, variant):
    """Return the MR_GEMM_* number of ``variant``; raise ValueError for an unknown name."""
    try:
        return GEMM_VARIANTS[variant]
    except (KeyError, TypeError):  # TypeError: an unhashable variant
        names = ", ".join(repr(name) for name in GEMM_VARIANTS)
        raise ValueError(f"{op}: unknown variant {variant!r}; expected one of {names}") from None


def check_float(op, name, x):
    """Raise unless ``x`` is an ndarray of float32 or float64."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise DTypeError(f"{op}: {name} must be float32 or float64, got {x.dtype} (shape {x.shape})")


def check_same_dtype(op, arrays):
    """Raise DTypeError unless every named array in ``arrays`` has the first one's dtype."""
    (first_name, first), *rest = arrays
    for name, x in rest:
        if x.dtype != first.dtype:
            parts = ", ".join(f"{n} {a.dtype} {a.shape}" for n, a in arrays)
            raise DTypeError(f"{op}: operands must have the same dtype, got {parts}; convert one with .astype()")


_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def matmul_shapes(op, a, b, trans_a, trans_b):
    """Validate matmul operands; return (batch_shape, M, N, K) of op(a) @ op(b).

    The common case (two ndarrays of one float dtype) is checked with a few attribute
    reads, because this runs on every matmul of a training loop.
    """
    if not (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype is b.dtype
            and (a.dtype is _FLOAT32 or a.dtype is _FLOAT64)):
        check_float(op, "a", a)
        check_float(op, "b", b)
        check_same_dtype(op, [("a", a), ("b", b)])
    a_shape, b_shape = a.shape, b.shape
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise ShapeError(
            f"{op}: both operands need at least 2 dimensions, got shapes {a_shape} and {b_shape}"
        )
    M, K = (a_shape[-1], a_shape[-2]) if trans_a else (a_shape[-2], a_shape[-1])
    K_b, N = (b_shape[-1], b_shape[-2]) if trans_b else (b_shape[-2], b_shape[-1])
    if K != K_b:
        raise ShapeError(
            f"{op}: shapes {a_shape} (trans_a={bool(trans_a)}) and {b_shape} (trans_b={bool(trans_b)}) "
            f"are not aligned: op(a) has {K} columns but op(b) has {K_b} rows"
        )
    if len(a_shape) == 2 and len(b_shape) == 2:
        return (), M, N, K
    try:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ShapeError(f"{op}: the batch dimensions of shapes {a_shape} and {b_shape} do not broadcast") from None
    return tuple(batch), M, N, K


def check_out(op, out, shape, dtype):
    """Raise unless ``out`` is an ndarray of exactly ``shape`` and ``dtype``."""
    if type(out) is np.ndarray and out.shape == shape and out.dtype is dtype and out.flags.writeable:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{op}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ShapeError(f"{op}: out has shape {out.shape} but the result has shape {tuple(shape)}")
    if out.dtype != dtype:
        raise DTypeError(f"{op}: out has dtype {out.dtype} but the result has dtype {dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{op}: out (shape {out.shape}) is read-only")


def check_pack_b(op, b):
    """Validate the operand of pack_b: a 2-D float32 or float64 ndarray."""
    check_float(op, "b", b)
    if b.ndim != 2:
        raise ShapeError(f"{op}: b must be 2-D (a matrix), got shape {b.shape}")


def gemm_packed_shapes(op, a, packed, packed_type, c, trans_a):
    """Validate gemm_packed operands; return (M, N, K) of op(a) @ op(b).

    ``packed_type`` is the calling backend's PackedMatrix class: a matrix packed by the
    other backend has another layout, so it is rejected.
    """
    if not isinstance(packed, packed_type):
        raise TypeError(
            f"{op}: packed must be a {packed_type.__module__}.{packed_type.__name__} from this backend's pack_b, "
            f"got {type(packed).__module__}.{type(packed).__name__}; pack b again with the current backend"
        )
    check_float(op, "a", a)
    if a.dtype != packed.dtype:
        raise DTypeError(
            f"{op}: a is {a.dtype} {a.shape} but the packed matrix is {packed.dtype} {packed.shape}; "
            "convert one with .astype() and pack again"
        )
    if a.ndim != 2:
        raise ShapeError(f"{op}: a must be 2-D (a matrix), got shape {a.shape}")
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    K_b, N = packed.shape
    if K != K_b:
        raise ShapeError(
            f"{op}: a of shape {a.shape} (trans_a={bool(trans_a)}) and the packed op(b) of shape {packed.shape} "
            f"are not aligned: op(a) has {K} columns but op(b) has {K_b} rows"
        )
    check_out(op, c, (M, N), a.dtype)
    return M, N, K


def check_rows(op, x, others=()):
    """Validate softmax-family operands: float, at least 1-D, same shape and dtype."""
    check_float(op, "x", x)
    if x.ndim < 1:
        raise ShapeError(f"{op}: the input needs at least one dimension (the softmax axis), got shape {x.shape}")
    for name, other in others:
        check_float(op, name, other)
        if other.shape != x.shape:
            raise ShapeError(f"{op}: {name} has shape {other.shape} but the forward output has shape {x.shape}")
    check_same_dtype(op, [("y" if others else "x", x)] + list(others))


def check_cross_entropy(op, logits, target, ignore_index, reduction, label_smoothing):
    """Validate cross-entropy arguments; return (R, C)."""
    check_float(op, "logits", logits)
    if logits.ndim != 2:
        raise ShapeError(f"{op}: logits must be 2-D (N, C), got shape {logits.shape}")
    if not isinstance(target, np.ndarray) or target.dtype.kind not in "iu":
        kind = target.dtype if isinstance(target, np.ndarray) else type(target).__name__
        raise DTypeError(f"{op}: target must be an integer ndarray (int64), got {kind}")
    if target.shape != (logits.shape[0],):
        raise ShapeError(f"{op}: target has shape {target.shape} but logits {logits.shape} need ({logits.shape[0]},)")
    R, C = logits.shape
    if C < 1:
        raise ShapeError(f"{op}: logits need at least one class, got shape {logits.shape}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if int(ignore_index) != ignore_index:
        raise ValueError(f"{op}: ignore_index must be an integer, got {ignore_index!r}")
    return R, C


def check_targets_in_range(op, target, C, ignore_index):
    """Raise IndexError naming the first target outside [0, C) that is not ignore_index."""
    bad = (target != ignore_index) & ((target < 0) | (target >= C))
    if bad.any():
        row = int(np.argmax(bad))
        raise_target_error(op, row, int(target[row]), C, ignore_index)


def raise_target_error(op, row, value, C, ignore_index):
    """Raise the IndexError for target ``value`` at ``row``."""
    raise IndexError(
        f"{op}: target {value} at row {row} is out of range for {C} classes "
        f"(expected 0 <= target < {C}, or ignore_index={ignore_index})"
    )


def check_grad_loss(op, grad_loss, reduction, R, dtype):
    """Return grad_loss as an array of the logits' dtype: 0-d for mean/sum, (R,) for none."""
    grad_loss = np.asarray(grad_loss, dtype=dtype)
    if reduction == "none":
        if grad_loss.shape != (R,):
            raise ShapeError(f"{op}: grad_loss must have shape ({R},) for reduction='none', got {grad_loss.shape}")
        return grad_loss
    if grad_loss.size != 1:
        raise ShapeError(
            f"{op}: grad_loss must be a scalar for reduction={reduction!r}, got shape {grad_loss.shape}"
        )
    return grad_loss.reshape(())


def reduce_losses(losses, n_valid, reduction, dtype):
    """Reduce per-row losses (0 on ignored rows): float64 sum, and NaN for a mean of no rows."""
    if reduction == "none":
        return losses.astype(dtype, copy=False)
    total = np.sum(losses, dtype=np.float64)
    if reduction == "sum":
        return np.array(total, dtype=dtype)
    return np.array(total / n_valid if n_valid > 0 else np.nan, dtype=dtype)


# ---- activations and the LSTM cell ----------------------------------------------------------


def check_elementwise(op, arrays):
    """Validate the operands of an elementwise activation kernel: float ndarrays of one shape and dtype.

    ``arrays`` is a list of (name, array); the first one sets the expected shape.
    """
    for name, x in arrays:
        check_float(op, name, x)
    (first_name, first), *rest = arrays
    for name, x in rest:
        if x.shape != first.shape:
            raise ShapeError(
                f"{op}: {name} has shape {x.shape} but {first_name} has shape {first.shape}; "
                "they must have the same shape (no broadcasting)"
            )
    check_same_dtype(op, arrays)


def _check_lstm_operands(op, hidden_from, wide, narrow):
    """Validate LSTM cell operands: (..., 4H) arrays in ``wide``, (..., H) arrays in ``narrow``.

    ``hidden_from`` names the (..., H) array that sets H and the leading shape. Every
    array must be a float ndarray of its dtype.
    """
    for name, x in wide + narrow:
        check_float(op, name, x)
    reference = dict(narrow)[hidden_from]
    if reference.ndim == 0:
        raise ShapeError(f"{op}: {hidden_from} must have at least one dimension (..., H), got shape ()")
    hidden = reference.shape[-1]
    lead = reference.shape[:-1]
    for name, x in wide:
        if x.shape != lead + (4 * hidden,):
            raise ShapeError(
                f"{op}: {name} has shape {x.shape} but {hidden_from} {reference.shape} needs "
                f"{lead + (4 * hidden,)}: the last axis holds the gate blocks i, f, g, o of H = {hidden} each"
            )
    for name, x in narrow:
        if x.shape != reference.shape:
            raise ShapeError(f"{op}: {name} has shape {x.shape} but {hidden_from} has shape {reference.shape}")
    check_same_dtype(op, wide + narrow)
    return hidden


def _same_buffer(a, b):
    """True when a and b are views of exactly the same elements (same start, shape and strides)."""
    return (a.shape == b.shape and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def check_no_overlap(op, outputs, inputs, allowed=()):
    """Raise ValueError when an output overlaps an input or another output.

    ``allowed`` lists (output name, input name) pairs that may be the very same buffer
    (an in-place update); a partial overlap is rejected even for them.
    """
    for position, (out_name, out) in enumerate(outputs):
        if not out.flags.writeable:
            raise ValueError(f"{op}: output {out_name} (shape {out.shape}) is read-only")
        for other_name, other in outputs[position + 1:] + inputs:
            if not np.may_share_memory(out, other):
                continue
            if (out_name, other_name) in allowed and _same_buffer(out, other):
                continue
            raise ValueError(
                f"{op}: output {out_name} {out.shape} overlaps {other_name} {other.shape} in memory; "
                "pass separate buffers" + (f" (only {allowed} may be the same buffer)" if allowed else "")
            )


def check_lstm_forward(pre, c_prev, gates, c, tanh_c, h):
    """Validate lstm_cell_forward's arrays; return H."""
    op = "lstm_cell_forward"
    hidden = _check_lstm_operands(op, "c_prev", [("pre", pre), ("gates", gates)],
                                  [("c_prev", c_prev), ("c", c), ("tanh_c", tanh_c), ("h", h)])
    check_no_overlap(op, [("gates", gates), ("c", c), ("tanh_c", tanh_c), ("h", h)],
                     [("pre", pre), ("c_prev", c_prev)], allowed=(("c", "c_prev"),))
    return hidden


def check_lstm_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch):
    """Validate lstm_cell_backward's arrays; return H."""
    op = "lstm_cell_backward"
    hidden = _check_lstm_operands(
        op, "c_prev", [("gates", gates), ("d_pre", d_pre)],
        [("c_prev", c_prev), ("dh", dh), ("dc", dc), ("tanh_c", tanh_c), ("dc_prev", dc_prev), ("scratch", scratch)],
    )
    check_no_overlap(op, [("d_pre", d_pre), ("dc_prev", dc_prev), ("scratch", scratch)],
                     [("dh", dh), ("dc", dc), ("gates", gates), ("c_prev", c_prev), ("tanh_c", tanh_c)],
                     allowed=(("dc_prev", "dc"),))
    return hidden
