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
from ..ops import fused
from ..ops._util import to_tensor
from ..tensor import Tensor


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

    Neither time loop allocates per step. Its buffers are made once per sequence, the
    recurrent GEMM accumulates into the step's slice of the input projection, and the
    elementwise part runs through the buffer-writing kernels of ``ops.fused``.
    """

    name = "lstm_sequence"
    once_differentiable = True
    create_graph_hint = ("For higher derivatives of a recurrent layer, pass implementation=\"cells\" to "
                         "nn.LSTM or nn.GRU: its steps are differentiable ops.")

    def forward(self, x, h0, c0, w_ih, w_hh, *biases):
        kernels = _backend.current()
        steps, batch, _ = x.shape
        hidden = h0.shape[-1]
        pre = _project_inputs(kernels.matmul, x, w_ih)                # (T, B, 4H), h·W_hhᵀ added per step
        if biases:
            pre += biases[0] + biases[1]

        gates = np.empty((steps, batch, 4 * hidden), dtype=x.dtype)   # activated i, f, g, o
        hs = np.empty((steps + 1, batch, hidden), dtype=x.dtype)      # h_0 .. h_T
        cs = np.empty((steps + 1, batch, hidden), dtype=x.dtype)      # c_0 .. c_T
        tanh_cs = np.empty((steps, batch, hidden), dtype=x.dtype)     # tanh(c_1) .. tanh(c_T)
        hs[0], cs[0] = h0, c0
        w_hh_t = kernels.pack_b(w_hh, trans_b=True)                   # W_hhᵀ (H, 4H), packed once for T GEMMs
        for t in range(steps):
            kernels.gemm_packed(hs[t], w_hh_t, pre[t], beta=1.0)
            fused.lstm_cell_forward(pre[t], cs[t], gates[t], cs[t + 1], tanh_cs[t], hs[t + 1])

        self.save_input("x", 0)
        self.save_input("w_ih", 3)
        self.save_input("w_hh", 4)
        self.save_array("gates", gates)
        self.save_array("hs", hs)
        self.save_array("cs", cs)
        self.save_array("tanh_cs", tanh_cs)
        out = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
        out[:steps] = hs[1:]
        out[steps] = cs[steps]
        return out

    def vjp(self, g):
        kernels = _backend.current()
        x, w_ih, w_hh = (self.saved(name).data for name in ("x", "w_ih", "w_hh"))
        gates, hs, cs, tanh_cs = (self.saved(name).data for name in ("gates", "hs", "cs", "tanh_cs"))
        steps = x.shape[0]
        g = g.data
        dh = np.zeros_like(hs[0])      # cotangent of h_t, then of h_{t-1} after the step's GEMM
        dc = np.array(g[steps])        # cotangent of c_t from later steps, carried in place
        scratch = np.empty_like(dc)
        gate_grads = np.empty_like(gates)
        w_hh_packed = kernels.pack_b(w_hh)                            # (4H, H), packed once for T GEMMs
        for t in reversed(range(steps)):
            dh += g[t]
            fused.lstm_cell_backward(dh, dc, gates[t], cs[t], tanh_cs[t], gate_grads[t], dc, scratch)
            kernels.gemm_packed(gate_grads[t], w_hh_packed, dh)       # to h_{t-1} through W_hh

        matmul = kernels.matmul
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

    As in ``LSTMSequence``, the time loops write into buffers made once per sequence.
    """

    name = "gru_sequence"
    once_differentiable = True
    create_graph_hint = ("For higher derivatives of a recurrent layer, pass implementation=\"cells\" to "
                         "nn.LSTM or nn.GRU: its steps are differentiable ops.")

    def forward(self, x, h0, w_ih, w_hh, *biases):
        kernels = _backend.current()
        steps, batch, _ = x.shape
        hidden = h0.shape[-1]
        projected = _project_inputs(kernels.matmul, x, w_ih)
        if biases:
            projected += biases[0]

        gates = np.empty((steps, batch, 3 * hidden), dtype=x.dtype)      # activated r, z, n
        recurrent_n = np.empty((steps, batch, hidden), dtype=x.dtype)    # W_hn·h + b_hn
        hs = np.empty((steps + 1, batch, hidden), dtype=x.dtype)
        recurrent = np.empty((batch, 3 * hidden), dtype=x.dtype)         # W_hh·h + b_hh of one step
        hs[0] = h0
        w_hh_t = kernels.pack_b(w_hh, trans_b=True)                      # W_hhᵀ (H, 3H), packed once for T GEMMs
        for t in range(steps):
            if biases:
                recurrent[...] = biases[1]
            kernels.gemm_packed(hs[t], w_hh_t, recurrent, beta=1.0 if biases else 0.0)
            r_z = gates[t, :, :2 * hidden]
            np.add(projected[t, :, :2 * hidden], recurrent[:, :2 * hidden], out=r_z)
            fused.sigmoid_into(r_z, r_z)
            r, z, n = _gru_blocks(gates[t], hidden)

            recurrent_n[t] = recurrent[:, 2 * hidden:]
            np.multiply(r, recurrent_n[t], out=n)
            n += projected[t, :, 2 * hidden:]
            np.tanh(n, out=n)
            # h_t = (1 − z)·n + z·h_{t-1}, written as n + z·(h_{t-1} − n).
            h = hs[t + 1]
            np.subtract(hs[t], n, out=h)
            h *= z
            h += n

        self.save_input("x", 0)
        self.save_input("w_ih", 2)
        self.save_input("w_hh", 3)
        self.save_array("gates", gates)
        self.save_array("recurrent_n", recurrent_n)
        self.save_array("hs", hs)
        return hs[1:].copy()

    def vjp(self, g):
        kernels = _backend.current()
        x, w_ih, w_hh = (self.saved(name).data for name in ("x", "w_ih", "w_hh"))
        gates, recurrent_n, hs = (self.saved(name).data for name in ("gates", "recurrent_n", "hs"))
        steps = x.shape[0]
        hidden = hs.shape[-1]
        g = g.data
        dh = np.zeros_like(hs[0])
        scratch = np.empty_like(dh)
        input_grads = np.empty_like(gates)       # d(pre-activation) of the input projection
        recurrent_grads = np.empty_like(gates)   # d(W_hh·h + b_hh)
        w_hh_packed = kernels.pack_b(w_hh)       # (3H, H), packed once for T GEMMs
        for t in reversed(range(steps)):
            dh += g[t]
            r, z, n = _gru_blocks(gates[t], hidden)
            d_r, d_z, d_n = _gru_blocks(input_grads[t], hidden)

            # h_t = (1 − z)·n + z·h_{t-1}:  d_n = dh·(1 − z)·(1 − n²),  d_z = dh·(h_{t-1} − n)·σ'(z).
            np.multiply(n, n, out=d_n)
            np.subtract(1.0, d_n, out=d_n)
            np.subtract(1.0, z, out=scratch)
            d_n *= scratch
            d_n *= dh
            d_z[...] = scratch
            d_z *= z
            np.subtract(hs[t], n, out=scratch)
            d_z *= scratch
            d_z *= dh
            # n = tanh(x_n + r·(W_hn·h + b_hn)):  d_r = d_n·(W_hn·h + b_hn)·σ'(r).
            np.subtract(1.0, r, out=d_r)
            d_r *= r
            d_r *= recurrent_n[t]
            d_r *= d_n

            recurrent_grads[t, :, :2 * hidden] = input_grads[t, :, :2 * hidden]
            np.multiply(d_n, r, out=recurrent_grads[t, :, 2 * hidden:])
            dh *= z
            kernels.gemm_packed(recurrent_grads[t], w_hh_packed, dh, beta=1.0)  # to h_{t-1}: dh·z + d_recurrent·W_hh

        matmul = kernels.matmul
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


def _gru_blocks(array, hidden):
    """Split the last axis of (..., 3H) into the gate blocks r, z, n (views)."""
    return array[..., :hidden], array[..., hidden:2 * hidden], array[..., 2 * hidden:]


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
