"""The backward pass: order the graph, call each node's VJP, accumulate cotangents.

``backward`` accumulates gradients into the leaves' ``.grad``; ``grad`` returns them as
Tensors and leaves ``.grad`` alone. Both run the same loop in ``_run_backward``:

1. order the nodes reachable from the outputs (iterative depth-first search, so a graph
   100,000 nodes deep needs no recursion; parents are tuples, so the order is fixed);
2. walk that order from the outputs down, calling each node's VJP once all of its
   consumers have added their cotangents;
3. fit each returned gradient to its input (sum over broadcast axes, cast to the input's
   dtype) and add it into that input's pending cotangent;
4. release each node's saved values after its VJP unless ``retain_graph`` is set.
"""
import numpy as np

from .grad_mode import set_grad_enabled, state
from .node import Op, check_backward_nan

# Set by minireparam.tensor once Tensor and the ops exist (they import this module first).
Tensor = None
ops = None


class SparseGrad:
    """A gradient that is zero except at ``index``: what slicing and indexing return.

    The engine adds it into one dense buffer per tensor, so taking 64 slices of a tensor
    costs one full-size allocation instead of 64.
    """

    __slots__ = ("index", "values", "basic")

    def __init__(self, index, values, basic):
        self.index = index      # the index used in the forward pass
        self.values = values    # ndarray, the gradient of the selected elements
        self.basic = basic      # True when no element can be selected twice

    def add_into(self, buffer):
        if self.basic:
            buffer[self.index] += self.values
        else:
            np.add.at(buffer, self.index, self.values)


def toposort(roots):
    """Return the nodes reachable from ``roots``, every node after all of its parents."""
    order = []
    visited = set()
    stack = [(root, False) for root in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for parent in node.parents:
            if isinstance(parent, Op) and parent not in visited:
                stack.append((parent, False))
    return order


def backward(output, grad=None, retain_graph=False):
    """Accumulate the gradient of ``output`` into ``.grad`` of every leaf it depends on."""

    if not output.requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad: no input of the computation "
            "had requires_grad=True (or it ran under no_grad)."
        )
    seed = _seed_cotangent(output, grad, "backward()")
    if output._node is None:  # a leaf: d(output)/d(output) = 1
        _accumulate_leaf_grad(output, seed.data)
        return

    pending = _run_backward([output], [seed], retain_graph=retain_graph, create_graph=False)
    for target, (value, _owned) in pending.items():
        if isinstance(target, Tensor):
            _accumulate_leaf_grad(target, value if isinstance(value, SparseGrad) else value.data)


def grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None, allow_unused=False):
    """Return the gradients of ``outputs`` with respect to ``inputs`` as Tensors.

    Nothing is written to ``.grad``. With ``create_graph=True`` the returned gradients
    are themselves recorded, so they can be differentiated again (Hessian-vector products,
    gradient penalties). ``retain_graph`` defaults to ``create_graph``.

    Args:
        outputs: a Tensor or sequence of Tensors.
        inputs: a Tensor or sequence of Tensors that ``outputs`` depend on.
        grad_outputs: cotangents for ``outputs``; None for a scalar output means 1.
        allow_unused: return None for an input the outputs do not depend on, instead of raising.
    """

    single_input = isinstance(inputs, Tensor)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if single_input else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad(): got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    if retain_graph is None:
        retain_graph = create_graph
    for index, tensor in enumerate(inputs):
        if not tensor.requires_grad:
            raise RuntimeError(f"grad(): input {index} does not require grad, so it has no gradient")

    with set_grad_enabled(create_graph):
        seeds = [_seed_cotangent(out, g, "grad()") for out, g in zip(outputs, grad_outputs)]
    roots, root_seeds, results = [], [], {}
    for out, seed in zip(outputs, seeds):
        if not out.requires_grad:
            continue
        if out._node is None:
            results[out] = _add(results.get(out), seed, create_graph)
        else:
            roots.append(out)
            root_seeds.append(seed)

    targets = {tensor._node if tensor._node is not None else tensor for tensor in inputs}
    pending = _run_backward(roots, root_seeds, retain_graph, create_graph, targets) if roots else {}

    gradients = []
    for index, tensor in enumerate(inputs):
        key = tensor._node if tensor._node is not None else tensor
        reached = pending.get(key)
        value = _add(results.get(tensor), None if reached is None else _densify(reached[0], key), create_graph)
        if value is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad(): input {index} (shape {tensor.shape}) was not used to compute the "
                    "outputs, so it has no gradient. Pass allow_unused=True to get None for it."
                )
            gradients.append(None)
        else:
            gradients.append(_densify(value, tensor))
    return gradients[0] if single_input else tuple(gradients)


def _run_backward(roots, seeds, retain_graph, create_graph, targets=None):
    """Propagate ``seeds`` from ``roots`` and return the cotangents that reach leaves.

    With ``targets`` (grad()), the cotangent arriving at a target node is kept in the
    result as well, and nodes that lead to no target are skipped.
    Returns a dict {leaf Tensor or target node: (cotangent, owned)}.
    """

    order = toposort([root._node for root in roots])
    needed = _nodes_leading_to(order, targets) if targets is not None else None

    pending = {}  # node or leaf -> [cotangent, owned]; owned buffers may be added into in place
    for root, seed in zip(roots, seeds):
        _accumulate(pending, root._node, seed, create_graph)
    results = {}

    with set_grad_enabled(create_graph):
        for node in reversed(order):
            entry = pending.pop(node, None)
            if entry is None:
                continue
            cotangent = _densify(entry[0], node)
            if targets is not None and node in targets:
                results[node] = (cotangent, False)
            if needed is not None and node not in needed:
                continue
            if create_graph and node.once_differentiable:
                raise RuntimeError(
                    f"{node.display_name()} is once-differentiable: its backward is a fused "
                    "kernel without its own VJP, so create_graph=True cannot pass through it."
                )

            if state.anomaly_enabled:
                input_grads = _vjp_in_anomaly_mode(node, cotangent)
            else:
                input_grads = node.vjp(cotangent)
            if len(input_grads) != len(node.parents):
                raise RuntimeError(
                    f"{node.display_name()}.vjp returned {len(input_grads)} gradients for "
                    f"{len(node.parents)} inputs"
                )
            if state.anomaly_enabled:
                check_backward_nan(node, input_grads)
            if not retain_graph:
                node.release()

            for parent, input_grad, (shape, dtype) in zip(node.parents, input_grads, node.input_meta):
                if parent is None or input_grad is None:
                    continue
                if needed is not None and not (parent in needed or parent in targets):
                    continue
                if not isinstance(input_grad, SparseGrad):
                    input_grad = _fit_to_input(input_grad, shape, dtype)
                _accumulate(pending, parent, input_grad, create_graph)

    for key, (value, owned) in pending.items():
        if isinstance(key, Tensor) or (targets is not None and key in targets):
            results[key] = (value, owned)
    return results


def _vjp_in_anomaly_mode(node, cotangent):
    state.in_backward = True
    try:
        return node.vjp(cotangent)
    finally:
        state.in_backward = False


def _nodes_leading_to(order, targets):
    """Return the set of nodes in ``order`` from which some target can be reached."""
    needed = set()
    for node in order:  # parents come first, so their membership is already known
        for parent in node.parents:
            if parent is not None and (parent in targets or parent in needed):
                needed.add(node)
                break
    return needed


def _fit_to_input(grad, shape, dtype):
    """Sum ``grad`` over the axes broadcasting added, and cast it to the input's dtype."""

    if grad.data.shape != shape:
        grad = ops.sum_to_shape(grad, shape)
    if grad.data.dtype != dtype:
        grad = ops.astype(grad, dtype)
    return grad


def _accumulate(pending, key, grad, create_graph):
    entry = pending.get(key)
    if entry is None:
        pending[key] = [grad, False]
        return
    entry[0] = _add_owned(entry, grad, create_graph, key)


def _add_owned(entry, grad, create_graph, key):
    """Add ``grad`` into a pending entry, in place when the entry owns its buffer."""

    current, owned = entry
    if create_graph:
        return _densify(current, key) + _densify(grad, key)
    if isinstance(grad, SparseGrad):
        if not owned:
            current = _densify(current, key, copy=True)
            entry[1] = True
        grad.add_into(current.data)
        return current
    if owned:
        np.add(current.data, grad.data, out=current.data)
        return current
    if isinstance(current, SparseGrad):
        buffer = _densify(current, key, copy=True)
        np.add(buffer.data, grad.data, out=buffer.data)
    else:
        buffer = Tensor._make(np.asarray(current.data + grad.data), None, False)
    entry[1] = True
    return buffer


def _densify(value, key, copy=False):
    """Return ``value`` as a dense Tensor of ``key``'s shape (key: node or leaf Tensor)."""

    if value is None:
        return None
    if isinstance(value, Tensor):
        return Tensor._make(value.data.copy(), None, False) if copy else value
    shape, dtype = _shape_dtype(key)
    buffer = np.zeros(shape, dtype=dtype)
    value.add_into(buffer)
    return Tensor._make(buffer, None, False)


def _shape_dtype(key):
    if isinstance(key, Op):
        return key.output_meta
    return key.data.shape, key.data.dtype


def _add(a, b, create_graph):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _seed_cotangent(output, grad, caller):
    """Return the starting cotangent for ``output`` as a Tensor of its shape and dtype."""

    if grad is None:
        if output.data.size != 1:
            raise ValueError(
                f"{caller}: the output has shape {output.shape}, and a gradient can be created "
                "implicitly only for a scalar output. Pass the cotangent explicitly "
                "(for example out.backward(grad)) or reduce the output first (out.sum())."
            )
        return Tensor._make(np.ones(output.shape, dtype=output.dtype), None, False)
    if not isinstance(grad, Tensor):
        grad = Tensor(np.asarray(grad, dtype=output.dtype))
    if grad.shape != output.shape:
        raise ValueError(f"{caller}: the cotangent has shape {grad.shape}, expected the output's {output.shape}")
    if grad.dtype != output.dtype:

        grad = ops.astype(grad, output.dtype)
    return grad


def _accumulate_leaf_grad(leaf, value):
    """Add a gradient (ndarray or SparseGrad) into ``leaf.grad``, in the leaf's dtype."""
    if leaf.grad is None:
        if isinstance(value, SparseGrad):
            leaf.grad = np.zeros(leaf.data.shape, dtype=leaf.data.dtype)
            value.add_into(leaf.grad)
        else:
            leaf.grad = np.array(value, dtype=leaf.data.dtype, copy=True)
        return
    if isinstance(value, SparseGrad):
        value.add_into(leaf.grad)
    else:
        leaf.grad += value
