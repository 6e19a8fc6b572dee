"""cffi definition of the C core, compiled into ``minireparam._ccore`` (API mode).

setup.py names this file in ``cffi_modules``; its build_ext then probes the
compiler and adjusts the extension (OpenMP, the AVX2 objects) before compiling.
The cdef is the block between the CFFI-DECLARATIONS markers of minireparam.h, so
the header stays the one list of prototypes.

To build by hand, without pip (from the repository root):
    python csrc/build_ccore.py
which writes minireparam/_ccore*.so with OpenMP and the AVX2 kernels.
"""
import os
import re
import sys

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Sources relative to the repository root, as setuptools requires.
CSRC = os.path.relpath(HERE, ROOT) if os.path.isabs(HERE) else HERE
PORTABLE_SOURCES = ["core.c", "gemm.c", "softmax.c", "cross_entropy.c", "activation.c"]
AVX2_SOURCES = ["gemm_avx2.c", "softmax_avx2.c", "activation_avx2.c"]

# -O3 for the vectorizer; no -march=native, so the module runs on any x86-64 CPU
# and the AVX2 code is reached only through the run-time check in core.c.
BASE_FLAGS = ["-O3", "-std=c11", "-fno-strict-aliasing"]
AVX2_FLAGS = ["-mavx2", "-mfma"]
OPENMP_FLAGS = ["-fopenmp"]


def read_cdef():
    """Return the declarations between the CFFI-DECLARATIONS markers of minireparam.h.

    Data pointers (float*, double*, int64_t*) are declared void* for cffi, so Python can
    pass ``ffi.from_buffer(array)`` without a typed cast (about half the cost per
    pointer); the C compiler still checks the real prototypes, and the Python wrapper
    checks every dtype before the call.
    """
    with open(os.path.join(HERE, "minireparam.h"), encoding="utf-8") as header:
        text = header.read()
    match = re.search(r"/\* CFFI-DECLARATIONS-BEGIN \*/(.*)/\* CFFI-DECLARATIONS-END \*/", text, re.S)
    if match is None:
        raise RuntimeError("csrc/minireparam.h has no CFFI-DECLARATIONS-BEGIN/END block")
    return re.sub(r"\b(const\s+)?(float|double|int64_t)\s*\*", r"\1void* ", match.group(1))


def source_paths(names, relative_to_root=True):
    """Return the paths of csrc files, relative to the repository root or absolute."""
    base = os.path.join("csrc") if relative_to_root else HERE
    return [os.path.join(base, name) for name in names]


ffibuilder = cffi.FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "minireparam._ccore",
    '#include "minireparam.h"',
    sources=source_paths(PORTABLE_SOURCES),
    include_dirs=["csrc"],
    extra_compile_args=list(BASE_FLAGS),
)


def build_by_hand():
    """Compile the module in place with OpenMP and AVX2, for work without pip."""
    os.chdir(ROOT)
    flags = BASE_FLAGS + OPENMP_FLAGS + ["-DMR_HAVE_AVX2", '-DMR_BUILD_FLAGS="by hand: -O3 -fopenmp avx2"']
    objects = []
    for path in source_paths(AVX2_SOURCES):
        obj = os.path.join("build", os.path.basename(path) + ".o")
        os.makedirs("build", exist_ok=True)
        command = f"cc {' '.join(BASE_FLAGS + AVX2_FLAGS)} -DMR_HAVE_AVX2 -fPIC -Icsrc -c {path} -o {obj}"
        if os.system(command) != 0:
            sys.exit(f"build_ccore: failed to compile {path}")
        objects.append(obj)
    builder = cffi.FFI()
    builder.cdef(read_cdef())
    builder.set_source(
        "minireparam._ccore",
        '#include "minireparam.h"',
        sources=source_paths(PORTABLE_SOURCES),
        include_dirs=["csrc"],
        extra_compile_args=flags,
        extra_link_args=OPENMP_FLAGS,
        extra_objects=objects,
    )
    builder.compile(tmpdir=".", verbose=True)


if __name__ == "__main__":
    build_by_hand()
