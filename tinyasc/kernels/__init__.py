"""Array-level kernels (no autograd): conv2d, depthwise 3x1/1x3, conv_transpose2d, pooling, norms.

tinyasc.functional wraps these in autograd ops. The layers of this package, top to bottom:

* api.py: the functions below, each checking shapes into one named geometry (geometry.py) and
  asking dispatch.py which path to run;
* dispatch.py: every path choice, with the measurement behind each threshold, and the reference
  backend (`use_reference()`, or TINYASC_KERNELS=reference) that runs the NumPy definitions;
* conv.py, pointwise.py, depthwise.py, dots.py, pool.py, norm.py, conv_transpose.py: the Numba
  loops, each beside its plain NumPy reference; tests/test_kernels.py checks one against the other
  and against PyTorch;
* runtime.py: `configure_runtime()`, the process settings the command line applies for speed
  (importing tinyasc changes nothing in the process).
"""
from tinyasc.kernels.api import (
    add_freq_broadcast,
    avg_pool2d_backward,
    avg_pool2d_forward,
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_stats,
    broadcast_residual_relu,
    broadcast_residual_relu_backward,
    conv2d_backward,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
    conv_transpose2d_backward_input,
    conv_transpose2d_backward_weight,
    conv_transpose2d_forward,
    depthwise_conv2d_backward,
    depthwise_conv2d_backward_input,
    depthwise_conv2d_backward_weight,
    depthwise_conv2d_forward,
    freq_mean,
    freq_norm_backward,
    freq_norm_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    pointwise_conv_backward_weight,
    pointwise_conv_forward,
)
from tinyasc.kernels.conv import conv2d_backward_input_ref, conv2d_backward_weight_ref, conv2d_forward_ref
from tinyasc.kernels.conv_transpose import conv_transpose2d_forward_ref
from tinyasc.kernels.depthwise import depthwise_backward_input_ref, depthwise_backward_weight_ref, depthwise_forward_ref
from tinyasc.kernels.dispatch import reference_active, use_reference
from tinyasc.kernels.geometry import (
    ConvGeometry,
    PoolGeometry,
    conv2d_output_size,
    conv_geometry,
    conv_transpose2d_output_size,
    pool_geometry,
    pool_output_size,
)
from tinyasc.kernels.pool import (
    avg_pool2d_backward_ref,
    avg_pool2d_forward_ref,
    max_pool2d_backward_ref,
    max_pool2d_forward_ref,
)
from tinyasc.kernels.runtime import configure_runtime

__all__ = [
    "conv2d_forward", "conv2d_backward", "conv2d_backward_input", "conv2d_backward_weight",
    "conv2d_forward_ref", "conv2d_backward_input_ref", "conv2d_backward_weight_ref", "conv2d_output_size",
    "conv_transpose2d_forward", "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight",
    "conv_transpose2d_forward_ref", "conv_transpose2d_output_size",
    "depthwise_conv2d_forward", "depthwise_conv2d_backward", "depthwise_conv2d_backward_input",
    "depthwise_conv2d_backward_weight",
    "depthwise_forward_ref", "depthwise_backward_input_ref", "depthwise_backward_weight_ref",
    "pointwise_conv_forward", "pointwise_conv_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "max_pool2d_forward_ref", "max_pool2d_backward_ref",
    "avg_pool2d_forward", "avg_pool2d_backward", "avg_pool2d_forward_ref", "avg_pool2d_backward_ref",
    "pool_output_size",
    "batch_norm_stats", "batch_norm_forward", "batch_norm_backward", "freq_norm_forward", "freq_norm_backward",
    "freq_mean", "add_freq_broadcast", "broadcast_residual_relu", "broadcast_residual_relu_backward",
    "ConvGeometry", "PoolGeometry", "conv_geometry", "pool_geometry",
    "use_reference", "reference_active", "configure_runtime",
]
