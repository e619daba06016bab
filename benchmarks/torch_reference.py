"""BC-ResNet-Mod (paper Table 1; docs/model.md) written in PyTorch with tinyasc's state_dict names.

Used only by tests and benchmarks, and only when PyTorch is installed (it is never a
tinyasc dependency): it checks the interoperability contract — the same state dict in
both frameworks gives the same outputs — and is the side-by-side speed reference of
benchmarks/train_step.py. Importing it imports torch; nothing in tinyasc does.
"""
import torch
import torch.nn as tnn
import torch.nn.functional as tF


class SubSpectralNorm(tnn.Module):
    """Holds its BatchNorm state directly, so its state_dict names match tinyasc's."""

    def __init__(self, channels, subbands, momentum=0.1, eps=1e-5):
        super().__init__()
        self.subbands, self.momentum, self.eps = subbands, momentum, eps
        self.weight = tnn.Parameter(torch.ones(channels * subbands))
        self.bias = tnn.Parameter(torch.zeros(channels * subbands))
        self.register_buffer("running_mean", torch.zeros(channels * subbands))
        self.register_buffer("running_var", torch.ones(channels * subbands))

    def forward(self, x):
        n, c, f, t = x.shape
        y = x.reshape(n, c * self.subbands, f // self.subbands, t)
        y = tF.batch_norm(y, self.running_mean, self.running_var, self.weight, self.bias,
                          self.training, self.momentum, self.eps)
        return y.reshape(n, c, f, t)


class ResNorm(tnn.Module):
    def __init__(self, lam, eps=1e-5):
        super().__init__()
        self.lam, self.eps = lam, eps

    def forward(self, x):
        mu = x.mean(dim=(1, 3), keepdim=True)
        var = x.var(dim=(1, 3), keepdim=True, unbiased=False)
        return self.lam * x + (x - mu) / torch.sqrt(var + self.eps)


class Head(tnn.Module):
    def __init__(self, out_channels):
        super().__init__()
        self.conv = tnn.Conv2d(1, out_channels, 5, stride=2, padding=2, bias=False)
        self.bn = tnn.BatchNorm2d(out_channels)

    def forward(self, x):
        return tF.relu(self.bn(self.conv(x)))


class F2(tnn.Module):
    def __init__(self, cin, cout, subbands, transition):
        super().__init__()
        self.transition = transition
        if transition:
            self.pw = tnn.Conv2d(cin, cout, 1, bias=False)
            self.pw_bn = tnn.BatchNorm2d(cout)
        self.dw = tnn.Conv2d(cout, cout, (3, 1), padding=(1, 0), groups=cout, bias=False)
        self.ssn = SubSpectralNorm(cout, subbands)

    def forward(self, x):
        if self.transition:
            x = tF.relu(self.pw_bn(self.pw(x)))
        return self.ssn(self.dw(x))


class F1(tnn.Module):
    def __init__(self, channels, dropout):
        super().__init__()
        self.dw = tnn.Conv2d(channels, channels, (1, 3), padding=(0, 1), groups=channels, bias=False)
        self.bn = tnn.BatchNorm2d(channels)
        self.pw = tnn.Conv2d(channels, channels, 1, bias=False)
        self.drop = tnn.Dropout2d(dropout)

    def forward(self, x2):
        return self.drop(self.pw(tF.silu(self.bn(self.dw(x2.mean(dim=2, keepdim=True))))))


class Block(tnn.Module):
    def __init__(self, cin, cout, subbands, dropout, transition):
        super().__init__()
        self.transition = transition
        self.f2 = F2(cin, cout, subbands, self.transition)
        self.f1 = F1(cout, dropout)

    def forward(self, x):
        x2 = self.f2(x)
        out = x2 + self.f1(x2)
        return tF.relu(out if self.transition else out + x)


class BCResNetModTorch(tnn.Module):
    def __init__(self, c=10, num_classes=10, norm="resnorm", lam=0.1, subbands=4, dropout=0.1):
        super().__init__()
        if norm not in ("none", "preresnorm", "resnorm"):
            raise ValueError("the PyTorch reference covers norm none, preresnorm and resnorm")
        w = (int(c), int(1.5 * c), int(2 * c), int(2.5 * c))
        self.input_norm = ResNorm(lam) if norm != "none" else tnn.Identity()
        self.head = Head(2 * c)
        stages = [[(2 * c, w[0]), (w[0], w[0])], [(w[0], w[1]), (w[1], w[1])], [(w[1], w[2]), (w[2], w[2])],
                  [(w[2], w[3]), (w[3], w[3]), (w[3], w[3])]]
        self.stages = tnn.ModuleList(tnn.Sequential(*[Block(a, b, subbands, dropout, i == 0) for i, (a, b) in enumerate(s)])
                                    for s in stages)
        self.stage_norms = tnn.ModuleList(ResNorm(lam) if norm == "resnorm" else tnn.Identity() for _ in stages)
        self.classifier = tnn.Conv2d(w[3], num_classes, 1)

    def forward(self, x):
        x = self.head(self.input_norm(x))
        for s, (stage, norm) in enumerate(zip(self.stages, self.stage_norms)):
            x = norm(stage(x))
            if s < 2:
                x = tF.max_pool2d(x, 2)
        return self.classifier(x).mean(dim=(2, 3))


def tinyasc_to_torch_state(state):
    """A tinyasc state dict as torch tensors (the names are already the same)."""
    return {key: torch.from_numpy(value.copy()) for key, value in state.items()}
