"""The array-level kernel calls tinyasc.functional makes: shapes checked, a path chosen, a loop run.

Each function here takes NumPy arrays (no autograd), builds the call's geometry once
(geometry.py), asks dispatch.py which path to take, and runs that path's Numba kernel or, under
the reference backend, the NumPy reference beside it. The loops themselves are in conv.py,
pointwise.py, depthwise.py, pool.py and norm.py. Every conv of BC-ResNet-Mod (paper Table 1),
its pooling and its normalizations (section 2.2) pass through here.

Shapes (torch): x (N, Cin, H, W), w (Cout, Cin/groups, KH, KW), y (N, Cout, Ho, Wo); stride,
padding, dilation are (h, w) pairs.
"""
import numpy as np

from tinyasc.kernels import conv, conv_transpose, depthwise, dispatch, norm, pointwise, pool
from tinyasc.kernels.geometry import conv_geometry, conv_transpose2d_shape, pool_geometry

# ------------------------------------------------------------------------- convolution


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w) with torch semantics (cross-correlation, zero padding, no bias)."""
    g = conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
    path = dispatch.conv_forward_path(g)
    if path == "reference":
        return conv.conv2d_forward_ref(x, w.astype(x.dtype, copy=False), g.stride, g.padding, g.dilation, groups)
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    if path == "pointwise":
        y = pointwise_conv_forward(x.reshape(g.n, g.c_in, g.h * g.w), w.reshape(g.c_out, g.c_in))
        return y.reshape(g.n, g.c_out, g.h, g.w)
    if path == "depthwise":
        return depthwise_conv2d_forward(x, w, g.padding)
    if path == "depthwise-direct":
        return depthwise.depthwise_direct_forward_kernel(x, w.reshape(g.c_out, g.kh, g.kw), g.out_h, g.out_w,
                                                         *g.window)
    # im2col + BLAS, one (Cout/G, K/G) @ (K/G, T) product per group, sample and tile
    w3 = w.reshape(groups, g.c_out // groups, g.taps // groups)
    y = conv.conv2d_forward_kernel(x, w3, *g.window, g.out_h, g.out_w, dispatch.im2col_rows(g), dispatch.chunks(g.n))
    return y.reshape(g.n, g.c_out, g.out_h, g.out_w)


def _gradient_geometry(x_shape, w_shape, gy_shape, stride, padding, dilation, groups):
    """(geometry with gy's output size, whether gy has the conv's whole output size). gy may have
    fewer rows/columns (conv_transpose2d with output_padding >= stride relies on that)."""
    g = conv_geometry(tuple(x_shape), tuple(w_shape), stride, padding, dilation, groups)
    full = (g.out_h, g.out_w) == tuple(gy_shape[2:])
    return g._replace(out_h=gy_shape[2], out_w=gy_shape[3]), full


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """gx = d<conv2d(x, w), gy>/dx. gy may have fewer rows/columns than the conv's output: the
    missing ones count as zero."""
    g, full = _gradient_geometry(x_shape, w.shape, gy.shape, stride, padding, dilation, groups)
    path = dispatch.conv_input_path(g, full)
    if path == "reference":
        return conv.conv2d_backward_input_ref(gy, w.astype(gy.dtype, copy=False), g.x_shape, g.stride, g.padding,
                                              g.dilation, groups)
    gy = np.ascontiguousarray(gy)
    w = np.ascontiguousarray(w, dtype=gy.dtype)
    if path == "pointwise":
        wT = np.ascontiguousarray(w.reshape(g.c_out, g.c_in).T)
        return pointwise_conv_forward(gy.reshape(g.n, g.c_out, g.out_h * g.out_w), wT).reshape(g.x_shape)
    if path == "depthwise":
        return depthwise_conv2d_backward_input(gy, w, g.x_shape, g.padding)
    if path == "depthwise-direct":
        return depthwise.depthwise_direct_backward_input_kernel(gy, w.reshape(g.c_out, g.kh, g.kw), g.h, g.w,
                                                                *g.window)
    # dcols = w^T @ gy per group, then col2im scatters them back
    w3t = np.ascontiguousarray(w.reshape(groups, g.c_out // groups, g.taps // groups).transpose(0, 2, 1))
    return conv.conv2d_backward_input_kernel(gy, w3t, g.h, g.w, *g.window, dispatch.im2col_rows(g),
                                             dispatch.chunks(g.n))


def conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups):
    """gw = d<conv2d(x, w), gy>/dw, same dtype as x; float64 accumulation across the batch.
    gy may have fewer rows/columns than the conv's output, as in conv2d_backward_input."""
    w_shape = tuple(w_shape)
    g, full = _gradient_geometry(x.shape, w_shape, gy.shape, stride, padding, dilation, groups)
    path = dispatch.conv_weight_path(g, full)
    if path == "reference":
        gw = conv.conv2d_backward_weight_ref(x, gy.astype(x.dtype, copy=False), w_shape, g.stride, g.padding,
                                             g.dilation, groups)
        return gw.astype(x.dtype, copy=False)
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy, dtype=x.dtype)
    if path == "pointwise":
        gw = pointwise_conv_backward_weight(x.reshape(g.n, g.c_in, g.h * g.w), gy.reshape(g.n, g.c_out, g.h * g.w),
                                            dispatch.partials(g.n))
        return gw.astype(x.dtype).reshape(w_shape)
    if path == "depthwise":
        return depthwise_conv2d_backward_weight(x, gy, w_shape, g.padding)
    if path == "depthwise-direct":
        return depthwise.depthwise_direct_backward_weight_kernel(x, gy, *g.window).astype(x.dtype).reshape(w_shape)
    if path == "dots":
        gw = conv.conv2d_backward_weight_dots_kernel(x, gy, groups, *g.window, dispatch.dots_rows(g),
                                                     dispatch.partials(g.n))
        return gw.astype(x.dtype).reshape(w_shape)
    # gw += gy @ cols^T per group, sample and tile; the small products are summed in float64
    gw = conv.conv2d_backward_weight_kernel(x, gy, groups, *g.window, dispatch.im2col_rows(g), dispatch.partials(g.n))
    return gw.astype(x.dtype).reshape(w_shape)


def conv2d_backward(gy, x, w, stride, padding, dilation, groups, need_input=True, need_weight=True):
    """(gx, gw), either None when not needed: conv2d_backward_input and conv2d_backward_weight,
    except that a depthwise layer needing both gets them from one fused pass."""
    g, full = _gradient_geometry(x.shape, w.shape, gy.shape, stride, padding, dilation, groups)
    if dispatch.conv_backward_path(g, full, need_input, need_weight) == "depthwise-fused":
        return depthwise_conv2d_backward(x, gy.astype(x.dtype, copy=False), w.astype(x.dtype, copy=False), g.padding)
    gx = conv2d_backward_input(gy, w, x.shape, stride, padding, dilation, groups) if need_input else None
    gw = conv2d_backward_weight(x, gy, w.shape, stride, padding, dilation, groups) if need_weight else None
    return gx, gw


# -------------------------------------------------------- pointwise and depthwise layers


def pointwise_conv_forward(x, w):
    """y (N, Cout, T) = w (Cout, Cin) @ x[n] (Cin, T) for every n; x and w contiguous."""
    N, Cin, T = x.shape
    path = dispatch.pointwise_path(N, Cin, w.shape[0], T, x.itemsize)
    if path == "reference":
        return pointwise.pointwise_forward_ref(x, w)
    if path == "streaming":
        return pointwise.pointwise_forward_kernel(x, w)
    if path == "numpy":
        return np.matmul(w, x)
    return pointwise.pointwise_blas_forward_kernel(x, w)


def pointwise_conv_backward_weight(x, gy, nchunks):
    """gw (Cout, Cin) = sum over n of gy[n] @ x[n]^T, accumulated in float64."""
    N, Cin, T = x.shape
    path = dispatch.pointwise_path(N, Cin, gy.shape[1], T, x.itemsize)
    if path == "reference":
        return pointwise.pointwise_backward_weight_ref(x, gy)
    if path == "streaming":
        return pointwise.pointwise_backward_weight_kernel(x, gy, nchunks).sum(axis=0)
    if path == "numpy":
        return np.matmul(gy, x.transpose(0, 2, 1)).sum(axis=0, dtype=np.float64)
    return pointwise.pointwise_blas_backward_weight_kernel(x, gy, nchunks).sum(axis=0)


# w is (C, 1, 3, 1) for a 3x1 filter or (C, 1, 1, 3) for 1x3; padding is the (h, w) pair, and
# the padding along the unit-length kernel axis is 0 (dispatch.is_depthwise).


def _taps(w):
    """(C, 3) contiguous filter taps and whether they run along frequency (3x1)."""
    along_freq = w.shape[2] == 3
    return np.ascontiguousarray(w.reshape(w.shape[0], 3)), along_freq


def depthwise_conv2d_forward(x, w, padding):
    """y = depthwise 3x1 or 1x3 conv of x, stride 1, dilation 1, zero padding."""
    if dispatch.reference_active():
        return depthwise.depthwise_forward_ref(x, w, padding)
    w3, along_freq = _taps(w)
    x = np.ascontiguousarray(x)
    if along_freq:
        return depthwise.depthwise3x1_forward_kernel(x, w3, padding[0])
    return depthwise.depthwise1x3_forward_kernel(x, w3, padding[1])


def depthwise_conv2d_backward_input(gy, w, x_shape, padding):
    """gx: the same kernel run on gy with the flipped filter and padding 2 - p (the adjoint)."""
    if dispatch.reference_active():
        return depthwise.depthwise_backward_input_ref(gy, w, x_shape, padding)
    w3, along_freq = _taps(w)
    w3 = np.ascontiguousarray(w3[:, ::-1])
    gy = np.ascontiguousarray(gy)
    if along_freq:
        gx = depthwise.depthwise3x1_forward_kernel(gy, w3, 2 - padding[0])
    else:
        gx = depthwise.depthwise1x3_forward_kernel(gy, w3, 2 - padding[1])
    assert gx.shape == tuple(x_shape)
    return gx


def depthwise_conv2d_backward_weight(x, gy, w_shape, padding):
    """gw (C, 1, 3, 1) or (C, 1, 1, 3): per-plane float64 partials, summed over the batch."""
    if dispatch.reference_active():
        return depthwise.depthwise_backward_weight_ref(x, gy, w_shape, padding)
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy)
    if w_shape[2] == 3:
        part = depthwise.depthwise3x1_backward_weight_kernel(x, gy, padding[0])
    else:
        part = depthwise.depthwise1x3_backward_weight_kernel(x, gy, padding[1])
    return part.sum(axis=0).astype(x.dtype).reshape(w_shape)


def depthwise_conv2d_backward(x, gy, w, padding):
    """(gx, gw) of a depthwise 3x1 or 1x3 conv: one pass for the 3x1 filter, two kernels for 1x3
    (dispatch.depthwise_fuses)."""
    if dispatch.reference_active() or not dispatch.depthwise_fuses(w.shape):
        return (depthwise_conv2d_backward_input(gy, w, x.shape, padding),
                depthwise_conv2d_backward_weight(x, gy, w.shape, padding))
    w3, _ = _taps(w)
    gx, part = depthwise.depthwise3x1_backward_kernel(np.ascontiguousarray(x), np.ascontiguousarray(gy),
                                                      w3.astype(x.dtype), padding[0])
    return gx, part.sum(axis=0).astype(x.dtype).reshape(w.shape)


# ------------------------------------------------- transposed convolution (the translator)
# conv_transpose2d is the adjoint of conv2d in its input: its forward is conv2d's input gradient,
# its input gradient conv2d's forward, its weight gradient conv2d's with input and output
# exchanged. w (Cin, Cout/groups, KH, KW) is already conv2d's (Cout', Cin'/groups) layout.


def conv_transpose2d_forward(x, w, stride, padding, output_padding, dilation, groups):
    """y = conv_transpose2d(x, w) (no bias) = conv2d_backward_input of x into y's shape."""
    y_shape = conv_transpose2d_shape(x.shape, w.shape, stride, padding, output_padding, dilation, groups)
    if dispatch.single_path() == "reference":
        return conv_transpose.conv_transpose2d_forward_ref(x, w.astype(x.dtype, copy=False), stride, padding,
                                                           output_padding, dilation, groups)
    return conv2d_backward_input(x, w, y_shape, stride, padding, dilation, groups)


def conv_transpose2d_backward_input(gy, w, x_shape, stride, padding, output_padding, dilation, groups):
    """gx = conv2d(gy, w), cropped to x's size (the conv sees output_padding's extra rows)."""
    conv_transpose2d_shape(x_shape, w.shape, stride, padding, output_padding, dilation, groups)
    gx = conv2d_forward(gy, w, stride, padding, dilation, groups)
    H, W = x_shape[2], x_shape[3]
    if gx.shape[2:] != (H, W):
        gx = np.ascontiguousarray(gx[:, :, :H, :W])
    return gx


def conv_transpose2d_backward_weight(x, gy, w_shape, stride, padding, output_padding, dilation, groups):
    """gw = conv2d_backward_weight with gy as the conv's input and x as its output gradient."""
    conv_transpose2d_shape(x.shape, w_shape, stride, padding, output_padding, dilation, groups)
    return conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups)


# ----------------------------------------------------------------------------- pooling


def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode):
    """(y, idx): max over each window; idx (int64) = flat ih*W + iw of the max in its plane."""
    g = pool_geometry(x.shape, kernel, stride, padding, dilation, ceil_mode, "max_pool2d")
    path = dispatch.max_pool_path(g)
    if path == "reference":
        return pool.max_pool2d_forward_ref(x, kernel, stride, padding, dilation, ceil_mode)
    x = np.ascontiguousarray(x)
    if path == "2x2":
        return pool.max_pool2x2_forward_kernel(x)
    return pool.max_pool2d_forward_kernel(x, *g.window, *g.dilation, g.out_h, g.out_w)


def max_pool2d_backward(gy, idx, x_shape):
    """gx: gy scatter-added to the positions idx recorded."""
    if dispatch.single_path() == "reference":
        return pool.max_pool2d_backward_ref(gy, idx, tuple(x_shape))
    N, C, H, W = x_shape
    return pool.max_pool2d_backward_kernel(np.ascontiguousarray(gy), np.ascontiguousarray(idx), H, W)


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """y = mean over each window, torch's divisor rules."""
    g = pool_geometry(x.shape, kernel, stride, padding, (1, 1), ceil_mode, "avg_pool2d")
    if dispatch.single_path() == "reference":
        return pool.avg_pool2d_forward_ref(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    return pool.avg_pool2d_forward_kernel(np.ascontiguousarray(x), *g.window, g.out_h, g.out_w,
                                          bool(count_include_pad), int(divisor_override or 0))


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """gx: each output gradient spread evenly (by the same divisor) over its window."""
    g = pool_geometry(x_shape, kernel, stride, padding, (1, 1), ceil_mode, "avg_pool2d")
    if dispatch.single_path() == "reference":
        return pool.avg_pool2d_backward_ref(gy, tuple(x_shape), kernel, stride, padding, ceil_mode, count_include_pad,
                                            divisor_override)
    return pool.avg_pool2d_backward_kernel(np.ascontiguousarray(gy), g.h, g.w, *g.window,
                                           bool(count_include_pad), int(divisor_override or 0))


# ---------------------------------------------------------------------- normalization
# Batch norm sees its input as (N, C, L) with L = H*W, FreqIN / ResNorm as (N, C, F, T);
# statistics are float64 whatever the input dtype.


def batch_norm_stats(x3):
    """(mean, biased variance) per channel of x3 (N, C, L), in float64."""
    if dispatch.single_path() == "reference":
        return norm.batch_norm_stats_ref(x3)
    return norm.batch_norm_stats_kernel(np.ascontiguousarray(x3))


def _scale_shift(weight, bias, mean, invstd, channels, dtype):
    """The per-channel affine map of the normalization, in x's dtype (forward and backward)."""
    w = np.ones(channels) if weight is None else np.asarray(weight, np.float64)
    b = np.zeros(channels) if bias is None else np.asarray(bias, np.float64)
    scale = (w * invstd).astype(dtype)
    shift = (b - np.asarray(mean, np.float64) * w * invstd).astype(dtype)
    return w, scale, shift


def batch_norm_forward(x, weight, bias, mean, var, eps, relu):
    """y = [relu]((x - mean) / sqrt(var + eps) * weight + bias) for x (N, C, ...) contiguous.

    Returns (y, invstd). mean, var: the statistics to normalise with (batch or running).
    """
    if dispatch.single_path() == "reference":
        return norm.batch_norm_forward_ref(x, weight, bias, mean, var, eps, relu)
    x3 = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
    invstd = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    _, scale, shift = _scale_shift(weight, bias, mean, invstd, x.shape[1], x.dtype)
    out = np.empty_like(x3)
    norm.batch_norm_apply_kernel(x3, scale, shift, bool(relu), out)
    return out.reshape(x.shape), invstd


def batch_norm_backward(x, g, mean, invstd, weight, bias, training, relu, g_freq=None):
    """(gx, gweight, gbias) of batch_norm_forward, from its input x and the output gradient g.

    Two passes over x and g (the sums, then gx); with relu the mask is recomputed from x, the
    weight and the bias, so the forward's output is not needed. g_freq (N, C // S, 1, T), for
    x of shape (N, C, F / S, T) (SubSpectralNorm's view of an N x C / S x F x T map): a second
    gradient of the output, broadcast over its frequency axis, added to g inside both passes
    (the same numbers as adding it first, without writing the sum out).
    """
    if g_freq is not None and (x.ndim != 4 or g_freq.ndim != 4 or g_freq.shape[2] != 1 or g_freq.shape[1] < 1
                               or x.shape[1] % g_freq.shape[1] or g_freq.shape[0] != x.shape[0]
                               or g_freq.shape[3] != x.shape[3]):
        raise ValueError(f"a frequency-broadcast gradient of shape {g_freq.shape} does not fit input {x.shape}")
    if g_freq is not None and g_freq.dtype != g.dtype:  # summed in the dtype the sum would have
        dtype = np.result_type(g, g_freq)
        g, g_freq = g.astype(dtype, copy=False), g_freq.astype(dtype, copy=False)
    if dispatch.single_path() == "reference":
        if g_freq is not None:
            g = _with_freq_broadcast(g, g_freq)
        return norm.batch_norm_backward_from_input_ref(x, g, mean, invstd, weight, bias, training, relu)
    shape = x.shape
    if g_freq is None:  # the kernels see one row of H*W values per channel, and a zero second gradient
        x4 = np.ascontiguousarray(x).reshape(shape[0], shape[1], 1, -1)
        g3 = np.zeros((shape[0], 1, x4.shape[3]), g.dtype)
    else:  # rows of T values, each with its channel's g_freq row added
        x4 = np.ascontiguousarray(x)
        g3 = np.ascontiguousarray(g_freq).reshape(shape[0], g_freq.shape[1], shape[3])
    g4 = np.ascontiguousarray(g).reshape(x4.shape)
    mean = np.asarray(mean, np.float64)
    w, scale, shift = _scale_shift(weight, bias, mean, invstd, shape[1], x.dtype)
    sum_g, sum_gx = norm.batch_norm_grad_sums_kernel(x4, g4, g3, mean, invstd, scale, shift, bool(relu))
    gx = np.empty_like(x4)
    norm.batch_norm_backward_input_kernel(x4, g4, g3, mean.astype(x.dtype), invstd.astype(x.dtype), w.astype(x.dtype),
                                          scale, shift, sum_g, sum_gx, bool(training), bool(relu), gx)
    return gx.reshape(shape), sum_gx.astype(x.dtype), sum_g.astype(x.dtype)


def _with_freq_broadcast(g, g_freq):
    """g (N, C, F / S, T) plus g_freq (N, C // S, 1, T) broadcast over each channel's F bins."""
    n, c, rows, t = g.shape
    k = g_freq.shape[1]
    return add_freq_broadcast(g.reshape(n, k, c // k * rows, t), g_freq).reshape(g.shape)


def freq_norm_forward(x, lam, eps):
    """ResNorm (lam > 0) or FreqIN (lam = 0) of x (N, C, F, T); returns (out, mean, invstd)."""
    if dispatch.single_path() == "reference":
        return norm.freq_norm_forward_ref(x, lam, eps)
    x = np.ascontiguousarray(x)
    n, _, f, _ = x.shape
    out = np.empty_like(x)
    mean = np.empty((n, f), np.float64)
    invstd = np.empty((n, f), np.float64)
    norm.freq_norm_forward_kernel(x, x.dtype.type(lam), float(eps), out, mean, invstd)
    return out, mean, invstd


def freq_norm_backward(x, g, lam, mean, invstd):
    """gx of freq_norm_forward, from its input, the output gradient and the saved statistics."""
    if dispatch.single_path() == "reference":
        return norm.freq_norm_backward_ref(x, g, lam, mean, invstd)
    x, g = np.ascontiguousarray(x), np.ascontiguousarray(g)
    gx = np.empty_like(x)
    norm.freq_norm_backward_kernel(x, g, float(lam), mean, invstd, gx)
    return gx


def freq_mean(x):
    """x.mean(axis=2, keepdims=True) of a 4-D float array, in one streaming pass."""
    if dispatch.single_path() == "reference":
        return norm.freq_mean_ref(x)
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape[:2] + (1, x.shape[3]), x.dtype)
    norm.freq_mean_kernel(x, out)
    return out


def add_freq_broadcast(full, small):
    """full (N, C, F, T) + small (N, C, 1, T) broadcast over F, as a new array (the autograd's
    sum of a gradient and a frequency mean's gradient)."""
    if (dispatch.single_path() == "reference" or full.dtype != small.dtype
            or full.dtype not in (np.float32, np.float64)):
        return norm.add_freq_broadcast_ref(full, small)
    out = np.empty(full.shape, full.dtype)
    norm.add_freq_broadcast_kernel(full, small, out)
    return out


def broadcast_residual_relu(x2, f1, x=None):
    """relu(x2 + f1 [+ x]) with f1 (N, C, 1, T) broadcast over axis 2: a BC-ResBlock's output."""
    if dispatch.single_path() == "reference":
        return norm.broadcast_residual_relu_ref(x2, f1, x)
    x2, f1 = np.ascontiguousarray(x2), np.ascontiguousarray(f1)
    out = np.empty_like(x2)
    norm.broadcast_residual_relu_kernel(x2, f1, x2 if x is None else np.ascontiguousarray(x), x is not None, out)
    return out


def broadcast_residual_relu_backward(out, g):
    """(gradient of x2 and of x, gradient of f1)."""
    if dispatch.single_path() == "reference":
        return norm.broadcast_residual_relu_backward_ref(out, g)
    g = np.ascontiguousarray(g)
    gmasked = np.empty_like(g)
    gf1 = np.empty(out.shape[:2] + (1, out.shape[3]), dtype=g.dtype)
    norm.broadcast_residual_relu_backward_kernel(out, g, gmasked, gf1)
    return gmasked, gf1
