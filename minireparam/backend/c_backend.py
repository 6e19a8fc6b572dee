"""The C backend: the kernels of csrc/ through the cffi module ``minireparam._ccore``.

Same functions, signatures and conventions as ``numpy_backend`` (the reference). Every
function checks shapes, dtypes and memory layout in Python before calling C, and turns a
non-zero C status into an exception naming the op, the shapes and the dtypes.

Layout rules for ``matmul``: the last two axes of an operand reach C without a copy when
one of them has unit stride. A transposed view (``x.T``, ``swapaxes``) is passed as the
untransposed matrix with the transpose flag flipped, and a row-strided slice as a larger
leading dimension. Broadcast batch dimensions become a batch stride of 0. An operand is
copied only when neither of its last two axes has unit stride (or a stride is negative).

Importing this module raises ImportError when the C core is not built.
"""
import os

import numpy as np

from ..errors import ShapeError
from . import _checks


def _configure_openmp_waiting():
    """Ask OpenMP worker threads to sleep soon after a parallel region ends.

    Idle libgomp workers spin before they sleep: with the default spin count a worker
    burned about 11 ms of CPU after one parallel region, on the 2-core machine of
    benchmarks/RESULTS.md. A numpy matmul starting right after a threaded C kernel would
    share its cores with that spinning. GOMP_SPINCOUNT=10000 cut it to about 0.3 ms while
    keeping back-to-back C calls (a training loop) on warm threads; fully passive waiting
    would add a wake-up of several microseconds to every threaded call. The variables are
    read once, when the OpenMP runtime loads with ``_ccore``, and values set by the user win.
    """
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")  # libgomp (gcc)
    # LLVM libomp (clang builds) counts in milliseconds, so its shortest spin is none.
    os.environ.setdefault("KMP_BLOCKTIME", "0")


def _keep_blas_off_our_cores(threads):
    """Limit numpy's BLAS to one thread while the C kernels use more than one.

    OpenBLAS workers keep spinning after each numpy BLAS call (measured: about 36 ms of
    CPU in the 0.1 s after a 2-thread matmul, then they sleep), so a threaded C kernel
    running after a numpy matmul would compete with them for the same cores. With OpenBLAS on one thread its workers never wake. The engine's products go
    to the C GEMM, so numpy's BLAS only sees incidental calls. Set
    MINIREPARAM_BLAS_THREADS to a count to choose another limit, or to "keep" to leave
    numpy's BLAS alone. Needs threadpoolctl (installed with scikit-learn or the
    "bench" extra).
    """
    setting = os.environ.get("MINIREPARAM_BLAS_THREADS", "1").strip().lower()
    if threads <= 1 or setting == "keep":
        return
    try:
        limit = int(setting)
    except ValueError:
        raise ValueError(f"MINIREPARAM_BLAS_THREADS must be a thread count or 'keep', got {setting!r}") from None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return  # NOTE: without threadpoolctl, numpy's BLAS keeps all of its threads.
    threadpool_limits(limits=limit, user_api="blas")


_configure_openmp_waiting()

from .. import _ccore  # noqa: E402  (after the OpenMP environment is set)

ffi = _ccore.ffi
lib = _ccore.lib
name = "c"

_STATUS_NAMES = {
    lib.MR_ERR_INVALID_ARGUMENT: "invalid argument",
    lib.MR_ERR_OUT_OF_MEMORY: "out of memory",
    lib.MR_ERR_TARGET_RANGE: "target out of range",
}


def _describe(arrays):
    return ", ".join(f"{label} {x.shape} {x.dtype}" for label, x in arrays)


def _check_status(status, op, c_function, arrays):
    """Raise an exception for a non-zero C status, naming the op, shapes and dtypes."""
    if status == lib.MR_OK:
        return
    reason = _STATUS_NAMES.get(status, f"status {status}")
    message = f"{op}: C kernel {c_function} failed ({reason}) on {_describe(arrays)}"
    if status == lib.MR_ERR_OUT_OF_MEMORY:
        raise MemoryError(message)
    raise RuntimeError(message)


def _pointer(x, offset_bytes=0):
    """Return a C pointer to x's first element (plus ``offset_bytes``).

    The cdef declares data pointers void* (see csrc/build_ccore.py), so a contiguous
    array goes through ``ffi.from_buffer`` alone, about 5x cheaper than x.ctypes.data.
    """
    if offset_bytes == 0 and x.flags.c_contiguous:
        return ffi.from_buffer(x)
    return ffi.cast("void *", x.ctypes.data + offset_bytes)


def _suffix(dtype):
    return "f32" if dtype == np.float32 else "f64"


# ---- GEMM -----------------------------------------------------------------------------------


def _as_matrix(x, trans):
    """Return (x, ld, trans) such that C can read x's last two axes through (ld, trans).

    The returned array starts at the same element as x: x itself when it is row-major,
    its swapaxes view (with the flag flipped) when it is column-major, else a
    C-contiguous copy. ``ld`` is the leading dimension of the returned layout.
    """
    rows, cols = x.shape[-2:]
    flags = x.flags
    if flags.c_contiguous and flags.aligned:
        return x, max(cols, 1), trans
    item = x.itemsize
    s_rows, s_cols = x.strides[-2:]
    if flags.aligned:
        # Row-major: unit stride along the last axis, rows at least `cols` apart.
        if (cols == 1 or s_cols == item) and (rows == 1 or (s_rows % item == 0 and s_rows >= max(cols, 1) * item)):
            ld = s_rows // item if rows > 1 else max(cols, 1)
            return x, ld, trans
        # Column-major: the transpose is row-major, so pass it with the flag flipped.
        if (rows == 1 or s_rows == item) and (cols == 1 or (s_cols % item == 0 and s_cols >= max(rows, 1) * item)):
            ld = s_cols // item if cols > 1 else max(rows, 1)
            return (x.T if x.ndim == 2 else np.swapaxes(x, -1, -2)), ld, not trans
    return np.ascontiguousarray(x), max(cols, 1), trans


def _batch_strides(x, batch):
    """Strides in elements of x's batch axes after broadcasting to ``batch`` (0 = broadcast)."""
    lead = len(batch) - (x.ndim - 2)
    strides = []
    for axis, size in enumerate(batch):
        source_axis = axis - lead
        if source_axis < 0 or x.shape[source_axis] == 1:
            strides.append(0)
        else:
            strides.append(x.strides[source_axis])
    return strides


def _collapse_batch(batch, operand_strides):
    """Merge batch axes that every operand walks with one stride; drop axes of size 1.

    Returns a list of (size, [stride per operand]) from the outermost axis inwards.
    """
    merged = []
    for axis, size in enumerate(batch):
        if size == 1:
            continue
        strides = [s[axis] for s in operand_strides]
        if merged:
            outer_size, outer_strides = merged[-1]
            if all(o == s * size for o, s in zip(outer_strides, strides)):
                merged[-1] = (outer_size * size, strides)
                continue
        merged.append((size, strides))
    return merged


def _out_is_direct(out, M, N):
    """True when C can write into ``out`` through a row stride, without a temporary."""
    if out.flags.c_contiguous:
        return True
    item = out.itemsize
    return (
        out.ndim == 2 and out.flags.aligned
        and (N == 1 or out.strides[1] == item)
        and (M == 1 or (out.strides[0] % item == 0 and out.strides[0] >= max(N, 1) * item))
    )


_GEMM = {np.dtype(np.float32): lib.mr_gemm_f32, np.dtype(np.float64): lib.mr_gemm_f64}
_GEMM_BATCHED2 = {np.dtype(np.float32): lib.mr_gemm_batched2_f32, np.dtype(np.float64): lib.mr_gemm_batched2_f64}


def _gemm_call(op, a, b, c, trans_a, trans_b, alpha, beta, variant_number, batch, M, N, K):
    """Run the C GEMM for already-validated operands; c is writable and direct.

    Batch axes that merge into one stride per operand are merged, and the last two
    remaining axes go to one two-level C call (the (batch, heads) views of attention
    take one call). Only a batch with three or more unmergeable axes loops in Python,
    over the axes before the last two.
    """
    dtype = a.dtype
    item = a.itemsize
    ldc = c.strides[-2] // item if M > 1 else max(N, 1)
    # C-contiguous operands (the common case) skip the layout analysis.
    if a.flags.c_contiguous:
        a_matrix, lda, flag_a = a, max(a.shape[-1], 1), trans_a
    else:
        a_matrix, lda, flag_a = _as_matrix(a, trans_a)
    if b.flags.c_contiguous:
        b_matrix, ldb, flag_b = b, max(b.shape[-1], 1), trans_b
    else:
        b_matrix, ldb, flag_b = _as_matrix(b, trans_b)

    if not batch:
        # Two matrices: one call, no batch bookkeeping (the hot path of small matmuls).
        status = _GEMM[dtype](_pointer(c), ldc, _pointer(a_matrix), lda, _pointer(b_matrix), ldb,
                              M, N, K, flag_a, flag_b, alpha, beta, variant_number)
        if status:
            _check_status(status, op, "mr_gemm_" + _suffix(dtype), [("a", a), ("b", b), ("out", c)])
        return

    strides_a = _batch_strides(a_matrix, batch)
    strides_b = _batch_strides(b_matrix, batch)
    strides_c = list(c.strides[:-2])
    if any(s < 0 or s % item for s in strides_a):
        a_matrix, lda, flag_a = _as_matrix(np.ascontiguousarray(a), trans_a)
        strides_a = _batch_strides(a_matrix, batch)
    if any(s < 0 or s % item for s in strides_b):
        b_matrix, ldb, flag_b = _as_matrix(np.ascontiguousarray(b), trans_b)
        strides_b = _batch_strides(b_matrix, batch)

    # Pad to two levels with axes of size 1; elements, not bytes, from here on.
    axes = [(1, [0, 0, 0])] * 2 + _collapse_batch(batch, [strides_a, strides_b, strides_c])
    (outer_size, outer), (inner_size, inner) = axes[-2], axes[-1]
    stride_a0, stride_b0, stride_c0 = (s // item for s in outer)
    stride_a1, stride_b1, stride_c1 = (s // item for s in inner)
    loops = axes[2:-2]

    function = _GEMM_BATCHED2[dtype]
    for index in np.ndindex(*[size for size, _ in loops]):
        offset_a = offset_b = offset_c = 0
        for i, (_, (sa, sb, sc)) in zip(index, loops):
            offset_a += i * sa
            offset_b += i * sb
            offset_c += i * sc
        status = function(
            _pointer(c, offset_c), ldc, stride_c0, stride_c1,
            _pointer(a_matrix, offset_a), lda, stride_a0, stride_a1,
            _pointer(b_matrix, offset_b), ldb, stride_b0, stride_b1,
            outer_size, inner_size, M, N, K, flag_a, flag_b, alpha, beta, variant_number,
        )
        if status:
            _check_status(status, op, "mr_gemm_batched2_" + _suffix(dtype), [("a", a), ("b", b), ("out", c)])


def matmul(a, b, trans_a=False, trans_b=False, out=None, variant="auto"):
    """Return op(a) @ op(b) on the C GEMM; see numpy_backend.matmul for the contract."""
    variant_number = _checks.check_variant("matmul", variant)
    batch, M, N, K = _checks.matmul_shapes("matmul", a, b, trans_a, trans_b)
    shape = batch + (M, N)
    if out is None:
        c = np.empty(shape, dtype=a.dtype)
    else:
        _checks.check_out("matmul", out, shape, a.dtype)
        direct = _out_is_direct(out, M, N) and not (np.may_share_memory(out, a) or np.may_share_memory(out, b))
        c = out if direct else np.empty(shape, dtype=a.dtype)

    if c.size > 0:
        if K == 0:
            c.fill(0)
        else:
            _gemm_call("matmul", a, b, c, trans_a, trans_b, 1.0, 0.0, variant_number, batch, M, N, K)
    if out is not None and c is not out:
        out[...] = c
        return out
    return c


def gemm(a, b, c, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, variant="auto"):
    """Set c = alpha * op(a) @ op(b) + beta * c in place and return c (beta = 0 ignores c's values)."""
    variant_number = _checks.check_variant("gemm", variant)
    batch, M, N, K = _checks.matmul_shapes("gemm", a, b, trans_a, trans_b)
    _checks.check_out("gemm", c, batch + (M, N), a.dtype)
    direct = _out_is_direct(c, M, N) and not (np.may_share_memory(c, a) or np.may_share_memory(c, b))
    target = c if direct else np.ascontiguousarray(c)
    if target.size > 0:
        _gemm_call("gemm", a, b, target, trans_a, trans_b, float(alpha), float(beta), variant_number, batch, M, N,
                   max(K, 0))
    if target is not c:
        c[...] = target
    return c


_PACK_B_BYTES = {np.dtype(np.float32): lib.mr_gemm_pack_b_bytes_f32, np.dtype(np.float64): lib.mr_gemm_pack_b_bytes_f64}
_PACK_B = {np.dtype(np.float32): lib.mr_gemm_pack_b_f32, np.dtype(np.float64): lib.mr_gemm_pack_b_f64}
_PREPACKED = {np.dtype(np.float32): lib.mr_gemm_prepacked_f32, np.dtype(np.float64): lib.mr_gemm_prepacked_f64}
_PACKED_ALIGNMENT = 64  # bytes; mr_gemm_pack_b requires the buffer to start on this boundary


class PackedMatrix:
    """op(b) packed by ``pack_b`` into the C micro-panels, for many ``gemm_packed`` calls.

    The panels live in a numpy byte buffer owned by this object. Their layout depends on
    the active C kernel set, which the C side checks on every use.

    Attributes:
        shape: (K, N), the shape of op(b).
        dtype: the element type.
    """

    __slots__ = ("shape", "dtype", "_buffer", "_pointer")

    def __init__(self, shape, dtype, buffer):
        self.shape = shape
        self.dtype = dtype
        self._buffer = buffer
        self._pointer = ffi.from_buffer(buffer)

    def __repr__(self):
        return f"PackedMatrix(shape={self.shape}, dtype={self.dtype}, backend='c')"


def _aligned_bytes(count):
    """Return a uint8 array of ``count`` bytes that starts on a _PACKED_ALIGNMENT boundary."""
    raw = np.empty(count + _PACKED_ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % _PACKED_ALIGNMENT
    return raw[start:start + count]


def pack_b(b, trans_b=False):
    """Pack op(b) once for many ``gemm_packed`` calls; see numpy_backend.pack_b for the contract."""
    op = "pack_b"
    _checks.check_pack_b(op, b)
    dtype = b.dtype
    b_matrix, ldb, flag_b = _as_matrix(b, bool(trans_b))
    K, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    suffix = _suffix(dtype)

    size = ffi.new("int64_t *")
    status = _PACK_B_BYTES[dtype](size, K, N)
    _check_status(status, op, "mr_gemm_pack_b_bytes_" + suffix, [("b", b)])
    buffer = _aligned_bytes(int(size[0]))
    status = _PACK_B[dtype](ffi.from_buffer(buffer), buffer.size, _pointer(b_matrix), ldb, K, N, flag_b)
    _check_status(status, op, "mr_gemm_pack_b_" + suffix, [("b", b)])
    return PackedMatrix((K, N), dtype, buffer)


def gemm_packed(a, packed, c, trans_a=False, alpha=1.0, beta=0.0):
    """Set c = alpha * op(a) @ op(b) + beta * c against a packed op(b); see numpy_backend.gemm_packed."""
    op = "gemm_packed"
    M, N, K = _checks.gemm_packed_shapes(op, a, packed, PackedMatrix, c, trans_a)
    direct = _out_is_direct(c, M, N) and not np.may_share_memory(c, a)
    target = c if direct else np.ascontiguousarray(c)
    if target.size > 0:
        a_matrix, lda, flag_a = (a, max(a.shape[1], 1), bool(trans_a)) if a.flags.c_contiguous \
            else _as_matrix(a, bool(trans_a))
        ldc = target.strides[0] // target.itemsize if M > 1 else max(N, 1)
        status = _PREPACKED[a.dtype](_pointer(target), ldc, _pointer(a_matrix), lda, packed._pointer, M, flag_a,
                                     float(alpha), float(beta))
        if status:
            _check_status(status, op, "mr_gemm_prepacked_" + _suffix(a.dtype),
                          [("a", a), ("packed", packed), ("out", c)])
    if target is not c:
        c[...] = target
    return c


# ---- softmax family ---------------------------------------------------------------------------


def _row_output(op, x, out):
    """Return (buffer C writes into, out): out itself when contiguous, else a new array."""
    if out is None:
        return np.empty_like(x, order="C"), None
    _checks.check_out(op, out, x.shape, x.dtype)
    if out.flags.c_contiguous:
        return out, out
    return np.empty_like(x, order="C"), out


def _row_kernel(op, c_name, out, arrays):
    """Run a softmax-family C kernel over the rows of C-contiguous ``arrays``."""
    x = arrays[0]
    C = x.shape[-1]
    R = x.size // C if C > 0 else 0
    buffer, target = _row_output(op, x, out)
    if x.size > 0:
        suffix = _suffix(x.dtype)
        function = getattr(lib, f"{c_name}_{suffix}")
        pointers = [_pointer(buffer)] + [_pointer(a) for a in arrays]
        status = function(*pointers, R, C)
        _check_status(status, op, f"{c_name}_{suffix}", [("x", a) for a in arrays])
    if target is not None and buffer is not target:
        target[...] = buffer
        return target
    return buffer


def softmax(x, out=None):
    """Softmax over the last axis (any leading shape); see numpy_backend for -inf rows."""
    _checks.check_rows("softmax", x)
    return _row_kernel("softmax", "mr_softmax_forward", out, [np.ascontiguousarray(x)])


def log_softmax(x, out=None):
    """Log-softmax over the last axis (any leading shape)."""
    _checks.check_rows("log_softmax", x)
    return _row_kernel("log_softmax", "mr_log_softmax_forward", out, [np.ascontiguousarray(x)])


def softmax_backward(y, dy, out=None):
    """dx = y * (dy - sum(dy * y)) from the softmax output y."""
    _checks.check_rows("softmax_backward", y, [("dy", dy)])
    # The C argument order is (dinp, dout, out): the upstream gradient comes first.
    return _row_kernel("softmax_backward", "mr_softmax_backward", out,
                       [np.ascontiguousarray(dy), np.ascontiguousarray(y)])


def log_softmax_backward(y, dy, out=None):
    """dx = dy - exp(y) * sum(dy) from the log_softmax output y; 0 where y = -inf."""
    _checks.check_rows("log_softmax_backward", y, [("dy", dy)])
    return _row_kernel("log_softmax_backward", "mr_log_softmax_backward", out,
                       [np.ascontiguousarray(dy), np.ascontiguousarray(y)])


# ---- cross-entropy ---------------------------------------------------------------------------------


def cross_entropy(logits, target, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Fused cross-entropy forward; see numpy_backend.cross_entropy for the contract."""
    op = "cross_entropy"
    R, C = _checks.check_cross_entropy(op, logits, target, ignore_index, reduction, label_smoothing)
    logits_c = np.ascontiguousarray(logits)
    target_c = np.ascontiguousarray(target, dtype=np.int64)
    losses = np.empty(R, dtype=logits.dtype)
    lse = np.empty(R, dtype=logits.dtype)
    counts = np.zeros(2, dtype=np.int64)  # [rows kept, first bad row]
    suffix = _suffix(logits.dtype)
    status = getattr(lib, "mr_cross_entropy_forward_" + suffix)(
        _pointer(losses), _pointer(lse),
        _pointer(counts), _pointer(counts, 8),
        _pointer(logits_c), _pointer(target_c),
        R, C, int(ignore_index), float(label_smoothing),
    )
    if status == lib.MR_ERR_TARGET_RANGE:
        row = int(counts[1])
        _checks.raise_target_error(op, row, int(target_c[row]), C, ignore_index)
    _check_status(status, op, "mr_cross_entropy_forward_" + suffix, [("logits", logits), ("target", target)])
    loss = _checks.reduce_losses(losses, int(counts[0]), reduction, logits.dtype)
    return loss, lse


def cross_entropy_backward(logits, target, lse, grad_loss, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, out=None):
    """Fused cross-entropy backward; see numpy_backend.cross_entropy_backward for the contract."""
    op = "cross_entropy_backward"
    R, C = _checks.check_cross_entropy(op, logits, target, ignore_index, reduction, label_smoothing)
    _checks.check_float(op, "lse", lse)
    if lse.shape != (R,):
        raise ShapeError(f"{op}: lse has shape {lse.shape} but logits {logits.shape} need ({R},)")
    dtype = logits.dtype
    grad_loss = _checks.check_grad_loss(op, grad_loss, reduction, R, dtype)
    target_c = np.ascontiguousarray(target, dtype=np.int64)
    _checks.check_targets_in_range(op, target_c, C, ignore_index)
    buffer, final = _row_output(op, logits, out)

    if reduction == "none":
        scale, scale_stride = np.ascontiguousarray(grad_loss), 1
    elif reduction == "sum":
        scale, scale_stride = grad_loss.reshape(1).copy(), 0
    else:
        n_valid = int(np.count_nonzero(target_c != ignore_index))
        if n_valid == 0:
            buffer.fill(0)
            scale = None
        else:
            scale, scale_stride = np.array([float(grad_loss) / n_valid], dtype=dtype), 0

    if scale is not None and R > 0:
        suffix = _suffix(dtype)
        status = getattr(lib, "mr_cross_entropy_backward_" + suffix)(
            _pointer(buffer), _pointer(scale), scale_stride,
            _pointer(np.ascontiguousarray(logits)), _pointer(target_c),
            _pointer(np.ascontiguousarray(lse, dtype=dtype)),
            R, C, int(ignore_index), float(label_smoothing),
        )
        _check_status(status, op, "mr_cross_entropy_backward_" + suffix, [("logits", logits), ("target", target)])
    if final is not None and buffer is not final:
        final[...] = buffer
        return final
    return buffer


# ---- activations ---------------------------------------------------------------------------------
#
# Inputs reach C as C-contiguous arrays (a copy only when they are not), and C writes
# straight into ``out`` when it is C-contiguous and does not partially overlap an input.
# ``out`` may be the input itself (in place). The numerical conventions are those of
# numpy_backend's activation section.


def _elementwise(op, c_name, out, arrays):
    """Run an elementwise C kernel over same-shape ``arrays`` (input order of the C call)."""
    first = arrays[0][1]
    inputs = [np.ascontiguousarray(x) for _, x in arrays]
    if out is None:
        buffer = np.empty(first.shape, dtype=first.dtype)
    else:
        _checks.check_out(op, out, first.shape, first.dtype)
        partial_overlap = any(np.may_share_memory(out, x) and not _checks._same_buffer(out, x) for x in inputs)
        buffer = out if out.flags.c_contiguous and not partial_overlap else np.empty(first.shape, dtype=first.dtype)
    if first.size > 0:
        suffix = _suffix(first.dtype)
        status = getattr(lib, f"{c_name}_{suffix}")(_pointer(buffer), *[_pointer(x) for x in inputs], first.size)
        _check_status(status, op, f"{c_name}_{suffix}", arrays)
    if out is not None and buffer is not out:
        out[...] = buffer
        return out
    return buffer


def sigmoid(x, out=None):
    """Logistic sigmoid of an array of any shape; see numpy_backend.sigmoid."""
    _checks.check_elementwise("sigmoid", [("x", x)])
    return _elementwise("sigmoid", "mr_sigmoid_forward", out, [("x", x)])


def sigmoid_backward(y, dy, out=None):
    """dx = dy * y * (1 - y) from the sigmoid output y."""
    _checks.check_elementwise("sigmoid_backward", [("y", y), ("dy", dy)])
    # The C argument order is (dx, dy, y): the upstream gradient comes first.
    return _elementwise("sigmoid_backward", "mr_sigmoid_backward", out, [("dy", dy), ("y", y)])


def tanh(x, out=None):
    """Hyperbolic tangent of an array of any shape."""
    _checks.check_elementwise("tanh", [("x", x)])
    return _elementwise("tanh", "mr_tanh_forward", out, [("x", x)])


def tanh_backward(y, dy, out=None):
    """dx = dy * (1 - y^2) from the tanh output y."""
    _checks.check_elementwise("tanh_backward", [("y", y), ("dy", dy)])
    return _elementwise("tanh_backward", "mr_tanh_backward", out, [("dy", dy), ("y", y)])


def gelu_tanh(x, out=None):
    """GELU with PyTorch's tanh approximation; see numpy_backend.gelu_tanh."""
    _checks.check_elementwise("gelu_tanh", [("x", x)])
    return _elementwise("gelu_tanh", "mr_gelu_tanh_forward", out, [("x", x)])


def gelu_tanh_backward(x, dy, out=None):
    """Gradient of gelu_tanh from its input x and the upstream gradient dy."""
    _checks.check_elementwise("gelu_tanh_backward", [("x", x), ("dy", dy)])
    return _elementwise("gelu_tanh_backward", "mr_gelu_tanh_backward", out, [("dy", dy), ("x", x)])


# ---- LSTM cell ----------------------------------------------------------------------------------------
#
# Each (..., W) operand reaches C as a (rows, W) matrix with a leading dimension when its
# last axis has unit stride and its leading axes collapse into one row stride. That covers
# a contiguous array, a row block of a larger buffer and a [t] slice of a (T, B, W) buffer.
# Any other input is copied to a contiguous array, and any other output is computed in
# a contiguous temporary that is then copied into it.


def _row_layout(x, width):
    """Return the leading dimension (in elements) of x viewed as (rows, width), or None."""
    if x.flags.c_contiguous:
        return max(width, 1)
    item = x.itemsize
    if not x.flags.aligned or (width > 1 and x.strides[-1] != item):
        return None
    row_axes = [(n, s) for n, s in zip(x.shape[:-1], x.strides[:-1]) if n > 1]
    if not row_axes:
        return max(width, 1)
    for (outer_n, outer_s), (inner_n, inner_s) in zip(row_axes, row_axes[1:]):
        if outer_s != inner_s * inner_n:
            return None
    row_stride = row_axes[-1][1]
    if row_stride % item or row_stride < max(width, 1) * item:
        return None
    return row_stride // item


def _lstm_inputs(arrays, widths):
    """Return [(array, ld)] for the inputs, copying those C cannot read in place."""
    prepared = []
    for x, width in zip(arrays, widths):
        ld = _row_layout(x, width)
        if ld is None:
            x = np.ascontiguousarray(x)
            ld = max(width, 1)
        prepared.append((x, ld))
    return prepared


def _lstm_outputs(arrays, widths):
    """Return [(buffer, ld)] for the outputs: each output itself, or a contiguous temporary."""
    prepared = []
    for x, width in zip(arrays, widths):
        ld = _row_layout(x, width)
        if ld is None:
            prepared.append((np.empty(x.shape, dtype=x.dtype), max(width, 1)))
        else:
            prepared.append((x, ld))
    return prepared


def _copy_back(outputs, prepared):
    for target, (buffer, _ld) in zip(outputs, prepared):
        if buffer is not target:
            target[...] = buffer


def _lstm_call(op, c_name, outputs, inputs, rows, hidden):
    """Run an LSTM cell C kernel on ``rows`` rows; ``outputs`` and ``inputs`` are lists of (name, array, width)."""
    out_arrays = [x for _, x, _ in outputs]
    out_prepared = _lstm_outputs(out_arrays, [w for _, _, w in outputs])
    in_prepared = _lstm_inputs([x for _, x, _ in inputs], [w for _, _, w in inputs])
    if rows > 0 and hidden > 0:
        dtype = out_arrays[0].dtype
        suffix = _suffix(dtype)
        arguments = []
        for buffer, ld in out_prepared + in_prepared:
            arguments += [_pointer(buffer), ld]
        status = getattr(lib, f"{c_name}_{suffix}")(*arguments, rows, hidden)
        _check_status(status, op, f"{c_name}_{suffix}", [(name, x) for name, x, _ in outputs + inputs])
    _copy_back(out_arrays, out_prepared)


def lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h):
    """Run one LSTM step's elementwise part into the given buffers; see numpy_backend.lstm_cell_forward."""
    hidden = _checks.check_lstm_forward(pre, c_prev, gates, c, tanh_c, h)
    wide, narrow = 4 * hidden, hidden
    _lstm_call("lstm_cell_forward", "mr_lstm_cell_forward",
               [("gates", gates, wide), ("c", c, narrow), ("tanh_c", tanh_c, narrow), ("h", h, narrow)],
               [("pre", pre, wide), ("c_prev", c_prev, narrow)], c_prev.size // max(hidden, 1), hidden)


def lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch):
    """Write one LSTM step's cotangents into the given buffers; see numpy_backend.lstm_cell_backward."""
    hidden = _checks.check_lstm_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch)
    wide, narrow = 4 * hidden, hidden
    _lstm_call("lstm_cell_backward", "mr_lstm_cell_backward",
               [("d_pre", d_pre, wide), ("dc_prev", dc_prev, narrow), ("scratch", scratch, narrow)],
               [("dh", dh, narrow), ("dc", dc, narrow), ("gates", gates, wide), ("c_prev", c_prev, narrow),
                ("tanh_c", tanh_c, narrow)], c_prev.size // max(hidden, 1), hidden)


# ---- threads and build facts ------------------------------------------------------------------------


def set_num_threads(n):
    """Set the threads of the threaded GEMM and the large row kernels (n < 1: every core).

    With more than one thread, numpy's BLAS is limited to one (see _keep_blas_off_our_cores).
    """
    lib.mr_set_num_threads(int(n))
    _keep_blas_off_our_cores(get_num_threads())


def get_num_threads():
    return int(lib.mr_get_num_threads())


def build_info():
    """Return the C core's build facts as a dict."""
    mr32, nr32, mr64, nr64 = (ffi.new("int *") for _ in range(4))
    lib.mr_gemm_micro_tile(0, mr32, nr32)
    lib.mr_gemm_micro_tile(1, mr64, nr64)
    return {
        "compiler": ffi.string(lib.mr_build_compiler()).decode(),
        "flags": ffi.string(lib.mr_build_flags()).decode(),
        "simd": ffi.string(lib.mr_simd_level()).decode(),
        "simd_compiled": bool(lib.mr_simd_compiled()),
        "openmp": bool(lib.mr_openmp_enabled()),
        "threads": get_num_threads(),
        "micro_tile": {"float32": (mr32[0], nr32[0]), "float64": (mr64[0], nr64[0])},
    }


_env_threads = os.environ.get("MINIREPARAM_NUM_THREADS")
if _env_threads:
    try:
        lib.mr_set_num_threads(int(_env_threads))
    except ValueError:
        raise ValueError(
            f"MINIREPARAM_NUM_THREADS must be an integer thread count, got {_env_threads!r}"
        ) from None
_keep_blas_off_our_cores(get_num_threads())
