"""Recurrent layers: RNN, LSTM and GRU, and their one-step cells.

Two implementations compute the same values:

* the cells (``rnn_step``, ``lstm_step``, ``gru_step``), written gate by gate with
  differentiable ops: the teaching version, whose gradients come from the tape and which
  supports higher derivatives;
* the sequence ops in ``rnn_sequence.py`` (LSTM and GRU only), one tape node per layer
  with a hand-written backward.

``nn.LSTM`` and ``nn.GRU`` use the sequence ops by default; pass
``implementation="cells"`` for the op-by-op version. ``nn.RNN`` always runs the cells.
Both implementations project the inputs of all time steps in one GEMM before the time
loop. Slicing one step out of that projection adds its gradient into one buffer (the
engine's sparse slice gradients), so no full-size zero array is allocated per step.

Shapes (PyTorch's): input (T, B, I), or (B, T, I) with ``batch_first``, or (T, I)
unbatched; states (num_layers·D, B, H) or (num_layers·D, H) unbatched, where D is 2 for
bidirectional layers and 1 otherwise.
"""
import math

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..ops._util import to_tensor
from . import functional as F
from . import init
from .module import Module, Parameter
from .rnn_sequence import gru_sequence, lstm_sequence

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# -- one step, gate by gate ---------------------------------------------------------------


def rnn_step(x_projection, h, w_hh, b_hh, nonlinearity="tanh"):
    """h' = act(x_projection + h·W_hhᵀ + b_hh), where x_projection = x·W_ihᵀ + b_ih."""
    pre_activation = x_projection + F.linear(h, w_hh, b_hh)
    return ops.tanh(pre_activation) if nonlinearity == "tanh" else ops.relu(pre_activation)


def lstm_step(x_projection, h, c, w_hh, b_hh):
    """One LSTM step from the input projection x·W_ihᵀ + b_ih (B, 4H); returns (h', c').

    The four gate blocks, in PyTorch's row order of the weights:
        i = σ(·)  input gate: how much of the candidate enters the cell
        f = σ(·)  forget gate: how much of the old cell state stays
        g = tanh(·)  candidate cell values
        o = σ(·)  output gate: how much of the cell shows in h
    """
    gates = x_projection + F.linear(h, w_hh, b_hh)
    i, f, g, o = ops.split(gates, 4, axis=-1)
    i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
    c_next = f * c + i * g
    h_next = o * ops.tanh(c_next)
    return h_next, c_next


def gru_step(x_projection, h, w_hh, b_hh):
    """One GRU step from the input projection x·W_ihᵀ + b_ih (B, 3H); returns h'.

    Gate blocks in PyTorch's order:
        r = σ(x_r + h_r)  reset gate: how much of h enters the candidate
        z = σ(x_z + h_z)  update gate: how much of the old h stays
        n = tanh(x_n + r ⊙ h_n)  candidate, where h_n = W_hn·h + b_hn
        h' = (1 − z) ⊙ n + z ⊙ h
    """
    x_r, x_z, x_n = ops.split(x_projection, 3, axis=-1)
    h_r, h_z, h_n = ops.split(F.linear(h, w_hh, b_hh), 3, axis=-1)
    r = ops.sigmoid(x_r + h_r)
    z = ops.sigmoid(x_z + h_z)
    n = ops.tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h


# -- cells --------------------------------------------------------------------------------


def _uniform_reset(module, hidden_size, generator):
    """PyTorch's recurrent init: every weight and bias from U(−1/√H, 1/√H)."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for param in module.parameters():
        init.uniform_(param, -bound, bound, generator=generator)


class _CellBase(Module):
    def __init__(self, input_size, hidden_size, bias, gate_count, generator, dtype):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        dtype = np.dtype(dtype)
        self.weight_ih = Parameter(np.zeros((gate_count * hidden_size, input_size), dtype=dtype))
        self.weight_hh = Parameter(np.zeros((gate_count * hidden_size, hidden_size), dtype=dtype))
        if bias:
            self.bias_ih = Parameter(np.zeros((gate_count * hidden_size,), dtype=dtype))
            self.bias_hh = Parameter(np.zeros((gate_count * hidden_size,), dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        _uniform_reset(self, hidden_size, generator)

    def _prepare(self, input, hx):
        """Return (batched input, list of batched states, unbatched flag)."""
        input = to_tensor(input)
        name = type(self).__name__
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ShapeError(
                f"{name}: input must have shape (B, {self.input_size}) or ({self.input_size},), got {input.shape}"
            )
        unbatched = input.ndim == 1
        if unbatched:
            input = ops.expand_dims(input, 0)
        batch = input.shape[0]
        states = []
        for state in hx:
            if state is None:
                states.append(to_tensor(np.zeros((batch, self.hidden_size), dtype=input.dtype)))
                continue
            state = to_tensor(state)
            expected = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
            if state.shape != expected:
                raise ShapeError(f"{name}: a state has shape {state.shape}, expected {expected}")
            states.append(ops.expand_dims(state, 0) if unbatched else state)
        return input, states, unbatched

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class RNNCell(_CellBase):
    """h' = act(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh) with act tanh or relu.

    Shapes: input (B, I) or (I,); hx (B, H) or (H,), zeros when None; returns h'.
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", generator=None, dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1, generator, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        input, (h,), unbatched = self._prepare(input, [hx])
        h_next = rnn_step(F.linear(input, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh,
                          self.nonlinearity)
        return h_next[0] if unbatched else h_next


class LSTMCell(_CellBase):
    """One LSTM step (see ``lstm_step``); weights (4H, I) and (4H, H) with gates i, f, g, o.

    Shapes: input (B, I) or (I,); hx = (h, c), each (B, H) or (H,), zeros when None;
    returns (h', c').
    """

    def __init__(self, input_size, hidden_size, bias=True, generator=None, dtype=np.float32):
        super().__init__(input_size, hidden_size, bias, 4, generator, dtype)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTMCell: hx must be a tuple (h, c) or None")
        input, (h, c), unbatched = self._prepare(input, hx or [None, None])
        h_next, c_next = lstm_step(F.linear(input, self.weight_ih, self.bias_ih), h, c, self.weight_hh,
                                   self.bias_hh)
        if unbatched:
            return h_next[0], c_next[0]
        return h_next, c_next


class GRUCell(_CellBase):
    """One GRU step (see ``gru_step``); weights (3H, I) and (3H, H) with gates r, z, n.

    Shapes: input (B, I) or (I,); hx (B, H) or (H,), zeros when None; returns h'.
    """

    def __init__(self, input_size, hidden_size, bias=True, generator=None, dtype=np.float32):
        super().__init__(input_size, hidden_size, bias, 3, generator, dtype)

    def forward(self, input, hx=None):
        input, (h,), unbatched = self._prepare(input, [hx])
        h_next = gru_step(F.linear(input, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h_next[0] if unbatched else h_next


# -- layers -------------------------------------------------------------------------------


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU: parameters, shapes, layers and directions.

    Parameters per layer k (PyTorch's names): weight_ih_l{k} (G·H, I_k), weight_hh_l{k}
    (G·H, H), bias_ih_l{k} and bias_hh_l{k} (G·H,), with the suffix ``_reverse`` for the
    backward direction of a bidirectional layer. G is 1 (RNN), 4 (LSTM) or 3 (GRU), and
    I_k is input_size for k = 0 and D·H after. All are drawn from U(−1/√H, 1/√H).
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, generator=None, dtype=np.float32, implementation="fused"):
        super().__init__()
        name = type(self).__name__
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"{name}: num_layers must be a positive int, got {num_layers!r}")
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise ValueError(f"{name}: hidden_size must be a positive int, got {hidden_size!r}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1], got {dropout}")
        if implementation not in ("fused", "cells"):
            raise ValueError(f"{name}: implementation must be 'fused' or 'cells', got {implementation!r}")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.generator = generator
        self.implementation = implementation

        gates = _GATES[mode] * hidden_size
        dtype = np.dtype(dtype)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes(layer):
                self.register_parameter(f"weight_ih{suffix}", Parameter(np.zeros((gates, layer_input), dtype=dtype)))
                self.register_parameter(f"weight_hh{suffix}", Parameter(np.zeros((gates, hidden_size), dtype=dtype)))
                if bias:
                    self.register_parameter(f"bias_ih{suffix}", Parameter(np.zeros((gates,), dtype=dtype)))
                    self.register_parameter(f"bias_hh{suffix}", Parameter(np.zeros((gates,), dtype=dtype)))
        self.reset_parameters(generator)

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def _suffixes(self, layer):
        return [f"_l{layer}", f"_l{layer}_reverse"][:self.num_directions]

    def reset_parameters(self, generator=None):
        _uniform_reset(self, self.hidden_size, generator)

    def _weights(self, suffix):
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.bias else ("weight_ih", "weight_hh")
        return [getattr(self, name + suffix) for name in names]

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        for option, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, option) != default:
                text += f", {option}={getattr(self, option)}"
        return text

    # -- shapes --------------------------------------------------------------------------

    def _prepare_input(self, input):
        """Return (input as (T, B, I), unbatched flag), checking the shape."""
        name = type(self).__name__
        input = to_tensor(input)
        if input.ndim not in (2, 3):
            raise ShapeError(
                f"{name}: input must be (T, B, I), (B, T, I) with batch_first, or unbatched (T, I); got {input.shape}"
            )
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has {input.shape[-1]} features, expected input_size={self.input_size}")
        unbatched = input.ndim == 2
        if unbatched:
            input = ops.expand_dims(input, 1)
        elif self.batch_first:
            input = ops.swapaxes(input, 0, 1)
        if input.shape[0] == 0:
            raise ValueError(
                f"{name}: the input sequence has length 0 (input shape {input.shape}); a recurrent layer needs "
                "at least one time step"
            )
        return input, unbatched

    def _prepare_state(self, state, batch, unbatched, dtype, label):
        """Return a state as (num_layers·D, B, H), zeros when None."""
        layers = self.num_layers * self.num_directions
        if state is None:
            return to_tensor(np.zeros((layers, batch, self.hidden_size), dtype=dtype))
        state = to_tensor(state)
        expected = (layers, self.hidden_size) if unbatched else (layers, batch, self.hidden_size)
        if state.shape != expected:
            raise ShapeError(
                f"{type(self).__name__}: {label} has shape {state.shape}, expected {expected} "
                f"(num_layers·num_directions, {'' if unbatched else 'batch, '}hidden_size)"
            )
        return ops.expand_dims(state, 1) if unbatched else state

    def _finish(self, output, states, unbatched):
        if unbatched:
            return ops.squeeze(output, 1), [ops.squeeze(s, 1) for s in states]
        if self.batch_first:
            output = ops.swapaxes(output, 0, 1)
        return output, states

    # -- running the layers --------------------------------------------------------------

    def _run(self, input, initial_states):
        """Run every layer and direction; return (output (T, B, D·H), final states per kind).

        ``initial_states`` is a list with one (num_layers·D, B, H) Tensor per state kind
        (h, or h and c). Each returned state kind is stacked to the same shape.
        """
        finals = [[] for _ in initial_states]
        layer_input = input
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self._suffixes(layer)):
                index = layer * self.num_directions + direction
                starts = [state[index] for state in initial_states]
                sequence = layer_input if direction == 0 else layer_input[::-1]
                output, ends = self._run_direction(sequence, starts, self._weights(suffix))
                outputs.append(output if direction == 0 else output[::-1])
                for kind, end in enumerate(ends):
                    finals[kind].append(end)
            layer_input = outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True, self.generator)
        return layer_input, [ops.stack(kind, axis=0) for kind in finals]

    def _run_direction(self, x, starts, weights):
        """Run one layer in one direction with the cells: the input projection first, then the loop."""
        w_ih, w_hh = weights[0], weights[1]
        b_ih, b_hh = (weights[2], weights[3]) if self.bias else (None, None)
        projection = F.linear(x, w_ih, b_ih)  # (T, B, G·H): one GEMM for all steps
        states = list(starts)
        outputs = []
        for t in range(x.shape[0]):
            states = self._step(projection[t], states, w_hh, b_hh)
            outputs.append(states[0])
        return ops.stack(outputs, axis=0), states

    def _step(self, x_projection, states, w_hh, b_hh):
        raise NotImplementedError


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh), act tanh or relu.

    Args (PyTorch's): input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
    batch_first=False, dropout=0.0 (between layers, in training mode), bidirectional=False;
    plus generator= (init and dropout) and dtype=.

    forward(input, hx=None) returns (output, h_n): output (T, B, D·H) (batch first when
    ``batch_first``), h_n (num_layers·D, B, H).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, generator=None, dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         generator, dtype, implementation="cells")
        self.nonlinearity = nonlinearity

    def _step(self, x_projection, states, w_hh, b_hh):
        return [rnn_step(x_projection, states[0], w_hh, b_hh, self.nonlinearity)]

    def forward(self, input, hx=None):
        input, unbatched = self._prepare_input(input)
        h0 = self._prepare_state(hx, input.shape[1], unbatched, input.dtype, "hx")
        output, (h_n,) = self._run(input, [h0])
        output, (h_n,) = self._finish(output, [h_n], unbatched)
        return output, h_n


class LSTM(RNNBase):
    """Long short-term memory layers (gates i, f, g, o, as in PyTorch).

    Args (PyTorch's): input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False; plus generator=, dtype= and
    implementation="fused" (the sequence op) or "cells" (op by op, twice differentiable).

    forward(input, hx=None) with hx = (h_0, c_0) returns (output, (h_n, c_n)):
    output (T, B, D·H) (batch first when ``batch_first``); h_n, c_n (num_layers·D, B, H).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, generator=None, dtype=np.float32, implementation="fused"):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         generator, dtype, implementation)

    def _step(self, x_projection, states, w_hh, b_hh):
        return list(lstm_step(x_projection, states[0], states[1], w_hh, b_hh))

    def _run_direction(self, x, starts, weights):
        if self.implementation == "cells":
            return super()._run_direction(x, starts, weights)
        output, h_n, c_n = lstm_sequence(x, starts[0], starts[1], *weights)
        return output, [h_n, c_n]

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTM: hx must be a tuple (h_0, c_0) or None")
        input, unbatched = self._prepare_input(input)
        h0, c0 = hx if hx is not None else (None, None)
        batch = input.shape[1]
        h0 = self._prepare_state(h0, batch, unbatched, input.dtype, "h_0")
        c0 = self._prepare_state(c0, batch, unbatched, input.dtype, "c_0")
        output, finals = self._run(input, [h0, c0])
        output, (h_n, c_n) = self._finish(output, finals, unbatched)
        return output, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit layers (gates r, z, n, as in PyTorch).

    Args as for ``LSTM``. forward(input, hx=None) returns (output, h_n) with the shapes
    of ``RNN``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, generator=None, dtype=np.float32, implementation="fused"):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         generator, dtype, implementation)

    def _step(self, x_projection, states, w_hh, b_hh):
        return [gru_step(x_projection, states[0], w_hh, b_hh)]

    def _run_direction(self, x, starts, weights):
        if self.implementation == "cells":
            return super()._run_direction(x, starts, weights)
        output, h_n = gru_sequence(x, starts[0], *weights)
        return output, [h_n]

    def forward(self, input, hx=None):
        input, unbatched = self._prepare_input(input)
        h0 = self._prepare_state(hx, input.shape[1], unbatched, input.dtype, "hx")
        output, (h_n,) = self._run(input, [h0])
        output, (h_n,) = self._finish(output, [h_n], unbatched)
        return output, h_n
