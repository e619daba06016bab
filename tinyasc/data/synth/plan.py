"""The plan of a synthetic dataset: its size, its segments, and which devices record each.

Part of tinyasc's synthetic stand-in for TAU Urban Acoustic Scenes 2020 Mobile (the data
the paper trains on, section 3.1, too large to fetch here); it is not part of the paper's
method. The plan follows TAU's structure: device a records most of the training data, b and
c record some of the same segments, s1-s3 process their own choice of a-segments, s4-s6
appear only in the test split, and every test segment is recorded by all nine devices.
Train and test segments come from different recording locations. No audio here: the plan
is a list of `Segment`s, deterministic for a seed.
"""
from dataclasses import dataclass

import numpy as np

from tinyasc.data.tau import CITIES, DEVICES, SCENES
from tinyasc.errors import DataError

SR = 44100                        # the sample rate of every generated file, as TAU's
TRAIN_OTHER_DEVICES = ("b", "c", "s1", "s2", "s3")


# Presets: the one table of sizes (TAU: train a 10,215, b c s1 s2 s3 750 each; test 330
# per device for all nine).

@dataclass(frozen=True)
class Preset:
    name: str
    clip_seconds: float
    train_a: int                  # device-a training segments
    train_other: int              # training segments of each of b, c, s1, s2, s3
    test_per_device: int          # test segments, each recorded by all nine devices
    segments_per_location: int    # consecutive segments cut from one location's recording


PRESETS = {
    "tiny": Preset("tiny", 1.0, 27, 2, 10, 3),
    "default": Preset("default", 3.0, 1362, 100, 200, 4),
    "full": Preset("full", 10.0, 10215, 750, 330, 12),
}


def get_preset(preset):
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise DataError(f"unknown synthetic preset {preset!r}; choose one of "
                        f"{', '.join(PRESETS)}")
    return PRESETS[preset]


# The plan: which segment is recorded where, by which devices, in which split.

@dataclass(frozen=True)
class Segment:
    split: str
    scene: str
    city: str
    location: int                 # unique within the city across both splits
    index: int                    # segment number within the location
    devices: tuple

    @property
    def stem(self):
        return f"{self.scene}-{self.city}-{self.location}-{self.index}"

    @property
    def identifier(self):
        return f"{self.city}-{self.location}"

    def filename(self, device):
        return f"audio/{self.stem}-{device}.wav"

    @property
    def key(self):
        """Integers naming the segment, for seeding its random generators."""
        return [CITIES.index(self.city), self.location, self.index]


def _spread(total, parts, rng):
    """`total` split into `parts` near-equal integers, the remainder on random parts."""
    counts = np.full(parts, total // parts)
    counts[rng.permutation(parts)[: total % parts]] += 1
    return counts


def make_plan(preset, seed):
    """The list of segments of a synthetic dataset (no audio)."""
    preset = get_preset(preset)
    rng = np.random.default_rng([seed, 1])
    next_location = {city: 0 for city in CITIES}
    segments = []
    for split, total in (("train", preset.train_a), ("test", preset.test_per_device)):
        devices = ("a",) if split == "train" else DEVICES
        split_segments = []
        for scene, count in zip(SCENES, _spread(total, len(SCENES), rng)):
            n_loc = max(1, int(round(count / preset.segments_per_location)))
            cities = rng.permutation(len(CITIES))
            for i, per_loc in enumerate(_spread(int(count), n_loc, rng)):
                city = CITIES[cities[i % len(CITIES)]]
                location = next_location[city]
                next_location[city] += 1
                for index in range(per_loc):
                    split_segments.append(Segment(split, scene, city, location, index, devices))
        if split == "train":
            split_segments = _assign_train_devices(split_segments, preset.train_other, rng)
        segments += split_segments
    return segments


def _assign_train_devices(segments, per_device, rng):
    """b and c record the same segments alongside a (TAU's real devices recorded
    simultaneously); s1, s2, s3 each process their own random choice of a-segments.
    Choices are stratified by scene."""
    def choose():
        by_scene = {s: [i for i, seg in enumerate(segments) if seg.scene == s] for s in SCENES}
        chosen = []
        for scene, k in zip(SCENES, _spread(per_device, len(SCENES), rng)):
            pool = by_scene[scene]
            chosen += list(rng.choice(pool, size=min(int(k), len(pool)), replace=False))
        return set(int(i) for i in chosen)

    extra = {i: [] for i in range(len(segments))}
    real = choose()
    for i in real:
        extra[i] += ["b", "c"]
    for dev in ("s1", "s2", "s3"):
        for i in choose():
            extra[i].append(dev)
    out = []
    for i, seg in enumerate(segments):
        devices = tuple(d for d in DEVICES if d == "a" or d in extra[i])
        out.append(Segment(seg.split, seg.scene, seg.city, seg.location, seg.index, devices))
    return out
