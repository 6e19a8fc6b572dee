"""Every registered op against central differences in float64, under both kernel backends.

Hypothesis draws the discrete choices of each case (shapes, axes, keepdims, broadcasting,
contiguity) and a seed for the values, so a failure prints a reproducible example.
"""
import importlib

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minireparam
from minireparam import ops
from minireparam.gradcheck import GradcheckError, check_registered_op, gradcheck, gradgradcheck
from minireparam.ops.registry import REGISTRY, RandomDraw, covered_names

# Layers register their own entries when imported; import them so the table is complete.
for _layer in ("minireparam.nn", "minireparam.distributions"):
    try:
        importlib.import_module(_layer)
    except ImportError:
        pass

# An element passes when |analytic - numeric| <= ATOL + RTOL·|numeric|. With eps = 1e-6 in
# float64 the central difference has truncation error ~eps² and rounding error ~1e-10, so
# these bounds leave a wide margin for correct VJPs and still catch any wrong term.
ATOL, RTOL = 1e-5, 1e-3

CORE_OPS = sorted(name for name in REGISTRY if "." not in name)
LAYER_OPS = sorted(name for name in REGISTRY if "." in name)
SECOND_ORDER_CORE = [name for name in CORE_OPS if REGISTRY[name].second_order]


class HypothesisDraw(RandomDraw):
    """Draws choices through hypothesis and values from a numpy Generator it seeds."""

    def __init__(self, data):
        super().__init__(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed")))
        self.data = data

    def integers(self, low, high):
        return self.data.draw(st.integers(low, high))

    def boolean(self):
        return self.data.draw(st.booleans())


def _check(name, data, order):
    _case, max_abs, max_rel, passed = check_registered_op(REGISTRY[name], HypothesisDraw(data), order, atol=ATOL, rtol=RTOL)
    assert passed, f"{name} (order {order}): {_case.description}: max abs error {max_abs:.3e}, max rel error {max_rel:.3e}"


@pytest.mark.parametrize("name", CORE_OPS)
@given(data=st.data())
def test_core_op_gradient(name, data, backend_name):
    _check(name, data, order=1)


@pytest.mark.parametrize("name", SECOND_ORDER_CORE)
@given(data=st.data())
def test_core_op_second_derivative(name, data):
    _check(name, data, order=2)


@pytest.mark.parametrize("name", LAYER_OPS)
@given(data=st.data())
def test_layer_gradient(name, data):
    _check(name, data, order=1)


def test_registry_covers_every_core_op():
    exported = set(ops.DIFFERENTIABLE)
    missing = sorted(exported - covered_names())
    assert not missing, f"differentiable ops without a gradcheck case in the registry: {missing}"


def test_registry_lists_match_exports():
    listed = set(ops.DIFFERENTIABLE) | set(ops.NON_DIFFERENTIABLE)
    assert listed == set(ops.__all__)
    for name in listed:
        assert hasattr(minireparam, name), f"minireparam.{name} is not exported"


def test_registry_covers_nn_functional():
    functional = pytest.importorskip("minireparam.nn.functional")
    exempt = set(getattr(functional, "NON_DIFFERENTIABLE", ()))
    covered = covered_names()
    missing = sorted(
        name for name in functional.__all__
        if name not in exempt and name not in covered and f"nn.functional.{name}" not in covered
    )
    assert not missing, f"nn.functional functions without a gradcheck case: {missing}"


# -- the checkers themselves must be able to fail -----------------------------------------


class _WrongSquare(minireparam.Op):
    """x² with a VJP that is off by a factor of 1.5 (3x instead of 2x)."""

    def forward(self, x):
        self.save_input("x", 0)
        return x * x

    def vjp(self, g):
        return (g * self.saved("x") * 3.0,)


class _WrongSecondDerivative(minireparam.Op):
    """x³ whose VJP is right (3x²) but written with an op that hides its x-dependence."""

    def forward(self, x):
        self.save_array("three_x_squared", 3.0 * x * x)
        return x ** 3

    def vjp(self, g):
        return (g * self.saved("three_x_squared"),)


def test_gradcheck_catches_wrong_vjp():
    x = minireparam.tensor(np.array([0.5, -1.2, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 at element \(0,\) is wrong: analytic -?\d\.\d+, numeric -?\d\.\d+ "):
        gradcheck(lambda t: _WrongSquare().apply(t), [x])


def test_gradgradcheck_catches_wrong_second_derivative():
    x = minireparam.tensor(np.array([0.5, -1.2, 2.0]), requires_grad=True)
    assert gradcheck(lambda t: _WrongSecondDerivative().apply(t), [x])
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda t: _WrongSecondDerivative().apply(t), [x])


def test_gradcheck_warns_on_float32():
    x = minireparam.tensor(np.array([0.5, 1.0], dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="float32"):
        gradcheck(lambda t: t * 2.0, [x], atol=1e-2)


def test_gradcheck_table_command(capsys):
    from minireparam.gradcheck import _main

    assert _main(["--cases", "1", "--filter", "exp"]) == 0
    output = capsys.readouterr().out
    assert "exp" in output
    assert "pass" in output


def test_gradcheck_table_filter_reruns_the_same_cases(capsys):
    # A filtered run draws each op's cases from the seed and the op's name, so its row
    # matches the full table's. A filter that matches nothing is an error, not "0 failed".
    from minireparam.gradcheck import _main

    def rows(arguments):
        _main(["--cases", "2"] + arguments)
        return {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if " pass" in line}

    full, filtered = rows(["--filter", "exp"]), rows(["--filter", "expm1"])
    assert filtered["expm1"] == full["expm1"]
    with pytest.raises(SystemExit) as error:
        _main(["--filter", "no such op"])
    assert error.value.code == 2
    assert "matches no registered op" in capsys.readouterr().err
