"""tinyasc.functional: gradients, semantics from first principles, and PyTorch parity.

Three layers of evidence for every op:
1. float64 gradient checks over hypothesis-drawn shapes and parameters (kinks and ties
   avoided by construction);
2. torch-free semantics: values against NumPy references written here from the definitions
   (conv as a sum of shifted slices, pooling window by window, cross-entropy from torch's
   documented formula) and small hand-computed cases;
3. the same call on torch.nn.functional gives the same numbers, forward and backward, in
   float32 and float64 (skipped where torch is not installed).
"""
import inspect
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinyasc as ta
from tinyasc import Tensor
from tinyasc import functional as F
from tinyasc.testing import assert_gradients

import strategies as ts  # tests/strategies.py: hypothesis strategies for the gradient checks


def leaf(array, dtype=np.float64):
    return Tensor(np.asarray(array, dtype=dtype), requires_grad=True)


def seeded(fn, seed=11):
    """A stochastic fn made deterministic: every call draws the same mask."""
    def wrapped(*args):
        ta.manual_seed(seed)
        return fn(*args)
    return wrapped


def grads_of(fn, arrays, cotangent_seed=0):
    leaves = [leaf(a) for a in arrays]
    out = fn(*leaves)
    out.backward(np.random.default_rng(cotangent_seed).standard_normal(out.shape))
    return out.data, [x.grad for x in leaves]


def assert_layout_invariant(fn, arrays, layout):
    """fn gives the same values and gradients for `arrays` in C order and in `layout`."""
    out_c, grads_c = grads_of(fn, [np.ascontiguousarray(a) for a in arrays])
    out_v, grads_v = grads_of(fn, [ts.noncontiguous(a, layout) for a in arrays])
    np.testing.assert_allclose(out_v, out_c, rtol=1e-12, atol=1e-12)
    for gv, gc in zip(grads_v, grads_c):
        np.testing.assert_allclose(gv, gc, rtol=1e-12, atol=1e-12)


# ================================================================ NumPy references


def conv2d_reference(x, w, b, stride, padding, dilation, groups):
    """y[n, co] = b[co] + sum over taps (i, j) of w[co, :, i, j] . x_padded[n, group(co), shifted slice]."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, cin, h, wd = x.shape
    cout, per_group, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, cout, ho, wo))
    outs_per_group = cout // groups
    for co in range(cout):
        g = co // outs_per_group
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * per_group:(g + 1) * per_group,
                           i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
                y[:, co] += np.einsum("nchw,c->nhw", patch, w[co, :, i, j])
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def pool_output_size(size, kernel, stride, padding, dilation, ceil_mode):
    """torch's rule: floor (or ceil) division, and a ceil-mode window must start inside input + left pad."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = -(-span // stride) + 1 if ceil_mode else span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def max_pool2d_reference(x, p):
    n, c, h, w = x.shape
    ho, wo = (pool_output_size(s, k, st_, pd, d, p.ceil_mode) for s, k, st_, pd, d in
              zip((h, w), p.kernel, p.stride, p.padding, p.dilation))
    y = np.full((n, c, ho, wo), -np.inf)
    idx = np.zeros((n, c, ho, wo), np.int64)
    for oh in range(ho):
        for ow in range(wo):
            for i in range(p.kernel[0]):
                for j in range(p.kernel[1]):
                    ih = oh * p.stride[0] - p.padding[0] + i * p.dilation[0]
                    iw = ow * p.stride[1] - p.padding[1] + j * p.dilation[1]
                    if 0 <= ih < h and 0 <= iw < w:
                        better = x[:, :, ih, iw] > y[:, :, oh, ow]
                        y[:, :, oh, ow] = np.where(better, x[:, :, ih, iw], y[:, :, oh, ow])
                        idx[:, :, oh, ow] = np.where(better, ih * w + iw, idx[:, :, oh, ow])
    return y, idx


def avg_pool2d_reference(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    n, c, h, w = x.shape
    ho, wo = (pool_output_size(s, k, st_, pd, 1, ceil_mode) for s, k, st_, pd in
              zip((h, w), kernel, stride, padding))
    y = np.zeros((n, c, ho, wo))
    for oh in range(ho):
        for ow in range(wo):
            h0, w0 = oh * stride[0] - padding[0], ow * stride[1] - padding[1]
            h1, w1 = min(h0 + kernel[0], h + padding[0]), min(w0 + kernel[1], w + padding[1])
            padded_count = (h1 - h0) * (w1 - w0)  # window clipped to the padded input
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            total = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3))
            divisor = divisor_override or (padded_count if count_include_pad else (h1 - h0) * (w1 - w0))
            y[:, :, oh, ow] = total / divisor
    return y


def log_softmax_reference(z, axis):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def cross_entropy_reference(logits, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """torch's documented formula, written per sample for N x C logits."""
    n, c = logits.shape
    logp = log_softmax_reference(logits, 1)
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    ls = label_smoothing
    if np.issubdtype(np.asarray(target).dtype, np.integer):
        valid = target != ignore_index
        t = np.where(valid, target, 0)
        nll = -w[t] * logp[np.arange(n), t] * valid
        smooth = -(logp * w).sum(axis=1) * valid
        loss = (1 - ls) * nll + ls / c * smooth
        if reduction == "mean":
            return loss.sum() / (w[t] * valid).sum()
    else:
        q = target * (1 - ls) + ls / c
        loss = -(logp * q * w).sum(axis=1)
        if reduction == "mean":
            return loss.sum() / n
    return loss.sum() if reduction == "sum" else loss


# ================================================================ pad


PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@st.composite
def pad_cases(draw):
    mode = draw(st.sampled_from(sorted(PAD_MODES)))
    ndim = draw(st.integers(3, 4)) if mode != "constant" else draw(st.integers(1, 4))
    padded_dims = draw(st.integers(1, min(2, ndim - 2) if mode != "constant" else ndim))
    shape = draw(ts.shapes(min_dims=ndim, max_dims=ndim, min_side=2, max_side=4))
    pad = []
    for d in range(padded_dims):
        size = shape[ndim - 1 - d]
        if mode == "constant":
            before, after = (draw(st.integers(-(size - 1), 3)) for _ in range(2))
            assume(before + after > -size)  # something left after cropping
        elif mode == "reflect":
            before, after = (draw(st.integers(0, size - 1)) for _ in range(2))
        else:
            before, after = (draw(st.integers(0, size)) for _ in range(2))
        pad += [before, after]
    return draw(ts.arrays(shape)), tuple(pad), mode, draw(st.floats(-1, 1))


def pad_reference(x, pad, mode, value):
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    grown = [(max(b, 0), max(a, 0)) for b, a in widths]
    kwargs = {"constant_values": value} if mode == "constant" else {}
    y = np.pad(x, grown, mode=PAD_MODES[mode], **kwargs)
    crop = tuple(slice(max(-b, 0), y.shape[d] - max(-a, 0)) for d, (b, a) in enumerate(widths))
    return y[crop]


@given(case=pad_cases())
def test_pad_values_and_gradient(case):
    x, pad, mode, value = case
    np.testing.assert_array_equal(F.pad(leaf(x), pad, mode=mode, value=value).data, pad_reference(x, pad, mode, value))
    assert_gradients(lambda a: F.pad(a, pad, mode=mode, value=value), [leaf(x)], name=f"pad {mode} {pad}")


def test_pad_hand_cases():
    x = leaf(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(F.pad(x, (2, 1), mode="reflect").data, [[3, 2, 1, 2, 3, 2]])
    np.testing.assert_array_equal(F.pad(x, (1, 2), mode="replicate").data, [[1, 1, 2, 3, 3, 3]])
    np.testing.assert_array_equal(F.pad(x, (1, 2), mode="circular").data, [[3, 1, 2, 3, 1, 2]])
    np.testing.assert_array_equal(F.pad(x, (-1, 1), value=9).data, [[2, 3, 9]])
    y = F.pad(x, (2, 1), mode="reflect")
    y.backward(np.ones(y.shape))
    np.testing.assert_array_equal(x.grad, [[1, 3, 2]])  # x[1] is copied twice, x[2] once
    with pytest.raises(ValueError):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ValueError):
        F.pad(x, (1, 1), mode="mirror")


# ================================================================ conv2d


def conv_inputs(data, p, bias):
    x = data.draw(ts.arrays(p.input_shape))
    w = data.draw(ts.arrays(p.weight_shape))
    b = data.draw(ts.arrays((p.cout,))) if bias else None
    return x, w, b


@given(data=st.data(), p=ts.conv2d_params(), bias=st.booleans())
def test_conv2d_matches_the_definition_and_has_correct_gradients(data, p, bias):
    x, w, b = conv_inputs(data, p, bias)
    y = F.conv2d(leaf(x), leaf(w), None if b is None else leaf(b), **p.kwargs())
    assert y.shape == p.output_shape
    np.testing.assert_allclose(y.data, conv2d_reference(x, w, b, p.stride, p.padding, p.dilation, p.groups),
                               rtol=1e-10, atol=1e-10)
    arrays = [x, w] + ([b] if bias else [])
    assert_gradients(lambda *t: F.conv2d(*t, **p.kwargs()), [leaf(a) for a in arrays], name=str(p))


@settings(max_examples=15)
@given(data=st.data(), p=ts.conv2d_params(max_groups=2), layout=ts.layouts())
def test_conv2d_is_layout_invariant(data, p, layout):
    x, w, b = conv_inputs(data, p, True)
    assert_layout_invariant(lambda *t: F.conv2d(*t, **p.kwargs()), [x, w, b], layout)


@settings(max_examples=15)
@given(data=st.data(), kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)))
def test_conv2d_same_padding_keeps_the_size_and_puts_the_odd_pixel_right(data, kernel, dilation):
    x = data.draw(ts.arrays((1, 2, 5, 6)))
    w = data.draw(ts.arrays((3, 2) + kernel))
    y = F.conv2d(leaf(x), leaf(w), padding="same", dilation=dilation)
    assert y.shape == (1, 3, 5, 6)
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    explicit = np.pad(x, ((0, 0), (0, 0), (total[0] // 2, total[0] - total[0] // 2),
                          (total[1] // 2, total[1] - total[1] // 2)))
    np.testing.assert_allclose(y.data, conv2d_reference(explicit, w, None, (1, 1), (0, 0), dilation, 1), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_array_equal(F.conv2d(leaf(x), leaf(w), padding="valid").data,
                                  F.conv2d(leaf(x), leaf(w), padding=0).data)
    assert_gradients(lambda a, b: F.conv2d(a, b, padding="same", dilation=dilation), [leaf(x), leaf(w)], name="same")


def test_conv2d_argument_errors():
    x, w = leaf(np.ones((1, 3, 4, 4))), leaf(np.ones((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match="stride 1"):
        F.conv2d(x, leaf(np.ones((2, 3, 3, 3))), padding="same", stride=2)
    with pytest.raises(ValueError):
        F.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(leaf(np.ones((3, 4, 4))), w)


def test_conv2d_hand_case():
    x = leaf(np.arange(9.0).reshape(1, 1, 3, 3))
    w = leaf(np.array([[[[1.0, 0.0], [0.0, -1.0]]]]))  # x[i, j] - x[i+1, j+1]
    y = F.conv2d(x, w, leaf(np.array([0.5])))
    np.testing.assert_array_equal(y.data, np.full((1, 1, 2, 2), -4 + 0.5))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[1, 1, 0], [1, 0, -1], [0, -1, -1]])
    np.testing.assert_array_equal(w.grad[0, 0], [[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]])


# ================================================================ conv_transpose2d


@given(data=st.data(), p=ts.conv_transpose2d_params(), bias=st.booleans())
def test_conv_transpose2d_is_the_adjoint_of_conv2d_and_has_correct_gradients(data, p, bias):
    x = data.draw(ts.arrays(p.input_shape))
    w = data.draw(ts.arrays(p.weight_shape))
    y = F.conv_transpose2d(leaf(x), leaf(w), **p.kwargs())
    assert y.shape == p.output_shape
    # <conv_transpose(x, w), v> = <x, conv2d(v, w)>: the defining property, no torch needed.
    v = np.random.default_rng(0).standard_normal(y.shape)
    back = conv2d_reference(v, w, None, p.stride, p.padding, p.dilation, p.groups)
    back = back[:, :, :p.height, :p.width]  # output_padding >= stride adds rows conv2d would use
    np.testing.assert_allclose(np.sum(y.data * v), np.sum(x * back), rtol=1e-9, atol=1e-9)
    arrays = [x, w] + ([data.draw(ts.arrays((p.cout,)))] if bias else [])
    assert_gradients(lambda *t: F.conv_transpose2d(*t, **p.kwargs()), [leaf(a) for a in arrays], name=str(p))


@settings(max_examples=10)
@given(data=st.data(), p=ts.conv_transpose2d_params(), layout=ts.layouts())
def test_conv_transpose2d_is_layout_invariant(data, p, layout):
    x, w = data.draw(ts.arrays(p.input_shape)), data.draw(ts.arrays(p.weight_shape))
    assert_layout_invariant(lambda a, b: F.conv_transpose2d(a, b, **p.kwargs()), [x, w], layout)


def test_conv_transpose2d_hand_case_and_errors():
    x = leaf(np.array([[[[1.0, 2.0]]]]))
    w = leaf(np.array([[[[1.0, 10.0]]]]))
    y = F.conv_transpose2d(x, w, stride=(1, 3))
    np.testing.assert_array_equal(y.data, [[[[1, 10, 0, 2, 20]]]])
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)


# ================================================================ pooling


@given(data=st.data(), p=ts.pool2d_params())
def test_max_pool2d_matches_the_definition_and_has_correct_gradients(data, p):
    x = data.draw(ts.views(ts.distinct(p.input_shape)))
    kwargs = dict(kernel_size=p.kernel, stride=p.stride, padding=p.padding, dilation=p.dilation,
                  ceil_mode=p.ceil_mode)
    y, indices = F.max_pool2d(leaf(x), return_indices=True, **kwargs)
    expected, expected_idx = max_pool2d_reference(x, p)
    np.testing.assert_array_equal(y.data, expected)
    np.testing.assert_array_equal(indices.data, expected_idx)
    with ta.no_grad():
        np.testing.assert_array_equal(F.max_pool2d(leaf(x), return_indices=True, **kwargs)[1].data, expected_idx)
    assert_gradients(lambda a: F.max_pool2d(a, **kwargs), [leaf(x)], name=str(p))


@given(data=st.data(), p=ts.pool2d_params(dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, 3]))
def test_avg_pool2d_matches_the_definition_and_has_correct_gradients(data, p, count_include_pad, divisor_override):
    x = data.draw(ts.views(ts.arrays(p.input_shape)))
    kwargs = dict(kernel_size=p.kernel, stride=p.stride, padding=p.padding, ceil_mode=p.ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
    y = F.avg_pool2d(leaf(x), **kwargs)
    np.testing.assert_allclose(y.data, avg_pool2d_reference(x, p.kernel, p.stride, p.padding, p.ceil_mode,
                                                            count_include_pad, divisor_override), rtol=1e-12,
                               atol=1e-14)
    assert_gradients(lambda a: F.avg_pool2d(a, **kwargs), [leaf(x)], name=str(p))


def test_pooling_hand_cases_and_errors():
    x = leaf(np.array([[[[1.0, 5.0, 2.0], [4.0, 3.0, 0.0], [7.0, 8.0, 9.0]]]]))
    y = F.max_pool2d(x, 2)  # floor: one window
    np.testing.assert_array_equal(y.data, [[[[5.0]]]])
    y = F.max_pool2d(x, 2, ceil_mode=True)
    np.testing.assert_array_equal(y.data, [[[[5, 2], [8, 9]]]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[0, 1, 1], [0, 0, 0], [0, 1, 1]])
    np.testing.assert_allclose(F.avg_pool2d(x, 2, padding=1).data[0, 0], [[0.25, 1.75], [2.75, 5.0]])
    np.testing.assert_allclose(F.avg_pool2d(x, 2, padding=1, count_include_pad=False).data[0, 0],
                               [[1.0, 3.5], [5.5, 5.0]])
    with pytest.raises(ValueError, match="half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="half"):
        F.avg_pool2d(x, 2, padding=2)


# ================================================================ batch norm


@st.composite
def batch_norm_inputs(draw, min_dims=2, max_dims=4):
    ndim = draw(st.integers(min_dims, max_dims))
    shape = draw(ts.shapes(min_dims=ndim, max_dims=ndim, max_side=3))
    shape = (max(shape[0], 2),) + shape[1:]  # more than one value per channel
    ramp = np.arange(np.prod(shape)).reshape(shape) / np.prod(shape)  # spread the values of each channel
    x = draw(ts.arrays(shape, -3, 3)) + 2 * ramp
    # a channel whose values are all (nearly) equal has no well-conditioned variance
    assume(np.all(np.var(np.moveaxis(x, 1, 0).reshape(shape[1], -1), axis=1) > 1e-2))
    c = shape[1]
    return x, draw(ts.arrays((c,), 0.5, 1.5)), draw(ts.arrays((c,))), draw(ts.arrays((c,))), draw(ts.positive((c,)))


@given(inputs=batch_norm_inputs(), training=st.booleans(), affine=st.sampled_from(["both", "weight", "none"]))
def test_batch_norm_gradients_in_training_and_eval(inputs, training, affine):
    x, w, b, rm, rv = inputs
    arrays = [x] + {"both": [w, b], "weight": [w], "none": []}[affine]

    def fn(a, weight=None, bias=None):
        return F.batch_norm(a, rm.copy(), rv.copy(), weight, bias, training=training)

    assert_gradients(fn, [leaf(a) for a in arrays], name=f"batch_norm training={training}")


@given(inputs=batch_norm_inputs(min_dims=2))
def test_batch_norm_values_and_running_statistics(inputs):
    x, w, b, rm, rv = inputs
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    count = x.size // x.shape[1]
    running_mean, running_var = rm.copy(), rv.copy()
    y = F.batch_norm(leaf(x), running_mean, running_var, leaf(w), leaf(b), training=True, momentum=0.3, eps=1e-3)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    expected = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-3) * w.reshape(shape) + b.reshape(shape)
    np.testing.assert_allclose(y.data, expected, rtol=1e-9, atol=1e-10)  # normalised with the biased variance
    np.testing.assert_allclose(running_mean, 0.7 * rm + 0.3 * mean, rtol=1e-12)
    np.testing.assert_allclose(running_var, 0.7 * rv + 0.3 * var * count / (count - 1), rtol=1e-10)  # unbiased
    # eval uses the running statistics and leaves them alone
    before = running_mean.copy(), running_var.copy()
    y = F.batch_norm(leaf(x), running_mean, running_var, leaf(w), leaf(b), training=False, eps=1e-3)
    expected = (x - before[0].reshape(shape)) / np.sqrt(before[1].reshape(shape) + 1e-3) * w.reshape(shape)
    np.testing.assert_allclose(y.data, expected + b.reshape(shape), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(running_mean, before[0])
    np.testing.assert_array_equal(running_var, before[1])


def test_batch_norm_running_variance_is_unbiased_hand_case():
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1)  # mean 2.5, biased var 1.25, unbiased 5/3
    running_mean, running_var = np.zeros(1), np.ones(1)
    y = F.batch_norm(leaf(x), running_mean, running_var, training=True)
    np.testing.assert_allclose(running_mean, [0.25])
    np.testing.assert_allclose(running_var, [0.9 + 0.1 * 5 / 3])
    np.testing.assert_allclose(y.data[:, 0], (x[:, 0] - 2.5) / np.sqrt(1.25 + 1e-5))


def test_batch_norm_errors_and_float32_buffers_with_float64_input():
    with pytest.raises(ValueError):
        F.batch_norm(leaf(np.ones((1, 2))), np.zeros(2), np.ones(2), training=True)  # one value per channel
    with pytest.raises(ValueError):
        F.batch_norm(leaf(np.ones((2, 2))), None, None, training=False)
    rm, rv = np.zeros(2, np.float32), np.ones(2, np.float32)
    y = F.batch_norm(leaf(np.arange(8.0).reshape(4, 2)), rm, rv, training=True)
    assert y.dtype == np.float64 and rm.dtype == np.float32
    np.testing.assert_allclose(rm, [0.3, 0.4], rtol=1e-6)
    z = F.batch_norm(leaf(np.arange(8.0).reshape(4, 2)), None, None, training=True)  # no running stats
    np.testing.assert_allclose(z.data, y.data)


def test_batch_norm_float32_statistics_survive_a_large_mean():
    """A one-pass E[x^2] - E[x]^2 in float32 would lose the variance entirely here."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 3, 16, 16)) * 0.5 + 3000.0).astype(np.float32)
    running_mean, running_var = np.zeros(3, np.float32), np.ones(3, np.float32)
    y = F.batch_norm(Tensor(x), running_mean, running_var, training=True, momentum=1.0).data
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    expected = (x64 - mean.reshape(1, -1, 1, 1)) / np.sqrt(var.reshape(1, -1, 1, 1) + 1e-5)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, atol=2e-3)  # float32 rounding of x - mean, no worse
    np.testing.assert_allclose(running_var, var * x[:, 0].size / (x[:, 0].size - 1), rtol=1e-3)


@given(inputs=batch_norm_inputs(min_dims=4, max_dims=4), training=st.booleans())
def test_fused_batch_norm_relu_equals_relu_of_batch_norm(inputs, training):
    x, w, b, rm, rv = inputs
    pre = F.batch_norm(leaf(x), rm.copy(), rv.copy(), leaf(w), leaf(b), training=training).data
    assume(np.min(np.abs(pre)) > 1e-4)  # away from the ReLU kink

    def fused(a, weight, bias):
        return F.batch_norm_relu(a, rm.copy(), rv.copy(), weight, bias, training=training)

    def composed(a, weight, bias):
        return F.relu(F.batch_norm(a, rm.copy(), rv.copy(), weight, bias, training=training))

    out_f, grads_f = grads_of(fused, [x, w, b])
    out_c, grads_c = grads_of(composed, [x, w, b])
    np.testing.assert_allclose(out_f, out_c, rtol=1e-10, atol=1e-12)
    for gf, gc in zip(grads_f, grads_c):
        np.testing.assert_allclose(gf, gc, rtol=1e-9, atol=1e-10)
    assert_gradients(fused, [leaf(x), leaf(w), leaf(b)], name="batch_norm_relu")


@given(data=st.data(), identity=st.booleans())
def test_broadcast_residual_relu_equals_the_composition(data, identity):
    total = data.draw(ts.away_from_zero((2, 3, 4, 5), margin=0.05))  # the ReLU's input, away from its kink
    f1 = data.draw(ts.arrays((2, 3, 1, 5)))
    x = data.draw(ts.arrays((2, 3, 4, 5))) if identity else 0.0
    x2 = total - f1 - x
    arrays = [x2, f1] + ([x] if identity else [])
    out_f, grads_f = grads_of(F.broadcast_residual_relu, arrays)
    out_c, grads_c = grads_of(lambda *t: F.relu(sum(t[1:], t[0])), arrays)
    np.testing.assert_allclose(out_f, out_c, rtol=1e-12)
    for gf, gc in zip(grads_f, grads_c):
        np.testing.assert_allclose(gf, gc, rtol=1e-12)
    assert_gradients(F.broadcast_residual_relu, [leaf(a) for a in arrays], name="broadcast_residual_relu")
    with pytest.raises(ValueError):
        F.broadcast_residual_relu(leaf(x2), leaf(x2))


# ================================================================ activations


ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0), True),
    "leaky_relu": (lambda a: F.leaky_relu(a, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), True),
    "leaky_relu default": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), True),
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x)), False),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), False),
    "tanh": (F.tanh, np.tanh, False),
}


@given(data=st.data(), name=st.sampled_from(sorted(ACTIVATIONS)))
def test_activation_values_and_gradients(data, name):
    fn, reference, kink = ACTIVATIONS[name]
    x = data.draw(ts.views(ts.away_from_zero(high=4.0) if kink else ts.arrays(low=-6, high=6)))
    np.testing.assert_allclose(fn(leaf(x)).data, reference(x), rtol=1e-12, atol=1e-15)
    assert_gradients(fn, [leaf(x)], name=name)


def test_activations_at_extremes_do_not_overflow_and_keep_float32():
    x = Tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, q = F.sigmoid(x), F.silu(x)
        (s.sum() + q.sum()).backward()
    assert s.dtype == q.dtype == x.grad.dtype == np.float32
    np.testing.assert_allclose(s.data, [0, 0, 0.5, 1, 1], atol=1e-20)
    np.testing.assert_allclose(q.data, [0, -50 * np.exp(-50.0), 0, 50, 1000], atol=1e-20, rtol=1e-6)
    assert np.all(np.isfinite(x.grad))
    # at exactly 0, as in torch: relu's gradient is 0, leaky_relu's is the negative slope
    z = leaf(np.array([0.0]))
    F.relu(z).backward(np.ones(1))
    assert z.grad[0] == 0.0
    z.grad = None
    F.leaky_relu(z, 0.2).backward(np.ones(1))
    assert z.grad[0] == 0.2


@given(data=st.data(), log=st.booleans())
def test_softmax_and_log_softmax(data, log):
    x = data.draw(ts.views(ts.arrays(ts.shapes(min_dims=1, max_dims=3), -5, 5)))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    fn = (lambda a: F.log_softmax(a, dim)) if log else (lambda a: F.softmax(a, dim=dim))
    expected = log_softmax_reference(x, dim)
    np.testing.assert_allclose(fn(leaf(x)).data, expected if log else np.exp(expected), rtol=1e-12, atol=1e-14)
    assert_gradients(fn, [leaf(x)], name=f"{'log_' if log else ''}softmax dim={dim}")


def test_softmax_is_stable_for_large_logits():
    x = leaf(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(F.softmax(x, dim=1).data, [[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(F.log_softmax(x, dim=1).data, [[-np.log(2), -np.log(2), -2000 - np.log(2)]])


# ================================================================ dropout


@given(data=st.data(), p=st.sampled_from([0.2, 0.5, 0.8]), channels=st.booleans())
def test_dropout_gradients_with_a_fixed_mask(data, p, channels):
    x = data.draw(ts.arrays((2, 3, 2, 2)))
    fn = seeded((lambda a: F.dropout2d(a, p)) if channels else (lambda a: F.dropout(a, p)))
    assert_gradients(fn, [leaf(x)], name="dropout2d" if channels else "dropout")


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout2d_drops_whole_channels_with_the_inverse_keep_scale(p):
    ta.manual_seed(0)
    x = leaf(np.random.default_rng(0).uniform(1, 2, (64, 32, 3, 5)))
    y = F.dropout2d(x, p).data
    ratio = y / x.data
    per_channel = ratio.reshape(64, 32, -1)
    # each (sample, channel) plane is all zero or all scaled by 1/(1-p)
    assert np.all(np.ptp(per_channel, axis=2) < 1e-12)
    np.testing.assert_allclose(np.unique(np.round(per_channel[:, :, 0], 12)), [0, round(1 / (1 - p), 12)])
    dropped = np.mean(per_channel[:, :, 0] == 0)
    assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / (64 * 32))
    # the masks differ between samples: not one mask for the whole batch
    assert not np.all(per_channel[:, :, 0] == per_channel[:1, :, 0])


def test_dropout_drops_single_elements_and_keeps_the_expectation():
    ta.manual_seed(1)
    x = leaf(np.ones((200, 100)))
    y = F.dropout(x, 0.3).data
    assert set(np.unique(np.round(y, 12))) == {0.0, round(1 / 0.7, 12)}
    assert abs(np.mean(y == 0) - 0.3) < 0.01
    assert abs(y.mean() - 1.0) < 0.02
    ratio = y.reshape(200, 100)
    assert not np.all(ratio == ratio[:, :1])  # elements, not rows


def test_dropout_edge_cases():
    x = leaf(np.ones((4, 3, 2, 2)))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout2d(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout2d(x, 1.0).data, 0)
    with pytest.raises(ValueError):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError):
        F.dropout2d(leaf(np.ones((2, 3))), 0.5)
    ta.manual_seed(5)
    a = F.dropout(x, 0.5).data
    ta.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(x, 0.5).data, a)  # manual_seed makes masks repeatable
    # a 3-D input is one sample's (C, H, W): whole channels go
    ta.manual_seed(2)
    y = F.dropout2d(leaf(np.ones((16, 3, 4))), 0.5).data
    assert np.all(np.ptp(y.reshape(16, -1), axis=1) == 0)


# ================================================================ losses


@st.composite
def cross_entropy_cases(draw):
    n, c = draw(st.integers(1, 4)), draw(st.integers(2, 4))
    extra = draw(st.sampled_from([(), (2,), (2, 3)]))
    logits = draw(ts.arrays((n, c) + extra, -3, 3))
    probabilities = draw(st.booleans())
    kwargs = dict(reduction=draw(st.sampled_from(["mean", "sum", "none"])),
                  label_smoothing=draw(st.sampled_from([0.0, 0.1, 0.3])))
    if draw(st.booleans()):
        kwargs["weight"] = draw(ts.positive((c,), 0.5, 2.0))
    if probabilities:
        raw = draw(ts.positive((n, c) + extra, 0.05, 1.0))
        target = raw / raw.sum(axis=1, keepdims=True)
    else:
        target = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n * int(np.prod(extra)),
                                        max_size=n * int(np.prod(extra))))).reshape((n,) + extra)
        if draw(st.booleans()):
            kwargs["ignore_index"] = ignore = draw(st.integers(0, c - 1))
            assume(not (kwargs["reduction"] == "mean" and np.all(target == ignore)))
    return logits, target, kwargs


def flatten_classes(logits, target):
    """N x C x d... -> (N*d) x C, the way torch reads it."""
    c = logits.shape[1]
    flat_logits = np.moveaxis(logits, 1, -1).reshape(-1, c)
    flat_target = np.moveaxis(target, 1, -1).reshape(-1, c) if target.ndim == logits.ndim else target.reshape(-1)
    return flat_logits, flat_target


@given(case=cross_entropy_cases())
def test_cross_entropy_matches_torchs_formula_and_has_correct_gradients(case):
    logits, target, kwargs = case
    loss = F.cross_entropy(leaf(logits), target, **kwargs)
    expected = cross_entropy_reference(*flatten_classes(logits, target), **kwargs)
    if kwargs["reduction"] == "none":
        expected = expected.reshape((logits.shape[0],) + logits.shape[2:])
    assert loss.shape == np.shape(expected)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-10, atol=1e-12)
    assert_gradients(lambda a: F.cross_entropy(a, target, **kwargs), [leaf(logits)], name=f"cross_entropy {kwargs}")


def test_cross_entropy_hand_cases():
    # p = softmax([0, log 3]) = [1/4, 3/4]
    logits = np.log(np.array([[1.0, 3.0], [1.0, 3.0]]))
    target = np.array([0, 1])
    l0, l1 = -np.log(0.25), -np.log(0.75)
    assert F.cross_entropy(leaf(logits), target).item() == pytest.approx((l0 + l1) / 2)
    assert F.cross_entropy(leaf(logits), target, reduction="sum").item() == pytest.approx(l0 + l1)
    w = np.array([2.0, 1.0])
    # weighted mean divides by the weights of the targets: (2 l0 + 1 l1) / 3
    assert F.cross_entropy(leaf(logits), target, weight=w).item() == pytest.approx((2 * l0 + l1) / 3)
    # label smoothing 0.2 over 2 classes: target distribution (0.9, 0.1) for class 0; weights apply per class
    smooth = F.cross_entropy(leaf(logits), target, weight=w, label_smoothing=0.2).item()
    per_sample = [0.8 * 2 * l0 + 0.1 * (2 * l0 + 1 * l1), 0.8 * 1 * l1 + 0.1 * (2 * l0 + 1 * l1)]
    assert smooth == pytest.approx(sum(per_sample) / 3)
    # ignore_index drops the sample from the sum and from the denominator
    assert F.cross_entropy(leaf(logits), np.array([0, -100])).item() == pytest.approx(l0)
    assert F.cross_entropy(leaf(logits), np.array([0, 1]), ignore_index=1).item() == pytest.approx(l0)
    # probabilities: the mean is over samples whatever the weights
    q = np.array([[0.5, 0.5], [0.0, 1.0]])
    expected = (2 * 0.5 * l0 + 0.5 * l1 + l1) / 2
    assert F.cross_entropy(leaf(logits), q, weight=w).item() == pytest.approx(expected)
    # gradient of the mean loss: (softmax - onehot) / N
    x = leaf(logits)
    F.cross_entropy(x, target).backward()
    np.testing.assert_allclose(x.grad, (np.array([[0.25, 0.75], [0.25, 0.75]]) - np.eye(2)) / 2)


def test_cross_entropy_errors():
    x = leaf(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        F.cross_entropy(x, np.array([0, 3]))
    with pytest.raises(ValueError):
        F.cross_entropy(x, np.array([0, 1]), reduction="average")
    with pytest.raises(ValueError):
        F.cross_entropy(x, np.zeros((2, 4)))


@given(data=st.data(), reduction=st.sampled_from(["mean", "sum", "none", "batchmean"]), log_target=st.booleans())
def test_kl_div_values_and_gradients_for_input_and_target(data, reduction, log_target):
    shape = data.draw(ts.shapes(min_dims=2, max_dims=3, max_side=3))
    x = data.draw(ts.arrays(shape, -3.0, 0.0))
    t = data.draw(ts.arrays(shape, -3.0, 1.0) if log_target else ts.positive(shape, 0.05, 1.0))
    pointwise = np.exp(t) * (t - x) if log_target else t * (np.log(t) - x)
    expected = {"mean": pointwise.mean(), "sum": pointwise.sum(), "none": pointwise,
                "batchmean": pointwise.sum() / shape[0]}[reduction]
    np.testing.assert_allclose(F.kl_div(leaf(x), leaf(t), reduction=reduction, log_target=log_target).data,
                               expected, rtol=1e-12, atol=1e-14)
    assert_gradients(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target), [leaf(x), leaf(t)],
                     name=f"kl_div {reduction}")


def test_kl_div_zero_times_log_zero_is_zero():
    target = leaf(np.array([[0.5, 0.5, 0.0]]))
    x = leaf(np.log(np.array([[0.25, 0.25, 0.5]])))
    loss = F.kl_div(x, target, reduction="sum")
    assert loss.item() == pytest.approx(np.log(2))
    loss.backward()
    np.testing.assert_array_equal(x.grad, [[-0.5, -0.5, 0.0]])
    assert np.all(np.isfinite(target.grad)) and target.grad[0, 2] == 0.0
    assert F.kl_div(x, np.array([[0.5, 0.5, 0.0]]), reduction="batchmean").item() == pytest.approx(np.log(2))
    assert F.kl_div(x, np.array([[0.5, 0.5, 0.0]])).item() == pytest.approx(np.log(2) / 3)  # 'mean': all elements


@given(data=st.data(), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_mse_loss_values_and_gradients(data, reduction):
    a_shape, b_shape = data.draw(ts.broadcast_shape_pairs(min_dims=1, max_dims=3, max_side=3))
    a, b = data.draw(ts.arrays(a_shape)), data.draw(ts.arrays(b_shape))
    sq = (a - b) ** 2
    expected = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    np.testing.assert_allclose(F.mse_loss(leaf(a), leaf(b), reduction=reduction).data, expected, rtol=1e-12)
    assert_gradients(lambda x, y: F.mse_loss(x, y, reduction=reduction), [leaf(a), leaf(b)], name="mse")
    # a plain array target
    assert_gradients(lambda x: F.mse_loss(x, b, reduction=reduction), [leaf(a)], name="mse array")


def test_other_losses_hand_cases():
    x = leaf(np.array([[0.0, -1.0], [-2.0, -0.5]]))
    assert F.nll_loss(x, np.array([1, 0])).item() == pytest.approx(1.5)
    assert F.l1_loss(x, np.zeros((2, 2)), reduction="sum").item() == pytest.approx(3.5)
    with pytest.raises(ValueError):
        F.mse_loss(x, np.zeros((2, 2)), reduction="avg")


# ================================================================ PyTorch parity


DTYPES = [np.float32, np.float64]


def tolerances(dtype):
    return dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)


def check_against_torch(torch, ours, theirs, arrays, dtype, seed=0, nondiff=()):
    """ours(*tinyasc tensors) and theirs(*torch tensors): same output and input gradients.

    arrays at the positions in `nondiff` are passed without requires_grad.
    """
    arrays = [np.asarray(a, dtype) for a in arrays]
    mine = [Tensor(a.copy(), requires_grad=i not in nondiff) for i, a in enumerate(arrays)]
    theirs_in = [torch.tensor(a.copy(), requires_grad=i not in nondiff) for i, a in enumerate(arrays)]
    out, ref = ours(*mine), theirs(*theirs_in)
    assert out.dtype == dtype
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), **tolerances(dtype))
    cotangent = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    out.backward(cotangent)
    ref.backward(torch.tensor(cotangent))
    for i, (m, t) in enumerate(zip(mine, theirs_in)):
        if i in nondiff:
            continue
        assert m.grad.dtype == dtype
        np.testing.assert_allclose(m.grad, t.grad.numpy(), **tolerances(dtype), err_msg=f"input {i}")


TORCH_DEPRECATED = {"size_average", "reduce", "inplace", "_stacklevel", "dtype"}
TORCH_BUILTIN_SIGNATURES = {  # C++ builtins have no inspectable signature; these are their docs'
    "conv2d": "input, weight, bias, stride, padding, dilation, groups",
    "conv_transpose2d": "input, weight, bias, stride, padding, output_padding, groups, dilation",
    "avg_pool2d": "input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override",
    "max_pool2d": "input, kernel_size, stride, padding, dilation, ceil_mode, return_indices",
    "sigmoid": "input", "tanh": "input",
}
PUBLIC_OPS = ["conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "batch_norm", "relu", "leaky_relu", "silu",
            "sigmoid", "tanh", "softmax", "log_softmax", "dropout", "dropout2d", "cross_entropy", "kl_div",
            "mse_loss", "pad"]


@pytest.mark.parametrize("name", PUBLIC_OPS)
def test_functional_keeps_torchs_parameter_names_and_defaults(torch, name):
    import torch.nn.functional as tF

    ours = inspect.signature(getattr(F, name)).parameters
    if name in TORCH_BUILTIN_SIGNATURES:
        names = TORCH_BUILTIN_SIGNATURES[name].split(", ")
        defaults = {}
    else:
        theirs = inspect.signature(getattr(tF, name)).parameters
        names = [n for n in theirs if n not in TORCH_DEPRECATED]
        defaults = {n: p.default for n, p in theirs.items() if p.default is not inspect.Parameter.empty}
    if name == "mse_loss":
        names = [n for n in names if n != "weight"]  # torch 2.x's new per-element weight
    assert list(ours) == names
    for n, p in ours.items():
        if n in defaults and defaults[n] is not None and p.default is not inspect.Parameter.empty:
            assert p.default == defaults[n], n


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(data=st.data(), p=ts.conv2d_params(), bias=st.booleans())
def test_conv2d_matches_torch(torch, dtype, data, p, bias):
    import torch.nn.functional as tF

    x, w, b = conv_inputs(data, p, bias)
    args = (p.stride, p.padding, p.dilation, p.groups)  # positionally, in torch's order
    if bias:
        check_against_torch(torch, lambda *t: F.conv2d(*t, *args), lambda *t: tF.conv2d(*t, *args), [x, w, b], dtype)
    else:
        check_against_torch(torch, lambda a, c: F.conv2d(a, c, None, *args), lambda a, c: tF.conv2d(a, c, None, *args),
                            [x, w], dtype)


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch's notes on its own choices
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel, dilation", [((3, 3), 1), ((2, 4), 1), ((3, 2), (2, 1)), ((1, 1), 1)])
def test_conv2d_same_padding_matches_torch(torch, dtype, kernel, dilation):
    import torch.nn.functional as tF

    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((4, 2) + kernel)
    check_against_torch(torch, lambda a, c: F.conv2d(a, c, padding="same", dilation=dilation),
                        lambda a, c: tF.conv2d(a, c, padding="same", dilation=dilation), [x, w], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(data=st.data(), p=ts.conv_transpose2d_params())
def test_conv_transpose2d_matches_torch(torch, dtype, data, p):
    import torch.nn.functional as tF

    x, w, b = (data.draw(ts.arrays(s)) for s in (p.input_shape, p.weight_shape, (p.cout,)))
    args = (p.stride, p.padding, p.output_padding, p.groups, p.dilation)
    check_against_torch(torch, lambda *t: F.conv_transpose2d(*t, *args), lambda *t: tF.conv_transpose2d(*t, *args),
                        [x, w, b], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(data=st.data(), p=ts.pool2d_params())
def test_max_pool2d_matches_torch_with_indices(torch, dtype, data, p):
    import torch.nn.functional as tF

    x = data.draw(ts.distinct(p.input_shape))
    args = (p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode)
    check_against_torch(torch, lambda a: F.max_pool2d(a, *args), lambda a: tF.max_pool2d(a, *args), [x], dtype)
    _, ours = F.max_pool2d(Tensor(x), *args, return_indices=True)
    _, theirs = tF.max_pool2d(torch.tensor(x), *args, return_indices=True)
    np.testing.assert_array_equal(ours.data, theirs.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(data=st.data(), p=ts.pool2d_params(dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, 2]))
def test_avg_pool2d_matches_torch(torch, dtype, data, p, count_include_pad, divisor_override):
    import torch.nn.functional as tF

    x = data.draw(ts.arrays(p.input_shape))
    args = (p.kernel, p.stride, p.padding, p.ceil_mode, count_include_pad, divisor_override)
    check_against_torch(torch, lambda a: F.avg_pool2d(a, *args), lambda a: tF.avg_pool2d(a, *args), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 5), (2, 3, 4, 5)])
def test_batch_norm_matches_torch_including_running_statistics(torch, dtype, training, shape):
    import torch.nn.functional as tF

    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape) * 2 + 1
    c = shape[1]
    w, b = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    ours_rm, ours_rv = rm.copy(), rv.copy()
    theirs_rm, theirs_rv = torch.tensor(rm), torch.tensor(rv)
    check_against_torch(torch,
                        lambda a, c_, d: F.batch_norm(a, ours_rm, ours_rv, c_, d, training, 0.2, 1e-4),
                        lambda a, c_, d: tF.batch_norm(a, theirs_rm, theirs_rv, c_, d, training, 0.2, 1e-4),
                        [x, w, b], dtype)
    np.testing.assert_allclose(ours_rm, theirs_rm.numpy(), **tolerances(dtype))
    np.testing.assert_allclose(ours_rv, theirs_rv.numpy(), **tolerances(dtype))
    # no affine parameters
    check_against_torch(torch, lambda a: F.batch_norm(a, rm.copy(), rv.copy(), training=training),
                        lambda a: tF.batch_norm(a, torch.tensor(rm), torch.tensor(rv), training=training), [x], dtype)


ELEMENTWISE = ["relu", "leaky_relu", "silu", "sigmoid", "tanh"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activations_match_torch(torch, dtype, name):
    import torch.nn.functional as tF

    rng = np.random.default_rng(3)
    x = rng.uniform(0.05, 4, (3, 4, 5)) * rng.choice([-1, 1], (3, 4, 5))
    check_against_torch(torch, getattr(F, name), getattr(tF, name), [x], dtype)
    if name == "leaky_relu":
        check_against_torch(torch, lambda a: F.leaky_relu(a, negative_slope=0.3),
                            lambda a: tF.leaky_relu(a, negative_slope=0.3), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_matches_torch(torch, dtype, name, dim):
    import torch.nn.functional as tF

    x = np.random.default_rng(4).standard_normal((3, 4, 5)) * 3
    check_against_torch(torch, lambda a: getattr(F, name)(a, dim), lambda a: getattr(tF, name)(a, dim), [x], dtype)


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_semantics_match_torch(torch, p):
    """Masks are random, so compare what they are: scale, granularity, drop rate, eval identity."""
    import torch.nn.functional as tF

    x = np.random.default_rng(5).uniform(1, 2, (32, 16, 3, 3)).astype(np.float32)
    torch.manual_seed(0)
    ta.manual_seed(0)
    for ours, theirs in [(F.dropout(Tensor(x), p=p, training=True).data, tF.dropout(torch.tensor(x), p=p).numpy()),
                         (F.dropout2d(Tensor(x), p=p, training=True).data,
                          tF.dropout2d(torch.tensor(x), p=p).numpy())]:
        ratio_ours, ratio_theirs = ours / x, theirs / x
        for ratio in (ratio_ours, ratio_theirs):
            np.testing.assert_allclose(np.unique(np.round(ratio, 5)), [0, round(1 / (1 - p), 5)])
        # same granularity: how many distinct masks per (sample, channel) plane
        same_plane_ours = np.all(np.ptp(ratio_ours.reshape(32, 16, -1), axis=2) == 0)
        same_plane_theirs = np.all(np.ptp(ratio_theirs.reshape(32, 16, -1), axis=2) == 0)
        assert same_plane_ours == same_plane_theirs
    np.testing.assert_array_equal(F.dropout2d(Tensor(x), p, training=False).data,
                                  tF.dropout2d(torch.tensor(x), p, training=False).numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(case=cross_entropy_cases())
def test_cross_entropy_matches_torch(torch, dtype, case):
    import torch.nn.functional as tF

    logits, target, kwargs = case
    torch_kwargs = dict(kwargs)
    if "weight" in kwargs:
        torch_kwargs["weight"] = torch.tensor(kwargs["weight"].astype(dtype))
    torch_target = torch.tensor(target.astype(dtype) if target.dtype.kind == "f" else target)
    check_against_torch(torch, lambda a: F.cross_entropy(a, target, **kwargs),
                        lambda a: tF.cross_entropy(a, torch_target, **torch_kwargs), [logits], dtype)


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch's notes on its own choices
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(torch, dtype, reduction, log_target):
    import torch.nn.functional as tF

    rng = np.random.default_rng(6)
    x = log_softmax_reference(rng.standard_normal((3, 5)), 1)
    t = rng.dirichlet(np.ones(5), 3)
    t[0, 1] = 0.0  # 0 log 0
    if log_target:
        t = np.log(t + 0.1)
    check_against_torch(torch, lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target),
                        lambda a, b: tF.kl_div(a, b, reduction=reduction, log_target=log_target), [x, t], dtype,
                        nondiff=() if log_target else (1,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(torch, dtype, reduction):
    import torch.nn.functional as tF

    rng = np.random.default_rng(7)
    check_against_torch(torch, lambda a, b: F.mse_loss(a, b, reduction=reduction),
                        lambda a, b: tF.mse_loss(a, b, reduction=reduction),
                        [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode, pad", [("constant", (1, 2, -1, 0)), ("constant", (0, 0, 2, -2, 1, 1)),
                                       ("reflect", (2, 1, 1, 2)), ("replicate", (3, 0, 0, 2)),
                                       ("circular", (2, 1, 1, 3)), ("reflect", (1, 2))])
def test_pad_matches_torch(torch, dtype, mode, pad):
    import torch.nn.functional as tF

    x = np.random.default_rng(8).standard_normal((2, 3, 4, 5))
    if mode != "constant" and len(pad) == 2:
        x = x[0]  # torch pads one dim of 2-D or 3-D input only
    check_against_torch(torch, lambda a: F.pad(a, pad, mode=mode), lambda a: tF.pad(a, pad, mode=mode), [x], dtype)
    if mode == "constant":
        check_against_torch(torch, lambda a: F.pad(a, pad, value=0.5), lambda a: tF.pad(a, pad, value=0.5), [x], dtype)
