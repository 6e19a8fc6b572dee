"""Initializers and default layer initialization: PyTorch's bounds, reproducible from a seed."""
import math

import numpy as np
import pytest

import minireparam as mr
import minireparam.nn as nn
from minireparam.nn import init


def param(*shape):
    return nn.Parameter(np.zeros(shape, dtype=np.float64))


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5.0 / 3.0)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2.0))
    assert init.calculate_gain("leaky_relu", math.sqrt(5.0)) == pytest.approx(math.sqrt(1.0 / 3.0))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_fan_in_and_fan_out():
    assert init.fan_in_and_fan_out(param(4, 3)) == (3, 4)
    assert init.fan_in_and_fan_out(param(4, 3, 5)) == (15, 20)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.fan_in_and_fan_out(param(4))


def test_uniform_initializers_respect_bounds():
    weight = param(200, 50)
    init.xavier_uniform_(weight, generator=mr.Generator(0))
    bound = math.sqrt(6.0 / 250.0)
    assert np.abs(weight.data).max() <= bound
    assert np.abs(weight.data).max() > 0.95 * bound, "10,000 draws should come close to the bound"

    init.kaiming_uniform_(weight, a=math.sqrt(5.0), generator=mr.Generator(0))
    assert np.abs(weight.data).max() <= 1.0 / math.sqrt(50.0)


def test_normal_initializers_have_the_right_scale():
    weight = param(400, 100)
    init.kaiming_normal_(weight, nonlinearity="relu", generator=mr.Generator(1))
    expected = math.sqrt(2.0 / 100.0)
    # 40,000 draws: the sample std is within 2% of the true one with overwhelming probability.
    assert weight.data.std() == pytest.approx(expected, rel=0.02)
    init.xavier_normal_(weight, gain=2.0, generator=mr.Generator(1))
    assert weight.data.std() == pytest.approx(2.0 * math.sqrt(2.0 / 500.0), rel=0.02)


def test_initializers_bump_version_and_fill_constants():
    weight = param(3, 3)
    version = weight._version[0]
    init.ones_(weight)
    assert weight._version[0] == version + 1
    assert np.all(weight.data == 1.0)
    init.constant_(weight, 0.25)
    assert np.all(weight.data == 0.25)


def test_default_layer_inits_match_pytorch_bounds():
    linear = nn.Linear(20, 30, generator=mr.Generator(2))
    assert np.abs(linear.weight.data).max() <= 1.0 / math.sqrt(20.0)
    assert np.abs(linear.bias.data).max() <= 1.0 / math.sqrt(20.0)

    embedding = nn.Embedding(100, 8, padding_idx=3, generator=mr.Generator(2))
    assert np.all(embedding.weight.data[3] == 0.0)
    assert embedding.weight.data.std() == pytest.approx(1.0, rel=0.1)  # N(0, 1) over 800 draws

    norm = nn.LayerNorm(5)
    assert np.all(norm.weight.data == 1.0)
    assert np.all(norm.bias.data == 0.0)

    attention = nn.MultiheadAttention(8, 2, generator=mr.Generator(2))
    assert np.abs(attention.in_proj_weight.data).max() <= math.sqrt(6.0 / (8 + 24))
    assert np.all(attention.in_proj_bias.data == 0.0)
    assert np.all(attention.out_proj.bias.data == 0.0)
    assert np.abs(attention.out_proj.weight.data).max() <= 1.0 / math.sqrt(8.0)


def test_same_seed_same_model_bit_for_bit():
    def build():
        return nn.TransformerBlock(8, 2, dim_feedforward=16)

    mr.manual_seed(42)
    first = build().state_dict()
    mr.manual_seed(42)
    second = build().state_dict()
    explicit = nn.TransformerBlock(8, 2, dim_feedforward=16, generator=mr.Generator(42)).state_dict()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
        np.testing.assert_array_equal(first[name], explicit[name], err_msg=name)
    different = nn.TransformerBlock(8, 2, dim_feedforward=16, generator=mr.Generator(43)).state_dict()
    assert not np.array_equal(first["linear1.weight"], different["linear1.weight"])
