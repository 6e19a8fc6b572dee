"""Error messages name the op and show the values involved."""
import numpy as np
import pytest

import minireparam as mr


def test_matmul_shape_mismatch_shows_both_shapes():
    with pytest.raises(mr.ShapeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        mr.matmul(mr.zeros((2, 3)), mr.zeros((4, 5)))


def test_matmul_scalar_operand():
    with pytest.raises(mr.ShapeError, match="at least one dimension"):
        mr.matmul(mr.tensor(2.0), mr.zeros(3))


def test_broadcast_mismatch_shows_both_shapes():
    with pytest.raises(mr.ShapeError, match=r"add: .*\(2, 3\) and \(4,\)"):
        mr.zeros((2, 3)) + mr.zeros(4)


def test_reduction_axis_out_of_range():
    with pytest.raises(np.exceptions.AxisError, match="sum: axis 3 is out of range for a tensor with 2 dimensions"):
        mr.zeros((2, 3)).sum(axis=3)
    with pytest.raises(np.exceptions.AxisError, match="softmax: axis -3"):
        mr.softmax(mr.zeros((2, 3)), axis=-3)


def test_reshape_error_shows_shapes():
    with pytest.raises(mr.ShapeError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\)"):
        mr.zeros((2, 3)).reshape(4, 2)


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mr.zeros(3).sum().backward()


def test_requires_grad_on_integer_tensor():
    with pytest.raises(TypeError, match="int64.*only floating tensors"):
        mr.tensor([1, 2, 3], requires_grad=True)


def test_take_along_axis_index_out_of_range():
    with pytest.raises(IndexError, match=r"take_along_axis: indices must lie in \[-3, 3\)"):
        mr.take_along_axis(mr.zeros((2, 3)), np.array([[5], [0]]), axis=1)


def test_concatenate_mismatch():
    with pytest.raises(mr.ShapeError, match=r"concatenate: .*\(2, 3\), \(2, 4\)"):
        mr.concatenate([mr.zeros((2, 3)), mr.zeros((2, 4))], axis=0)
