"""Parameters and multiply-accumulates as DCASE 2022-2025 count them (tinyasc.compress.complexity)."""
import numpy as np
import pytest

from tinyasc.compress.complexity import complexity, count_macs, frames_for
from tinyasc.models import BCResNet, BCResNetMod, CPResNet
from tinyasc.nn.layers import Conv2d


def test_one_second_is_34_frames_and_ten_are_334():
    assert frames_for(1.0) == 34 and frames_for(10.0) == 334


def test_macs_of_two_convs_by_hand():
    from tinyasc.nn import Sequential

    model = Sequential(Conv2d(1, 4, (5, 3), stride=2, padding=1, bias=False), Conv2d(4, 8, 3, padding=1, groups=2))
    macs = count_macs(model, frames=20, mel_bins=16)
    # first: out 4 x 7 x 10 (H (16 + 2 - 5) // 2 + 1, W (20 + 2 - 3) // 2 + 1), 1 x 5 x 3 weights each
    # second: out 8 x 7 x 10, 2 input channels per group x 3 x 3 weights each
    assert macs == {"0": 4 * 7 * 10 * 15, "1": 8 * 7 * 10 * 18}


def test_macs_of_the_models_match_the_documented_conv_costs():
    # docs/baselines.md: per 10 s clip, BC-ResNet-Mod-8 509 M, BC-ResNet-8 1,784 M, CP-ResNet c=64 1,626 M
    assert round(sum(count_macs(BCResNetMod(80), 334).values()) / 1e6) == 509
    assert round(sum(count_macs(BCResNet(tau=8), 334).values()) / 1e6) == 1784
    assert round(sum(count_macs(CPResNet(c=64), 334).values()) / 1e6) == 1626


def test_complexity_line_and_limits():
    small, big = complexity(BCResNetMod(10)), complexity(BCResNetMod(80))
    assert small.parameters == 8055 and big.parameters == 314970
    assert small.within_dcase_limits and not big.within_dcase_limits
    assert "8,055 parameters" in small.line() and "within" in small.line() and "beyond" in big.line()
    assert 0 < small.mmacs_per_second < 30 < big.mmacs_per_second


def test_counting_leaves_the_model_as_it_was():
    model = BCResNetMod(4)
    model.train()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    count_macs(model, 34)
    assert model.training and all(not m.__dict__.get("_forward_hooks") for m in model.modules())
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())   # no BN statistics moved


def test_macs_agree_with_pytorchs_flop_counter():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.torch_reference import BCResNetModTorch

    for c, frames in ((10, 34), (8, 101)):
        reference = BCResNetModTorch(c).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            reference(torch.zeros(1, 1, 256, frames))
        convolution_flops = sum(v for op, v in counter.get_flop_counts()["Global"].items()
                                if "convolution" in str(op))
        assert sum(count_macs(BCResNetMod(c), frames).values()) * 2 == convolution_flops


def test_the_compressed_ensemble_reports_its_summed_complexity(tmp_path):
    from tinyasc.compress import save_compressed

    models = [BCResNetMod(4), BCResNetMod(4)]
    one = complexity(models[0])
    summary = save_compressed(tmp_path / "model.npz", models, bits=8)
    assert summary.complexity.parameters == 2 * one.parameters and summary.complexity.macs == 2 * one.macs
    assert f"(2 models, summed): {2 * one.parameters:,} parameters" in summary.text()


def test_the_public_api_reaches_models_and_audio_after_a_plain_import():
    import subprocess
    import sys

    code = "\n".join(["import sys", "import tinyasc as ta", "m = ta.models.BCResNetMod(2)",
                      "assert callable(ta.audio.log_mel) and hasattr(ta.compress, 'model_size')",
                      "assert 'tinyasc.translator' not in sys.modules",
                      "try:", "    ta.nothing", "except AttributeError as e:", "    print(e)"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "has no attribute 'nothing'" in out
