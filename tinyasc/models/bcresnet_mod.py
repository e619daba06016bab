"""BC-ResNet-Mod: the paper's Table 1 (section 2.1), with the normalizations of 2.2.

BC-ResNet (Kim et al. 2021, "Broadcasted Residual Learning") mixes 2-D features (the
frequency-depthwise f2) with 1-D temporal features (f1 on the frequency mean), and
broadcasts the 1-D result back over frequency. The "Mod" of this paper limits the
receptive field: no dilation, and two 2x2 max-pools between stages instead.

Shapes for input N x 1 x 256 x T (c = base width):
  ResNorm -> head conv 5x5/2 -> 2c x 128 x T/2 -> stage 1 -> c x 128 x T/2 -> pool
  -> stage 2 -> 1.5c x 64 x T/4 -> pool -> stage 3 -> 2c x 32 x T/8 -> stage 4
  -> 2.5c x 32 x T/8 -> 1x1 conv -> K x 32 x T/8 -> mean over F, T -> K logits.
"""
from tinyasc import functional as F
from tinyasc import nn

NORMS = ("none", "global", "freqin", "preresnorm", "resnorm")


class Head(nn.Module):
    """conv 5x5, stride 2, padding 2, no bias -> BN -> ReLU."""

    def __init__(self, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(1, out_channels, 5, stride=2, padding=2, bias=False)
        self.bn = nn.BatchNormReLU2d(out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))


class F2(nn.Module):
    """The 2-D path: [conv 1x1 -> BN -> ReLU, Transition only] -> depthwise 3x1 -> SubSpectralNorm."""

    def __init__(self, in_channels, out_channels, subbands, transition):
        super().__init__()
        self.transition = transition
        if transition:
            self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
            self.pw_bn = nn.BatchNormReLU2d(out_channels)
        self.dw = nn.Conv2d(out_channels, out_channels, (3, 1), padding=(1, 0), groups=out_channels, bias=False)
        self.ssn = nn.SubSpectralNorm(out_channels, subbands)

    def forward(self, x):
        if self.transition:
            x = self.pw_bn(self.pw(x))
        return self.ssn(self.dw(x))


class F1(nn.Module):
    """The 1-D path on the frequency mean: depthwise 1x3 -> BN -> SiLU -> conv 1x1 -> Dropout2d."""

    def __init__(self, channels, dropout):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1), groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.pw = nn.Conv2d(channels, channels, 1, bias=False)
        self.drop = nn.Dropout2d(dropout)

    def forward(self, x2):
        pooled = x2.mean(dim=2, keepdim=True)  # N x C x 1 x T
        return self.drop(self.pw(F.silu(self.bn(self.dw(pooled)))))


class BCResBlock(nn.Module):
    """out = ReLU(x2 + f1(x2) broadcast over frequency [+ x in Normal blocks]), x2 = f2(x)."""

    def __init__(self, in_channels, out_channels, subbands=4, dropout=0.1, transition=None):
        super().__init__()
        # The first block of each stage is a Transition block (Table 1), even if c is so
        # small that int(1.5c) == c; elsewhere a channel change needs one.
        self.transition = in_channels != out_channels if transition is None else transition
        if not self.transition and in_channels != out_channels:
            raise ValueError(f"a Normal block keeps its channels, got {in_channels} -> {out_channels}")
        self.f2 = F2(in_channels, out_channels, subbands, self.transition)
        self.f1 = F1(out_channels, dropout)

    def forward(self, x):
        x2 = self.f2(x)
        # relu(x2 + f1 broadcast over frequency [+ x]), fused in one pass.
        return F.broadcast_residual_relu(x2, self.f1(x2), None if self.transition else x)


def mod_stage_channels(c):
    """BC-ResNet-Mod's channels of stages 1-4 from the base width c (Table 1): c, int(1.5c), 2c, int(2.5c)."""
    return (int(c), int(1.5 * c), int(2 * c), int(2.5 * c))


class BCResNetMod(nn.Module):
    """BC-ResNet-Mod of Table 1. norm picks the Table 2 variant:

    none        no input or stage normalization
    global      Global FreqNorm of the input (per-bin training-set statistics; call
                `self.input_norm.set_statistics(mean, std)` before training)
    freqin      FreqIN (eq. 1) of the input only
    preresnorm  ResNorm (eq. 3) of the input only
    resnorm     ResNorm of the input and after each of the four stages (five modules)
    """

    def __init__(self, c=10, num_classes=10, norm="resnorm", lam=0.1, subbands=4, dropout=0.1, num_bins=256):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        self.c, self.num_classes, self.norm, self.lam = c, num_classes, norm, lam
        if norm == "global":
            self.input_norm = nn.GlobalFreqNorm(num_bins)
        elif norm == "freqin":
            self.input_norm = nn.FreqIN()
        elif norm in ("preresnorm", "resnorm"):
            self.input_norm = nn.ResNorm(lam)
        else:
            self.input_norm = nn.Identity()
        w1, w2, w3, w4 = mod_stage_channels(c)
        self.head = Head(2 * c)
        blocks = [[(2 * c, w1), (w1, w1)], [(w1, w2), (w2, w2)], [(w2, w3), (w3, w3)],
                  [(w3, w4), (w4, w4), (w4, w4)]]
        self.stages = nn.ModuleList(
            nn.Sequential(*[BCResBlock(cin, cout, subbands, dropout, transition=(b == 0))
                            for b, (cin, cout) in enumerate(stage)]) for stage in blocks)
        self.stage_norms = nn.ModuleList(
            nn.ResNorm(lam) if norm == "resnorm" else nn.Identity() for _ in blocks)
        self.classifier = nn.Conv2d(w4, num_classes, 1, bias=True)

    def forward(self, x):
        x = self.head(self.input_norm(x))
        for s, (stage, stage_norm) in enumerate(zip(self.stages, self.stage_norms)):
            x = stage_norm(stage(x))
            if s < 2:
                x = F.max_pool2d(x, 2)
        return self.classifier(x).mean(dim=(2, 3))

    def extra_repr(self):
        return f"c={self.c}, num_classes={self.num_classes}, norm={self.norm!r}, lam={self.lam}"


def count_parameters(model):
    return sum(p.data.size for p in model.parameters())
