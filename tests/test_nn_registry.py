"""Registry coverage of nn, and second derivatives of the nn entries that claim them.

First-order gradchecks of every nn entry run in test_ops_gradcheck.py (test_layer_gradient),
which gradchecks every registered name that contains a dot.
"""
import inspect

import numpy as np
import pytest

import minireparam.nn as nn
import minireparam.nn.functional as F
from minireparam.gradcheck import check_registered_op
from minireparam.ops.registry import REGISTRY, RandomDraw, covered_names

# Same per-element rule as the core gradchecks: eps = 1e-6 central differences in float64
# are accurate to about 1e-9 here, so these bounds pass correct VJPs and catch wrong terms.
ATOL, RTOL = 1e-5, 1e-3

CONTAINERS = {"Module", "Parameter", "ModuleList", "ModuleDict", "RNNBase"}
LAYERS = sorted(
    name for name in nn.__all__
    if inspect.isclass(getattr(nn, name)) and issubclass(getattr(nn, name), nn.Module) and name not in CONTAINERS
)
SECOND_ORDER = sorted(name for name, spec in REGISTRY.items() if name.startswith("nn.") and spec.second_order)


def test_every_functional_export_is_registered():
    differentiable = set(F.__all__) - set(F.NON_DIFFERENTIABLE)
    missing = sorted(name for name in differentiable if f"nn.functional.{name}" not in covered_names())
    assert not missing, f"nn.functional exports without a gradcheck case: {missing}"
    assert set(F.NON_DIFFERENTIABLE) <= set(F.__all__)


def test_every_layer_is_registered():
    missing = sorted(name for name in LAYERS if f"nn.{name}" not in covered_names())
    assert not missing, f"layers without a gradcheck case: {missing}"


def test_both_recurrent_implementations_are_registered():
    for name in ("nn.LSTM", "nn.LSTM[cells]", "nn.GRU", "nn.GRU[cells]", "nn.rnn_sequence.lstm_sequence",
                 "nn.rnn_sequence.gru_sequence"):
        assert name in REGISTRY, name
    assert not REGISTRY["nn.LSTM"].second_order, "the fused LSTM op is once-differentiable"


def test_layer_cases_check_every_parameter():
    """A layer case's inputs start with all of the module's parameters (not one weight)."""
    draw = RandomDraw(np.random.default_rng(0))
    case = REGISTRY["nn.TransformerBlock"].build(draw)
    parameter_count = len(list(nn.TransformerBlock(4, 2, dim_feedforward=3).parameters()))
    assert len(case.inputs) == parameter_count + 1  # the parameters and the source sequence


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_nn_second_derivative(name):
    rng = np.random.default_rng(abs(hash(name)) % 2 ** 32)
    cases = 1 if "[cells]" in name else 2  # a recurrent second-order check takes seconds
    for _ in range(cases):
        draw = RandomDraw(np.random.default_rng(rng.integers(2 ** 63)))
        case, max_abs, max_rel, passed = check_registered_op(REGISTRY[name], draw, order=2, atol=ATOL, rtol=RTOL)
        assert passed, f"{name}: {case.description}: max abs error {max_abs:.3e}, max rel error {max_rel:.3e}"
