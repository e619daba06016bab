"""BC-ResNet-Mod (paper Table 1; docs/model.md): sizes, names, the norm variants' equations, gradients."""
import numpy as np
import pytest

import tinyasc as ta
from tinyasc.models import BCResNetMod, count_parameters
from tinyasc.testing import assert_gradients


@pytest.mark.parametrize("c, total, conv", [(10, 8055, 6215), (80, 314970, 300320)])
def test_parameter_counts_to_the_unit(c, total, conv):
    model = BCResNetMod(c)
    assert count_parameters(model) == total
    assert sum(p.data.size for p in model.parameters() if p.data.ndim == 4) == conv


def test_state_dict_names_and_shapes():
    c, k = 10, 10
    state = BCResNetMod(c).state_dict()
    assert state["head.conv.weight"].shape == (2 * c, 1, 5, 5)
    for entry in ("weight", "bias", "running_mean", "running_var"):
        assert state[f"head.bn.{entry}"].shape == (2 * c,)
    widths = [(2 * c, 10), (10, 15), (15, 20), (20, 25)]
    for s, (cin, cout) in enumerate(widths):
        blocks = 3 if s == 3 else 2
        for b in range(blocks):
            p = f"stages.{s}.{b}"
            if b == 0:
                assert state[f"{p}.f2.pw.weight"].shape == (cout, cin, 1, 1)
                assert state[f"{p}.f2.pw_bn.running_var"].shape == (cout,)
            else:
                assert f"{p}.f2.pw.weight" not in state
            assert state[f"{p}.f2.dw.weight"].shape == (cout, 1, 3, 1)
            assert state[f"{p}.f2.ssn.weight"].shape == (cout * 4,)
            assert state[f"{p}.f1.dw.weight"].shape == (cout, 1, 1, 3)
            assert state[f"{p}.f1.bn.bias"].shape == (cout,)
            assert state[f"{p}.f1.pw.weight"].shape == (cout, cout, 1, 1)
        assert f"stages.{s}.{blocks}.f2.dw.weight" not in state
    assert state["classifier.weight"].shape == (k, 25, 1, 1)
    assert state["classifier.bias"].shape == (k,)
    # Nothing beyond that list: every key belongs to one of those modules.
    allowed = ("head.", "stages.", "classifier.")
    assert all(key.startswith(allowed) for key in state)


def test_output_shape_and_intermediate_sizes():
    model = BCResNetMod(4).eval()
    x = ta.Tensor(np.random.default_rng(0).standard_normal((2, 1, 256, 37)).astype(np.float32))
    with ta.no_grad():
        h = model.head(model.input_norm(x))
        assert h.shape == (2, 8, 128, 19)
        y = model(x)
    assert y.shape == (2, 10)


def _resnorm_by_equation(x, lam, eps=1e-5):
    mu = x.mean(axis=(1, 3), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=(1, 3), keepdims=True)
    return lam * x + (x - mu) / np.sqrt(var + eps)


def test_freqin_and_resnorm_follow_equations_1_to_3():
    x = np.random.default_rng(1).standard_normal((3, 4, 6, 5)) * 3 + 2
    out = ta.nn.ResNorm(lam=0.1)(ta.Tensor(x)).numpy()
    np.testing.assert_allclose(out, _resnorm_by_equation(x, 0.1), rtol=1e-12, atol=1e-12)
    freqin = ta.nn.FreqIN()(ta.Tensor(x)).numpy()
    np.testing.assert_allclose(freqin, _resnorm_by_equation(x, 0.0), rtol=1e-12, atol=1e-12)
    # FreqIN removes any per-(sample, bin) gain and offset: a device EQ does not pass.
    # (Exactly so with eps = 0; eps = 1e-5 against variances near 9 leaves ~1e-6 differences.)
    eq = np.random.default_rng(2).uniform(0.5, 2, (3, 1, 6, 1))
    np.testing.assert_allclose(ta.nn.FreqIN(eps=0.0)(ta.Tensor(x * eq + eq)).numpy(),
                               ta.nn.FreqIN(eps=0.0)(ta.Tensor(x)).numpy(), atol=1e-12)


def test_subspectral_norm_groups_channel_c_subband_s_at_c_times_s_plus_s():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 2, 8, 3))
    ssn = ta.nn.SubSpectralNorm(2, subbands=4).double()
    ssn.weight.data = rng.uniform(0.5, 2, 8)
    out = ssn(ta.Tensor(x)).numpy()
    for c in range(2):
        for s in range(4):
            band = x[:, c, 2 * s:2 * s + 2, :]
            expected = (band - band.mean()) / np.sqrt(band.var() + 1e-5) * ssn.weight.data[c * 4 + s]
            np.testing.assert_allclose(out[:, c, 2 * s:2 * s + 2, :], expected, atol=1e-10)


def test_norm_variants_place_their_modules():
    by_norm = {n: BCResNetMod(4, norm=n) for n in ("none", "global", "freqin", "preresnorm", "resnorm")}
    assert type(by_norm["none"].input_norm).__name__ == "Identity"
    assert type(by_norm["global"].input_norm).__name__ == "GlobalFreqNorm"
    assert type(by_norm["freqin"].input_norm).__name__ == "FreqIN"
    assert type(by_norm["preresnorm"].input_norm).__name__ == "ResNorm"
    assert all(type(m).__name__ == "Identity" for m in by_norm["preresnorm"].stage_norms)
    resnorms = [m for m in by_norm["resnorm"].modules() if type(m).__name__ == "ResNorm"]
    assert len(resnorms) == 5
    with pytest.raises(ValueError, match="norm must be one of"):
        BCResNetMod(4, norm="batch")


def test_global_freqnorm_standardises_each_bin():
    model = BCResNetMod(4, norm="global", num_bins=8)
    mean, std = np.arange(8, dtype=np.float32), np.linspace(1, 2, 8).astype(np.float32)
    model.input_norm.set_statistics(mean, std)
    x = np.random.default_rng(4).standard_normal((2, 1, 8, 5)).astype(np.float32)
    out = model.input_norm(ta.Tensor(x)).numpy()
    np.testing.assert_allclose(out, (x - mean[:, None]) / std[:, None], rtol=1e-6)


@pytest.mark.parametrize("norm", ["resnorm", "none"])
def test_whole_model_gradient_float64(norm):
    """A whole small BC-ResNet-Mod in float64: every parameter's gradient, directional check."""
    ta.manual_seed(0)
    model = BCResNetMod(c=4, norm=norm, dropout=0.0, num_bins=32).double()
    rng = np.random.default_rng(5)
    x = ta.Tensor(rng.standard_normal((3, 1, 32, 12)), requires_grad=True)
    target = np.array([1, 7, 3])
    params = list(model.parameters())

    def loss_fn(inp, *weights):
        return ta.functional.cross_entropy(model(inp), target)

    # Batch statistics of 3 clips make the loss strongly curved along a random direction of
    # all ~1k parameters at once: the central-difference error falls as eps^2 (0.6 at 1e-6,
    # 6e-3 at 1e-7, 6e-5 at 1e-8 for one seed), so a small step is right here, not a looser test.
    assert_gradients(loss_fn, [x] + params, name=f"BCResNetMod({norm})", full=False, eps=1e-8)


def test_same_state_dict_same_outputs_in_pytorch():
    torch = pytest.importorskip("torch")
    from benchmarks.torch_reference import BCResNetModTorch, tinyasc_to_torch_state

    ta.manual_seed(1)
    model = BCResNetMod(c=6)
    rng = np.random.default_rng(6)
    for _, m in model.named_modules():  # non-trivial running statistics
        if hasattr(m, "running_var") and m.running_var is not None:
            m.running_mean[...] = rng.standard_normal(m.running_mean.shape) * 0.1
            m.running_var[...] = rng.uniform(0.5, 1.5, m.running_var.shape)
    reference = BCResNetModTorch(c=6)
    missing, unexpected = reference.load_state_dict(tinyasc_to_torch_state(model.state_dict()), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    x = rng.standard_normal((2, 1, 256, 40)).astype(np.float32)
    model.eval()
    reference.eval()
    with ta.no_grad():
        ours = model(ta.Tensor(x)).numpy()
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_first_block_of_every_stage_is_a_transition_even_at_c_1():
    state = BCResNetMod(1).state_dict()
    for s in range(4):
        assert f"stages.{s}.0.f2.pw.weight" in state
        assert f"stages.{s}.1.f2.pw.weight" not in state
