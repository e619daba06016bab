"""Transposed 2-D convolution (torch semantics): the conv kernels with their roles swapped.

conv_transpose2d is the adjoint of conv2d in its input: its forward is conv2d's input
gradient, its input gradient is conv2d's forward, and its weight gradient is conv2d's weight
gradient with input and output exchanged. The translator network (paper section 2.3) uses it;
BC-ResNet-Mod does not.

Shapes (torch): x (N, Cin, H, W), w (Cin, Cout/groups, KH, KW),
y (N, Cout, Ho, Wo), Ho = (H - 1)*sh - 2*ph + dh*(KH - 1) + output_padding_h + 1.
Seen as a conv2d from y's space to x's space, w is already in conv2d's (Cout', Cin'/groups)
layout with Cout' = Cin, Cin' = Cout.
"""
import numpy as np

from tinyasc.kernels.conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward


def conv_transpose2d_output_size(size, kernel, stride, padding, output_padding, dilation):
    """torch's (size - 1)*s - 2p + d*(k - 1) + output_padding + 1 for one axis."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _out_shape(x_shape, w_shape, stride, padding, output_padding, dilation, groups):
    N, Cin, H, W = x_shape
    if w_shape[0] != Cin or Cin % groups:
        raise ValueError(f"conv_transpose2d: input {x_shape} and weight {w_shape} do not match groups={groups}")
    for axis in range(2):
        if not (output_padding[axis] < stride[axis] or output_padding[axis] < dilation[axis]):
            raise ValueError("conv_transpose2d: output_padding must be smaller than stride or dilation")
    Ho = conv_transpose2d_output_size(H, w_shape[2], stride[0], padding[0], output_padding[0], dilation[0])
    Wo = conv_transpose2d_output_size(W, w_shape[3], stride[1], padding[1], output_padding[1], dilation[1])
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv_transpose2d: output size {Ho}x{Wo} is too small")
    return (N, w_shape[1] * groups, Ho, Wo)


def conv_transpose2d_forward(x, w, stride, padding, output_padding, dilation, groups):
    """y = conv_transpose2d(x, w) (no bias) = conv2d_backward_input of x into y's shape."""
    y_shape = _out_shape(x.shape, w.shape, stride, padding, output_padding, dilation, groups)
    return conv2d_backward_input(x, w, y_shape, stride, padding, dilation, groups)


def conv_transpose2d_backward_input(gy, w, x_shape, stride, padding, output_padding, dilation, groups):
    """gx = conv2d(gy, w), cropped to x's size (the conv sees output_padding's extra rows)."""
    _out_shape(x_shape, w.shape, stride, padding, output_padding, dilation, groups)
    gx = conv2d_forward(gy, w, stride, padding, dilation, groups)
    H, W = x_shape[2], x_shape[3]
    if gx.shape[2:] != (H, W):
        gx = np.ascontiguousarray(gx[:, :, :H, :W])
    return gx


def conv_transpose2d_backward_weight(x, gy, w_shape, stride, padding, output_padding, dilation, groups):
    """gw = conv2d_backward_weight with gy as the conv's input and x as its output gradient."""
    _out_shape(x.shape, w_shape, stride, padding, output_padding, dilation, groups)
    return conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups)


# ----------------------------------------------------------------------------- references


def conv_transpose2d_forward_ref(x, w, stride, padding, output_padding, dilation, groups):
    """Plain NumPy, straight from the definition: every input pixel stamps its weighted kernel
    onto the output at (ih*sh + kh*dh - ph, iw*sw + kw*dw - pw)."""
    N, Cin, H, W = x.shape
    _, cout_g, KH, KW = w.shape
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    Ho = conv_transpose2d_output_size(H, KH, sh, ph, output_padding[0], dh)
    Wo = conv_transpose2d_output_size(W, KW, sw, pw, output_padding[1], dw)
    cin_g = Cin // groups
    # a full canvas (no cropping by the padding), cropped at the end
    Hf = (H - 1) * sh + dh * (KH - 1) + 1 + output_padding[0]
    Wf = (W - 1) * sw + dw * (KW - 1) + 1 + output_padding[1]
    yf = np.zeros((N, cout_g * groups, max(Hf, Ho + ph), max(Wf, Wo + pw)), x.dtype)
    for g in range(groups):
        xg = x[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cin_g:(g + 1) * cin_g]
        for kh in range(KH):
            for kw in range(KW):
                stamp = np.einsum("nchw,co->nohw", xg, wg[:, :, kh, kw])
                yf[:, g * cout_g:(g + 1) * cout_g,
                   kh * dh:kh * dh + (H - 1) * sh + 1:sh, kw * dw:kw * dw + (W - 1) * sw + 1:sw] += stamp
    return yf[:, :, ph:ph + Ho, pw:pw + Wo]
