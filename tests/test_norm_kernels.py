"""The fused normalization kernels equal their NumPy references (tinyasc/kernels/norm.py)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyasc import kernels as K
from tinyasc.kernels import norm as NK

shapes = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 6), st.integers(1, 7))
dtypes = st.sampled_from([np.float32, np.float64])
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _draw(seed, shape, dtype, offset=0.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 2 + offset).astype(dtype), rng


@settings(max_examples=30, deadline=None)
@given(shapes, dtypes, st.integers(0, 2**31), st.booleans(), st.booleans(), st.floats(-50, 50))
def test_batch_norm_kernels_equal_reference(shape, dtype, seed, relu, training, offset):
    if shape[0] * shape[2] * shape[3] < 2:
        shape = (2,) + shape[1:]
    x, rng = _draw(seed, shape, dtype, offset)
    g = rng.standard_normal(shape).astype(dtype)
    w, b = rng.uniform(0.5, 2, shape[1]), rng.standard_normal(shape[1])
    mean, var = NK.batch_norm_stats_kernel(np.ascontiguousarray(x.reshape(shape[0], shape[1], -1)))
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-6, atol=1e-6 * (1 + abs(offset)))
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    y, invstd = K.batch_norm_forward(x, w, b, mean, var, 1e-5, relu)
    y_ref, invstd_ref = NK.batch_norm_forward_ref(x, w, b, mean, var, 1e-5, relu)
    tol = TOL[dtype] * (1 + abs(offset))
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    got = K.batch_norm_backward(x, g, mean, invstd, w, b, training, relu)  # the ReLU mask recomputed from x
    want = NK.batch_norm_backward_ref(x, y, g, mean, invstd_ref, w, training, relu)
    scale = max(1.0, float(np.abs(want[1]).max()), float(np.abs(want[2]).max()))
    for a, e in zip(got, want):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, e, rtol=tol * 10, atol=tol * 10 * scale)


@settings(max_examples=30, deadline=None)
@given(shapes, dtypes, st.integers(0, 2**31), st.sampled_from([0.0, 0.1, 1.0]))
def test_freq_norm_kernels_equal_reference(shape, dtype, seed, lam):
    x, rng = _draw(seed, shape, dtype, offset=3.0)
    g = rng.standard_normal(shape).astype(dtype)
    out, mean, invstd = K.freq_norm_forward(x, lam, 1e-5)
    out_ref, mean_ref, invstd_ref = NK.freq_norm_forward_ref(x, lam, 1e-5)
    tol = TOL[dtype] * 10
    np.testing.assert_allclose(mean, mean_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(out, out_ref, rtol=tol, atol=tol * 10)
    gx = K.freq_norm_backward(x, g, lam, mean, invstd)
    np.testing.assert_allclose(gx, NK.freq_norm_backward_ref(x, g, lam, mean_ref, invstd_ref),
                               rtol=tol, atol=tol * float(np.abs(invstd).max()) * 10)


@settings(max_examples=30, deadline=None)
@given(shapes, dtypes, st.integers(0, 2**31), st.booleans())
def test_broadcast_residual_relu_equals_reference(shape, dtype, seed, with_identity):
    x2, rng = _draw(seed, shape, dtype)
    f1 = rng.standard_normal(shape[:2] + (1, shape[3])).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype) if with_identity else None
    out = K.broadcast_residual_relu(x2, f1, x)
    np.testing.assert_array_equal(out, NK.broadcast_residual_relu_ref(x2, f1, x))
    g = rng.standard_normal(shape).astype(dtype)
    for a, e in zip(K.broadcast_residual_relu_backward(out, g), NK.broadcast_residual_relu_backward_ref(out, g)):
        np.testing.assert_allclose(a, e, rtol=TOL[dtype], atol=TOL[dtype] * shape[2])


def test_batch_norm_stats_accurate_far_from_zero():
    """The shifted one-pass variance stays accurate when |mean| >> std (float32 input)."""
    x = (np.random.default_rng(0).standard_normal((8, 2, 1000)) * 0.01 + 1000).astype(np.float32)
    _, var = NK.batch_norm_stats_kernel(x)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0, 2)), rtol=1e-3)


@settings(max_examples=30, deadline=None)
@given(shapes, dtypes, st.integers(0, 2**31), st.booleans())
def test_freq_mean_equals_numpy_to_the_bit(shape, dtype, seed, strided):
    x, _ = _draw(seed, shape, dtype, offset=5.0)
    if strided:  # a non-contiguous input is copied first
        x = np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 2, 3)), 2, 3)
    out = K.freq_mean(x)
    assert out.dtype == dtype and out.shape == shape[:2] + (1, shape[3])
    np.testing.assert_array_equal(out, NK.freq_mean_ref(x))


@settings(max_examples=30, deadline=None)
@given(shapes, dtypes, st.integers(0, 2**31), st.booleans(), st.booleans(), st.sampled_from([1, 2, 4]))
def test_batch_norm_backward_adds_a_frequency_broadcast_gradient_as_the_summed_one(shape, dtype, seed, relu,
                                                                                   training, subbands):
    """SubSpectralNorm's backward takes the frequency mean's gradient unsummed (N x C x 1 x T): the
    result has the same bits as the backward of the materialized sum (the kernels given zeros to
    add, as SubSpectralNorm gives them without a mean's gradient), on the kernels and on the
    references; and the kernels agree with the references."""
    n, c, rows, t = shape
    if n * rows * t < 2:
        n = 2
    x, rng = _draw(seed, (n, c * subbands, rows, t), dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    g_freq = rng.standard_normal((n, c, 1, t)).astype(dtype)
    w, b = rng.uniform(0.5, 2, x.shape[1]), rng.standard_normal(x.shape[1])
    mean, var = NK.batch_norm_stats_kernel(np.ascontiguousarray(x.reshape(n, x.shape[1], -1)))
    _, invstd = K.batch_norm_forward(x, w, b, mean, var, 1e-5, relu)
    summed = (g.reshape(n, c, subbands * rows, t) + g_freq).reshape(x.shape)  # the gradient of an N x C x F x T map
    zero = np.zeros_like(g_freq)  # the same loops, with nothing to add
    kernels = (K.batch_norm_backward(x, g, mean, invstd, w, b, training, relu, g_freq),
               K.batch_norm_backward(x, summed, mean, invstd, w, b, training, relu, zero))
    with K.use_reference():
        references = (K.batch_norm_backward(x, g, mean, invstd, w, b, training, relu, g_freq),
                      K.batch_norm_backward(x, summed, mean, invstd, w, b, training, relu))
    for got, want in (kernels, references):
        for a, e in zip(got, want):
            assert a.dtype == dtype
            np.testing.assert_array_equal(a, e)
    tol = TOL[dtype] * 10
    scale = max(1.0, float(np.abs(references[0][1]).max()), float(np.abs(references[0][2]).max()))
    for a, e in zip(kernels[0], references[0]):
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * scale)


def test_batch_norm_backward_refuses_a_frequency_gradient_that_does_not_fit():
    x = np.zeros((2, 8, 3, 5), np.float32)
    stats = (np.zeros(8), np.ones(8))
    with pytest.raises(ValueError, match="frequency-broadcast gradient"):
        K.batch_norm_backward(x, x, *stats, None, None, True, False, np.zeros((2, 3, 1, 5), np.float32))


@settings(max_examples=30, deadline=None)
@given(shapes, dtypes, st.integers(0, 2**31), st.booleans())
def test_add_freq_broadcast_equals_numpy_to_the_bit(shape, dtype, seed, strided):
    full, rng = _draw(seed, shape, dtype)
    if strided:  # a gradient may arrive as a view
        full = np.swapaxes(np.ascontiguousarray(np.swapaxes(full, 2, 3)), 2, 3)
    small = rng.standard_normal(shape[:2] + (1, shape[3])).astype(dtype)
    out = K.add_freq_broadcast(full, small)
    assert out.dtype == dtype and out.flags.c_contiguous
    np.testing.assert_array_equal(out, full + np.broadcast_to(small, shape))


@pytest.mark.parametrize("g_dtype, freq_dtype", [(np.float64, np.float32), (np.float32, np.float64)])
def test_a_frequency_broadcast_gradient_of_another_dtype_is_added_as_numpy_would(g_dtype, freq_dtype):
    """A float32 map whose two gradients differ in dtype: the sum is made in the promoted dtype
    (float64), as NumPy's g + g_freq would be, not rounded to the map's float32 first."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 3, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(g_dtype)
    g_freq = rng.standard_normal((2, 2, 1, 5)).astype(freq_dtype)
    w, b = rng.uniform(0.5, 2, 8), rng.standard_normal(8)
    mean, var = NK.batch_norm_stats_kernel(np.ascontiguousarray(x.reshape(2, 8, -1)))
    _, invstd = K.batch_norm_forward(x, w, b, mean, var, 1e-5, False)
    summed = (g.reshape(2, 2, 12, 5) + g_freq).reshape(x.shape)
    assert summed.dtype == np.float64
    got = K.batch_norm_backward(x, g, mean, invstd, w, b, True, False, g_freq)
    want = K.batch_norm_backward(x, summed, mean, invstd, w, b, True, False, np.zeros((2, 2, 1, 5)))
    for a, e in zip(got, want):
        np.testing.assert_array_equal(a, e)


def test_sub_spectral_norm_refuses_a_bad_number_of_sub_bands():
    import tinyasc as ta
    from tinyasc import functional as F

    x = ta.Tensor(np.zeros((2, 3, 8, 5), np.float32))
    stats = (np.zeros(0, np.float32), np.ones(0, np.float32))
    for subbands in (0, -4, 2.5):
        with pytest.raises(ValueError, match="positive whole number of sub-bands"):
            F.sub_spectral_norm(x, subbands, *stats, training=True)
    with pytest.raises(ValueError, match="does not fit"):
        K.batch_norm_backward(np.zeros((2, 8, 3, 5), np.float32), np.zeros((2, 8, 3, 5), np.float32),
                              np.zeros(8), np.ones(8), None, None, True, False, np.zeros((2, 0, 1, 5), np.float32))
