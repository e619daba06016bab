"""tinyasc.nn: layer gradients, the paper's normalizations, Module mechanics, torch interop.

Each layer is gradient-checked against its input and all its parameters (float64 after
`.double()`). SubSpectralNorm, FreqIN and ResNorm are checked against their definitions in
the paper (section 2.2) written here in NumPy. The interoperability contract (same
state dict, same outputs: docs/decisions.md) is tested on a small net built from the same layers in both frameworks.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyasc as ta
from tinyasc import Tensor, nn
from tinyasc.testing import assert_gradients

import strategies as ts  # tests/strategies.py: hypothesis strategies for the gradient checks


def leaf(array):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def check_module(module, x, name):
    """Gradient check of module(x) against x and every parameter, in float64."""
    module.double()
    assert_gradients(lambda inp, *params: module(inp), [leaf(x)] + list(module.parameters()), name=name)


def randomize(module, seed=0):
    """Non-trivial affine parameters for the norm layers (they start at 1 and 0)."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape)
    return module


# ================================================================ layer gradients


@given(data=st.data(), p=ts.conv2d_params(), bias=st.booleans())
def test_conv2d_layer_gradients(data, p, bias):
    layer = nn.Conv2d(p.cin, p.cout, p.kernel, p.stride, p.padding, p.dilation, p.groups, bias=bias)
    assert layer.weight.shape == p.weight_shape and (layer.bias is not None) == bias
    check_module(layer, data.draw(ts.arrays(p.input_shape)), str(p))


@settings(max_examples=10)
@given(data=st.data(), kernel=st.integers(1, 4))
def test_conv2d_layer_with_same_padding(data, kernel):
    layer = nn.Conv2d(2, 3, kernel, padding="same")
    x = data.draw(ts.arrays((1, 2, 4, 5)))
    assert layer(Tensor(x)).shape == (1, 3, 4, 5)
    check_module(layer, x, "same")


@given(data=st.data(), p=ts.conv_transpose2d_params(), bias=st.booleans())
def test_conv_transpose2d_layer_gradients(data, p, bias):
    layer = nn.ConvTranspose2d(p.cin, p.cout, p.kernel, p.stride, p.padding, p.output_padding, p.groups, bias,
                               p.dilation)
    assert layer.weight.shape == p.weight_shape
    check_module(layer, data.draw(ts.arrays(p.input_shape)), str(p))


@given(data=st.data(), batch=ts.shapes(min_dims=1, max_dims=2, max_side=3), sizes=st.tuples(
    st.integers(1, 4), st.integers(1, 4)), bias=st.booleans())
def test_linear_layer_gradients(data, batch, sizes, bias):
    layer = nn.Linear(*sizes, bias=bias)
    x = data.draw(ts.views(ts.arrays(batch + (sizes[0],))))
    y = layer(Tensor(x).float())
    assert y.shape == batch + (sizes[1],)
    check_module(layer, x, "linear")
    expected = x @ layer.weight.data.T + (layer.bias.data if bias else 0)
    np.testing.assert_allclose(layer(Tensor(x)).data, expected, rtol=1e-12)


@st.composite
def spectrograms(draw, channels=(1, 3), bins=(1, 4), frames=(1, 4), batch=(1, 3), bin_multiple=1):
    shape = (draw(st.integers(*batch)), draw(st.integers(*channels)),
             bin_multiple * draw(st.integers(*bins)), draw(st.integers(*frames)))
    ramp = np.arange(np.prod(shape)).reshape(shape) / np.prod(shape)  # no constant groups: variance > 0
    return draw(ts.arrays(shape, -2, 2)) + 3 * ramp


@given(x=spectrograms(batch=(2, 3)), training=st.booleans())
def test_batch_norm2d_layer_gradients(x, training):
    layer = randomize(nn.BatchNorm2d(x.shape[1]))
    layer.double()
    layer(Tensor(x * 2 + 1))  # move the running statistics away from (0, 1)
    layer.train(training)
    check_module(layer, x, f"BatchNorm2d training={training}")


@given(data=st.data(), subbands=st.sampled_from([4, 16]), training=st.booleans())
def test_sub_spectral_norm_gradients(data, subbands, training):
    x = data.draw(spectrograms(channels=(1, 2), bins=(1, 2), frames=(1, 3), batch=(2, 2), bin_multiple=subbands))
    layer = randomize(nn.SubSpectralNorm(x.shape[1], subbands))
    layer.double()
    layer(Tensor(x + 1))
    layer.train(training)
    check_module(layer, x, f"SubSpectralNorm S={subbands}")


@given(x=spectrograms(channels=(1, 3), frames=(2, 4)), lam=st.sampled_from([0.0, 0.1, 0.5]))
def test_freq_in_and_res_norm_gradients(x, lam):
    check_module(nn.FreqIN(), x, "FreqIN")
    check_module(nn.ResNorm(lam=lam), x, f"ResNorm lam={lam}")


@given(data=st.data())
def test_global_freq_norm_gradients(data):
    x = data.draw(spectrograms(bins=(2, 5)))
    layer = nn.GlobalFreqNorm(x.shape[2])
    layer.set_statistics(data.draw(ts.arrays((x.shape[2],))), data.draw(ts.positive((x.shape[2],))))
    check_module(layer, x, "GlobalFreqNorm")
    expected = (x - layer.mean.reshape(1, 1, -1, 1)) / layer.std.reshape(1, 1, -1, 1)
    np.testing.assert_allclose(layer(Tensor(x)).data, expected, rtol=1e-12)


@given(x=spectrograms(), p=st.sampled_from([0.1, 0.5]))
def test_dropout2d_layer_gradients(x, p):
    layer = nn.Dropout2d(p)

    def fn(inp):
        ta.manual_seed(3)
        return layer(inp)

    assert_gradients(fn, [leaf(x)], name="Dropout2d")


# ================================================================ the paper's normalizations


def test_sub_spectral_norm_is_batch_norm_per_channel_and_sub_band():
    rng = np.random.default_rng(0)
    n, c, s, f, t = 3, 2, 4, 8, 5
    x = rng.standard_normal((n, c, f, t)) * rng.uniform(0.5, 3, (1, c, f, 1)) + rng.standard_normal((1, c, f, 1))
    layer = nn.SubSpectralNorm(c, s).double()
    layer.weight.data[...] = np.arange(1.0, c * s + 1)
    layer.bias.data[...] = -np.arange(c * s)
    y = layer(Tensor(x)).data
    band = f // s
    for ci in range(c):
        for si in range(s):
            block = x[:, ci, si * band:(si + 1) * band]  # channel ci, sub-band si: normaliser ci*S + si
            k = ci * s + si
            expected = (block - block.mean()) / np.sqrt(block.var() + 1e-5) * (k + 1) - k
            np.testing.assert_allclose(y[:, ci, si * band:(si + 1) * band], expected, rtol=1e-10, atol=1e-10)
            count = block.size
            np.testing.assert_allclose(layer.running_mean[k], 0.1 * block.mean(), rtol=1e-10)
            np.testing.assert_allclose(layer.running_var[k], 0.9 + 0.1 * block.var() * count / (count - 1),
                                       rtol=1e-10)
    assert [k for k, _ in layer.state_dict().items()] == ["weight", "bias", "running_mean", "running_var"]
    assert all(v.shape == (c * s,) for v in layer.state_dict().values())
    with pytest.raises(ValueError, match="sub-bands"):
        layer(Tensor(np.ones((2, c, 6, 3))))
    layer.eval()
    expected = ((x.reshape(n, c * s, band, t) - layer.running_mean.reshape(1, -1, 1, 1))
                / np.sqrt(layer.running_var.reshape(1, -1, 1, 1) + 1e-5) * layer.weight.data.reshape(1, -1, 1, 1)
                + layer.bias.data.reshape(1, -1, 1, 1)).reshape(n, c, f, t)
    np.testing.assert_allclose(layer(Tensor(x)).data, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lam", [0.0, 0.1, 1.0])
def test_res_norm_is_lam_x_plus_freq_instance_norm(lam):
    """Eq. 1-3: mu and the biased variance over (C, T) for each sample and frequency bin."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 6)) * rng.uniform(0.5, 4, (2, 1, 4, 1)) + rng.standard_normal((2, 1, 4, 1))
    mu = x.mean(axis=(1, 3), keepdims=True)
    var = x.var(axis=(1, 3), keepdims=True)
    freq_in = (x - mu) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(nn.ResNorm(lam=lam)(Tensor(x)).data, lam * x + freq_in, rtol=1e-9, atol=1e-12)
    y = nn.FreqIN()(Tensor(x)).data
    np.testing.assert_allclose(y, freq_in, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(y.mean(axis=(1, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(1, 3)), var[:, 0, :, 0] / (var[:, 0, :, 0] + 1e-5), rtol=1e-9)
    # a per-bin device gain (the paper's motivation) disappears from the normalized path
    gain = rng.uniform(0.5, 2, (1, 1, 4, 1))
    np.testing.assert_allclose(nn.FreqIN(eps=0)(Tensor(x * gain)).data, nn.FreqIN(eps=0)(Tensor(x)).data, rtol=1e-9,
                               atol=1e-12)
    assert list(nn.ResNorm(lam).parameters()) == [] and nn.ResNorm(lam).state_dict() == {}
    with pytest.raises(ValueError):
        nn.FreqIN()(Tensor(np.ones((2, 3, 4))))


def test_res_norm_keeps_float32():
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32), requires_grad=True)
    y = nn.ResNorm()(x)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_freq_norm_float32_survives_a_large_offset():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 3, 4, 50)) * 0.5 + 3000.0).astype(np.float32)
    x64 = x.astype(np.float64)
    expected = (x64 - x64.mean(axis=(1, 3), keepdims=True)) / np.sqrt(x64.var(axis=(1, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(nn.ResNorm(lam=0.0)(Tensor(x)).data, expected, atol=2e-3)


def test_batch_norm2d_modes():
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((4, 2, 3, 3)) * 2 + 5)
    layer = nn.BatchNorm2d(2).double()
    for _ in range(3):
        layer(x)
    assert np.all(layer.running_mean > 0.5)
    layer.eval()
    y = layer(x).data
    mean, var = layer.running_mean.reshape(1, -1, 1, 1), layer.running_var.reshape(1, -1, 1, 1)
    expected = (x.data - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-10)
    free = nn.BatchNorm2d(2, affine=False, track_running_stats=False).double().eval()
    assert list(free.parameters()) == [] and free.state_dict() == {}
    z = free(x).data  # no running statistics: batch statistics even in eval
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    fused_layer = nn.BatchNormReLU2d(2).double().eval()
    fused_layer.load_state_dict(layer.state_dict())  # same parameter and buffer names
    fused = fused_layer(x).data
    np.testing.assert_allclose(fused, np.maximum(y, 0), rtol=1e-12)


def test_dropout_layers_follow_the_mode():
    x = Tensor(np.ones((8, 16, 2, 2)))
    layer = nn.Sequential(nn.Dropout2d(0.5), nn.Dropout(0.5))
    layer.eval()
    assert layer(x) is x
    layer.train()
    ta.manual_seed(0)
    assert np.any(layer(x).data == 0)
    assert "p=0.5" in repr(layer)


def test_activation_and_pool_layers_match_functional():
    x = Tensor(np.random.default_rng(4).standard_normal((1, 2, 6, 6)))
    F = nn.functional
    np.testing.assert_array_equal(nn.ReLU()(x).data, F.relu(x).data)
    np.testing.assert_array_equal(nn.LeakyReLU(0.3)(x).data, F.leaky_relu(x, 0.3).data)
    np.testing.assert_array_equal(nn.SiLU()(x).data, F.silu(x).data)
    np.testing.assert_array_equal(nn.Sigmoid()(x).data, F.sigmoid(x).data)
    np.testing.assert_array_equal(nn.Tanh()(x).data, F.tanh(x).data)
    assert nn.Identity()(x) is x
    np.testing.assert_array_equal(nn.MaxPool2d(3, 2, 1)(x).data, F.max_pool2d(x, 3, 2, 1).data)
    np.testing.assert_array_equal(nn.AvgPool2d(2, count_include_pad=False)(x).data, F.avg_pool2d(x, 2).data)


# ================================================================ Module mechanics


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.blocks = nn.Sequential(Block(), nn.ModuleList([nn.Linear(3, 2)]))
        self.head = nn.Linear(2, 4)
        self.register_buffer("steps", np.zeros(1, np.int64))


def test_named_parameters_buffers_and_state_dict_order():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "blocks.0.conv.weight", "blocks.0.bn.weight", "blocks.0.bn.bias", "blocks.1.0.weight",
        "blocks.1.0.bias", "head.weight", "head.bias"]
    assert [n for n, _ in net.named_buffers()] == ["steps", "blocks.0.bn.running_mean", "blocks.0.bn.running_var"]
    assert list(net.state_dict()) == [
        "scale", "steps", "blocks.0.conv.weight", "blocks.0.bn.weight", "blocks.0.bn.bias",
        "blocks.0.bn.running_mean", "blocks.0.bn.running_var", "blocks.1.0.weight", "blocks.1.0.bias",
        "head.weight", "head.bias"]
    assert [n for n, _ in net.blocks.named_parameters(prefix="blocks")][0] == "blocks.0.conv.weight"
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_modules()][:4] == ["", "blocks", "blocks.0", "blocks.0.conv"]
    assert [n for n, _ in net.named_children()] == ["blocks", "head"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())


def test_shared_parameters_are_listed_once():
    a = nn.Linear(2, 2)
    seq = nn.Sequential(a, a)
    assert len(list(seq.parameters())) == 2


def test_reassigning_attributes_updates_the_registry():
    net = Block()
    net.conv = nn.Identity()
    assert "conv.weight" not in net.state_dict()
    net.extra = nn.Parameter(np.zeros(2, np.float32))
    assert "extra" in dict(net.named_parameters())
    net.extra = None
    assert "extra" not in dict(net.named_parameters())
    net.bn.running_mean = np.full(3, 2.0, np.float32)  # a buffer stays a buffer
    np.testing.assert_array_equal(net.state_dict()["bn.running_mean"], 2.0)

    class Broken(nn.Module):
        def __init__(self):
            self.x = 1

    with pytest.raises(AttributeError):
        Broken()


def test_train_and_eval_reach_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.blocks.train(False)
    assert net.training and not net.blocks[0].bn.training


def test_zero_grad_and_repr():
    net = Block()
    x = Tensor(np.ones((2, 2, 3, 3), np.float32))
    net(x).sum().backward()
    assert net.conv.weight.grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    text = repr(Net())
    assert "(blocks): Sequential" in text and "(conv): Conv2d(2, 3" in text and "(head): Linear" in text


def test_load_state_dict_copies_values_in_and_casts():
    src, dst = Net(), Net()
    src.head.weight.data[...] = 7.0
    src.blocks[0].bn.running_var[...] = 3.0
    state = src.state_dict()
    state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in state.items()}
    weight_object = dst.head.weight
    assert dst.load_state_dict(state) == ([], [])
    assert dst.head.weight is weight_object and dst.head.weight.dtype == np.float32
    np.testing.assert_array_equal(dst.head.weight.data, 7.0)
    np.testing.assert_array_equal(dst.blocks[0].bn.running_var, 3.0)
    state["head.weight"][...] = 0  # a copy, not an alias
    np.testing.assert_array_equal(dst.head.weight.data, 7.0)


def test_load_state_dict_strict_names_every_problem():
    net = Net()
    state = dict(net.state_dict())
    del state["head.bias"]
    state["head.extra"] = np.zeros(1)
    with pytest.raises(ValueError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "missing keys: head.bias" in message and "unexpected keys: head.extra" in message
    before = net.head.weight.data.copy()
    state["head.weight"] = np.ones((5, 2))
    for strict in (True, False):  # a wrong shape is an error even when not strict
        with pytest.raises(ValueError) as info:
            net.load_state_dict(state, strict=strict)
        assert "head.weight" in str(info.value) and "(5, 2)" in str(info.value) and "(4, 2)" in str(info.value)
    np.testing.assert_array_equal(net.head.weight.data, before)  # nothing loaded on error
    state["head.weight"] = np.full((4, 2), 2.0)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["head.bias"] and unexpected == ["head.extra"]
    np.testing.assert_array_equal(net.head.weight.data, 2.0)


def test_double_and_float_cast_parameters_and_buffers():
    net = Net()
    net.head.weight.grad = np.ones((4, 2), np.float32)
    assert net.double() is net
    assert all(p.dtype == np.float64 for p in net.parameters())
    bn = net.blocks[0].bn
    assert bn.running_mean.dtype == bn.running_var.dtype == np.float64
    assert bn.state_dict()["running_mean"] is bn.running_mean
    assert net.steps.dtype == np.int64  # integer buffers keep their type
    assert net.head.weight.grad is None
    y = net.blocks[0](Tensor(np.ones((2, 2, 3, 3))))
    assert y.dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters()) and bn.running_var.dtype == np.float32


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Conv2d(16, 8, 3), 16 * 9),
    (lambda: nn.Conv2d(16, 8, (1, 3), groups=4), 4 * 3),
    (lambda: nn.Linear(50, 7), 50),
    (lambda: nn.ConvTranspose2d(6, 8, 2, groups=2), 4 * 4),  # weight (in, out/groups, kh, kw): fan_in = 4*2*2
])
def test_default_init_is_kaiming_uniform_bounded_by_one_over_sqrt_fan_in(make, fan_in):
    ta.manual_seed(0)
    layer = make()
    bound = 1 / np.sqrt(fan_in)
    assert np.all(np.abs(layer.weight.data) <= bound) and np.all(np.abs(layer.bias.data) <= bound)
    assert np.abs(layer.weight.data).max() > 0.8 * bound  # the whole range is used
    assert layer.weight.dtype == layer.bias.dtype == np.float32


def test_default_init_std_is_bound_over_sqrt3_for_a_large_layer():
    ta.manual_seed(1)
    layer = nn.Linear(400, 500)
    bound = 1 / np.sqrt(400)
    assert layer.weight.data.std() == pytest.approx(bound / np.sqrt(3), rel=0.01)
    assert abs(layer.weight.data.mean()) < 0.01 * bound
    ta.manual_seed(1)
    np.testing.assert_array_equal(nn.Linear(400, 500).weight.data, layer.weight.data)  # seeded: repeatable
    ta.manual_seed(2)
    assert not np.array_equal(nn.Linear(400, 500).weight.data, layer.weight.data)


def test_norm_layers_start_as_the_identity_transform():
    bn, ssn = nn.BatchNorm2d(3), nn.SubSpectralNorm(3, 4)
    for layer in (bn, ssn):
        np.testing.assert_array_equal(layer.weight.data, 1)
        np.testing.assert_array_equal(layer.bias.data, 0)
        np.testing.assert_array_equal(layer.running_mean, 0)
        np.testing.assert_array_equal(layer.running_var, 1)


# ================================================================ PyTorch interoperability


def small_nets(torch):
    """The same small net in both frameworks, attribute for attribute."""
    import torch.nn as tnn
    import torch.nn.functional as tF

    class TorchSubSpectralNorm(tnn.BatchNorm2d):
        def __init__(self, channels, subbands):
            super().__init__(channels * subbands)
            self.subbands = subbands

        def forward(self, x):
            n, c, f, t = x.shape
            return super().forward(x.reshape(n, c * self.subbands, f // self.subbands, t)).reshape(n, c, f, t)

    def torch_res_norm(x, lam):
        mu = x.mean(dim=(1, 3), keepdim=True)
        var = x.var(dim=(1, 3), keepdim=True, unbiased=False)
        return lam * x + (x - mu) / torch.sqrt(var + 1e-5)

    class TorchNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1, bias=False), tnn.BatchNorm2d(4), tnn.ReLU(),
                                           tnn.MaxPool2d(2), tnn.Conv2d(4, 4, (3, 1), padding=(1, 0), groups=4))
            self.ssn = TorchSubSpectralNorm(4, 2)
            self.up = tnn.ConvTranspose2d(4, 3, 2, stride=2)
            self.drop = tnn.Dropout2d(0.5)
            self.head = tnn.Linear(3, 5)

        def forward(self, x):
            x = self.ssn(self.features(torch_res_norm(x, 0.1)))
            x = self.drop(tF.silu(self.up(x)))
            return self.head(torch_res_norm(x, 0.5).mean(dim=(2, 3)))

    class TaNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                                          nn.MaxPool2d(2), nn.Conv2d(4, 4, (3, 1), padding=(1, 0), groups=4))
            self.ssn = nn.SubSpectralNorm(4, 2)
            self.up = nn.ConvTranspose2d(4, 3, 2, stride=2)
            self.drop = nn.Dropout2d(0.5)
            self.head = nn.Linear(3, 5)
            self.norm_in, self.norm_out = nn.ResNorm(0.1), nn.ResNorm(0.5)

        def forward(self, x):
            x = self.ssn(self.features(self.norm_in(x)))
            x = self.drop(nn.functional.silu(self.up(x)))
            return self.head(self.norm_out(x).mean(dim=(2, 3)))

    return TaNet(), TorchNet()


def load_into_torch(torch, ours, theirs):
    result = theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()},
                                    strict=False)
    assert result.unexpected_keys == []
    assert all(k.endswith("num_batches_tracked") for k in result.missing_keys)


def test_state_dict_keys_and_shapes_equal_torchs(torch):
    ours, theirs = small_nets(torch)
    torch_state = {k: tuple(v.shape) for k, v in theirs.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert {k: v.shape for k, v in ours.state_dict().items()} == torch_state
    assert list(ours.state_dict()) == list(torch_state)  # same order too
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    dropped = set(theirs.state_dict()) - set(ours.state_dict())
    assert dropped == {"features.1.num_batches_tracked", "ssn.num_batches_tracked"}


def test_a_tinyasc_state_dict_gives_torch_the_same_outputs(torch):
    ours, theirs = small_nets(torch)
    rng = np.random.default_rng(5)
    for p in ours.parameters():  # not the default init: make every parameter matter
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)
    ours.features[1].running_mean[...] = rng.standard_normal(4)
    ours.ssn.running_var[...] = rng.uniform(0.5, 2, 8)
    load_into_torch(torch, ours, theirs)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((3, 1, 8, 6)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    xo = Tensor(x, requires_grad=True)
    out, ref = ours(xo), theirs(xt)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-3, atol=1e-5)
    torch_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, torch_params[name].grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)


def test_a_torch_state_dict_loads_into_tinyasc(torch):
    ours, theirs = small_nets(torch)
    theirs.eval()
    ours.eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-1, 1)
        theirs.ssn.running_mean.uniform_(-1, 1)
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert missing == [] and sorted(unexpected) == ["features.1.num_batches_tracked", "ssn.num_batches_tracked"]
    x = np.random.default_rng(9).standard_normal((2, 1, 8, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_batch_norm_running_statistics_follow_torch_over_training_steps(torch):
    ours, theirs = small_nets(torch)
    ours.double(), theirs.double()
    load_into_torch(torch, ours, theirs)
    ours.drop.p = theirs.drop.p = 0.0  # masks are random; the statistics are what is compared
    rng = np.random.default_rng(6)
    for _ in range(4):
        x = rng.standard_normal((4, 1, 8, 6)) * 3 + 1
        np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-9,
                                   atol=1e-10)
    torch_state = theirs.state_dict()
    for key in ["features.1.running_mean", "features.1.running_var", "ssn.running_mean", "ssn.running_var"]:
        np.testing.assert_allclose(ours.state_dict()[key], torch_state[key].numpy(), rtol=1e-10, err_msg=key)
    assert not np.allclose(ours.ssn.running_var, 1.0)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 1, 8, 6))
    np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_match_torch_layers_with_the_same_weights(torch, dtype):
    import torch.nn as tnn

    rng = np.random.default_rng(7)
    pairs = [(nn.Conv2d(4, 6, 3, 2, 1, 1, 2), tnn.Conv2d(4, 6, 3, 2, 1, 1, 2)),
             (nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, 2), tnn.ConvTranspose2d(4, 6, 3, 2, 1, 1, 2)),
             (nn.BatchNorm2d(4), tnn.BatchNorm2d(4))]
    x = rng.standard_normal((2, 4, 5, 6)).astype(dtype)
    for ours, theirs in pairs:
        ours.to_dtype(dtype), theirs.to(getattr(torch, np.dtype(dtype).name))
        load_into_torch(torch, ours, theirs)
        tol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), **tol)
    linear, tlinear = nn.Linear(6, 3), tnn.Linear(6, 3)
    linear.to_dtype(dtype), tlinear.to(getattr(torch, np.dtype(dtype).name))
    load_into_torch(torch, linear, tlinear)
    np.testing.assert_allclose(linear(Tensor(x)).data, tlinear(torch.tensor(x)).detach().numpy(),
                               rtol=1e-4 if dtype == np.float32 else 1e-10)
