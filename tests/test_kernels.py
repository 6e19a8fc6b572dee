"""Kernel tests: every GEMM rung, softmax, log-softmax and cross-entropy, under both backends.

Each kernel is compared with a float64 reference written in this file (independent of
both backends). Tolerances come from rounding-error bounds scaled by the dtype's machine
epsilon, with the reasoning next to each one, so a failure means a wrong result, not
noise.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minireparam.backend as backend
import minireparam.kernels as kernels
from minireparam.errors import DTypeError, ShapeError

VARIANTS = list(backend.GEMM_VARIANTS)
DTYPES = [np.float32, np.float64]
EPS = {np.dtype(np.float32): float(np.finfo(np.float32).eps), np.dtype(np.float64): float(np.finfo(np.float64).eps)}

# The backend fixture is function-scoped and reused across examples on purpose: it only
# selects a backend and keeps no per-example state.
PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(params=["c", "numpy"])
def kb(request):
    """The backend module under test; the C backend is skipped with the reason when not built."""
    if request.param not in backend.available():
        pytest.skip(f"C backend not built: {backend.c_unavailable_reason()}")
    with backend.use(request.param) as module:
        yield module


# ---- GEMM -------------------------------------------------------------------------------------

# Sizes: small ones, primes and values around the micro-tiles (6 x 16, 6 x 8, 4 x 8) and
# the K block (256), and anything up to 300.
SIZES = st.one_of(
    st.integers(0, 24),
    st.sampled_from([1, 5, 6, 7, 8, 13, 15, 16, 17, 31, 97, 127, 131, 255, 256, 257, 293]),
    st.integers(0, 300),
)
LAYOUTS = ["contiguous", "transposed", "row_strided", "no_unit_stride", "reversed"]


def make_operand(rng, rows, cols, dtype, layout):
    """Return a (rows, cols) array of random values stored with the given memory layout."""
    values = rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "contiguous":
        return values
    if layout == "transposed":  # column-major: unit stride on the second-to-last axis
        return np.ascontiguousarray(values.T).T
    if layout == "row_strided":  # a column slice of a wider array: leading dimension > cols
        wide = np.zeros((rows, cols + 5), dtype)
        wide[:, 2:cols + 2] = values
        return wide[:, 2:cols + 2]
    if layout == "no_unit_stride":  # neither axis has unit stride: the C backend must copy
        wide = np.zeros((rows, 2 * cols), dtype)
        wide[:, ::2] = values
        return wide[:, ::2]
    if layout == "reversed":  # negative row stride
        return values[::-1].copy()[::-1]
    raise ValueError(layout)


def gemm_reference(a, b, trans_a, trans_b):
    """Return (op(a) @ op(b), |op(a)| @ |op(b)|) in float64."""
    op_a = np.swapaxes(a, -1, -2) if trans_a else a
    op_b = np.swapaxes(b, -1, -2) if trans_b else b
    op_a = op_a.astype(np.float64)
    op_b = op_b.astype(np.float64)
    return op_a @ op_b, np.abs(op_a) @ np.abs(op_b)


def assert_gemm_close(got, reference, magnitude, K, dtype, context):
    # A K-term dot product summed in any order is within K * eps * sum|a||b| of the exact
    # value (the classical rounding bound); 2 (K + 2) leaves room for alpha/beta rounding.
    tol = 2.0 * (K + 2) * EPS[np.dtype(dtype)] * magnitude + 1e-300
    assert got.shape == reference.shape, f"{context}: shape {got.shape}, expected {reference.shape}"
    assert got.dtype == np.dtype(dtype), f"{context}: dtype {got.dtype}, expected {np.dtype(dtype)}"
    error = np.abs(got.astype(np.float64) - reference)
    bad = ~(error <= tol)
    if bad.any():
        index = np.unravel_index(np.argmax(np.where(bad, error - tol, -np.inf)), bad.shape)
        pytest.fail(f"{context}: {bad.sum()} entries off; at {index} got {got[index]}, "
                    f"expected {reference[index]}, error {error[index]:.3g} > allowed {tol[index]:.3g}")


@pytest.mark.parametrize("variant", VARIANTS)
@settings(**PROPERTY)
@given(data=st.data())
def test_matmul_rung_matches_reference(kb, variant, data):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    M, N, K = data.draw(SIZES, label="M"), data.draw(SIZES, label="N"), data.draw(SIZES, label="K")
    trans_a, trans_b = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    layout_a = data.draw(st.sampled_from(LAYOUTS), label="layout_a")
    layout_b = data.draw(st.sampled_from(LAYOUTS), label="layout_b")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    a = make_operand(rng, *((K, M) if trans_a else (M, K)), dtype, layout_a)
    b = make_operand(rng, *((N, K) if trans_b else (K, N)), dtype, layout_b)
    got = kb.matmul(a, b, trans_a=trans_a, trans_b=trans_b, variant=variant)
    reference, magnitude = gemm_reference(a, b, trans_a, trans_b)
    assert got.flags.c_contiguous
    assert_gemm_close(got, reference, magnitude, K, dtype,
                      f"{kb.name} {variant} M={M} N={N} K={K} ta={trans_a} tb={trans_b} {layout_a}/{layout_b}")


# Pairs of batch shapes that broadcast, including size-1 axes and missing leading axes.
BATCH_PAIRS = [
    ((), ()), ((3,), (3,)), ((), (4,)), ((4,), ()), ((1,), (3,)), ((2, 1), (1, 3)), ((2, 3), (3,)),
    ((5,), (1,)), ((2, 1, 3), (1, 4, 3)), ((3, 1), (3, 2)),
]


@pytest.mark.parametrize("variant", ["auto", "naive", "packed", "threaded", "small"])
@settings(**PROPERTY)
@given(data=st.data())
def test_batched_matmul_broadcasts(kb, variant, data):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    batch_a, batch_b = data.draw(st.sampled_from(BATCH_PAIRS), label="batches")
    M, N, K = (data.draw(st.integers(0, 40), label=n) for n in "MNK")
    trans_a, trans_b = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    # A stride-0 batch axis, as np.broadcast_to makes it, must not be materialized.
    explicit_broadcast = data.draw(st.booleans(), label="broadcast_to")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    a = rng.standard_normal(batch_a + ((K, M) if trans_a else (M, K))).astype(dtype)
    b = rng.standard_normal(batch_b + ((N, K) if trans_b else (K, N))).astype(dtype)
    if explicit_broadcast:
        batch = np.broadcast_shapes(batch_a, batch_b)
        a = np.broadcast_to(a, batch + a.shape[-2:])
        b = np.broadcast_to(b, batch + b.shape[-2:])
    got = kb.matmul(a, b, trans_a=trans_a, trans_b=trans_b, variant=variant)
    reference, magnitude = gemm_reference(a, b, trans_a, trans_b)
    assert_gemm_close(got, reference, magnitude, K, dtype,
                      f"{kb.name} {variant} batches {batch_a}/{batch_b} M={M} N={N} K={K}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_blocks_and_edges(kb, dtype):
    """Shapes that cross every cache block (kc 256, mc up to 144, nc up to 3072) in each rung."""
    rng = np.random.default_rng(0)
    for M, N, K in [(145, 3100, 3), (7, 33, 520), (300, 1, 300), (1, 300, 300), (97, 131, 257)]:
        a = rng.standard_normal((M, K)).astype(dtype)
        b = rng.standard_normal((K, N)).astype(dtype)
        reference, magnitude = gemm_reference(a, b, False, False)
        for variant in ("auto", "blocked", "packed", "threaded", "small"):
            got = kb.matmul(a, b, variant=variant)
            assert_gemm_close(got, reference, magnitude, K, dtype, f"{kb.name} {variant} {M}x{N}x{K}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_alpha_beta(kb, dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((37, 29)).astype(dtype)
    b = rng.standard_normal((29, 41)).astype(dtype)
    reference, magnitude = gemm_reference(a, b, False, False)
    for variant in VARIANTS:
        c = np.full((37, 41), np.nan, dtype)  # beta = 0 must not read C
        kb.gemm(a, b, c, alpha=2.0, beta=0.0, variant=variant)
        assert_gemm_close(c, 2.0 * reference, 2.0 * magnitude, 29, dtype, f"{variant} beta=0")

        c0 = rng.standard_normal((37, 41)).astype(dtype)
        c = c0.copy()
        kb.gemm(a, b, c, alpha=-0.5, beta=0.25, variant=variant)
        expected = -0.5 * reference + 0.25 * c0.astype(np.float64)
        assert_gemm_close(c, expected, 0.5 * magnitude + np.abs(c0), 29, dtype, f"{variant} beta=0.25")


def test_gemm_accumulates_over_transposed_views(kb):
    """The matmul backward pattern: dB += A^T dC with A^T a view, written through beta = 1."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((50, 20))
    g = rng.standard_normal((50, 30))
    grad = np.ones((20, 30))
    kb.gemm(a, g, grad, trans_a=True, beta=1.0)
    np.testing.assert_allclose(grad, 1.0 + a.T @ g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_out_buffers(kb, dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 9, 7)).astype(dtype)
    b = rng.standard_normal((7, 11)).astype(dtype)
    reference, magnitude = gemm_reference(a, b, False, False)

    out = np.empty((2, 9, 11), dtype)
    assert kb.matmul(a, b, out=out) is out
    assert_gemm_close(out, reference, magnitude, 7, dtype, "contiguous out")

    wide = np.zeros((2, 9, 22), dtype)
    strided = wide[:, :, ::2]  # no unit stride: written through a temporary
    assert kb.matmul(a, b, out=strided) is strided
    assert_gemm_close(strided, reference, magnitude, 7, dtype, "strided out")
    assert np.all(wide[:, :, 1::2] == 0), "matmul wrote outside the out view"

    rows = np.zeros((9, 15), dtype)
    row_strided = rows[:, 2:13]  # row-strided 2-D out: written in place
    kb.matmul(a[0], b, out=row_strided)
    assert_gemm_close(row_strided, reference[0], magnitude[0], 7, dtype, "row-strided out")
    assert np.all(rows[:, :2] == 0), "matmul wrote left of the out slice"
    assert np.all(rows[:, 13:] == 0), "matmul wrote right of the out slice"


def test_matmul_out_aliasing_input(kb):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((16, 16))
    b = rng.standard_normal((16, 16))
    expected = a @ b
    kb.matmul(a, b, out=a)  # out is also an input: the product must use the old values
    np.testing.assert_allclose(a, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_zero_sizes(kb, dtype):
    for a_shape, b_shape, expected_shape in [
        ((3, 0), (0, 4), (3, 4)), ((0, 5), (5, 4), (0, 4)), ((3, 5), (5, 0), (3, 0)), ((0, 3, 5), (5, 2), (0, 3, 2)),
    ]:
        result = kb.matmul(np.ones(a_shape, dtype), np.ones(b_shape, dtype))
        assert result.shape == expected_shape
        assert result.dtype == np.dtype(dtype)
        assert np.all(result == 0), "an empty sum must be 0"
    c = np.full((3, 4), 2.0, dtype)
    kb.gemm(np.ones((3, 0), dtype), np.ones((0, 4), dtype), c, alpha=3.0, beta=0.5)
    assert np.all(c == 1.0), "with K = 0, gemm only scales C by beta"


def test_matmul_errors(kb):
    f32 = np.ones((3, 4), np.float32)
    with pytest.raises(ShapeError, match=r"matmul.*\(3, 4\).*\(5, 2\)"):
        kb.matmul(f32, np.ones((5, 2), np.float32))
    with pytest.raises(DTypeError, match=r"matmul.*float32.*float64"):
        kb.matmul(f32, np.ones((4, 2)))
    with pytest.raises(DTypeError, match=r"matmul.*int64"):
        kb.matmul(np.ones((3, 4), np.int64), np.ones((4, 2), np.int64))
    with pytest.raises(ShapeError, match=r"matmul.*at least 2 dimensions"):
        kb.matmul(np.ones(4, np.float32), f32)
    with pytest.raises(ShapeError, match=r"matmul.*batch dimensions.*\(2, 3, 4\).*\(3, 4, 2\)"):
        kb.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 2)))
    with pytest.raises(ValueError, match=r"matmul: unknown variant 'fast'.*'packed'"):
        kb.matmul(f32, f32.T, variant="fast")
    with pytest.raises(ShapeError, match=r"matmul: out has shape \(3, 4\).*\(3, 3\)"):
        kb.matmul(f32, f32.T, out=np.empty((3, 4), np.float32))
    with pytest.raises(DTypeError, match=r"matmul: out has dtype float64"):
        kb.matmul(f32, f32.T, out=np.empty((3, 3)))


def test_threaded_matches_one_thread(kb):
    import minireparam.kernels as kernels

    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 130, 70)).astype(np.float32)
    b = rng.standard_normal((70, 90)).astype(np.float32)
    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        one = kb.matmul(a, b, variant="threaded")
        kernels.set_num_threads(3)  # more threads than cores, and not a divisor of the batch
        three = kb.matmul(a, b, variant="threaded")
    finally:
        kernels.set_num_threads(before)
    # Each thread runs the same packed kernel on its block, so the sums are identical.
    np.testing.assert_array_equal(one, three)


# Two-level batches as attention makes them: a head-split view (B, T, H·D) -> (B, H, T, D)
# has batch strides that do not merge into one. Also its column-major form, broadcasts
# (stride 0) on either level and plain contiguous arrays.
BATCH2_LAYOUTS = ["head_split", "head_split_transposed", "broadcast_inner", "broadcast_outer", "contiguous"]


def make_batched_operand(rng, outer, inner, rows, cols, dtype, layout):
    """Return an (outer, inner, rows, cols) array of random values stored with the given layout."""
    shape = (outer, inner, rows, cols)
    if layout == "head_split":
        base = rng.standard_normal((outer, rows, inner * cols)).astype(dtype)
        return base.reshape(outer, rows, inner, cols).transpose(0, 2, 1, 3)
    if layout == "head_split_transposed":  # unit stride on the rows, as a head-split kᵀ
        base = rng.standard_normal((outer, cols, inner * rows)).astype(dtype)
        return base.reshape(outer, cols, inner, rows).transpose(0, 2, 3, 1)
    if layout == "broadcast_inner":
        return np.broadcast_to(rng.standard_normal((outer, 1, rows, cols)).astype(dtype), shape)
    if layout == "broadcast_outer":
        return np.broadcast_to(rng.standard_normal((1, inner, rows, cols)).astype(dtype), shape)
    if layout == "contiguous":
        return rng.standard_normal(shape).astype(dtype)
    raise ValueError(layout)


@pytest.mark.parametrize("variant", ["auto", "naive", "packed", "threaded", "small"])
@settings(**PROPERTY)
@given(data=st.data())
def test_two_level_batched_matmul(kb, variant, data):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    outer, inner = data.draw(st.integers(0, 3), label="outer"), data.draw(st.sampled_from([0, 1, 2, 4]), label="inner")
    M, N, K = (data.draw(st.integers(0, 33), label=name) for name in "MNK")
    trans_a, trans_b = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    layout_a = data.draw(st.sampled_from(BATCH2_LAYOUTS), label="layout_a")
    layout_b = data.draw(st.sampled_from(BATCH2_LAYOUTS), label="layout_b")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    a = make_batched_operand(rng, outer, inner, *((K, M) if trans_a else (M, K)), dtype, layout_a)
    b = make_batched_operand(rng, outer, inner, *((N, K) if trans_b else (K, N)), dtype, layout_b)
    got = kb.matmul(a, b, trans_a=trans_a, trans_b=trans_b, variant=variant)
    reference, magnitude = gemm_reference(a, b, trans_a, trans_b)
    context = f"{kb.name} {variant} batch ({outer}, {inner}) M={M} N={N} K={K} ta={trans_a} tb={trans_b} " \
              f"{layout_a}/{layout_b}"
    assert_gemm_close(got, reference, magnitude, K, dtype, context)

    # The same product accumulated into a head-split output (C goes through a temporary).
    c_before = make_batched_operand(rng, outer, inner, M, N, dtype, "contiguous")
    c = make_batched_operand(rng, outer, inner, M, N, dtype, "head_split")
    c[...] = c_before
    kb.gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, beta=1.0, variant=variant)
    assert_gemm_close(c, reference + c_before, magnitude + np.abs(c_before), K, dtype, context + " (gemm, beta=1)")


def test_attention_products_take_one_c_call(monkeypatch):
    if "c" not in backend.available():
        pytest.skip(f"C backend not built: {backend.c_unavailable_reason()}")
    from minireparam.backend import c_backend

    calls = []
    for dtype, function in list(c_backend._GEMM_BATCHED2.items()):
        def counting(*args, function=function):
            calls.append(args[12:14])  # (BT0, BT1)
            return function(*args)
        monkeypatch.setitem(c_backend._GEMM_BATCHED2, dtype, counting)

    rng = np.random.default_rng(9)
    batch, length, heads, head_dim = 3, 10, 4, 8
    qkv = rng.standard_normal((batch, length, 3 * heads * head_dim)).astype(np.float32)
    q, k, v = (qkv[..., i * heads * head_dim:(i + 1) * heads * head_dim]
               .reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3) for i in range(3))
    scores = c_backend.matmul(q, k, trans_b=True)
    output = c_backend.matmul(scores, v)
    assert calls == [(batch, heads), (batch, heads)], "each head-split product runs as one two-level C call"
    reference = np.matmul(np.matmul(q.astype(np.float64), np.swapaxes(k, -1, -2)), v)
    # float32 sums of 8 and then 10 terms of magnitude about 8 and 30.
    np.testing.assert_allclose(output, reference, rtol=1e-4, atol=1e-4)

    # Three batch axes that do not merge: the axes before the last two loop in Python.
    calls.clear()
    a = rng.standard_normal((2, 5, 3, 4, 6)).astype(np.float32).transpose(0, 2, 1, 3, 4)[:, :, ::2]
    b = rng.standard_normal((2, 3, 3, 6, 5)).astype(np.float32)
    got = c_backend.matmul(a, b)
    assert calls == [(3, 3), (3, 3)], calls
    np.testing.assert_allclose(got, np.matmul(a.astype(np.float64), b), rtol=1e-5, atol=1e-5)


def test_two_level_threaded_matches_one_thread(kb):
    rng = np.random.default_rng(12)
    a = make_batched_operand(rng, 3, 4, 40, 24, np.float32, "head_split")
    b = make_batched_operand(rng, 3, 4, 40, 24, np.float32, "head_split")
    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        one_thread = kb.matmul(a, b, trans_b=True, variant="threaded")
        kernels.set_num_threads(3)  # more threads than cores, and not a divisor of the 12 matrices
        three_threads = kb.matmul(a, b, trans_b=True, variant="threaded")
    finally:
        kernels.set_num_threads(before)
    # Each thread runs the same packed kernel on its block, so the sums are identical.
    np.testing.assert_array_equal(one_thread, three_threads)


# ---- GEMM against a packed B ----------------------------------------------------------------------

# Sizes around the micro-tiles (6 x 16, 6 x 8, 4 x 8), the K blocks (256, 384) and the
# row blocks (96 to 144), so K blocking, row blocking and ragged edges are all reached.
PACKED_SIZES = st.one_of(
    st.integers(0, 20),
    st.sampled_from([1, 6, 7, 16, 17, 97, 145, 255, 256, 257, 383, 384, 385]),
)


@settings(**PROPERTY)
@given(data=st.data())
def test_gemm_packed_matches_reference(kb, data):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    M, N, K = (data.draw(PACKED_SIZES, label=name) for name in "MNK")
    trans_a, trans_b = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    layout_a = data.draw(st.sampled_from(LAYOUTS), label="layout_a")
    layout_b = data.draw(st.sampled_from(LAYOUTS), label="layout_b")
    alpha = data.draw(st.sampled_from([1.0, -0.5, 2.0]), label="alpha")
    beta = data.draw(st.sampled_from([0.0, 1.0, 0.25]), label="beta")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    a = make_operand(rng, *((K, M) if trans_a else (M, K)), dtype, layout_a)
    b = make_operand(rng, *((N, K) if trans_b else (K, N)), dtype, layout_b)
    c_before = rng.standard_normal((M, N)).astype(dtype)
    c = c_before.copy() if beta != 0.0 else np.full((M, N), np.nan, dtype)
    packed = kb.pack_b(b, trans_b=trans_b)
    result = kb.gemm_packed(a, packed, c, trans_a=trans_a, alpha=alpha, beta=beta)

    product, magnitude = gemm_reference(a, b, trans_a, trans_b)
    reference = alpha * product + (beta * c_before.astype(np.float64) if beta != 0.0 else 0.0)
    bound = abs(alpha) * magnitude + abs(beta) * np.abs(c_before.astype(np.float64))
    assert result is c, "gemm_packed returns the output buffer it wrote"
    assert packed.shape == (K, N)
    assert_gemm_close(c, reference, bound, K, dtype,
                      f"{kb.name} M={M} N={N} K={K} ta={trans_a} tb={trans_b} {layout_a}/{layout_b} "
                      f"alpha={alpha} beta={beta}")


def test_packed_matrix_reused_across_calls(kb):
    """The LSTM pattern: one packing, many products accumulating into slices of one array."""
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((64, 16))   # (4H, H) with H = 16
    states = rng.standard_normal((5, 3, 16))
    pre = rng.standard_normal((5, 3, 64))
    expected = pre + states @ weight.T
    packed = kb.pack_b(weight, trans_b=True)
    for t in range(5):
        kb.gemm_packed(states[t], packed, pre[t], beta=1.0)
    # Each entry is a 16-term float64 dot product plus one addition.
    np.testing.assert_allclose(pre, expected, rtol=1e-13, atol=1e-13)


def test_packed_matrix_is_a_snapshot(kb):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 6))
    expected = a @ b
    packed = kb.pack_b(b)
    b[...] = 0.0
    got = kb.gemm_packed(a, packed, np.empty((4, 6)))
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


def test_gemm_packed_writes_strided_output(kb):
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((7, 9)), rng.standard_normal((9, 5))
    wide = np.zeros((7, 12))
    kb.gemm_packed(a, kb.pack_b(b), wide[:, 3:8])
    np.testing.assert_allclose(wide[:, 3:8], a @ b, rtol=1e-13, atol=1e-13)
    assert not wide[:, :3].any(), "columns left of the output view were written"
    assert not wide[:, 8:].any(), "columns right of the output view were written"


def test_gemm_packed_threaded_matches_one_thread(kb):
    rng = np.random.default_rng(8)
    weight = rng.standard_normal((1024, 256)).astype(np.float32)
    shapes = [((32, 256), True), ((32, 1024), False), ((300, 256), True)]   # split along N, N, M
    before = kernels.get_num_threads()
    try:
        for a_shape, trans_b in shapes:
            a = rng.standard_normal(a_shape).astype(np.float32)
            packed = kb.pack_b(weight, trans_b=trans_b)
            N = packed.shape[1]
            kernels.set_num_threads(1)
            one_thread = kb.gemm_packed(a, packed, np.empty((a_shape[0], N), np.float32))
            kernels.set_num_threads(3)  # more threads than cores
            three_threads = kb.gemm_packed(a, packed, np.empty((a_shape[0], N), np.float32))
            # Every thread runs the same kernel over the same K blocks on its piece of C.
            np.testing.assert_array_equal(one_thread, three_threads, err_msg=f"a {a_shape}, trans_b={trans_b}")
    finally:
        kernels.set_num_threads(before)


def test_gemm_packed_errors(kb):
    f32 = np.ones((3, 4), np.float32)
    packed = kb.pack_b(np.ones((4, 5), np.float32))
    with pytest.raises(ShapeError, match=r"pack_b: b must be 2-D.*\(2, 4, 5\)"):
        kb.pack_b(np.ones((2, 4, 5), np.float32))
    with pytest.raises(DTypeError, match=r"pack_b: b must be float32 or float64, got int64"):
        kb.pack_b(np.ones((4, 5), np.int64))
    with pytest.raises(ShapeError, match=r"gemm_packed: a of shape \(3, 5\).*\(4, 5\).*5 columns.*4 rows"):
        kb.gemm_packed(np.ones((3, 5), np.float32), packed, np.empty((3, 5), np.float32))
    with pytest.raises(DTypeError, match=r"gemm_packed: a is float64 \(3, 4\).*float32"):
        kb.gemm_packed(np.ones((3, 4)), packed, np.empty((3, 5)))
    with pytest.raises(ShapeError, match=r"gemm_packed: a must be 2-D.*\(2, 3, 4\)"):
        kb.gemm_packed(np.ones((2, 3, 4), np.float32), packed, np.empty((2, 3, 5), np.float32))
    with pytest.raises(ShapeError, match=r"gemm_packed: out has shape \(3, 4\).*\(3, 5\)"):
        kb.gemm_packed(f32, packed, np.empty((3, 4), np.float32))
    with pytest.raises(TypeError, match=r"gemm_packed: packed must be a .*PackedMatrix.*got numpy.ndarray"):
        kb.gemm_packed(f32, np.ones((4, 5), np.float32), np.empty((3, 5), np.float32))


def test_packed_matrix_of_other_backend_rejected():
    if "c" not in backend.available():
        pytest.skip(f"C backend not built: {backend.c_unavailable_reason()}")
    from minireparam.backend import c_backend, numpy_backend

    b = np.ones((4, 5), np.float32)
    a, c = np.ones((3, 4), np.float32), np.empty((3, 5), np.float32)
    with pytest.raises(TypeError, match=r"pack b again with the current backend"):
        c_backend.gemm_packed(a, numpy_backend.pack_b(b), c)
    with pytest.raises(TypeError, match=r"pack b again with the current backend"):
        numpy_backend.gemm_packed(a, c_backend.pack_b(b), c)


def test_packed_for_other_kernel_set_rejected():
    """A buffer packed by the AVX2 kernels has another K block than the portable kernels'."""
    if "c" not in backend.available():
        pytest.skip(f"C backend not built: {backend.c_unavailable_reason()}")
    from minireparam.backend import c_backend

    if c_backend.build_info()["simd"] == "portable":
        pytest.skip("the portable kernels are the only kernel set on this CPU")
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    packed = c_backend.pack_b(b)
    try:
        c_backend.lib.mr_force_portable(1)
        with pytest.raises(RuntimeError, match=r"gemm_packed: C kernel mr_gemm_prepacked_f32 failed \(invalid"):
            c_backend.gemm_packed(a, packed, np.empty((3, 5), np.float32))
        repacked = c_backend.pack_b(b)
        np.testing.assert_array_equal(c_backend.gemm_packed(a, repacked, np.empty((3, 5), np.float32)), a @ b)
    finally:
        c_backend.lib.mr_force_portable(0)


# ---- layout handling of the C backend ----------------------------------------------------------------


def test_views_reach_c_without_copy():
    if "c" not in backend.available():
        pytest.skip(f"C backend not built: {backend.c_unavailable_reason()}")
    from minireparam.backend import c_backend

    x = np.arange(60, dtype=np.float32).reshape(6, 10)
    for view, expect_flip in [(x, False), (x.T, True), (x[:, 2:7], False), (x[1:4], False),
                              (x[:, 1:5].T, True), (x[::2], False)]:
        matrix, ld, trans = c_backend._as_matrix(view, False)
        assert matrix.ctypes.data == view.ctypes.data, f"a view with strides {view.strides} was copied"
        assert np.shares_memory(matrix, view), f"a view with strides {view.strides} was copied"
        assert trans == expect_flip, f"strides {view.strides}: transpose flag {trans}, expected {expect_flip}"
        assert matrix.shape == (view.shape[::-1] if expect_flip else view.shape)
        assert ld == (view.strides[1] if expect_flip else view.strides[0]) // 4

    copied, ld, trans = c_backend._as_matrix(x[::2, ::3], False)
    assert copied.flags.c_contiguous, "a layout without a unit stride is copied to C order"
    assert not trans
    assert ld == copied.shape[1]

    broadcast = np.broadcast_to(x, (5, 6, 10))
    assert c_backend._batch_strides(broadcast, (5,)) == [0]
    assert c_backend._batch_strides(x, (4, 3)) == [0, 0]
    merged = c_backend._collapse_batch((2, 3), [[120, 40], [0, 0], [72, 24]])
    assert merged == [(6, [40, 0, 24])], "batch axes walked with one stride must merge into one"


# ---- softmax family ---------------------------------------------------------------------------------


def softmax_reference(x):
    """Return (softmax, log_softmax) of float64 x over the last axis, -inf rows by convention."""
    x = x.astype(np.float64)
    m = np.max(x, axis=-1, keepdims=True) if x.shape[-1] else np.zeros(x.shape[:-1] + (1,))
    all_inf = m == -np.inf
    shifted = np.where(all_inf, -np.inf, x - np.where(all_inf, 0.0, m))
    e = np.exp(shifted)
    s = np.sum(e, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(all_inf, 0.0, e / s)
        log_y = np.where(all_inf, -np.inf, shifted - np.log(s))
    return y, log_y


def assert_close_where_finite(got, expected, tol, context):
    """Equal infinities must match exactly; finite entries within the elementwise tol.

    Results in the subnormal range have only a few bits, so a few subnormal steps are
    always allowed on top of ``tol``.
    """
    tol = tol + 8 * np.finfo(got.dtype).smallest_subnormal
    got64 = got.astype(np.float64)
    same_inf = np.isinf(expected) & (got64 == expected)
    with np.errstate(invalid="ignore"):  # inf - inf where same_inf, replaced by 0
        error = np.where(same_inf, 0.0, np.abs(got64 - expected))
    tol = np.broadcast_to(tol, expected.shape)
    bad = ~(error <= tol)
    if bad.any():
        index = np.unravel_index(np.argmax(bad), bad.shape)
        pytest.fail(f"{context}: {bad.sum()} entries off; at {index} got {got[index]}, expected "
                    f"{expected[index]}, allowed error {tol[index]:.3g}")


@st.composite
def softmax_inputs(draw):
    dtype = draw(st.sampled_from(DTYPES), label="dtype")
    lead = draw(st.lists(st.integers(0, 4), max_size=2), label="leading shape")
    C = draw(st.one_of(st.integers(0, 20), st.sampled_from([31, 32, 33, 64, 100, 257, 1000])), label="C")
    scale = draw(st.sampled_from([1.0, 30.0, 1e4, 1e8]), label="scale")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    x = (rng.standard_normal(tuple(lead) + (C,)) * scale).astype(dtype)
    if draw(st.booleans(), label="with -inf"):
        x[rng.random(x.shape) < 0.2] = -np.inf
        if x.ndim > 1 and x.shape[0] > 0:
            x[0] = -np.inf  # a whole row of -inf
    dy = rng.standard_normal(x.shape).astype(dtype)
    return x, dy


@settings(**PROPERTY)
@given(inputs=softmax_inputs())
def test_softmax_family_matches_reference(kb, inputs):
    x, dy = inputs
    eps = EPS[x.dtype]
    y_ref, log_y_ref = softmax_reference(x)
    finite = np.where(np.isinf(x), 0.0, np.abs(x.astype(np.float64)))
    row_max = np.max(finite, axis=-1, keepdims=True) if x.shape[-1] else 0.0
    context = f"{kb.name} {x.dtype} shape {x.shape}"

    # softmax: exp is a few ulps off. An error d in x - max scales y by e^d, which only
    # matters where y is tiny, so the bound is 8 eps absolute plus 32 eps relative.
    y = kb.softmax(x)
    assert y.dtype == x.dtype
    assert y.shape == x.shape
    assert_close_where_finite(y, y_ref, 8 * eps + 32 * eps * y_ref, context + " softmax")
    assert np.all(y[np.isneginf(x)] == 0), "-inf inputs must get probability exactly 0"

    # log_softmax = x - lse is an absolute quantity: its rounding scales with the row's
    # largest |x| (and log C from the sum).
    log_y = kb.log_softmax(x)
    assert_close_where_finite(log_y, log_y_ref, 16 * eps * (row_max + np.log(max(x.shape[-1], 1)) + 1),
                              context + " log_softmax")

    # Backward, fed the rounded forward outputs: dx = y (dy - <dy, y>) and
    # dx = dy - e^y sum(dy). A sum's rounding scales with the sum of its terms' sizes
    # (not with the sum, which may cancel), so 16 eps of the terms' sizes.
    y_in = y_ref.astype(x.dtype)
    y64, dy64 = y_in.astype(np.float64), dy.astype(np.float64)
    dot = np.sum(dy64 * y64, axis=-1, keepdims=True)
    dot_size = np.sum(np.abs(dy64 * y64), axis=-1, keepdims=True)
    dx = kb.softmax_backward(y_in, dy)
    assert_close_where_finite(dx, y64 * (dy64 - dot), 16 * eps * np.abs(y64) * (np.abs(dy64) + dot_size),
                              context + " softmax_backward")
    assert np.all(dx[np.isneginf(x)] == 0), "-inf inputs must get gradient exactly 0"

    log_in = log_y_ref.astype(x.dtype)
    p = np.exp(log_in.astype(np.float64))
    total = np.sum(dy64, axis=-1, keepdims=True)
    total_size = np.sum(np.abs(dy64), axis=-1, keepdims=True)
    expected = np.where(np.isneginf(log_in), 0.0, dy64 - p * total)
    dlog = kb.log_softmax_backward(log_in, dy)
    assert_close_where_finite(dlog, expected, 16 * eps * (np.abs(dy64) + p * total_size),
                              context + " log_softmax_backward")
    assert np.all(dlog[np.isneginf(x)] == 0), "-inf inputs must get gradient exactly 0"


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_are_independent(kb, dtype):
    """A row of -inf, a row with NaN and rows of huge values leave the other rows untouched."""
    x = np.array([
        [-np.inf, -np.inf, -np.inf, -np.inf],
        [1.0, np.nan, 2.0, 3.0],
        [1e4, -1e4, 1e4 - 1, 0.0],
        [1e8, 1e8, -1e8, 1e8 - 1e2],
        [-1e4, -1e4, -1e4, -1e4],
        [0.5, -np.inf, 1.5, -0.5],
    ], dtype=dtype)
    y = kb.softmax(x)
    log_y = kb.log_softmax(x)
    assert np.all(y[0] == 0), "softmax of an all -inf row is 0"
    assert np.all(log_y[0] == -np.inf), "log_softmax of an all -inf row is -inf"
    assert np.all(np.isnan(y[1])), "a NaN makes its own row NaN"
    for r in (2, 3, 4, 5):
        assert np.all(np.isfinite(y[r])), f"row {r} of softmax is not finite: {y[r]}"
        assert abs(float(np.sum(y[r], dtype=np.float64)) - 1) < 8 * EPS[np.dtype(dtype)] * x.shape[1]
        np.testing.assert_array_equal(y[r], kb.softmax(x[r:r + 1])[0])
        np.testing.assert_array_equal(log_y[r], kb.log_softmax(x[r:r + 1])[0])
    assert y[5, 1] == 0
    assert log_y[5, 1] == -np.inf
    dy = np.ones_like(x)
    dx = kb.softmax_backward(y, dy)
    dlog = kb.log_softmax_backward(log_y, dy)
    assert np.all(dx[0] == 0), "softmax_backward of an all -inf row is 0"
    assert np.all(dlog[0] == 0), "log_softmax_backward of an all -inf row is 0"
    assert dx[5, 1] == 0
    assert dlog[5, 1] == 0
    assert np.all(np.isfinite(dx[2:]))
    assert np.all(np.isfinite(dlog[2:]))


def test_softmax_gradients_match_finite_differences(kb):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 7))
    dy = rng.standard_normal((3, 7))
    for forward, backward in [(kb.softmax, kb.softmax_backward), (kb.log_softmax, kb.log_softmax_backward)]:
        dx = backward(forward(x), dy)
        numeric = np.zeros_like(x)
        h = 1e-6
        for index in np.ndindex(x.shape):
            step = np.zeros_like(x)
            step[index] = h
            numeric[index] = np.sum(dy * (forward(x + step) - forward(x - step))) / (2 * h)
        # Central differences: truncation O(h^2) ~ 1e-12, cancellation ~ eps / h ~ 1e-10.
        np.testing.assert_allclose(dx, numeric, atol=1e-8, err_msg=forward.__name__)


def test_softmax_out_and_shapes(kb):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    expected = kb.softmax(x)
    out = np.empty_like(x)
    assert kb.softmax(x, out=out) is out
    np.testing.assert_array_equal(out, expected)
    in_place = x.copy()
    kb.softmax(in_place, out=in_place)
    np.testing.assert_array_equal(in_place, expected)
    strided = np.zeros((2, 3, 10), np.float32)[:, :, ::2]
    kb.log_softmax(x, out=strided)
    np.testing.assert_array_equal(strided, kb.log_softmax(x))
    transposed = np.ascontiguousarray(np.swapaxes(x, 0, 2))
    np.testing.assert_array_equal(kb.softmax(np.swapaxes(transposed, 0, 2)), expected)
    for shape in [(5,), (0, 5), (5, 0), (2, 0, 3)]:
        assert kb.softmax(np.ones(shape)).shape == shape
        assert kb.log_softmax_backward(np.zeros(shape), np.ones(shape)).shape == shape


def test_softmax_errors(kb):
    with pytest.raises(DTypeError, match="softmax.*int64"):
        kb.softmax(np.ones((2, 3), np.int64))
    with pytest.raises(ShapeError, match="softmax.*at least one dimension"):
        kb.softmax(np.array(1.0))
    with pytest.raises(ShapeError, match=r"softmax_backward: dy has shape \(2, 4\).*\(2, 3\)"):
        kb.softmax_backward(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(DTypeError, match="log_softmax_backward.*same dtype"):
        kb.log_softmax_backward(np.ones((2, 3)), np.ones((2, 3), np.float32))
    with pytest.raises(ShapeError, match=r"softmax: out has shape"):
        kb.softmax(np.ones((2, 3)), out=np.empty((3, 2)))


# ---- cross-entropy ------------------------------------------------------------------------------------


def cross_entropy_reference(logits, target, ignore_index, reduction, eps, grad_loss):
    """Return (loss, lse, dlogits) in float64, with the conventions of the backend docstrings."""
    x = logits.astype(np.float64)
    R, C = x.shape
    losses, lse, dx = np.zeros(R), np.zeros(R), np.zeros((R, C))
    valid = target != ignore_index
    n_valid = int(valid.sum())
    for r in range(R):
        if not valid[r]:
            continue
        m = np.max(x[r])
        if m == -np.inf:
            lse[r], losses[r] = -np.inf, np.inf
            continue
        lse[r] = m + np.log(np.sum(np.exp(x[r] - m)))
        losses[r] = (1 - eps) * (lse[r] - x[r, target[r]])
        if eps:
            losses[r] += eps * (lse[r] - np.mean(x[r]))
        if reduction == "none":
            scale = grad_loss[r]
        elif reduction == "sum":
            scale = float(grad_loss)
        else:
            scale = float(grad_loss) / n_valid
        dx[r] = (np.exp(x[r] - lse[r]) - eps / C) * scale
        dx[r, target[r]] -= (1 - eps) * scale
    if reduction == "none":
        loss = losses
    elif reduction == "sum":
        loss = losses.sum()
    else:
        loss = losses.sum() / n_valid if n_valid else np.nan
    return loss, lse, dx


@settings(**PROPERTY)
@given(data=st.data())
def test_cross_entropy_matches_reference(kb, data):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    R = data.draw(st.integers(0, 40), label="R")
    C = data.draw(st.one_of(st.integers(1, 20), st.sampled_from([31, 33, 100, 300])), label="C")
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]), label="reduction")
    eps = data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]), label="label_smoothing")
    ignore_index = data.draw(st.sampled_from([-100, 0, C - 1]), label="ignore_index")
    ignored_fraction = data.draw(st.sampled_from([0.0, 0.3, 1.0]), label="ignored fraction")
    scale = data.draw(st.sampled_from([1.0, 20.0, 1e4]), label="scale")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    logits = (rng.standard_normal((R, C)) * scale).astype(dtype)
    target = rng.integers(0, C, size=R).astype(np.int64)
    target[rng.random(R) < ignored_fraction] = ignore_index
    grad_loss = rng.standard_normal(R) if reduction == "none" else np.array(rng.standard_normal())
    expected_loss, expected_lse, expected_dx = cross_entropy_reference(logits, target, ignore_index, reduction, eps,
                                                                       grad_loss)
    context = f"{kb.name} {np.dtype(dtype)} R={R} C={C} {reduction} eps={eps} ignore={ignore_index}"

    loss, lse = kb.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction,
                                 label_smoothing=eps)
    assert loss.dtype == np.dtype(dtype)
    assert lse.shape == (R,)
    assert loss.shape == ((R,) if reduction == "none" else ())
    unit = EPS[np.dtype(dtype)]
    row_scale = np.max(np.abs(logits), axis=1).astype(np.float64) if C else np.zeros(R)
    valid = target != ignore_index
    # lse and the losses are absolute quantities: their rounding scales with the row's
    # largest |logit| (plus log C), and a sum or mean over R rows adds R roundings.
    assert_close_where_finite(lse[valid], expected_lse[valid], 16 * unit * (row_scale[valid] + np.log(C) + 1),
                              context + " lse")
    if reduction == "mean" and not valid.any():
        assert np.isnan(loss), "a mean over no rows is NaN"
    else:
        tol = 16 * unit * (R + 1) * (np.max(row_scale, initial=0.0) + np.log(C) + 1)
        assert_close_where_finite(loss, np.asarray(expected_loss), tol, context + " loss")

    dx = kb.cross_entropy_backward(logits, target, lse, grad_loss.astype(dtype), ignore_index=ignore_index,
                                   reduction=reduction, label_smoothing=eps)
    assert dx.shape == logits.shape
    assert dx.dtype == np.dtype(dtype)
    # Each gradient entry is (p - q) * scale with p = exp(x - lse): the saved lse was
    # rounded to the dtype, so p carries a relative error of about eps * |lse|.
    grad_scale = np.max(np.abs(grad_loss)) if grad_loss.size else 0.0
    lse_size = np.where(valid, np.abs(expected_lse), 0.0)[:, None] if R else 0.0
    assert_close_where_finite(dx, expected_dx, 16 * unit * grad_scale * (lse_size + 2) + 1e-300, context + " dlogits")
    assert np.all(dx[~valid] == 0), "ignored rows get a zero gradient"


def test_cross_entropy_edge_cases(kb):
    logits = np.array([[0.0, 1.0, 2.0], [-np.inf, -np.inf, -np.inf], [1.0, -np.inf, 0.0]])
    target = np.array([2, 0, 0])

    loss, lse = kb.cross_entropy(logits, np.full(3, -100), reduction="mean")
    assert np.isnan(loss), "mean over no rows is NaN, as in PyTorch"
    dx = kb.cross_entropy_backward(logits, np.full(3, -100), lse, np.array(1.0))
    assert np.all(dx == 0), "all rows ignored: zero gradient"
    loss, _ = kb.cross_entropy(logits, np.full(3, -100), reduction="sum")
    assert loss == 0

    losses, lse = kb.cross_entropy(logits, target, reduction="none")
    assert losses[1] == np.inf, "a row of only -inf has loss +inf"
    assert lse[1] == -np.inf
    assert np.isfinite(losses[0])
    assert np.isfinite(losses[2])
    dx = kb.cross_entropy_backward(logits, target, lse, np.ones(3), reduction="none")
    assert np.all(dx[1] == 0), "a row of only -inf gets zero gradient"
    assert dx[2, 1] == 0, "a -inf logit gets zero gradient"
    assert np.all(np.isfinite(dx))

    big = np.array([[1e4, -1e4, 0.0], [1e8, 1e8 - 1, -1e8]])
    losses, lse = kb.cross_entropy(big, np.array([1, 1]), reduction="none")
    # lse - x[t] cancels to O(1) from O(1e8), so the absolute error is about eps * 1e8.
    np.testing.assert_allclose(losses, [2e4, 1.0 + np.log1p(np.exp(-1.0))], rtol=0, atol=16 * EPS[big.dtype] * 1e8)
    assert np.all(np.isfinite(kb.cross_entropy_backward(big, np.array([1, 1]), lse, np.ones(2), reduction="none")))


def test_cross_entropy_target_errors(kb):
    logits = np.zeros((4, 5), np.float32)
    with pytest.raises(IndexError, match=r"cross_entropy: target 5 at row 2 is out of range for 5 classes"):
        kb.cross_entropy(logits, np.array([0, 1, 5, 2]))
    with pytest.raises(IndexError, match=r"cross_entropy: target -3 at row 0 .*ignore_index=-100"):
        kb.cross_entropy(logits, np.array([-3, 1, 1, 2]))
    with pytest.raises(IndexError, match=r"cross_entropy_backward: target 7"):
        kb.cross_entropy_backward(logits, np.array([7, 1, 1, 2]), np.zeros(4, np.float32), np.array(1.0))
    with pytest.raises(ShapeError, match=r"cross_entropy: target has shape \(3,\)"):
        kb.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(DTypeError, match="cross_entropy: target must be an integer"):
        kb.cross_entropy(logits, np.zeros(4))
    with pytest.raises(ValueError, match="reduction must be one of"):
        kb.cross_entropy(logits, np.zeros(4, np.int64), reduction="avg")
    with pytest.raises(ShapeError, match=r"grad_loss must have shape \(4,\)"):
        kb.cross_entropy_backward(logits, np.zeros(4, np.int64), np.zeros(4, np.float32), np.array(1.0),
                                  reduction="none")


def test_cross_entropy_gradient_matches_finite_differences(kb):
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((5, 6))
    target = np.array([0, 3, -100, 5, 2])
    for reduction, eps in [("mean", 0.0), ("sum", 0.2), ("mean", 1.0)]:
        loss, lse = kb.cross_entropy(logits, target, reduction=reduction, label_smoothing=eps)
        dx = kb.cross_entropy_backward(logits, target, lse, np.array(1.0), reduction=reduction, label_smoothing=eps)
        numeric = np.zeros_like(logits)
        h = 1e-6
        for index in np.ndindex(logits.shape):
            step = np.zeros_like(logits)
            step[index] = h
            plus, _ = kb.cross_entropy(logits + step, target, reduction=reduction, label_smoothing=eps)
            minus, _ = kb.cross_entropy(logits - step, target, reduction=reduction, label_smoothing=eps)
            numeric[index] = (plus - minus) / (2 * h)
        np.testing.assert_allclose(dx, numeric, atol=1e-8, err_msg=f"{reduction} eps={eps}")


def test_cross_entropy_matches_torch(kb):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((12, 7))
    target = rng.integers(0, 7, size=12)
    target[[1, 5]] = 3
    for reduction in ("mean", "sum", "none"):
        for eps in (0.0, 0.3):
            logits_t = torch.tensor(logits, requires_grad=True)
            expected = torch.nn.functional.cross_entropy(logits_t, torch.tensor(target), ignore_index=3,
                                                         reduction=reduction, label_smoothing=eps)
            grad_loss = rng.standard_normal(12) if reduction == "none" else np.array(1.7)
            expected.backward(torch.tensor(grad_loss))
            loss, lse = kb.cross_entropy(logits, target, ignore_index=3, reduction=reduction, label_smoothing=eps)
            dx = kb.cross_entropy_backward(logits, target, lse, grad_loss, ignore_index=3, reduction=reduction,
                                           label_smoothing=eps)
            np.testing.assert_allclose(loss, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(dx, logits_t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_cross_entropy_fused_equals_log_softmax_path(kb):
    """cross-entropy == -log_softmax at the target, and its gradient == softmax - onehot."""
    rng = np.random.default_rng(10)
    logits = rng.standard_normal((8, 11)).astype(np.float32)
    target = rng.integers(0, 11, size=8)
    losses, lse = kb.cross_entropy(logits, target, reduction="none")
    log_y = kb.log_softmax(logits)
    np.testing.assert_allclose(losses, -log_y[np.arange(8), target], rtol=1e-5, atol=1e-5)
    dx = kb.cross_entropy_backward(logits, target, lse, np.ones(8, np.float32), reduction="none")
    onehot = np.eye(11, dtype=np.float32)[target]
    np.testing.assert_allclose(dx, kb.softmax(logits) - onehot, rtol=1e-5, atol=1e-6)
