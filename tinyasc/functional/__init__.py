"""torch.nn.functional for tinyasc: every differentiable layer operation, same names and signatures.

Each operation is a `Function` subclass named `<Name>Function` (`Conv2dFunction`,
`BatchNormFunction`, ...) with its forward and backward together; the lowercase function
(`conv2d`, `batch_norm`, ...) checks the arguments and applies it, as in PyTorch. By concern:
conv.py (convolution, padding, pooling: BC-ResNet-Mod's layers, paper section 2.1), norm.py
(batch norm, the broadcast residual, FreqIN / ResNorm of section 2.2), activation.py
(activations, softmax, dropout), loss.py (cross-entropy, the KL term of distillation in
section 2.4, MSE, L1) and quantize.py (the fake quantization of quantization-aware training,
section 2.4). The heavy loops live in `tinyasc.kernels`, each beside a NumPy reference.
"""
from tinyasc.functional.activation import (DropoutFunction, LeakyReLUFunction, LogSoftmaxFunction, ReLUFunction,
                                           SigmoidFunction, SiLUFunction, SoftmaxFunction, TanhFunction, dropout,
                                           dropout2d, leaky_relu, log_softmax, relu, sigmoid, silu, softmax, tanh)
from tinyasc.functional.conv import (AvgPool2dFunction, Conv2dFunction, ConvTranspose2dFunction, MaxPool2dFunction,
                                     avg_pool2d, conv2d, conv_transpose2d, max_pool2d, pad)
from tinyasc.functional.loss import (CrossEntropyFunction, KLDivFunction, cross_entropy, kl_div, l1_loss, mse_loss,
                                     nll_loss)
from tinyasc.functional.norm import (BatchNormFunction, BroadcastResidualReLUFunction, FreqNormFunction,
                                     SubSpectralNormFunction, batch_norm, batch_norm_relu, broadcast_residual_relu,
                                     freq_instance_norm, sub_spectral_norm)
from tinyasc.functional.quantize import (HALF, FakeQuantizeFunction, check_bits, fake_quantize, qmax,
                                         quantization_scale)

__all__ = [
    "AvgPool2dFunction", "BatchNormFunction", "BroadcastResidualReLUFunction", "Conv2dFunction",
    "ConvTranspose2dFunction", "CrossEntropyFunction", "DropoutFunction", "FakeQuantizeFunction", "FreqNormFunction",
    "HALF", "KLDivFunction", "LeakyReLUFunction", "LogSoftmaxFunction", "MaxPool2dFunction", "ReLUFunction",
    "SiLUFunction", "SigmoidFunction", "SoftmaxFunction", "SubSpectralNormFunction", "TanhFunction", "avg_pool2d",
    "batch_norm", "batch_norm_relu", "broadcast_residual_relu", "check_bits", "conv2d", "conv_transpose2d",
    "cross_entropy", "dropout", "dropout2d", "fake_quantize", "freq_instance_norm", "kl_div", "l1_loss", "leaky_relu",
    "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "pad", "qmax", "quantization_scale", "relu", "sigmoid", "silu",
    "softmax", "sub_spectral_norm", "tanh",
]
