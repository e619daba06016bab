"""A gradient check for every operation and layer: what `tinyasc gradcheck` runs.

Each entry builds a small float64 problem from a seeded generator: a function of tensors
and the tensors. Inputs stay away from kinks by construction (ReLU inputs bounded away
from 0, max-pool inputs all distinct, |x| inputs away from 0), so central differences
are valid. The property tests in tests/ draw shapes with hypothesis; this list is the
quick, fixed-shape tour a learner can run and read.
"""
import numpy as np

from tinyasc import functional as F
from tinyasc import nn
from tinyasc import random as ta_random
from tinyasc.autograd.tensor import Tensor, cat, where
from tinyasc.translator.model import ConvSSN, PatchDiscriminator, ResBlock, UNetGenerator, lsgan_loss
from tinyasc.testing.gradcheck import GradcheckResult, check_backward_properties, gradcheck


def leaf(array):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def away_from_zero(rng, shape, margin=0.1):
    """Values with |x| >= margin, for ops with a kink at 0."""
    x = rng.uniform(margin, 1.5, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape)


def distinct(rng, shape):
    """Distinct values spaced 0.05 apart, so max-pool never sees a tie."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.05 + rng.uniform(0, 0.01)


def _module_case(module, x):
    module.double()
    params = [p for p in module.parameters()]

    def fn(inp, *weights):
        return module(inp)

    return fn, [x] + params


def _seeded(fn, seed=7):
    """Wrap a stochastic function so that every call draws the same mask."""
    def wrapped(*args):
        state = ta_random.get_state()
        ta_random.manual_seed(seed)
        try:
            return fn(*args)
        finally:
            ta_random.set_state(state)
    return wrapped


def cases():
    """(name, builder) pairs; builder(rng) -> (fn, inputs)."""
    yield "add (broadcast)", lambda g: (lambda a, b: a + b, [leaf(g.standard_normal((3, 1, 4))), leaf(g.standard_normal((2, 4)))])
    yield "sub (broadcast)", lambda g: (lambda a, b: a - b, [leaf(g.standard_normal((3, 4))), leaf(g.standard_normal((4,)))])
    yield "mul (broadcast)", lambda g: (lambda a, b: a * b, [leaf(g.standard_normal((2, 3, 4))), leaf(g.standard_normal((3, 1)))])
    yield "div", lambda g: (lambda a, b: a / b, [leaf(g.standard_normal((3, 4))), leaf(away_from_zero(g, (3, 4)))])
    yield "neg", lambda g: (lambda a: -a, [leaf(g.standard_normal((3, 4)))])
    yield "pow", lambda g: (lambda a: a ** 3.0 + a.abs() ** 0.5, [leaf(away_from_zero(g, (3, 4)))])
    yield "exp", lambda g: (lambda a: a.exp(), [leaf(g.standard_normal((3, 4)))])
    yield "log", lambda g: (lambda a: a.log(), [leaf(g.uniform(0.5, 2.0, (3, 4)))])
    yield "sqrt", lambda g: (lambda a: a.sqrt(), [leaf(g.uniform(0.5, 2.0, (3, 4)))])
    yield "abs", lambda g: (lambda a: a.abs(), [leaf(away_from_zero(g, (3, 4)))])
    yield "matmul (batched)", lambda g: (lambda a, b: a @ b, [leaf(g.standard_normal((2, 3, 4))), leaf(g.standard_normal((4, 5)))])
    yield "matmul (vector)", lambda g: (lambda a, b: a @ b, [leaf(g.standard_normal((4,))), leaf(g.standard_normal((2, 4, 3)))])
    yield "sum (dims, keepdim)", lambda g: (lambda a: a.sum(dim=(0, 2), keepdim=True) * a.sum(), [leaf(g.standard_normal((2, 3, 4)))])
    yield "mean (dim)", lambda g: (lambda a: a.mean(dim=1), [leaf(g.standard_normal((2, 3, 4)))])
    yield "amax (dim)", lambda g: (lambda a: a.amax(dim=-1), [leaf(distinct(g, (3, 5)))])
    yield "max (dim, values)", lambda g: (lambda a: a.max(dim=0)[0], [leaf(distinct(g, (4, 3)))])
    yield "reshape / view", lambda g: (lambda a: a.reshape(6, 2).view(3, 4) * 2, [leaf(g.standard_normal((2, 6)))])
    yield "permute / transpose", lambda g: (lambda a: a.permute(2, 0, 1).transpose(0, 1) * 1, [leaf(g.standard_normal((2, 3, 4)))])
    yield "slicing (basic)", lambda g: (lambda a: a[1:, ::2, None], [leaf(g.standard_normal((3, 5)))])
    yield "indexing (advanced, repeats)", lambda g: (lambda a: a[np.array([0, 2, 0]), 1:], [leaf(g.standard_normal((3, 4)))])
    yield "pad (constant)", lambda g: (lambda a: F.pad(a, (1, 2, 0, 1), value=0.5), [leaf(g.standard_normal((2, 3, 4)))])
    yield "pad (negative = crop)", lambda g: (lambda a: F.pad(a, (-1, 1)), [leaf(g.standard_normal((2, 5)))])
    yield "pad (reflect)", lambda g: (lambda a: F.pad(a, (2, 1, 1, 2), mode="reflect"), [leaf(g.standard_normal((1, 2, 4, 5)))])
    yield "pad (replicate)", lambda g: (lambda a: F.pad(a, (2, 3), mode="replicate"), [leaf(g.standard_normal((2, 3)))])
    yield "cat", lambda g: (lambda a, b: cat([a, b, a], dim=1), [leaf(g.standard_normal((2, 3))), leaf(g.standard_normal((2, 1)))])

    def where_case(g):
        condition = g.random((3, 4)) > 0.5  # drawn once here: inside fn it would change between calls
        return (lambda a, b: where(condition, a, b)), [leaf(g.standard_normal((3, 4))), leaf(g.standard_normal((1, 4)))]
    yield "where", where_case
    yield "clamp", lambda g: (lambda a: a.clamp(-0.5, 0.5), [leaf(np.concatenate([g.uniform(-2, -0.6, 4), g.uniform(-0.4, 0.4, 4), g.uniform(0.6, 2, 4)]))])

    def conv(g, cin, cout, k, stride, padding, dilation, groups, bias=True, size=(7, 8)):
        x = leaf(g.standard_normal((2, cin) + size))
        w = leaf(g.standard_normal((cout, cin // groups) + k))
        b = leaf(g.standard_normal(cout)) if bias else None
        inputs = [x, w] + ([b] if bias else [])
        return (lambda x, w, b=None: F.conv2d(x, w, b, stride, padding, dilation, groups)), inputs
    yield "conv2d", lambda g: conv(g, 2, 3, (3, 3), 1, 1, 1, 1)
    yield "conv2d (stride 2, pad 2, 5x5)", lambda g: conv(g, 1, 4, (5, 5), 2, 2, 1, 1, bias=False, size=(9, 10))
    yield "conv2d (dilation, groups)", lambda g: conv(g, 4, 6, (3, 2), (1, 2), (2, 1), (2, 1), 2, size=(5, 6))
    yield "conv2d (1x1 pointwise)", lambda g: conv(g, 5, 3, (1, 1), 1, 0, 1, 1, bias=False)
    yield "conv2d (depthwise 3x1)", lambda g: conv(g, 4, 4, (3, 1), 1, (1, 0), 1, 4, bias=False, size=(5, 8))
    yield "conv2d (depthwise 1x3)", lambda g: conv(g, 4, 4, (1, 3), 1, (0, 1), 1, 4, bias=False, size=(1, 9))

    def convt(g, cin, cout, k, stride, padding, output_padding, groups, dilation):
        x = leaf(g.standard_normal((2, cin, 4, 5)))
        w = leaf(g.standard_normal((cin, cout // groups) + k))
        b = leaf(g.standard_normal(cout))
        return (lambda x, w, b: F.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)), [x, w, b]
    yield "conv_transpose2d", lambda g: convt(g, 3, 2, (3, 3), 1, 1, 0, 1, 1)
    yield "conv_transpose2d (stride 2, out pad)", lambda g: convt(g, 2, 4, (4, 3), 2, 1, 1, 2, 1)
    yield "conv_transpose2d (dilation)", lambda g: convt(g, 2, 2, (3, 3), 1, 0, 0, 1, 2)
    yield "max_pool2d (2x2)", lambda g: (lambda a: F.max_pool2d(a, 2), [leaf(distinct(g, (2, 3, 6, 7)))])
    yield "max_pool2d (3x3, stride 2, pad 1, ceil)", lambda g: (
        lambda a: F.max_pool2d(a, 3, 2, 1, ceil_mode=True), [leaf(distinct(g, (1, 2, 7, 6)))])
    yield "avg_pool2d", lambda g: (lambda a: F.avg_pool2d(a, (2, 3), (1, 2), (1, 1), count_include_pad=False), [leaf(g.standard_normal((2, 2, 5, 7)))])
    yield "avg_pool2d (ceil, include pad)", lambda g: (lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True), [leaf(g.standard_normal((1, 2, 6, 6)))])

    def bn(g, training):
        x = leaf(g.standard_normal((4, 3, 2, 5)) * 2 + 1)
        w, b = leaf(g.uniform(0.5, 1.5, 3)), leaf(g.standard_normal(3))
        rm, rv = g.standard_normal(3), g.uniform(0.5, 2, 3)
        return (lambda x, w, b: F.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)), [x, w, b]
    yield "batch_norm (training)", lambda g: bn(g, True)
    yield "batch_norm (eval)", lambda g: bn(g, False)
    yield "relu", lambda g: (F.relu, [leaf(away_from_zero(g, (3, 4)))])
    yield "leaky_relu", lambda g: (lambda a: F.leaky_relu(a, 0.2), [leaf(away_from_zero(g, (3, 4)))])
    yield "silu", lambda g: (F.silu, [leaf(g.standard_normal((3, 4)) * 3)])
    yield "sigmoid", lambda g: (F.sigmoid, [leaf(g.standard_normal((3, 4)) * 3)])
    yield "tanh", lambda g: (F.tanh, [leaf(g.standard_normal((3, 4)))])
    yield "softmax", lambda g: (lambda a: F.softmax(a, dim=1), [leaf(g.standard_normal((3, 5)))])
    yield "log_softmax", lambda g: (lambda a: F.log_softmax(a, dim=-1), [leaf(g.standard_normal((3, 5)))])
    yield "dropout", lambda g: (_seeded(lambda a: F.dropout(a, 0.3)), [leaf(g.standard_normal((4, 5)))])
    yield "dropout2d", lambda g: (_seeded(lambda a: F.dropout2d(a, 0.5)), [leaf(g.standard_normal((3, 4, 2, 2)))])

    def cross_entropy_case(g, logits_shape, target, **kwargs):
        # target and weights are drawn once, by the caller: inside fn they would change between calls
        return (lambda a: F.cross_entropy(a, target, **kwargs)), [leaf(g.standard_normal(logits_shape))]
    yield "cross_entropy (indices)", lambda g: cross_entropy_case(g, (4, 5), g.integers(0, 5, 4))
    yield "cross_entropy (weights, smoothing)", lambda g: cross_entropy_case(
        g, (4, 5), np.array([0, 3, -100, 4]), weight=g.uniform(0.5, 2, 5), label_smoothing=0.1)
    yield "cross_entropy (probabilities)", lambda g: cross_entropy_case(g, (4, 5), g.dirichlet(np.ones(5), 4))
    yield "cross_entropy (none, N x C x d)", lambda g: cross_entropy_case(
        g, (2, 3, 4), g.integers(0, 3, (2, 4)), reduction="none")
    yield "kl_div (batchmean)", lambda g: (
        lambda a, t: F.kl_div(F.log_softmax(a, 1), t, reduction="batchmean"),
        [leaf(g.standard_normal((3, 4))), leaf(g.dirichlet(np.ones(4), 3))])
    yield "kl_div (log_target)", lambda g: (
        lambda a, t: F.kl_div(a, t, reduction="sum", log_target=True), [leaf(g.standard_normal((3, 4))), leaf(g.standard_normal((3, 4)))])
    yield "mse_loss", lambda g: (lambda a, b: F.mse_loss(a, b), [leaf(g.standard_normal((3, 4))), leaf(g.standard_normal((3, 4)))])

    # Layers: the module's output against its input and all its parameters.
    yield "nn.Conv2d", lambda g: _module_case(nn.Conv2d(2, 3, 3, padding=1), leaf(g.standard_normal((2, 2, 5, 6))))
    yield "nn.ConvTranspose2d", lambda g: _module_case(nn.ConvTranspose2d(2, 3, 4, stride=2, padding=1), leaf(g.standard_normal((2, 2, 3, 4))))
    yield "nn.Linear", lambda g: _module_case(nn.Linear(4, 3), leaf(g.standard_normal((5, 4))))
    yield "nn.BatchNorm2d", lambda g: _module_case(nn.BatchNorm2d(3), leaf(g.standard_normal((4, 3, 2, 3))))
    yield "nn.SubSpectralNorm (4 sub-bands)", lambda g: _module_case(nn.SubSpectralNorm(2, 4), leaf(g.standard_normal((3, 2, 8, 3))))
    yield "nn.SubSpectralNorm (16 sub-bands)", lambda g: _module_case(nn.SubSpectralNorm(2, 16), leaf(g.standard_normal((2, 2, 32, 3))))
    yield "nn.SubSpectralNorm and its frequency mean (as x2 in a BC-ResBlock)", _ssn_and_its_mean
    yield "nn.FreqIN", lambda g: _module_case(nn.FreqIN(), leaf(g.standard_normal((2, 3, 4, 5))))
    yield "nn.ResNorm", lambda g: _module_case(nn.ResNorm(lam=0.1), leaf(g.standard_normal((2, 3, 4, 5))))
    yield "nn.GlobalFreqNorm", lambda g: _module_case(nn.GlobalFreqNorm(4), leaf(g.standard_normal((2, 1, 4, 5))))
    yield "nn.Dropout2d", lambda g: _module_case_seeded(nn.Dropout2d(0.5), leaf(g.standard_normal((3, 4, 2, 2))))
    yield "nn.Sequential (conv-bn-relu-pool)", lambda g: _module_case(
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2), nn.SiLU(), nn.MaxPool2d(2),
                      nn.LeakyReLU(0.2), nn.Tanh(), nn.Sigmoid()), leaf(g.standard_normal((2, 1, 6, 6))))

    # The device translator (paper 2.3): its blocks, both networks whole, and the LSGAN loss.
    yield "translator ResBlock (SSN 16)", lambda g: _module_case(ResBlock(2, 16), leaf(g.standard_normal((2, 2, 16, 2))))
    yield "translator ConvSSN (transposed, stride 2)", lambda g: _module_case(
        ConvSSN(2, 2, 4, 2, 1, 16, "relu", transposed=True), leaf(g.standard_normal((2, 2, 8, 2))))
    yield "translator UNetGenerator (T padded)", lambda g: _translator_case(
        UNetGenerator(2, width=2, depth=1, res_blocks=1, subbands=8, n_bins=16), leaf(g.standard_normal((2, 1, 16, 3))))
    yield "translator PatchDiscriminator", lambda g: _translator_case(
        PatchDiscriminator(2, width=2, layers=2), leaf(g.standard_normal((2, 1, 16, 16))), leaf(g.standard_normal((2, 1, 16, 16))))
    yield "lsgan_loss (real and fake)", lambda g: (
        lambda a, b: lsgan_loss(a, True) + 0.5 * lsgan_loss(b, False),
        [leaf(g.standard_normal((2, 1, 3, 4))), leaf(g.standard_normal((2, 1, 3, 4)))])


def _translator_case(module, *xs):
    """A conditioned network: targets 0, 1, ... for the batch; inputs and all parameters checked."""
    module.double()
    params = list(module.parameters())
    target = np.arange(xs[0].shape[0]) % module.num_targets

    def fn(*args):
        return module(*args[:len(xs)], target)

    return fn, list(xs) + params


def _ssn_and_its_mean(g):
    """SubSpectralNorm's output used whole and through its frequency mean, as a BC-ResBlock uses
    x2: the mean's gradient reaches the op unsummed (Tensor.backward's frequency-broadcast part)."""
    fn, inputs = _module_case(nn.SubSpectralNorm(2, 4), leaf(g.standard_normal((3, 2, 8, 3))))
    weight = Tensor(g.standard_normal((3, 2, 8, 3)))

    def both(*args):
        y = fn(*args)
        return y * weight + F.silu(y.mean(dim=2, keepdim=True))

    return both, inputs


def _module_case_seeded(module, x):
    fn, inputs = _module_case(module, x)
    return _seeded(fn), inputs


def run(select=None, seed=0, full=True):
    """Run every case (or those whose name contains `select`); yield GradcheckResults."""
    for name, build in cases():
        if select and select.lower() not in name.lower():
            continue
        fn, inputs = build(np.random.default_rng(seed))
        yield gradcheck(fn, inputs, name=name, mode="directional", seed=seed)
        if full:
            yield gradcheck(fn, inputs, name=name, mode="full", seed=seed)
        problems = check_backward_properties(fn, inputs, name=name, seed=seed)
        yield GradcheckResult(name, not problems, 0.0, "properties", "; ".join(problems))
