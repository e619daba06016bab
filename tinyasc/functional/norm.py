"""Normalizations as differentiable ops: batch norm, FreqIN / ResNorm, the broadcast residual.

FreqIN and ResNorm (paper section 2.2, eq. 1-3) are `freq_instance_norm`; batch norm (with an
optional fused ReLU) and BC-ResBlock's broadcast residual (section 2.1) follow BC-ResNet-Mod's
blocks. The streaming passes each way are in tinyasc/kernels/norm.py; docs/resnorm.md walks
through them.
"""
import numpy as np

from tinyasc import kernels
from tinyasc.autograd.function import Function
from tinyasc.autograd.tensor import Tensor

# ---------------------------------------------------------------- batch norm


class BatchNormFunction(Function):
    """Normalise each channel (axis 1) by batch statistics (training) or running ones.

    Training also updates the running statistics in place, as PyTorch does: the mean
    with the batch mean and the variance with the *unbiased* batch variance. With
    relu=True the ReLU that follows is fused in (one pass instead of two).
    The streaming loops are in tinyasc/kernels/norm.py.
    """

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps, relu=False):
        self.training, self.relu, self.weight, self.bias = training, relu, weight, bias
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        if training:
            count = x3.shape[0] * x3.shape[2]
            if count <= 1:
                raise ValueError(f"batch_norm needs more than one value per channel in training, got input {x.shape}")
            mean, var = kernels.batch_norm_stats(x3)
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += (momentum * mean).astype(running_mean.dtype)
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * var * count / (count - 1)).astype(running_var.dtype)
        else:
            mean, var = running_mean, running_var
        self.x, self.mean = x, np.asarray(mean, np.float64)
        out, self.invstd = kernels.batch_norm_forward(x, weight, bias, mean, var, eps, relu)
        return out

    def backward(self, grad, freq_grad=None):
        gx, gw, gb = kernels.batch_norm_backward(self.x, grad, self.mean, self.invstd, self.weight, self.bias,
                                                 self.training, self.relu, freq_grad)
        return gx, gw, gb


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu=False)


def batch_norm_relu(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                    eps=1e-5):
    """relu(batch_norm(...)) in one fused pass (a tinyasc extension; same numbers); module: nn.BatchNormReLU2d."""
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu=True)


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, relu):
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    if not training and (rm is None or rv is None):
        raise ValueError("batch_norm in eval mode needs running_mean and running_var")
    if input.ndim < 2:
        raise ValueError(f"batch_norm expects N x C [x ...] input, got shape {input.shape}")
    return BatchNormFunction.apply(input, weight, bias, running_mean=rm, running_var=rv,
                                   training=bool(training), momentum=float(momentum), eps=float(eps), relu=relu)


class SubSpectralNormFunction(BatchNormFunction):
    """Batch norm with separate statistics for S frequency sub-bands (SubSpectralNorm): the
    N x C x F x T map seen as N x (C*S) x (F/S) x T, so sub-band s of channel c is normalized
    by statistics c * S + s.

    In a BC-ResBlock its output is x2, whose frequency mean starts the f1 branch, so x2's
    gradient is the residual path's plus the mean's, a broadcast over frequency. The autograd
    hands the broadcast one over at its N x C x 1 x T size (`accepts_freq_broadcast_grad`), and
    batch norm's two backward passes add it as they read: the same numbers as the summed
    gradient, without writing that sum out and reading it back.
    """

    accepts_freq_broadcast_grad = True

    def forward(self, x, weight, bias, running_mean, running_var, subbands, training, momentum, eps):
        n, c, f, t = self.shape = x.shape
        bands = x.reshape(n, c * subbands, f // subbands, t)
        return super().forward(bands, weight, bias, running_mean, running_var, training, momentum, eps).reshape(x.shape)

    def backward(self, grad, freq_grad=None):
        if freq_grad is None:  # zeros: the same loops (and bits) as with a frequency-mean gradient
            freq_grad = np.zeros(self.shape[:2] + (1, self.shape[3]), grad.dtype)
        gx, gw, gb = super().backward(grad.reshape(self.x.shape), freq_grad)
        return gx.reshape(self.shape), gw, gb


def sub_spectral_norm(input, subbands, running_mean, running_var, weight=None, bias=None, training=False,
                      momentum=0.1, eps=1e-5):
    """Batch norm over `subbands` frequency sub-bands of N x C x F x T (module: nn.SubSpectralNorm)."""
    if not isinstance(subbands, (int, np.integer)) or subbands < 1:
        raise ValueError(f"SubSpectralNorm needs a positive whole number of sub-bands, got {subbands!r}")
    if input.ndim != 4 or input.shape[2] % subbands:
        raise ValueError(f"SubSpectralNorm needs N x C x F x T input with F divisible by {subbands} sub-bands, "
                         f"got shape {input.shape}")
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    if not training and (rm is None or rv is None):
        raise ValueError("sub_spectral_norm in eval mode needs running_mean and running_var")
    return SubSpectralNormFunction.apply(input, weight, bias, running_mean=rm, running_var=rv, subbands=int(subbands),
                                        training=bool(training), momentum=float(momentum), eps=float(eps))


class BroadcastResidualReLUFunction(Function):
    """relu(x2 + f1 + x) with f1 (N, C, 1, T) broadcast over frequency: BC-ResBlock's output."""

    def forward(self, x2, f1, x=None):
        self.out = kernels.broadcast_residual_relu(x2, f1, x)
        return self.out

    def backward(self, grad):
        gmasked, gf1 = kernels.broadcast_residual_relu_backward(self.out, grad)
        return gmasked, gf1, gmasked


def broadcast_residual_relu(x2, f1, x=None):
    """relu(x2 + f1 [+ x]), f1 broadcast over axis 2 (a tinyasc extension, fused)."""
    if f1.shape != x2.shape[:2] + (1, x2.shape[3]):
        raise ValueError(f"f1 must have shape {x2.shape[:2] + (1, x2.shape[3])}, got {f1.shape}")
    if x is None:
        return BroadcastResidualReLUFunction.apply(x2, f1)
    return BroadcastResidualReLUFunction.apply(x2, f1, x)


# ---------------------------------------------- FreqIN and ResNorm (paper 2.2)


class FreqNormFunction(Function):
    """lam * x + (x - mu_nf) / sqrt(sigma_nf^2 + eps), statistics over axes C and T of N x C x F x T.

    lam = 0 is FreqIN (eq. 1), lam > 0 is ResNorm (eq. 3). Backward is instance norm's:
    with xhat = (x - mu) / sigma and means over (C, T),
    dx = lam * g + (g - mean(g) - xhat * mean(g * xhat)) / sqrt(sigma^2 + eps).
    The two streaming passes each way are in tinyasc/kernels/norm.py (`freq_norm_forward`:
    the loop that accumulates s[f] and ss[f] computes mu_nf and sigma_nf^2 of eq. 2).
    """

    def forward(self, x, lam, eps):
        self.x, self.lam = x, lam
        out, self.mean, self.invstd = kernels.freq_norm_forward(x, lam, eps)
        return out

    def backward(self, grad):
        return kernels.freq_norm_backward(self.x, grad, self.lam, self.mean, self.invstd)


def freq_instance_norm(x, eps=1e-5, lam=0.0):
    """FreqIN (eq. 1) with lam = 0, ResNorm (eq. 3) with lam > 0; the modules are nn.FreqIN and nn.ResNorm."""
    if x.ndim != 4:
        raise ValueError(f"FreqIN expects N x C x F x T input, got shape {x.shape}")
    return FreqNormFunction.apply(x, lam=float(lam), eps=float(eps))
