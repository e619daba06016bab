"""Path selection (tinyasc/kernels/dispatch.py), the reference backend, and an import without
side effects (tinyasc/kernels/runtime.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import tinyasc as ta
from tinyasc import functional as F
from tinyasc import kernels as K
from tinyasc.kernels import conv, depthwise, dispatch, dots, norm, pointwise, pool
from tinyasc.models import BCResNetMod


def _step(dtype):
    """Loss and every gradient of one seeded training step of a small BC-ResNet-Mod."""
    ta.manual_seed(0)
    model = BCResNetMod(c=2, num_bins=32, dropout=0.0)
    if dtype == np.float64:
        model = model.double()
    rng = np.random.default_rng(0)
    x = ta.Tensor(rng.standard_normal((4, 1, 32, 20)).astype(dtype), requires_grad=True)
    loss = F.cross_entropy(model(x), rng.integers(0, 10, 4))
    loss.backward()
    return [loss.data, x.grad] + [p.grad for p in model.parameters()]


def _no_numba(monkeypatch):
    """Make every Numba kernel of the kernel modules raise when called."""
    def refuse(*args, **kwargs):
        raise AssertionError("a Numba kernel ran under use_reference()")

    for module in (conv, depthwise, dots, norm, pointwise, pool):
        for name, value in vars(module).copy().items():
            if isinstance(value, CPUDispatcher):
                monkeypatch.setattr(module, name, refuse)


# float64: the two backends differ by rounding only. float32: batch norm's weight gradient after a
# 4-clip batch cancels heavily (either backend is ~1e-2 from float64 on its own), so the float32
# check is test_norm_kernels.py's backward tolerance, relative to the step's largest gradient.
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_reference_backend_gives_the_kernels_step(dtype, tol, monkeypatch):
    fast = _step(dtype)
    with monkeypatch.context() as patch:
        _no_numba(patch)
        with K.use_reference():
            assert K.reference_active()
            slow = _step(dtype)
    assert not K.reference_active()
    scale = max(float(np.abs(g).max()) for g in slow[1:])
    for got, want in zip(fast, slow):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def test_paths_of_bcresnet_mod_layers():
    """The head takes im2col (dots for its weight gradient), 1x1 convs the pointwise kernels,
    f2 / f1 the depthwise ones, whose 3x1 backward is one fused pass."""
    head = K.conv_geometry((64, 1, 256, 334), (20, 1, 5, 5), (2, 2), (2, 2), (1, 1), 1)
    assert dispatch.conv_paths(head) == {"forward": "im2col", "input": "im2col", "weight": "dots",
                                         "backward": "separate"}
    stage1_pw = K.conv_geometry((64, 20, 128, 167), (10, 20, 1, 1), (1, 1), (0, 0), (1, 1), 1)
    assert dispatch.conv_paths(stage1_pw)["forward"] == "pointwise/streaming"
    f1_pw = K.conv_geometry((64, 10, 1, 167), (10, 10, 1, 1), (1, 1), (0, 0), (1, 1), 1)
    assert dispatch.conv_paths(f1_pw)["weight"] == "pointwise/numpy"
    f2 = K.conv_geometry((64, 10, 128, 167), (10, 1, 3, 1), (1, 1), (1, 0), (1, 1), 10)
    assert dispatch.conv_paths(f2) == {"forward": "depthwise", "input": "depthwise", "weight": "depthwise",
                                       "backward": "depthwise-fused"}
    with K.use_reference():
        assert set(dispatch.conv_paths(head).values()) == {"reference", "separate"}


_CHILD = """
import os
before = dict(os.environ)
import tinyasc, tinyasc.kernels as K
assert dict(os.environ) == before, "import tinyasc changed the environment"
assert K.reference_active()
"""


def test_import_changes_nothing_and_the_environment_picks_the_reference_backend():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS")}
    env["TINYASC_KERNELS"] = "reference"
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_configure_runtime_limits_blas_to_one_thread():
    from threadpoolctl import threadpool_info

    K.configure_runtime()  # conftest.py did already: idempotent
    assert os.environ["OMP_WAIT_POLICY"]
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")


def test_a_bad_backend_in_the_environment_is_one_line_when_a_command_starts(monkeypatch):
    env = {**os.environ, "TINYASC_KERNELS": "bogus"}
    out = subprocess.run([sys.executable, "-c", "import tinyasc.cli"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]  # importing (and so `tinyasc --help`) still works
    from click.testing import CliRunner

    from tinyasc.cli import main

    monkeypatch.setattr(dispatch, "_ENV_BACKEND", "bogus")
    message = "TINYASC_KERNELS='bogus' in the environment: set it to 'numba' or 'reference', or unset it"
    result = CliRunner().invoke(main, ["data-info"])
    assert result.exit_code == 1 and result.output.splitlines() == [f"error: {message}"], result.output
    with pytest.raises(ValueError, match=message):  # a library caller: at the first kernel call
        K.conv2d_forward(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 1, 1), np.float32), (1, 1), (0, 0),
                         (1, 1), 1)
