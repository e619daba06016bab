"""Shared test setup: the command line's runtime settings, a reproducible hypothesis profile,
kernel warm-up, the optional torch.

Hypothesis runs derandomized (the same examples on every run and machine) with no deadline:
the first call of a Numba kernel loads or compiles it, which is not the op's speed. Set
HYPOTHESIS_PROFILE=thorough for a longer, randomized hunt.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from tinyasc.kernels.runtime import configure_runtime

settings.register_profile("default", deadline=None, max_examples=25, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", deadline=None, max_examples=300, derandomize=False,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# the same process settings as the command line (passive thread waits, one BLAS thread, freed
# memory kept), so that the suite runs the kernels the way `tinyasc` does
configure_runtime()


@pytest.fixture(scope="session", autouse=True)
def warm_kernels():
    """Call every kernel path once per dtype, so Numba's (cached) compile is paid here, once."""
    import tinyasc as ta
    from tinyasc import functional as F

    for dtype in (np.float32, np.float64):
        x = ta.Tensor(np.ones((1, 2, 4, 4), dtype), requires_grad=True)
        for weight_shape, kwargs in [((2, 2, 1, 1), {}),                      # pointwise
                                     ((2, 1, 3, 1), dict(padding=(1, 0), groups=2)),  # depthwise 3x1
                                     ((2, 1, 1, 3), dict(padding=(0, 1), groups=2)),  # depthwise 1x3
                                     ((2, 2, 3, 3), dict(stride=2, padding=1)),       # direct
                                     ((2, 1, 2, 2), dict(dilation=2, groups=2))]:
            w = ta.Tensor(np.ones(weight_shape, dtype), requires_grad=True)
            F.conv2d(x, w, **kwargs).sum().backward()
        w = ta.Tensor(np.ones((2, 2, 3, 3), dtype), requires_grad=True)
        F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1).sum().backward()
        F.max_pool2d(x, 2).sum().backward()
        F.max_pool2d(x, 3, 1, 1).sum().backward()
        F.avg_pool2d(x, 2).sum().backward()
        # The fused normalization kernels (tinyasc/kernels/norm.py), both modes.
        z = ta.Tensor(np.arange(32, dtype=dtype).reshape(2, 2, 4, 2), requires_grad=True)
        for relu in (False, True):
            for training in (False, True):
                norm = F.batch_norm_relu if relu else F.batch_norm
                norm(z, np.zeros(2, dtype), np.ones(2, dtype), training=training).sum().backward()
        ta.nn.ResNorm()(z).sum().backward()
        F.broadcast_residual_relu(z, z.mean(dim=2, keepdim=True), z).sum().backward()
        F.batch_norm_relu(x * x, None, None, training=True).sum().backward()
        F.batch_norm(x * x, np.zeros(2, dtype), np.ones(2, dtype), training=False).sum().backward()
        ta.nn.ResNorm()(x * x).sum().backward()
        F.broadcast_residual_relu(x * 1, x.mean(dim=2, keepdim=True), x * 1).sum().backward()


@pytest.fixture(scope="session")
def torch():
    """PyTorch, or a skip where it is not installed (CI): it is a reference, never a dependency."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch
