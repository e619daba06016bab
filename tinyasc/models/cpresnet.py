"""CP-ResNet (Koutini et al., "The receptive field as a regularizer in deep convolutional neural
networks for acoustic scene classification", EUSIPCO 2019): a comparison system of Table 2.

A ResNet whose receptive field (RF) is restricted on purpose: the paper shows that ASC models
generalise best with a bounded RF, and sets it by turning 3x3 convolutions into 1x1 ones.
The hyper-parameter rho (from the authors' DCASE 2019 follow-up and their released code) says
how many of the 22 switchable convolutions stay 3x3: the first rho of them, in network order.
Table 2's "CP-ResNet, c=64" is base width c = 64 with the released code's default rho = 5.

Shapes for input N x 1 x 256 x T (c = 64; rho = 5 makes stages 2 and 3 all 1x1):
  head conv 5x5, stride 2, padding 1 -> c x 127 x (T-3)//2+1
  stage 1: 4 blocks, c channels, 2x2 max-pool after blocks 1, 2 and 4 -> c x 15 x T'
  stage 2: 4 blocks, 2c channels -> stage 3: 4 blocks, 4c channels -> 4c x 15 x T'
  conv 1x1 to K (no bias) -> BN -> mean over F, T -> K logits          (T' = 20 for T = 334)
Parameter count of every layer and the rule for each rho: docs/baselines.md.
"""
import math

from tinyasc import functional as F
from tinyasc import nn
from tinyasc import random as ta_random
from tinyasc.models.bcresnet import input_norm_module

BLOCKS_PER_STAGE = 4
POOL_AFTER = (1, 2, 4)   # stage 1 max-pools 2x2 after these blocks (1-based), as released
SWITCHABLE = 22          # convs after stage 1's first block; stage 1's first block is 3x3 then 1x1


def kernel_sizes(rho):
    """(k1, k2) of the 12 blocks, stage by stage: the first rho switchable convs are 3, the rest 1.

    Equivalent to the released code's thresholds on rho - 7 (see docs/baselines.md): rho = 5
    gives stage 1 = (3,1) (3,3) (3,3) (3,1) and 1x1 everywhere in stages 2 and 3.
    """
    if not 0 <= rho <= SWITCHABLE:
        raise ValueError(f"rho must be in 0..{SWITCHABLE}, got {rho}")
    sizes = [3, 1] + [3 if i < rho else 1 for i in range(SWITCHABLE)]
    pairs = list(zip(sizes[0::2], sizes[1::2]))
    return [pairs[s * BLOCKS_PER_STAGE:(s + 1) * BLOCKS_PER_STAGE] for s in range(3)]


def receptive_field(rho):
    """The RF (in input bins, the same along F and T) of one unit of the map before the global mean.

    The main path bounds it; 1x1 shortcuts never see further. Head: 5x5 stride 2.
    """
    rf, jump = 5, 2
    for s, stage in enumerate(kernel_sizes(rho)):
        for b, (k1, k2) in enumerate(stage, start=1):
            rf += (k1 - 1 + k2 - 1) * jump
            if s == 0 and b in POOL_AFTER:
                rf += jump        # 2x2 pool, stride 2
                jump *= 2
    return rf


class BasicBlock(nn.Module):
    """conv k1 -> BN -> ReLU -> conv k2 -> BN, + shortcut (1x1 conv -> BN if the width changes) -> ReLU."""

    def __init__(self, in_channels, out_channels, k1, k2):
        super().__init__()
        # Same padding; the released code writes it k // 3, which is k // 2 for k in {1, 3}.
        self.conv1 = nn.Conv2d(in_channels, out_channels, k1, padding=k1 // 2, bias=False)
        self.bn1 = nn.BatchNormReLU2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, k2, padding=k2 // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if in_channels != out_channels:
            self.shortcut = nn.Sequential()
            self.shortcut.add_module("conv", nn.Conv2d(in_channels, out_channels, 1, bias=False))
            self.shortcut.add_module("bn", nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        y = self.bn2(self.conv2(self.bn1(self.conv1(x))))
        return F.relu(y + self.shortcut(x))


class CPResNet(nn.Module):
    """CP-ResNet with base width c, receptive-field parameter rho, for N x in_channels x F x T.

    F and T must survive the head and three 2x2 pools: at least 18 (18 -> 8 -> 4 -> 2 -> 1).
    init="cpjku" initialises as the released code does (see `init_like_cpjku`); "pytorch"
    keeps tinyasc's PyTorch-default layer initialisation. norm: an input-only normalization
    of Table 2, "none" by default (see bcresnet.input_norm_module).
    """

    def __init__(self, c=64, rho=5, num_classes=10, in_channels=1, init="cpjku", norm="none", lam=0.1,
                 num_bins=256):
        super().__init__()
        if init not in ("cpjku", "pytorch"):
            raise ValueError(f"init must be 'cpjku' or 'pytorch', got {init!r}")
        self.c, self.rho, self.num_classes, self.in_channels = c, rho, num_classes, in_channels
        self.norm, self.lam = norm, lam
        self.input_norm = input_norm_module(norm, lam, num_bins)
        self.head = nn.Conv2d(in_channels, c, 5, stride=2, padding=1, bias=False)
        self.head_bn = nn.BatchNormReLU2d(c)
        stages, cin = [], c
        for width, stage in zip((c, 2 * c, 4 * c), kernel_sizes(rho)):
            blocks = []
            for k1, k2 in stage:
                blocks.append(BasicBlock(cin, width, k1, k2))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Conv2d(cin, num_classes, 1, bias=False)
        self.classifier_bn = nn.BatchNorm2d(num_classes)
        if init == "cpjku":
            self.init_like_cpjku()

    def forward(self, x):
        x = self.head_bn(self.head(self.input_norm(x)))
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage, start=1):
                x = block(x)
                if s == 0 and b in POOL_AFTER:
                    x = F.max_pool2d(x, 2)
        return self.classifier_bn(self.classifier(x)).mean(dim=(2, 3))

    def init_like_cpjku(self):
        """The released code's "fixup" initialisation, which its CP-ResNet configs select.

        The head conv: He-normal, std sqrt(2 / fan_in). Per block: conv1 ~ N(0, L^-1/2 sqrt(2 / n))
        with n = k*k*out_channels and L = 12 blocks; conv2 = 0, so every block starts as its
        shortcut; shortcut conv ~ N(0, sqrt(2 / out_channels)). The classifier conv = 0.
        BatchNorm: weight 1, bias 0 (already so).
        """
        rng = ta_random.generator()

        def normal(weight, std):
            weight.data[...] = rng.normal(0.0, std, weight.shape).astype(weight.data.dtype)

        normal(self.head.weight, math.sqrt(2.0 / self.head.weight.data[0].size))
        blocks = [block for stage in self.stages for block in stage]
        for block in blocks:
            w1 = block.conv1.weight
            normal(w1, len(blocks) ** -0.5 * math.sqrt(2.0 / (w1.shape[0] * w1.shape[2] * w1.shape[3])))
            block.conv2.weight.data[...] = 0.0
            if isinstance(block.shortcut, nn.Sequential):
                normal(block.shortcut.conv.weight, math.sqrt(2.0 / block.shortcut.conv.weight.shape[0]))
        self.classifier.weight.data[...] = 0.0
        return self

    def extra_repr(self):
        return (f"c={self.c}, rho={self.rho}, num_classes={self.num_classes}, in_channels={self.in_channels}, "
                f"norm={self.norm!r}")
