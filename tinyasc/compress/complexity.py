"""Complexity as DCASE counts it since 2022: parameters and multiply-accumulates (MACs).

DCASE 2021 Task 1A limited the model's size (128 KB of non-zero parameters, tinyasc.compress.size);
the 2022-2025 editions of the task limit the parameter count (128 K) and the MACs of one inference
on one second of audio (30 MMACs). For the paper's front end, one second is 16,000 samples at a hop
of 480: 1 + 16000 // 480 = 34 frames of 256 mel bins.

MACs are counted from the model's layers as they run: a forward hook on every convolution and
linear layer reads the shape of its output, and each output element costs one multiply-accumulate
per weight it sees:

    conv2d:            N * C_out * H_out * W_out * (C_in / groups) * kh * kw
    conv_transpose2d:  N * C_in * H_in * W_in * (C_out / groups) * kh * kw   (each input element
                       is scattered through the kernel)
    linear:            N * out_features * in_features

Normalization, activation, pooling and the residual additions are not counted: they are a few
operations per activation, not per weight, and DCASE's counts of the baselines leave them out too.
Pruned weights still count: the MACs are those of the dense layers, as DCASE counts them.
"""
from dataclasses import dataclass

import numpy as np

from tinyasc.autograd import Tensor, no_grad
from tinyasc.nn.layers import Conv2d, ConvTranspose2d, Linear

SAMPLE_RATE = 16000
HOP = 480
MEL_BINS = 256
MAC_LIMIT = 30_000_000       # DCASE 2022-2025 Task 1: per inference on 1 s of audio
PARAM_LIMIT = 128 * 1024     # "128 K parameters" (DCASE counts K = 1024 here)


def frames_for(seconds):
    """Frames the paper's front end gives for `seconds` of audio (centered STFT, hop 480 at 16 kHz)."""
    return 1 + int(round(seconds * SAMPLE_RATE)) // HOP


def _layer_macs(module, inputs, output):
    if isinstance(module, Conv2d):
        weight = module.weight.shape               # C_out x C_in/groups x kh x kw
        return int(np.prod(output.shape)) * int(np.prod(weight[1:]))
    if isinstance(module, ConvTranspose2d):
        weight = module.weight.shape               # C_in x C_out/groups x kh x kw
        return int(np.prod(inputs[0].shape)) * int(np.prod(weight[1:]))
    if isinstance(module, Linear):
        return int(np.prod(output.shape[:-1])) * int(np.prod(module.weight.shape))
    return 0


def count_macs(model, frames, mel_bins=MEL_BINS):
    """{layer name: MACs} of one forward pass of `model` on a 1 x 1 x mel_bins x frames input."""
    counts, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, (Conv2d, ConvTranspose2d, Linear)):
            def record(mod, inputs, output, name=name):
                counts[name] = counts.get(name, 0) + _layer_macs(mod, inputs, output)
            handles.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(Tensor(np.zeros((1, 1, mel_bins, frames), np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return counts


@dataclass(frozen=True)
class Complexity:
    parameters: int          # every trainable number (running statistics are buffers, not counted)
    macs: int                # one inference on `seconds` of audio
    seconds: float

    @property
    def mmacs_per_second(self):
        return self.macs / self.seconds / 1e6

    @property
    def within_dcase_limits(self):
        """Both 2022-2025 limits: at most 128 K parameters and 30 MMACs per second of audio."""
        return self.parameters <= PARAM_LIMIT and self.macs / self.seconds <= MAC_LIMIT

    def line(self):
        verdict = "within" if self.within_dcase_limits else "beyond"
        return (f"{self.parameters:,} parameters, {self.mmacs_per_second:.2f} MMACs per second of audio "
                f"({verdict} DCASE 2022-2025's 128 K parameters and 30 MMACs)")


def complexity(model, seconds=1.0):
    """Parameters and MACs of one inference of `model` on `seconds` of audio at the paper's front end."""
    parameters = sum(int(p.data.size) for p in model.parameters())
    macs = sum(count_macs(model, frames_for(seconds)).values())
    return Complexity(parameters, macs, seconds)
