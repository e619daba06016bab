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

from tinyasc.data import cache, synth
from tinyasc.data.tau import load_dataset, segment_of
from tinyasc.data.training import bin_statistics
from tinyasc.errors import TinyAscError

CHUNK = 64  # clips in memory at once

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


def eq_offsets(features, pairs):
    """K x F: for each target device, the mean over its training pairs and frames of target - source."""
    offsets = np.zeros((len(pairs.targets), features.shape[1]))
    for k in range(len(pairs.targets)):
        i = pairs.of_device(k)
        for start in range(0, len(i), CHUNK):  # chunks: TAU has 750 pairs a device
            j = i[start:start + CHUNK]
            diff = np.asarray(features[pairs.target[j]], np.float64) - np.asarray(features[pairs.source[j]], np.float64)
            offsets[k] += diff.sum(axis=(0, 2))
        offsets[k] /= max(len(i), 1) * features.shape[2]
    return offsets.astype(np.float32)


class PairData:
    """The dataset's features, the train and test pairs, and the normalizer."""

    def __init__(self, dataset, featureset, targets=None):
        self.dataset, self.features = dataset, featureset.x
        self.featureset = featureset
        self.train = find_pairs(dataset.train, featureset, targets)
        self.test = find_pairs(dataset.test, featureset, self.train.targets)
        a_rows = featureset.rows([f for f, d in zip(dataset.train.filenames, dataset.train.devices) if d == "a"])
        self.normalizer = Normalizer.fit(self.features, a_rows)

    def mean_offsets(self):
        """K x F: mean normalized target - source over the training pairs of each target
        device (the fixed equalizer the generator's `eq` starts from)."""
        return (eq_offsets(self.features, self.train) / self.normalizer.std).astype(np.float32)

    @classmethod
    def load(cls, config, log=print, progress=True):
        root = config.data or synth.ensure_default_dataset(preset=config.preset, progress=progress, log=log)
        dataset = load_dataset(root)
        featureset = cache.load_features(dataset, progress=progress, log=log)
        return cls(dataset, featureset, config.target_list)

    def batch(self, pairs, index, crop, rng):
        """Normalized (source, target) N x 1 x F x T float32, cropped at random to `crop` frames."""
        src = self.normalizer(self.features[pairs.source[index]])
        tgt = self.normalizer(self.features[pairs.target[index]])
        t = src.shape[-1]
        if t > crop:
            starts = rng.integers(0, t - crop + 1, len(index))
            cols = starts[:, None] + np.arange(crop)
            rows = np.arange(len(index))[:, None]
            src = src.transpose(0, 2, 1)[rows, cols].transpose(0, 2, 1)
            tgt = tgt.transpose(0, 2, 1)[rows, cols].transpose(0, 2, 1)
        return np.ascontiguousarray(src[:, None]), np.ascontiguousarray(tgt[:, None])
