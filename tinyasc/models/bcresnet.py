"""BC-ResNet (Kim et al., "Broadcasted Residual Learning for Efficient Keyword Spotting",
Interspeech 2021): the original network, a comparison system of the paper's Table 2.

The paper's BC-ResNet-Mod (bcresnet_mod.py) is this network with a limited receptive field:
BC-ResNet keeps the full time resolution and grows its receptive field with temporal
dilation (1, 2, 4, 8 in stages 1-4) and two frequency strides, and ends in a depthwise 5x5
conv, a 1x1 conv to 32*tau channels and a 1x1 conv classifier. Table 2's "BC-ResNet-8, num
SSN group = 4" is tau = 8 with 4 SubSpectralNorm sub-bands, 10 classes and 256 mel bins.

Shapes for input N x 1 x 256 x T (b = int(8 tau); BC-ResNet-8: b = 64):
  head conv 5x5, stride (2,1) -> 2b x 128 x T -> stage 1 (d=1) -> b x 128 x T
  -> stage 2 (f-stride 2, d=2) -> 1.5b x 64 x T -> stage 3 (f-stride 2, d=4) -> 2b x 32 x T
  -> stage 4 (d=8) -> 2.5b x 32 x T -> depthwise 5x5, no f-padding -> 2.5b x 28 x T
  -> 1x1 conv -> BN -> ReLU -> 4b x 28 x T -> mean over F, T -> 1x1 conv with bias -> K logits.
Parameter count of every layer: docs/baselines.md.
"""
from tinyasc import nn
from tinyasc.autograd.function import as_pair
from tinyasc.models.bcresnet_mod import BCResBlock, Head

INPUT_NORMS = ("none", "global", "freqin", "preresnorm")  # the input-only variants of Table 2
BLOCKS = (2, 2, 4, 4)        # BC-ResBlocks per stage (the paper's Table 1, column n)
FREQ_STRIDE = (1, 2, 2, 1)   # stride (s, 1) on f2's depthwise conv, first block of the stage
DILATION = (1, 2, 4, 8)      # temporal dilation of f1's depthwise 1x3 conv, every block


def _retune(conv, stride=None, padding=None, dilation=None):
    """Change a convolution's stride, padding or dilation in place.

    None of them changes the weight's shape, so the blocks of bcresnet_mod.py are reused as
    built (same names, same initialisation draws) and only these hyper-parameters are set.
    """
    if stride is not None:
        conv.stride = as_pair(stride, "stride")
    if padding is not None:
        conv.padding = as_pair(padding, "padding")
    if dilation is not None:
        conv.dilation = as_pair(dilation, "dilation")
    return conv


def bc_resblock(in_channels, out_channels, subbands, dropout, freq_stride=1, dilation=1):
    """A BC-ResBlock of the original network: BC-ResNet-Mod's block with a frequency stride on
    f2's depthwise 3x1 conv and a temporal dilation on f1's depthwise 1x3 conv.

    As in the released code, a block is a Transition block exactly when its channels change.
    """
    block = BCResBlock(in_channels, out_channels, subbands, dropout, transition=in_channels != out_channels)
    if freq_stride != 1:
        if not block.transition:  # the identity shortcut would not match the strided x2
            raise ValueError("a frequency stride needs a Transition block (a channel change)")
        _retune(block.f2.dw, stride=(freq_stride, 1))
    if dilation != 1:
        # padding = dilation keeps T: the dilated 1x3 kernel spans 2*dilation + 1 frames.
        _retune(block.f1.dw, padding=(0, dilation), dilation=(1, dilation))
    return block


def input_norm_module(norm, lam=0.1, num_bins=256):
    """The module applied to the log-mel input for an input-only `norm` (see BCResNetMod).

    ResNorm after every stage belongs to BC-ResNet-Mod; the comparison systems take the
    input-only variants, so Table 2's baselines can be trained on the same features.
    """
    if norm not in INPUT_NORMS:
        raise ValueError(f"norm must be one of {', '.join(INPUT_NORMS)}; got {norm!r}")
    if norm == "global":
        return nn.GlobalFreqNorm(num_bins)
    if norm == "freqin":
        return nn.FreqIN()
    if norm == "preresnorm":
        return nn.ResNorm(lam)
    return nn.Identity()


def bcresnet_channels(tau):
    """BC-ResNet's channels from tau: head, stages 1-4, the last 1x1 conv (16, 8, 12, 16, 20, 32 times tau)."""
    b = int(8 * tau)
    return (2 * b, b, int(1.5 * b), 2 * b, int(2.5 * b), 4 * b)


class Tail(nn.Module):
    """Depthwise 5x5 (padding only in time) -> conv 1x1 -> BN -> ReLU, the layers before pooling."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        # No frequency padding (as in the original): 5 bins -> 1 for 40 mels, 32 -> 28 for 256.
        self.dw = nn.Conv2d(in_channels, in_channels, 5, padding=(0, 2), groups=in_channels, bias=False)
        self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNormReLU2d(out_channels)

    def forward(self, x):
        return self.bn(self.pw(self.dw(x)))


class BCResNet(nn.Module):
    """BC-ResNet-tau of Kim et al. 2021, for N x 1 x F x T log-mels; F = 256 in this project.

    norm: an input-only normalization of Table 2 ("none" as in the original; "global" needs
    `self.input_norm.set_statistics(mean, std)` before training, as for BCResNetMod).

    F must leave a multiple of `subbands` bins at every SubSpectralNorm (ceil(F/2), then
    halved twice) and at least 5 bins before the depthwise 5x5 conv: F = 64 is the smallest
    power of two that works; 256 gives 128, 64, 32 and 28 bins.
    """

    def __init__(self, tau=8, num_classes=10, subbands=4, dropout=0.1, norm="none", lam=0.1, num_bins=256):
        super().__init__()
        self.tau, self.num_classes, self.subbands, self.norm, self.lam = tau, num_classes, subbands, norm, lam
        self.input_norm = input_norm_module(norm, lam, num_bins)
        head, *widths, last = bcresnet_channels(tau)
        self.head = Head(head)
        _retune(self.head.conv, stride=(2, 1))  # halve frequency only: T stays whole
        stages, cin = [], head
        for cout, n, stride, dilation in zip(widths, BLOCKS, FREQ_STRIDE, DILATION):
            stages.append(nn.Sequential(*[
                bc_resblock(cin if b == 0 else cout, cout, subbands, dropout,
                            freq_stride=stride if b == 0 else 1, dilation=dilation)
                for b in range(n)]))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.tail = Tail(cin, last)
        self.classifier = nn.Conv2d(last, num_classes, 1, bias=True)

    def forward(self, x):
        x = self.head(self.input_norm(x))
        for stage in self.stages:
            x = stage(x)
        x = self.tail(x).mean(dim=(2, 3), keepdim=True)   # N x 4b x 1 x 1
        return self.classifier(x).reshape(x.shape[0], self.num_classes)

    def extra_repr(self):
        return f"tau={self.tau}, num_classes={self.num_classes}, subbands={self.subbands}, norm={self.norm!r}"

