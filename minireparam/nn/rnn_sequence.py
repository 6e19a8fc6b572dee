"""Sequence-level LSTM and GRU ops with a hand-written backward over the whole sequence.

One op runs a whole layer (one direction) over T steps, so the tape records one node per
layer instead of about ten per step. The work is arranged around GEMMs:

* forward: the input projection of all T steps is one GEMM, (T·B, I)·W_ihᵀ; each step
  then needs only the recurrent GEMM h·W_hhᵀ, with W_hh reused across steps;
* backward: one loop from the last step down computes the gate gradients (dgates) and
  carries dh and dc to the previous step through dgates·W_hh; after the loop, the weight
  gradients are one GEMM each (dgatesᵀ over all T·B rows times the inputs or the previous
  hidden states), and the input gradient is one GEMM, dgates·W_ih.

The VJPs work on raw arrays, so both ops are once-differentiable: ``create_graph=True``
through them raises. The cell-by-cell layers in ``rnn.py`` (``implementation="cells"``)
compute the same values from differentiable ops and support higher derivatives.

Gate orders are PyTorch's: LSTM rows of W are (i, f, g, o), GRU rows are (r, z, n).
"""
import numpy as np

from .. import backend as _backend
from ..autograd.node import Op
from ..errors import DTypeError, ShapeError
from ..ops._util import to_tensor
from ..tensor import Tensor


def _sigmoid(x):
    """Logistic sigmoid on an array, without overflow for any x."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _project_inputs(matmul, x, w_ih):
    """Project the inputs of all T steps in one GEMM: (T, B, I) -> (T, B, G·H)."""
    steps, batch, features = x.shape
    rows = np.ascontiguousarray(x).reshape(steps * batch, features)
    return matmul(rows, w_ih, trans_b=True).reshape(steps, batch, w_ih.shape[0])


def _weight_gradients(matmul, gate_grads, layer_inputs, previous_hidden):
    """dW_ih = dgatesᵀ·x and dW_hh = dgatesᵀ·h_prev over all T·B rows: one GEMM each."""
    steps, batch, gates = gate_grads.shape
    rows = gate_grads.reshape(steps * batch, gates)
    d_w_ih = matmul(rows, np.ascontiguousarray(layer_inputs).reshape(steps * batch, -1), trans_a=True)
    d_w_hh = matmul(rows, previous_hidden.reshape(steps * batch, -1), trans_a=True)
    return rows, d_w_ih, d_w_hh


def _as_tensor(array):
    return Tensor._make(np.asarray(array), None, False)


class LSTMSequence(Op):
    """One LSTM layer over a whole sequence.

    Inputs: x (T, B, I), h0 (B, H), c0 (B, H), W_ih (4H, I), W_hh (4H, H), and, when the
    layer has biases, b_ih (4H,) and b_hh (4H,).

    Output: (T + 1, B, H), the hidden states h_1..h_T followed by the final cell state
    c_T, so one op output carries both (``lstm_sequence`` splits them).
    """

    name = "lstm_sequence"
    once_differentiable = True

    def forward(self, x, h0, c0, w_ih, w_hh, *biases):
        matmul = _backend.current().matmul
        steps, batch, _ = x.shape
        hidden = h0.shape[-1]
        projected = _project_inputs(matmul, x, w_ih)
        if biases:
            projected += biases[0] + biases[1]

        gates = np.empty((steps, batch, 4 * hidden), dtype=x.dtype)   # activated i, f, g, o
        hs = np.empty((steps + 1, batch, hidden), dtype=x.dtype)      # h_0 .. h_T
        cs = np.empty((steps + 1, batch, hidden), dtype=x.dtype)      # c_0 .. c_T
        hs[0], cs[0] = h0, c0
        for t in range(steps):
            pre = projected[t] + matmul(hs[t], w_hh, trans_b=True)
            gates[t, :, :2 * hidden] = _sigmoid(pre[:, :2 * hidden])
            gates[t, :, 2 * hidden:3 * hidden] = np.tanh(pre[:, 2 * hidden:3 * hidden])
            gates[t, :, 3 * hidden:] = _sigmoid(pre[:, 3 * hidden:])
            i, f, g, o = np.split(gates[t], 4, axis=-1)
            cs[t + 1] = f * cs[t] + i * g
            hs[t + 1] = o * np.tanh(cs[t + 1])

        self.save_input("x", 0)
        self.save_input("w_ih", 3)
        self.save_input("w_hh", 4)
        self.save_array("gates", gates)
        self.save_array("hs", hs)
        self.save_array("cs", cs)
        out = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
        out[:steps] = hs[1:]
        out[steps] = cs[steps]
        return out

    def vjp(self, g):
        matmul = _backend.current().matmul
        x, w_ih, w_hh = (self.saved(name).data for name in ("x", "w_ih", "w_hh"))
        gates, hs, cs = (self.saved(name).data for name in ("gates", "hs", "cs"))
        steps = x.shape[0]
        g = g.data
        dh = np.zeros_like(hs[0])
        dc = np.array(g[steps])
        gate_grads = np.empty_like(gates)
        for t in reversed(range(steps)):
            dh = dh + g[t]
            i, f, gg, o = np.split(gates[t], 4, axis=-1)
            tanh_c = np.tanh(cs[t + 1])
            dc = dc + dh * o * (1.0 - tanh_c * tanh_c)         # from h_t = o·tanh(c_t)
            d_i, d_f, d_g, d_o = np.split(gate_grads[t], 4, axis=-1)
            d_i[...] = dc * gg * i * (1.0 - i)                 # c_t = f·c_{t-1} + i·g
            d_f[...] = dc * cs[t] * f * (1.0 - f)
            d_g[...] = dc * i * (1.0 - gg * gg)
            d_o[...] = dh * tanh_c * o * (1.0 - o)
            dc = dc * f
            dh = matmul(gate_grads[t], w_hh)                   # to h_{t-1} through W_hh

        rows, d_w_ih, d_w_hh = _weight_gradients(matmul, gate_grads, x, hs[:steps])
        d_x = matmul(rows, w_ih).reshape(x.shape) if self.parents[0] is not None else None
        grads = [d_x, dh, dc, d_w_ih, d_w_hh]
        if len(self.parents) == 7:
            d_bias = rows.sum(axis=0)
            grads += [d_bias, d_bias]
        return tuple(None if grad is None else _as_tensor(grad) for grad in grads)


class GRUSequence(Op):
    """One GRU layer over a whole sequence.

    Inputs: x (T, B, I), h0 (B, H), W_ih (3H, I), W_hh (3H, H), and, when the layer has
    biases, b_ih (3H,) and b_hh (3H,). As in PyTorch, b_hn stays inside the reset gate:
    n = tanh(W_in·x + b_in + r ⊙ (W_hn·h + b_hn)).

    Output: (T, B, H), the hidden states h_1..h_T.
    """

    name = "gru_sequence"
    once_differentiable = True

    def forward(self, x, h0, w_ih, w_hh, *biases):
        matmul = _backend.current().matmul
        steps, batch, _ = x.shape
        hidden = h0.shape[-1]
        projected = _project_inputs(matmul, x, w_ih)
        if biases:
            projected += biases[0]

        gates = np.empty((steps, batch, 3 * hidden), dtype=x.dtype)      # activated r, z, n
        recurrent_n = np.empty((steps, batch, hidden), dtype=x.dtype)    # W_hn·h + b_hn
        hs = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
        hs[0] = h0
        for t in range(steps):
            recurrent = matmul(hs[t], w_hh, trans_b=True)
            if biases:
                recurrent += biases[1]
            gates[t, :, :2 * hidden] = _sigmoid(projected[t, :, :2 * hidden] + recurrent[:, :2 * hidden])
            r, z = gates[t, :, :hidden], gates[t, :, hidden:2 * hidden]
            recurrent_n[t] = recurrent[:, 2 * hidden:]
            n = np.tanh(projected[t, :, 2 * hidden:] + r * recurrent_n[t])
            gates[t, :, 2 * hidden:] = n
            hs[t + 1] = (1.0 - z) * n + z * hs[t]

        self.save_input("x", 0)
        self.save_input("w_ih", 2)
        self.save_input("w_hh", 3)
        self.save_array("gates", gates)
        self.save_array("recurrent_n", recurrent_n)
        self.save_array("hs", hs)
        return hs[1:].copy()

    def vjp(self, g):
        matmul = _backend.current().matmul
        x, w_ih, w_hh = (self.saved(name).data for name in ("x", "w_ih", "w_hh"))
        gates, recurrent_n, hs = (self.saved(name).data for name in ("gates", "recurrent_n", "hs"))
        steps = x.shape[0]
        g = g.data
        dh = np.zeros_like(hs[0])
        input_grads = np.empty_like(gates)       # d(pre-activation) of the input projection
        recurrent_grads = np.empty_like(gates)   # d(W_hh·h + b_hh)
        for t in reversed(range(steps)):
            dh = dh + g[t]
            r, z, n = np.split(gates[t], 3, axis=-1)
            d_n = dh * (1.0 - z) * (1.0 - n * n)               # h_t = (1 − z)·n + z·h_{t-1}
            d_r = d_n * recurrent_n[t] * r * (1.0 - r)         # n = tanh(x_n + r·(W_hn·h + b_hn))
            d_z = dh * (hs[t] - n) * z * (1.0 - z)
            input_grads[t] = np.concatenate([d_r, d_z, d_n], axis=-1)
            recurrent_grads[t] = np.concatenate([d_r, d_z, d_n * r], axis=-1)
            dh = dh * z + matmul(recurrent_grads[t], w_hh)

        steps_batch = steps * x.shape[1]
        input_rows = input_grads.reshape(steps_batch, -1)
        recurrent_rows = recurrent_grads.reshape(steps_batch, -1)
        d_w_ih = matmul(input_rows, np.ascontiguousarray(x).reshape(steps_batch, -1), trans_a=True)
        d_w_hh = matmul(recurrent_rows, hs[:steps].reshape(steps_batch, -1), trans_a=True)
        d_x = matmul(input_rows, w_ih).reshape(x.shape) if self.parents[0] is not None else None
        grads = [d_x, dh, d_w_ih, d_w_hh]
        if len(self.parents) == 6:
            grads += [input_rows.sum(axis=0), recurrent_rows.sum(axis=0)]
        return tuple(None if grad is None else _as_tensor(grad) for grad in grads)


def _check_sequence_inputs(function, x, h0, w_ih, w_hh, biases, gate_count):
    if x.ndim != 3 or h0.ndim != 2:
        raise ShapeError(f"{function}: x must be (T, B, I) and h0 (B, H), got {x.shape} and {h0.shape}")
    steps, batch, features = x.shape
    hidden = h0.shape[1]
    if steps == 0:
        raise ValueError(f"{function}: the sequence has length 0; it needs at least one step")
    expected = {
        "h0": ((batch, hidden), h0.shape),
        "weight_ih": ((gate_count * hidden, features), w_ih.shape),
        "weight_hh": ((gate_count * hidden, hidden), w_hh.shape),
    }
    for index, bias in enumerate(biases):
        expected[("bias_ih", "bias_hh")[index]] = ((gate_count * hidden,), bias.shape)
    for name, (want, got) in expected.items():
        if tuple(got) != want:
            raise ShapeError(f"{function}: {name} has shape {got}, expected {want} for x of shape {x.shape}")
    if len(biases) not in (0, 2):
        raise ValueError(f"{function}: pass both biases (bias_ih, bias_hh) or neither")
    dtypes = {t.dtype for t in (x, h0, w_ih, w_hh) + tuple(biases)}
    if len(dtypes) != 1:
        raise DTypeError(
            f"{function}: the input is {x.dtype} but the weights and states are "
            f"{', '.join(sorted(str(d) for d in dtypes - {x.dtype}))}; convert the input with .astype() or the "
            "module with .float() or .double()"
        )


def lstm_sequence(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None):
    """Run one LSTM layer over a sequence with the fused op.

    Args:
        x: (T, B, I) inputs, time-major.
        h0, c0: (B, H) initial hidden and cell states.
        w_ih: (4H, I); w_hh: (4H, H); b_ih, b_hh: (4H,) or None. Gate rows i, f, g, o.

    Returns:
        (output (T, B, H), h_T (B, H), c_T (B, H)).
    """
    x, h0, c0, w_ih, w_hh = (to_tensor(t) for t in (x, h0, c0, w_ih, w_hh))
    biases = tuple(to_tensor(b) for b in (b_ih, b_hh) if b is not None)
    _check_sequence_inputs("lstm_sequence", x, h0, w_ih, w_hh, biases, 4)
    if c0.shape != h0.shape:
        raise ShapeError(f"lstm_sequence: c0 has shape {c0.shape}, expected h0's shape {h0.shape}")
    packed = LSTMSequence().apply(x, h0, c0, w_ih, w_hh, *biases)
    steps = x.shape[0]
    return packed[:steps], packed[steps - 1], packed[steps]


def gru_sequence(x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
    """Run one GRU layer over a sequence with the fused op.

    Args:
        x: (T, B, I) inputs, time-major.
        h0: (B, H) initial hidden state.
        w_ih: (3H, I); w_hh: (3H, H); b_ih, b_hh: (3H,) or None. Gate rows r, z, n.

    Returns:
        (output (T, B, H), h_T (B, H)).
    """
    x, h0, w_ih, w_hh = (to_tensor(t) for t in (x, h0, w_ih, w_hh))
    biases = tuple(to_tensor(b) for b in (b_ih, b_hh) if b is not None)
    _check_sequence_inputs("gru_sequence", x, h0, w_ih, w_hh, biases, 3)
    output = GRUSequence().apply(x, h0, w_ih, w_hh, *biases)
    return output, output[x.shape[0] - 1]
