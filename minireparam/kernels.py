"""Raw kernels on numpy arrays, for benchmarks and experiments.

These are the functions the autograd ops call, without tensors or a tape, run on the
active backend (``minireparam.backend``: C when built, else numpy). This module imports
only numpy and ``minireparam.backend``.

Example:
    >>> import numpy as np
    >>> import minireparam.kernels as k
    >>> a = np.ones((64, 32), np.float32)
    >>> k.matmul(a, a.T, variant="packed").shape     # a.T reaches C as a transpose flag
    (64, 64)
"""
import os

from . import backend as _backend

__all__ = [
    "matmul", "softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "cross_entropy",
    "cross_entropy_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "gelu_tanh",
    "gelu_tanh_backward", "lstm_cell_forward", "lstm_cell_backward", "info", "set_num_threads",
    "get_num_threads", "VARIANTS",
]

# The GEMM rungs, from the simplest to the fastest; "auto" picks per shape.
VARIANTS = tuple(_backend.GEMM_VARIANTS)


def matmul(a, b, variant="auto", out=None):
    """a @ b with numpy.matmul's batch broadcasting on the GEMM rung ``variant``.

    Transposed views and row-strided slices reach C without a copy. Variants: "auto",
    "naive", "loop_order", "blocked", "packed", "threaded", "small".
    """
    return _backend.current().matmul(a, b, out=out, variant=variant)


def softmax(x, out=None):
    """Softmax over the last axis."""
    return _backend.current().softmax(x, out=out)


def log_softmax(x, out=None):
    """Log-softmax over the last axis."""
    return _backend.current().log_softmax(x, out=out)


def softmax_backward(y, dy, out=None):
    """Gradient of softmax from its output y and the upstream gradient dy."""
    return _backend.current().softmax_backward(y, dy, out=out)


def log_softmax_backward(y, dy, out=None):
    """Gradient of log_softmax from its output y and the upstream gradient dy."""
    return _backend.current().log_softmax_backward(y, dy, out=out)


def cross_entropy(logits, target, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Fused cross-entropy of (N, C) logits and (N,) int64 targets; returns (loss, lse)."""
    return _backend.current().cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction,
                                            label_smoothing=label_smoothing)


def cross_entropy_backward(logits, target, lse, grad_loss, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, out=None):
    """Gradient of cross_entropy with respect to the logits."""
    return _backend.current().cross_entropy_backward(
        logits, target, lse, grad_loss, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, out=out,
    )


def sigmoid(x, out=None):
    """Logistic sigmoid 1 / (1 + e^-x), elementwise, without overflow."""
    return _backend.current().sigmoid(x, out=out)


def sigmoid_backward(y, dy, out=None):
    """Gradient of sigmoid from its output y: dy * y * (1 - y)."""
    return _backend.current().sigmoid_backward(y, dy, out=out)


def tanh(x, out=None):
    """Hyperbolic tangent, elementwise."""
    return _backend.current().tanh(x, out=out)


def tanh_backward(y, dy, out=None):
    """Gradient of tanh from its output y: dy * (1 - y^2)."""
    return _backend.current().tanh_backward(y, dy, out=out)


def gelu_tanh(x, out=None):
    """GELU with PyTorch's tanh approximation, elementwise."""
    return _backend.current().gelu_tanh(x, out=out)


def gelu_tanh_backward(x, dy, out=None):
    """Gradient of gelu_tanh from its input x and the upstream gradient dy."""
    return _backend.current().gelu_tanh_backward(x, dy, out=out)


def lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h):
    """Write one LSTM step's elementwise part into caller-owned buffers (see ``numpy_backend``)."""
    _backend.current().lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h)


def lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch):
    """Write one LSTM step's cotangents into caller-owned buffers (see ``numpy_backend``)."""
    _backend.current().lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch)


def set_num_threads(n):
    """Set the C kernels' thread count (n < 1: every core). Also settable by MINIREPARAM_NUM_THREADS."""
    if _backend.c_available():
        _backend.c_backend.set_num_threads(n)
    _backend.numpy_backend.set_num_threads(n)


def get_num_threads():
    """Thread count of the active backend's kernels."""
    return _backend.current().get_num_threads()


def info():
    """Describe the kernels in use: backend, compiler, flags, SIMD level, OpenMP, threads, variants.

    Returns a dict. ``backend`` names the active backend and ``threads`` is its thread
    count (always 1 for numpy). ``compiler``, ``flags``, ``simd``, ``openmp``,
    ``c_threads`` and ``micro_tile`` describe the C core whenever it is built, even while
    the numpy backend is active; they are None or False when it is not built.
    """
    active = _backend.current()
    facts = {
        "backend": active.name,
        "c_built": _backend.c_available(),
        "c_unavailable_reason": _backend.c_unavailable_reason(),
        "variants": list(VARIANTS),
        "threads": active.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if _backend.c_available():
        build = _backend.c_backend.build_info()
        facts.update(
            compiler=build["compiler"],
            flags=build["flags"],
            simd=build["simd"],
            simd_compiled=build["simd_compiled"],
            openmp=build["openmp"],
            c_threads=build["threads"],
            micro_tile=build["micro_tile"],
        )
    else:
        facts.update(compiler=None, flags=None, simd=None, simd_compiled=False, openmp=False, c_threads=None,
                     micro_tile=None)
    return facts
