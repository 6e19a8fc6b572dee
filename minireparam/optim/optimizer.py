"""The optimizer base class: parameter groups, per-parameter state and a flat update.

Each parameter group keeps its state (momentum, Adam's moments, ...) in one flat buffer
per state name and dtype. ``optimizer.state[p][name]`` is a view of the slice that
belongs to ``p``, so the state reads like PyTorch's while a step updates every
parameter of the group with a few whole-buffer numpy operations:

1. gather the gradients (and, when the rule needs them, the values) of the parameters
   that have a gradient into one flat array each;
2. update the flat state buffers and compute the flat change of the parameters;
3. add each parameter's slice of that change into its ``.data`` in place, and bump its
   version counter, so a graph that saved the old value raises instead of using it.

Parameters whose ``grad`` is None are skipped, and their state is left unchanged,
as in PyTorch. ``state_dict`` has PyTorch's layout: {"state": {index: {name: value}},
"param_groups": [{hyperparameters..., "params": [indices]}]}.
"""
import numpy as np

from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import FLOAT_DTYPES, Tensor


class _Required:
    """Marks a hyperparameter that has no default and must be given."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class: subclasses set ``state_names`` and implement ``_update(group, chunk)``.

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups) with a "params"
            entry and optional per-group hyperparameters.
        defaults: default hyperparameters of every group.
    """

    state_names = ()       # the flat buffers of per-parameter state
    needs_values = False   # whether _update reads the parameters' current values

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        self._stores = {}
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, got a single Tensor; "
                "pass [tensor] or module.parameters()"
            )
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # -- groups --------------------------------------------------------------------------

    def add_param_group(self, param_group):
        """Add a group of parameters with its own hyperparameters (defaults fill the rest)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{type(self).__name__}.add_param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise KeyError(f"{type(self).__name__}.add_param_group: the group has no 'params' entry")
        params = [params] if isinstance(params, Tensor) else list(params)
        for index, param in enumerate(params):
            _check_parameter(self, param, index)
        known = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in known for p in params):
            raise ValueError(f"{type(self).__name__}: a parameter appears twice (in one group or in two groups)")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"{type(self).__name__}: parameter group needs a value for '{name}'")
            group.setdefault(name, default)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Clear the gradients of every parameter (to None, or to zeros in place)."""
        for group in self.param_groups:
            for param in group["params"]:
                if set_to_none or param.grad is None:
                    param.grad = None
                else:
                    param.grad.fill(0)

    # -- the step ------------------------------------------------------------------------

    def step(self, closure=None):
        """Update every parameter that has a gradient; return the closure's loss, if given.

        Args:
            closure: a function that recomputes the loss (and its gradients) and returns it.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group_index, group in enumerate(self.param_groups):
                for chunk in self._chunks(group_index, group):
                    self._update(group, chunk)
                    chunk.finish()
        return loss

    def _update(self, group, chunk):
        raise NotImplementedError(f"{type(self).__name__} does not define _update")

    def _chunks(self, group_index, group):
        """Yield one _Chunk per dtype among the group's parameters that have a gradient."""
        by_dtype = {}
        for param in group["params"]:
            by_dtype.setdefault(param.data.dtype, []).append(param)
        for dtype, params in by_dtype.items():
            store = self._store(group_index, dtype, params)
            active = [index for index, param in enumerate(params) if param.grad is not None]
            if active:
                yield _Chunk(self, store, active)

    def _store(self, group_index, dtype, params):
        """Return the flat state of these parameters, rebuilding it when they changed."""
        key = (group_index, dtype)
        signature = tuple((id(p), p.data.shape) for p in params)
        store = self._stores.get(key)
        if store is None or store.signature != signature:
            store = _FlatStore(params, dtype, self.state_names, self.state)
            store.signature = signature
            self._stores[key] = store
        return store

    # -- state dicts ---------------------------------------------------------------------

    def state_dict(self):
        """Return {"state": {index: {name: value}}, "param_groups": [...]}, with arrays copied.

        Parameters are numbered across groups in order, as in PyTorch.
        """
        index_of = {}
        groups = []
        for group in self.param_groups:
            entry = {key: value for key, value in group.items() if key != "params"}
            entry["params"] = []
            for param in group["params"]:
                index_of[id(param)] = len(index_of)
                entry["params"].append(index_of[id(param)])
            groups.append(entry)
        state = {}
        for group in self.param_groups:
            for param in group["params"]:
                if param in self.state:
                    state[index_of[id(param)]] = {
                        name: value.copy() if isinstance(value, np.ndarray) else value
                        for name, value in self.state[param].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by ``state_dict`` (arrays are copied).

        Raises:
            ValueError: when the number of groups or of parameters per group differs, or a
                state array does not have its parameter's shape.
        """
        saved_groups = state_dict["param_groups"]
        name = type(self).__name__
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state has {len(saved_groups)} parameter groups, the optimizer "
                f"has {len(self.param_groups)}"
            )
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {index} has {len(saved['params'])} parameters in the state "
                    f"and {len(group['params'])} in the optimizer"
                )
        new_state = {}
        saved_state = state_dict["state"]
        for saved, group in zip(saved_groups, self.param_groups):
            for saved_index, param in zip(saved["params"], group["params"]):
                entry = saved_state.get(saved_index, saved_state.get(str(saved_index)))
                if entry is not None:
                    new_state[param] = {key: _state_value(name, key, value, param) for key, value in entry.items()}
        for saved, group in zip(saved_groups, self.param_groups):
            for key, value in saved.items():
                if key != "params":
                    group[key] = value
        self.state = new_state
        self._stores = {}


def _check_parameter(optimizer, param, index):
    if not isinstance(param, Tensor):
        raise TypeError(f"{type(optimizer).__name__}: parameter {index} is a {type(param).__name__}, not a Tensor")
    if param.data.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{type(optimizer).__name__}: parameter {index} has dtype {param.data.dtype}; only float32 and float64 can be optimized")
    if not param.is_leaf:
        raise ValueError(f"{type(optimizer).__name__}: parameter {index} is not a leaf tensor (it has a grad_fn)")


def _state_value(optimizer_name, key, value, param):
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray) and value.ndim > 0:
        if value.shape != param.data.shape:
            raise ValueError(
                f"{optimizer_name}.load_state_dict: state '{key}' has shape {value.shape}, but its parameter has "
                f"shape {param.data.shape}"
            )
        return value.astype(param.data.dtype, copy=True)
    if isinstance(value, np.ndarray):
        return value.item()
    return value


class _FlatStore:
    """One flat buffer per state name for the parameters of one group and dtype.

    Buffers are allocated on first use. ``state[p][name]`` of an initialized parameter is
    a view of its slice; slices of parameters without that state yet are zero.
    """

    def __init__(self, params, dtype, names, state):
        self.params = params
        self.dtype = dtype
        self.sizes = np.array([p.data.size for p in params], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.buffers = {}
        self._scratch = None
        for index, param in enumerate(params):
            entry = state.get(param, {})
            for name in names:
                if isinstance(entry.get(name), np.ndarray):
                    view = self.view(name, index)
                    view[...] = entry[name]
                    entry[name] = view

    def buffer(self, name):
        if name not in self.buffers:
            self.buffers[name] = np.zeros(int(self.offsets[-1]), dtype=self.dtype)
        return self.buffers[name]

    def scratch(self, size):
        """Return a flat work buffer of ``size`` elements, kept for the next step."""
        if self._scratch is None or self._scratch.size < size:
            self._scratch = np.empty(int(self.offsets[-1]), dtype=self.dtype)
        return self._scratch[:size]

    def view(self, name, index):
        start, stop = self.offsets[index], self.offsets[index + 1]
        return self.buffer(name)[start:stop].reshape(self.params[index].data.shape)


class _Chunk:
    """The parameters of one group and dtype that have a gradient in this step, as flat arrays."""

    def __init__(self, optimizer, store, active):
        self.state = optimizer.state
        self.store = store
        self.active = active
        self.params = [store.params[i] for i in active]
        self.full = len(active) == len(store.params)
        self.sizes = store.sizes[active]
        self.dtype = self.params[0].data.dtype
        self.grad = np.concatenate([np.asarray(p.grad, dtype=self.dtype).ravel() for p in self.params])
        self._value = None
        self._gathered = {}
        self._touched = set()
        for param in self.params:
            self.state.setdefault(param, {})

    # -- reading -------------------------------------------------------------------------

    def value(self):
        """Return the current parameter values, concatenated (computed once per step)."""
        if self._value is None:
            self._value = np.concatenate([p.data.ravel() for p in self.params])
        return self._value

    def buffer(self, name):
        """Return the flat state buffer ``name`` of the active parameters (finish() writes it back)."""
        if self.full:
            return self.store.buffer(name)
        if name not in self._gathered:
            flat = self.store.buffer(name)
            self._gathered[name] = np.concatenate([flat[self._slice(i)] for i in self.active])
        return self._gathered[name]

    def scratch(self):
        """Return a work buffer of the gradient's size and dtype, reused across steps."""
        return self.store.scratch(self.grad.size)

    def initialized(self, name):
        """Per active parameter: whether its state ``name`` exists already."""
        return np.array([name in self.state[p] for p in self.params])

    def per_element(self, values):
        """Expand one value per active parameter to one per element (a scalar when all are equal)."""
        values = np.asarray(values)
        if values.size and np.all(values == values.flat[0]):
            # A Python float, not a numpy float64 scalar: numpy would promote float32 updates
            # to float64 (and run them at half speed) for a float64 scalar.
            return float(values.flat[0])
        return np.repeat(values, self.sizes).astype(self.dtype)

    def increment_step(self):
        """Add 1 to each active parameter's "step" and return the new steps (float64 array)."""
        steps = []
        for param in self.params:
            entry = self.state[param]
            entry["step"] = float(entry.get("step", 0.0)) + 1.0
            steps.append(entry["step"])
        return np.asarray(steps, dtype=np.float64)

    def _slice(self, index):
        return slice(int(self.store.offsets[index]), int(self.store.offsets[index + 1]))

    # -- writing -------------------------------------------------------------------------

    def scale_params(self, factor):
        """Multiply every active parameter by ``factor`` in place (decoupled weight decay)."""
        for param in self.params:
            param.data *= factor
        self._value = None

    def add_to_params(self, delta):
        """Add the flat ``delta`` to the active parameters, slice by slice, in place."""
        offset = 0
        for param, size in zip(self.params, self.sizes):
            param.data += delta[offset:offset + size].reshape(param.data.shape)
            offset += size

    def finish(self):
        """Write gathered state back, point state entries at their views, bump versions."""
        for name, gathered in self._gathered.items():
            offset = 0
            for index, size in zip(self.active, self.sizes):
                self.store.buffers[name][self._slice(index)] = gathered[offset:offset + size]
                offset += size
        for index, param in zip(self.active, self.params):
            entry = self.state[param]
            for name in self.store.buffers:
                if name in entry or name in self._touched:
                    entry[name] = self.store.view(name, index)
            param._bump_version()

    def mark(self, *names):
        """Record that this step initialized or updated the state ``names`` of every active parameter."""
        self._touched.update(names)
