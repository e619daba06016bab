"""Paired recordings for the translator: device A and another device recording one segment.

TAU names paired files alike but for the device suffix ('bus-milan-3-2-a.wav' and
'bus-milan-3-2-s1.wav'), so pairs are found by tau.segment_of. In the training split, b and
c recorded alongside a, and s1-s3 processed a's audio; in the test split every segment
exists for all nine devices, which gives the held-out pairs of the evaluation.

The networks see log-mels standardized per mel bin with the mean and std of the device-A
training clips (`Normalizer`); both sides of a pair use the same statistics, so the
identity stays the identity and the generator learns the device difference.
"""
from dataclasses import dataclass

import numpy as np

from tinyasc.data.tau import segment_of
from tinyasc.errors import TinyAscError
from tinyasc.train.data import bin_statistics

SOURCE = "a"


@dataclass
class Pairs:
    """source[i] (row of device A) and target[i] (row of device targets[device[i]])."""
    source: np.ndarray   # int64 feature rows
    target: np.ndarray   # int64 feature rows
    device: np.ndarray   # int64 index into `targets`
    targets: tuple       # target device names
    segments: tuple      # segment name of each pair

    def __len__(self):
        return len(self.source)

    def of_device(self, k):
        return np.flatnonzero(self.device == k)


def find_pairs(split, featureset, targets=None):
    """Pairs (A, d) of one split for every device d in `targets` (None: every device that
    has at least one pair with A there, in TAU order)."""
    by_segment = {}
    for name, device in zip(split.filenames, split.devices):
        by_segment.setdefault(segment_of(name), {})[device] = name
    available = sorted({d for files in by_segment.values() if SOURCE in files for d in files if d != SOURCE},
                       key=lambda d: (d[0] != "b" and d[0] != "c", d))
    if targets is None:
        targets = tuple(available)
    missing = [d for d in targets if d not in available]
    if missing:
        raise TinyAscError(f"the {split.name} split has no recordings of device {', '.join(missing)} paired with "
                           f"device {SOURCE}; paired devices there: {', '.join(available) or 'none'}")
    source, target, device, segments = [], [], [], []
    for k, d in enumerate(targets):
        for segment in sorted(by_segment):
            files = by_segment[segment]
            if SOURCE in files and d in files:
                source.append(featureset.index[files[SOURCE]])
                target.append(featureset.index[files[d]])
                device.append(k)
                segments.append(segment)
    return Pairs(np.array(source, np.int64), np.array(target, np.int64), np.array(device, np.int64),
                 tuple(targets), tuple(segments))


class Normalizer:
    """Per-mel-bin standardization with device-A training statistics (F-vectors)."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)

    @classmethod
    def fit(cls, features, rows):
        return cls(*bin_statistics(features, rows, min_var=1e-6))

    def __call__(self, x):
        """N x F x T log-mel -> standardized, float32."""
        return ((np.asarray(x, np.float32) - self.mean[:, None]) / self.std[:, None]).astype(np.float32)

    def invert(self, z):
        return (np.asarray(z, np.float32) * self.std[:, None] + self.mean[:, None]).astype(np.float32)
