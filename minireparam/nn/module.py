"""Modules: containers of parameters, buffers and submodules, with PyTorch's API.

A ``Module`` registers every ``Parameter``, buffer and child ``Module`` assigned to one of
its attributes, in assignment order. Dotted names (``encoder.layers.0.weight``) come from
that tree, so ``state_dict`` keys match PyTorch's for the same layer structure.

``state_dict`` returns copies of the arrays (ndarrays), so a checkpoint taken before an
optimizer step keeps its values after the step.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from ..autograd.grad_mode import no_grad
from ..errors import ShapeError
from ..tensor import FLOAT_DTYPES, Tensor, as_array


class Parameter(Tensor):
    """A Tensor that a Module registers as a trainable parameter (``requires_grad=True``).

    Args:
        data: an ndarray, Tensor or nested list. An ndarray is wrapped without a copy.
        requires_grad: whether optimizers and backward should reach it (default True).
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        if data is None:
            data = np.zeros((0,), dtype=np.float32)
        super().__init__(as_array(data), requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of layers and models.

    Subclasses call ``super().__init__()`` first, then assign parameters and submodules
    as attributes, and define ``forward``. Calling the module runs ``forward``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- attribute registration ----------------------------------------------------------

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() ran: call super().__init__() "
                f"first in {type(self).__name__}.__init__"
            )
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
        elif name in self._buffers:
            self._buffers[name] = _buffer_value(value, name)
        elif name in self._parameters or name in self._modules:
            if value is not None:
                kind = "parameter" if name in self._parameters else "submodule"
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to {type(self).__name__}.{name}, which is a "
                    f"{kind}: assign a {'Parameter' if kind == 'parameter' else 'Module'} or None"
                )
            registry = self._parameters if name in self._parameters else self._modules
            registry[name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        """Remove ``name`` from every registry, so an attribute lives in exactly one."""
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent_buffers.discard(name)
        if name in self.__dict__:
            object.__delattr__(self, name)

    def __getattr__(self, name):
        # Only called when normal lookup fails: search the registries.
        for registry_name in ("_parameters", "_buffers", "_modules"):
            registry = self.__dict__.get(registry_name)
            if registry is not None and name in registry:
                return registry[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        names = set(super().__dir__())
        names.update(self._parameters, self._buffers, self._modules)
        return sorted(names)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter, or None for an absent optional one) under ``name``."""
        _check_attribute_name(self, name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"{type(self).__name__}.register_parameter({name!r}): expected a Parameter or None, "
                f"got {type(param).__name__}; wrap the array as nn.Parameter(array)"
            )
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, value, persistent=True):
        """Register a non-trainable array (for example a running statistic) under ``name``.

        Buffers are converted by ``to(dtype)`` (floating ones only) and, when
        ``persistent``, saved in ``state_dict``.
        """
        _check_attribute_name(self, name)
        self._forget(name)
        self._buffers[name] = _buffer_value(value, name)
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        """Register ``module`` (or None) as a child under ``name``."""
        _check_attribute_name(self, name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module({name!r}): expected a Module, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    # -- calling -------------------------------------------------------------------------

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- traversal -----------------------------------------------------------------------

    def named_modules(self, prefix="", memo=None, remove_duplicate=True):
        """Yield (dotted name, module) for this module and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            child_prefix = f"{prefix}.{name}" if prefix else name
            yield from child.named_modules(child_prefix, memo, remove_duplicate)

    def modules(self):
        for _name, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _name, child in self.named_children():
            yield child

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield (dotted name, Parameter); a parameter shared by two modules comes once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _name, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _name, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def _named_members(self, registry_name, prefix, recurse, remove_duplicate):
        seen = set()
        modules = self.named_modules(prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry_name).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def apply(self, function):
        """Call ``function(module)`` on every descendant and then on self; return self."""
        for child in self.children():
            child.apply(function)
        function(self)
        return self

    # -- modes and gradients -------------------------------------------------------------

    def train(self, mode=True):
        """Set training mode (dropout active) on this module and every descendant."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        """Set evaluation mode (dropout off); the same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's ``.grad`` (to None, or to zeros in place)."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad.fill(0)

    # -- dtype conversion ----------------------------------------------------------------

    def to(self, dtype):
        """Convert every floating parameter and buffer to ``dtype`` (float32 or float64), in place.

        Parameter objects keep their identity (an optimizer built earlier still refers
        to them); their ``.data`` and ``.grad`` arrays are replaced by converted copies.
        Returns self.
        """
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"{type(self).__name__}.to({dtype}): only float32 and float64 are supported")
        for module in self.modules():
            for param in module._parameters.values():
                if param is not None and param.data.dtype != dtype:
                    param.data = param.data.astype(dtype)
                    if param.grad is not None:
                        param.grad = param.grad.astype(dtype)
                    param._bump_version()
            for name, buffer in module._buffers.items():
                if buffer is not None and buffer.data.dtype.kind == "f" and buffer.data.dtype != dtype:
                    module._buffers[name] = Tensor(buffer.data.astype(dtype))
        return self

    def double(self):
        """Convert every floating parameter and buffer to float64 (for gradchecks and parity tests)."""
        return self.to(np.float64)

    def float(self):
        """Convert every floating parameter and buffer to float32."""
        return self.to(np.float32)

    # -- state dicts ---------------------------------------------------------------------

    def state_dict(self, prefix="", keep_vars=False):
        """Return an ordered dict {dotted name: array} of parameters and persistent buffers.

        The arrays are copies (ndarrays), unless ``keep_vars`` returns the Parameter and
        buffer Tensors themselves.
        """
        result = OrderedDict()
        for module_prefix, module in self.named_modules(prefix.rstrip(".")):
            for name, value in _module_state_items(module):
                key = f"{module_prefix}.{name}" if module_prefix else name
                result[key] = value if keep_vars else value.data.copy()
        return result

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from ``state_dict`` into the parameters and buffers, in place.

        Values may be ndarrays, Tensors or anything ``numpy.asarray`` accepts (a CPU
        ``torch.Tensor`` too). Each value is cast to the target's dtype.

        Args:
            state_dict: a mapping from dotted names to arrays.
            strict: when True, missing and unexpected keys are errors.

        Returns:
            IncompatibleKeys(missing_keys, unexpected_keys).

        Raises:
            KeyError: when ``strict`` and keys are missing or unexpected; the message lists
                every such key and every shape mismatch.
            ShapeError: when a shape differs (always, even with ``strict=False``); the
                message lists every mismatch.
        """
        targets = self.state_dict(keep_vars=True)
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        arrays, mismatched = {}, []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            array = _as_state_array(state_dict[key], key)
            if array.shape != target.data.shape:
                mismatched.append(f"{key}: checkpoint {array.shape}, model {target.data.shape}")
            arrays[key] = array

        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if problems:
            message = f"{type(self).__name__}.load_state_dict failed. " + ". ".join(problems) + "."
            raise (KeyError(message) if strict and (missing or unexpected) else ShapeError(message))

        with no_grad():
            for key, array in arrays.items():
                target = targets[key]
                np.copyto(target.data, array, casting="unsafe")
                target._bump_version()
        return IncompatibleKeys(missing, unexpected)

    # -- representation ------------------------------------------------------------------

    def extra_repr(self):
        """The text inside the parentheses of this module's repr (layers override it)."""
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, child in self._modules.items():
            child_text = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_text}")
        if not lines:
            return f"{type(self).__name__}()"
        if not self._modules and len(lines) == 1:
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _module_state_items(module):
    for name, param in module._parameters.items():
        if param is not None:
            yield name, param
    for name, buffer in module._buffers.items():
        if buffer is not None and name not in module._non_persistent_buffers:
            yield name, buffer


def _as_state_array(value, key):
    if isinstance(value, Tensor):
        return value.data
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"load_state_dict: the value for {key!r} cannot be converted to an array: {error}") from None


def _buffer_value(value, name):
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value
    return Tensor(np.asarray(value))


def _check_attribute_name(module, name):
    if not isinstance(name, str) or not name or "." in name:
        raise KeyError(f"{type(module).__name__}: invalid attribute name {name!r} (a non-empty string without dots)")


# -- containers ---------------------------------------------------------------------------


class Sequential(Module):
    """Modules applied one after another: ``Sequential(a, b)(x) == b(a(x))``.

    Children are named "0", "1", ... (or by the keys of one OrderedDict argument).
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[_list_index(index, len(items), "Sequential")][1]


class ModuleList(Module):
    """A list of modules registered as children "0", "1", ... (no forward of its own)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[_list_index(index, len(modules), "ModuleList")]

    def __setitem__(self, index, module):
        index = _list_index(index, len(self._modules), "ModuleList")
        self.add_module(str(index), module)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        for position, item in enumerate(modules):
            self.add_module(str(position), item)


class ModuleDict(Module):
    """A dict of modules registered as children under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            for name, module in dict(modules).items():
                self[name] = module

    def __getitem__(self, name):
        return self._modules[name]

    def __setitem__(self, name, module):
        self.add_module(name, module)

    def __delitem__(self, name):
        del self._modules[name]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, name):
        return name in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()


def _list_index(index, length, container):
    index = int(index)
    if not -length <= index < length:
        raise IndexError(f"{container}: index {index} is out of range for {length} modules")
    return index % length
