"""Graph nodes: the ``Op`` base class that every differentiable operation extends.

An op is one forward and its vector-Jacobian product (VJP):

* ``forward(*arrays)`` computes on numpy arrays and names what it keeps for the backward
  pass with ``save_input``, ``save_output`` and ``save_array``;
* ``vjp(g)`` takes the upstream cotangent ``g`` (a Tensor) and returns one gradient per
  input, ``None`` where an input gets none. It is written with Tensor ops, so the engine
  can record it again when ``create_graph=True`` requests higher derivatives.
* ``vjp_arrays(g)`` is the same VJP on ndarrays, which the engine calls when no graph of
  the backward pass is requested (the common case). The default wraps ``g`` in a Tensor
  and calls ``vjp``; an op may override it with plain numpy code to skip building Tensor
  wrappers, and must then return the same values as ``vjp``.

The engine, not the op, sums gradients back to each input's broadcast shape, casts them to
the input's dtype and accumulates them, so a VJP may return a gradient of the output's shape.

A node keeps references to its inputs' nodes (``parents``) but never to its output
Tensor, so a graph is freed by reference counting alone as soon as its output goes away.
Every recorded node gets a ``sequence`` number from one global counter. A node's inputs
exist before the node does, so parents always have smaller numbers than their consumers,
and the engine orders the backward pass by these numbers.
"""
import itertools
import traceback

import numpy as np

from .grad_mode import state

# Set by minireparam.tensor once Tensor exists (tensor.py imports this module first).
Tensor = None

# Stamps each recorded node with its creation order (see ``Op.sequence``).
_sequence_counter = itertools.count(1)


class GraphReleasedError(RuntimeError):
    """Raised when a backward pass needs saved values that an earlier pass freed."""


class InplaceModifiedError(RuntimeError):
    """Raised when a saved value was changed in place after the op saved it."""


class Op:
    """Base class of graph nodes. Subclasses define ``forward`` and ``vjp``.

    Class attributes a subclass may set:
        name: the op's name in errors, reprs and DOT graphs (defaults to the class name).
        once_differentiable: True when ``vjp`` is not written with differentiable ops,
            so ``create_graph=True`` through this op raises instead of giving wrong values.
        is_view: True when the output may share memory with the first input
            (reshape, transpose, basic slicing); the two then share a version counter.
        vjp_arrays_in_vjp_order: False when ``vjp_arrays`` evaluates the VJP with other
            numpy operations than ``vjp`` (a closed form on saved arrays against Tensor
            ops), so the two agree to rounding rather than bit for bit.
    """

    name = None
    once_differentiable = False
    is_view = False
    vjp_arrays_in_vjp_order = True

    # Filled by ``apply`` when the op is recorded:
    #   parents:     tuple with one entry per input: the input's node, the input Tensor
    #                itself when it is a leaf that requires grad, or None.
    #   input_meta:  tuple of (shape, dtype) per input, to fit each gradient to its input.
    #   _saved:      dict name -> (kind, array, edge, version box, version) with kind
    #                "input", "output" or "array". It is None once the graph is released.
    #   output_meta: (shape, dtype) of the output, for the engine and DOT export.
    #   sequence:    creation order; larger than the sequence of every parent node.
    #   created_at:  the user-code line that called the op (anomaly mode only).
    parents = ()
    input_meta = ()
    output_meta = None
    sequence = 0
    created_at = None

    _saved = None
    _inputs = None  # the input Tensors, set only while a recorded forward runs
    _output_names = ()  # names given to save_output; apply stores the output under them

    # -- saving values for the backward pass ---------------------------------------------

    def save_input(self, name, index):
        """Keep input ``index`` (as a Tensor linked to its graph) under ``name``."""
        if self._inputs is None:
            return
        tensor = self._inputs[index]
        version_box = tensor._version
        self._saved[name] = ("input", tensor.data, self.parents[index], version_box, version_box[0])

    def save_output(self, name):
        """Keep the op's output under ``name``; ``apply`` fills in the array."""
        if self._inputs is None:
            return
        self._output_names = self._output_names + (name,)

    def save_array(self, name, array):
        """Keep a constant array (a mask, indices, a shape) under ``name``."""
        if self._inputs is None:
            return
        self._saved[name] = ("array", array, None, None, None)

    def saved(self, name):
        """Return a saved value as a Tensor, after checking it is intact.

        Saved inputs and outputs come back linked to the graph (so the VJP can be
        differentiated again); saved arrays come back as constants.
        """

        kind, data, edge, version_box, version = self._saved_entry(name)
        if kind == "array":
            return Tensor._make(data, None, False)
        if not state.grad_enabled:
            return Tensor._make(data, None, False)
        if kind == "output":
            return Tensor._make(data, self, True)
        if edge is None:
            return Tensor._make(data, None, False)
        if isinstance(edge, Op):
            return Tensor._make(data, edge, True)
        return edge  # a leaf Tensor that requires grad: gradients must reach it

    def saved_data(self, name):
        """Return a saved value as a plain ndarray, after the same checks as ``saved``.

        For ``vjp_arrays``, which runs only when the backward pass is not recorded, so the
        value needs no link to the graph.
        """
        return self._saved_entry(name)[1]

    def _saved_entry(self, name):
        """Return the entry saved under ``name``, raising if it was freed or modified in place."""
        saved = self._saved
        if saved is None:
            raise GraphReleasedError(
                f"{self.display_name()}: the values this op saved for backward were freed "
                "by an earlier backward pass. Pass retain_graph=True to the first "
                "backward() or grad() call to backpropagate through the graph again."
            )
        entry = saved[name]
        version_box = entry[3]
        if version_box is not None and version_box[0] != entry[4]:
            self._check_version(name, version_box, entry[4])
        return entry

    def _check_version(self, name, version_box, version):
        if version_box[0] != version:
            raise InplaceModifiedError(
                f"{self.display_name()}: the value saved as '{name}' was modified in place "
                f"after the op saved it (version {version}, now {version_box[0]}). Compute it "
                "out of place (for example y = y + 1 instead of y += 1), or clone it first."
            )

    def release(self):
        """Free the saved values; a later backward through this node raises."""
        self._saved = None

    # -- the two halves of an op ---------------------------------------------------------

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def vjp(self, g):
        raise NotImplementedError(f"{type(self).__name__} does not define vjp")

    def vjp_arrays(self, g):
        """Return the VJP for an ndarray cotangent ``g``: ndarrays, SparseGrads or None.

        The engine calls this instead of ``vjp`` when the backward pass is not recorded
        (``create_graph=False``). This default runs ``vjp`` on a Tensor and unwraps the
        results. An op overrides it to compute on arrays directly (reading saved values
        with ``saved_data``); the override must return the same values as ``vjp``.
        """
        grads = self.vjp(Tensor._make(g, None, False))
        return tuple([grad.data if isinstance(grad, Tensor) else grad for grad in grads])

    # -- display -------------------------------------------------------------------------

    def display_name(self):
        return self.name or type(self).__name__

    def __repr__(self):
        return f"<{self.display_name()}>"

    # -- recording -----------------------------------------------------------------------

    def apply(self, *inputs):
        """Run the forward on ``inputs`` (Tensors) and record this node if needed."""
        if state.anomaly_enabled and not state.in_backward:
            return self._apply_with_anomaly_checks(inputs)
        if state.grad_enabled:
            for tensor in inputs:
                if tensor.requires_grad:
                    return self._record(inputs)

        # Not recorded: no node, nothing saved.
        out = self.forward(*[t.data for t in inputs])
        if type(out) is not np.ndarray:  # numpy reductions return scalars for 0-d results
            out = np.asarray(out)
        return Tensor._make(out, None, False)

    def _record(self, inputs):
        """Run the forward while saving values, link this node into the graph, wrap the output."""
        # One pass over the inputs collects everything the backward pass needs from them.
        parents, arrays, input_meta = [], [], []
        for tensor in inputs:
            data = tensor.data
            arrays.append(data)
            input_meta.append((data.shape, data.dtype))
            parents.append(_edge_of(tensor))
        self.parents = tuple(parents)  # set before forward, because save_input reads it
        self.input_meta = tuple(input_meta)
        self.sequence = next(_sequence_counter)

        self._saved = {}
        self._inputs = inputs
        out = self.forward(*arrays)
        self._inputs = None
        if type(out) is not np.ndarray:
            out = np.asarray(out)

        self.output_meta = (out.shape, out.dtype)
        if self.is_view and _shares_memory(out, arrays[0]):
            version_box = inputs[0]._version  # a view: writes through either one change both
        else:
            version_box = [0]
        for name in self._output_names:
            self._saved[name] = ("output", out, None, version_box, version_box[0])
        return Tensor._make(out, self, True, version_box)

    def _apply_with_anomaly_checks(self, inputs):
        """``apply`` in anomaly mode: remember the calling line and raise on new NaN."""
        recording = state.grad_enabled and any(t.requires_grad for t in inputs)
        if recording:
            result = self._record(inputs)
        else:
            out = self.forward(*[t.data for t in inputs])
            result = Tensor._make(out if type(out) is np.ndarray else np.asarray(out), None, False)
        self.created_at = _user_frame()
        _check_forward_nan(self, inputs, result.data)
        return result


def _edge_of(tensor):
    """Return what a node links to for ``tensor``: its node, itself if a leaf, or None."""
    if tensor._node is not None:
        return tensor._node
    if tensor.requires_grad:
        return tensor
    return None


def _shares_memory(out, data):
    return out.base is not None and np.may_share_memory(out, data)


_PACKAGE_DIR = __file__.rsplit("/autograd/", 1)[0]


def _user_frame():
    """Return 'file:line: code' of the innermost caller outside the minireparam package."""
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith(_PACKAGE_DIR) and "contextlib" not in frame.filename:
            return f"{frame.filename}:{frame.lineno}: {frame.line}"
    return "<unknown>"


def _has_nan(array):
    return array.dtype.kind == "f" and bool(np.isnan(array).any())


def _check_forward_nan(op, inputs, out):
    if _has_nan(out) and not any(_has_nan(t.data) for t in inputs):
        shapes = ", ".join(str(t.shape) for t in inputs)
        raise FloatingPointError(
            f"detect_anomaly: the forward of {op.display_name()} produced NaN from inputs of "
            f"shapes ({shapes}) without NaN. The op was called at {op.created_at}"
        )


def check_backward_nan(op, grads):
    """Raise if a VJP produced NaN (anomaly mode only). ``grads`` are Tensors or ndarrays."""
    for index, grad in enumerate(grads):
        if isinstance(grad, Tensor):
            grad = grad.data
        if not isinstance(grad, np.ndarray):  # None, or a SparseGrad
            continue
        if _has_nan(grad):
            shapes = ", ".join(str(meta[0]) for meta in op.input_meta)
            raise FloatingPointError(
                f"detect_anomaly: the backward of {op.display_name()} produced NaN in the "
                f"gradient of input {index} (input shapes: {shapes}). The op was created at "
                f"{op.created_at or '<created before detect_anomaly was enabled>'}"
            )
