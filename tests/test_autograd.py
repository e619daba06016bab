"""The engine: every Tensor operation's gradient, and the mechanics of the backward walk.

Gradients are checked in float64 against central differences (directional, full Jacobian
when small, and the backward properties) over hypothesis-drawn shapes, broadcasting and
memory layouts; values are built away from kinks and ties. The mechanics tests pin down
what `Tensor.backward` promises: accumulation, depth, no_grad, dtypes, errors.
"""
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyasc as ta
from tinyasc import Tensor
from tinyasc.testing import assert_gradients

import strategies as ts  # tests/strategies.py: hypothesis strategies for the gradient checks


def leaf(array):
    return Tensor(np.asarray(array, dtype=np.float64) if not isinstance(array, np.ndarray) else array,
                  requires_grad=True)


def assert_layout_invariant(fn, arrays, layout, seed=0):
    """fn gives the same values and gradients for `arrays` in C order and in `layout`."""
    def run(inputs):
        leaves = [leaf(a) for a in inputs]
        out = fn(*leaves)
        cotangent = np.random.default_rng(seed).standard_normal(out.shape)
        out.backward(cotangent)
        return out.data, [x.grad for x in leaves]

    out_c, grads_c = run([np.ascontiguousarray(a) for a in arrays])
    out_v, grads_v = run([ts.noncontiguous(a, layout) for a in arrays])
    np.testing.assert_allclose(out_v, out_c, rtol=1e-12, atol=1e-12)
    for gv, gc in zip(grads_v, grads_c):
        np.testing.assert_allclose(gv, gc, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- elementwise gradients

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@given(data=st.data(), op=st.sampled_from(sorted(BINARY)))
def test_binary_op_gradients_with_broadcasting_and_layouts(data, op):
    shape_a, shape_b = data.draw(ts.broadcast_shape_pairs(max_dims=3, max_side=3))
    a = data.draw(ts.views(ts.arrays(shape_a)))
    b = data.draw(ts.views(ts.away_from_zero(shape_b, margin=0.5) if op == "div" else ts.arrays(shape_b)))
    assert_gradients(BINARY[op], [leaf(a), leaf(b)], name=op)


@given(data=st.data())
def test_binary_ops_with_constants_on_either_side(data):
    x = data.draw(ts.away_from_zero((2, 3), margin=0.5))
    const = data.draw(ts.away_from_zero((3,), margin=0.5))

    def fn(a):
        return (2.0 - a) * const + 3.0 / a + const / a - a / 4.0 + (const - a) + 1.5 * a + (a + const)

    assert_gradients(fn, [leaf(x)], name="constants")
    # numpy on the left still gives a Tensor (Tensor.__array_priority__)
    assert isinstance(const * leaf(x), Tensor) and isinstance(const - leaf(x), Tensor)


POWERS = [2.0, 3.0, -1.0, 0.5, 1.5, -0.5]


@given(data=st.data(), exponent=st.sampled_from(POWERS))
def test_pow_gradient(data, exponent):
    integer = float(exponent).is_integer()
    x = data.draw(ts.views(ts.away_from_zero(margin=0.3) if integer else ts.positive(low=0.3)))
    assert_gradients(lambda a: a ** exponent, [leaf(x)], name=f"pow {exponent}")


UNARY = {
    "neg": (lambda a: -a, ts.arrays),
    "exp": (lambda a: a.exp(), ts.arrays),
    "log": (lambda a: a.log(), ts.positive),
    "sqrt": (lambda a: a.sqrt(), ts.positive),
    "abs": (lambda a: a.abs(), ts.away_from_zero),
}


@given(data=st.data(), op=st.sampled_from(sorted(UNARY)))
def test_unary_op_gradients(data, op):
    fn, values = UNARY[op]
    x = data.draw(ts.views(values()))
    assert_gradients(fn, [leaf(x)], name=op)


def test_unary_values_match_numpy():
    x = np.array([[0.5, 1.0, 2.0], [0.25, 3.0, 4.0]])
    t = leaf(x)
    np.testing.assert_array_equal((-t).data, -x)
    np.testing.assert_array_equal(t.exp().data, np.exp(x))
    np.testing.assert_array_equal(t.log().data, np.log(x))
    np.testing.assert_array_equal(t.sqrt().data, np.sqrt(x))
    np.testing.assert_array_equal((-t).abs().data, x)
    np.testing.assert_array_equal((t ** 2).data, x ** 2)


def test_abs_gradient_at_zero_is_zero_as_in_torch():
    x = leaf(np.array([-1.0, 0.0, 2.0]))
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 1.0])


@given(data=st.data())
def test_clamp_gradient_away_from_the_bounds(data):
    low, high = -1.5, 1.5
    offsets = data.draw(ts.away_from_zero((3, 4), margin=0.1, high=1.0))
    at_high = data.draw(st.lists(st.booleans(), min_size=12, max_size=12))
    x = np.where(np.reshape(at_high, (3, 4)), high, low) + offsets
    kind = data.draw(st.sampled_from(["both", "min", "max"]))
    bounds = {"both": (low, high), "min": (low, None), "max": (None, high)}[kind]
    assert_gradients(lambda a: a.clamp(*bounds), [leaf(x)], name=f"clamp {kind}")


def test_clamp_values_and_gradient_mask():
    x = leaf(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]))
    y = x.clamp(-1.0, 1.0)
    np.testing.assert_array_equal(y.data, [-1, -1, 0, 1, 1])
    y.sum().backward()
    # like torch: the gradient passes where min <= x <= max, bounds included
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 0])


# ---------------------------------------------------------------- matmul


@st.composite
def matmul_shapes(draw):
    m, k, n = (draw(st.integers(1, 3)) for _ in range(3))
    kind = draw(st.sampled_from(["vv", "mv", "vm", "mm", "batched"]))
    if kind == "vv":
        return (k,), (k,)
    if kind == "mv":
        return (m, k), (k,)
    if kind == "vm":
        return (k,), (k, n)
    if kind == "mm":
        return (m, k), (k, n)
    batch_a, batch_b = draw(ts.broadcast_shape_pairs(min_dims=0, max_dims=2, max_side=2))
    return batch_a + (m, k), batch_b + (k, n)


@given(data=st.data())
def test_matmul_gradient(data):
    shape_a, shape_b = data.draw(matmul_shapes())
    a = data.draw(ts.views(ts.arrays(shape_a)))
    b = data.draw(ts.views(ts.arrays(shape_b)))
    assert_gradients(lambda x, y: x @ y, [leaf(a), leaf(b)], name=f"matmul {shape_a} @ {shape_b}")
    np.testing.assert_allclose((leaf(a) @ leaf(b)).data, a @ b, rtol=1e-12)


def test_matmul_with_numpy_operand_on_the_left():
    w = leaf(np.arange(6.0).reshape(2, 3))
    y = np.ones((4, 2)) @ w
    assert isinstance(y, Tensor) and y.shape == (4, 3)
    y.sum().backward()
    np.testing.assert_array_equal(w.grad, np.full((2, 3), 4.0))


# ---------------------------------------------------------------- reductions


@st.composite
def reduction_dims(draw, ndim):
    kind = draw(st.sampled_from(["all", "int", "tuple"]))
    if kind == "all" or ndim == 0:
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    dims = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    # torch accepts negative dims in a tuple too
    return tuple(d - ndim if draw(st.booleans()) else d for d in dims)


@given(data=st.data(), op=st.sampled_from(["sum", "mean", "amax"]), keepdim=st.booleans())
def test_reduction_gradients(data, op, keepdim):
    x = data.draw(ts.views(ts.distinct() if op == "amax" else ts.arrays()))
    dim = data.draw(reduction_dims(x.ndim))
    assert_gradients(lambda a: getattr(a, op)(dim=dim, keepdim=keepdim), [leaf(x)], name=f"{op} {dim}")
    expected = {"sum": np.sum, "mean": np.mean, "amax": np.max}[op](
        x, axis=dim if not isinstance(dim, list) else tuple(dim), keepdims=keepdim)
    np.testing.assert_allclose(getattr(leaf(x), op)(dim=dim, keepdim=keepdim).data, expected, rtol=1e-12)


@given(data=st.data(), keepdim=st.booleans())
def test_max_over_a_dim_gives_values_with_gradient_and_indices(data, keepdim):
    x = data.draw(ts.views(ts.distinct(ts.shapes(min_dims=1))))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    values, indices = leaf(x).max(dim=dim, keepdim=keepdim)
    np.testing.assert_array_equal(values.data, np.max(x, axis=dim, keepdims=keepdim))
    np.testing.assert_array_equal(indices.data, np.argmax(x, axis=dim) if not keepdim else
                                  np.expand_dims(np.argmax(x, axis=dim), dim))
    assert not indices.requires_grad
    assert_gradients(lambda a: a.max(dim=dim, keepdim=keepdim)[0], [leaf(x)], name=f"max dim={dim}")


def test_amax_and_full_max_share_the_gradient_between_ties_like_torch():
    x = leaf(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]]))
    x.amax(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [0.5, 0, 0.5]])
    y = leaf(np.array([3.0, 1.0, 3.0]))
    y.max().backward()
    np.testing.assert_array_equal(y.grad, [0.5, 0, 0.5])


@given(x=ts.arrays(ts.shapes(min_dims=2, max_dims=3, min_side=2)), unbiased=st.booleans())
def test_var_matches_numpy_and_has_gradient(x, unbiased):
    t = leaf(x)
    np.testing.assert_allclose(t.var(dim=1, unbiased=unbiased).data, np.var(x, axis=1, ddof=int(unbiased)),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(t.var(unbiased=unbiased).data, np.var(x, ddof=int(unbiased)), rtol=1e-10)
    assert_gradients(lambda a: a.var(dim=-1, keepdim=True, unbiased=unbiased), [leaf(x)], name="var")


# ---------------------------------------------------------------- shape operations


@given(data=st.data())
def test_reshape_view_flatten_squeeze_gradients(data):
    x = data.draw(ts.views(ts.arrays(ts.shapes(min_dims=1, max_dims=3))))
    reversed_shape = tuple(reversed(x.shape))

    def fn(a):
        b = a.reshape(-1).view(reversed_shape).reshape((x.size,))
        c = a.unsqueeze(0).unsqueeze(-1).squeeze(-1).squeeze(0).flatten()
        return b * c + a.flatten(0, -1).reshape(x.shape).sum()

    assert_gradients(fn, [leaf(x)], name="reshape")


@given(data=st.data())
def test_permute_and_transpose_gradients(data):
    x = data.draw(ts.views(ts.arrays(ts.shapes(min_dims=2, max_dims=4, max_side=3))))
    dims = data.draw(st.permutations(range(x.ndim)))
    d0, d1 = data.draw(st.integers(-x.ndim, x.ndim - 1)), data.draw(st.integers(-x.ndim, x.ndim - 1))
    y = leaf(x).permute(*dims)
    np.testing.assert_array_equal(y.data, np.transpose(x, dims))
    np.testing.assert_array_equal(leaf(x).transpose(d0, d1).data, np.swapaxes(x, d0, d1))
    np.testing.assert_array_equal(leaf(x).T.data, x.T)
    weights = np.arange(np.prod(y.shape), dtype=np.float64).reshape(y.shape)
    # a weighted sum makes a wrong inverse permutation visible
    assert_gradients(lambda a: a.permute(dims) * weights + a.transpose(d0, d1).sum(), [leaf(x)], name="permute")


@given(data=st.data())
def test_expand_gradient_sums_over_the_broadcast(data):
    x = data.draw(ts.arrays((3, 1)))
    assert_gradients(lambda a: a.expand(2, 3, 4) * np.arange(24.0).reshape(2, 3, 4), [leaf(x)], name="expand")


@st.composite
def basic_keys(draw, shape):
    key = []
    for n in shape:
        kind = draw(st.sampled_from(["slice", "int", "all"]))
        if kind == "int":
            key.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            step = draw(st.sampled_from([1, 2, 3, -1, -2]))
            start = draw(st.none() | st.integers(-n, n - 1))
            stop = draw(st.none() | st.integers(-n - 1, n))
            key.append(slice(start, stop, step))
        else:
            key.append(slice(None))
        if draw(st.integers(0, 4)) == 0:
            key.append(None)
    if draw(st.booleans()) and len(key) > 1:
        key = [Ellipsis] + key[1:]
    return tuple(key)


@given(data=st.data())
def test_basic_slicing_gradient(data):
    x = data.draw(ts.views(ts.arrays(ts.shapes(min_dims=1, max_dims=3, max_side=5))))
    key = data.draw(basic_keys(x.shape))
    expected = x[key]
    np.testing.assert_array_equal(leaf(x)[key].data, expected)
    assert_gradients(lambda a: a[key] * 1.0, [leaf(x)], name=f"slice {key}")


@given(data=st.data())
def test_advanced_indexing_gradient_with_repeated_indices(data):
    x = data.draw(ts.views(ts.arrays(ts.shapes(min_dims=2, max_dims=3, max_side=4))))
    rows = data.draw(st.lists(st.integers(-x.shape[0], x.shape[0] - 1), min_size=1, max_size=6))
    cols = data.draw(st.lists(st.integers(0, x.shape[1] - 1), min_size=len(rows), max_size=len(rows)))
    mask = data.draw(st.lists(st.booleans(), min_size=x.shape[0], max_size=x.shape[0]))
    rows = np.array(rows)
    keys = [rows, (slice(None), np.array(cols)), (rows, np.array(cols)),
            Tensor(rows), np.array(mask)]
    for key in keys:
        raw = key.data if isinstance(key, Tensor) else key
        np.testing.assert_array_equal(leaf(x)[key].data, x[raw])
        assert_gradients(lambda a: a[key] * 1.0, [leaf(x)], name=f"index {key}")


def test_advanced_indexing_accumulates_repeats():
    x = leaf(np.zeros(4))
    x[np.array([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 0, 1, 0])


@given(data=st.data())
def test_cat_and_stack_gradients(data):
    shape = data.draw(ts.shapes(min_dims=1, max_dims=3, max_side=3))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=2, max_size=2))
    arrays = []
    for size in sizes:
        s = list(shape)
        s[dim] = size
        arrays.append(data.draw(ts.views(ts.arrays(tuple(s)))))
    np.testing.assert_array_equal(ta.cat([leaf(a) for a in arrays], dim=dim).data, np.concatenate(arrays, dim))
    # the first input appears twice: its gradient must sum both uses
    assert_gradients(lambda a, b: ta.cat([a, b, a], dim=dim), [leaf(arrays[0]), leaf(arrays[1])], name="cat")
    same = data.draw(ts.arrays(shape))
    assert_gradients(lambda a, b: ta.stack([a, b], dim=0), [leaf(same), leaf(same * 2)], name="stack")


@given(data=st.data())
def test_where_gradient_with_broadcasting(data):
    shape_x, shape_y = data.draw(ts.broadcast_shape_pairs(max_dims=3, max_side=3))
    out_shape = np.broadcast_shapes(shape_x, shape_y)
    condition = data.draw(st.lists(st.booleans(), min_size=int(np.prod(out_shape)),
                                   max_size=int(np.prod(out_shape))))
    condition = np.reshape(np.array(condition, dtype=bool), out_shape)
    x, y = data.draw(ts.arrays(shape_x)), data.draw(ts.arrays(shape_y))
    np.testing.assert_array_equal(ta.where(condition, leaf(x), leaf(y)).data, np.where(condition, x, y))
    assert_gradients(lambda a, b: ta.where(condition, a, b), [leaf(x), leaf(y)], name="where")
    # a python scalar on one side
    assert_gradients(lambda a: ta.where(condition, a, 0.5), [leaf(x)], name="where scalar")


@given(data=st.data(), layout=ts.layouts())
def test_ops_give_the_same_result_for_any_memory_layout(data, layout):
    """Views (transposed, strided, reversed) must give the values and gradients of C order."""
    x = data.draw(ts.positive((2, 3, 4)))
    y = data.draw(ts.arrays((2, 3, 4)))
    w = data.draw(ts.arrays((4, 3)))

    def fn(a, b, m):
        z = (a.log() * b + a.sqrt() / a - b.exp()).sum(dim=1, keepdim=True) + a.amax(dim=-1, keepdim=True)
        return (z @ m).permute(2, 0, 1)[:, 1:, ::-1] + (a[np.array([1, 0, 1])] * b[0]).mean(dim=(0, 2)).sum()

    assert_layout_invariant(fn, [x, y, w], layout)


# ---------------------------------------------------------------- mechanics


def test_gradients_accumulate_across_uses_of_a_node():
    x = leaf(np.array([1.0, 2.0, 3.0]))
    y = x * 2.0
    z = y * y + y + x  # dz/dx = 2y*2 + 2 + 1
    z.sum().backward()
    np.testing.assert_allclose(x.grad, 8 * x.data + 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_frequency_mean_gradient_reaches_sub_spectral_norm_unsummed(monkeypatch, dtype):
    """x2 of a BC-ResBlock is used whole and through its frequency mean. Its two gradients reach
    SubSpectralNorm's backward apart (the mean's at N x C x 1 x T size), and every gradient has
    the bits of the plain walk, which sums them first."""
    from tinyasc.functional.norm import SubSpectralNormFunction

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 8, 5)).astype(dtype)
    w = Tensor(rng.standard_normal((2, 3, 8, 5)).astype(dtype))
    v = Tensor(rng.standard_normal((2, 3, 1, 5)).astype(dtype))
    received = []
    backward = SubSpectralNormFunction.backward

    def spy(self, grad, freq_grad=None):
        received.append(None if freq_grad is None else freq_grad.shape)
        return backward(self, grad, freq_grad)

    monkeypatch.setattr(SubSpectralNormFunction, "backward", spy)

    def gradients():
        ssn = ta.nn.SubSpectralNorm(3, 4)
        if dtype == np.float64:
            ssn.double()
        inp = Tensor(x, requires_grad=True)
        x2 = ssn(inp)
        # the residual's gradient, then the f1 branch's through the mean
        (x2 * w + (x2.mean(dim=2, keepdim=True) * v).exp()).sum().backward()
        return inp.grad, ssn.weight.grad, ssn.bias.grad

    fused = gradients()
    monkeypatch.setattr(SubSpectralNormFunction, "accepts_freq_broadcast_grad", False)
    summed = gradients()
    assert received == [(2, 3, 1, 5), None]
    for a, b in zip(fused, summed):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([np.float32, np.float64])), min_size=1, max_size=5),
       st.integers(0, 2**31))
def test_gradient_sums_have_the_bits_of_adding_one_by_one(kinds, seed):
    """Whatever mix of full-size gradients and frequency broadcasts reaches a node, in any order and
    dtype, its sum is the left-to-right NumPy sum to the bit; the put-off sum is offered to a fused
    backward only as one full gradient plus one broadcast of the same dtype."""
    from tinyasc.autograd.tensor import _GradSum

    rng = np.random.default_rng(seed)
    shape = (2, 3, 4, 5)
    grads = [np.broadcast_to(rng.standard_normal((2, 3, 1, 5)).astype(dtype), shape) if broadcast
             else rng.standard_normal(shape).astype(dtype) for broadcast, dtype in kinds]
    total = _GradSum()
    for g in grads:
        total.add(g)
    expected = grads[0]
    for g in grads[1:]:
        expected = expected + g
    got = np.asarray(total.value())
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    parts = total.fused()
    if parts is not None:  # what a fused backward adds as it reads: the same bits
        assert parts[0].shape == shape and parts[1].shape == (2, 3, 1, 5) and parts[0].dtype == parts[1].dtype
        np.testing.assert_array_equal(parts[0] + parts[1], expected)
    if len(kinds) == 2 and kinds[0][0] != kinds[1][0] and kinds[0][1] == kinds[1][1]:
        assert parts is not None  # a BC-ResBlock's x2: the residual's gradient and the mean's


def test_a_gradient_that_is_only_a_frequency_broadcast_stays_a_broadcast():
    x = leaf(np.random.default_rng(0).standard_normal((2, 3, 4, 5)))
    y = x * 2.0
    (y.mean(dim=2, keepdim=True) * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(x.shape, 2.0 * 3.0 / 4))


def test_gradients_accumulate_across_backward_calls_and_reset_by_hand():
    x = leaf(np.array([1.0, -2.0]))
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_backward_through_the_same_graph_twice_accumulates():
    x = leaf(np.array([0.5, 1.5]))
    y = (x.exp() * x).sum()
    y.backward()
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_a_100k_deep_chain_backpropagates_without_recursion():
    x = leaf(np.array([1.0]))
    y = x
    depth = 100_000
    assert depth > sys.getrecursionlimit()
    for _ in range(depth):
        y = y + 1e-6
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])
    np.testing.assert_allclose(y.data, [1.0 + depth * 1e-6], rtol=1e-9)
    del y  # freeing the deep graph must not overflow the stack either


def test_no_grad_records_nothing_and_enable_grad_restores_recording():
    x = leaf(np.ones(3))
    with ta.no_grad():
        y = x * 2 + 1
        assert not ta.is_grad_enabled()
        with ta.enable_grad():
            z = x * 2
            assert ta.is_grad_enabled()
        w = (x * 3).sum()
    assert ta.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert not w.requires_grad
    assert z.requires_grad and z.grad_fn is not None
    with pytest.raises(RuntimeError):
        y.sum().backward()
    # leaves keep their flag under no_grad
    with ta.no_grad():
        p = Tensor(np.ones(2), requires_grad=True)
    assert p.requires_grad


def test_no_grad_as_a_decorator_and_set_grad_enabled():
    @ta.no_grad()
    def evaluate(t):
        return t * 2

    x = leaf(np.ones(2))
    assert not evaluate(x).requires_grad
    assert evaluate.__name__ == "evaluate"
    ta.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        ta.set_grad_enabled(True)
    assert (x * 2).requires_grad


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with ta.no_grad():
            1 / 0
    assert ta.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_the_values():
    x = leaf(np.array([1.0, 2.0]))
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    y = (x * d).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, d.data)  # d is a constant: no x * 2 term


def test_dtypes_float32_by_default_float64_and_ints_kept():
    assert Tensor(np.ones(2, np.float32)).dtype == np.float32
    assert Tensor(np.ones(2, np.float16)).dtype == np.float32
    assert Tensor([1.0, 2.0]).dtype == np.float32          # python floats: the default, like torch
    assert Tensor(0.5).dtype == np.float32
    assert ta.tensor([[1.0]], requires_grad=True).dtype == np.float32
    assert Tensor(np.ones(2, np.float64)).dtype == np.float64
    assert Tensor(np.float64(2.0)).dtype == np.float64
    assert Tensor(np.arange(3)).dtype == np.int64
    assert Tensor([1, 2]).dtype.kind == "i"
    assert Tensor(np.array([True])).dtype == np.bool_
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert ta.zeros(2, 3).dtype == np.float32 and ta.ones((2,), dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError):
        Tensor(np.arange(3), requires_grad=True)


def test_ops_keep_the_dtype_and_scalars_do_not_promote():
    x32 = Tensor(np.ones(3, np.float32), requires_grad=True)
    assert (x32 * 2.5 + 1).dtype == np.float32
    assert (x32 / 3 - x32.exp()).dtype == np.float32
    assert (x32 ** 2).dtype == np.float32
    x64 = leaf(np.ones(3))
    assert (x64 * 2.5).dtype == np.float64


def test_integer_tensors_with_float_scalars_are_not_truncated():
    t = Tensor(np.array([1, 2, 3]))
    np.testing.assert_allclose((t * 0.5).data, [0.5, 1.0, 1.5])
    np.testing.assert_allclose((t + 0.25).data, [1.25, 2.25, 3.25])
    assert (t * 2).dtype.kind == "i"


def test_grad_has_the_shape_and_dtype_of_its_input():
    x32 = Tensor(np.ones((2, 1), np.float32), requires_grad=True)
    b64 = leaf(np.ones(3))
    y = x32 * b64  # float64 (2, 3) through broadcasting and promotion
    assert y.dtype == np.float64 and y.shape == (2, 3)
    y.backward(np.ones((2, 3)))
    assert x32.grad.shape == (2, 1) and x32.grad.dtype == np.float32
    assert b64.grad.shape == (3,) and b64.grad.dtype == np.float64
    np.testing.assert_array_equal(x32.grad, [[3.0], [3.0]])
    np.testing.assert_array_equal(b64.grad, [2.0, 2.0, 2.0])


def test_cast_is_differentiable_and_returns_the_input_dtype():
    x = leaf(np.array([1.0, 2.0]))
    y = x.float()
    assert y.dtype == np.float32
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    # the cast's own backward must return the input's dtype (the leaf cast would hide it)
    assert_gradients(lambda a: a.double() * 2, [leaf(np.array([1.0, 2.0]))], name="cast")


def test_backward_errors():
    x = leaf(np.ones(3))
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(4))
    with pytest.raises(RuntimeError):
        Tensor(np.ones(3)).sum().backward()
    with pytest.raises(TypeError):
        x ** x


def test_backward_with_an_explicit_gradient_is_a_vector_jacobian_product():
    x = leaf(np.array([1.0, 2.0, 3.0]))
    y = x * x
    y.backward(np.array([1.0, 0.0, -2.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, -12.0])


def test_backward_does_not_modify_the_gradient_passed_in():
    x = leaf(np.array([1.0, 2.0]))
    for make in (lambda t: t + 0.0, lambda t: t.reshape(2), lambda t: t):
        g = np.array([1.0, 1.0])
        x.grad = None
        make(x).backward(g)  # Add and Reshape pass the incoming array straight through
        x.grad += 5  # writing to a leaf's grad must not reach the caller's array
        np.testing.assert_array_equal(g, [1.0, 1.0])


def test_a_leaf_used_directly_as_the_output():
    x = leaf(np.array(2.0))
    x.backward()
    assert x.grad == 1.0


def test_only_tensors_that_require_grad_get_a_grad():
    a = leaf(np.ones(2))
    b = Tensor(np.ones(2, np.float64))
    (a * b).sum().backward()
    assert b.grad is None and a.grad is not None


def test_comparisons_are_outside_the_graph():
    x = leaf(np.array([1.0, 2.0]))
    mask = x > 1.5
    assert mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal((x <= 1.0).data, [True, False])
    np.testing.assert_array_equal((x >= leaf(np.array([1.0, 3.0]))).data, [True, False])


def test_tensor_basics():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.shape == (2, 3) and x.ndim == 2 and x.dim() == 2 and x.size() == (2, 3) and x.size(1) == 3
    assert x.numel() == 6 and len(x) == 2 and x.is_leaf
    assert isinstance(x.numpy(), np.ndarray) and x.sum().item() == 15.0
    assert "requires_grad" in repr(leaf(np.ones(1)))
    assert x.requires_grad_().requires_grad
    assert x.zero_().data.sum() == 0


def test_pow_zero_has_a_zero_gradient_even_at_zero():
    x = leaf(np.array([0.0, 2.0]))
    (x ** 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])  # torch: 0, not 0 * inf = nan


def test_comparisons_truth_and_conversions_follow_torch():
    t = ta.Tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal((t == 2).numpy(), [False, True, False])
    np.testing.assert_array_equal((t != 2).numpy(), [True, False, True])
    assert not bool(ta.Tensor([0.0]) > 1) and bool(ta.Tensor(2.0) > 1)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(t > 1)
    assert float(ta.Tensor(2.5)) == 2.5 and int(ta.Tensor(3.0)) == 3


def test_relu_of_minus_infinity_is_zero():
    assert ta.functional.relu(ta.Tensor([-np.inf, 1.0])).numpy().tolist() == [0.0, 1.0]
