"""Tensor construction, dtype rules, gradient storage and in-place operations."""
import numpy as np
import pytest

import minireparam as mr


def test_python_floats_become_float32():
    assert mr.tensor(1.5).dtype == np.float32
    assert mr.tensor([1.0, 2.0]).dtype == np.float32
    assert mr.tensor([1, 2.5]).dtype == np.float32


def test_python_ints_become_int64():
    assert mr.tensor([1, 2]).dtype == np.int64


def test_arrays_keep_dtype_and_memory():
    array = np.arange(3.0)
    t = mr.tensor(array)
    assert t.dtype == np.float64
    assert t.data is array


def test_explicit_dtype():
    assert mr.tensor([1, 2], dtype="float64").dtype == np.float64


def test_mixed_float_dtypes_promote_to_float64():
    a = mr.tensor(np.ones(2, dtype=np.float32))
    b = mr.tensor(np.ones(2, dtype=np.float64))
    assert (a * b).dtype == np.float64


def test_python_scalar_keeps_float32():
    a = mr.tensor(np.ones(2, dtype=np.float32))
    assert (a * 2.0).dtype == np.float32
    assert (2.0 - a).dtype == np.float32


def test_integer_true_division_promotes():
    out = mr.tensor([3]) / 2
    assert out.data.dtype.kind == "f"
    assert out.data[0] == 1.5


def test_requires_grad_on_integer_raises():
    with pytest.raises(TypeError, match="only floating tensors can require gradients"):
        mr.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="only floating tensors can require gradients"):
        mr.tensor([True, False]).requires_grad_()


def test_leaf_gradient_keeps_leaf_dtype():
    a = mr.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    b = mr.tensor(np.array([3.0, 4.0], dtype=np.float64), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32
    assert b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])


def test_gradient_accumulates_and_clears():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None
    (x * 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    x.grad = None
    assert x.grad is None


def test_grad_is_ndarray_of_tensor_shape():
    x = mr.tensor(np.zeros((2, 3)), requires_grad=True)
    (x * 2.0).sum().backward()
    assert isinstance(x.grad, np.ndarray)
    assert x.grad.shape == (2, 3)


def test_attributes_follow_numpy():
    t = mr.tensor(np.zeros((2, 3, 4)))
    assert t.size == 24
    assert t.ndim == 3
    assert t.shape == (2, 3, 4)
    assert t.T.shape == (4, 3, 2)
    assert mr.tensor([[1.0, 2.0]]).item is not None
    assert mr.tensor([2.5]).item() == 2.5


def test_item_on_many_elements_raises():
    with pytest.raises(ValueError, match="3 elements"):
        mr.tensor([1.0, 2.0, 3.0]).item()


def test_repr_shows_data_and_grad_fn():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<exp>" in repr(mr.exp(x))
    assert "1., 2." in repr(x)


def test_detach_cuts_the_graph():
    x = mr.tensor([1.0], requires_grad=True)
    y = (x * 2.0).detach()
    assert y.grad_fn is None
    assert not y.requires_grad


def test_no_grad_context_and_decorator():
    x = mr.tensor([1.0], requires_grad=True)
    with mr.no_grad():
        assert not (x * 2.0).requires_grad

    @mr.no_grad()
    def double(t):
        return t * 2.0

    @mr.no_grad
    def triple(t):
        return t * 3.0

    assert not double(x).requires_grad
    assert not triple(x).requires_grad
    assert (x * 2.0).requires_grad


def test_numpy_array_on_the_left_defers_to_tensor():
    x = mr.tensor(np.ones(2), requires_grad=True)
    out = np.array([2.0, 3.0]) * x
    assert isinstance(out, mr.Tensor)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 3.0])


# -- in-place operations ------------------------------------------------------------------


def test_inplace_on_leaf_requiring_grad_raises():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        x += 1.0


def test_inplace_under_no_grad_bumps_version():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    version = x._version[0]
    with mr.no_grad():
        x -= 0.5
    assert x._version[0] == version + 1
    np.testing.assert_array_equal(x.data, [0.5, 1.5])


def test_modified_saved_value_raises_on_backward():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    y = mr.exp(x)          # exp saves its output y
    z = (y * 1.0).sum()
    with mr.no_grad():
        y += 1.0           # changes the saved output in place
    with pytest.raises(mr.InplaceModifiedError, match="exp.*modified in place"):
        z.backward()


def test_optimizer_style_update_invalidates_saved_parameter():
    w = mr.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with mr.no_grad():
        w -= 0.1
    with pytest.raises(mr.InplaceModifiedError, match="multiply"):
        loss.backward()


def test_recorded_inplace_add_differentiates():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    y += x             # y = 3x, recorded
    y *= y             # y = 9x²
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 18.0 * np.array([1.0, 2.0]))


def test_setitem_records_both_gradients():
    base = mr.tensor(np.zeros(4))
    value = mr.tensor(np.array([2.0, 3.0]), requires_grad=True)
    base[1:3] = value
    (base * mr.tensor(np.array([1.0, 10.0, 100.0, 1000.0]))).sum().backward()
    np.testing.assert_array_equal(value.grad, [10.0, 100.0])


def test_setitem_overwritten_part_gets_no_gradient():
    x = mr.tensor(np.ones(3), requires_grad=True)
    y = x * 1.0
    y[0] = 5.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0])


def test_setitem_without_grad_writes_in_place():
    t = mr.zeros(3)
    t[1] = 4.0
    np.testing.assert_array_equal(t.data, [0.0, 4.0, 0.0])
    assert t._version[0] == 1
