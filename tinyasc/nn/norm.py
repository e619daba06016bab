"""The normalizations of the paper (section 2.2) and of BC-ResNet.

- FreqIN (eq. 1-2): instance normalization per frequency bin. For each sample n and
  bin f, mu_nf and sigma_nf^2 are the mean and (biased) variance over channels and time.
- ResNorm (eq. 3): lam * x + FreqIN(x): the normalized path discards device-specific
  per-band gain, the lam * x shortcut keeps what the classifier still needs.
- SubSpectralNorm (Chang et al. 2021): BatchNorm with separate statistics for S
  frequency sub-bands; channel c of sub-band s is normalizer c * S + s.
- GlobalFreqNorm: the Table 2 baseline, a fixed per-bin standardisation from training data.
"""
import numpy as np

from tinyasc import functional as F
from tinyasc.autograd.function import Function
from tinyasc import kernels
from tinyasc.nn.module import Module, Parameter


class FreqInstanceNorm(Function):
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
    if x.ndim != 4:
        raise ValueError(f"FreqIN expects N x C x F x T input, got shape {x.shape}")
    return FreqInstanceNorm.apply(x, lam=float(lam), eps=float(eps))


class FreqIN(Module):
    """Eq. 1 of the paper; no parameters."""

    def __init__(self, eps=1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return freq_instance_norm(x, self.eps)


class ResNorm(Module):
    """Eq. 3 of the paper: lam * x + FreqIN(x); no parameters."""

    def __init__(self, lam=0.1, eps=1e-5):
        super().__init__()
        self.lam, self.eps = lam, eps

    def forward(self, x):
        return freq_instance_norm(x, self.eps, lam=self.lam)

    def extra_repr(self):
        return f"lam={self.lam}"


class SubSpectralNorm(Module):
    """BatchNorm over S frequency sub-bands: N x C x F x T -> N x (C*S) x (F/S) x T -> BN -> back."""

    def __init__(self, num_features, subbands=4, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.subbands, self.eps, self.momentum = num_features, subbands, eps, momentum
        size = num_features * subbands
        self.weight = Parameter(np.ones(size, np.float32))
        self.bias = Parameter(np.zeros(size, np.float32))
        self.register_buffer("running_mean", np.zeros(size, np.float32))
        self.register_buffer("running_var", np.ones(size, np.float32))

    def forward(self, x):
        n, c, f, t = x.shape
        if f % self.subbands:
            raise ValueError(f"SubSpectralNorm: {f} frequency bins are not divisible by {self.subbands} sub-bands")
        y = x.reshape(n, c * self.subbands, f // self.subbands, t)
        y = F.batch_norm(y, self.running_mean, self.running_var, self.weight, self.bias,
                         training=self.training, momentum=self.momentum, eps=self.eps)
        return y.reshape(n, c, f, t)

    def extra_repr(self):
        return f"{self.num_features}, subbands={self.subbands}"


class GlobalFreqNorm(Module):
    """(x - mean_f) / std_f with per-bin statistics of the training set (buffers, not learned)."""

    def __init__(self, num_bins=256):
        super().__init__()
        self.register_buffer("mean", np.zeros(num_bins, np.float32))
        self.register_buffer("std", np.ones(num_bins, np.float32))

    def set_statistics(self, mean, std):
        self.mean[...] = mean
        self.std[...] = std

    def forward(self, x):
        return (x - self.mean.reshape(1, 1, -1, 1)) / self.std.reshape(1, 1, -1, 1)
