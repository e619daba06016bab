"""The device translator of paper section 2.3: a pix2pix-style GAN over log-mel spectrograms.

Generator (`UNetGenerator`): a U-Net whose encoder halves frequency and time with strided
4x4 convolutions, whose bottleneck holds residual blocks (six, as the paper), and whose
decoder doubles them back with transposed 4x4 convolutions, each taking the matching
encoder output concatenated to its input (the U-Net skips). Every normalization is
SubSpectralNorm with 16 sub-bands (the paper's choice for the translator).

One generator serves every target device: the target is a one-hot condition given as
constant input channels (as StarGAN conditions a single generator). The five target devices
share almost all of the work (the scene content passes through untouched), so one model
sees five times the pairs of a per-device model, for a fifth of the parameters and
training time, which is what a 2-core CPU can afford.

The generator predicts a correction added to its input, y = x + eq[d] + U(x, d): `eq` is a
learned offset per target device and mel bin, which the trainer initializes with the mean
difference of the training pairs (a fixed equalizer), and the U-Net U learns what no fixed
equalizer can (level-dependent compression, the noise floor, band limits that depend on the
signal). Convolutions are blind to absolute frequency except through SubSpectralNorm's 16
sub-bands, so without `eq` the network would spend its capacity rediscovering a per-bin
curve that one vector holds exactly.

Discriminator (`PatchDiscriminator`): the pix2pix PatchGAN, conditioned on the source
spectrogram (and the target device): it scores overlapping patches of
[source, candidate, condition] as real target recordings or translations.

Shapes, generator (N x 1 x F x T in, K conditions, width w, depth d):
  [x, one-hot] N x (1+K) x F x T -> stem conv 3x3 -> w x F x T
  -> d x (conv 4x4/2 -> SSN -> LeakyReLU 0.2): w*2^d x F/2^d x T/2^d
  -> residual blocks (conv 3x3 -> SSN -> ReLU -> conv 3x3 -> SSN, + input)
  -> d x ([h, skip] -> conv-transpose 4x4/2 -> SSN -> ReLU): w x F x T
  -> [h, stem output] -> conv 3x3 -> 1 x F x T, added to x + eq[d].
Time is padded (replicating the edge frames) to a multiple of 2^d and cropped back.
"""
import numpy as np

from tinyasc import functional as F
from tinyasc import nn
from tinyasc.autograd import Tensor, cat


class ConvSSN(nn.Module):
    """conv (no bias) -> SubSpectralNorm -> activation ('relu', 'lrelu' or none)."""

    def __init__(self, cin, cout, kernel, stride, padding, subbands, act, transposed=False):
        super().__init__()
        conv = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.conv = conv(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.ssn = nn.SubSpectralNorm(cout, subbands)
        self.act = act

    def forward(self, x):
        y = self.ssn(self.conv(x))
        if self.act == "relu":
            return F.relu(y)
        if self.act == "lrelu":
            return F.leaky_relu(y, 0.2)
        return y


class ResBlock(nn.Module):
    """x + (conv 3x3 -> SSN -> ReLU -> conv 3x3 -> SSN)(x): the blocks in the U-Net's middle."""

    def __init__(self, channels, subbands):
        super().__init__()
        self.a = ConvSSN(channels, channels, 3, 1, 1, subbands, "relu")
        self.b = ConvSSN(channels, channels, 3, 1, 1, subbands, None)

    def forward(self, x):
        return x + self.b(self.a(x))


def one_hot_planes(target, num_targets, shape, dtype=np.float32):
    """N x K x F x T constant planes: plane target[n] is ones for sample n, the rest zeros."""
    n, _, f, t = shape
    planes = np.zeros((n, num_targets, f, t), dtype=dtype)
    planes[np.arange(n), np.asarray(target, dtype=np.int64)] = 1.0
    return Tensor(planes)


def check_bins(n_bins, depth, subbands):
    """The frequency size at every level must split into `subbands` equal sub-bands."""
    for level in range(depth + 1):
        size = n_bins / 2 ** level
        if size != int(size) or int(size) % subbands:
            raise ValueError(f"{n_bins} mel bins at depth {depth}: level {level} has {size:g} bins, "
                             f"not a multiple of {subbands} sub-bands; lower the depth or the sub-bands")


class UNetGenerator(nn.Module):
    def __init__(self, num_targets, width=8, depth=3, res_blocks=6, subbands=16, n_bins=256):
        super().__init__()
        check_bins(n_bins, depth, subbands)
        self.num_targets, self.depth = num_targets, depth
        self.stem = ConvSSN(1 + num_targets, width, 3, 1, 1, subbands, "relu")
        channels = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([ConvSSN(channels[i], channels[i + 1], 4, 2, 1, subbands, "lrelu")
                                   for i in range(depth)])
        self.middle = nn.Sequential(*[ResBlock(channels[-1], subbands) for _ in range(res_blocks)])
        self.up = nn.ModuleList([ConvSSN(2 * channels[i + 1], channels[i], 4, 2, 1, subbands, "relu",
                                         transposed=True) for i in reversed(range(depth))])
        self.out = nn.Conv2d(2 * width, 1, 3, padding=1)
        self.eq = nn.Parameter(np.zeros((num_targets, n_bins), np.float32))

    def forward(self, x, target):
        """x: N x 1 x F x T (normalized log-mel); target: N ints in [0, num_targets)."""
        t = x.shape[-1]
        step = 2 ** self.depth
        extra = -t % step
        if extra:
            x = F.pad(x, (0, extra), mode="replicate")
        h = self.stem(cat([x, one_hot_planes(target, self.num_targets, x.shape, x.dtype)], dim=1))
        skips = [h]
        for block in self.down:
            h = block(h)
            skips.append(h)
        h = self.middle(h)
        for block in self.up:
            h = block(cat([h, skips.pop()], dim=1))
        eq = self.eq[np.asarray(target, dtype=np.int64)].reshape(x.shape[0], 1, x.shape[2], 1)
        y = x + eq + self.out(cat([h, skips.pop()], dim=1))
        return y[..., :t] if extra else y


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN: [source, candidate, one-hot] -> a map of real/fake scores.

    layers strided 4x4 convs (the first without normalization), one more 4x4 conv at
    stride 1, and a 4x4 conv to one channel; with layers=3 each score sees a 70x70 patch.
    BatchNorm as in pix2pix: the discriminator is not the paper's change.
    """

    def __init__(self, num_targets, width=16, layers=3):
        super().__init__()
        self.num_targets = num_targets
        chans = [2 + num_targets] + [width * 2 ** min(i, 3) for i in range(layers + 1)]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(layers + 1):
            stride = 2 if i < layers else 1
            self.convs.append(nn.Conv2d(chans[i], chans[i + 1], 4, stride=stride, padding=1, bias=(i == 0)))
            if i > 0:
                self.norms.append(nn.BatchNorm2d(chans[i + 1]))
        self.score = nn.Conv2d(chans[-1], 1, 4, padding=1)

    def forward(self, source, candidate, target):
        h = cat([source, candidate, one_hot_planes(target, self.num_targets, source.shape, source.dtype)], dim=1)
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i > 0:
                h = self.norms[i - 1](h)
            h = F.leaky_relu(h, 0.2)
        return self.score(h)


def lsgan_loss(scores, real):
    """Least-squares GAN loss (Mao et al. 2017): mean (D - 1)^2 for real, mean D^2 for fake."""
    return F.mse_loss(scores, Tensor(np.full(scores.shape, 1.0 if real else 0.0, dtype=scores.dtype)))
