"""Numerical edge cases of the core ops; each expected value is derived in its comment."""
import numpy as np
import pytest

import minireparam as mr


def _leaf(values, dtype=np.float64):
    return mr.tensor(np.array(values, dtype=dtype), requires_grad=True)


@pytest.mark.parametrize("scale", [1e4, 1e8])
def test_softmax_family_large_logits(scale, backend_name):
    logits = np.array([[1.0, 0.0, -1.0]]) * scale
    x = _leaf(logits)
    probabilities = mr.softmax(x)
    np.testing.assert_array_equal(probabilities.data, [[1.0, 0.0, 0.0]])
    log_probabilities = mr.log_softmax(x)
    np.testing.assert_array_equal(log_probabilities.data, [[0.0, -scale, -2 * scale]])
    assert mr.logsumexp(x, axis=-1).item() == scale


def test_softmax_with_neg_inf_entry(backend_name):
    x = _leaf([[0.0, -np.inf, 0.0]])
    y = mr.softmax(x)
    np.testing.assert_array_equal(y.data, [[0.5, 0.0, 0.5]])
    (y * mr.tensor(np.array([[1.0, 2.0, 3.0]]))).sum().backward()
    assert x.grad[0, 1] == 0.0
    assert np.isfinite(x.grad).all()


def test_log_softmax_neg_inf_entry_has_zero_gradient(backend_name):
    x = _leaf([[0.0, -np.inf, 0.0]])
    y = mr.log_softmax(x)
    np.testing.assert_array_equal(y.data, [[np.log(0.5), -np.inf, np.log(0.5)]])
    (y[:, [0, 2]]).sum().backward()
    assert x.grad[0, 1] == 0.0
    np.testing.assert_allclose(x.grad[0, [0, 2]], [0.0, 0.0], atol=1e-15)


def test_logsumexp_neg_inf_entry():
    x = _leaf([0.0, -np.inf])
    out = mr.logsumexp(x)
    assert out.item() == 0.0
    out.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0])


def test_all_neg_inf_row_convention(backend_name):
    """An all -inf row: softmax 0, log_softmax -inf, logsumexp -inf, zero gradients, other rows intact."""
    logits = np.array([[-np.inf, -np.inf, -np.inf], [1.0, 2.0, 3.0]])
    cotangent = mr.tensor(np.array([[1.0, 2.0, 3.0], [1.0, -1.0, 2.0]]))

    x = _leaf(logits)
    y = mr.softmax(x)
    np.testing.assert_array_equal(y.data[0], [0.0, 0.0, 0.0])
    (y * cotangent).sum().backward()
    np.testing.assert_array_equal(x.grad[0], [0.0, 0.0, 0.0])
    assert np.isfinite(x.grad).all()

    x = _leaf(logits)
    y = mr.log_softmax(x)
    assert np.isneginf(y.data[0]).all()
    (y[1] * cotangent[1]).sum().backward()
    np.testing.assert_array_equal(x.grad[0], [0.0, 0.0, 0.0])
    assert np.isfinite(x.grad).all()

    x = _leaf(logits)
    lse = mr.logsumexp(x, axis=1)
    assert np.isneginf(lse.data[0])
    (lse[1] * 1.0).backward()
    np.testing.assert_array_equal(x.grad[0], [0.0, 0.0, 0.0])
    assert np.isfinite(x.grad).all()


def test_where_blocks_nan_from_unselected_branch():
    """d/dx Σ where(x == 0, x/2, sqrt(x) + 1) at x = [16, 0] is [1/(2·4), 1/2] = [0.125, 0.5]."""
    x = _leaf([16.0, 0.0])
    mr.where(x == 0, x / 2, mr.sqrt(x) + 1).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.125, 0.5])


def test_log_and_division_pass_zero_cotangent():
    x = _leaf([0.0, 2.0])
    with np.errstate(divide="ignore", invalid="ignore"):  # the untaken branch is -inf + inf at 0
        mr.where(x > 0, mr.log(x) + 1.0 / x, 0.0).sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.5 - 0.25])


def test_pow_edges_follow_pytorch():
    x = _leaf([0.0, 2.0])
    (x ** 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])  # d(x**0)/dx = 0, even at x = 0

    base = _leaf([0.0, 2.0])
    exponent = _leaf([2.0, 3.0])
    (base ** exponent).sum().backward()
    assert exponent.grad[0] == 0.0                      # d(a**b)/db at a = 0 is 0
    assert exponent.grad[1] == pytest.approx(8.0 * np.log(2.0))


def test_sqrt_and_abs_at_zero_follow_pytorch():
    x = _leaf([0.0])
    mr.sqrt(x).sum().backward()
    assert x.grad[0] == np.inf                           # PyTorch: d sqrt(x)/dx at 0 is +inf
    x = _leaf([0.0])
    mr.abs(x).sum().backward()
    assert x.grad[0] == 0.0                              # PyTorch: d|x|/dx at 0 is 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("magnitude", [20.0, 1000.0])
def test_sigmoid_tanh_derivatives_symmetric(dtype, magnitude):
    for function in (mr.sigmoid, mr.tanh):
        x = _leaf([magnitude, -magnitude], dtype)
        function(x).sum().backward()
        assert x.grad[0] == x.grad[1], f"{function.__name__} at ±{magnitude}: {x.grad}"
        assert not np.isnan(x.grad).any()


def test_sigmoid_extremes_do_not_overflow():
    with np.errstate(over="raise"):
        y = mr.sigmoid(mr.tensor(np.array([-1000.0, 1000.0])))
    np.testing.assert_array_equal(y.data, [0.0, 1.0])


def test_max_ties_share_gradient():
    x = _leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    mr.max(x, axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(x.grad.sum(axis=1), [1.0, 1.0])


def test_min_ties_share_gradient():
    x = _leaf([4.0, 1.0, 1.0])
    mr.min(x).backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.5, 0.5])


def test_maximum_tie_splits_gradient():
    a, b = _leaf([1.0, 2.0]), _leaf([1.0, 0.0])
    mr.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 1.0])
    np.testing.assert_array_equal(b.grad, [0.5, 0.0])


def test_relu_at_zero_has_zero_gradient():
    x = _leaf([0.0, 1.0, -1.0])
    mr.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0])


def test_relu_keeps_nan_and_infinities():
    # PyTorch's relu(NaN) is NaN; an earlier np.where forward turned NaN into 0 silently.
    x = _leaf([np.nan, np.inf, -np.inf, -0.0])
    y = mr.relu(x)
    np.testing.assert_array_equal(y.data, [np.nan, np.inf, 0.0, 0.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, 0.0])


def test_softplus_large_inputs_are_exact():
    y = mr.softplus(mr.tensor(np.array([1000.0, -1000.0])))
    np.testing.assert_array_equal(y.data, [1000.0, 0.0])


def test_matmul_matches_numpy_semantics(backend_name, rng):
    cases = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((5, 2, 3), (3, 4)), ((2, 1, 2, 3), (4, 3, 2))]
    for a_shape, b_shape in cases:
        a, b = rng.normal(size=a_shape), rng.normal(size=b_shape)
        out = mr.matmul(mr.tensor(a), mr.tensor(b))
        np.testing.assert_allclose(out.data, np.matmul(a, b), rtol=1e-12, atol=1e-12)
