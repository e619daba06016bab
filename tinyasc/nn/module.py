"""Module and Parameter: the containers that give a model names, modes and a state dict.

A Module registers its Parameters, buffers (running statistics: plain NumPy arrays)
and sub-modules by attribute assignment, so `state_dict()` can name every array with a
dotted path — the names a PyTorch module of the same structure would use.
"""
from collections import OrderedDict

import numpy as np

from tinyasc.autograd.tensor import Tensor


class Parameter(Tensor):
    """A tensor that is a model weight: requires grad by default, found by `parameters()`."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class _HookHandle:
    def __init__(self, hooks, key):
        self.hooks, self.key = hooks, key

    def remove(self):
        self.hooks.pop(self.key, None)


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -------------------------------------------------------------- registry
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call Module.__init__() before assigning attributes")
        if name in self._buffers and (value is None or isinstance(value, np.ndarray)):
            self._set_buffer(name, value)
            return
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """A named array that is state but not a parameter (e.g. BatchNorm's running mean)."""
        object.__setattr__(self, name, array)
        self._buffers[name] = array

    def _set_buffer(self, name, array):
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def add_module(self, name, module):
        setattr(self, name, module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        for hook in list(self.__dict__.get("_forward_hooks", {}).values()):
            hook(self, args, output)
        return output

    def register_forward_hook(self, hook):
        """Call hook(module, inputs, output) after every forward of this module (PyTorch's
        semantics, without returning a replacement output); returns a handle whose remove()
        takes the hook off again. tinyasc.compress.complexity counts MACs this way."""
        hooks = self.__dict__.setdefault("_forward_hooks", {})
        key = max(hooks, default=-1) + 1
        hooks[key] = hook
        return _HookHandle(hooks, key)

    # ------------------------------------------------------------- traversal
    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            kids = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(kids))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix="", recurse=True):
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        seen = set()
        for name, module in modules:
            for key, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{name}.{key}" if name else key), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix=""):
        for name, module in self.named_modules(prefix):
            for key, b in module._buffers.items():
                if b is not None:
                    yield (f"{name}.{key}" if name else key), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    # ----------------------------------------------------------------- modes
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to_dtype(self, dtype):
        """Cast parameters and floating buffers (float64 for gradient checks)."""
        dtype = np.dtype(dtype)
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        for module in self.modules():
            for key, b in list(module._buffers.items()):
                if b is not None and b.dtype.kind == "f":
                    module._set_buffer(key, b.astype(dtype))
        return self

    def double(self):
        return self.to_dtype(np.float64)

    def float(self):
        return self.to_dtype(np.float32)

    # ------------------------------------------------------------ state dict
    def state_dict(self):
        """Name -> array for every parameter and buffer, in registration order."""
        state = OrderedDict()
        for name, module in self.named_modules():
            for key, p in module._parameters.items():
                if p is not None:
                    state[f"{name}.{key}" if name else key] = p.data
            for key, b in module._buffers.items():
                if b is not None:
                    state[f"{name}.{key}" if name else key] = b
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays in by name; with strict, refuse missing or unexpected keys.

        A shape mismatch is always an error; the message names every offending key.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        mismatched = [f"{k} (checkpoint {tuple(np.shape(state_dict[k]))}, model {own[k].shape})"
                      for k in own if k in state_dict and tuple(np.shape(state_dict[k])) != own[k].shape]
        if mismatched:
            problems.append("shape mismatch: " + ", ".join(mismatched))
        if problems:
            raise ValueError(f"cannot load state dict into {type(self).__name__}: " + "; ".join(problems))
        for key, target in own.items():
            if key in state_dict:
                value = state_dict[key]
                value = value.data if isinstance(value, Tensor) else np.asarray(value)
                np.copyto(target, value, casting="unsafe")
        return missing, unexpected

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


class ModuleList(Module):
    """Sub-modules named 0, 1, 2, ... in order; indexable and iterable."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """A ModuleList whose forward feeds each module's output to the next."""

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x
