"""The fused LSTM cell gives the same values for every memory layout of its inputs."""
import numpy as np

import minireparam as mr
from minireparam.gradcheck import gradcheck
from minireparam.ops.fused import lstm_cell


def _strided_copy(values):
    """Return an array equal to ``values`` that is every other column of a wider array."""
    wide = np.zeros(values.shape[:-1] + (2 * values.shape[-1],))
    wide[..., ::2] = values
    return wide[..., ::2]


def test_lstm_cell_strided_inputs_match_contiguous():
    """Hidden size 1 with strided inputs once read the wrong memory (a numpy negative() bug)."""
    rng = np.random.default_rng(0)
    for hidden in (1, 2, 3):
        gates = rng.uniform(-3.0, 3.0, (2, 4 * hidden))
        c_prev = rng.uniform(-2.0, 2.0, (2, hidden))
        h, c = lstm_cell(mr.tensor(gates), mr.tensor(c_prev))
        h_strided, c_strided = lstm_cell(mr.tensor(_strided_copy(gates)), mr.tensor(_strided_copy(c_prev)))
        np.testing.assert_array_equal(h_strided.data, h.data)
        np.testing.assert_array_equal(c_strided.data, c.data)


def test_lstm_cell_gradcheck_strided_inputs():
    rng = np.random.default_rng(1)
    gates = mr.tensor(_strided_copy(rng.uniform(-3.0, 3.0, (2, 4))), requires_grad=True)
    c_prev = mr.tensor(_strided_copy(rng.uniform(-2.0, 2.0, (2, 1))), requires_grad=True)
    assert gradcheck(lambda g, c: lstm_cell(g, c), [gates, c_prev])
