"""Fake quantization of the conv weights (paper section 2.4), a differentiable op.

Symmetric b-bit quantization, s = max|w| / (2^(b-1) - 1), with the straight-through estimator of
quantization-aware training; tinyasc/compress/quantize.py builds quantization-aware training,
integer codes and half precision on these (docs/compression.md).
"""
import numpy as np

from tinyasc.autograd.function import Function

HALF = 16  # conv "bits" that mean IEEE half precision (float16 values), not integer codes


def check_bits(bits):
    """Conv bit widths tinyasc stores: 2..8 (integer codes) or 16 (float16)."""
    if bits != HALF and not (isinstance(bits, (int, np.integer)) and 2 <= bits <= 8):
        raise ValueError(f"conv bits must be 2..8 (integer quantization) or 16 (half precision), got {bits!r}")
    return int(bits)


def qmax(bits):
    """Q = 2^(b-1) - 1: the largest code of symmetric b-bit quantization."""
    return 2 ** (int(bits) - 1) - 1


def quantization_scale(w, bits=8, per_channel=False):
    """s = max|w| / Q, as w's dtype: a 0-d array, or C x 1 x 1 x 1 per output channel.

    A tensor (or channel) whose max|w| / Q is not a normal float (all zeros, or weights
    below 1e-36 in float32) gets s = 1, so all its codes are 0.
    """
    w = np.asarray(w)
    amax = np.max(np.abs(w), axis=tuple(range(1, w.ndim)), keepdims=True) if per_channel else np.max(np.abs(w))
    scale = np.asarray(amax, dtype=w.dtype) / w.dtype.type(qmax(bits))
    return np.where(scale >= np.finfo(w.dtype).tiny, scale, w.dtype.type(1)).astype(w.dtype)


class FakeQuantizeFunction(Function):
    """w_hat = clip(round(w / s), -Q, Q) * s [* mask], with Q = 2^(b-1) - 1 and the scale s given.

    Backward is the straight-through estimator (STE) of quantization-aware training:
    d w_hat / d w := 1 where round(w / s) lies in [-Q, Q] (not clipped), 0 where it is clipped
    and 0 at pruned positions; s counts as a constant. docs/compression.md explains why.
    """

    def forward(self, w, scale, limit, mask):
        codes = np.round(w / scale)
        self.passes = np.abs(codes) <= limit
        out = np.clip(codes, -limit, limit) * scale
        if mask is not None:
            out = out * mask
            self.passes &= mask
        return out + w.dtype.type(0)

    def backward(self, grad):
        return grad * self.passes


def fake_quantize(weight, bits=8, per_channel=False, mask=None, scale=None):
    """The fake-quantized weight as a differentiable Tensor (scale: default max|w| / Q)."""
    bits = check_bits(bits)
    if bits == HALF:
        raise ValueError("QAT is for integer bit widths 2..8; 16-bit conv weights are float16 (round_half)")
    w = weight.data
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != w.shape:
            raise ValueError(f"mask has shape {mask.shape}, weight has {w.shape}")
    if scale is None:  # from the kept weights only (the pruned ones are zero once masks are held)
        scale = quantization_scale(w if mask is None else w * mask, bits, per_channel)
    scale = np.asarray(scale, dtype=w.dtype)
    return FakeQuantizeFunction.apply(weight, scale=scale, limit=w.dtype.type(qmax(bits)), mask=mask)
