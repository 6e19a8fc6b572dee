"""The numpy reference backend: every kernel of the C core, written with numpy.

It is the specification the C backend is tested against, the fallback when the C core
is not built, and the "straightforward multi-pass" baseline of the benchmarks. Functions
take and return ndarrays (never Tensors) and have the same signatures, checks and
edge-case conventions as ``c_backend``:

- softmax of a row of only -inf is all zeros and log_softmax of it is -inf. Both
  backwards give 0 there, and any -inf input gets probability 0 and gradient 0;
- cross-entropy rows whose target is ``ignore_index`` give loss 0 and gradient 0; a
  "mean" over no rows is NaN with an all-zero gradient; a non-ignored row of only -inf
  logits has loss +inf and gradient 0.
"""
import numpy as np

from ..errors import ShapeError
from . import _checks

name = "numpy"


def _finish(op, result, out):
    """Write ``result`` into ``out`` when given (checking it), and return the array."""
    if out is None:
        return result
    _checks.check_out(op, out, result.shape, result.dtype)
    out[...] = result
    return out


# ---- GEMM -------------------------------------------------------------------------------


def matmul(a, b, trans_a=False, trans_b=False, out=None, variant="auto"):
    """Return op(a) @ op(b) with numpy.matmul's batch broadcasting.

    Args:
        a: (..., M, K), or (..., K, M) when ``trans_a`` (op(a) swaps the last two axes).
        b: (..., K, N), or (..., N, K) when ``trans_b``.
        out: optional (..., M, N) array of the same dtype to write into.
        variant: a GEMM rung name; checked, otherwise ignored by this backend.

    Returns:
        The (..., M, N) product, C-contiguous unless ``out`` was given.
    """
    _checks.check_variant("matmul", variant)
    batch, M, N, _ = _checks.matmul_shapes("matmul", a, b, trans_a, trans_b)
    op_a = np.swapaxes(a, -1, -2) if trans_a else a
    op_b = np.swapaxes(b, -1, -2) if trans_b else b
    if out is not None:
        _checks.check_out("matmul", out, batch + (M, N), a.dtype)
    result = np.matmul(op_a, op_b)
    return _finish("matmul", np.ascontiguousarray(result), out)


def gemm(a, b, c, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, variant="auto"):
    """Set c = alpha * op(a) @ op(b) + beta * c in place and return c (beta = 0 ignores c's values)."""
    _checks.check_variant("gemm", variant)
    batch, M, N, _ = _checks.matmul_shapes("gemm", a, b, trans_a, trans_b)
    _checks.check_out("gemm", c, batch + (M, N), a.dtype)
    op_a = np.swapaxes(a, -1, -2) if trans_a else a
    op_b = np.swapaxes(b, -1, -2) if trans_b else b
    product = alpha * np.matmul(op_a, op_b)
    if beta == 0:
        c[...] = product
    else:
        c[...] = product + beta * c
    return c


class PackedMatrix:
    """op(b) prepared by ``pack_b`` for many ``gemm_packed`` calls; here a contiguous copy.

    Attributes:
        shape: (K, N), the shape of op(b).
        dtype: the element type.
        matrix: the (K, N) C-contiguous copy of op(b).
    """

    __slots__ = ("shape", "dtype", "matrix")

    def __init__(self, matrix):
        self.matrix = matrix
        self.shape = matrix.shape
        self.dtype = matrix.dtype

    def __repr__(self):
        return f"PackedMatrix(shape={self.shape}, dtype={self.dtype}, backend='numpy')"


def pack_b(b, trans_b=False):
    """Prepare op(b) once for many ``gemm_packed`` calls (a snapshot: repack after b changes).

    Args:
        b: (K, N), or (N, K) when ``trans_b``.

    Returns:
        A PackedMatrix of shape (K, N).
    """
    _checks.check_pack_b("pack_b", b)
    op_b = b.T if trans_b else b
    return PackedMatrix(np.array(op_b, order="C", copy=True))


def gemm_packed(a, packed, c, trans_a=False, alpha=1.0, beta=0.0):
    """Set c = alpha * op(a) @ op(b) + beta * c with op(b) from ``pack_b``, and return c.

    Args:
        a: (M, K), or (K, M) when ``trans_a``.
        packed: the PackedMatrix of op(b), shape (K, N), from this backend's ``pack_b``.
        c: (M, N) array written in place. Its values are ignored when beta = 0.
    """
    _checks.gemm_packed_shapes("gemm_packed", a, packed, PackedMatrix, c, trans_a)
    op_a = a.T if trans_a else a
    product = alpha * np.matmul(op_a, packed.matrix)
    if beta == 0:
        c[...] = product
    else:
        c[...] = product + beta * c
    return c


# ---- softmax family -------------------------------------------------------------------------


def _safe_max(x):
    """Row max with -inf replaced by 0, so x - max stays -inf (not NaN) on all -inf rows."""
    m = np.max(x, axis=-1, keepdims=True) if x.shape[-1] > 0 else np.zeros(x.shape[:-1] + (1,), x.dtype)
    return np.where(m == -np.inf, np.zeros((), x.dtype), m)


def softmax(x, out=None):
    """Softmax over the last axis of ``x`` (any leading shape): exp(x - max) / sum."""
    _checks.check_rows("softmax", x)
    e = np.exp(x - _safe_max(x))
    s = np.sum(e, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = e / np.where(s == 0, np.ones((), x.dtype), s)
    return _finish("softmax", y.astype(x.dtype, copy=False), out)


def log_softmax(x, out=None):
    """Log-softmax over the last axis: x - max - log(sum(exp(x - max)))."""
    _checks.check_rows("log_softmax", x)
    m = _safe_max(x)
    s = np.sum(np.exp(x - m), axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = m + np.log(s)
        y = np.where(s == 0, np.array(-np.inf, x.dtype), x - lse)
    return _finish("log_softmax", y.astype(x.dtype, copy=False), out)


def softmax_backward(y, dy, out=None):
    """Gradient of softmax from its output y: dx = y * (dy - sum(dy * y))."""
    _checks.check_rows("softmax_backward", y, [("dy", dy)])
    dx = y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
    return _finish("softmax_backward", dx.astype(y.dtype, copy=False), out)


def log_softmax_backward(y, dy, out=None):
    """Gradient of log_softmax from its output y: dx = dy - exp(y) * sum(dy), 0 where y = -inf."""
    _checks.check_rows("log_softmax_backward", y, [("dy", dy)])
    dx = dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)
    dx = np.where(y == -np.inf, np.zeros((), y.dtype), dx)
    return _finish("log_softmax_backward", dx.astype(y.dtype, copy=False), out)


# ---- cross-entropy ---------------------------------------------------------------------------


def cross_entropy(logits, target, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of (N, C) logits against (N,) class indices.

    Per row, with lse the log-sum-exp of the row and eps = label_smoothing:
        loss = (1 - eps) * (lse - logits[t]) + eps * (lse - mean(logits))
    Rows whose target is ``ignore_index`` contribute 0; "mean" divides by the rows kept.

    Returns:
        (loss, lse): loss is 0-d for "mean"/"sum" and (N,) for "none"; lse is (N,), 0 on
        ignored rows, and is what cross_entropy_backward needs.
    """
    op = "cross_entropy"
    R, C = _checks.check_cross_entropy(op, logits, target, ignore_index, reduction, label_smoothing)
    _checks.check_targets_in_range(op, target, C, ignore_index)
    eps = float(label_smoothing)
    x = logits.astype(np.float64)
    valid = target != ignore_index
    safe_target = np.where(valid, target, 0).astype(np.int64)

    m = _safe_max(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))[:, 0]
        x_t = np.take_along_axis(x, safe_target[:, None], axis=1)[:, 0]
        losses = (1.0 - eps) * (lse - x_t)
        if eps != 0.0:
            losses = losses + eps * (lse - np.mean(x, axis=1))
    losses = np.where(lse == -np.inf, np.inf, losses)
    losses = np.where(valid, losses, 0.0)
    lse = np.where(valid, lse, 0.0)
    loss = _checks.reduce_losses(losses, int(np.count_nonzero(valid)), reduction, logits.dtype)
    return loss, lse.astype(logits.dtype)


def cross_entropy_backward(logits, target, lse, grad_loss, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, out=None):
    """Gradient of cross_entropy with respect to the logits.

    dlogits = (softmax(logits) - (1 - eps) * onehot(target) - eps / C) * scale, where scale
    is grad_loss (0-d for "mean"/"sum", (N,) for "none"), divided by the number of kept
    rows for "mean". Ignored rows, and all rows of a "mean" over no rows, get 0.
    """
    op = "cross_entropy_backward"
    R, C = _checks.check_cross_entropy(op, logits, target, ignore_index, reduction, label_smoothing)
    _checks.check_targets_in_range(op, target, C, ignore_index)
    _checks.check_float(op, "lse", lse)
    if lse.shape != (R,):
        raise ShapeError(f"{op}: lse has shape {lse.shape} but logits {logits.shape} need ({R},)")
    grad_loss = _checks.check_grad_loss(op, grad_loss, reduction, R, np.float64)
    eps = float(label_smoothing)
    valid = target != ignore_index
    n_valid = int(np.count_nonzero(valid))

    if reduction == "none":
        scale = grad_loss
    elif reduction == "sum":
        scale = np.full(R, float(grad_loss))
    else:
        scale = np.full(R, float(grad_loss) / n_valid if n_valid > 0 else 0.0)
    lse64 = lse.astype(np.float64)
    keep = valid & (lse64 != -np.inf)
    scale = np.where(keep, scale, 0.0)

    with np.errstate(invalid="ignore", over="ignore"):
        # Rows that are ignored or all -inf get exp(-inf) = 0, so they neither overflow nor warn.
        shifted = np.where(keep[:, None], logits.astype(np.float64) - lse64[:, None], -np.inf)
        p = np.exp(shifted)
    dx = (p - eps / C) * scale[:, None]
    rows = np.nonzero(keep)[0]
    dx[rows, target[rows]] -= (1.0 - eps) * scale[rows]
    dx = np.where(keep[:, None], dx, 0.0)
    return _finish(op, dx.astype(logits.dtype), out)


# ---- threads ------------------------------------------------------------------------------------

_num_threads = None


def set_num_threads(n):
    """Record the thread count; numpy's own BLAS threads are not changed by this backend."""
    global _num_threads
    _num_threads = int(n)


def get_num_threads():
    """Return the recorded thread count (1 when never set: these kernels are single-threaded)."""
    return 1 if _num_threads is None else _num_threads


# ---- activations ------------------------------------------------------------------------------
#
# Conventions shared with the C kernels. NaN in gives NaN out. sigmoid and tanh saturate
# to exactly 0 or +-1. gelu_tanh is computed as x * sigmoid(2u), which equals PyTorch's
# 0.5 x (1 + tanh(u)) but does not cancel for negative x. gelu_tanh(-inf) is NaN (-inf * 0,
# as in PyTorch), while its derivative at +-inf is the limit 1 or 0 (PyTorch gives NaN).
# ``out`` may be the input array itself.

# sqrt(2 / pi) and the cubic coefficient of the GELU tanh approximation.
GELU_K = 0.7978845608028654
GELU_A = 0.044715


def _sigmoid_parts(x):
    """Return (e, sigma(x)) with e = exp(-|x|), computed without overflow for any x."""
    e = np.exp(-np.abs(x))
    return e, np.where(x >= 0, np.ones((), x.dtype), e) / (1 + e)


def sigmoid(x, out=None):
    """Logistic sigmoid 1 / (1 + e^-x) of an array of any shape, without overflow."""
    _checks.check_elementwise("sigmoid", [("x", x)])
    return _finish("sigmoid", np.asarray(_sigmoid_parts(x)[1]), out)


def sigmoid_backward(y, dy, out=None):
    """Gradient of sigmoid from its output y: dx = dy * y * (1 - y)."""
    _checks.check_elementwise("sigmoid_backward", [("y", y), ("dy", dy)])
    return _finish("sigmoid_backward", np.asarray(dy * (y * (1 - y))), out)


def tanh(x, out=None):
    """Hyperbolic tangent of an array of any shape."""
    _checks.check_elementwise("tanh", [("x", x)])
    return _finish("tanh", np.asarray(np.tanh(x)), out)


def tanh_backward(y, dy, out=None):
    """Gradient of tanh from its output y: dx = dy * (1 - y^2)."""
    _checks.check_elementwise("tanh_backward", [("y", y), ("dy", dy)])
    return _finish("tanh_backward", np.asarray(dy * (1 - y * y)), out)


def _gelu_tanh_parts(x):
    """Return (e, q, s) for GELU's tanh approximation: e = exp(-|2u|), q = 1 / (1 + e), s = sigma(2u)."""
    dtype = x.dtype.type
    with np.errstate(over="ignore", invalid="ignore"):
        two_u = x * (dtype(2 * GELU_K * GELU_A) * (x * x) + dtype(2 * GELU_K))
        e = np.exp(-np.abs(two_u))
    q = 1 / (1 + e)
    return e, q, np.where(x >= 0, np.ones((), x.dtype), e) * q


def gelu_tanh(x, out=None):
    """GELU with PyTorch's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    _checks.check_elementwise("gelu_tanh", [("x", x)])
    _e, _q, s = _gelu_tanh_parts(x)
    with np.errstate(invalid="ignore"):
        y = x * s
    return _finish("gelu_tanh", np.asarray(y), out)


def gelu_tanh_backward(x, dy, out=None):
    """Gradient of gelu_tanh from its input x: dx = dy * (s + x * 2u'(x) * s (1 - s)), s = sigma(2u)."""
    _checks.check_elementwise("gelu_tanh_backward", [("x", x), ("dy", dy)])
    dtype = x.dtype.type
    e, q, s = _gelu_tanh_parts(x)
    # The second term is exactly 0 for |x| > 22 (e underflows); clamping x there keeps
    # x * 2u' finite, so a huge x or +-inf gives the limit 1 or 0 instead of inf * 0 = NaN.
    clamped = np.clip(x, dtype(-1000), dtype(1000))
    with np.errstate(over="ignore", invalid="ignore"):
        two_u_prime = dtype(6 * GELU_K * GELU_A) * (clamped * clamped) + dtype(2 * GELU_K)
        derivative = s + (clamped * two_u_prime) * (e * (q * q))
        dx = dy * derivative
    return _finish("gelu_tanh_backward", np.asarray(dx), out)


# ---- LSTM cell ----------------------------------------------------------------------------------


def sigmoid_into(x, out):
    """Write σ(x) = 1 / (1 + e^−x) into ``out`` (which may be ``x``) and return it.

    For x < −88 (float32) e^−x overflows to inf and σ is exactly 0, its correct rounded
    value, so the overflow warning is silenced.
    """
    with np.errstate(over="ignore"):
        # NOTE: not np.negative(x, out=out): numpy 2.4.6 writes wrong float64 values when
        # ``out`` is a (n, 1) column of a wider array; multiplying by -1 is exact and unaffected.
        np.multiply(x, -1.0, out=out)
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


def _gate_blocks(array, hidden):
    """Split the last axis of (..., 4H) into the four gate blocks i, f, g, o (views)."""
    return tuple(array[..., k * hidden:(k + 1) * hidden] for k in range(4))


def lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h):
    """Run one LSTM step's elementwise part, writing every result into the given buffers.

    With the pre-activations of the gates in PyTorch's order (i, f, g, o):
        i, f, o = σ(·);  g = tanh(·);  c = f·c_prev + i·g;  h = o·tanh(c)

    Args:
        pre: (..., 4H) pre-activations x·W_ihᵀ + b_ih + h_prev·W_hhᵀ + b_hh (read only).
        c_prev: (..., H) the previous cell state (read only; ``c`` may be the same buffer).
        gates: (..., 4H) output buffer for the activated gates (kept for the backward).
        c: (..., H) output buffer for the new cell state.
        tanh_c: (..., H) output buffer for tanh(c) (kept for the backward).
        h: (..., H) output buffer for the new hidden state.

    Raises:
        ShapeError, DTypeError: operands of the wrong shape or dtype.
        ValueError: an output overlapping another operand (except ``c`` being ``c_prev``).
    """
    hidden = _checks.check_lstm_forward(pre, c_prev, gates, c, tanh_c, h)
    sigmoid_into(pre[..., :2 * hidden], gates[..., :2 * hidden])
    np.tanh(pre[..., 2 * hidden:3 * hidden], out=gates[..., 2 * hidden:3 * hidden])
    sigmoid_into(pre[..., 3 * hidden:], gates[..., 3 * hidden:])
    i, f, g, o = _gate_blocks(gates, hidden)

    np.multiply(f, c_prev, out=c)
    np.multiply(i, g, out=tanh_c)  # tanh_c stores i·g until the tanh below overwrites it
    c += tanh_c
    np.tanh(c, out=tanh_c)
    np.multiply(o, tanh_c, out=h)


def lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch):
    """Write the cotangents of one LSTM step's pre-activations and previous cell state.

    Args:
        dh: (..., H) cotangent of h (read only).
        dc: (..., H) cotangent of c from everything except h (read only; may be ``dc_prev``).
        gates, c_prev, tanh_c: the forward's activated gates (..., 4H), previous cell state
            and tanh(c), as saved by ``lstm_cell_forward``.
        d_pre: (..., 4H) output buffer for the cotangent of the pre-activations.
        dc_prev: (..., H) output buffer for the cotangent of c_prev; may alias ``dc``, so a
            loop over time can carry one dc buffer.
        scratch: (..., H) work buffer; on return it contains the total cotangent of c.

    Raises:
        ShapeError, DTypeError: operands of the wrong shape or dtype.
        ValueError: an output overlapping another operand (except ``dc_prev`` being ``dc``).
    """
    hidden = _checks.check_lstm_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch)
    i, f, g, o = _gate_blocks(gates, hidden)
    d_i, d_f, d_g, d_o = _gate_blocks(d_pre, hidden)

    # Total cotangent of c: dc + dh·o·(1 − tanh²c), from h = o·tanh(c).
    total = scratch
    np.multiply(tanh_c, tanh_c, out=total)
    np.subtract(1.0, total, out=total)
    total *= o
    total *= dh
    total += dc

    # d_o = dh·tanh(c)·σ'(o), with σ' = σ·(1 − σ) from the activated gate.
    np.subtract(1.0, o, out=d_o)
    d_o *= o
    d_o *= tanh_c
    d_o *= dh
    # c = f·c_prev + i·g: d_i = total·g·σ'(i), d_f = total·c_prev·σ'(f), d_g = total·i·(1 − g²).
    np.subtract(1.0, i, out=d_i)
    d_i *= i
    d_i *= g
    d_i *= total
    np.subtract(1.0, f, out=d_f)
    d_f *= f
    d_f *= c_prev
    d_f *= total
    np.multiply(g, g, out=d_g)
    np.subtract(1.0, d_g, out=d_g)
    d_g *= i
    d_g *= total

    np.multiply(total, f, out=dc_prev)
