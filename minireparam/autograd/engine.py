"""The backward pass: call each node's VJP in reverse creation order, accumulate cotangents.

``backward`` accumulates gradients into the leaves' ``.grad``; ``grad`` returns them as
Tensors and leaves ``.grad`` alone. Both run the same loop in ``_run_backward``:

1. keep the nodes that have received a cotangent in a heap keyed by their ``sequence``
   (creation order) and always take the newest one next. Every consumer of a node was
   created after it, so by then all of them have added their cotangents. The loop needs
   no recursion (a graph 100,000 nodes deep is fine), and the order depends only on the
   order the ops ran in, so float sums come out the same on every run;
2. call the node's VJP: ``vjp_arrays`` on plain ndarrays normally, or ``vjp`` on Tensors
   with recording on when ``create_graph=True`` asks for a differentiable backward;
3. fit each returned gradient to its input (sum over broadcast axes, cast to the input's
   dtype; skipped when it already fits) and add it into that input's pending cotangent;
4. release each node's saved values after its VJP unless ``retain_graph`` is set.
"""
import heapq

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
        elif isinstance(self.index, np.ndarray) and self.index.dtype.kind in "iu" and buffer.ndim >= 2:
            _scatter_add_rows(buffer, self.index, self.values)  # an embedding lookup's gradient
        else:
            np.add.at(buffer, self.index, self.values)


def _scatter_add_rows(buffer, rows, values):
    """Add ``values[k]`` into ``buffer[rows[k]]`` for every k, summing repeated rows.

    Args:
        buffer: (N, ...) array, updated in place.
        rows: integer array of any shape, each in [-N, N).
        values: rows.shape + buffer.shape[1:].

    np.add.at does the same one row at a time. Sorting the rows once and summing each run
    of equal rows with np.add.reduceat is about six times faster for an embedding gradient
    of 2048 tokens over 96 rows of 128.
    """
    flat = rows.reshape(-1)
    if flat.size == 0:
        return
    flat = np.where(flat < 0, flat + buffer.shape[0], flat)
    values = values.reshape((flat.size,) + buffer.shape[1:])
    order = np.argsort(flat, kind="stable")
    sorted_rows = flat[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_rows[1:] != sorted_rows[:-1])))
    buffer[sorted_rows[starts]] += np.add.reduceat(values[order], starts, axis=0)


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
    seed = _seed_cotangent(output, grad, "backward()").data
    if output._node is None:  # a leaf: d(output)/d(output) = 1
        _accumulate_leaf_grad(output, seed)
        return

    reached = _run_backward([output], [seed], retain_graph=retain_graph, create_graph=False)
    for leaf, value in reached.items():
        _accumulate_leaf_grad(leaf, value)


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

    # Cotangents are Tensors when the backward is recorded and ndarrays otherwise.
    with set_grad_enabled(create_graph):
        seeds = [_seed_cotangent(out, g, "grad()") for out, g in zip(outputs, grad_outputs)]
    if not create_graph:
        seeds = [seed.data for seed in seeds]

    roots, root_seeds, results = [], [], {}
    for out, seed in zip(outputs, seeds):
        if not out.requires_grad:
            continue
        if out._node is None:  # an output that is itself an input: its seed is its gradient
            results[out] = _add(results.get(out), seed)
        else:
            roots.append(out)
            root_seeds.append(seed)

    targets = {_key_of(tensor) for tensor in inputs}
    reached = _run_backward(roots, root_seeds, retain_graph, create_graph, targets) if roots else {}

    gradients = []
    for index, tensor in enumerate(inputs):
        key = _key_of(tensor)
        from_graph = _densify(reached[key], key, create_graph) if key in reached else None
        value = _add(results.get(tensor), from_graph)
        if value is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad(): input {index} (shape {tensor.shape}) was not used to compute the "
                    "outputs, so it has no gradient. Pass allow_unused=True to get None for it."
                )
            gradients.append(None)
        elif create_graph:
            gradients.append(value)
        else:
            gradients.append(Tensor._make(np.asarray(value), None, False))
    return gradients[0] if single_input else tuple(gradients)


def _key_of(tensor):
    """Return the key the engine files ``tensor``'s cotangent under: its node, or itself if a leaf."""
    return tensor._node if tensor._node is not None else tensor


def _run_backward(roots, seeds, retain_graph, create_graph, targets=None):
    """Propagate ``seeds`` from ``roots`` and return the cotangents that reach leaves.

    With ``targets`` (grad()), the cotangent arriving at a target node is kept in the
    result as well, and nodes that lead to no target are skipped.
    Returns a dict {leaf Tensor or target node: cotangent (ndarray, Tensor or SparseGrad)}.
    """

    needed = None
    if targets is not None:
        needed = _nodes_leading_to(toposort([root._node for root in roots]), targets)

    pending = {}  # node or leaf Tensor -> the sum of the cotangents it has received so far
    owned = set()  # keys whose pending array was allocated here, so it may be added into in place
    ready = []  # heap of (-sequence, node) for the nodes in ``pending``: newest first
    for root, seed in zip(roots, seeds):
        node = root._node
        if node in pending:
            _add_to_pending(pending, owned, node, seed, create_graph)
        else:
            pending[node] = seed
            heapq.heappush(ready, (-node.sequence, node))
    results = {}

    with set_grad_enabled(create_graph):
        while ready:
            node = heapq.heappop(ready)[1]
            cotangent = pending.pop(node)
            if isinstance(cotangent, SparseGrad):
                cotangent = _densify(cotangent, node, create_graph)
            if targets is not None and node in targets:
                results[node] = cotangent
            if needed is not None and node not in needed:
                continue

            if create_graph or state.anomaly_enabled:
                input_grads = _call_vjp_checked(node, cotangent, create_graph)
            else:
                input_grads = node.vjp_arrays(cotangent)  # the common case: plain ndarrays
            if len(input_grads) != len(node.parents):
                raise RuntimeError(
                    f"{node.display_name()}.vjp returned {len(input_grads)} gradients for "
                    f"{len(node.parents)} inputs"
                )
            if not retain_graph:
                node.release()

            for parent, input_grad, (shape, dtype) in zip(node.parents, input_grads, node.input_meta):
                if parent is None or input_grad is None:
                    continue
                if needed is not None and not (parent in needed or parent in targets):
                    continue
                # Most gradients are ndarrays that already fit their input, so test that cheaply
                # (dtype identity first) before calling the general fitting code.
                if create_graph or type(input_grad) is not np.ndarray or input_grad.shape != shape or (
                    input_grad.dtype is not dtype
                ):
                    input_grad = _fit_to_input(input_grad, shape, dtype, create_graph)
                if parent in pending:
                    _add_to_pending(pending, owned, parent, input_grad, create_graph)
                else:  # the first cotangent for ``parent``: keep it as it is, without a copy
                    pending[parent] = input_grad
                    if isinstance(parent, Op):
                        heapq.heappush(ready, (-parent.sequence, parent))

    # Every node taken from the heap left ``pending``, so what remains are the leaves.
    results.update(pending)
    return results


def _call_vjp_checked(node, cotangent, create_graph):
    """Run ``node``'s VJP with the checks of create_graph and anomaly mode."""

    if create_graph:
        if node.once_differentiable:
            hint = getattr(node, "create_graph_hint", None)
            raise RuntimeError(
                f"{node.display_name()} is once-differentiable: its backward is a fused "
                "kernel without its own VJP, so create_graph=True cannot pass through it."
                + (f" {hint}" if hint else "")
            )
        vjp = node.vjp  # on Tensors, recorded, so the gradients are differentiable again
    else:
        vjp = node.vjp_arrays
    if not state.anomaly_enabled:
        return vjp(cotangent)

    input_grads = _vjp_in_anomaly_mode(vjp, cotangent)
    check_backward_nan(node, input_grads)
    return input_grads


def _vjp_in_anomaly_mode(vjp, cotangent):
    state.in_backward = True
    try:
        return vjp(cotangent)
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


def _fit_to_input(grad, shape, dtype, create_graph):
    """Sum ``grad`` over the axes broadcasting added, and cast it to the input's dtype.

    A gradient that already has the input's shape and dtype (the common case) is
    returned as it is.
    """

    if isinstance(grad, SparseGrad):  # built for its input's shape and dtype already
        return grad
    if create_graph:
        if grad.data.shape != shape:
            grad = ops.sum_to_shape(grad, shape)
        if grad.data.dtype != dtype:
            grad = ops.astype(grad, dtype)
        return grad

    if type(grad) is not np.ndarray:  # numpy returns scalars for some 0-d results
        grad = np.asarray(grad)
    if grad.shape != shape:
        grad = ops.shape.sum_to_shape_array(grad, shape)
    if grad.dtype is not dtype and grad.dtype != dtype:  # the identity test settles most cases
        grad = grad.astype(dtype)
    return grad


def _add_to_pending(pending, owned, key, grad, create_graph):
    """Add ``grad`` into the cotangent already pending for ``key`` (a node or a leaf Tensor)."""

    current = pending[key]
    if create_graph:  # recorded Tensor addition, so the sum stays differentiable
        pending[key] = _densify(current, key, True) + _densify(grad, key, True)
        return
    if key not in owned:
        # ``current`` may be shared (an Add's VJP hands the same array to both inputs),
        # so sum into a new array that this pass owns.
        current = _densify(current, key, False, copy=True)
        pending[key] = current
        owned.add(key)
    if isinstance(grad, SparseGrad):
        grad.add_into(current)
    else:
        np.add(current, grad, out=current)


def _densify(value, key, create_graph, copy=False):
    """Return ``value`` as a dense cotangent of ``key``'s shape (key: node or leaf Tensor).

    Returns an ndarray, or a Tensor when ``create_graph`` is set.
    """

    if isinstance(value, SparseGrad):
        shape, dtype = _shape_dtype(key)
        dense = np.zeros(shape, dtype=dtype)
        value.add_into(dense)
    elif copy:
        dense = np.array(value.data if create_graph else value, copy=True)
    else:
        return value
    return Tensor._make(dense, None, False) if create_graph else dense


def _shape_dtype(key):
    if isinstance(key, Op):
        return key.output_meta
    return key.data.shape, key.data.dtype


def _add(a, b):
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
