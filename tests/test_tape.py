"""The backward pass: ordering, freeing, retain_graph, grad(), anomaly mode and DOT export."""
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

import minireparam as mr


def test_nonscalar_backward_needs_grad():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="only for a scalar output"):
        (x * 2.0).backward()


def test_nonscalar_backward_with_cotangent():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    (x * 2.0).backward(np.array([1.0, 10.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad, [2.0, 20.0])


def test_backward_on_constant_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mr.tensor([1.0]).sum().backward()


def test_reused_intermediate_is_exact():
    a = mr.tensor(1.0, requires_grad=True)
    b = a + a
    c = b + b
    c.backward()
    assert a.grad == 4.0


def test_diamond_graph():
    x = mr.tensor(np.array(0.7), requires_grad=True)
    left, right = mr.sin(x), mr.exp(x)
    (left * right).backward()
    expected = np.cos(0.7) * np.exp(0.7) + np.sin(0.7) * np.exp(0.7)
    assert x.grad == pytest.approx(expected, rel=1e-15)


def test_second_backward_without_retain_graph_explains():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    y = mr.exp(x).sum()
    y.backward()
    with pytest.raises(mr.GraphReleasedError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = mr.tensor([1.0, 2.0], requires_grad=True)
    y = mr.exp(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * np.exp(x.data))


def test_deep_chain_has_no_recursion_error():
    x = mr.tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    assert sys.getrecursionlimit() < 100_000
    y.backward()
    assert x.grad == 1.0


def test_unrolled_tanh_rnn_matches_closed_form():
    """h_t = tanh(w·h_{t-1} + x_t) for 10,000 steps; dh_T/dw from its forward recurrence."""
    steps = 10_000
    inputs = np.random.default_rng(0).normal(0.0, 0.5, size=steps)
    w = mr.tensor(np.array(0.9), requires_grad=True)
    h = mr.tensor(np.array(0.0))
    for t in range(steps):
        h = mr.tanh(w * h + inputs[t])
    h.backward()

    h_value, dh_dw = 0.0, 0.0
    for t in range(steps):
        previous = h_value
        h_value = np.tanh(0.9 * previous + inputs[t])
        dh_dw = (1.0 - h_value**2) * (previous + 0.9 * dh_dw)  # d/dw of tanh(w·h + x)
    assert h.item() == pytest.approx(h_value, rel=1e-12)
    assert w.grad == pytest.approx(dh_dw, rel=1e-9)


def test_graph_freed_without_gc():
    import gc

    gc.disable()  # prove that reference counting alone frees the graph
    try:
        x = mr.tensor(np.ones(1000), requires_grad=True)
        hidden = mr.exp(x)
        saved_array = weakref.ref(hidden.data)
        out = (mr.tanh(hidden) * 2.0).sum()
        del hidden
        assert saved_array() is not None  # the graph of `out` still holds it
        del out
        assert saved_array() is None
    finally:
        gc.enable()


def test_slicing_accumulates_into_one_buffer():
    """64 time-step slices of a 64×1024×64 float64 tensor must not allocate 64 full gradients."""
    x = mr.tensor(np.ones((64, 1024, 64)), requires_grad=True)
    total = None
    for t in range(64):
        step = x[t].sum()
        total = step if total is None else total + step
    full_size = x.data.nbytes  # 32 MiB
    tracemalloc.start()
    total.backward()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3 * full_size, f"backward peaked at {peak / full_size:.1f} full-size arrays"
    np.testing.assert_array_equal(x.grad, np.ones_like(x.data))


def test_repeated_indices_accumulate():
    x = mr.tensor(np.arange(3.0), requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


def test_grad_returns_tensors_and_leaves_grad_alone():
    x = mr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (g,) = mr.grad((x ** 3).sum(), [x])
    assert isinstance(g, mr.Tensor)
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    assert x.grad is None


def test_hessian_vector_product():
    x = mr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    v = mr.tensor(np.array([1.0, 0.5, -1.0]))
    (g,) = mr.grad((x ** 3).sum(), [x], create_graph=True)
    (hv,) = mr.grad((g * v).sum(), [x])
    np.testing.assert_allclose(hv.data, 6 * x.data * v.data)


def test_grad_of_nonleaf_input():
    x = mr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    hidden = x * 3.0
    out = (hidden * hidden).sum()
    (g,) = mr.grad(out, [hidden])
    np.testing.assert_allclose(g.data, 2 * hidden.data)


def test_grad_unused_input():
    x = mr.tensor(np.array([1.0]), requires_grad=True)
    unused = mr.tensor(np.array([1.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        mr.grad((x * 2.0).sum(), [x, unused])
    gx, gu = mr.grad((x * 2.0).sum(), [x, unused], allow_unused=True)
    assert gu is None
    assert gx.item() == 2.0


def test_once_differentiable_op_rejects_create_graph():
    class FusedSquare(mr.Op):
        name = "fused_square"
        once_differentiable = True

        def forward(self, x):
            self.save_array("x", x)
            return x * x

        def vjp(self, g):
            return (g * self.saved("x") * 2.0,)

    x = mr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="fused_square is once-differentiable"):
        mr.grad(FusedSquare().apply(x).sum(), [x], create_graph=True)
    (g,) = mr.grad(FusedSquare().apply(x).sum(), [x])
    np.testing.assert_array_equal(g.data, [2.0, 4.0])


def test_topological_order_is_deterministic():
    def gradient_bits():
        x = mr.tensor(np.linspace(0.1, 1.0, 7), requires_grad=True)
        parts = [mr.sin(x * float(k)) for k in range(1, 30)]
        total = parts[0]
        for part in parts[1:]:
            total = total + part * x
        total.sum().backward()
        return x.grad.tobytes()

    assert len({gradient_bits() for _ in range(5)}) == 1


def test_detect_anomaly_names_op_and_line():
    x = mr.tensor(np.array([-1.0, 4.0]), requires_grad=True)
    with mr.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"forward of sqrt.*test_tape.py:\d+"):
            mr.sqrt(x)


def test_detect_anomaly_in_backward():
    class BrokenVjp(mr.Op):
        name = "broken_vjp"

        def forward(self, x):
            return x.copy()

        def vjp(self, g):
            return (g * np.nan,)

    x = mr.tensor(np.array([0.0, 4.0]), requires_grad=True)
    with mr.detect_anomaly():
        y = BrokenVjp().apply(x)
        with pytest.raises(FloatingPointError, match=r"backward of broken_vjp.*test_tape.py:\d+"):
            y.sum().backward()


def test_detect_anomaly_allows_inf():
    x = mr.tensor(np.array([-np.inf, 0.0]), requires_grad=True)
    with mr.detect_anomaly():
        mr.softmax(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_to_dot_lists_ops_and_shapes():
    x = mr.tensor(np.ones((2, 3)), requires_grad=True)
    dot = mr.to_dot(mr.tanh(x @ mr.tensor(np.ones((3, 4)))).sum())
    assert dot.startswith("digraph")
    assert "matmul" in dot
    assert "(2, 4)" in dot
    assert "leaf (2, 3)" in dot


@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")
def test_detect_anomaly_checks_unrecorded_ops():
    """Ops on tensors that need no gradient skip the tape but not the anomaly check."""
    with mr.detect_anomaly():
        with pytest.raises(FloatingPointError, match="forward of multiply"):
            mr.tensor(np.array([np.inf])) * mr.tensor(np.array([0.0]))
