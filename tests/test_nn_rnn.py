"""Recurrent layers: the fused sequence ops equal the cell-by-cell version; shapes, errors, GEMM counts."""
import numpy as np
import pytest

import minireparam as mr
import minireparam.nn as nn
from minireparam import backend
from minireparam.autograd.engine import toposort
from minireparam.gradcheck import gradgradcheck

# The fused ops and the cells compute the same float64 formulas in a different order, so
# they agree to rounding: 1e-12 is about ten thousand ulps at these magnitudes.
SAME = dict(rtol=1e-12, atol=1e-12)


def run(layer, x, state, cotangent_seed=0):
    """Forward and backward with fixed cotangents; return (outputs, gradients by name)."""
    x = mr.tensor(x.copy(), requires_grad=True)
    if isinstance(layer, nn.LSTM):
        h0, c0 = (mr.tensor(s.copy(), requires_grad=True) for s in state)
        output, (h_n, c_n) = layer(x, (h0, c0))
        outputs, inputs = [output, h_n, c_n], {"x": x, "h0": h0, "c0": c0}
    else:
        h0 = mr.tensor(state.copy(), requires_grad=True)
        output, h_n = layer(x, h0)
        outputs, inputs = [output, h_n], {"x": x, "h0": h0}
    rng = np.random.default_rng(cotangent_seed)
    total = sum((out * rng.standard_normal(out.shape)).sum() for out in outputs)
    total.backward()
    grads = {name: t.grad for name, t in inputs.items()}
    grads.update({name: p.grad for name, p in layer.named_parameters()})
    return [out.data for out in outputs], grads


@pytest.mark.parametrize("layer_type", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("options", [
    dict(num_layers=2, batch_first=True),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=1, bias=False),
])
def test_fused_equals_cells(rng, backend_name, layer_type, options):
    fused = layer_type(3, 4, implementation="fused", **options).double()
    cells = layer_type(3, 4, implementation="cells", **options).double()
    cells.load_state_dict(fused.state_dict())
    batch, steps = 2, 5
    x = rng.standard_normal((batch, steps, 3) if options.get("batch_first") else (steps, batch, 3))
    state_shape = (fused.num_layers * fused.num_directions, batch, 4)
    state = (rng.standard_normal(state_shape), rng.standard_normal(state_shape)) if layer_type is nn.LSTM \
        else rng.standard_normal(state_shape)

    fused_outputs, fused_grads = run(fused, x, state)
    cell_outputs, cell_grads = run(cells, x, state)
    for index, (a, b) in enumerate(zip(fused_outputs, cell_outputs)):
        np.testing.assert_allclose(a, b, err_msg=f"output {index}", **SAME)
    assert fused_grads.keys() == cell_grads.keys()
    for name in fused_grads:
        np.testing.assert_allclose(fused_grads[name], cell_grads[name], err_msg=f"gradient of {name}", **SAME)


@pytest.mark.parametrize("layer_type", [nn.RNN, nn.LSTM, nn.GRU])
def test_sequence_of_length_one(rng, layer_type):
    layer = layer_type(3, 2).double()
    output, state = layer(mr.tensor(rng.standard_normal((1, 2, 3))))
    assert output.shape == (1, 2, 2)
    h_n = state[0] if layer_type is nn.LSTM else state
    np.testing.assert_array_equal(output.data[0], h_n.data[0])


@pytest.mark.parametrize("layer_type", [nn.RNN, nn.LSTM, nn.GRU])
@pytest.mark.parametrize("batch_first", [False, True])
def test_sequence_of_length_zero_raises(layer_type, batch_first):
    layer = layer_type(3, 2, batch_first=batch_first)
    empty = np.zeros((2, 0, 3) if batch_first else (0, 2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="length 0"):
        layer(mr.tensor(empty))


def test_shapes_and_state_errors(rng):
    layer = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    output, (h_n, c_n) = layer(mr.tensor(rng.standard_normal((5, 7, 3)).astype(np.float32)))
    assert output.shape == (5, 7, 8)
    assert h_n.shape == c_n.shape == (4, 5, 4)
    with pytest.raises(mr.ShapeError, match="h_0 has shape"):
        layer(mr.tensor(np.zeros((5, 7, 3), dtype=np.float32)), (np.zeros((2, 5, 4)), np.zeros((4, 5, 4))))
    with pytest.raises(mr.ShapeError, match="input_size=3"):
        layer(mr.tensor(np.zeros((5, 7, 2), dtype=np.float32)))
    with pytest.raises(TypeError, match="tuple"):
        layer(mr.tensor(np.zeros((5, 7, 3), dtype=np.float32)), np.zeros((4, 5, 4)))


def test_parameter_names_shapes_and_init_bounds():
    layer = nn.LSTM(3, 4, num_layers=2, generator=mr.Generator(0))
    shapes = {name: value.shape for name, value in layer.state_dict().items()}
    assert shapes == {
        "weight_ih_l0": (16, 3), "weight_hh_l0": (16, 4), "bias_ih_l0": (16,), "bias_hh_l0": (16,),
        "weight_ih_l1": (16, 4), "weight_hh_l1": (16, 4), "bias_ih_l1": (16,), "bias_hh_l1": (16,),
    }
    for name, value in layer.state_dict().items():
        assert np.abs(value).max() <= 0.5, f"{name} outside U(-1/sqrt(4), 1/sqrt(4))"
    gru = nn.GRU(3, 4, bidirectional=True)
    assert gru.weight_hh_l0_reverse.shape == (12, 4)


def test_init_reproducible_from_generator():
    first = nn.GRU(3, 4, generator=mr.Generator(11)).state_dict()
    second = nn.GRU(3, 4, generator=mr.Generator(11)).state_dict()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_fused_layer_is_one_node_per_layer(rng):
    layer = nn.LSTM(3, 4, num_layers=2).double()
    output, _ = layer(mr.tensor(rng.standard_normal((6, 2, 3)), requires_grad=True))
    names = [node.display_name() for node in toposort([output.grad_fn])]
    assert names.count("lstm_sequence") == 2
    assert len(names) < 12, f"the fused layer should record a handful of nodes, got {names}"


def test_cells_project_inputs_in_one_gemm(rng):
    steps, layers = 6, 2
    layer = nn.GRU(3, 4, num_layers=layers, implementation="cells").double()
    output, _ = layer(mr.tensor(rng.standard_normal((steps, 2, 3)), requires_grad=True))
    matmuls = [node for node in toposort([output.grad_fn]) if node.display_name() in ("matmul", "linear")]
    # Per layer: one input projection for all steps and one recurrent product per step.
    assert len(matmuls) == layers * (1 + steps)


@pytest.mark.parametrize("layer_type, gemms_per_step", [(nn.LSTM, 1), (nn.GRU, 1)])
def test_fused_backward_gemm_count(rng, monkeypatch, layer_type, gemms_per_step):
    """The backward of one fused layer: one GEMM per step for dh, then dW_ih, dW_hh and dx once each."""
    steps = 7
    layer = layer_type(3, 4).double()
    x = mr.tensor(rng.standard_normal((steps, 2, 3)), requires_grad=True)
    with backend.use("numpy"):
        output, _ = layer(x)
        kernels = backend.current()
        calls = []

        def counting(function):
            def wrapper(*args, **kwargs):
                calls.append((function.__name__, args[0].shape))
                return function(*args, **kwargs)
            return wrapper

        for name in ("matmul", "gemm", "gemm_packed"):
            monkeypatch.setattr(kernels, name, counting(getattr(kernels, name)))
        output.sum().backward()
    assert len(calls) == steps * gemms_per_step + 3, calls
    assert sum(1 for _, shape in calls if shape[0] == steps * 2) == 3, "weight and input gradients over all T·B rows"


def test_fused_op_is_once_differentiable(rng):
    layer = nn.LSTM(2, 2).double()
    x = mr.tensor(rng.standard_normal((3, 1, 2)), requires_grad=True)
    output, _ = layer(x)
    with pytest.raises(RuntimeError, match="once-differentiable") as error:
        mr.grad(output.sum(), x, create_graph=True)
    assert 'implementation="cells"' in str(error.value)  # the message names the way out


def test_cells_are_twice_differentiable(rng):
    layer = nn.LSTM(2, 2, implementation="cells").double()
    x = rng.standard_normal((2, 1, 2))

    def function(t):
        output, (h_n, c_n) = layer(t)
        return output

    assert gradgradcheck(function, [mr.tensor(x, requires_grad=True)])


def test_dropout_between_layers_follows_generator(rng):
    x = mr.tensor(rng.standard_normal((4, 2, 3)))
    outputs = []
    for _ in range(2):
        layer = nn.GRU(3, 4, num_layers=3, dropout=0.5, generator=mr.Generator(5)).double()
        outputs.append(layer(x)[0].data)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    layer.eval()
    first, second = layer(x)[0].data, layer(x)[0].data
    np.testing.assert_array_equal(first, second)


def test_cells_unbatched_and_default_state(rng):
    cell = nn.LSTMCell(3, 2).double()
    x = rng.standard_normal(3)
    h, c = cell(mr.tensor(x))
    assert h.shape == c.shape == (2,)
    h_batched, _ = cell(mr.tensor(x[None]))
    np.testing.assert_allclose(h.data, h_batched.data[0], **SAME)
    with pytest.raises(mr.ShapeError):
        nn.GRUCell(3, 2)(mr.tensor(np.zeros((2, 4))))
