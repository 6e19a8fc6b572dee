"""Gradient clipping, parameter flattening and calling a module with substitute tensors."""
import contextlib
import math

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor


def _parameter_list(parameters):
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients in place so that their joint norm is at most ``max_norm``.

    The norm is taken over all gradients together, as if concatenated into one vector.
    Gradients are multiplied by min(1, max_norm / (norm + 1e-6)), PyTorch's formula.

    Args:
        parameters: a Tensor or an iterable of Tensors; those with ``grad`` None are skipped.
        max_norm: the largest allowed norm.
        norm_type: the p of the p-norm (float('inf') for the max-abs norm).
        error_if_nonfinite: raise if the total norm is NaN or infinite (otherwise the
            gradients are scaled by a NaN or zero factor, as PyTorch does).

    Returns:
        The total norm before clipping, as a 0-d Tensor.
    """
    grads = [p.grad for p in _parameter_list(parameters) if p.grad is not None]
    if not grads:
        return Tensor(np.asarray(0.0, dtype=np.float32))
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        per_grad = [np.linalg.norm(g.ravel(), ord=norm_type) if g.size else 0.0 for g in grads]
        total = float(np.linalg.norm(np.asarray(per_grad, dtype=np.float64), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total {norm_type}-norm of the gradients is {total}; pass "
            "error_if_nonfinite=False to scale them anyway"
        )
    coefficient = min(1.0, max_norm / (total + 1e-6)) if math.isfinite(total) else max_norm / (total + 1e-6)
    if coefficient != 1.0:
        with no_grad():
            for grad in grads:
                grad *= coefficient
    return Tensor(np.asarray(total, dtype=grads[0].dtype))


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into [−clip_value, clip_value], in place."""
    for param in _parameter_list(parameters):
        if param.grad is not None:
            np.clip(param.grad, -clip_value, clip_value, out=param.grad)


def parameters_to_vector(parameters):
    """Concatenate the parameters' values into one 1-D ndarray (a copy)."""
    return np.concatenate([p.data.ravel() for p in _parameter_list(parameters)])


def vector_to_parameters(vector, parameters):
    """Copy consecutive pieces of ``vector`` into the parameters, in place."""
    vector = vector.data if isinstance(vector, Tensor) else np.asarray(vector)
    params = _parameter_list(parameters)
    total = sum(p.data.size for p in params)
    if vector.shape != (total,):
        raise ValueError(f"vector_to_parameters: the vector has shape {vector.shape}, expected ({total},)")
    offset = 0
    for param in params:
        size = param.data.size
        param.data[...] = vector[offset:offset + size].reshape(param.shape)
        param._bump_version()
        offset += size


@contextlib.contextmanager
def substituted_tensors(module, tensors):
    """Within the block, ``module`` uses ``tensors`` ({dotted name: Tensor}) in place of its own.

    Names are those of ``state_dict`` (parameters and buffers). Gradients of the module's
    outputs then flow to the given tensors; the originals are restored on exit.
    """
    saved = []
    try:
        for name, tensor in tensors.items():
            owner, attribute = _owner_of(module, name)
            registry = owner._parameters if attribute in owner._parameters else owner._buffers
            if attribute not in registry:
                raise KeyError(f"substituted_tensors: {type(module).__name__} has no parameter or buffer {name!r}")
            saved.append((registry, attribute, registry[attribute]))
            registry[attribute] = tensor
        yield module
    finally:
        for registry, attribute, original in reversed(saved):
            registry[attribute] = original


def functional_call(module, tensors, args=(), kwargs=None):
    """Call ``module(*args, **kwargs)`` with ``tensors`` substituted for its parameters and buffers.

    Used to gradcheck a layer with respect to its parameters: the parameters become
    ordinary inputs of a function.
    """
    if not isinstance(args, tuple):
        args = (args,)
    with substituted_tensors(module, tensors):
        return module(*args, **(kwargs or {}))


def _owner_of(module, dotted_name):
    *path, attribute = dotted_name.split(".")
    owner = module
    for part in path:
        if part not in owner._modules or owner._modules[part] is None:
            raise KeyError(f"functional_call: {type(module).__name__} has no submodule {part!r} (in {dotted_name!r})")
        owner = owner._modules[part]
    return owner, attribute
