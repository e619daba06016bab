"""The Table 2 comparison systems: BC-ResNet-8 and CP-ResNet (docs/baselines.md).

Parameter counts to the unit, layer by layer; shapes at 256 x 334 and on small inputs; whole-model
float64 gradients; state_dict round trips; and, when PyTorch is installed, the same state dict in
an independent PyTorch transcription of each original network gives the same outputs.
"""
from collections import defaultdict

import numpy as np
import pytest

import tinyasc as ta
from tinyasc.models.bcresnet import BCResNet
from tinyasc.models.bcresnet_mod import count_parameters
from tinyasc.models.cpresnet import CPResNet, kernel_sizes, receptive_field
from tinyasc.testing import assert_gradients


def _by_prefix(model, depth):
    counts = defaultdict(int)
    for name, p in model.named_parameters():
        counts[".".join(name.split(".")[:depth])] += p.data.size
    return dict(counts)


# ---------------------------------------------------------------------------- parameter counts
def test_bcresnet8_has_317610_parameters_layer_by_layer():
    model = BCResNet(tau=8)
    parts = _by_prefix(model, 2)
    assert parts["head.conv"] + parts["head.bn"] == 3200 + 256
    assert [parts[f"stages.{s}"] for s in range(4)] == [18560, 27840, 86272, 133440]
    blocks = _by_prefix(model, 3)
    # Transition block (1x1 conv + BN added) and Normal block of each stage.
    assert [blocks[f"stages.{s}.0"] for s in range(4)] == [13440, 17088, 30976, 48960]
    assert [blocks[f"stages.{s}.1"] for s in range(4)] == [5120, 10752, 18432, 28160]
    assert parts["tail.dw"] + parts["tail.pw"] + parts["tail.bn"] == 4000 + 40960 + 512
    assert parts["classifier.weight"] + parts["classifier.bias"] == 2570
    assert count_parameters(model) == 317610
    assert sum(p.data.size for p in model.parameters() if p.data.ndim == 4) == 301216


@pytest.mark.parametrize("tau, total", [(0.625, 4585), (1, 9232), (8, 321068)])
def test_bcresnet_keyword_spotting_configuration_matches_kim_et_al(tau, total):
    """12 keywords and 5 sub-bands as in the Interspeech paper: the counts reported for
    BC-ResNet-0.625 (4,585), BC-ResNet-1 (9,232; 9.2k in the paper) and BC-ResNet-8 (321k)."""
    assert count_parameters(BCResNet(tau=tau, num_classes=12, subbands=5)) == total


def test_cpresnet_c64_has_896980_parameters_layer_by_layer():
    model = CPResNet(c=64, rho=5)
    parts = _by_prefix(model, 3)
    assert parts["head.weight"] + parts["head_bn.weight"] + parts["head_bn.bias"] == 1600 + 128
    # Stage 1 (64 ch): (3,1) (3,3) (3,3) (3,1) blocks; each conv weight + 2 x 64 BN.
    assert [parts[f"stages.0.{b}"] for b in range(4)] == [41216, 73984, 73984, 41216]
    # Stages 2 and 3 are all 1x1 at rho = 5; their first block adds a 1x1 shortcut + BN.
    assert [parts[f"stages.1.{b}"] for b in range(4)] == [33536, 33280, 33280, 33280]
    assert [parts[f"stages.2.{b}"] for b in range(4)] == [132608, 132096, 132096, 132096]
    assert parts["classifier.weight"] + parts["classifier_bn.weight"] + parts["classifier_bn.bias"] == 2580
    assert count_parameters(model) == 896980
    assert sum(p.data.size for p in model.parameters() if p.data.ndim == 4) == 888896
    # The released code's default 2-channel (stereo) input adds 64 x 25 head weights: 899k.
    assert count_parameters(CPResNet(c=64, rho=5, in_channels=2)) == 898580


def _released_kernel_sizes(rho):
    """The released code's rule, as thresholds on e = rho - 7 (cpjku_dcase19/20, cp_resnet.py)."""
    e = rho - 7
    big = lambda cond: 3 if cond else 1  # noqa: E731
    k1 = [[3, big(-e <= 6), big(-e <= 4), big(-e <= 2)],
          [big(-e <= 0), big(e > 1), big(e > 3), big(e > 5)],
          [big(e > 7), big(e > 9), big(e > 11), big(e > 13)]]
    k2 = [[1, big(-e <= 5), big(-e <= 3), big(-e <= 1)],
          [big(e > 0), big(e > 2), big(e > 4), big(e > 6)],
          [big(e > 8), big(e > 10), big(e > 12), big(e > 14)]]
    return [list(zip(a, b)) for a, b in zip(k1, k2)]


def test_rho_rule_first_rho_switchable_convs_are_3x3():
    for rho in range(23):
        assert kernel_sizes(rho) == _released_kernel_sizes(rho), rho
    assert kernel_sizes(5)[0] == [(3, 1), (3, 3), (3, 3), (3, 1)]
    # Exact receptive fields (docs/baselines.md derives them): rho 0 -> 23, rho 5 -> 87.
    assert [receptive_field(r) for r in (0, 5, 7, 22)] == [23, 87, 135, 615]
    with pytest.raises(ValueError, match="rho"):
        CPResNet(c=4, rho=23)


# ---------------------------------------------------------------------------- shapes
def test_full_size_input_256_by_334():
    x = ta.Tensor(np.random.default_rng(0).standard_normal((1, 1, 256, 334)).astype(np.float32))
    bc = BCResNet(tau=0.5).eval()
    cp = CPResNet(c=4).eval()
    with ta.no_grad():
        h = bc.head(x)
        assert h.shape == (1, 8, 128, 334)
        for stage in bc.stages:
            h = stage(h)
        assert h.shape == (1, 10, 32, 334)
        assert bc.tail.dw(h).shape == (1, 10, 28, 334)
        assert bc(x).shape == (1, 10)
        assert cp(x).shape == (1, 10)


@pytest.mark.parametrize("shape", [(2, 1, 64, 5), (1, 1, 96, 17)])
def test_bcresnet_small_inputs(shape):
    x = ta.Tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    with ta.no_grad():
        y = BCResNet(tau=0.5)(x)
    assert y.shape == (shape[0], 10) and np.isfinite(y.numpy()).all()


@pytest.mark.parametrize("shape", [(2, 1, 18, 18), (1, 1, 40, 23)])
def test_cpresnet_small_inputs(shape):
    x = ta.Tensor(np.random.default_rng(2).standard_normal(shape).astype(np.float32))
    with ta.no_grad():
        y = CPResNet(c=4, init="pytorch").eval()(x)
    assert y.shape == (shape[0], 10) and np.isfinite(y.numpy()).all()


def test_cpjku_initialisation():
    ta.manual_seed(3)
    model = CPResNet(c=16, rho=5)
    blocks = [b for stage in model.stages for b in stage]
    assert all(not b.conv2.weight.data.any() for b in blocks)      # every block starts as its shortcut
    assert not model.classifier.weight.data.any()
    w = blocks[1].conv1.weight.data                                  # 16 x 16 x 3 x 3
    assert abs(w.std() / (12 ** -0.5 * np.sqrt(2 / (16 * 9))) - 1) < 0.1
    x = ta.Tensor(np.random.default_rng(4).standard_normal((2, 1, 20, 20)).astype(np.float32))
    with ta.no_grad():
        assert not model.eval()(x).numpy().any()                     # uniform prediction at start


@pytest.mark.parametrize("build", [lambda **kw: BCResNet(tau=0.5, **kw), lambda **kw: CPResNet(c=4, **kw)])
def test_input_only_normalizations(build):
    kinds = {n: type(build(norm=n).input_norm).__name__ for n in ("none", "global", "freqin", "preresnorm")}
    assert kinds == {"none": "Identity", "global": "GlobalFreqNorm", "freqin": "FreqIN", "preresnorm": "ResNorm"}
    assert count_parameters(build(norm="preresnorm")) == count_parameters(build())
    model = build(norm="global", num_bins=8)
    model.input_norm.set_statistics(np.arange(8), np.full(8, 2.0))   # the trainer's call
    assert model.state_dict()["input_norm.std"][0] == 2.0
    with pytest.raises(ValueError, match="norm must be one of"):
        build(norm="resnorm")  # ResNorm after every stage is BC-ResNet-Mod's


# ---------------------------------------------------------------------------- gradients
def _gradient_check(model, shape, name):
    model = model.double()
    x = ta.Tensor(np.random.default_rng(5).standard_normal(shape), requires_grad=True)
    target = np.array([1, 7, 3])

    def loss_fn(inp, *weights):
        return ta.functional.cross_entropy(model(inp), target)

    # Batch statistics of 3 clips make the loss strongly curved: eps = 1e-8 (see test_model.py).
    assert_gradients(loss_fn, [x] + list(model.parameters()), name=name, full=False, eps=1e-8)


def test_bcresnet_whole_model_gradient_float64():
    ta.manual_seed(6)
    _gradient_check(BCResNet(tau=0.5, dropout=0.0), (3, 1, 64, 6), "BCResNet")


def test_cpresnet_whole_model_gradient_float64():
    ta.manual_seed(7)
    # PyTorch-default init: the cpjku init's zeroed convs feed BatchNorm a constant (variance 0).
    _gradient_check(CPResNet(c=4, rho=5, init="pytorch"), (3, 1, 36, 36), "CPResNet")


# ---------------------------------------------------------------------------- state dicts
@pytest.mark.parametrize("build, shape", [(lambda: BCResNet(tau=0.5), (2, 1, 64, 7)),
                                          (lambda: CPResNet(c=4, init="pytorch"), (2, 1, 24, 24))])
def test_state_dict_round_trip(build, shape):
    ta.manual_seed(8)
    source = build()
    rng = np.random.default_rng(9)
    for _, m in source.named_modules():  # non-trivial running statistics
        if getattr(m, "running_var", None) is not None:
            m.running_mean[...] = rng.standard_normal(m.running_mean.shape) * 0.1
            m.running_var[...] = rng.uniform(0.5, 1.5, m.running_var.shape)
    ta.manual_seed(10)
    target = build()
    state = source.state_dict()
    target.load_state_dict(state)
    assert list(target.state_dict()) == list(state)
    assert all(np.array_equal(target.state_dict()[k], v) for k, v in state.items())
    x = ta.Tensor(rng.standard_normal(shape).astype(np.float32))
    with ta.no_grad():
        np.testing.assert_array_equal(source.eval()(x).numpy(), target.eval()(x).numpy())


def test_state_dict_names():
    bc = BCResNet(tau=0.5).state_dict()
    assert bc["stages.1.0.f2.dw.weight"].shape == (6, 1, 3, 1)
    assert bc["stages.3.2.f1.dw.weight"].shape == (10, 1, 1, 3)
    assert bc["stages.3.2.f2.ssn.running_var"].shape == (40,)
    assert "stages.1.1.f2.pw.weight" not in bc
    assert bc["tail.pw.weight"].shape == (16, 10, 1, 1) and bc["classifier.bias"].shape == (10,)
    cp = CPResNet(c=4).state_dict()
    assert cp["head.weight"].shape == (4, 1, 5, 5)
    assert cp["stages.0.1.conv2.weight"].shape == (4, 4, 3, 3)
    assert cp["stages.1.0.shortcut.conv.weight"].shape == (8, 4, 1, 1)
    assert "stages.1.1.shortcut.conv.weight" not in cp
    assert cp["classifier_bn.running_mean"].shape == (10,)


# ---------------------------------------------------------------------------- PyTorch transcriptions
def _torch_bcresnet(torch, tau, subbands=4, num_classes=10):
    """The original BC-ResNet (Kim et al. 2021), written directly in PyTorch with tinyasc's names."""
    tnn, tF = torch.nn, torch.nn.functional

    class SSN(tnn.BatchNorm2d):
        def __init__(self, channels):
            super().__init__(channels * subbands)

        def forward(self, x):
            n, c, f, t = x.shape
            return super().forward(x.reshape(n, c * subbands, f // subbands, t)).reshape(n, c, f, t)

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride, dilation):
            super().__init__()
            self.transition = cin != cout
            f2 = {}
            if self.transition:
                f2 = {"pw": tnn.Conv2d(cin, cout, 1, bias=False), "pw_bn": tnn.BatchNorm2d(cout)}
            f2["dw"] = tnn.Conv2d(cout, cout, (3, 1), (stride, 1), (1, 0), groups=cout, bias=False)
            f2["ssn"] = SSN(cout)
            self.f2 = tnn.ModuleDict(f2)
            self.f1 = tnn.ModuleDict({
                "dw": tnn.Conv2d(cout, cout, (1, 3), 1, (0, dilation), (1, dilation), groups=cout, bias=False),
                "bn": tnn.BatchNorm2d(cout), "pw": tnn.Conv2d(cout, cout, 1, bias=False)})

        def forward(self, x):
            h = tF.relu(self.f2["pw_bn"](self.f2["pw"](x))) if self.transition else x
            x2 = self.f2["ssn"](self.f2["dw"](h))
            f1 = self.f1["pw"](tF.silu(self.f1["bn"](self.f1["dw"](x2.mean(dim=2, keepdim=True)))))
            return tF.relu(x2 + f1 if self.transition else x2 + f1 + x)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            b = int(8 * tau)
            w = [2 * b, b, int(1.5 * b), 2 * b, int(2.5 * b), 4 * b]
            self.head = tnn.ModuleDict({"conv": tnn.Conv2d(1, w[0], 5, (2, 1), 2, bias=False),
                                        "bn": tnn.BatchNorm2d(w[0])})
            self.stages = tnn.ModuleList(
                tnn.ModuleList(Block(w[s] if i == 0 else w[s + 1], w[s + 1], 2 if (i == 0 and s in (1, 2)) else 1,
                                     2 ** s) for i in range(n))
                for s, n in enumerate((2, 2, 4, 4)))
            self.tail = tnn.ModuleDict({"dw": tnn.Conv2d(w[4], w[4], 5, 1, (0, 2), groups=w[4], bias=False),
                                        "pw": tnn.Conv2d(w[4], w[5], 1, bias=False), "bn": tnn.BatchNorm2d(w[5])})
            self.classifier = tnn.Conv2d(w[5], num_classes, 1)

        def forward(self, x):
            x = tF.relu(self.head["bn"](self.head["conv"](x)))
            for stage in self.stages:
                for block in stage:
                    x = block(x)
            x = tF.relu(self.tail["bn"](self.tail["pw"](self.tail["dw"](x))))
            return self.classifier(x.mean(dim=(2, 3), keepdim=True)).flatten(1)

    return Net()


def _torch_cpresnet(torch, c, rho, num_classes=10):
    """CP-ResNet as the released code builds it, in PyTorch with tinyasc's names."""
    tnn, tF = torch.nn, torch.nn.functional

    class Block(tnn.Module):
        def __init__(self, cin, cout, k1, k2):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(cin, cout, k1, 1, k1 // 3, bias=False), tnn.BatchNorm2d(cout)
            self.conv2, self.bn2 = tnn.Conv2d(cout, cout, k2, 1, k2 // 3, bias=False), tnn.BatchNorm2d(cout)
            self.shortcut = tnn.Sequential()
            if cin != cout:
                self.shortcut.add_module("conv", tnn.Conv2d(cin, cout, 1, bias=False))
                self.shortcut.add_module("bn", tnn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(tF.relu(self.bn1(self.conv1(x)))))
            return tF.relu(y + self.shortcut(x))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.head, self.head_bn = tnn.Conv2d(1, c, 5, 2, 1, bias=False), tnn.BatchNorm2d(c)
            widths, cin, stages = (c, 2 * c, 4 * c), c, []
            for width, ks in zip(widths, _released_kernel_sizes(rho)):
                blocks = []
                for k1, k2 in ks:
                    blocks.append(Block(cin, width, k1, k2))
                    cin = width
                stages.append(tnn.ModuleList(blocks))
            self.stages = tnn.ModuleList(stages)
            self.classifier = tnn.Conv2d(cin, num_classes, 1, bias=False)
            self.classifier_bn = tnn.BatchNorm2d(num_classes)

        def forward(self, x):
            x = tF.relu(self.head_bn(self.head(x)))
            for s, stage in enumerate(self.stages):
                for b, block in enumerate(stage, start=1):
                    x = block(x)
                    if s == 0 and b in (1, 2, 4):
                        x = tF.max_pool2d(x, 2)
            return self.classifier_bn(self.classifier(x)).mean(dim=(2, 3))

    return Net()


@pytest.mark.parametrize("which", ["bcresnet", "cpresnet"])
def test_same_state_dict_same_outputs_in_pytorch(torch, which):
    ta.manual_seed(11)
    if which == "bcresnet":
        ours, theirs, shape = BCResNet(tau=0.5, dropout=0.0), _torch_bcresnet(torch, 0.5), (3, 1, 64, 9)
    else:
        ours, theirs, shape = CPResNet(c=4, rho=7, init="pytorch"), _torch_cpresnet(torch, 4, 7), (3, 1, 26, 30)
    rng = np.random.default_rng(12)
    for _, m in ours.named_modules():
        if getattr(m, "running_var", None) is not None:
            m.running_mean[...] = rng.standard_normal(m.running_mean.shape) * 0.1
            m.running_var[...] = rng.uniform(0.5, 1.5, m.running_var.shape)
    state = {k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()}
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    # float64: batch statistics of 3 clips over a 1 x 1 map (CP-ResNet's last BN) leave float32
    # with ~1e-3 of rounding noise; the question here is the networks' semantics, not rounding.
    ours, theirs = ours.double(), theirs.double()
    x = rng.standard_normal(shape)
    for train in (False, True):  # running statistics, then batch statistics
        ours.train(train)
        theirs.train(train)
        with ta.no_grad():
            a = ours(ta.Tensor(x)).numpy()
        with torch.no_grad():
            b = theirs(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
