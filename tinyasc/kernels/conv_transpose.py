"""Transposed 2-D convolution (torch semantics): the conv kernels with their roles swapped.

conv_transpose2d is the adjoint of conv2d in its input: its forward is conv2d's input
gradient, its input gradient is conv2d's forward, and its weight gradient is conv2d's weight
gradient with input and output exchanged, and api.py computes it that way. The translator network
(paper section 2.3) uses it; BC-ResNet-Mod does not. This module keeps its definition: the NumPy
reference the tests hold those conv2d calls to.

Shapes (torch): x (N, Cin, H, W), w (Cin, Cout/groups, KH, KW),
y (N, Cout, Ho, Wo), Ho = (H - 1)*sh - 2*ph + dh*(KH - 1) + output_padding_h + 1.
Seen as a conv2d from y's space to x's space, w is already in conv2d's (Cout', Cin'/groups)
layout with Cout' = Cin, Cin' = Cout.
"""
import numpy as np

from tinyasc.kernels.geometry import conv_transpose2d_output_size


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
