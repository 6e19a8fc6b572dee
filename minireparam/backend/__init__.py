"""Kernel backends: one small interface, implemented by the C core and by numpy.

The ops call ``current().matmul(...)``, ``current().softmax(...)`` and so on, on numpy
arrays. Two implementations exist: ``"c"`` (csrc/ through cffi, built by pip install) and
``"numpy"`` (the reference, always available). Choose one with:

- the environment variable ``MINIREPARAM_BACKEND=c|numpy``, read on first use;
- ``set_backend(name)``, or ``with use(name): ...`` for a block.

By default the C backend is used when it is built. Otherwise numpy is used, with one
warning that gives the reason C is unavailable. Asking for C explicitly when it is not built raises
BackendUnavailableError with build instructions, and so does any use of the backend
when ``MINIREPARAM_REQUIRE_C=1`` is set and the C core is missing (CI sets it).

Interface of a backend (module attributes; arrays in, arrays out):
    name                                   "c" or "numpy"
    matmul(a, b, trans_a=False, trans_b=False, out=None, variant="auto")
    gemm(a, b, c, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, variant="auto")
    pack_b(b, trans_b=False) -> PackedMatrix   op(b) prepared once for many gemm_packed calls
    gemm_packed(a, packed, c, trans_a=False, alpha=1.0, beta=0.0)
    softmax(x, out=None), log_softmax(x, out=None)
    softmax_backward(y, dy, out=None), log_softmax_backward(y, dy, out=None)
    cross_entropy(logits, target, ignore_index=-100, reduction="mean", label_smoothing=0.0)
        -> (loss, lse)
    cross_entropy_backward(logits, target, lse, grad_loss, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0, out=None) -> dlogits
    sigmoid(x, out=None), sigmoid_backward(y, dy, out=None)     backward from the output y
    tanh(x, out=None), tanh_backward(y, dy, out=None)
    gelu_tanh(x, out=None), gelu_tanh_backward(x, dy, out=None)  backward from the input x
    lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h)          writes gates, c, tanh_c, h
    lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch)
    set_num_threads(n), get_num_threads()
"""
import contextlib
import os
import warnings

from . import numpy_backend
from ._checks import GEMM_VARIANTS

__all__ = [
    "BackendUnavailableError", "GEMM_VARIANTS", "available", "c_available", "c_unavailable_reason",
    "current", "get_backend", "set_backend", "use",
]

BUILD_HINT = (
    "build it with `pip install -e .` (or `pip install .`) on a machine with a C compiler "
    "(gcc or clang), then check `python -c \"import minireparam.kernels as k; print(k.info())\"`"
)


class BackendUnavailableError(RuntimeError):
    """The requested kernel backend cannot be used here; the message explains how to build it."""


# ---- loading the C backend ----------------------------------------------------------------

_c_module = None
_c_error = None  # reason string when the C backend failed to load


def _load_c():
    """Import the C backend once; return it or None (the reason is kept in _c_error)."""
    global _c_module, _c_error
    if _c_module is None and _c_error is None:
        try:
            from . import c_backend
        except ImportError as error:
            _c_error = f"the C core minireparam._ccore is not built or failed to load ({error})"
        else:
            _c_module = c_backend
    return _c_module


def c_available():
    """True when the C core is built and loads."""
    return _load_c() is not None


def c_unavailable_reason():
    """Why the C backend cannot be used, or None when it can."""
    _load_c()
    return _c_error


def available():
    """Names of the usable backends, C first when built."""
    return (["c"] if c_available() else []) + ["numpy"]


# ---- selection -------------------------------------------------------------------------------

_active = None
_warned = False


def _require_c():
    return os.environ.get("MINIREPARAM_REQUIRE_C", "") not in ("", "0")


def _resolve(name):
    """Return the backend module called ``name``; raise when it cannot be used."""
    if name == "numpy":
        if _require_c() and not c_available():
            raise BackendUnavailableError(
                f"MINIREPARAM_REQUIRE_C=1 but {c_unavailable_reason()}; {BUILD_HINT}"
            )
        return numpy_backend
    if name == "c":
        module = _load_c()
        if module is None:
            raise BackendUnavailableError(f"the C backend was requested but {_c_error}; {BUILD_HINT}")
        return module
    raise ValueError(f"unknown backend {name!r}; expected 'c' or 'numpy'")


def _default():
    """Choose the backend when none was set: the environment, else C, else numpy (warning once)."""
    global _warned
    requested = os.environ.get("MINIREPARAM_BACKEND", "").strip().lower()
    if requested:
        if requested not in ("c", "numpy"):
            raise ValueError(f"MINIREPARAM_BACKEND must be 'c' or 'numpy', got {requested!r}")
        return _resolve(requested)
    if c_available():
        return _c_module
    if _require_c():
        raise BackendUnavailableError(f"MINIREPARAM_REQUIRE_C=1 but {_c_error}; {BUILD_HINT}")
    if not _warned:
        _warned = True
        warnings.warn(
            f"minireparam is using its numpy backend because {_c_error}. Results are the same "
            f"but slower; to get the C kernels, {BUILD_HINT}.",
            RuntimeWarning,
            stacklevel=3,
        )
    return numpy_backend


def current():
    """Return the active backend module (chosen on first call, see the module docstring)."""
    global _active
    if _active is None:
        _active = _default()
    return _active


def get_backend():
    """Name of the active backend: "c" or "numpy"."""
    return current().name


def set_backend(name):
    """Make ``name`` ("c" or "numpy") the active backend; raises if it cannot be used."""
    global _active
    _active = _resolve(name)


@contextlib.contextmanager
def use(name):
    """Run a block with backend ``name`` active, restoring the previous one afterwards.

    The setting is process-wide (not per thread), like numpy's own error state.
    """
    global _active
    previous = _active
    _active = _resolve(name)
    try:
        yield _active
    finally:
        _active = previous
