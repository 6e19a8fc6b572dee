"""Backend selection, build facts and the import boundary of minireparam.kernels.

Selection is process-wide state read from the environment on first use, so most cases
run a short Python program in a subprocess with the environment under test.
"""
import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minireparam.backend as backend
import minireparam.kernels as kernels

PACKAGE = Path(backend.__file__).resolve().parent.parent
C_BUILT = backend.c_available()
needs_c = pytest.mark.skipif(not C_BUILT, reason=f"C backend not built: {backend.c_unavailable_reason()}")

# Makes the C core fail to import, as on a machine where it was never built.
HIDE_C_CORE = "import sys; sys.modules['minireparam._ccore'] = None\n"


def run_python(code, **env_overrides):
    """Run ``code`` in a fresh interpreter; return (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MINIREPARAM_BACKEND", "MINIREPARAM_REQUIRE_C", "MINIREPARAM_NUM_THREADS")}
    env.update(env_overrides)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                            timeout=120)
    return result.returncode, result.stdout, result.stderr


def test_require_c_reports_c_backend():
    """With MINIREPARAM_REQUIRE_C=1 (as CI runs), info() reports C, or the import fails loudly."""
    code, out, err = run_python(
        "import json, minireparam.kernels as k; print(json.dumps(k.info()['backend']))",
        MINIREPARAM_REQUIRE_C="1",
    )
    if C_BUILT:
        assert code == 0, err
        assert json.loads(out) == "c"
    else:
        assert code != 0
        assert "MINIREPARAM_REQUIRE_C=1" in err
        assert "pip install -e ." in err


def test_this_process_honours_require_c():
    if os.environ.get("MINIREPARAM_REQUIRE_C", "") in ("", "0"):
        pytest.skip("MINIREPARAM_REQUIRE_C is not set in this run")
    assert backend.c_available(), backend.c_unavailable_reason()
    assert kernels.info()["backend"] == "c"


@needs_c
def test_default_is_c_when_built():
    code, out, err = run_python("import minireparam.backend as b; print(b.current().name)")
    assert code == 0, err
    assert out.strip() == "c"
    assert "Warning" not in err


def test_environment_selects_numpy():
    code, out, err = run_python("import minireparam.backend as b; print(b.current().name)", MINIREPARAM_BACKEND="numpy")
    assert code == 0, err
    assert out.strip() == "numpy"


def test_environment_rejects_unknown_backend():
    code, _, err = run_python("import minireparam.backend as b; b.current()", MINIREPARAM_BACKEND="cuda")
    assert code != 0
    assert "MINIREPARAM_BACKEND must be 'c' or 'numpy', got 'cuda'" in err


def test_missing_c_core_falls_back_with_one_warning():
    code, out, err = run_python(HIDE_C_CORE + textwrap.dedent("""
        import warnings
        import numpy as np
        import minireparam.backend as b
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = b.current().name
            b.current()
            b.current().softmax(np.zeros((2, 3)))
        print(first, b.available(), len(caught))
        print(caught[0].message)
    """))
    assert code == 0, err
    first_line, message = out.strip().split("\n", 1)
    assert first_line == "numpy ['numpy'] 1", "numpy backend with exactly one warning"
    assert "not built" in message
    assert "pip install -e ." in message


def test_requesting_missing_c_explains_the_build():
    code, out, err = run_python(HIDE_C_CORE + textwrap.dedent("""
        import minireparam.backend as b
        for request in (lambda: b.set_backend("c"), lambda: b.use("c").__enter__()):
            try:
                request()
            except b.BackendUnavailableError as error:
                print("raised:", error)
        print("reason:", b.c_unavailable_reason())
    """))
    assert code == 0, err
    raised = [line for line in out.splitlines() if line.startswith("raised:")]
    assert len(raised) == 2, out
    for line in raised:
        assert "C backend was requested" in line
        assert "pip install -e ." in line
        assert "C compiler" in line
    assert "minireparam._ccore is not built" in out


def test_missing_c_core_with_require_c_is_an_error():
    code, _, err = run_python(HIDE_C_CORE + "import minireparam.backend as b; b.current()", MINIREPARAM_REQUIRE_C="1")
    assert code != 0
    assert "BackendUnavailableError" in err
    assert "MINIREPARAM_REQUIRE_C=1" in err


def test_use_restores_previous_backend():
    before = backend.current()
    with backend.use("numpy") as module:
        assert module.name == "numpy"
        assert backend.get_backend() == "numpy"
        assert kernels.info()["backend"] == "numpy"
    assert backend.current() is before
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        with backend.use("fortran"):
            pass
    assert backend.current() is before


def test_set_backend_switches_kernels():
    before = backend.get_backend()
    try:
        for name in backend.available():
            backend.set_backend(name)
            assert kernels.info()["backend"] == name
            np.testing.assert_allclose(kernels.softmax(np.zeros((1, 4))), np.full((1, 4), 0.25))
    finally:
        backend.set_backend(before)


@needs_c
def test_info_describes_the_build():
    facts = kernels.info()
    assert facts["c_built"] is True
    assert facts["c_unavailable_reason"] is None
    assert facts["compiler"]
    assert facts["flags"]
    assert facts["simd"] in ("avx2+fma", "portable")
    assert isinstance(facts["openmp"], bool)
    assert facts["c_threads"] >= 1
    assert set(facts["variants"]) == {"auto", "naive", "loop_order", "blocked", "packed", "threaded", "small"}
    assert facts["micro_tile"]["float32"][0] >= 1


@needs_c
def test_num_threads_from_environment_and_setter():
    code, out, err = run_python(textwrap.dedent("""
        import minireparam.kernels as k, minireparam.backend as b
        b.set_backend("c")
        first = k.get_num_threads()
        k.set_num_threads(2)
        print(first, k.get_num_threads(), k.info()["c_threads"])
    """), MINIREPARAM_NUM_THREADS="1")
    assert code == 0, err
    first, after, reported = out.split()
    assert first == "1"
    if kernels.info()["openmp"]:
        assert after == reported == "2"
    else:
        assert after == reported == "1", "without OpenMP the kernels run on one thread"


def test_kernels_imports_only_backend_and_numpy():
    """minireparam.kernels is usable by benchmarks without the autograd layers."""
    tree = ast.parse((PACKAGE / "kernels.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or "") + ":" + ",".join(a.name for a in node.names))
    assert imported <= {"os", "numpy", ".:backend"}, f"minireparam/kernels.py imports {sorted(imported)}"


def test_backend_package_imports_no_upper_layer():
    """The backend works on ndarrays and imports nothing of tensors, ops or nn."""
    allowed_relative = {"..errors", ".", "._checks", ".numpy_backend", ".."}
    for path in sorted((PACKAGE / "backend").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                module = "." * node.level + (node.module or "")
                assert module in allowed_relative, f"{path.name} imports {module}"
                if module == "..":
                    assert [a.name for a in node.names] == ["_ccore"], f"{path.name} imports {module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("minireparam"), f"{path.name} imports {alias.name}"


@needs_c
def test_c_status_errors_name_the_op():
    from minireparam.backend import c_backend

    with pytest.raises(MemoryError, match=r"matmul: C kernel mr_gemm_batched_f32 failed \(out of memory\) on a \(2, 3\)"):
        c_backend._check_status(c_backend.lib.MR_ERR_OUT_OF_MEMORY, "matmul", "mr_gemm_batched_f32",
                                [("a", np.zeros((2, 3), np.float32))])
    with pytest.raises(RuntimeError, match=r"softmax: C kernel mr_softmax_forward_f64 failed \(invalid argument\)"):
        c_backend._check_status(c_backend.lib.MR_ERR_INVALID_ARGUMENT, "softmax", "mr_softmax_forward_f64",
                                [("x", np.zeros(3))])


@needs_c
def test_portable_and_simd_kernels_agree():
    """The run-time CPU dispatch can fall back to the portable kernels; both give the same math."""
    from minireparam.backend import c_backend

    rng = np.random.default_rng(11)
    a = rng.standard_normal((37, 45))
    b = rng.standard_normal((45, 29))
    x = rng.standard_normal((6, 53))
    results = []
    try:
        for portable in (1, 0):
            c_backend.lib.mr_force_portable(portable)
            results.append((c_backend.matmul(a, b, variant="packed"), c_backend.matmul(a, b, variant="small"),
                            c_backend.softmax(x), c_backend.log_softmax(x)))
    finally:
        c_backend.lib.mr_force_portable(0)
    for portable_result, simd_result in zip(*results):
        np.testing.assert_allclose(portable_result, simd_result, rtol=1e-12, atol=1e-12)


@needs_c
@pytest.mark.parametrize("env, expected", [
    ({"MINIREPARAM_NUM_THREADS": "2"}, 1),
    ({"MINIREPARAM_NUM_THREADS": "2", "MINIREPARAM_BLAS_THREADS": "keep"}, 2),
    ({"MINIREPARAM_NUM_THREADS": "1"}, 2),
])
def test_blas_threads_kept_off_c_cores(env, expected):
    """Threaded C kernels limit numpy's OpenBLAS to one thread, whose workers would spin on our cores."""
    pytest.importorskip("threadpoolctl")
    code, out, err = run_python(textwrap.dedent("""
        from threadpoolctl import threadpool_info, threadpool_limits
        threadpool_limits(2, user_api="blas")
        import minireparam.backend as b
        b.set_backend("c")
        print(min(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
    """), **env)
    assert code == 0, err
    assert int(out) == expected


def test_install_survives_missing_compiler(tmp_path):
    """setup.py's build_ext reports the missing C core and exits 0 instead of failing the install."""
    root = PACKAGE.parent
    for name in ("setup.py", "pyproject.toml", "README.md"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    (tmp_path / "csrc").mkdir()
    for source in (root / "csrc").glob("*.[ch]"):
        (tmp_path / "csrc" / source.name).write_bytes(source.read_bytes())
    (tmp_path / "csrc" / "build_ccore.py").write_bytes((root / "csrc" / "build_ccore.py").read_bytes())
    (tmp_path / "minireparam").mkdir()
    (tmp_path / "minireparam" / "__init__.py").write_text("")
    env = dict(os.environ, CC="false", LDSHARED="false -shared")
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tmp_path,
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "✗ C core: no working C compiler" in result.stderr
    assert not list((tmp_path / "minireparam").glob("_ccore*")), "no module may be left behind"
