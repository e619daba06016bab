"""Why frequency-wise normalization helps (paper 2.2): each device's colouring of the same
test segments, before and after FreqIN (eq. 1) and ResNorm (eq. 3).

A device's frequency response is a gain per band; in a log-mel spectrogram that is an offset
per frequency bin, the same in every frame. FreqIN subtracts each clip's own per-bin mean,
so the offset goes, and with it the scene's spectral envelope; ResNorm keeps lambda times
the input beside it. This module measures that on the segments of the test split recorded
by every device, with the model's own normalization (`freq_instance_norm`):

- the mean log-mel spectrum of each device over the same segments and frames, raw, after
  FreqIN and after ResNorm;
- per frequency bin, the root-mean-square difference between a device's and device A's
  recording of the same segment, frame by frame, divided by the standard deviation of device
  A's values in that bin over all segments and frames: how far apart the two recordings look
  to the network, measured against how much the input varies from scene to scene anyway
  (dimensionless, so raw log-mel and the normalized views compare).

`tinyasc figures --spectra` draws both (`device_spectra.png`); docs/resnorm.md shows it.
"""
from collections import defaultdict

import numpy as np

from tinyasc.autograd import Tensor, no_grad
from tinyasc.data.tau import DEVICES, segment_of
from tinyasc.errors import TinyAscError
from tinyasc.functional import freq_instance_norm

VIEWS = ("raw", "FreqIN", "ResNorm")


def paired_segments(filenames, devices, rows):
    """{device: feature rows} over the segments recorded by every device in `devices`,
    all in the same segment order (so row i of each device is the same sound)."""
    by_segment = defaultdict(dict)
    for name, device, row in zip(filenames, devices, rows):
        by_segment[segment_of(name)][device] = int(row)
    wanted = set(DEVICES)
    complete = sorted(s for s, takes in by_segment.items() if set(takes) >= wanted)
    if not complete:
        raise TinyAscError("no test segment is recorded by all nine devices (a..s6); the device "
                           "spectra need the paired test split of TAU 2020 Mobile or of the synthetic dataset")
    return {d: np.array([by_segment[s][d] for s in complete], dtype=np.int64) for d in DEVICES}, len(complete)


def _views(x, lam):
    """raw, FreqIN and ResNorm of N x F x T log-mels (float64), as N x F x T arrays."""
    with no_grad():
        freqin = freq_instance_norm(Tensor(x[:, None]), lam=0.0).numpy()[:, 0]
    return {"raw": x, "FreqIN": freqin, "ResNorm": lam * x + freqin}


def device_spectra(features, paired, lam=0.1, chunk=32):
    """Per device and view: the mean spectrum (F,) and the relative RMS difference to device A (F,).

    features: N x F x T (the feature cache); paired: {device: rows} from paired_segments.
    Returns {"mean": {view: {device: (F,)}}, "distance": {view: {device: (F,)}}}.
    """
    n_seg = len(paired["a"])
    n_bins, n_frames = features.shape[1], features.shape[2]
    sums = {v: {d: np.zeros(n_bins) for d in DEVICES} for v in VIEWS}
    squares = {v: {d: np.zeros(n_bins) for d in DEVICES} for v in VIEWS}
    spread = {v: np.zeros(n_bins) for v in VIEWS}   # sum of squares of device A's values
    for start in range(0, n_seg, chunk):
        part = slice(start, start + chunk)
        ref = _views(np.asarray(features[paired["a"][part]], dtype=np.float64), lam)
        for device in DEVICES:
            views = ref if device == "a" else _views(np.asarray(features[paired[device][part]], dtype=np.float64), lam)
            for v in VIEWS:
                sums[v][device] += views[v].sum(axis=(0, 2))
                squares[v][device] += ((views[v] - ref[v]) ** 2).sum(axis=(0, 2))
                if device == "a":
                    spread[v] += (views[v] ** 2).sum(axis=(0, 2))
    count = n_seg * n_frames
    means = {v: {d: sums[v][d] / count for d in DEVICES} for v in VIEWS}
    scale = {v: np.sqrt(np.maximum(spread[v] / count - means[v]["a"] ** 2, 1e-12)) for v in VIEWS}
    return {"mean": means,
            "distance": {v: {d: np.sqrt(squares[v][d] / count) / scale[v] for d in DEVICES} for v in VIEWS}}


def spread_over_devices(spectra, view):
    """How far the devices' mean spectra lie apart: the mean over bins of the per-bin standard
    deviation across the nine devices (0 when normalization removed every device offset)."""
    stacked = np.stack([spectra["mean"][view][d] for d in DEVICES])
    return float(stacked.std(axis=0).mean())


def summary_lines(spectra, n_segments, lam):
    lines = [f"device spectra over {n_segments} test segments recorded by all nine devices (lambda = {lam}):",
             f"{'view':<8} {'spread of device means':>24} {'distance to A: B-S3':>20} {'S4-S6':>8}"]
    for view in VIEWS:
        unseen = np.mean([spectra["distance"][view][d].mean() for d in ("s4", "s5", "s6")])
        seen = np.mean([spectra["distance"][view][d].mean() for d in ("b", "c", "s1", "s2", "s3")])
        lines.append(f"{view:<8} {spread_over_devices(spectra, view):>24.3f} {seen:>20.3f} {unseen:>8.3f}")
    return lines
