"""ONNX export (tinyasc/compress/onnx_export.py): onnxruntime reproduces tinyasc's eval outputs.

Skipped when the optional onnx / onnxruntime packages are absent (pip install 'tinyasc[onnx]').
"""
import json
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from tinyasc import Tensor, no_grad  # noqa: E402
from tinyasc.compress import load_compressed, prune, save_compressed  # noqa: E402
from tinyasc.compress.onnx_export import (INPUT_NAME, OUTPUT_NAME, build_onnx, export_onnx,  # noqa: E402
                                          onnx_predict)
from tinyasc.models.bcresnet_mod import NORMS, BCResNetMod  # noqa: E402

BINS = 256


def randomized(norm, seed, c=4, num_bins=BINS):
    """A small BC-ResNet-Mod with non-trivial norm parameters and running statistics, in eval mode."""
    rng = np.random.default_rng(seed)
    model = BCResNetMod(c=c, norm=norm, lam=0.3, num_bins=num_bins)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf[...] = rng.normal(0.0, 0.5, buf.shape)
        elif name.endswith("running_var"):
            buf[...] = rng.uniform(0.3, 3.0, buf.shape)
        elif name == "input_norm.mean":
            buf[...] = rng.normal(-3.0, 1.0, buf.shape)
        elif name == "input_norm.std":
            buf[...] = rng.uniform(0.5, 2.0, buf.shape)
    for name, p in model.named_parameters():
        if "bn" in name or "ssn" in name:
            p.data[...] = rng.normal(1.0 if name.endswith("weight") else 0.0, 0.3, p.data.shape)
    return model.eval()


def reference(model, x):
    with no_grad():
        return model(Tensor(x)).numpy()


def logmel_like(seed, n, t, num_bins=BINS):
    """Log-mel-like input: an offset, a per-bin tilt and noise."""
    rng = np.random.default_rng(seed)
    tilt = np.linspace(1.0, -2.0, num_bins, dtype=np.float32).reshape(1, 1, -1, 1)
    return (rng.normal(0.0, 1.5, (n, 1, num_bins, t)) - 4.0 + tilt).astype(np.float32)


@pytest.mark.parametrize("norm", ["resnorm", "preresnorm", "none", "freqin", "global"])
def test_onnxruntime_matches_tinyasc_with_dynamic_batch_and_time(tmp_path, norm):
    model = randomized(norm, seed=NORMS.index(norm))
    path = tmp_path / f"{norm}.onnx"
    summary = export_onnx(model, path)
    assert summary.path == str(path) and summary.bytes == path.stat().st_size > 0 and summary.opset == 17
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == INPUT_NAME and out.name == OUTPUT_NAME
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", 1, BINS, "T"]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 10]
    # Every weight and running statistic is in the file, once.
    stored = sum(int(np.prod(i.dims)) for i in proto.graph.initializer)
    assert stored >= sum(v.size for v in model.state_dict().values())
    for n, t in [(2, 37), (2, 50), (1, 16)]:
        x = logmel_like(10 * n + t, n, t)
        got = onnx_predict(path, x)
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, reference(model, x), rtol=1e-4, atol=1e-4)


def test_the_model_is_exported_in_eval_mode_and_left_unchanged(tmp_path):
    model = randomized("resnorm", seed=7)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    model.train()
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    x = logmel_like(3, 2, 41)
    np.testing.assert_allclose(onnx_predict(tmp_path / "m.onnx", x), reference(model.eval(), x),
                               rtol=1e-4, atol=1e-4)


def test_fixed_frames_and_other_widths(tmp_path):
    model = randomized("resnorm", seed=8, c=3, num_bins=64)
    proto = build_onnx(model, num_bins=64, frames=24)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 1, 64, 24]
    path = tmp_path / "fixed.onnx"
    export_onnx(model, path, num_bins=64, frames=24)
    x = logmel_like(4, 3, 24, num_bins=64)
    np.testing.assert_allclose(onnx_predict(path, x), reference(model, x), rtol=1e-4, atol=1e-4)


def test_global_norm_bins_must_match(tmp_path):
    model = randomized("global", seed=9, num_bins=64)
    with pytest.raises(ValueError, match="GlobalFreqNorm"):
        export_onnx(model, tmp_path / "g.onnx", num_bins=256)


def test_compressed_model_and_ensemble_export(tmp_path):
    models = [randomized("resnorm", seed=s) for s in (11, 12)]
    for m in models:
        prune(m, 0.7)
    save_compressed(tmp_path / "one.npz", models[0], 8)
    save_compressed(tmp_path / "two.npz", models, 8)
    x = logmel_like(5, 2, 37)
    for name in ("one", "two"):
        loaded = load_compressed(tmp_path / f"{name}.npz")
        export_onnx(loaded, tmp_path / f"{name}.onnx")
        onnx.checker.check_model(onnx.load(str(tmp_path / f"{name}.onnx")))
        np.testing.assert_allclose(onnx_predict(tmp_path / f"{name}.onnx", x), reference(loaded, x),
                                   rtol=1e-4, atol=1e-4)


def test_importing_tinyasc_does_not_import_onnx():
    code = ("import sys, tinyasc, tinyasc.compress, tinyasc.compress.onnx_export; "
            "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_export_runs_the_onnxruntime_check(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from click.testing import CliRunner

    from tinyasc.cli import main
    from tinyasc.compress import save_compressed
    from tinyasc.models import BCResNetMod
    from tinyasc.train.config import TrainConfig

    model = BCResNetMod(4)
    path = tmp_path / "m.npz"
    save_compressed(path, [model], 8, False, 0.0, config=json.loads(TrainConfig(width=4).to_json()))
    result = CliRunner().invoke(main, ["export", str(path), "--onnx", str(tmp_path / "m.onnx"), "--frames", "40"])
    assert result.exit_code == 0, result.output
    assert "checked with onnxruntime" in result.output
