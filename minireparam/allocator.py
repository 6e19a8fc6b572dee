"""Keep freed array memory in the process, so a training step reuses it instead of faulting it in.

numpy takes every array's memory from the C library's ``malloc``. glibc serves blocks
above a threshold (128 KiB at first, then adjusted to the program's allocations) with
fresh ``mmap`` pages and returns freed memory at the top of its heap to the kernel. A
training step frees and reallocates the same activation and gradient sizes every time,
so each step maps fresh pages, which the kernel zeroes on first touch. In a W-ATTN step
that is about 6,000 page faults and a fifth of the CPU time (benchmarks/RESULTS.md).

``reuse_freed_memory()`` sets glibc's mmap threshold to 32 MiB (and so turns off its
adjustment) and its trim threshold to 512 MiB, so blocks up to 32 MiB come from the heap
and freed heap memory stays for the next step. It changes the whole process, for every
library that uses ``malloc``, and it cannot be undone. The cost is memory: the process
keeps up to 512 MiB that it freed. The training harness
(``minireparam.models.training.Trainer``) calls it, and so does
``benchmarks/bench_training.py`` for both sides of every comparison.
"""
import ctypes
import ctypes.util

__all__ = ["reuse_freed_memory"]

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Above every array of the benchmark workloads: the largest, W-LSTM's gate buffers,
# take 8 MiB. Larger blocks keep their own mmap pages.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 512 * 1024 * 1024


def _glibc_mallopt():
    """Return glibc's ``mallopt``, or None on another C library (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    # gnu_get_libc_version exists only in glibc, whose mallopt parameters are the ones above.
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return None
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def reuse_freed_memory():
    """Make glibc keep freed blocks up to 32 MiB in the heap for reuse (process-wide).

    Returns:
        True when glibc accepted both settings; False on another C library, where
        nothing changes.

    Example:
        >>> import minireparam
        >>> minireparam.allocator.reuse_freed_memory() in (True, False)
        True
    """
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    # mallopt returns 1 on success and 0 when it rejects a value.
    mmap_set = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    trim_set = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mmap_set and trim_set
