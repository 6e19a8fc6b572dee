"""Gradient checks against central differences, and a table over the op registry.

``gradcheck`` compares the analytic VJP of a function with central differences in
float64. For outputs y_1..y_m it checks the scalar L = Σ_j <v_j, y_j> with random
cotangents v_j (so every output element counts), perturbing one input element at a time:

    numeric  = (L(x + eps·e_k) − L(x − eps·e_k)) / (2·eps)
    analytic = (∂L/∂x)_k from minireparam.grad

and passes when |analytic − numeric| <= atol + rtol·|numeric| for every element.
``gradgradcheck`` applies the same check to the function (inputs, v) -> grad(...) built
with ``create_graph=True``, which tests second derivatives.

Run ``python -m minireparam.gradcheck`` for a table over every registered op.
"""
import argparse
import warnings
import zlib

import numpy as np

from ..autograd.engine import grad
from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its central-difference estimate."""


def _as_tuple(outputs):
    return outputs if isinstance(outputs, (tuple, list)) else (outputs,)


def _prepare_inputs(inputs):
    tensors = []
    for index, value in enumerate(inputs):
        tensor = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
        if tensor.dtype.kind == "f" and tensor.dtype != np.float64:
            warnings.warn(
                f"gradcheck: input {index} is {tensor.dtype}; central differences need float64 "
                "to be reliable, so expect spurious failures",
                stacklevel=3,
            )
        tensors.append(tensor)
    return tensors


def _differentiable_outputs(outputs):
    return [out for out in _as_tuple(outputs) if isinstance(out, Tensor) and out.dtype.kind == "f"]


def _weighted_sum(outputs, cotangents):
    """L = Σ_j <v_j, y_j> evaluated on arrays, in float64."""
    return float(sum(np.sum(out.data.astype(np.float64) * v) for out, v in zip(outputs, cotangents)))


def _numeric_gradient(function, tensors, index, cotangents, eps):
    """Central differences of L with respect to every element of ``tensors[index]``."""
    data = tensors[index].data
    numeric = np.zeros(data.shape, dtype=np.float64)
    with no_grad():
        for position in np.ndindex(*data.shape):
            original = data[position]
            data[position] = original + eps
            plus = _weighted_sum(_differentiable_outputs(function(*tensors)), cotangents)
            data[position] = original - eps
            minus = _weighted_sum(_differentiable_outputs(function(*tensors)), cotangents)
            data[position] = original
            numeric[position] = (plus - minus) / (2.0 * eps)
    return numeric


def _analytic_gradients(function, tensors, checked, cotangents):
    outputs = _differentiable_outputs(function(*tensors))
    live = [(out, v) for out, v in zip(outputs, cotangents) if out.requires_grad]
    results = [np.zeros(tensors[i].shape) for i in checked]
    if not live:
        return results
    gradients = grad(
        [out for out, _ in live],
        [tensors[i] for i in checked],
        grad_outputs=[Tensor(v.astype(out.dtype)) for out, v in live],
        allow_unused=True,
    )
    for slot, gradient in enumerate(gradients):
        if gradient is not None:
            results[slot] = gradient.data.astype(np.float64)
    return results


def compare_gradients(function, inputs, eps=1e-6, seed=0):
    """Return a list of (input index, analytic, numeric) for every input that requires grad."""
    tensors = _prepare_inputs(inputs)
    checked = [i for i, t in enumerate(tensors) if t.requires_grad]
    rng = np.random.default_rng(seed)
    with no_grad():
        outputs = _differentiable_outputs(function(*tensors))
    cotangents = [rng.standard_normal(out.shape) for out in outputs]

    analytic = _analytic_gradients(function, tensors, checked, cotangents)
    report = []
    for slot, index in enumerate(checked):
        numeric = _numeric_gradient(function, tensors, index, cotangents, eps)
        report.append((index, analytic[slot], numeric))
    return report


def gradcheck(function, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check the gradients of ``function`` at ``inputs`` against central differences.

    Args:
        function: maps Tensors to a Tensor or a tuple of Tensors.
        inputs: Tensors (those with ``requires_grad=True`` are checked) or arrays.
        eps: the finite-difference step.
        atol, rtol: an element passes when |analytic − numeric| <= atol + rtol·|numeric|.
        seed: seeds the random cotangents.

    Returns:
        True when every element passes.

    Raises:
        GradcheckError: naming the input index, the element index and both values.
    """
    for index, analytic, numeric in compare_gradients(function, inputs, eps, seed):
        _raise_on_mismatch(index, analytic, numeric, atol, rtol, "gradient")
    return True


def _raise_on_mismatch(index, analytic, numeric, atol, rtol, what):
    bad = np.abs(analytic - numeric) > atol + rtol * np.abs(numeric)
    bad |= np.isnan(analytic) != np.isnan(numeric)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GradcheckError(
            f"gradcheck: the {what} of input {index} at element {position} is wrong: analytic "
            f"{float(analytic[position])!r}, numeric {float(numeric[position])!r} (atol={atol}, rtol={rtol}; "
            f"{int(bad.sum())} of {bad.size} elements fail)"
        )


def gradgradcheck(function, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check second derivatives: gradcheck of (inputs, v) -> grad(function, inputs, v).

    The first-order gradients are built with ``create_graph=True`` and then checked
    against central differences with respect to the inputs and the cotangents ``v``.
    """
    tensors = _prepare_inputs(inputs)
    first_derivatives, cotangents = first_derivative_function(function, tensors, seed)
    return gradcheck(first_derivatives, list(tensors) + cotangents, eps, atol, rtol, seed)


def first_derivative_function(function, tensors, seed=0):
    """Return ``(f, v)``: f(*inputs, *v) = grad(function(*inputs), inputs, v, create_graph=True).

    ``v`` holds one random cotangent Tensor (requiring grad) per floating output.
    """
    checked = [i for i, t in enumerate(tensors) if t.requires_grad]
    with no_grad():
        outputs = _differentiable_outputs(function(*tensors))
    rng = np.random.default_rng(seed + 1)
    cotangents = [Tensor(rng.standard_normal(out.shape).astype(out.dtype), requires_grad=True) for out in outputs]
    count = len(tensors)

    def first_derivatives(*args):
        inner_inputs, inner_cotangents = args[:count], args[count:]
        with enable_grad():  # the numeric pass runs under no_grad, but grad() needs a graph
            inner_outputs = _differentiable_outputs(function(*inner_inputs))
        pairs = [(out, v) for out, v in zip(inner_outputs, inner_cotangents) if out.requires_grad]
        if not pairs:
            return ()
        gradients = grad(
            [out for out, _ in pairs], [inner_inputs[i] for i in checked],
            grad_outputs=[v for _, v in pairs], create_graph=True, allow_unused=True,
        )
        return tuple(g for g in gradients if g is not None)

    return first_derivatives, cotangents


# -- the registry table -------------------------------------------------------------------


def check_registered_op(spec, draw, order=1, eps=1e-6, atol=1e-5, rtol=1e-3):
    """Run one registry case at derivative ``order`` (1 or 2).

    Returns (case, max abs error, max rel error, passed), where ``passed`` applies the
    same per-element rule as ``gradcheck``.
    """
    case = spec.build(draw)
    tensors = [Tensor(np.asarray(x, dtype=np.float64), requires_grad=True) for x in case.inputs]
    function = case.function
    if order == 2:
        function, cotangents = first_derivative_function(case.function, tensors)
        tensors = tensors + cotangents
    max_abs = max_rel = 0.0
    passed = True
    for _index, analytic, numeric in compare_gradients(function, tensors, case.eps or eps):
        error = np.abs(analytic - numeric)
        if error.size:
            max_abs = max(max_abs, float(np.nanmax(error)))
            max_rel = max(max_rel, float(np.nanmax(error / np.maximum(np.abs(numeric), 1e-12))))
        passed &= bool(np.all(error <= atol + rtol * np.abs(numeric)))
    return case, max_abs, max_rel, passed


def _main(argv=None):
    import importlib

    from ..ops.registry import REGISTRY, RandomDraw

    parser = argparse.ArgumentParser(
        prog="python -m minireparam.gradcheck",
        description="Gradcheck every registered op in float64 against central differences.",
    )
    parser.add_argument("--cases", type=int, default=5, help="random cases per op (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random cases (default: 0)")
    parser.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (default: 1e-5)")
    parser.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance (default: 1e-3)")
    parser.add_argument("--second-order", action="store_true", help="also run gradgradcheck on smooth ops")
    parser.add_argument("--filter", default="", help="only ops whose name contains this text")
    args = parser.parse_args(argv)

    for layer in ("minireparam.nn", "minireparam.distributions"):  # their entries register on import
        try:
            importlib.import_module(layer)
        except ImportError:
            pass

    names = [name for name in sorted(REGISTRY) if args.filter in name]
    if not names:
        parser.error(f"--filter {args.filter!r} matches no registered op; run without it to list them all")

    header = f"{'op':<40} {'order':>5} {'cases':>5} {'max abs err':>12} {'max rel err':>12}  result"
    print(header)
    print("-" * len(header))
    failures = 0
    for name in names:
        spec = REGISTRY[name]
        # Each op's cases come from the seed and its name alone, so --filter reruns the
        # very cases of the full table.
        rng = np.random.default_rng([args.seed, zlib.crc32(name.encode())])
        orders = (1, 2) if args.second_order and spec.second_order else (1,)
        for order in orders:
            worst_abs = worst_rel = 0.0
            passed = True
            for _ in range(args.cases):
                draw = RandomDraw(np.random.default_rng(rng.integers(2**63)))
                _case, max_abs, max_rel, case_passed = check_registered_op(
                    spec, draw, order, atol=args.atol, rtol=args.rtol)
                worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
                passed &= case_passed
            failures += not passed
            print(f"{name:<40} {order:>5} {args.cases:>5} {worst_abs:>12.2e} {worst_rel:>12.2e}  "
                  f"{'pass' if passed else 'FAIL'}")
    print(f"\n{failures} failed")
    return 1 if failures else 0

