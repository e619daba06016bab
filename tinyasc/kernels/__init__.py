"""Array-level kernels (no autograd): conv2d, depthwise 3x1/1x3, conv_transpose2d, pooling.

Each module keeps its Numba kernels beside a plain-NumPy reference; tests/test_kernels.py checks
one against the other and against PyTorch. tinyasc.functional wraps these in autograd ops.
"""
from tinyasc.kernels.runtime import configure as _configure_runtime

# passive OpenMP waits and glibc keeping freed blocks: see runtime.py (before any kernel runs)
_configure_runtime()

from tinyasc.kernels.conv import (  # noqa: E402
    conv2d_backward,
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
    depthwise_conv2d_backward,
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
    "conv2d_forward", "conv2d_backward", "conv2d_backward_input", "conv2d_backward_weight",
    "conv2d_forward_ref", "conv2d_backward_input_ref", "conv2d_backward_weight_ref", "conv2d_output_size",
    "conv_transpose2d_forward", "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight",
    "conv_transpose2d_forward_ref", "conv_transpose2d_output_size",
    "depthwise_conv2d_forward", "depthwise_conv2d_backward", "depthwise_conv2d_backward_input",
    "depthwise_conv2d_backward_weight",
    "depthwise_forward_ref", "depthwise_backward_input_ref", "depthwise_backward_weight_ref",
    "max_pool2d_forward", "max_pool2d_backward", "max_pool2d_forward_ref", "max_pool2d_backward_ref",
    "avg_pool2d_forward", "avg_pool2d_backward", "avg_pool2d_forward_ref", "avg_pool2d_backward_ref",
    "pool_output_size",
]
