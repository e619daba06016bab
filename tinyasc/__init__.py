"""tinyasc: device-robust low-complexity acoustic scene classification, from scratch.

A re-implementation of "Residual Normalization for device-imbalanced acoustic scene
classification" (Kim et al., DCASE2021 Task 1A) on a small NumPy autograd with Numba
kernels. The public names follow PyTorch: `tinyasc.Tensor`, `tinyasc.functional`,
`tinyasc.nn`, `tinyasc.optim`, `tinyasc.no_grad`.
"""
# Importing tinyasc changes nothing in the process: the thread and allocator settings the
# kernels are fastest with are applied by the command line (tinyasc.kernels.configure_runtime).
from tinyasc.autograd import (Function, Tensor, cat, enable_grad, is_grad_enabled, no_grad, ones,
                              set_grad_enabled, stack, tensor, where, zeros)
from tinyasc.random import manual_seed
from tinyasc import functional, nn, optim  # noqa: E402  (need Tensor defined first)

__version__ = "0.1.0"

# Loaded on first use, so `import tinyasc as ta` stays light and `ta.models.BCResNetMod`,
# `ta.audio.log_mel` still work without importing them by name.
_SUBMODULES = ("audio", "compress", "data", "models", "train", "translator")


def __getattr__(name):
    if name in _SUBMODULES:
        import importlib

        module = importlib.import_module(f"tinyasc.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tinyasc' has no attribute {name!r}")

__all__ = ["Function", "Tensor", "cat", "enable_grad", "functional", "is_grad_enabled",
           "manual_seed", "nn", "no_grad", "ones", "optim", "set_grad_enabled", "stack", "tensor",
           "where", "zeros"]
