"""Quantization (paper 2.4): symmetric b-bit conv weights, learned with QAT; 16-bit the rest.

Symmetric quantization with Q = 2^(b-1) - 1 levels each side of zero (127 for 8 bits):

    s = max|w| / Q                      one scale per tensor (or per output channel)
    q = clip(round(w / s), -Q, Q)       the integer code (int8 for b <= 8)
    w_hat = q * s                       the fake-quantized weight the network computes with

Zero maps to zero, so pruned weights stay pruned and only the survivors take grid values.
s is a plain float32 division, and re-quantization is then exact: the largest |w_hat| is
fl(Q * s) and fl(fl(Q * s) / Q) == s for s = fl(max|w| / Q) (no exception in 10^7 random
tensors per Q; the tests check it with hypothesis), so quantizing w_hat gives w_hat back.

Quantization-aware training (QAT) runs the forward with w_hat and sends the gradient to
the float weight w with a straight-through estimator (STE), defined here as

    d w_hat / d w := 1 where round(w / s) lies in [-Q, Q] (not clipped), 0 where it is
                     clipped, and 0 at pruned positions when a mask is given;

the scale counts as a constant (no gradient flows into max|w|). Since s comes from the
current max|w|, nothing is clipped in practice and the STE is the identity on the kept
weights.

"16-bit" in Table 3 is IEEE half precision: `half_precision_` rounds every other parameter
and buffer (batch-norm and SubSpectralNorm weight, bias and running statistics, the
classifier bias) through float16. bits=16 for the conv weights means the same (model 4).
"""
import numpy as np

from tinyasc import functional as F
from tinyasc import nn
from tinyasc.compress.prune import conv_modules, conv_weights
from tinyasc.functional import (HALF, FakeQuantizeFunction, check_bits, fake_quantize, qmax,  # noqa: F401
                                quantization_scale)
from tinyasc.nn.module import Module


def quantize(w, bits=8, per_channel=False):
    """(codes, scale): int8 codes q = clip(round(w / s), -Q, Q) and the scale s."""
    bits = check_bits(bits)
    if bits == HALF:
        raise ValueError("16-bit conv weights are float16, not integer codes; use round_half")
    w = np.asarray(w)
    scale = quantization_scale(w, bits, per_channel)
    limit = qmax(bits)
    codes = np.clip(np.round(w / scale), -limit, limit).astype(np.int8)
    return codes, scale


def dequantize(codes, scale):
    """w_hat = q * s in the scale's dtype (the exact product the fake-quantized forward uses)."""
    return codes.astype(scale.dtype) * scale + scale.dtype.type(0)  # + 0 turns -0.0 into 0.0


class QuantizedConv2d(nn.Conv2d):
    """A Conv2d that computes with its fake-quantized weight: quantization-aware training (paper 2.4).

    forward = conv2d(x, fake_quantize(weight), bias): the forward pass sees the integer-coded
    weight the exported model will hold, the backward passes the gradient straight through to the
    float weight (the STE of FakeQuantize), zero at pruned positions when a mask is given.
    It holds the same Parameter objects as the conv it replaces, so the optimizer, the state-dict
    names and the checkpoints do not change; `repr(model)` shows which convs are quantized.
    """

    def __init__(self, conv, bits=8, per_channel=False, mask=None):
        Module.__init__(self)  # not Conv2d.__init__, which would draw new weights
        self.in_channels, self.out_channels, self.groups = conv.in_channels, conv.out_channels, conv.groups
        self.kernel_size, self.stride, self.dilation, self.padding = (conv.kernel_size, conv.stride, conv.dilation,
                                                                      conv.padding)
        self.weight, self.bias = conv.weight, conv.bias
        self.training = conv.training
        self.bits, self.per_channel, self.mask = bits, per_channel, mask
        object.__setattr__(self, "float_conv", conv)  # not registered: its Parameters are this module's

    def forward(self, x):
        w = fake_quantize(self.weight, self.bits, self.per_channel, self.mask)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return super().extra_repr() + f", bits={self.bits}" + (", per_channel=True" if self.per_channel else "")


def _replace(model, weight_name, new):
    """Put module `new` where the conv owning `weight_name` is, keeping the registration order
    (and so the order of parameters, state dict and optimizer state)."""
    path = weight_name[:-len(".weight")].split(".") if weight_name != "weight" else []
    if not path:
        raise ValueError("the model itself is a conv: wrap it in a module to quantize it")
    parent = model
    for part in path[:-1]:
        parent = parent._modules[part]
    parent._modules[path[-1]] = new
    object.__setattr__(parent, path[-1], new)


def quantize_convs_(model, bits=8, per_channel=False, masks=None):
    """Replace every Conv2d of `model` by a QuantizedConv2d (in place); returns the model.

    masks (from prune) zero the STE gradient of pruned weights, so the optimizer sees the same
    zeros as after mask_gradients.
    """
    bits = check_bits(bits)
    if bits == HALF:
        raise ValueError("quantization-aware training needs integer bits 2..8; 16-bit needs no QAT")
    masks = dict(masks or {})
    convs = conv_modules(model)
    unknown = set(masks) - set(convs)
    if unknown:
        raise KeyError(f"masks name no Conv2d weight: {sorted(unknown)}")
    for name, conv in convs.items():
        if isinstance(conv, QuantizedConv2d):
            raise RuntimeError(f"{name}: this conv is quantized already (QAT applied twice?)")
        _replace(model, name, QuantizedConv2d(conv, bits, bool(per_channel), masks.get(name)))
    return model


def float_convs_(model):
    """Undo quantize_convs_: every QuantizedConv2d back to its plain Conv2d (in place)."""
    for name, conv in conv_modules(model).items():
        if isinstance(conv, QuantizedConv2d):
            conv.float_conv.training = conv.training
            _replace(model, name, conv.float_conv)
    return model


class QuantizationAware:
    """QAT for a block of code: quantize_convs_ on entry, float_convs_ on exit.

        with QuantizationAware(model, bits=8, masks=masks):
            ...any training or evaluation code...
    """

    def __init__(self, model, bits=8, per_channel=False, masks=None):
        self.model, self.bits, self.per_channel, self.masks = model, check_bits(bits), bool(per_channel), masks
        if self.bits == HALF:
            raise ValueError("QuantizationAware needs integer bits 2..8; 16-bit needs no QAT")
        unknown = set(masks or {}) - set(conv_modules(model))
        if unknown:
            raise KeyError(f"masks name no Conv2d weight: {sorted(unknown)}")

    def attach(self):
        quantize_convs_(self.model, self.bits, self.per_channel, self.masks)
        return self

    def detach(self):
        float_convs_(self.model)
        return self

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.detach()
        return False


def round_half(array):
    """array rounded through float16, in its own dtype; a finite value beyond float16's range is an error."""
    array = np.asarray(array)
    with np.errstate(over="ignore"):
        half = array.astype(np.float16)
    overflow = np.isinf(half) & np.isfinite(array)
    if overflow.any():
        raise OverflowError(f"{int(overflow.sum())} values exceed float16's range (max 65504), "
                            f"largest {np.max(np.abs(array[overflow])):.6g}")
    return half.astype(array.dtype)


def half_precision_(model, conv=False):
    """Round every parameter and floating buffer except the conv weights through float16, in place.

    conv=True rounds the conv weights too (Table 3, model 4: 16-bit everything).
    """
    conv_ids = {id(p) for p in conv_weights(model).values()}
    for name, p in model.named_parameters():
        if conv or id(p) not in conv_ids:
            try:
                p.data[...] = round_half(p.data)
            except OverflowError as exc:
                raise OverflowError(f"{name}: {exc}") from None
    for name, b in model.named_buffers():
        if b.dtype.kind == "f":
            try:
                b[...] = round_half(b)
            except OverflowError as exc:
                raise OverflowError(f"{name}: {exc}") from None
    return model


def compress_weights_(model, bits=8, per_channel=False):
    """Turn a (pruned, QAT-trained) model into the compressed one, in place.

    Conv weights become their fake-quantized values (bits 2..8) or float16-rounded values
    (bits 16); everything else is rounded through float16. The plain model then predicts
    exactly what the exported file predicts.
    """
    bits = check_bits(bits)
    if bits == HALF:
        return half_precision_(model, conv=True)
    return half_precision_(fake_quantize_weights_(model, bits, per_channel))


def fake_quantize_weights_(model, bits=8, per_channel=False):
    """Set every conv weight to its fake-quantized value (bits 2..8), in place: the plain model then
    computes what its QAT version (QuantizedConv2d) computes, and predicts what it reported."""
    for p in conv_weights(model).values():
        codes, scale = quantize(p.data, bits, per_channel)
        p.data[...] = dequantize(codes, scale)
    return model
