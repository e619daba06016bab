"""Activations and dropout as differentiable ops, with torch.nn.functional's names.

BC-ResNet-Mod (paper section 2.1) uses SiLU (swish) and channel dropout (`dropout2d`, rate 0.1 as
in section 3.1) in each BC-ResBlock's 1-D path, its ReLUs being fused into norm.py's ops; the device
translator (section 2.3) uses ReLU and leaky ReLU; log-softmax feeds the losses (loss.py) and
knowledge distillation (section 2.4). Elementwise NumPy, no kernels needed.
"""
import numpy as np

from tinyasc import random as ta_random
from tinyasc.autograd.function import Function


class ReLUFunction(Function):
    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)  # not x * mask: -inf * 0 would be nan

    def backward(self, grad):
        return grad * self.mask


def relu(input):
    return ReLUFunction.apply(input)


class LeakyReLUFunction(Function):
    def forward(self, x, negative_slope):
        self.slope = np.where(x > 0, 1, negative_slope).astype(x.dtype)
        return x * self.slope

    def backward(self, grad):
        return grad * self.slope


def leaky_relu(input, negative_slope=0.01):
    return LeakyReLUFunction.apply(input, negative_slope=float(negative_slope))


def _sigmoid(x):
    # exp of a non-positive number only, so no overflow for either sign.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class SigmoidFunction(Function):
    def forward(self, x):
        self.out = _sigmoid(x)
        return self.out

    def backward(self, grad):
        return grad * self.out * (1 - self.out)


def sigmoid(input):
    return SigmoidFunction.apply(input)


class TanhFunction(Function):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, grad):
        return grad * (1 - self.out * self.out)


def tanh(input):
    return TanhFunction.apply(input)


class SiLUFunction(Function):
    """x * sigmoid(x); d/dx = s * (1 + x * (1 - s))."""

    def forward(self, x):
        self.x, self.s = x, _sigmoid(x)
        return x * self.s

    def backward(self, grad):
        return grad * self.s * (1 + self.x * (1 - self.s))


def silu(input):
    return SiLUFunction.apply(input)


class SoftmaxFunction(Function):
    def forward(self, x, dim):
        self.dim = dim
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        self.out = e / e.sum(axis=dim, keepdims=True)
        return self.out

    def backward(self, grad):
        return self.out * (grad - (grad * self.out).sum(axis=self.dim, keepdims=True))


def softmax(input, dim):
    return SoftmaxFunction.apply(input, dim=dim)


def _log_softmax(x, dim):
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


class LogSoftmaxFunction(Function):
    def forward(self, x, dim):
        self.dim = dim
        self.out = _log_softmax(x, dim)
        return self.out

    def backward(self, grad):
        return grad - np.exp(self.out) * grad.sum(axis=self.dim, keepdims=True)


def log_softmax(input, dim):
    return LogSoftmaxFunction.apply(input, dim=dim)


# -------------------------------------------------------------------- dropout


class DropoutFunction(Function):
    """Multiply by a kept/(1-p) mask; the mask's shape decides what is dropped together."""

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, grad):
        return grad * self.mask


def _dropout(input, p, training, mask_shape):
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    keep = ta_random.generator().random(mask_shape) >= p
    scale = 0.0 if p == 1 else 1.0 / (1 - p)
    return DropoutFunction.apply(input, mask=(keep * scale).astype(input.dtype))


def dropout(input, p=0.5, training=True):
    return _dropout(input, p, training, input.shape)


def dropout2d(input, p=0.5, training=True):
    """Zero whole channels of each sample: the mask is N x C x 1 x 1."""
    if input.ndim not in (3, 4):
        raise ValueError(f"dropout2d expects 3-D or 4-D input, got {input.shape}")
    return _dropout(input, p, training, input.shape[:-2] + (1, 1))
