"""Parity with PyTorch in float64: same weights (through state dicts), same outputs and gradients.

Every comparison uses a tolerance of 1e-6 (absolute and relative): both libraries compute
the same float64 formulas, so they agree to about 1e-13 and 1e-6 leaves room only for
summation order. PyTorch gives NaN for attention rows that may attend to nothing, so those
rows are left out here and checked against minireparam's rule (zero weights) instead.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed; `pip install torch==2.13.0` runs these tests")

import minireparam as mr  # noqa: E402
import minireparam.nn as nn  # noqa: E402
import minireparam.nn.functional as F  # noqa: E402
import minireparam.optim as optim  # noqa: E402

pytestmark = pytest.mark.torch

TOLERANCE = dict(rtol=1e-6, atol=1e-6)


def to_torch(array, requires_grad=False):
    return torch.tensor(np.array(array), dtype=torch.float64 if np.asarray(array).dtype.kind == "f" else None,
                        requires_grad=requires_grad)


def ours(array):
    return mr.tensor(np.array(array, dtype=np.float64), requires_grad=True)


def assert_close(actual, expected, what):
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    actual = actual.data if isinstance(actual, mr.Tensor) else np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, PyTorch {expected.shape}"
    np.testing.assert_allclose(actual, expected, err_msg=what, **TOLERANCE)


def load_from_torch(module, torch_module):
    """Copy PyTorch's weights into ``module`` by converting the arrays alone."""
    state = {key: value.detach().numpy() for key, value in torch_module.state_dict().items()}
    module.load_state_dict(state)


def flat_outputs(outputs):
    if isinstance(outputs, (tuple, list)):
        return [t for item in outputs if item is not None for t in flat_outputs(item)]
    return [outputs]


def compare_module(module, torch_module, inputs, call=None, rng=None):
    """Run both modules on the same inputs, backpropagate the same cotangents, compare everything."""
    rng = rng or np.random.default_rng(0)
    call = call or (lambda m, *xs: m(*xs))
    our_inputs = [ours(x) for x in inputs]
    torch_inputs = [to_torch(x, requires_grad=True) for x in inputs]
    our_outputs = flat_outputs(call(module, *our_inputs))
    torch_outputs = flat_outputs(call(torch_module, *torch_inputs))
    assert len(our_outputs) == len(torch_outputs)

    cotangents = [rng.standard_normal(t.shape) for t in torch_outputs]
    total = sum((o * c).sum() for o, c in zip(our_outputs, cotangents))
    total.backward()
    torch_total = sum((t * to_torch(c)).sum() for t, c in zip(torch_outputs, cotangents))
    torch_total.backward()

    for index, (mine, theirs) in enumerate(zip(our_outputs, torch_outputs)):
        assert_close(mine, theirs, f"output {index}")
    for index, (mine, theirs) in enumerate(zip(our_inputs, torch_inputs)):
        assert_close(mine.grad, theirs.grad, f"gradient of input {index}")
    torch_params = dict(torch_module.named_parameters())
    our_params = dict(module.named_parameters())
    assert set(our_params) == set(torch_params)
    for name, param in our_params.items():
        assert_close(param.grad, torch_params[name].grad, f"gradient of {name}")


# -- basic layers -------------------------------------------------------------------------


def test_linear_matches_torch(rng):
    torch_module = torch.nn.Linear(4, 3).double()
    module = nn.Linear(4, 3).double()
    load_from_torch(module, torch_module)
    compare_module(module, torch_module, [rng.standard_normal((2, 5, 4))])


def test_embedding_padding_matches_torch(rng):
    torch_module = torch.nn.Embedding(6, 3, padding_idx=2).double()
    module = nn.Embedding(6, 3, padding_idx=2).double()
    load_from_torch(module, torch_module)
    indices = np.array([[0, 2, 5], [2, 2, 1]])
    compare_module(module, torch_module, [], call=lambda m: m(indices if m is module else torch.tensor(indices)))


def test_layer_norm_matches_torch(rng):
    torch_module = torch.nn.LayerNorm((3, 4)).double()
    with torch.no_grad():
        torch_module.weight.uniform_(0.5, 1.5)
        torch_module.bias.uniform_(-1.0, 1.0)
    module = nn.LayerNorm((3, 4)).double()
    load_from_torch(module, torch_module)
    compare_module(module, torch_module, [rng.standard_normal((2, 3, 4))])


# -- recurrent layers ---------------------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_matches_torch(rng, nonlinearity):
    torch_module = torch.nn.RNN(3, 4, num_layers=2, nonlinearity=nonlinearity, batch_first=True).double()
    module = nn.RNN(3, 4, num_layers=2, nonlinearity=nonlinearity, batch_first=True).double()
    load_from_torch(module, torch_module)
    compare_module(module, torch_module, [rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 2, 4))])


@pytest.mark.parametrize("implementation", ["fused", "cells"])
def test_lstm_matches_torch(rng, implementation, backend_name):
    torch_module = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True).double()
    module = nn.LSTM(3, 4, num_layers=2, batch_first=True, implementation=implementation).double()
    load_from_torch(module, torch_module)
    inputs = [rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 2, 4)), rng.standard_normal((2, 2, 4))]
    compare_module(module, torch_module, inputs, call=lambda m, x, h, c: m(x, (h, c)))


@pytest.mark.parametrize("implementation", ["fused", "cells"])
def test_gru_matches_torch(rng, implementation, backend_name):
    torch_module = torch.nn.GRU(3, 4, num_layers=2, batch_first=True).double()
    module = nn.GRU(3, 4, num_layers=2, batch_first=True, implementation=implementation).double()
    load_from_torch(module, torch_module)
    compare_module(module, torch_module, [rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 2, 4))])


@pytest.mark.parametrize("layer", ["RNN", "LSTM", "GRU"])
def test_bidirectional_matches_torch(rng, layer):
    torch_module = getattr(torch.nn, layer)(3, 2, num_layers=2, bidirectional=True).double()
    module = getattr(nn, layer)(3, 2, num_layers=2, bidirectional=True).double()
    load_from_torch(module, torch_module)
    compare_module(module, torch_module, [rng.standard_normal((4, 2, 3))])


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_torch(rng, cell):
    torch_module = getattr(torch.nn, cell)(3, 4).double()
    module = getattr(nn, cell)(3, 4).double()
    load_from_torch(module, torch_module)
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    if cell == "LSTMCell":
        compare_module(module, torch_module, [x, h, rng.standard_normal((2, 4))], call=lambda m, a, b, c: m(a, (b, c)))
    else:
        compare_module(module, torch_module, [x, h])


def test_lstm_unbatched_matches_torch(rng):
    torch_module = torch.nn.LSTM(3, 2).double()
    module = nn.LSTM(3, 2).double()
    load_from_torch(module, torch_module)
    compare_module(module, torch_module, [rng.standard_normal((4, 3))])


# -- attention ----------------------------------------------------------------------------


def test_sdpa_matches_torch_with_masks(rng):
    q, k, v = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((2, 2, 5, 3))
    allowed = rng.random((3, 5)) < 0.7
    allowed[:, 0] = True  # every query may attend somewhere, so PyTorch has no NaN
    bias = rng.standard_normal((3, 5))
    for kwargs_ours, kwargs_torch in [
        ({"is_causal": True}, {"is_causal": True}),
        ({"attn_mask": allowed}, {"attn_mask": torch.tensor(allowed)}),
        ({"attn_mask": bias}, {"attn_mask": to_torch(bias)}),
    ]:
        tensors = [ours(a) for a in (q, k, v)]
        torch_tensors = [to_torch(a, requires_grad=True) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*tensors, **kwargs_ours)
        expected = torch.nn.functional.scaled_dot_product_attention(*torch_tensors, **kwargs_torch)
        cotangent = rng.standard_normal(expected.shape)
        (out * cotangent).sum().backward()
        (expected * to_torch(cotangent)).sum().backward()
        assert_close(out, expected, f"sdpa output {list(kwargs_ours)}")
        for name, mine, theirs in zip("qkv", tensors, torch_tensors):
            assert_close(mine.grad, theirs.grad, f"sdpa gradient of {name} {list(kwargs_ours)}")


def _attention_pair(batch_first, **options):
    torch_module = torch.nn.MultiheadAttention(6, 2, batch_first=batch_first, **options).double()
    module = nn.MultiheadAttention(6, 2, batch_first=batch_first, **options).double()
    load_from_torch(module, torch_module)
    return module, torch_module


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_causal_and_padding(rng, batch_first):
    module, torch_module = _attention_pair(batch_first)
    length, batch = 4, 3
    causal = np.triu(np.ones((length, length), dtype=bool), 1)   # True = blocked
    padding = np.zeros((batch, length), dtype=bool)
    padding[1, 3:] = True
    padding[2, 2:] = True  # right padding: key 0 stays visible, so no row is fully masked
    x = rng.standard_normal((batch, length, 6) if batch_first else (length, batch, 6))

    def call(m, t):
        torch_side = m is torch_module
        mask = torch.tensor(causal) if torch_side else causal
        pad = torch.tensor(padding) if torch_side else padding
        return m(t, t, t, attn_mask=mask, key_padding_mask=pad, need_weights=True)

    compare_module(module, torch_module, [x], call=call)


def test_multihead_attention_cross_attention_per_head_weights(rng):
    module, torch_module = _attention_pair(False, kdim=4, vdim=5)
    query, key, value = rng.standard_normal((3, 2, 6)), rng.standard_normal((5, 2, 4)), rng.standard_normal((5, 2, 5))
    float_mask = rng.standard_normal((3, 5))

    def call(m, q, k, v):
        mask = to_torch(float_mask) if m is torch_module else float_mask
        return m(q, k, v, attn_mask=mask, average_attn_weights=False)

    compare_module(module, torch_module, [query, key, value], call=call)


def test_multihead_attention_bias_kv_and_zero_attn(rng):
    module, torch_module = _attention_pair(True, add_bias_kv=True, add_zero_attn=True)
    x = rng.standard_normal((2, 3, 6))
    padding = np.array([[False, False, True], [False, False, False]])

    def call(m, t):
        pad = torch.tensor(padding) if m is torch_module else padding
        return m(t, t, t, key_padding_mask=pad)

    compare_module(module, torch_module, [x], call=call)


def test_multihead_attention_fully_masked_rows(rng):
    """Rows that may attend to nothing: PyTorch gives NaN; we give zero weights and out_proj.bias."""
    module, torch_module = _attention_pair(True)
    x_data = rng.standard_normal((2, 3, 6))
    padding = np.array([[True, True, True], [False, True, False]])  # batch element 0 is all padding
    x = ours(x_data)
    out, weights = module(x, x, x, key_padding_mask=padding)
    (out * rng.standard_normal(out.shape)).sum().backward()

    assert np.all(weights.data[0] == 0.0), "a fully masked row must have zero attention weights"
    np.testing.assert_array_equal(out.data[0], np.broadcast_to(module.out_proj.bias.data, (3, 6)))
    for name, param in module.named_parameters():
        assert np.all(np.isfinite(param.grad)), f"NaN or inf in the gradient of {name}"
    assert np.all(np.isfinite(x.grad)), "NaN or inf in the input gradient"

    # The other batch element is independent of the masked one: compare it with PyTorch alone.
    torch_x = to_torch(x_data[1:])
    expected, expected_weights = torch_module(torch_x, torch_x, torch_x, key_padding_mask=torch.tensor(padding[1:]))
    assert_close(out.data[1:], expected, "output of the unmasked batch element")
    assert_close(weights.data[1:], expected_weights, "weights of the unmasked batch element")


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_block_matches_torch(rng, activation, norm_first):
    torch_activation = (lambda x: torch.nn.functional.gelu(x, approximate="tanh")) if activation == "gelu_tanh" \
        else activation
    torch_module = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.0, activation=torch_activation,
                                                    batch_first=True, norm_first=norm_first).double()
    module = nn.TransformerBlock(8, 2, dim_feedforward=12, dropout=0.0, activation=activation, batch_first=True,
                                 norm_first=norm_first).double()
    load_from_torch(module, torch_module)
    causal = np.triu(np.ones((4, 4), dtype=bool), 1)
    padding = np.array([[False, False, False, True], [False, False, False, False]])

    def call(m, src):
        torch_side = m is torch_module
        return m(src, src_mask=torch.tensor(causal) if torch_side else causal,
                 src_key_padding_mask=torch.tensor(padding) if torch_side else padding)

    compare_module(module, torch_module, [rng.standard_normal((2, 4, 8))], call=call)


def test_transformer_block_state_dict_keys_match_torch():
    torch_module = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=12)
    module = nn.TransformerBlock(8, 2, dim_feedforward=12)
    ours_shapes = {key: value.shape for key, value in module.state_dict().items()}
    torch_shapes = {key: tuple(value.shape) for key, value in torch_module.state_dict().items()}
    assert ours_shapes == torch_shapes


# -- losses -------------------------------------------------------------------------------


def compare_loss(function, torch_function, differentiable, constants=(), **kwargs):
    our_inputs = [ours(x) for x in differentiable]
    torch_inputs = [to_torch(x, requires_grad=True) for x in differentiable]
    our_constants = [np.asarray(c) for c in constants]
    torch_constants = [torch.tensor(np.asarray(c)) for c in constants]
    loss = function(*our_inputs, *our_constants, **kwargs)
    expected = torch_function(*torch_inputs, *torch_constants, **kwargs)
    cotangent = np.random.default_rng(1).standard_normal(expected.shape)
    (loss * cotangent).sum().backward()
    (expected * to_torch(cotangent)).sum().backward()
    assert_close(loss, expected, f"{function.__name__} {kwargs}")
    for index, (mine, theirs) in enumerate(zip(our_inputs, torch_inputs)):
        if theirs.grad is not None:
            assert_close(mine.grad, theirs.grad, f"{function.__name__} {kwargs}: gradient of input {index}")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_matches_torch(rng, reduction, label_smoothing, backend_name):
    logits = rng.standard_normal((5, 4))
    target = np.array([0, 3, -100, 1, 3])
    compare_loss(F.cross_entropy, torch.nn.functional.cross_entropy, [logits], [target], reduction=reduction,
                 label_smoothing=label_smoothing)
    spatial_logits = rng.standard_normal((2, 4, 3))
    spatial_target = np.array([[0, 1, -100], [3, 3, 2]])
    compare_loss(F.cross_entropy, torch.nn.functional.cross_entropy, [spatial_logits], [spatial_target],
                 reduction=reduction, label_smoothing=label_smoothing)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_weighted_matches_torch(rng, reduction, label_smoothing):
    logits, weight = rng.standard_normal((5, 4)), rng.uniform(0.5, 2.0, 4)
    target = np.array([0, 3, -100, 1, 3])
    compare_loss(F.cross_entropy, torch.nn.functional.cross_entropy, [logits], [target, weight], reduction=reduction,
                 label_smoothing=label_smoothing)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probability_targets_match_torch(rng, reduction):
    logits = rng.standard_normal((3, 4, 2))
    probabilities = rng.dirichlet(np.ones(4), size=(3, 2)).transpose(0, 2, 1)
    compare_loss(F.cross_entropy, torch.nn.functional.cross_entropy, [logits, probabilities], reduction=reduction,
                 label_smoothing=0.1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_torch(rng, reduction):
    log_probabilities = rng.standard_normal((5, 4))
    weight = rng.uniform(0.5, 2.0, 4)
    target = np.array([2, 0, 1, -100, 3])
    compare_loss(F.nll_loss, torch.nn.functional.nll_loss, [log_probabilities], [target, weight], reduction=reduction)
    compare_loss(F.nll_loss, torch.nn.functional.nll_loss, [log_probabilities], [target], reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_binary_losses_match_torch(rng, reduction):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    compare_loss(F.mse_loss, torch.nn.functional.mse_loss, [a, b], reduction=reduction)

    p, t, w = rng.uniform(0.02, 0.98, (3, 4)), rng.uniform(0.0, 1.0, (3, 4)), rng.uniform(0.5, 2.0, (3, 4))
    compare_loss(F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, [p, t], reduction=reduction)
    compare_loss(F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, [p, t], [w], reduction=reduction)

    z, pos_weight = rng.standard_normal((3, 4)) * 3.0, rng.uniform(0.5, 2.0, 4)
    compare_loss(F.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits,
                 [z, t], reduction=reduction)
    compare_loss(lambda x, y, wt, pw, **kw: F.binary_cross_entropy_with_logits(x, y, wt, pos_weight=pw, **kw),
                 lambda x, y, wt, pw, **kw: torch.nn.functional.binary_cross_entropy_with_logits(
                     x, y, wt, pos_weight=pw, **kw),
                 [z, t], [w, pos_weight], reduction=reduction)


def test_binary_cross_entropy_edges_match_torch():
    """At p = 0 and 1 both clamp log at -100 and share the input gradient (p − t)/max(p(1 − p), 1e-12).

    The target is a constant here: PyTorch's target gradient there is ±inf, ours uses the
    clamped logs and stays finite.
    """
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-300])
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    compare_loss(F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, [p], [t], reduction="none")


# -- optimizers ---------------------------------------------------------------------------


OPTIMIZER_CASES = [
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.3, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01)),
]


@pytest.mark.parametrize("name, options", OPTIMIZER_CASES)
def test_optimizer_steps_match_torch(rng, name, options):
    shapes = [(3, 2), (4,), ()]
    values = [rng.standard_normal(shape) for shape in shapes]
    params = [mr.tensor(v.copy(), requires_grad=True) for v in values]
    torch_params = [to_torch(v, requires_grad=True) for v in values]
    optimizer = getattr(optim, name)(params, **options)
    torch_optimizer = getattr(torch.optim, name)(torch_params, **options)
    for step in range(3):
        grads = [rng.standard_normal(shape) for shape in shapes]
        for param, torch_param, grad in zip(params, torch_params, grads):
            param.grad = grad.copy()
            torch_param.grad = to_torch(grad)
        optimizer.step()
        torch_optimizer.step()
        for index, (param, torch_param) in enumerate(zip(params, torch_params)):
            assert_close(param, torch_param, f"{name} {options}: parameter {index} after step {step + 1}")
