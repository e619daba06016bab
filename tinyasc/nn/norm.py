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
from tinyasc.nn.module import Module, Parameter


class FreqIN(Module):
    """Eq. 1 of the paper; no parameters.

    FreqIN and ResNorm are one differentiable operation, `F.freq_instance_norm` (forward and
    backward in `F.FreqNormFunction`, lam = 0 here); the modules only hold eps and lam.
    """

    def __init__(self, eps=1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return F.freq_instance_norm(x, self.eps)


class ResNorm(Module):
    """Eq. 3 of the paper: lam * x + FreqIN(x); no parameters."""

    def __init__(self, lam=0.1, eps=1e-5):
        super().__init__()
        self.lam, self.eps = lam, eps

    def forward(self, x):
        return F.freq_instance_norm(x, self.eps, lam=self.lam)

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
        return F.sub_spectral_norm(x, self.subbands, self.running_mean, self.running_var, self.weight, self.bias,
                                   training=self.training, momentum=self.momentum, eps=self.eps)

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
