"""Build csrc/tests/fuzz_kernels.c with AddressSanitizer and UndefinedBehaviorSanitizer and run it.

The driver fuzzes every GEMM rung (AVX2 and portable kernels) over one- and two-level
batches, the GEMM against a pre-packed B, softmax, log-softmax and cross-entropy against a
float64 reference, and the activation and LSTM cell kernels against a long double
reference. Operands are allocated to their exact size, so an out-of-bounds access aborts
the run. The activation arrays also end at a protected page, because GCC's
AddressSanitizer does not check AVX2 masked loads and stores. Skipped with a reason when no C compiler with the
sanitizers is available.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parent.parent / "csrc"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g", "-O1"]
# The driver runs about 5 s per 1000 cases on an idle 2-core machine (plus about 8 s
# to compile), so 1500 cases keep the test near 16 s.
CASES = "1500"


def _compiler():
    for name in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _compiles(cc, tmp, flags, code="int main(void) { return 0; }\n"):
    source = tmp / "probe.c"
    source.write_text(code)
    result = subprocess.run([cc, *flags, str(source), "-o", str(tmp / "probe")], capture_output=True, text=True)
    return result.returncode == 0 and subprocess.run([str(tmp / "probe")], capture_output=True).returncode == 0


def _build_driver(cc, tmp):
    """Compile the core and the driver with the sanitizers; return the binary path."""
    openmp = ["-fopenmp"] if _compiles(cc, tmp, SANITIZE + ["-fopenmp"]) else []
    avx2 = _compiles(cc, tmp, ["-mavx2", "-mfma"], "#include <immintrin.h>\nint main(void) { return 0; }\n")
    macros = ["-DMR_HAVE_AVX2"] if avx2 else []
    objects = []
    for name in ("core.c", "gemm.c", "softmax.c", "cross_entropy.c", "activation.c"):
        objects.append(_compile_object(cc, tmp, CSRC / name, SANITIZE + openmp + macros))
    if avx2:
        for name in ("gemm_avx2.c", "softmax_avx2.c", "activation_avx2.c"):
            objects.append(_compile_object(cc, tmp, CSRC / name, SANITIZE + macros + ["-mavx2", "-mfma"]))
    binary = tmp / "fuzz_kernels"
    command = [cc, *SANITIZE, *openmp, *macros, str(CSRC / "tests" / "fuzz_kernels.c"), *objects, "-lm",
               "-pthread", "-o", str(binary)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"linking the fuzz driver failed:\n{' '.join(command)}\n{result.stderr}"
    return binary


def _compile_object(cc, tmp, source, flags):
    output = tmp / (source.stem + ".o")
    command = [cc, *flags, "-c", str(source), "-o", str(output)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"compiling {source.name} failed:\n{' '.join(command)}\n{result.stderr}"
    return str(output)


def test_fuzz_kernels_under_sanitizers(tmp_path):
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler found (tried $CC, gcc, cc, clang)")
    if not _compiles(cc, tmp_path, SANITIZE):
        pytest.skip(f"{cc} cannot build and run a program with -fsanitize=address,undefined here")

    binary = _build_driver(cc, tmp_path)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    result = subprocess.run([str(binary), CASES, "1"], capture_output=True, text=True, timeout=300, env=env)
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"fuzz driver failed (exit {result.returncode}):\n{report[-6000:]}"
    assert " 0 failed" in result.stdout, report[-6000:]
