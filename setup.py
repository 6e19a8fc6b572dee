"""Build script for minireparam.

The C core in csrc/ is compiled through cffi (API mode) into ``minireparam._ccore``.
The build never fails the install. ``OptionalCoreBuild`` probes the compiler and drops
OpenMP or the AVX2 kernels when they do not compile. When nothing compiles it skips the
C core, and minireparam runs on its numpy backend. It prints one line per feature with
✓ or ✗, which ``pip install -v`` shows.
"""
import os
import sys
import tempfile

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

CCORE_MODULE = "minireparam._ccore"


def report(ok, feature, detail):
    """Print one build-summary line to stderr (pip shows it with -v)."""
    mark = "✓" if ok else "✗"
    print(f"minireparam: {mark} {feature}: {detail}", file=sys.stderr, flush=True)


class OptionalCoreBuild(build_ext):
    """build_ext that builds the C core with whatever the compiler supports, or not at all."""

    def run(self):
        self._skipped_extensions = set()
        super().run()

    # ---- probes -------------------------------------------------------------------

    def _compiles(self, code, flags, link=False):
        """Return True when `code` compiles (and links, if asked) with `flags`."""
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "probe.c")
            with open(source, "w", encoding="utf-8") as handle:
                handle.write(code)
            try:
                objects = self.compiler.compile([source], output_dir=tmp, extra_postargs=flags)
                if link:
                    self.compiler.link_executable(objects, os.path.join(tmp, "probe"), extra_postargs=flags)
            except Exception:  # CompileError, LinkError, or a missing compiler binary (OSError)
                return False
        return True

    def _probe(self):
        """Return the features this compiler supports: {"compiler", "openmp", "avx2"}."""
        features = set()
        if not self._compiles("int main(void) { return 0; }\n", []):
            return features
        features.add("compiler")
        openmp_probe = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
        if self._compiles(openmp_probe, ["-fopenmp"], link=True):
            features.add("openmp")
        avx2_probe = (
            "#include <immintrin.h>\n"
            "int main(void) {\n"
            "    __m256 x = _mm256_fmadd_ps(_mm256_set1_ps(1.0f), _mm256_set1_ps(2.0f), _mm256_setzero_ps());\n"
            "    return _mm256_cvtss_f32(x) == 2.0f ? 0 : 1;\n"
            "}\n"
        )
        if self._compiles(avx2_probe, ["-mavx2", "-mfma"], link=True):
            features.add("avx2")
        return features

    # ---- build ----------------------------------------------------------------------

    def build_extension(self, ext):
        if ext.name != CCORE_MODULE:
            super().build_extension(ext)
            return
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc"))
        import build_ccore  # noqa: E402  (csrc/build_ccore.py, next to the C sources)

        features = self._probe()
        if "compiler" not in features:
            report(False, "C core", "no working C compiler; minireparam uses its numpy backend. "
                   "Install gcc or clang and reinstall to build it.")
            self._skipped_extensions.add(ext.name)
            return

        base = dict(
            compile_args=list(ext.extra_compile_args),
            link_args=list(ext.extra_link_args),
            objects=list(ext.extra_objects or []),
            macros=list(ext.define_macros or []),
        )
        # Try the richest build first and drop one feature per failure.
        attempts = []
        for openmp in ("openmp" in features, False):
            for avx2 in ("avx2" in features, False):
                if (openmp, avx2) not in attempts:
                    attempts.append((openmp, avx2))
        last_error = None
        for openmp, avx2 in attempts:
            try:
                self._build_with(ext, build_ccore, base, openmp, avx2)
            except Exception as error:  # a compile or link failure of this combination
                last_error = error
                continue
            report(True, "C core", f"built {CCORE_MODULE} with {self.compiler.compiler_type} compiler")
            report(openmp, "OpenMP", "threaded kernels" if openmp else
                   "not available; kernels run on one thread (install libgomp / use gcc to enable)")
            report(avx2, "AVX2/FMA kernels", "compiled, chosen at run time when the CPU has AVX2 and FMA"
                   if avx2 else "not compiled; portable C kernels only (needs a compiler that accepts -mavx2 -mfma)")
            return
        report(False, "C core", f"build failed ({last_error}); minireparam uses its numpy backend")
        self._skipped_extensions.add(ext.name)

    def _build_with(self, ext, build_ccore, base, openmp, avx2):
        """Configure `ext` for one feature combination and compile it."""
        flags = build_ccore.BASE_FLAGS + (build_ccore.OPENMP_FLAGS if openmp else [])
        summary = " ".join(flags + (["-DMR_HAVE_AVX2 (" + " ".join(build_ccore.AVX2_FLAGS) + " on *_avx2.c)"]
                                    if avx2 else []))
        macros = base["macros"] + [("MR_BUILD_FLAGS", '"' + summary + '"')]
        objects = list(base["objects"])
        if avx2:
            macros.append(("MR_HAVE_AVX2", "1"))
            objects += self.compiler.compile(
                build_ccore.source_paths(build_ccore.AVX2_SOURCES),
                output_dir=self.build_temp,
                macros=macros,
                include_dirs=["csrc"],
                extra_postargs=build_ccore.BASE_FLAGS + build_ccore.AVX2_FLAGS,
            )
        ext.define_macros = macros
        ext.extra_objects = objects
        ext.extra_compile_args = base["compile_args"] + (build_ccore.OPENMP_FLAGS if openmp else [])
        ext.extra_link_args = base["link_args"] + (build_ccore.OPENMP_FLAGS if openmp else [])
        # Force a rebuild: a previous attempt may have left objects built with other flags.
        self.force = True
        super().build_extension(ext)

    # ---- a skipped extension has no output to copy or record ------------------------

    def _without_skipped(self):
        return [ext for ext in self.extensions if ext.name not in getattr(self, "_skipped_extensions", ())]

    def copy_extensions_to_source(self):
        kept, self.extensions = self.extensions, self._without_skipped()
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = kept

    def get_outputs(self):
        kept, self.extensions = self.extensions, self._without_skipped()
        try:
            return super().get_outputs()
        finally:
            self.extensions = kept

    def get_output_mapping(self):
        kept, self.extensions = self.extensions, self._without_skipped()
        try:
            return super().get_output_mapping()
        finally:
            self.extensions = kept


setup(
    name="minireparam",
    version="0.1.0",
    description="A from-scratch reverse-mode autodiff engine on numpy with a small C core",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["minireparam", "minireparam.*"]),
    install_requires=["numpy>=1.23", "cffi>=1.15"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80", "scipy>=1.9"],
        "examples": ["scikit-learn>=1.1", "matplotlib>=3.5", "tqdm>=4.60"],
        "bench": ["threadpoolctl>=3.1", "matplotlib>=3.5"],
    },
    cffi_modules=["csrc/build_ccore.py:ffibuilder"],
    cmdclass={"build_ext": OptionalCoreBuild},
)
