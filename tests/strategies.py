"""Hypothesis strategies for testing tinyasc's ops (the gradient checks of docs/gradcheck.md).

A gradient check is only meaningful where the function is smooth, so the strategies here
build their values to stay clear of kinks: `away_from_zero` for ReLU and |x|, `distinct`
for max-pooling and amax (no ties), `positive` for log and sqrt. Shapes stay small, because
a full-Jacobian check costs one backward per output element.

`views` turns an array into the same values with another memory layout (transposed,
strided, reversed), which is how kernels that assume C order get caught. The conv and pool
parameter strategies draw only valid combinations (output size at least 1, channels
divisible by groups), each as a small dataclass that knows its input and weight shapes.

They live with the tests, not in the package, because they need hypothesis (a test
dependency only). The tests import them as `import strategies as ts`: pytest puts tests/ on
sys.path for the test modules beside it.
"""
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["LAYOUTS", "ConvParams", "ConvTransposeParams", "PoolParams", "arrays", "away_from_zero",
           "broadcast_shape_pairs", "conv2d_params", "conv_transpose2d_params", "distinct", "layouts",
           "noncontiguous", "pool2d_params", "positive", "shapes", "views"]


# ------------------------------------------------------------------ shapes


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=4):
    """Array shapes, e.g. (3,), (2, 1, 4)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcast_shape_pairs(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Two shapes that broadcast together (size-1 dims and missing leading dims included)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             min_side=min_side, max_side=max_side).map(lambda b: b.input_shapes)


# ------------------------------------------------------------------ values


def _finite(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)


def _shape_strategy(shape):
    return shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))


def arrays(shape=None, low=-2.0, high=2.0):
    """float64 arrays with values in [low, high]; `shape` is a tuple, a strategy or None (any)."""
    shape = shapes() if shape is None else _shape_strategy(shape)
    return hnp.arrays(np.float64, shape, elements=_finite(low, high))


def positive(shape=None, low=0.5, high=2.0):
    """float64 arrays in [low, high] with low > 0: inputs for log, sqrt, division."""
    if low <= 0:
        raise ValueError(f"positive() needs low > 0, got {low}")
    return arrays(shape, low, high)


@st.composite
def away_from_zero(draw, shape=None, margin=0.1, high=2.0):
    """float64 arrays with margin <= |x| <= high: inputs for ops with a kink at 0 (relu, abs)."""
    shape = draw(shapes() if shape is None else _shape_strategy(shape))
    magnitude = draw(hnp.arrays(np.float64, shape, elements=_finite(margin, high)))
    negative = draw(hnp.arrays(np.bool_, shape))
    return np.where(negative, -magnitude, magnitude)


@st.composite
def distinct(draw, shape=None, spacing=0.05):
    """float64 arrays whose values are pairwise at least `spacing` apart (no max ties).

    A central difference with step eps << spacing then never changes which entry is the max.
    """
    shape = draw(shapes() if shape is None else _shape_strategy(shape))
    size = int(np.prod(shape, dtype=np.int64))
    order = draw(st.permutations(range(size))) if size else []
    offset = draw(_finite(-1.0, 1.0))
    centred = (np.asarray(order, dtype=np.float64) - (size - 1) / 2) * spacing
    return (centred + offset).reshape(shape)


# ------------------------------------------------------------------ layouts

LAYOUTS = ("contiguous", "transposed", "strided", "reversed")


def noncontiguous(array, layout):
    """The same values as `array` in another memory layout.

    transposed: C order of the reversed axes, seen through a transpose (Fortran-like strides);
    strided: every other element of a buffer twice as long in the last axis;
    reversed: a negative stride along axis 0.
    """
    array = np.asarray(array)
    if layout == "contiguous" or array.ndim == 0:
        return np.ascontiguousarray(array)
    if layout == "transposed":
        return np.ascontiguousarray(array.T).T
    if layout == "strided":
        buffer = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
        buffer[..., ::2] = array
        return buffer[..., ::2]
    if layout == "reversed":
        return np.ascontiguousarray(array[::-1])[::-1]
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def layouts():
    return st.sampled_from(LAYOUTS)


def views(array_strategy):
    """Arrays from `array_strategy`, each handed over in a drawn memory layout."""
    return st.tuples(array_strategy, layouts()).map(lambda pair: noncontiguous(*pair))


# ------------------------------------------------------------------ conv / pool parameters


def _out_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConvParams:
    """One valid conv2d configuration (torch semantics; pairs are (height, width))."""

    n: int
    cin: int
    cout: int
    height: int
    width: int
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int

    @property
    def input_shape(self):
        return (self.n, self.cin, self.height, self.width)

    @property
    def weight_shape(self):
        return (self.cout, self.cin // self.groups) + tuple(self.kernel)

    @property
    def output_shape(self):
        ho, wo = (_out_size(s, k, st_, p, d) for s, k, st_, p, d in
                  zip((self.height, self.width), self.kernel, self.stride, self.padding, self.dilation))
        return (self.n, self.cout, ho, wo)

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


def _pair(draw, values):
    return (draw(values), draw(values))


@st.composite
def _minimum_size(draw, kernel, stride, padding, dilation, max_extra, at_least=1):
    """A spatial size giving at least one output position along this axis."""
    smallest = max(at_least, dilation * (kernel - 1) + 1 - 2 * padding)
    return draw(st.integers(smallest, smallest + max_extra))


@st.composite
def conv2d_params(draw, max_batch=2, max_group_channels=2, max_groups=3, max_kernel=3, max_stride=2,
                  max_padding=2, max_dilation=2, max_extra=4):
    """Valid conv2d settings: channels divisible by groups, output at least 1 x 1.

    Padding may exceed the kernel (torch allows it); sizes are kept small for full Jacobians.
    """
    groups = draw(st.integers(1, max_groups))
    cin = groups * draw(st.integers(1, max_group_channels))
    cout = groups * draw(st.integers(1, max_group_channels))
    kernel = _pair(draw, st.integers(1, max_kernel))
    stride = _pair(draw, st.integers(1, max_stride))
    padding = _pair(draw, st.integers(0, max_padding))
    dilation = _pair(draw, st.integers(1, max_dilation))
    height, width = (draw(_minimum_size(k, s, p, d, max_extra))
                     for k, s, p, d in zip(kernel, stride, padding, dilation))
    return ConvParams(draw(st.integers(1, max_batch)), cin, cout, height, width, kernel, stride, padding,
                      dilation, groups)


@dataclass(frozen=True)
class ConvTransposeParams:
    """One valid conv_transpose2d configuration; weight is (Cin, Cout/groups, KH, KW)."""

    n: int
    cin: int
    cout: int
    height: int
    width: int
    kernel: tuple
    stride: tuple
    padding: tuple
    output_padding: tuple
    dilation: tuple
    groups: int

    @property
    def input_shape(self):
        return (self.n, self.cin, self.height, self.width)

    @property
    def weight_shape(self):
        return (self.cin, self.cout // self.groups) + tuple(self.kernel)

    @property
    def output_shape(self):
        ho, wo = ((s - 1) * st_ - 2 * p + d * (k - 1) + op + 1 for s, k, st_, p, op, d in
                  zip((self.height, self.width), self.kernel, self.stride, self.padding, self.output_padding,
                      self.dilation))
        return (self.n, self.cout, ho, wo)

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                    groups=self.groups, dilation=self.dilation)


@st.composite
def conv_transpose2d_params(draw, max_batch=2, max_group_channels=2, max_groups=2, max_kernel=3, max_stride=2,
                            max_padding=1, max_dilation=2, max_size=4):
    """Valid conv_transpose2d settings: output_padding < max(stride, dilation), output >= 1."""
    groups = draw(st.integers(1, max_groups))
    cin = groups * draw(st.integers(1, max_group_channels))
    cout = groups * draw(st.integers(1, max_group_channels))
    kernel = _pair(draw, st.integers(1, max_kernel))
    stride = _pair(draw, st.integers(1, max_stride))
    dilation = _pair(draw, st.integers(1, max_dilation))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    padding, sizes = [], []
    for k, s, d, op in zip(kernel, stride, dilation, output_padding):
        p = draw(st.integers(0, max_padding))
        # output (size - 1) * s - 2p + d(k-1) + op + 1 >= 1
        smallest = max(1, -(-(2 * p - d * (k - 1) - op) // s) + 1)
        padding.append(p)
        sizes.append(draw(st.integers(smallest, max(smallest, max_size))))
    return ConvTransposeParams(draw(st.integers(1, max_batch)), cin, cout, sizes[0], sizes[1], kernel, stride,
                               tuple(padding), output_padding, dilation, groups)


@dataclass(frozen=True)
class PoolParams:
    """One valid max/avg pool configuration (padding at most half the kernel, as torch requires)."""

    n: int
    channels: int
    height: int
    width: int
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool

    @property
    def input_shape(self):
        return (self.n, self.channels, self.height, self.width)


@st.composite
def pool2d_params(draw, max_batch=2, max_channels=2, max_kernel=3, max_stride=3, max_dilation=2, max_extra=4,
                  dilation=True):
    """Valid pooling settings: every window overlaps the input; dilation only if asked (max-pool).

    torch keeps a (ceil-mode) window only if it starts inside the input or the left padding;
    with padding <= kernel // 2 such a window reaches the input unless its dilation steps
    over it, which a size of at least `dilation` rules out.
    """
    kernel = _pair(draw, st.integers(1, max_kernel))
    stride = _pair(draw, st.integers(1, max_stride))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dil = _pair(draw, st.integers(1, max_dilation)) if dilation else (1, 1)
    height, width = (draw(_minimum_size(k, s, p, d, max_extra, at_least=d))
                     for k, s, p, d in zip(kernel, stride, padding, dil))
    return PoolParams(draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)), height, width,
                      kernel, stride, padding, dil, draw(st.booleans()))
