"""torch.nn.functional for tinyasc: every differentiable layer operation, same names and signatures.

Each operation is a `Function` subclass named `<Name>Function` (`Conv2dFunction`,
`BatchNormFunction`, ...) with its forward and backward together; the lowercase function
(`conv2d`, `batch_norm`, ...) checks the arguments and applies it, as in PyTorch. The
paper's own operations are here too: FreqIN / ResNorm (section 2.2, `freq_instance_norm`)
and the fake quantization of quantization-aware training (section 2.4, `fake_quantize`).
The heavy loops (convolution, pooling, normalization) live in `tinyasc.kernels`, each
beside a NumPy reference; this module only arranges arguments, adds biases and chains
the gradients.
"""
import numpy as np

from tinyasc import kernels
from tinyasc import random as ta_random
from tinyasc.autograd.function import Function, as_pair
from tinyasc.autograd.ops import Pad
from tinyasc.autograd.tensor import Tensor

# ---------------------------------------------------------------- convolution


class Conv2dFunction(Function):
    def forward(self, x, w, b, stride, padding, dilation, groups):
        self.x, self.w = x, w
        self.params = (stride, padding, dilation, groups)
        kind = " depthwise" if groups == x.shape[1] == w.shape[0] and groups > 1 else ""
        self.profile_name = f"Conv2d {w.shape[2]}x{w.shape[3]}{kind}" + (f" /{stride[0]}" if stride != (1, 1) else "")
        y = kernels.conv2d_forward(x, w, stride, padding, dilation, groups)
        if b is not None:
            y += b.reshape(1, -1, 1, 1).astype(y.dtype, copy=False)
        return y

    def backward(self, grad):
        gb = None
        gx, gw = kernels.conv2d_backward(grad, self.x, self.w, *self.params, need_input=self.needs_grad[0],
                                         need_weight=self.needs_grad[1])
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gb = grad.sum(axis=(0, 2, 3))
        return gx, gw, gb


def _same_padding(weight_shape, dilation):
    """torch's padding='same' for stride 1: total d*(k-1), the odd unit on the right."""
    total = [d * (k - 1) for k, d in zip(weight_shape[2:], dilation)]
    return [(t // 2, t - t // 2) for t in total]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError("padding='same' needs stride 1")
            (top, bottom), (left, right) = _same_padding(weight.shape, dilation)
            if top != bottom or left != right:
                input = pad(input, (left, right, top, bottom))
                padding = (0, 0)
            else:
                padding = (top, left)
        else:
            raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    padding = as_pair(padding, "padding")
    _check_conv(input, weight, groups, "conv2d")
    return Conv2dFunction.apply(input, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                groups=int(groups))


def _check_conv(input, weight, groups, name):
    if input.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"{name} expects 4-D input and weight, got {input.shape} and {weight.shape}")
    if input.shape[1] % groups:
        raise ValueError(f"{name}: {input.shape[1]} input channels are not divisible by groups={groups}")


class ConvTranspose2dFunction(Function):
    def forward(self, x, w, b, stride, padding, output_padding, dilation, groups):
        self.x, self.w = x, w
        self.params = (stride, padding, output_padding, dilation, groups)
        y = kernels.conv_transpose2d_forward(x, w, *self.params)
        if b is not None:
            y += b.reshape(1, -1, 1, 1).astype(y.dtype, copy=False)
        return y

    def backward(self, grad):
        gx = gw = gb = None
        if self.needs_grad[0]:
            gx = kernels.conv_transpose2d_backward_input(grad, self.w, self.x.shape, *self.params)
        if self.needs_grad[1]:
            gw = kernels.conv_transpose2d_backward_weight(self.x, grad, self.w.shape, *self.params)
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gb = grad.sum(axis=(0, 2, 3))
        return gx, gw, gb


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    _check_conv(input, weight, groups, "conv_transpose2d")
    stride, padding = as_pair(stride, "stride"), as_pair(padding, "padding")
    output_padding, dilation = as_pair(output_padding, "output_padding"), as_pair(dilation, "dilation")
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"output_padding {output_padding} must be smaller than stride or dilation")
    return ConvTranspose2dFunction.apply(input, weight, bias, stride=stride, padding=padding,
                                         output_padding=output_padding, dilation=dilation, groups=int(groups))


# -------------------------------------------------------------------- pooling


class MaxPool2dFunction(Function):
    def forward(self, x, kernel_size, stride, padding, dilation, ceil_mode):
        self.shape = x.shape
        y, self.indices = kernels.max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode)
        return y

    def backward(self, grad):
        return kernels.max_pool2d_backward(grad, self.indices, self.shape)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    kernel_size = as_pair(kernel_size, "kernel_size")
    stride = kernel_size if stride is None or stride == [] else as_pair(stride, "stride")
    padding = as_pair(padding, "padding")
    if any(2 * p > k for p, k in zip(padding, kernel_size)):
        raise ValueError(f"padding {padding} should be at most half of kernel_size {kernel_size}")
    out = MaxPool2dFunction.apply(input, kernel_size=kernel_size, stride=stride, padding=padding,
                                  dilation=as_pair(dilation, "dilation"), ceil_mode=bool(ceil_mode))
    if return_indices:
        # The indices are only reachable through the graph node; recompute when not recorded.
        indices = (out.grad_fn.indices if out.grad_fn is not None else
                   kernels.max_pool2d_forward(input.data, kernel_size, stride, padding,
                                              as_pair(dilation, "dilation"), bool(ceil_mode))[1])
        return out, Tensor(indices)
    return out


class AvgPool2dFunction(Function):
    def forward(self, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        self.shape = x.shape
        self.params = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        return kernels.avg_pool2d_forward(x, *self.params)

    def backward(self, grad):
        return kernels.avg_pool2d_backward(grad, self.shape, *self.params)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    kernel_size = as_pair(kernel_size, "kernel_size")
    stride = kernel_size if stride is None or stride == [] else as_pair(stride, "stride")
    padding = as_pair(padding, "padding")
    if any(2 * p > k for p, k in zip(padding, kernel_size)):
        raise ValueError(f"padding {padding} should be at most half of kernel_size {kernel_size}")
    return AvgPool2dFunction.apply(input, kernel_size=kernel_size, stride=stride, padding=padding,
                                   ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                                   divisor_override=divisor_override)


# ---------------------------------------------------------------- batch norm


class BatchNormFunction(Function):
    """Normalise each channel (axis 1) by batch statistics (training) or running ones.

    Training also updates the running statistics in place, as PyTorch does: the mean
    with the batch mean and the variance with the *unbiased* batch variance. With
    relu=True the ReLU that follows is fused in (one pass instead of two).
    The streaming loops are in tinyasc/kernels/norm.py.
    """

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps, relu=False):
        self.training, self.relu, self.weight, self.bias = training, relu, weight, bias
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        if training:
            count = x3.shape[0] * x3.shape[2]
            if count <= 1:
                raise ValueError(f"batch_norm needs more than one value per channel in training, got input {x.shape}")
            mean, var = kernels.batch_norm_stats(x3)
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += (momentum * mean).astype(running_mean.dtype)
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * var * count / (count - 1)).astype(running_var.dtype)
        else:
            mean, var = running_mean, running_var
        self.x, self.mean = x, np.asarray(mean, np.float64)
        out, self.invstd = kernels.batch_norm_forward(x, weight, bias, mean, var, eps, relu)
        return out

    def backward(self, grad):
        gx, gw, gb = kernels.batch_norm_backward(self.x, grad, self.mean, self.invstd, self.weight, self.bias,
                                                      self.training, self.relu)
        return gx, gw, gb


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu=False)


def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                    eps=1e-5):
    """relu(batch_norm(...)) in one fused pass (a tinyasc extension; same numbers); module: nn.BatchNormReLU2d."""
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu=True)


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu):
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    if not training and (rm is None or rv is None):
        raise ValueError("batch_norm in eval mode needs running_mean and running_var")
    if input.ndim < 2:
        raise ValueError(f"batch_norm expects N x C [x ...] input, got shape {input.shape}")
    return BatchNormFunction.apply(input, weight, bias, running_mean=rm, running_var=rv,
                                   training=bool(training), momentum=float(momentum), eps=float(eps), relu=relu)


class BroadcastResidualReLUFunction(Function):
    """relu(x2 + f1 + x) with f1 (N, C, 1, T) broadcast over frequency: BC-ResBlock's output."""

    def forward(self, x2, f1, x=None):
        self.out = kernels.broadcast_residual_relu(x2, f1, x)
        return self.out

    def backward(self, grad):
        gmasked, gf1 = kernels.broadcast_residual_relu_backward(self.out, grad)
        return gmasked, gf1, gmasked


def broadcast_residual_relu(x2, f1, x=None):
    """relu(x2 + f1 [+ x]), f1 broadcast over axis 2 (a tinyasc extension, fused)."""
    if f1.shape != x2.shape[:2] + (1, x2.shape[3]):
        raise ValueError(f"f1 must have shape {x2.shape[:2] + (1, x2.shape[3])}, got {f1.shape}")
    if x is None:
        return BroadcastResidualReLUFunction.apply(x2, f1)
    return BroadcastResidualReLUFunction.apply(x2, f1, x)


# ---------------------------------------------- FreqIN and ResNorm (paper 2.2)


class FreqNormFunction(Function):
    """lam * x + (x - mu_nf) / sqrt(sigma_nf^2 + eps), statistics over axes C and T of N x C x F x T.

    lam = 0 is FreqIN (eq. 1), lam > 0 is ResNorm (eq. 3). Backward is instance norm's:
    with xhat = (x - mu) / sigma and means over (C, T),
    dx = lam * g + (g - mean(g) - xhat * mean(g * xhat)) / sqrt(sigma^2 + eps).
    The two streaming passes each way are in tinyasc/kernels/norm.py (`freq_norm_forward`:
    the loop that accumulates s[f] and ss[f] computes mu_nf and sigma_nf^2 of eq. 2).
    """

    def forward(self, x, lam, eps):
        self.x, self.lam = x, lam
        out, self.mean, self.invstd = kernels.freq_norm_forward(x, lam, eps)
        return out

    def backward(self, grad):
        return kernels.freq_norm_backward(self.x, grad, self.lam, self.mean, self.invstd)


def freq_instance_norm(x, eps=1e-5, lam=0.0):
    """FreqIN (eq. 1) with lam = 0, ResNorm (eq. 3) with lam > 0; the modules are nn.FreqIN and nn.ResNorm."""
    if x.ndim != 4:
        raise ValueError(f"FreqIN expects N x C x F x T input, got shape {x.shape}")
    return FreqNormFunction.apply(x, lam=float(lam), eps=float(eps))


# ---------------------------------------------------------------- activations


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


# --------------------------------------------------------------------- losses


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


class CrossEntropyFunction(Function):
    """Cross-entropy from logits with per-sample, per-class coefficients A.

    Every target form reduces to loss_i = -sum_c A_ic log p_ic (p = softmax of the logits),
    divided by `denominator` for the mean. Then d loss_i / d z_ic = p_ic sum_k A_ik - A_ic.
    """

    def forward(self, logits, coef, denominator, reduction):
        self.coef, self.reduction, self.denominator = coef, reduction, denominator
        logp = _log_softmax(logits, 1)
        self.p = np.exp(logp)
        loss = -(coef * logp).sum(axis=1)
        if reduction == "none":
            return loss
        total = loss.sum()
        return np.asarray(total / denominator if reduction == "mean" else total, dtype=logits.dtype)

    def backward(self, grad):
        g = self.p * self.coef.sum(axis=1, keepdims=True) - self.coef
        if self.reduction == "none":
            return g * grad[:, None]
        if self.reduction == "mean":
            return g * (grad / self.denominator)
        return g * grad


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """torch.nn.functional.cross_entropy for N x C (or N x C x d...) logits.

    `target` holds class indices (N,) or class probabilities (N, C).
    """
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    target = target.data if isinstance(target, Tensor) else np.asarray(target)
    w = None if weight is None else (weight.data if isinstance(weight, Tensor) else np.asarray(weight))
    if input.ndim > 2:
        # Move the class axis last and flatten, then restore the extra dims for 'none'.
        extra = input.shape[2:]
        logits = input.permute((0,) + tuple(range(2, input.ndim)) + (1,)).reshape(-1, input.shape[1])
        if target.ndim == input.ndim:
            target = np.moveaxis(target, 1, -1).reshape(-1, input.shape[1])
        else:
            target = target.reshape(-1)
        loss = cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing)
        return loss.reshape((input.shape[0],) + extra) if reduction == "none" else loss
    n, num_classes = input.shape
    dtype = input.dtype
    w_c = np.ones(num_classes, dtype) if w is None else w.astype(dtype)
    ls = float(label_smoothing)
    if target.dtype.kind in "iu":
        if target.shape != (n,):
            raise ValueError(f"class-index target must have shape ({n},), got {target.shape}")
        valid = target != ignore_index
        safe = np.where(valid, target, 0)
        if np.any((safe < 0) | (safe >= num_classes)):
            raise ValueError(f"target class indices must be in [0, {num_classes}), got {np.unique(target)}")
        w_i = w_c[safe] * valid
        coef = np.zeros((n, num_classes), dtype)
        coef[np.arange(n), safe] = (1 - ls) * w_i
        if ls:
            coef += (ls / num_classes) * w_c[None, :] * valid[:, None]
        denominator = w_i.sum()
    else:
        if target.shape != (n, num_classes):
            raise ValueError(f"probability target must have shape {(n, num_classes)}, got {target.shape}")
        probs = target.astype(dtype)
        if ls:
            probs = probs * (1 - ls) + ls / num_classes
        coef = probs * w_c[None, :]
        denominator = n
    return CrossEntropyFunction.apply(input, coef=coef, denominator=dtype.type(denominator), reduction=reduction)


def nll_loss(input, target, reduction="mean"):
    target = target.data if isinstance(target, Tensor) else np.asarray(target)
    picked = input[np.arange(input.shape[0]), target]
    return _reduce(-picked, reduction)


class KLDivFunction(Function):
    """Pointwise KL term t * (log t - x) for log-probabilities x, with 0 log 0 = 0."""

    def forward(self, x, t, log_target):
        self.x, self.t, self.log_target = x, t, log_target
        if log_target:
            return np.exp(t) * (t - x)
        safe = np.where(t > 0, t, 1)
        return np.where(t > 0, t * (np.log(safe) - x), 0).astype(x.dtype)

    def backward(self, grad):
        x, t = self.x, self.t
        gx = gt = None
        if self.needs_grad[0]:
            gx = -grad * (np.exp(t) if self.log_target else t)
        if self.needs_grad[1]:
            if self.log_target:
                gt = grad * np.exp(t) * (t - x + 1)
            else:
                safe = np.where(t > 0, t, 1)
                gt = np.where(t > 0, grad * (np.log(safe) + 1 - x), 0).astype(grad.dtype)
        return gx, gt


def kl_div(input, target, reduction="mean", log_target=False):
    """torch.nn.functional.kl_div: `input` is log-probabilities; 'batchmean' divides by N."""
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    pointwise = KLDivFunction.apply(input, target, log_target=bool(log_target))
    if reduction == "batchmean":
        return pointwise.sum() / input.shape[0]
    return _reduce(pointwise, reduction)


def mse_loss(input, target, reduction="mean"):
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, reduction="mean"):
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    return _reduce((input - target).abs(), reduction)


def pad(input, pad, mode="constant", value=0.0):
    return Pad.apply(input, pad=tuple(pad), mode=mode, value=value)


# ------------------------------------------------ fake quantization (paper 2.4)
# Symmetric b-bit quantization of the conv weights; tinyasc/compress/quantize.py builds
# quantization-aware training, integer codes and half precision on these.

HALF = 16  # conv "bits" that mean IEEE half precision (float16 values), not integer codes


def check_bits(bits):
    """Conv bit widths tinyasc stores: 2..8 (integer codes) or 16 (float16)."""
    if bits != HALF and not (isinstance(bits, (int, np.integer)) and 2 <= bits <= 8):
        raise ValueError(f"conv bits must be 2..8 (integer quantization) or 16 (half precision), got {bits!r}")
    return int(bits)


def qmax(bits):
    """Q = 2^(b-1) - 1: the largest code of symmetric b-bit quantization."""
    return 2 ** (int(bits) - 1) - 1


def quantization_scale(w, bits=8, per_channel=False):
    """s = max|w| / Q, as w's dtype: a 0-d array, or C x 1 x 1 x 1 per output channel.

    A tensor (or channel) whose max|w| / Q is not a normal float (all zeros, or weights
    below 1e-36 in float32) gets s = 1, so all its codes are 0.
    """
    w = np.asarray(w)
    amax = np.max(np.abs(w), axis=tuple(range(1, w.ndim)), keepdims=True) if per_channel else np.max(np.abs(w))
    scale = np.asarray(amax, dtype=w.dtype) / w.dtype.type(qmax(bits))
    return np.where(scale >= np.finfo(w.dtype).tiny, scale, w.dtype.type(1)).astype(w.dtype)


class FakeQuantizeFunction(Function):
    """w_hat = clip(round(w / s), -Q, Q) * s [* mask], with Q = 2^(b-1) - 1 and the scale s given.

    Backward is the straight-through estimator (STE) of quantization-aware training:
    d w_hat / d w := 1 where round(w / s) lies in [-Q, Q] (not clipped), 0 where it is clipped
    and 0 at pruned positions; s counts as a constant. docs/compression.md explains why.
    """

    def forward(self, w, scale, limit, mask):
        codes = np.round(w / scale)
        self.passes = np.abs(codes) <= limit
        out = np.clip(codes, -limit, limit) * scale
        if mask is not None:
            out = out * mask
            self.passes &= mask
        return out + w.dtype.type(0)

    def backward(self, grad):
        return grad * self.passes


def fake_quantize(weight, bits=8, per_channel=False, mask=None, scale=None):
    """The fake-quantized weight as a differentiable Tensor (scale: default max|w| / Q)."""
    bits = check_bits(bits)
    if bits == HALF:
        raise ValueError("QAT is for integer bit widths 2..8; 16-bit conv weights are float16 (round_half)")
    w = weight.data
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != w.shape:
            raise ValueError(f"mask has shape {mask.shape}, weight has {w.shape}")
    if scale is None:  # from the kept weights only (the pruned ones are zero once masks are held)
        scale = quantization_scale(w if mask is None else w * mask, bits, per_channel)
    scale = np.asarray(scale, dtype=w.dtype)
    return FakeQuantizeFunction.apply(weight, scale=scale, limit=w.dtype.type(qmax(bits)), mask=mask)
