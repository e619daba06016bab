"""Convolution, transposed convolution, padding and pooling as differentiable ops.

Every convolution of BC-ResNet-Mod (paper section 2.1, Table 1: the 5x5/2 head conv, the depthwise
3x1 / 1x3 and 1x1 convs of each BC-ResBlock, the final 1x1 conv) is one `conv2d`, and the two
max-pools between stages are `max_pool2d`; the device translator's U-Net (section 2.3) adds `pad`.
The loops are in tinyasc/kernels/ (docs/kernels.md); each op here checks its arguments, calls the
kernel, adds the bias and chains the gradients.
"""
from tinyasc import kernels
from tinyasc.autograd.function import Function, as_pair
from tinyasc.autograd.ops import Pad
from tinyasc.autograd.tensor import Tensor


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


def pad(input, pad, mode="constant", value=0.0):
    return Pad.apply(input, pad=tuple(pad), mode=mode, value=value)
