"""The engine: tensors, the graph they build, and the backward walk over it."""
from tinyasc.autograd.function import Function, profile
from tinyasc.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from tinyasc.autograd.tensor import Tensor, cat, ones, stack, tensor, where, zeros

__all__ = ["Function", "Tensor", "profile", "cat", "enable_grad", "is_grad_enabled", "no_grad", "ones",
           "set_grad_enabled", "stack", "tensor", "where", "zeros"]
