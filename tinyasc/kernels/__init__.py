"""Array-level kernels (no autograd): conv2d, depthwise 3x1/1x3, conv_transpose2d, pooling.

Each module keeps its Numba kernels beside a plain-NumPy reference; tests/test_kernels.py checks
one against the other and against PyTorch. tinyasc.functional wraps these in autograd ops.
"""
import os

# Numba's OpenMP workers and OpenBLAS's threads take turns on the same cores (an im2col kernel,
# then a BLAS matmul, then a depthwise kernel...). With the default "active" policy, idle OpenMP
# workers spin and starve the BLAS threads: a loop alternating the two ran 15x slower here.
# This must be set before Numba starts its OpenMP pool, i.e. before the first parallel kernel.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tinyasc.kernels.conv import (  # noqa: E402
    conv2d_backward_input,
    conv2d_backward_input_ref,
    conv2d_backward_weight,
    conv2d_backward_weight_ref,
    conv2d_forward,
    conv2d_forward_ref,
    conv2d_output_size,
)
from tinyasc.kernels.conv_transpose import (  # noqa: E402
    conv_transpose2d_backward_input,
    conv_transpose2d_backward_weight,
    conv_transpose2d_forward,
    conv_transpose2d_forward_ref,
    conv_transpose2d_output_size,
)
from tinyasc.kernels.depthwise import (  # noqa: E402
    depthwise_backward_input_ref,
    depthwise_backward_weight_ref,
    depthwise_conv2d_backward_input,
    depthwise_conv2d_backward_weight,
    depthwise_conv2d_forward,
    depthwise_forward_ref,
)
from tinyasc.kernels.pool import (  # noqa: E402
    avg_pool2d_backward,
    avg_pool2d_backward_ref,
    avg_pool2d_forward,
    avg_pool2d_forward_ref,
    max_pool2d_backward,
    max_pool2d_backward_ref,
    max_pool2d_forward,
    max_pool2d_forward_ref,
    pool_output_size,
)

__all__ = [
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "conv2d_forward_ref", "conv2d_backward_input_ref", "conv2d_backward_weight_ref", "conv2d_output_size",
    "conv_transpose2d_forward", "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight",
    "conv_transpose2d_forward_ref", "conv_transpose2d_output_size",
    "depthwise_conv2d_forward", "depthwise_conv2d_backward_input", "depthwise_conv2d_backward_weight",
    "depthwise_forward_ref", "depthwise_backward_input_ref", "depthwise_backward_weight_ref",
    "max_pool2d_forward", "max_pool2d_backward", "max_pool2d_forward_ref", "max_pool2d_backward_ref",
    "avg_pool2d_forward", "avg_pool2d_backward", "avg_pool2d_forward_ref", "avg_pool2d_backward_ref",
    "pool_output_size",
]
