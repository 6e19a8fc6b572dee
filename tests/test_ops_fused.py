"""Fused ops: gradchecks through the registry, and equality with the op-by-op versions."""
import numpy as np
import pytest

import minireparam as mr
from minireparam.gradcheck import check_registered_op
from minireparam.nn.rnn import lstm_step
from minireparam.ops import fused
from minireparam.ops.registry import REGISTRY, RandomDraw


@pytest.mark.parametrize("seed", range(12))
def test_lstm_cell_gradcheck(seed):
    case, max_abs, max_rel, passed = check_registered_op(REGISTRY["fused.lstm_cell"],
                                                         RandomDraw(np.random.default_rng(seed)))
    assert passed, f"{case.description}: max abs err {max_abs:.2e}, max rel err {max_rel:.2e}"


def _lstm_inputs(rng, batch, hidden, dtype):
    pre = rng.uniform(-4.0, 4.0, (batch, 4 * hidden)).astype(dtype)
    c_prev = rng.uniform(-2.0, 2.0, (batch, hidden)).astype(dtype)
    return pre, c_prev


def test_lstm_cell_matches_lstm_step(rng):
    """Values and gradients equal those of the op-by-op cell (float64, so only rounding differs)."""
    pre, c_prev = _lstm_inputs(rng, 5, 7, np.float64)
    weights = rng.standard_normal((2, 5, 7))

    fused_inputs = [mr.tensor(pre.copy(), requires_grad=True), mr.tensor(c_prev.copy(), requires_grad=True)]
    h, c = fused.lstm_cell(*fused_inputs)
    (mr.sum(h * weights[0]) + mr.sum(c * weights[1])).backward()

    # lstm_step adds h·W_hhᵀ + b_hh to its first argument; zero weights leave the pre-activations.
    step_inputs = [mr.tensor(pre.copy(), requires_grad=True), mr.tensor(c_prev.copy(), requires_grad=True)]
    zeros_h, zeros_w = np.zeros((5, 7)), np.zeros((28, 7))
    h_ref, c_ref = lstm_step(step_inputs[0], mr.tensor(zeros_h), step_inputs[1], mr.tensor(zeros_w), None)
    (mr.sum(h_ref * weights[0]) + mr.sum(c_ref * weights[1])).backward()

    # 1e-12: the two compute the same float64 expressions in a different order.
    np.testing.assert_allclose(h.data, h_ref.data, rtol=0, atol=1e-12)
    np.testing.assert_allclose(c.data, c_ref.data, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fused_inputs[0].grad, step_inputs[0].grad, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fused_inputs[1].grad, step_inputs[1].grad, rtol=0, atol=1e-12)


def test_kernels_reuse_buffers_over_steps(rng):
    """A time loop that carries one dc buffer (dc_prev aliasing dc) gets the op's gradients."""
    batch, hidden, steps = 3, 4, 5
    pres = [_lstm_inputs(rng, batch, hidden, np.float64)[0] for _ in range(steps)]
    c0 = rng.uniform(-1.0, 1.0, (batch, hidden))
    dhs = rng.standard_normal((steps, batch, hidden))

    # Reference: chain the op over the steps and backpropagate sum_t <dh_t, h_t>.
    leaves = [mr.tensor(p, requires_grad=True) for p in pres]
    c0_leaf = mr.tensor(c0, requires_grad=True)
    c = c0_leaf
    loss = 0.0
    for t in range(steps):
        h, c = fused.lstm_cell(leaves[t], c)
        loss = loss + mr.sum(h * dhs[t])
    loss.backward()

    # Kernels: a forward loop into preallocated buffers, then a backward loop with one dc buffer.
    gates = np.empty((steps, batch, 4 * hidden))
    cs = np.empty((steps + 1, batch, hidden))
    tanh_cs = np.empty((steps, batch, hidden))
    hs = np.empty((steps, batch, hidden))
    cs[0] = c0
    for t in range(steps):
        fused.lstm_cell_forward(pres[t], cs[t], gates[t], cs[t + 1], tanh_cs[t], hs[t])
    dc = np.zeros((batch, hidden))
    d_pre = np.empty((steps, batch, 4 * hidden))
    scratch = np.empty((batch, hidden))
    for t in reversed(range(steps)):
        fused.lstm_cell_backward(dhs[t], dc, gates[t], cs[t], tanh_cs[t], d_pre[t], dc, scratch)

    for t in range(steps):
        np.testing.assert_allclose(d_pre[t], leaves[t].grad, rtol=0, atol=1e-12, err_msg=f"step {t}")
    np.testing.assert_allclose(dc, c0_leaf.grad, rtol=0, atol=1e-12, err_msg="gradient of c0")


def test_sigmoid_into_extremes():
    x = np.array([-1000.0, -88.0, 0.0, 88.0, 1000.0], dtype=np.float32)
    out = fused.sigmoid_into(x, np.empty_like(x))
    assert out[0] == 0.0, "σ(−1000) overflows e^x and must be exactly 0"
    assert out[-1] == 1.0
    assert out[2] == 0.5
    assert np.all(np.isfinite(out))


def test_lstm_cell_float32_matches_float64(rng):
    pre, c_prev = _lstm_inputs(rng, 4, 6, np.float64)
    h64, c64 = fused.lstm_cell(pre, c_prev)
    h32, c32 = fused.lstm_cell(pre.astype(np.float32), c_prev.astype(np.float32))
    assert h32.dtype == np.float32
    assert c32.dtype == np.float32
    # 1e-6: a few float32 roundings of values of magnitude at most about 4.
    np.testing.assert_allclose(h32.data, h64.data, rtol=0, atol=1e-6)
    np.testing.assert_allclose(c32.data, c64.data, rtol=0, atol=1e-6)


def test_lstm_cell_shape_error():
    with pytest.raises(mr.ShapeError, match=r"lstm_cell: gates of shape \(2, 10\) do not fit c_prev of shape \(2, 3\)"):
        fused.lstm_cell(np.zeros((2, 10)), np.zeros((2, 3)))


def test_lstm_cell_dtype_error():
    with pytest.raises(TypeError, match="same floating dtype"):
        fused.lstm_cell(np.zeros((2, 12), np.float32), np.zeros((2, 3), np.float64))


def test_lstm_cell_rejects_create_graph(rng):
    pre, c_prev = _lstm_inputs(rng, 2, 3, np.float64)
    gates = mr.tensor(pre, requires_grad=True)
    h, _c = fused.lstm_cell(gates, mr.tensor(c_prev))
    with pytest.raises(RuntimeError, match="once-differentiable"):
        mr.grad(mr.sum(h), gates, create_graph=True)
