"""Module mechanics: registration, traversal, modes, dtype conversion and state dicts."""
import numpy as np
import pytest

import minireparam as mr
import minireparam.nn as nn
from minireparam.errors import ShapeError


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.activation = nn.Tanh()
        self.second = nn.Linear(4, 2)
        self.scale = nn.Parameter(np.ones(2, dtype=np.float32))
        self.register_buffer("running", np.zeros(2, dtype=np.float32))
        self.register_buffer("scratch", np.zeros(1, dtype=np.float32), persistent=False)

    def forward(self, x):
        return self.second(self.activation(self.first(x))) * self.scale


def test_parameters_registered_in_order():
    model = TwoLayer()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["scale", "first.weight", "first.bias", "second.weight", "second.bias"]
    assert len(list(model.parameters())) == 5
    assert all(p.requires_grad for p in model.parameters())


def test_children_and_modules():
    model = TwoLayer()
    assert [name for name, _ in model.named_children()] == ["first", "activation", "second"]
    assert [name for name, _ in model.named_modules()] == ["", "first", "activation", "second"]
    assert isinstance(list(model.children())[0], nn.Linear)


def test_shared_parameter_listed_once():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[1].weight = model[0].weight
    assert len(list(model.parameters())) == 3


def test_call_runs_forward_and_backward_reaches_parameters():
    model = TwoLayer()
    out = model(mr.tensor(np.ones((5, 3), dtype=np.float32)))
    assert out.shape == (5, 2)
    out.sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert param.grad.shape == param.shape
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_zero_grad_in_place():
    model = nn.Linear(2, 2)
    model(mr.tensor(np.ones((1, 2), dtype=np.float32))).sum().backward()
    grad = model.weight.grad
    model.zero_grad(set_to_none=False)
    assert model.weight.grad is grad
    assert np.all(grad == 0)


def test_train_eval_propagate():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.eval()
    assert not model.training
    assert not model[1].training
    model.train()
    assert model.training
    assert model[1].training
    with pytest.raises(TypeError):
        model.train("yes")


def test_dropout_eval_is_identity():
    layer = nn.Dropout(0.5).eval()
    x = mr.tensor(np.ones((4, 4), dtype=np.float32))
    assert layer(x) is x


def test_to_double_converts_parameters_and_buffers():
    model = TwoLayer()
    weight = model.first.weight
    model.double()
    assert model.first.weight is weight  # identity kept, so optimizers still hold it
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert all(b.dtype == np.float64 for b in model.buffers())
    model.float()
    assert all(p.dtype == np.float32 for p in model.parameters())
    with pytest.raises(TypeError):
        model.to(np.int32)


def test_state_dict_keys_and_copies():
    model = TwoLayer()
    state = model.state_dict()
    assert list(state) == ["scale", "running", "first.weight", "first.bias", "second.weight", "second.bias"]
    assert "scratch" not in state  # non-persistent buffer
    state["scale"][...] = 5.0
    assert np.all(model.scale.data == 1.0), "state_dict must return copies"


def test_load_state_dict_round_trip():
    source, target = TwoLayer(), TwoLayer()
    for param in source.parameters():
        param.data[...] = np.random.default_rng(0).standard_normal(param.shape)
    version = target.first.weight._version[0]
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == []
    assert result.unexpected_keys == []
    for name, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[name], value)
    assert target.first.weight._version[0] > version, "loading must bump the version counter"


def test_load_state_dict_reports_every_problem():
    model = TwoLayer()
    state = model.state_dict()
    del state["first.bias"]
    state["extra.weight"] = np.zeros(3)
    state["second.weight"] = np.zeros((5, 5))
    with pytest.raises(KeyError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "missing keys: first.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "second.weight: checkpoint (5, 5), model (2, 4)" in message


def test_load_state_dict_non_strict():
    model = TwoLayer()
    state = model.state_dict()
    del state["first.bias"]
    state["extra"] = np.zeros(1)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["first.bias"]
    assert result.unexpected_keys == ["extra"]
    state["second.weight"] = np.zeros((5, 5))
    with pytest.raises(ShapeError, match="second.weight"):
        model.load_state_dict(state, strict=False)


def test_assigning_wrong_type_to_parameter_raises():
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="weight"):
        model.weight = np.zeros((2, 2))
    model.bias = None
    assert model.bias is None
    assert [name for name, _ in model.named_parameters()] == ["weight"]


def test_setattr_before_init_raises():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_sequential_and_module_list():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(model) == 3
    assert isinstance(model[-1], nn.Linear)
    assert isinstance(model[:2], nn.Sequential) and len(model[:2]) == 2
    assert model(mr.tensor(np.ones((4, 2), dtype=np.float32))).shape == (4, 1)
    with pytest.raises(IndexError):
        model[3]

    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.Linear(2, 1))
    layers.insert(0, nn.Identity())
    assert len(layers) == 5
    assert isinstance(layers[0], nn.Identity)
    assert [name for name, _ in layers.named_parameters()][:2] == ["1.weight", "1.bias"]

    named = nn.ModuleDict({"encoder": nn.Linear(2, 2)})
    assert "encoder" in named
    assert list(named.keys()) == ["encoder"]


def test_repr_lists_children():
    text = repr(nn.Sequential(nn.Linear(2, 3), nn.GELU(approximate="tanh")))
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in text
    assert "GELU(approximate='tanh')" in text


def test_parameter_is_a_leaf_tensor():
    param = nn.Parameter(np.zeros((2, 2)))
    assert isinstance(param, mr.Tensor)
    assert param.requires_grad and param.is_leaf
    assert "Parameter containing" in repr(param)
