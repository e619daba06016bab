"""tinyasc.kernels: every Numba kernel against its NumPy reference, adjoint identities for the
backward passes, and (when PyTorch is installed) torch.nn.functional's semantics.

Shapes are small and drawn by hypothesis. float64 is compared tightly; float32 is compared with
the float64 reference on the same (rounded) inputs, within a few ulps of the sum of |terms|.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinyasc import kernels as K
from tinyasc.kernels import dispatch
from tinyasc.kernels import pointwise as PW

# examples per test come from the hypothesis profile (tests/conftest.py): 25, or 300 when thorough
SETTINGS = settings(deadline=None)
DTYPES = st.sampled_from([np.float64, np.float32])


@pytest.fixture(scope="module", autouse=True)
def warm_kernels():
    """Load (or compile, the first time) every kernel once, outside the drawn examples."""
    for dtype in (np.float32, np.float64):
        x = np.ones((2, 2, 6, 6), dtype)
        for w_shape, stride, padding, groups in [((2, 2, 3, 3), (2, 1), (1, 1), 1), ((2, 2, 1, 1), (1, 1), (0, 0), 1),
                                                 ((2, 1, 3, 1), (1, 1), (1, 0), 2), ((2, 1, 1, 3), (1, 1), (0, 1), 2),
                                                 ((2, 1, 5, 5), (2, 1), (2, 2), 2)]:
            w = np.ones(w_shape, dtype)
            y = K.conv2d_forward(x, w, stride, padding, (1, 1), groups)
            K.conv2d_backward_input(y, w, x.shape, stride, padding, (1, 1), groups)
            K.conv2d_backward_weight(x, y, w.shape, stride, padding, (1, 1), groups)
        y, idx = K.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
        K.max_pool2d_backward(y, idx, x.shape)
        K.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), (1, 1), False)
        y = K.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False, True, None)
        K.avg_pool2d_backward(y, x.shape, (2, 2), (2, 2), (0, 0), False, True, None)


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def assert_matches(got, ref64, scale64, dtype):
    """got (dtype) vs the float64 reference; scale64 = the same computation on |inputs|, which
    bounds the rounding error: float32 gets 64 ulps of it, float64 a few."""
    assert got.dtype == dtype and got.shape == ref64.shape
    ulps = 64 if dtype == np.float32 else 16
    tol = ulps * np.finfo(dtype).eps * scale64 + np.finfo(dtype).tiny
    err = np.abs(got.astype(np.float64) - ref64)
    worst = np.unravel_index(np.argmax(err - tol), err.shape) if err.size else None
    assert np.all(err <= tol), f"worst at {worst}: got {got[worst]}, want {ref64[worst]}, tol {tol[worst]}"


def _dot(a, b):
    return float(np.sum(a.astype(np.float64) * b.astype(np.float64)))


def assert_adjoint(lhs, rhs, scale):
    assert abs(lhs - rhs) <= 1e-10 * scale, (lhs, rhs)


# ---------------------------------------------------------------------------------------- conv


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    cin_g, cout_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    Ho = K.conv2d_output_size(H, KH, stride[0], padding[0], dilation[0])
    Wo = K.conv2d_output_size(W, KW, stride[1], padding[1], dilation[1])
    assume(Ho >= 1 and Wo >= 1)
    return (N, cin_g * groups, H, W), (cout_g * groups, cin_g, KH, KW), stride, padding, dilation, groups


@st.composite
def depthwise_cases(draw):
    C, N = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    p = draw(st.integers(0, 3))
    if draw(st.booleans()):
        kernel, padding = (3, 1), (p, 0)
    else:
        kernel, padding = (1, 3), (0, p)
    assume(H + 2 * padding[0] - kernel[0] + 1 >= 1 and W + 2 * padding[1] - kernel[1] + 1 >= 1)
    return (N, C, H, W), (C, 1) + kernel, (1, 1), padding, (1, 1), C


@st.composite
def depthwise_any_cases(draw):
    """Depthwise filters of any size, stride, padding and dilation (BC-ResNet's strided 3x1,
    dilated 1x3 and 5x5 tail): the direct kernels."""
    C, N = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    H, W = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    Ho = K.conv2d_output_size(H, KH, stride[0], padding[0], dilation[0])
    Wo = K.conv2d_output_size(W, KW, stride[1], padding[1], dilation[1])
    assume(Ho >= 1 and Wo >= 1)
    return (N, C, H, W), (C, 1, KH, KW), stride, padding, dilation, C


@st.composite
def pointwise_cases(draw):
    N, Cin, Cout = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    return (N, Cin, H, W), (Cout, Cin, 1, 1), (1, 1), (0, 0), (1, 1), 1


ANY_CONV = st.one_of(conv_cases(), depthwise_cases(), depthwise_any_cases(), pointwise_cases())


def _check_conv(case, dtype, seed):
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape, dtype), _rand(rng, w_shape, dtype)
    args = (stride, padding, dilation, groups)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = K.conv2d_forward(x, w, *args)
    assert_matches(y, K.conv2d_forward_ref(x64, w64, *args), K.conv2d_forward_ref(abs(x64), abs(w64), *args), dtype)
    gy = _rand(rng, y.shape, dtype)
    g64 = gy.astype(np.float64)
    gx = K.conv2d_backward_input(gy, w, x_shape, *args)
    assert_matches(gx, K.conv2d_backward_input_ref(g64, w64, x_shape, *args),
                   K.conv2d_backward_input_ref(abs(g64), abs(w64), x_shape, *args), dtype)
    gw = K.conv2d_backward_weight(x, gy, w_shape, *args)
    assert_matches(gw, K.conv2d_backward_weight_ref(x64, g64, w_shape, *args),
                   K.conv2d_backward_weight_ref(abs(x64), abs(g64), w_shape, *args), dtype)


@SETTINGS
@given(case=conv_cases(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_conv2d_general_matches_reference(case, dtype, seed):
    _check_conv(case, dtype, seed)


@SETTINGS
@given(case=depthwise_any_cases(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_conv2d_any_depthwise_takes_the_direct_kernels_and_matches_reference(case, dtype, seed):
    x_shape, w_shape, stride, padding, dilation, groups = case
    g = K.conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    assert dispatch.conv_forward_path(g) != "im2col"  # 1x1 with C = 1 is pointwise, 3 taps the 3-tap kernels
    assert dispatch.conv_weight_path(g, True) == dispatch.conv_forward_path(g)
    _check_conv(case, dtype, seed)


@SETTINGS
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv2d_blas_weight_gradient_and_row_tiles_match_reference(case, seed):
    """Small layers take the dot-product weight-gradient kernel; forcing BLAS and a tiny im2col
    budget checks the path of wide layers, with the one-sample, few-rows tiles of large ones."""
    budget, taps = dispatch.COL_BUDGET, dispatch.DOTS_MAX_TAPS
    dispatch.COL_BUDGET, dispatch.DOTS_MAX_TAPS = 8, 0
    try:
        _check_conv(case, np.float64, seed)
    finally:
        dispatch.COL_BUDGET, dispatch.DOTS_MAX_TAPS = budget, taps


@st.composite
def few_tap_cases(draw):
    """Layers for the dot-product weight gradient: up to 9 output channels per group, so that
    its blocks of four channels by two taps and every remainder are drawn."""
    groups = draw(st.integers(1, 2))
    cin_g, cout_g = draw(st.integers(1, 2)), draw(st.integers(1, 9))
    KH, KW = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    Ho = K.conv2d_output_size(H, KH, stride[0], padding[0], 1)
    Wo = K.conv2d_output_size(W, KW, stride[1], padding[1], 1)
    assume(Ho >= 1 and Wo >= 1)
    return (N, cin_g * groups, H, W), (cout_g * groups, cin_g, KH, KW), stride, padding, (1, 1), groups


@SETTINGS
@given(case=few_tap_cases(), dtype=DTYPES, seed=st.integers(0, 2**16), one_row=st.booleans())
def test_conv2d_dots_weight_gradient_matches_reference(case, dtype, seed, one_row):
    """The dot-product weight gradient (the head conv's path), with whole-sample tiles or one
    output row per tile, against the reference."""
    x_shape, w_shape, stride, padding, dilation, groups = case
    assert w_shape[1] * w_shape[2] * w_shape[3] <= dispatch.DOTS_MAX_TAPS
    rng = np.random.default_rng(seed)
    x = _rand(rng, x_shape, dtype)
    y_shape = (x_shape[0], w_shape[0]) + tuple(K.conv2d_output_size(x_shape[2 + a], w_shape[2 + a], stride[a],
                                                                    padding[a], 1) for a in range(2))
    gy = _rand(rng, y_shape, dtype)
    budget = dispatch.DOTS_COL_BUDGET
    dispatch.DOTS_COL_BUDGET = 1 if one_row else budget
    try:
        gw = K.conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation, groups)
    finally:
        dispatch.DOTS_COL_BUDGET = budget
    x64, g64 = x.astype(np.float64), gy.astype(np.float64)
    assert_matches(gw, K.conv2d_backward_weight_ref(x64, g64, w_shape, stride, padding, dilation, groups),
                   K.conv2d_backward_weight_ref(abs(x64), abs(g64), w_shape, stride, padding, dilation, groups), dtype)


@SETTINGS
@given(case=depthwise_cases(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_conv2d_depthwise_matches_reference(case, dtype, seed):
    _check_conv(case, dtype, seed)


@SETTINGS
@given(case=depthwise_cases(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_fused_depthwise_backward_matches_reference_and_is_adjoint(case, dtype, seed):
    """conv2d_backward with both gradients: the 3x1 filter's one-pass kernel (any padding,
    border rows included) gives the references' gx and gw, and <conv(x), gy> = <x, gx> = <w, gw>."""
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape, dtype), _rand(rng, w_shape, dtype)
    args = (stride, padding, dilation, groups)
    y = K.conv2d_forward(x, w, *args)
    gy = _rand(rng, y.shape, dtype)
    gx, gw = K.conv2d_backward(gy, x, w, *args)
    x64, w64, g64 = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
    assert_matches(gx, K.depthwise_backward_input_ref(g64, w64, x_shape, padding),
                   K.depthwise_backward_input_ref(abs(g64), abs(w64), x_shape, padding), dtype)
    assert_matches(gw, K.depthwise_backward_weight_ref(x64, g64, w_shape, padding),
                   K.depthwise_backward_weight_ref(abs(x64), abs(g64), w_shape, padding), dtype)
    if dtype == np.float64:
        inner = _dot(K.conv2d_forward(x, w, *args), gy)
        scale = _dot(abs(K.conv2d_forward(abs(x), abs(w), *args)), abs(gy)) + 1.0
        assert_adjoint(inner, _dot(x, gx), scale)
        assert_adjoint(inner, _dot(w, gw), scale)
    only_x, none = K.conv2d_backward(gy, x, w, *args, need_weight=False)
    assert none is None and np.array_equal(only_x, K.conv2d_backward_input(gy, w, x_shape, *args))


@SETTINGS
@given(case=pointwise_cases(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_conv2d_pointwise_matches_reference(case, dtype, seed):
    _check_conv(case, dtype, seed)


@SETTINGS
@given(N=st.integers(1, 3), Cin=st.integers(1, 6), Cout=st.integers(1, 6), T=st.integers(1, 1200),
       dtype=DTYPES, seed=st.integers(0, 2**16))
def test_pointwise_kernels_match_reference(N, Cin, Cout, T, dtype, seed):
    """The streaming and the parallel-BLAS kernels only serve layers too big for a test, so they
    are checked directly (T up to 1200 spans several 512-column blocks)."""
    rng = np.random.default_rng(seed)
    x, w, gy = _rand(rng, (N, Cin, T), dtype), _rand(rng, (Cout, Cin), dtype), _rand(rng, (N, Cout, T), dtype)
    x64, w64, g64 = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
    y_ref, y_scale = PW.pointwise_forward_ref(x64, w64), PW.pointwise_forward_ref(abs(x64), abs(w64))
    gw_ref, gw_scale = PW.pointwise_backward_weight_ref(x64, g64), PW.pointwise_backward_weight_ref(abs(x64), abs(g64))
    for forward, weight in [(PW.pointwise_forward_kernel, PW.pointwise_backward_weight_kernel),
                            (PW.pointwise_blas_forward_kernel, PW.pointwise_blas_backward_weight_kernel)]:
        assert_matches(forward(x, w), y_ref, y_scale, dtype)
        assert_matches(weight(x, gy, 2).sum(axis=0).astype(dtype), gw_ref, gw_scale, dtype)


@SETTINGS
@given(case=ANY_CONV, seed=st.integers(0, 2**16))
def test_conv2d_adjoint_identities(case, seed):
    """<conv(x, w), g> = <x, dconv_x(g)> = <w, dconv_w(x, g)> (float64)."""
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape, np.float64), _rand(rng, w_shape, np.float64)
    args = (stride, padding, dilation, groups)
    y = K.conv2d_forward(x, w, *args)
    g = _rand(rng, y.shape, np.float64)
    lhs = _dot(y, g)
    scale = _dot(K.conv2d_forward_ref(abs(x), abs(w), *args), abs(g)) + 1e-300
    assert_adjoint(lhs, _dot(x, K.conv2d_backward_input(g, w, x_shape, *args)), scale)
    assert_adjoint(lhs, _dot(w, K.conv2d_backward_weight(x, g, w_shape, *args)), scale)


def test_conv2d_noncontiguous_inputs():
    rng = np.random.default_rng(0)
    x = _rand(rng, (2, 6, 9, 3), np.float64).transpose(0, 3, 1, 2)  # (2, 3, 6, 9), not contiguous
    w = _rand(rng, (3, 4, 3, 2), np.float64).transpose(1, 0, 2, 3)  # (4, 3, 3, 2)
    args = ((2, 1), (1, 0), (1, 1), 1)
    np.testing.assert_allclose(K.conv2d_forward(x, w, *args), K.conv2d_forward_ref(x, w, *args), rtol=1e-12, atol=1e-12)


def test_conv2d_rejects_bad_shapes():
    with pytest.raises(ValueError):
        K.conv2d_forward(np.zeros((1, 3, 5, 5)), np.zeros((4, 2, 3, 3)), (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError):
        K.conv2d_forward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)), (1, 1), (0, 0), (1, 1), 1)


# ------------------------------------------------------------------------------ conv_transpose


@st.composite
def conv_transpose_cases(draw):
    groups = draw(st.integers(1, 3))
    cin_g, cout_g = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    output_padding = tuple(draw(st.integers(0, max(stride[a], dilation[a]) - 1)) for a in range(2))
    N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    Ho = K.conv_transpose2d_output_size(H, KH, stride[0], padding[0], output_padding[0], dilation[0])
    Wo = K.conv_transpose2d_output_size(W, KW, stride[1], padding[1], output_padding[1], dilation[1])
    assume(Ho >= 1 and Wo >= 1)
    x_shape, w_shape = (N, cin_g * groups, H, W), (cin_g * groups, cout_g, KH, KW)
    return x_shape, w_shape, stride, padding, output_padding, dilation, groups


@SETTINGS
@given(case=conv_transpose_cases(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_conv_transpose2d_forward_matches_reference(case, dtype, seed):
    x_shape, w_shape, *args = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape, dtype), _rand(rng, w_shape, dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = K.conv_transpose2d_forward(x, w, *args)
    assert_matches(y, K.conv_transpose2d_forward_ref(x64, w64, *args),
                   K.conv_transpose2d_forward_ref(abs(x64), abs(w64), *args), dtype)


@SETTINGS
@given(case=conv_transpose_cases(), seed=st.integers(0, 2**16))
def test_conv_transpose2d_adjoint_identities(case, seed):
    x_shape, w_shape, *args = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape, np.float64), _rand(rng, w_shape, np.float64)
    y = K.conv_transpose2d_forward(x, w, *args)
    g = _rand(rng, y.shape, np.float64)
    lhs = _dot(y, g)
    scale = _dot(K.conv_transpose2d_forward_ref(abs(x), abs(w), *args), abs(g)) + 1e-300
    gx = K.conv_transpose2d_backward_input(g, w, x_shape, *args)
    gw = K.conv_transpose2d_backward_weight(x, g, w_shape, *args)
    assert gx.shape == x.shape and gw.shape == w.shape
    assert_adjoint(lhs, _dot(x, gx), scale)
    assert_adjoint(lhs, _dot(w, gw), scale)


# ------------------------------------------------------------------------------------- pooling


@st.composite
def pool_cases(draw, with_dilation=True):
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    padding = (draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2)))  # torch: at most half the kernel
    ceil_mode = draw(st.booleans())
    N, C, H, W = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    Ho = K.pool_output_size(H, KH, stride[0], padding[0], dilation[0], ceil_mode)
    Wo = K.pool_output_size(W, KW, stride[1], padding[1], dilation[1], ceil_mode)
    assume(Ho >= 1 and Wo >= 1)
    return (N, C, H, W), (KH, KW), stride, padding, dilation, ceil_mode


MAX_POOL = st.one_of(pool_cases(), st.tuples(
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9)),
    st.just((2, 2)), st.just((2, 2)), st.just((0, 0)), st.just((1, 1)), st.booleans()))


def _distinct(rng, shape, dtype):
    """Values all different (no max-pool ties), well apart even in float32."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.25 - 3.0).astype(dtype)


@SETTINGS
@given(case=MAX_POOL, dtype=DTYPES, seed=st.integers(0, 2**16))
def test_max_pool2d_matches_reference(case, dtype, seed):
    x_shape, *args = case
    rng = np.random.default_rng(seed)
    x = _distinct(rng, x_shape, dtype)
    y, idx = K.max_pool2d_forward(x, *args)
    y_ref, idx_ref = K.max_pool2d_forward_ref(x, *args)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    gy = _rand(rng, y.shape, dtype)
    gx = K.max_pool2d_backward(gy, idx, x_shape)
    assert gx.dtype == dtype
    np.testing.assert_allclose(gx, K.max_pool2d_backward_ref(gy, idx, x_shape), rtol=1e-6, atol=0)


AVG_POOL = st.tuples(pool_cases(with_dilation=False), st.booleans(), st.sampled_from([None, 1, 3]))


@SETTINGS
@given(case=AVG_POOL, dtype=DTYPES, seed=st.integers(0, 2**16))
def test_avg_pool2d_matches_reference(case, dtype, seed):
    (x_shape, kernel, stride, padding, _, ceil_mode), count_include_pad, divisor = case
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    rng = np.random.default_rng(seed)
    x = _rand(rng, x_shape, dtype)
    x64 = x.astype(np.float64)
    y = K.avg_pool2d_forward(x, *args)
    assert_matches(y, K.avg_pool2d_forward_ref(x64, *args), K.avg_pool2d_forward_ref(abs(x64), *args), dtype)
    gy = _rand(rng, y.shape, dtype)
    g64 = gy.astype(np.float64)
    gx = K.avg_pool2d_backward(gy, x_shape, *args)
    assert_matches(gx, K.avg_pool2d_backward_ref(g64, x_shape, *args),
                   K.avg_pool2d_backward_ref(abs(g64), x_shape, *args), dtype)
    # the adjoint identity, float64
    g = _rand(rng, y.shape, np.float64)
    y64 = K.avg_pool2d_forward(x64, *args)
    scale = _dot(abs(y64), abs(g)) + _dot(abs(x64), abs(K.avg_pool2d_backward(g, x_shape, *args))) + 1e-300
    assert_adjoint(_dot(y64, g), _dot(x64, K.avg_pool2d_backward(g, x_shape, *args)), scale)


# ----------------------------------------------------------------------------- torch semantics


def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def _grads(torch, fn, arrays, gy):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    if isinstance(y, tuple):
        y = y[0]
    y.backward(torch.tensor(gy))
    return [t.grad.numpy() for t in ts]


TORCH_SETTINGS = settings(deadline=None)


@TORCH_SETTINGS
@given(case=ANY_CONV, seed=st.integers(0, 2**16))
def test_conv2d_matches_torch(case, seed):
    torch, F = _torch()
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape, np.float64), _rand(rng, w_shape, np.float64)
    args = (stride, padding, dilation, groups)
    y = K.conv2d_forward(x, w, *args)
    y_t = F.conv2d(torch.tensor(x), torch.tensor(w), None, *args).numpy()
    np.testing.assert_allclose(y, y_t, rtol=1e-10, atol=1e-10)
    gy = _rand(rng, y.shape, np.float64)
    gx_t, gw_t = _grads(torch, lambda a, b: F.conv2d(a, b, None, *args), (x, w), gy)
    np.testing.assert_allclose(K.conv2d_backward_input(gy, w, x_shape, *args), gx_t, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(K.conv2d_backward_weight(x, gy, w_shape, *args), gw_t, rtol=1e-10, atol=1e-10)


@TORCH_SETTINGS
@given(case=conv_transpose_cases(), seed=st.integers(0, 2**16))
def test_conv_transpose2d_matches_torch(case, seed):
    torch, F = _torch()
    x_shape, w_shape, stride, padding, output_padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape, np.float64), _rand(rng, w_shape, np.float64)
    args = (stride, padding, output_padding, dilation, groups)

    def f(a, b):
        return F.conv_transpose2d(a, b, None, stride, padding, output_padding, groups, dilation)

    y = K.conv_transpose2d_forward(x, w, *args)
    np.testing.assert_allclose(y, f(torch.tensor(x), torch.tensor(w)).numpy(), rtol=1e-10, atol=1e-10)
    gy = _rand(rng, y.shape, np.float64)
    gx_t, gw_t = _grads(torch, f, (x, w), gy)
    np.testing.assert_allclose(K.conv_transpose2d_backward_input(gy, w, x_shape, *args), gx_t, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(K.conv_transpose2d_backward_weight(x, gy, w_shape, *args), gw_t, rtol=1e-10, atol=1e-10)


@TORCH_SETTINGS
@given(case=MAX_POOL, dtype=DTYPES, seed=st.integers(0, 2**16))
def test_max_pool2d_matches_torch(case, dtype, seed):
    torch, F = _torch()
    x_shape, kernel, stride, padding, dilation, ceil_mode = case
    rng = np.random.default_rng(seed)
    x = _distinct(rng, x_shape, dtype)
    y, idx = K.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    # a dilated window wholly in the padding gives -inf and an index past its plane, which
    # torch's backward then writes through (into the next plane, or past the buffer): skip
    assume(np.all(np.isfinite(y)))
    y_t, idx_t = F.max_pool2d(torch.tensor(x), kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, y_t.numpy())
    np.testing.assert_array_equal(idx, idx_t.numpy())
    gy = _rand(rng, y.shape, dtype)
    (gx_t,) = _grads(torch, lambda a: F.max_pool2d(a, kernel, stride, padding, dilation, ceil_mode), (x,), gy)
    np.testing.assert_allclose(K.max_pool2d_backward(gy, idx, x_shape), gx_t, rtol=1e-6, atol=0)


def test_max_pool2d_ties_and_nan_like_torch():
    torch, F = _torch()
    x = np.array([[[[1.0, 1.0, 2.0, 2.0, 0.0],
                    [1.0, 0.0, 2.0, np.nan, 0.0],
                    [-np.inf, -np.inf, 5.0, 5.0, 0.0],
                    [-np.inf, -np.inf, 5.0, 5.0, 0.0]]]], np.float32)
    for kernel, stride, padding in [((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 2), (1, 1))]:
        y, idx = K.max_pool2d_forward(x, kernel, stride, padding, (1, 1), False)
        y_t, idx_t = F.max_pool2d(torch.tensor(x), kernel, stride, padding, return_indices=True)
        np.testing.assert_array_equal(y, y_t.numpy())
        np.testing.assert_array_equal(idx, idx_t.numpy())


@TORCH_SETTINGS
@given(case=AVG_POOL, seed=st.integers(0, 2**16))
def test_avg_pool2d_matches_torch(case, seed):
    torch, F = _torch()
    (x_shape, kernel, stride, padding, _, ceil_mode), count_include_pad, divisor = case
    rng = np.random.default_rng(seed)
    x = _rand(rng, x_shape, np.float64)

    def f(a):
        return F.avg_pool2d(a, kernel, stride, padding, ceil_mode, count_include_pad, divisor)

    y = K.avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    np.testing.assert_allclose(y, f(torch.tensor(x)).numpy(), rtol=1e-12, atol=1e-12)
    gy = _rand(rng, y.shape, np.float64)
    (gx_t,) = _grads(torch, f, (x,), gy)
    gx = K.avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    np.testing.assert_allclose(gx, gx_t, rtol=1e-12, atol=1e-12)


_STEP_SCRIPT = """
import hashlib, numpy as np, tinyasc as ta
from tinyasc import functional as F
ta.kernels.configure_runtime()
from tinyasc.models import BCResNetMod
ta.manual_seed(0)
model = BCResNetMod(c=8, num_bins=64)
rng = np.random.default_rng(0)
x = rng.standard_normal((16, 1, 64, 40)).astype(np.float32)
loss = F.cross_entropy(model(ta.Tensor(x)), rng.integers(0, 10, 16))
loss.backward()
h = hashlib.sha256(loss.data.tobytes())
for p in model.parameters():
    h.update(p.grad.tobytes())
print(h.hexdigest())
"""


def test_a_training_step_has_the_same_bits_on_one_and_two_threads():
    """Every reduction sums its partials in an order that does not depend on the thread count
    (prange only over disjoint outputs, weight-gradient chunks fixed in number)."""
    import os
    import subprocess
    import sys

    digests = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", _STEP_SCRIPT], env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        digests.append(out.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1]


def test_the_norm_benchmark_times_the_same_computation_in_all_three():
    """`tinyasc bench --what kernels` sets each norm kernel against its reference and PyTorch's
    ops: the three must compute the same thing, or the table compares unlike work."""
    torch, _ = _torch()
    from benchmarks.norms import norm_cases, norm_ops

    rng = np.random.default_rng(0)
    seen = set()
    for layer, family, shape in norm_cases(c=2, batch=2):
        for op, (fn, ref, torch_fn, elements, passes) in norm_ops(family, shape, rng, torch).items():
            ours, want, theirs = (r if isinstance(r, tuple) else (r,) for r in (fn(), ref(), torch_fn()))
            assert len(ours) == len(want) == len(theirs), (layer, op)
            for a, r, t in zip(ours, want, theirs):
                scale = np.abs(r).max()
                np.testing.assert_allclose(a, r, rtol=0, atol=1e-5 * scale, err_msg=f"{layer} {op}")
                np.testing.assert_allclose(a, t.numpy(), rtol=0, atol=1e-5 * scale, err_msg=f"{layer} {op} torch")
            seen.add((family, op))
    assert {op for _, op in seen} == {"forward", "backward"} and len(seen) == 9
