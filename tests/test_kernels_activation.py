"""Activation and LSTM cell kernels under both backends and both C dispatch paths.

Every kernel is compared with a reference written here in long double (80-bit on
x86-64), independent of both backends. The accuracy bounds are the ones stated in
csrc/minireparam.h. Each is the largest error that the dense sweep of
``test_accuracy_sweep`` measured over the AVX2, portable and numpy paths, plus 25%,
rounded up to half a unit. So a failure means a real loss of accuracy, not noise.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minireparam.backend as backend
from minireparam.errors import DTypeError, ShapeError

GELU_K = 0.7978845608028654
GELU_A = 0.044715
DTYPES = [np.float32, np.float64]
ELEMENTWISE = ["sigmoid", "tanh", "gelu_tanh"]

# Bounds (see csrc/minireparam.h). Forward: ulps of the reference rounded to the dtype,
# for GELU per unit of (1 + |2u|) because the rounding of 2u = 2K(x + A x^3) is amplified
# by |2u| in e^-|2u|. Backward: absolute error in units of eps * |dy|.
FORWARD_ULPS = {"sigmoid": 4.0, "tanh": 3.5, "gelu_tanh": 3.5}
BACKWARD_EPS_DY = {"sigmoid": 0.5, "tanh": 1.0, "gelu_tanh": 3.0}

PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(params=["c-simd", "c-portable", "numpy"])
def kb(request):
    """The backend module under test, with the C core on its AVX2 or its portable kernels."""
    name, _, path = request.param.partition("-")
    if name not in backend.available():
        pytest.skip(f"C backend not built: {backend.c_unavailable_reason()}")
    with backend.use(name) as module:
        if name == "c":
            module.lib.mr_force_portable(1 if path == "portable" else 0)
        try:
            yield module
        finally:
            if name == "c":
                module.lib.mr_force_portable(0)


# ---- references in long double ------------------------------------------------------------------


def _sigmoid_parts(x):
    e = np.exp(-np.abs(x))
    return e, np.where(x >= 0, 1, e) / (1 + e)


def reference_forward(name, x):
    """The activation of x in long double (x * sigmoid(2u) for GELU, equal to PyTorch's formula)."""
    x = x.astype(np.longdouble)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "sigmoid":
            return _sigmoid_parts(x)[1]
        if name == "tanh":
            return np.tanh(x)
        two_u = 2 * np.longdouble(GELU_K) * (x + np.longdouble(GELU_A) * x ** 3)
        return x * _sigmoid_parts(two_u)[1]


def reference_backward(name, saved, dy):
    """dx in long double from the saved array (y for sigmoid and tanh, x for GELU)."""
    s = saved.astype(np.longdouble)
    d = dy.astype(np.longdouble)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "sigmoid":
            return d * s * (1 - s)
        if name == "tanh":
            return d * (1 - s * s)
        two_u = 2 * np.longdouble(GELU_K) * (s + np.longdouble(GELU_A) * s ** 3)
        e, sigma = _sigmoid_parts(two_u)
        slope = 2 * np.longdouble(GELU_K) * (1 + 3 * np.longdouble(GELU_A) * s * s)
        # The second term vanishes for |x| > 22; past 1000 it is 0 by definition (the
        # limit), where the long double product would be inf * 0.
        second = np.where(np.abs(s) > 1000, 0, s * slope * e / (1 + e) ** 2)
        return d * (sigma + second)


def assert_forward_within_bound(name, x, y, context):
    """Check y against the reference: the ulp bound where the result is normal, 2^-126 * max(1, |x|) elsewhere."""
    dtype = x.dtype
    tiny = np.finfo(dtype).tiny
    reference = reference_forward(name, x)
    got = y.astype(np.longdouble)
    finite = np.isfinite(reference) & np.isfinite(x)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # For GELU the factor sigmoid(2u) = y / x decides whether exp underflowed.
        magnitude = np.abs(reference / x.astype(np.longdouble)) if name == "gelu_tanh" else np.abs(reference)
        normal = finite & (magnitude >= tiny)
        ulp = np.spacing(np.abs(reference[normal]).astype(dtype)).astype(np.longdouble)
    error = np.abs(got[normal] - reference[normal]) / ulp
    bound = np.full(error.shape, FORWARD_ULPS[name])
    if name == "gelu_tanh":
        xn = x[normal].astype(np.float64)
        with np.errstate(over="ignore"):
            bound = bound * (1 + np.abs(2 * GELU_K * (xn + GELU_A * xn ** 3)))
    bad = np.nonzero(~(error <= bound))[0]
    assert bad.size == 0, (
        f"{context}: {name} off by {error[bad[0]]:.2f} ulp (bound {bound[bad[0]]:.2f}) at x = {x[normal][bad[0]]!r}: "
        f"got {got[normal][bad[0]]!r}, expected {reference[normal][bad[0]]!r}"
    )
    flushed = finite & ~normal
    limit = tiny * np.maximum(1.0, np.abs(x[flushed].astype(np.float64)))
    flush_error = np.abs(got[flushed] - reference[flushed])
    assert np.all(flush_error <= limit), f"{context}: {name} near underflow off by {flush_error.max():.3g}"
    nonfinite = ~finite
    np.testing.assert_array_equal(y[nonfinite], reference[nonfinite].astype(dtype),
                                  err_msg=f"{context}: {name} at non-finite inputs or results")


def assert_backward_within_bound(name, saved, dy, dx, context):
    """Check dx against the reference within the bound in eps * |dy|."""
    eps = np.finfo(saved.dtype).eps
    reference = reference_backward(name, saved, dy)
    error = np.abs(dx.astype(np.longdouble) - reference)
    limit = BACKWARD_EPS_DY[name] * eps * np.abs(dy.astype(np.longdouble)) + np.finfo(saved.dtype).tiny
    finite = np.isfinite(reference)
    bad = np.nonzero(finite & ~(error <= limit))[0]
    assert bad.size == 0, (
        f"{context}: {name}_backward off by {error[bad[0]] / (eps * abs(float(dy[bad[0]]))):.2f} eps*|dy| "
        f"(bound {BACKWARD_EPS_DY[name]}) at saved {saved[bad[0]]!r}, dy {dy[bad[0]]!r}"
    )
    np.testing.assert_array_equal(dx[~finite], reference[~finite].astype(saved.dtype),
                                  err_msg=f"{context}: {name}_backward where the reference is not finite")


def sweep_points(dtype, count):
    """About ``count`` values of |x| <= 100 spread evenly over the bit patterns, with subnormals and tails, both signs."""
    info = np.finfo(dtype)
    int_type = np.int32 if dtype == np.float32 else np.int64
    top = int(np.array(100.0, dtype).view(int_type))
    bits = np.linspace(0, top, count).astype(int_type)
    subnormals = np.linspace(0, float(info.tiny), 257).astype(dtype)
    tails = np.array([0.0, 150.0, 1e3, 1e10, 1e30, float(info.max), float(info.tiny)], dtype)
    x = np.concatenate([bits.view(dtype), subnormals, tails])
    return np.concatenate([x, -x])


def _saved_for_backward(kb, name, x):
    """The array the backward reads: the forward's output for sigmoid and tanh, x for GELU."""
    return x if name == "gelu_tanh" else getattr(kb, name)(x)


# ---- accuracy --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_accuracy_sweep(kb, name, dtype):
    x = sweep_points(dtype, 200_000)
    assert_forward_within_bound(name, x, getattr(kb, name)(x), f"{kb.name} sweep {np.dtype(dtype)}")

    finite = x[np.isfinite(x)]
    dy = np.random.default_rng(0).uniform(-1.0, 1.0, finite.shape).astype(dtype)
    saved = _saved_for_backward(kb, name, finite)
    dx = getattr(kb, name + "_backward")(saved, dy)
    assert_backward_within_bound(name, saved, dy, dx, f"{kb.name} sweep {np.dtype(dtype)}")


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e30, -1e30, 88.0, -88.0, 89.0, -89.0, 710.0, -710.0]


def _values(dtype):
    """Hypothesis arrays: moderate values, tails and special values, with sizes around the vector widths."""
    finite = st.floats(-30.0, 30.0, width=32 if dtype == np.float32 else 64)
    special = st.sampled_from([float(np.array(v, dtype)) for v in SPECIAL])
    return st.lists(st.one_of(finite, finite, finite, special), min_size=0, max_size=70).map(
        lambda values: np.array(values, dtype=dtype))


@settings(**PROPERTY)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
@given(data=st.data())
def test_elementwise_matches_reference(kb, name, dtype, data):
    x = data.draw(_values(dtype), label="x")
    with np.errstate(all="ignore"):  # the numpy backend may raise warnings at inf and NaN
        y = getattr(kb, name)(x)
    assert y.shape == x.shape, f"{kb.name}: {name} returned shape {y.shape} for {x.shape}"
    assert y.dtype == x.dtype, f"{kb.name}: {name} returned dtype {y.dtype} for {x.dtype}"
    assert_forward_within_bound(name, x, y, kb.name)

    dy = np.random.default_rng(x.size).uniform(-2.0, 2.0, x.shape).astype(dtype)
    with np.errstate(all="ignore"):
        saved = _saved_for_backward(kb, name, x)
        dx = getattr(kb, name + "_backward")(saved, dy)
    nan_in = np.isnan(saved)
    assert np.all(np.isnan(dx[nan_in])), f"{kb.name}: NaN in must give NaN out in {name}_backward"
    assert_backward_within_bound(name, saved[~nan_in], dy[~nan_in], dx[~nan_in], kb.name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(kb, dtype):
    x = np.array([-np.inf, -1e4, -0.0, 0.0, 1e4, np.inf, np.nan], dtype)
    with np.errstate(all="ignore"):
        sigmoid, tanh, gelu = kb.sigmoid(x), kb.tanh(x), kb.gelu_tanh(x)
        gelu_slope = kb.gelu_tanh_backward(x, np.ones_like(x))
    np.testing.assert_array_equal(sigmoid, np.array([0, 0, 0.5, 0.5, 1, 1, np.nan], dtype))
    np.testing.assert_array_equal(tanh, np.array([-1, -1, -0.0, 0.0, 1, 1, np.nan], dtype))
    assert np.signbit(tanh[2]), "tanh(-0) must be -0"
    assert not np.signbit(tanh[3]), "tanh(+0) must be +0"
    # gelu(-inf) = -inf * 0 is NaN, as in PyTorch; gelu(-1e4) underflows to -0.
    np.testing.assert_array_equal(gelu, np.array([np.nan, -0.0, -0.0, 0.0, 1e4, np.inf, np.nan], dtype))
    np.testing.assert_array_equal(gelu_slope, np.array([0, 0, 0.5, 0.5, 1, 1, np.nan], dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_is_odd_and_sigmoid_symmetric(kb, dtype):
    x = sweep_points(dtype, 20_000)
    x = x[np.isfinite(x) & (x > 0)]
    np.testing.assert_array_equal(kb.tanh(-x), -kb.tanh(x))
    # sigma(x) + sigma(-x) = 1 up to the rounding of both values (at most 4 ulp each of values <= 1).
    total = kb.sigmoid(x).astype(np.float64) + kb.sigmoid(-x).astype(np.float64)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=8 * np.finfo(dtype).eps)


def test_gelu_matches_torch(kb):
    torch = pytest.importorskip("torch")
    x = np.linspace(-6.0, 6.0, 1001)
    dy = np.cos(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.gelu(tx, approximate="tanh")
    ty.backward(torch.tensor(dy))
    # atol 4e-15: PyTorch's 1 + tanh(u) cancels for negative x, so its values carry an absolute
    # error of a few eps * |x| (up to 1.4e-15 measured at x = -6); ours does not cancel.
    np.testing.assert_allclose(kb.gelu_tanh(x), ty.detach().numpy(), rtol=1e-14, atol=4e-15)
    np.testing.assert_allclose(kb.gelu_tanh_backward(x, dy), tx.grad.numpy(), rtol=1e-14, atol=4e-15)


# ---- layouts, out buffers, aliasing and errors ---------------------------------------------------------


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_layouts_and_out(kb, name):
    rng = np.random.default_rng(3)
    base = rng.uniform(-5.0, 5.0, (7, 13)).astype(np.float32)
    expected = getattr(kb, name)(base)

    strided = np.zeros((7, 26), np.float32)
    strided[:, ::2] = base
    np.testing.assert_array_equal(getattr(kb, name)(strided[:, ::2]), expected)
    np.testing.assert_array_equal(getattr(kb, name)(np.asfortranarray(base)), expected)

    out = np.full((7, 13), np.nan, np.float32)
    assert getattr(kb, name)(base, out=out) is out
    np.testing.assert_array_equal(out, expected)

    in_place = base.copy()
    assert getattr(kb, name)(in_place, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, expected)

    # An out that is a strided view of a wider buffer is filled without touching the gaps.
    wide = np.zeros((7, 26), np.float32)
    getattr(kb, name)(base, out=wide[:, 1::2])
    np.testing.assert_array_equal(wide[:, 1::2], expected)
    assert not wide[:, ::2].any()


def test_elementwise_partial_overlap_is_correct(kb):
    x = np.linspace(-3.0, 3.0, 40)
    expected = kb.tanh(x[:-1].copy())
    buffer = x.copy()
    kb.tanh(buffer[:-1], out=buffer[1:])  # out starts one element after the input
    np.testing.assert_array_equal(buffer[1:], expected)


def test_backward_out_is_dy(kb):
    rng = np.random.default_rng(4)
    y = np.tanh(rng.standard_normal(33))
    dy = rng.standard_normal(33)
    expected = kb.tanh_backward(y, dy)
    assert kb.tanh_backward(y, dy, out=dy) is dy
    np.testing.assert_array_equal(dy, expected)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_empty_and_scalar(kb, name):
    for shape in [(0,), (3, 0), ()]:
        x = np.full(shape, 0.25)
        y = getattr(kb, name)(x)
        assert y.shape == shape, f"{name} of shape {shape} returned shape {y.shape}"
        assert y.dtype == x.dtype, f"{name} returned dtype {y.dtype}"
        np.testing.assert_array_equal(y, reference_forward(name, x).astype(np.float64))


def test_elementwise_errors(kb):
    x32 = np.zeros(4, np.float32)
    with pytest.raises(ShapeError, match=r"sigmoid_backward: dy has shape \(5,\) but y has shape \(4,\)"):
        kb.sigmoid_backward(x32, np.zeros(5, np.float32))
    with pytest.raises(DTypeError, match=r"tanh_backward: operands must have the same dtype, got y float32 \(4,\), "
                                         r"dy float64 \(4,\); convert one with \.astype\(\)"):
        kb.tanh_backward(x32, np.zeros(4))
    with pytest.raises(DTypeError, match=r"gelu_tanh: x must be float32 or float64, got int64"):
        kb.gelu_tanh(np.zeros(4, np.int64))
    with pytest.raises(TypeError, match=r"tanh: x must be a numpy.ndarray, got list"):
        kb.tanh([1.0, 2.0])
    with pytest.raises(ShapeError, match=r"sigmoid: out has shape \(3,\) but the result has shape \(4,\)"):
        kb.sigmoid(x32, out=np.zeros(3, np.float32))
    with pytest.raises(DTypeError, match=r"sigmoid: out has dtype float64 but the result has dtype float32"):
        kb.sigmoid(x32, out=np.zeros(4))


# ---- LSTM cell --------------------------------------------------------------------------------------------


def lstm_reference_forward(pre, c_prev):
    """(gates, c, tanh_c, h) in long double, gate order i, f, g, o."""
    pre = pre.astype(np.longdouble)
    c_prev = c_prev.astype(np.longdouble)
    H = c_prev.shape[-1]
    i, f, o = (_sigmoid_parts(pre[..., k * H:(k + 1) * H])[1] for k in (0, 1, 3))
    g = np.tanh(pre[..., 2 * H:3 * H])
    c = f * c_prev + i * g
    return np.concatenate([i, f, g, o], axis=-1), c, np.tanh(c), o * np.tanh(c)


def lstm_reference_backward(dh, dc, gates, c_prev, tanh_c):
    """(d_pre, dc_prev, total) in long double from the saved (rounded) forward values."""
    dh, dc, gates, c_prev, tanh_c = (a.astype(np.longdouble) for a in (dh, dc, gates, c_prev, tanh_c))
    H = c_prev.shape[-1]
    i, f, g, o = (gates[..., k * H:(k + 1) * H] for k in range(4))
    total = dc + dh * o * (1 - tanh_c * tanh_c)
    d_pre = np.concatenate([total * g * i * (1 - i), total * c_prev * f * (1 - f), total * i * (1 - g * g),
                            dh * tanh_c * o * (1 - o)], axis=-1)
    return d_pre, total * f, total


def _buffer(rng, shape, dtype, layout):
    """An uninitialized-looking (NaN-filled) buffer of ``shape`` in the given memory layout."""
    if layout == "contiguous":
        return np.full(shape, np.nan, dtype)
    if layout == "row_block":  # the left columns of a wider array: a leading dimension > width
        wide = np.full(shape[:-1] + (shape[-1] + 3,), np.nan, dtype)
        return wide[..., :shape[-1]]
    if layout == "time_slice":  # one step of a (T, ...) buffer
        return np.full((3,) + shape, np.nan, dtype)[1]
    if layout == "strided":  # every other column: the C backend copies or uses a temporary
        wide = np.full(shape[:-1] + (2 * shape[-1],), np.nan, dtype)
        return wide[..., ::2]
    raise ValueError(layout)


def _filled(rng, shape, dtype, layout, low, high):
    array = _buffer(rng, shape, dtype, layout)
    array[...] = rng.uniform(low, high, shape)
    return array


LAYOUTS = ["contiguous", "row_block", "time_slice", "strided"]


@settings(**PROPERTY)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    lead=st.sampled_from([(), (0,), (1,), (3,), (5,), (2, 3)]),
    hidden=st.one_of(st.integers(0, 19), st.sampled_from([31, 33, 64, 4097])),
    layout_in=st.sampled_from(LAYOUTS),
    layout_out=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**32 - 1),
)
def test_lstm_cell_matches_reference(kb, dtype, lead, hidden, layout_in, layout_out, seed):
    rng = np.random.default_rng(seed)
    if hidden > 100:
        lead = (1,)  # keep the long-row case fast: it crosses the 4096-column block boundary
    narrow, wide = lead + (hidden,), lead + (4 * hidden,)
    eps = np.finfo(dtype).eps
    pre = _filled(rng, wide, dtype, layout_in, -6.0, 6.0)
    c_prev = _filled(rng, narrow, dtype, layout_in, -2.0, 2.0)
    gates, d_pre = _buffer(rng, wide, dtype, layout_out), _buffer(rng, wide, dtype, layout_out)
    c, tanh_c, h, dc_prev, scratch = (_buffer(rng, narrow, dtype, layout_out) for _ in range(5))
    kb.lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h)

    ref_gates, ref_c, ref_tanh_c, ref_h = lstm_reference_forward(pre, c_prev)
    # Gates: within 4 ulp (at most 4 eps absolute, values in [-1, 1]). c, tanh(c) and h add
    # a product and a sum of such values and c_prev (|c_prev| <= 2): 16 eps * (1 + |c_prev|).
    np.testing.assert_allclose(gates, ref_gates, rtol=0, atol=4 * eps)
    for got, expected, label in [(c, ref_c, "c"), (tanh_c, ref_tanh_c, "tanh_c"), (h, ref_h, "h")]:
        np.testing.assert_allclose(got, expected, rtol=0, atol=16 * eps * 3, err_msg=label)

    dh = _filled(rng, narrow, dtype, layout_in, -1.0, 1.0)
    dc = _filled(rng, narrow, dtype, layout_in, -1.0, 1.0)
    kb.lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch)
    ref_d_pre, ref_dc_prev, ref_total = lstm_reference_backward(dh, dc, gates, c_prev, tanh_c)
    # Each output is a product of at most five factors of magnitude <= 2 (|total| <= 2)
    # with at most seven roundings: 32 eps * 2 leaves a margin over 7 eps * 2^2.
    for got, expected, label in [(d_pre, ref_d_pre, "d_pre"), (dc_prev, ref_dc_prev, "dc_prev"),
                                 (scratch, ref_total, "scratch")]:
        np.testing.assert_allclose(got, expected, rtol=0, atol=64 * eps, err_msg=label)


def _lstm_arrays(rng, B, H, dtype=np.float64):
    pre = rng.uniform(-4.0, 4.0, (B, 4 * H)).astype(dtype)
    c_prev = rng.uniform(-2.0, 2.0, (B, H)).astype(dtype)
    return pre, c_prev


def _run_lstm(kb, pre, c_prev, dh, dc):
    gates, d_pre = np.empty_like(pre), np.empty_like(pre)
    c, tanh_c, h, dc_prev, scratch = (np.empty_like(c_prev) for _ in range(5))
    kb.lstm_cell_forward(pre, c_prev, gates, c, tanh_c, h)
    kb.lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, d_pre, dc_prev, scratch)
    return gates, c, tanh_c, h, d_pre, dc_prev, scratch


def test_lstm_cell_aliasing_allowed_by_contract(kb):
    """c may be c_prev, and dc_prev may be dc: the results equal those with separate buffers."""
    rng = np.random.default_rng(5)
    pre, c_prev = _lstm_arrays(rng, 3, 9)
    dh, dc = rng.standard_normal((3, 9)), rng.standard_normal((3, 9))
    gates, c, tanh_c, h, d_pre, dc_prev, scratch = _run_lstm(kb, pre, c_prev, dh, dc)

    state = c_prev.copy()
    gates2, tanh_c2, h2 = np.empty_like(pre), np.empty_like(state), np.empty_like(state)
    kb.lstm_cell_forward(pre, state, gates2, state, tanh_c2, h2)
    np.testing.assert_array_equal(state, c)
    np.testing.assert_array_equal(h2, h)

    carried = dc.copy()
    d_pre2, scratch2 = np.empty_like(pre), np.empty_like(dc)
    kb.lstm_cell_backward(dh, carried, gates, c_prev, tanh_c, d_pre2, carried, scratch2)
    np.testing.assert_array_equal(carried, dc_prev)
    np.testing.assert_array_equal(d_pre2, d_pre)


def test_lstm_cell_threads_match_one_thread():
    if "c" not in backend.available():
        pytest.skip(f"C backend not built: {backend.c_unavailable_reason()}")
    c_backend = backend.c_backend
    rng = np.random.default_rng(6)
    pre, c_prev = _lstm_arrays(rng, 64, 1031, np.float32)
    dh, dc = (rng.standard_normal((64, 1031)).astype(np.float32) for _ in range(2))
    previous = c_backend.get_num_threads()
    try:
        c_backend.set_num_threads(1)
        serial = _run_lstm(c_backend, pre, c_prev, dh, dc)
        c_backend.set_num_threads(3)
        threaded = _run_lstm(c_backend, pre, c_prev, dh, dc)
    finally:
        c_backend.set_num_threads(previous)
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


def test_lstm_cell_errors(kb):
    pre, c_prev = np.zeros((2, 12)), np.zeros((2, 3))
    out4, out1 = np.zeros((2, 12)), [np.zeros((2, 3)) for _ in range(3)]
    with pytest.raises(ShapeError, match=r"lstm_cell_forward: pre has shape \(2, 10\) but c_prev \(2, 3\) needs "
                                         r"\(2, 12\): the last axis holds the gate blocks i, f, g, o"):
        kb.lstm_cell_forward(np.zeros((2, 10)), c_prev, out4, *out1)
    with pytest.raises(ShapeError, match=r"lstm_cell_forward: h has shape \(3, 3\) but c_prev has shape \(2, 3\)"):
        kb.lstm_cell_forward(pre, c_prev, out4, out1[0], out1[1], np.zeros((3, 3)))
    with pytest.raises(DTypeError, match=r"lstm_cell_forward: operands must have the same dtype.*gates float32"):
        kb.lstm_cell_forward(pre, c_prev, np.zeros((2, 12), np.float32), *out1)
    with pytest.raises(ValueError, match=r"lstm_cell_forward: output h \(2, 3\) overlaps c_prev \(2, 3\) in memory; "
                                         r"pass separate buffers"):
        kb.lstm_cell_forward(pre, c_prev, out4, out1[0], out1[1], c_prev)
    shared = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"lstm_cell_forward: output c .* overlaps c_prev .* \(only \(\('c', 'c_prev'\),\) "
                                         r"may be the same buffer\)"):
        kb.lstm_cell_forward(pre, shared[:, :3], out4, shared[:, 1:], out1[1], out1[2])  # shifted by one column
    read_only = np.zeros((2, 3))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match=r"lstm_cell_backward: output dc_prev \(shape \(2, 3\)\) is read-only"):
        kb.lstm_cell_backward(c_prev, c_prev, pre, c_prev, c_prev, out4, read_only, out1[0])
    with pytest.raises(ValueError, match=r"lstm_cell_backward: output scratch \(2, 3\) overlaps dh"):
        dh = np.zeros((2, 3))
        kb.lstm_cell_backward(dh, c_prev, pre, c_prev, c_prev, out4, out1[0], dh)


def test_c_entry_points_reject_invalid_sizes():
    if "c" not in backend.available():
        pytest.skip(f"C backend not built: {backend.c_unavailable_reason()}")
    lib, ffi = backend.c_backend.lib, backend.c_backend.ffi
    x = np.zeros(16, np.float32)
    p = ffi.from_buffer(x)
    assert lib.mr_sigmoid_forward_f32(p, p, -1) == lib.MR_ERR_INVALID_ARGUMENT
    assert lib.mr_gelu_tanh_backward_f32(p, p, p, -2) == lib.MR_ERR_INVALID_ARGUMENT
    # ld_gates = 7 < 4H = 8 with H = 2.
    assert lib.mr_lstm_cell_forward_f32(p, 7, p, 2, p, 2, p, 2, p, 8, p, 2, 1, 2) == lib.MR_ERR_INVALID_ARGUMENT
    assert lib.mr_lstm_cell_forward_f32(p, 8, p, 1, p, 2, p, 2, p, 8, p, 2, 1, 2) == lib.MR_ERR_INVALID_ARGUMENT
    assert lib.mr_lstm_cell_backward_f32(p, 8, p, 2, p, 2, p, 2, p, 2, p, 8, p, 2, p, 2, -1, 2) == \
        lib.MR_ERR_INVALID_ARGUMENT
    assert lib.mr_lstm_cell_forward_f32(p, 0, p, 0, p, 0, p, 0, p, 0, p, 0, 0, 0) == lib.MR_OK
