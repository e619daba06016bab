"""The memory-bound ops of BC-ResNet-Mod as benchmark cases: batch norm with its fused ReLU,
SubSpectralNorm, the frequency mean, a Normal block's residual + ReLU, and ResNorm (paper sections
2.1-2.2; tinyasc/kernels/norm.py).

Each case gives the tinyasc kernel call, its NumPy reference and PyTorch's ops for the same work, so
that benchmarks/kernels.py can time them side by side and a test can check the three agree.
"""
import numpy as np

from tinyasc import kernels as K
from tinyasc.kernels import norm

EPS = 1e-5


def norm_cases(c, batch):
    """(layer, family, x_shape): the normalizations and BC-ResBlock's other memory-bound ops,
    each at the largest map it sees in BC-ResNet-Mod (the input, or stage 1's)."""
    B = batch
    return [
        ("input ResNorm", "freq_norm", (B, 1, 256, 334)),
        ("head BN+ReLU", "batch_norm", (B, 2 * c, 128, 167)),
        ("stage1 SubSpectralNorm", "sub_spectral_norm", (B, c, 128, 167)),
        ("stage1 frequency mean", "freq_mean", (B, c, 128, 167)),
        ("stage1 residual+ReLU", "broadcast_residual_relu", (B, c, 128, 167)),
        ("stage1 ResNorm", "freq_norm", (B, c, 128, 167)),
    ]


def norm_ops(family, x_shape, rng, torch):
    """{op: [tinyasc fn, NumPy reference fn, PyTorch fn or None, elements, passes]} for one case.

    Each fn returns its result, so that tests can check the three compute the same thing.
    elements: the lower bound the training step's roofline uses too (benchmarks/train_step.py):
    every full-size array read or written, once; the small per-channel or N x C x 1 x T arrays
    are not counted. passes: how many times the tinyasc kernels stream over the full-size
    arrays, so a two-pass kernel at full bandwidth shows a roof% below 100.
    The inputs are drawn here; any statistics the backward needs come from the references, so
    that no kernel runs before the timed calls (measure_jit_times times each one's first call).
    """
    if family not in _FAMILIES:
        raise ValueError(f"unknown norm family {family!r}")
    x = rng.standard_normal(x_shape).astype(np.float32)
    g = rng.standard_normal(x_shape).astype(np.float32)
    return _FAMILIES[family](x, g, rng, torch)


def _batch_norm_ops(x, g, rng, torch, subbands=1):
    """Training-mode batch norm; with ReLU fused for plain batch norm (the head's and the Transition
    blocks'), and for SubSpectralNorm (subbands > 1) with the frequency mean's gradient added."""
    N, C, F, T = x.shape
    S, relu = subbands, subbands == 1
    view, gview = x.reshape(N, C * S, F // S, T), g.reshape(N, C * S, F // S, T)  # S bands per channel
    w = rng.uniform(0.5, 1.5, C * S).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, C * S).astype(np.float32)
    g_freq = rng.standard_normal((N, C, 1, T)).astype(np.float32) if S > 1 else None
    g_sum = gview if g_freq is None else (g + g_freq).reshape(view.shape)
    mean, var = norm.batch_norm_stats_ref(view.reshape(N, C * S, -1))
    invstd = 1.0 / np.sqrt(var + EPS)

    def forward():
        m, v = K.batch_norm_stats(view.reshape(N, C * S, -1))
        return K.batch_norm_forward(view, w, b, m, v, EPS, relu)[0]

    def forward_ref():
        m, v = norm.batch_norm_stats_ref(view.reshape(N, C * S, -1))
        return norm.batch_norm_forward_ref(view, w, b, m, v, EPS, relu)[0]

    ops = {"forward": [forward, forward_ref, None, 2 * x.size, 2],
           "backward": [lambda: K.batch_norm_backward(view, gview, mean, invstd, w, b, True, relu, g_freq),
                        lambda: norm.batch_norm_backward_from_input_ref(view, g_sum, mean, invstd, w, b, True, relu),
                        None, 3 * x.size, 2]}
    if torch is not None:
        vt, wt, bt = torch.from_numpy(view), torch.from_numpy(w), torch.from_numpy(b)
        gt = torch.from_numpy(g)
        gft = None if g_freq is None else torch.from_numpy(g_freq)
        rm, rv = torch.zeros(C * S), torch.ones(C * S)
        out, save_mean, save_invstd = torch.ops.aten.native_batch_norm(vt, wt, bt, rm, rv, True, 0.1, EPS)[:3]
        out = torch.relu(out) if relu else out

        def t_forward():
            y = torch.ops.aten.native_batch_norm(vt, wt, bt, rm, rv, True, 0.1, EPS)[0]
            return torch.relu(y) if relu else y

        def t_backward():  # PyTorch's autograd sums a node's gradients first, then runs the op
            gy = (gt if gft is None else gt + gft).reshape(view.shape)
            if relu:
                gy = torch.ops.aten.threshold_backward(gy, out, 0)
            return torch.ops.aten.native_batch_norm_backward(gy, vt, wt, rm, rv, save_mean, save_invstd, True, EPS,
                                                             [True, True, True])

        ops["forward"][2], ops["backward"][2] = t_forward, t_backward
    return ops


def _freq_norm_ops(x, g, rng, torch, lam=0.1):
    """ResNorm (eq. 3; FreqIN with lam = 0)."""
    _, mean, invstd = norm.freq_norm_forward_ref(x, lam, EPS)
    ops = {"forward": [lambda: K.freq_norm_forward(x, lam, EPS)[0],
                       lambda: norm.freq_norm_forward_ref(x, lam, EPS)[0], None, 2 * x.size, 2],
           "backward": [lambda: K.freq_norm_backward(x, g, lam, mean, invstd),
                        lambda: norm.freq_norm_backward_ref(x, g, lam, mean, invstd), None, 3 * x.size, 2]}
    if torch is not None:
        xt, gt = torch.from_numpy(x), torch.from_numpy(g)
        xg = xt.clone().requires_grad_(True)

        def t_resnorm(v):  # as the PyTorch model computes it (benchmarks/torch_reference.py)
            mu = v.mean(dim=(1, 3), keepdim=True)
            var = v.var(dim=(1, 3), keepdim=True, unbiased=False)
            return lam * v + (v - mu) / torch.sqrt(var + EPS)

        def t_forward():
            with torch.no_grad():
                return t_resnorm(xt)

        graph = t_resnorm(xg)
        ops["forward"][2] = t_forward
        ops["backward"][2] = lambda: torch.autograd.grad(graph, xg, gt, retain_graph=True)[0]
    return ops


def _freq_mean_ops(x, g, rng, torch):
    """The mean over frequency that starts every f1 branch (its gradient goes to SubSpectralNorm)."""
    xt = None if torch is None else torch.from_numpy(x)
    return {"forward": [lambda: K.freq_mean(x), lambda: norm.freq_mean_ref(x),
                        None if torch is None else lambda: xt.mean(dim=2, keepdim=True), x.size, 1]}


def _residual_ops(x, g, rng, torch):
    """A Normal block's output, relu(x2 + f1 + x) with f1 broadcast over frequency."""
    N, C, _, T = x.shape
    x2 = rng.standard_normal(x.shape).astype(np.float32)
    f1 = rng.standard_normal((N, C, 1, T)).astype(np.float32)
    out = norm.broadcast_residual_relu_ref(x2, f1, x)
    ops = {"forward": [lambda: K.broadcast_residual_relu(x2, f1, x),
                       lambda: norm.broadcast_residual_relu_ref(x2, f1, x), None, 3 * x.size, 1],
           "backward": [lambda: K.broadcast_residual_relu_backward(out, g),
                        lambda: norm.broadcast_residual_relu_backward_ref(out, g), None, 3 * x.size, 1]}
    if torch is not None:
        xt, gt, x2t, f1t, outt = (torch.from_numpy(a) for a in (x, g, x2, f1, out))

        def t_backward():
            gm = torch.ops.aten.threshold_backward(gt, outt, 0)
            return gm, gm.sum(dim=2, keepdim=True)

        ops["forward"][2] = lambda: torch.relu(x2t + f1t + xt)
        ops["backward"][2] = t_backward
    return ops


_FAMILIES = {"batch_norm": _batch_norm_ops,
             "sub_spectral_norm": lambda x, g, rng, torch: _batch_norm_ops(x, g, rng, torch, subbands=4),
             "freq_norm": _freq_norm_ops, "freq_mean": _freq_mean_ops, "broadcast_residual_relu": _residual_ops}
