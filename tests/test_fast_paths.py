"""The tape's fast paths give the same results as the general ones.

Covers the array-level VJPs (``vjp_arrays``) against the Tensor-level VJPs for every
registered op, the backward order by creation sequence, cotangent buffers that must not be
written in place, the unrecorded elementwise path, and ``where``'s fill-and-copy path.
"""
import functools
import importlib

import numpy as np
import pytest

import minireparam as mr
from minireparam.autograd.engine import toposort
from minireparam.errors import ShapeError
from minireparam.ops import elementwise
from minireparam.ops.registry import REGISTRY, RandomDraw

# Layers register their own entries when imported; import them so every entry is checked.
for _layer in ("minireparam.nn", "minireparam.distributions"):
    try:
        importlib.import_module(_layer)
    except ImportError:
        pass

ALL_OPS = sorted(REGISTRY)


def _differentiable_outputs(outputs):
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    return [out for out in outputs if isinstance(out, mr.Tensor) and out.requires_grad]


def _use_tensor_vjps(outputs):
    """Make every node behind ``outputs`` compute vjp_arrays through its Tensor-level vjp."""
    nodes = toposort([out.grad_fn for out in outputs if out.grad_fn is not None])
    for node in nodes:
        node.vjp_arrays = functools.partial(mr.Op.vjp_arrays, node)  # the default: wrap, vjp, unwrap
    return nodes


def _assert_same_gradients(name, description, fast, general, path, exact=True):
    for index, (a, b) in enumerate(zip(fast, general)):
        assert (a is None) == (b is None), f"{name}: input {index} has a gradient on one path only ({path})"
        if a is None:
            continue
        assert a.dtype == b.dtype, f"{name}: input {index}: {a.dtype} != {b.dtype} ({path})"
        message = f"{name} ({description}), input {index}, {path}"
        if exact:
            # Both paths run the same numpy operations in the same order, so they agree bit for bit.
            np.testing.assert_array_equal(a.data, b.data, err_msg=message)
        else:
            # A closed form against Tensor ops: the same values up to float64 rounding, a few ulps
            # of the largest terms (inputs and cotangents are of order 1).
            np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-13, err_msg=message)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", ALL_OPS)
def test_array_and_tensor_vjps_agree(name, seed):
    """Gradients from the ndarray VJPs equal those from the Tensor VJPs, for every registered op.

    The Tensor VJPs run twice: unrecorded (each node's vjp_arrays replaced by the default,
    which calls vjp), and recorded with create_graph=True where no node is once-differentiable.
    """
    case = REGISTRY[name].build(RandomDraw(np.random.default_rng(seed)))
    tensors = [mr.tensor(np.asarray(x, dtype=np.float64), requires_grad=True) for x in case.inputs]
    outputs = _differentiable_outputs(case.function(*tensors))
    rng = np.random.default_rng(100 + seed)
    cotangents = [mr.tensor(rng.normal(size=out.shape).astype(out.dtype)) for out in outputs]

    by_arrays = mr.grad(outputs, tensors, cotangents, retain_graph=True, allow_unused=True)
    nodes = toposort([o.grad_fn for o in outputs if o.grad_fn])
    recordable = not any(node.once_differentiable for node in nodes)
    exact = all(node.vjp_arrays_in_vjp_order for node in nodes)
    if recordable:
        by_recorded = mr.grad(outputs, tensors, cotangents, create_graph=True, allow_unused=True)
        _assert_same_gradients(name, case.description, by_arrays, by_recorded, "create_graph=True", exact)
    _use_tensor_vjps(outputs)
    by_tensor_vjps = mr.grad(outputs, tensors, cotangents, allow_unused=True)
    _assert_same_gradients(name, case.description, by_arrays, by_tensor_vjps, "Tensor vjp, unrecorded", exact)


def test_backward_runs_newest_node_first():
    """A node's VJP runs only after every consumer, even when a long branch reaches it late."""
    x = mr.tensor(np.array([0.5, -0.25]), requires_grad=True)
    shared = mr.exp(x)
    long_branch = shared
    for _ in range(20):
        long_branch = long_branch * 1.0
    out = (shared * 3.0 + long_branch).sum()
    out.backward()
    np.testing.assert_allclose(x.grad, 4.0 * np.exp(x.data), rtol=1e-15)


def test_sequence_numbers_grow_along_the_graph():
    x = mr.tensor(np.ones(3), requires_grad=True)
    first = x * 2.0
    second = mr.exp(first)
    third = first + second
    assert first.grad_fn.sequence < second.grad_fn.sequence < third.grad_fn.sequence


def test_shared_cotangent_is_not_modified():
    """Add hands the same array to both inputs, and summing them must not write into it."""
    x = mr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    seed = np.array([1.0, 10.0])
    seed_before = seed.copy()
    (x + x).backward(seed)
    np.testing.assert_array_equal(seed, seed_before)
    np.testing.assert_array_equal(x.grad, [2.0, 20.0])


def test_three_uses_of_one_input_sum_exactly():
    x = mr.tensor(np.array([1.5, -2.0]), requires_grad=True)
    y = x + x
    (y + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_zero_dimensional_cotangents_accumulate():
    """numpy returns scalars for 0-d products, and the engine must keep them as arrays."""
    x = mr.tensor(np.array(2.0), requires_grad=True)
    y = mr.tensor(np.array(3.0), requires_grad=True)
    (x * y + x * y * x).backward()
    assert x.grad == pytest.approx(3.0 + 2 * 2.0 * 3.0, rel=1e-15)
    assert y.grad == pytest.approx(2.0 + 2.0 * 2.0, rel=1e-15)
    assert isinstance(x.grad, np.ndarray)


def test_slice_and_dense_gradients_mix():
    """A SparseGrad from slicing and a dense gradient land in one buffer."""
    x = mr.tensor(np.arange(4.0), requires_grad=True)
    (x[1:3].sum() + (x * 2.0).sum() + x[np.array([0, 0])].sum()).backward()
    np.testing.assert_array_equal(x.grad, [4.0, 3.0, 3.0, 2.0])


def test_broadcast_gradient_is_summed_and_cast():
    """The fitting step still sums broadcast axes and casts to the input's dtype."""
    row = mr.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    matrix = mr.tensor(np.full((2, 3), 2.0), requires_grad=True)
    (row * matrix).sum().backward()
    assert row.grad.dtype == np.float32
    np.testing.assert_array_equal(row.grad, [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(matrix.grad, np.ones((2, 3)))


def test_vjp_arrays_checks_in_place_changes():
    x = mr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    hidden = x * 1.0
    out = (hidden * hidden).sum()
    with mr.no_grad():
        hidden += 1.0
    with pytest.raises(mr.InplaceModifiedError, match="multiply"):
        out.backward()


def test_default_vjp_arrays_unwraps_tensor_vjp():
    """An op without vjp_arrays still works without create_graph, through its vjp."""

    class Cube(mr.Op):
        name = "cube"

        def forward(self, x):
            self.save_input("x", 0)
            return x ** 3

        def vjp(self, g):
            x = self.saved("x")
            return (g * x * x * 3.0,)

    x = mr.tensor(np.array([1.0, -2.0]), requires_grad=True)
    Cube().apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 12.0])


@pytest.mark.parametrize("function", [mr.add, mr.subtract, mr.multiply])
@pytest.mark.parametrize("recorded", [False, True])
def test_binary_broadcast_error_names_op(function, recorded):
    a = mr.tensor(np.ones(2), requires_grad=recorded)
    b = mr.tensor(np.ones(3))
    with pytest.raises(ShapeError, match=rf"{function.__name__}: .*\(2,\) and \(3,\)"):
        function(a, b)


def test_unrecorded_binary_result_has_no_node():
    a, b = mr.tensor(np.ones(2), requires_grad=True), mr.tensor(np.ones(2))
    with mr.no_grad():
        out = a * b
    assert out.grad_fn is None
    assert not out.requires_grad


# -- where --------------------------------------------------------------------------------

# Above elementwise._FILL_MIN_SIZE elements, so the fill-and-copy path runs.
BATCH_SHAPE = (4, 2, 96, 96)


@pytest.mark.parametrize("scores_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("constant_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("constant_first", [False, True])
def test_where_fill_path_matches_numpy(scores_dtype, constant_dtype, constant_first):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=BATCH_SHAPE).astype(scores_dtype)
    mask = np.tril(np.ones(BATCH_SHAPE[-2:], dtype=bool))
    constant = np.array(-np.inf, dtype=constant_dtype)
    a, b = (constant, scores) if constant_first else (scores, constant)
    assert np.prod(BATCH_SHAPE) >= elementwise._FILL_MIN_SIZE

    out = mr.where(mask, mr.tensor(a), mr.tensor(b))
    expected = np.where(mask, a, b)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out.data, expected)


def test_where_with_python_scalar_keeps_tensor_dtype():
    scores = np.random.default_rng(1).normal(size=BATCH_SHAPE).astype(np.float32)
    mask = np.tril(np.ones(BATCH_SHAPE[-2:], dtype=bool))
    out = mr.where(mask, mr.tensor(scores), -np.inf)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.data, np.where(mask, scores, np.float32(-np.inf)))


def test_where_gradient_through_fill_path():
    scores = mr.tensor(np.ones(BATCH_SHAPE), requires_grad=True)
    mask = np.tril(np.ones(BATCH_SHAPE[-2:], dtype=bool))
    mr.where(mask, scores, -np.inf).sum().backward()
    np.testing.assert_array_equal(scores.grad, np.broadcast_to(mask, BATCH_SHAPE).astype(np.float64))


@pytest.mark.parametrize("create_graph", [False, True])
def test_where_constant_branch_gets_no_gradient(create_graph):
    x = mr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    out = mr.where(np.array([True, False, True]), x, 0.0)
    node = out.grad_fn
    g = np.ones(3)
    if create_graph:
        grads = node.vjp(mr.tensor(g))
    else:
        grads = node.vjp_arrays(g)
    assert grads[1] is None
    np.testing.assert_array_equal(np.asarray(getattr(grads[0], "data", grads[0])), [1.0, 0.0, 1.0])


def test_where_small_broadcast_mask_matches_numpy():
    """Below the size threshold np.where runs; the values and dtype are the same."""
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    mask = np.array([True, False, True])
    constant = np.array(5.0)  # float64, so the result is float64 as in numpy
    out = mr.where(mask, mr.tensor(x), constant)
    expected = np.where(mask, x, constant)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out.data, expected)


@pytest.mark.parametrize("index_shape", [(0,), (7,), (3, 5), (40, 8)])
def test_row_gather_gradient_sums_repeated_rows(rng, index_shape):
    # weight[indices] (an embedding lookup) sends its gradient through the sorted scatter-add,
    # which must match np.add.at: repeated rows summed, negative indices counted from the end.
    weight_rows = 6
    indices = rng.integers(-weight_rows, weight_rows, size=index_shape)
    weight = mr.tensor(rng.standard_normal((weight_rows, 3)), requires_grad=True)
    upstream = rng.standard_normal(index_shape + (3,))
    weight[indices].backward(mr.tensor(upstream))
    expected = np.zeros((weight_rows, 3))
    np.add.at(expected, indices, upstream)
    np.testing.assert_allclose(weight.grad, expected, rtol=1e-13, atol=1e-13)  # summed in another order
