"""Data augmentation of the training recipe (paper 3.1).

    time_roll      roll each clip in time by a random shift in [-1.5 s, 1.5 s], wrapping
    mixup          convex mixtures of pairs of clips and of their targets (alpha = 0.3)
    spec_augment   two frequency masks (F = 40) and two time masks (T = 80), no warping

All work on float32 batches N x 1 x F x T or N x F x T (time last, frequency second to
last), are vectorised over the batch, draw from the np.random.Generator they are given,
and return new arrays: the input is never modified.
"""
import numpy as np


def _check(x):
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"expected a batch N x 1 x F x T or N x F x T, got shape {x.shape}")
    return x


def time_roll(x, rng, max_shift=50):
    """Roll every clip along time by its own shift s, uniform in [-max_shift, max_shift]:
    out[..., t] = x[..., (t - s) mod T], the part pushed out re-enters on the other side.
    50 frames = 1.5 s at the 30 ms hop."""
    x = _check(x)
    n, t = x.shape[0], x.shape[-1]
    shifts = rng.integers(-max_shift, max_shift + 1, size=n)
    out = np.empty_like(x)
    if t == 0:
        return out
    # Two slice copies per clip: the values of the gather x[..., (t - s) mod T], at a tenth of
    # np.take_along_axis's time (which was two thirds of a training batch's preparation)
    for i, k in enumerate((shifts % t).tolist()):
        out[i, ..., k:] = x[i, ..., :t - k]
        out[i, ..., :k] = x[i, ..., t - k:]
    return out


def one_hot(y, num_classes=10, dtype=np.float32):
    """Integer labels -> probability rows; probability rows pass through."""
    y = np.asarray(y)
    if y.ndim == 2:
        return y.astype(dtype, copy=True)
    return np.eye(num_classes, dtype=dtype)[y]


def mixup(x, y, rng, alpha=0.3, num_classes=10, per_sample=False):
    """Mixup (Zhang et al. 2018): x' = lam x + (1 - lam) x[perm], likewise the targets.

    y: integer labels (N,) or probabilities (N x K). Returns (x', targets N x K) whose rows
    sum to 1. One lam ~ Beta(alpha, alpha) per batch by default, as in the original mixup
    (per_sample=True draws one per clip); perm is a random permutation of the batch.
    """
    x = _check(x)
    targets = one_hot(y, num_classes)
    n = x.shape[0]
    lam = rng.beta(alpha, alpha, size=n if per_sample else 1).astype(np.float32)
    perm = rng.permutation(n)
    lam_x = lam.reshape((-1,) + (1,) * (x.ndim - 1))
    x_mix = lam_x * x + (1 - lam_x) * x[perm]
    lam_y = lam[:, None]
    y_mix = lam_y * targets + (1 - lam_y) * targets[perm]
    return x_mix.astype(x.dtype, copy=False), y_mix


def _band_mask(rng, n, size, count, max_width):
    """Boolean N x size: `count` bands per row, widths uniform in [0, max_width), starts
    uniform in [0, size - width] (SpecAugment's f ~ U[0, F), f0 ~ U[0, v - f])."""
    width = rng.integers(0, max(1, min(max_width, size + 1)), size=(n, count))
    start = (rng.random((n, count)) * (size - width + 1)).astype(np.int64)
    pos = np.arange(size)
    return ((pos >= start[..., None]) & (pos < (start + width)[..., None])).any(axis=1)


def spec_augment_masks(rng, n, f, t, freq_masks=2, freq_width=40, time_masks=2,
                       time_width=80):
    """The masks spec_augment draws: boolean N x F (masked bins), N x T (masked frames)."""
    return (_band_mask(rng, n, f, freq_masks, freq_width),
            _band_mask(rng, n, t, time_masks, time_width))


def spec_augment(x, rng, freq_masks=2, freq_width=40, time_masks=2, time_width=80,
                 fill="mean"):
    """SpecAugment (Park et al. 2019) without time warping.

    Masked cells are set to each clip's own mean (fill="mean", what SpecAugment does with
    normalised features, so a mask adds no level cue) or to a number given as `fill`.
    """
    x = _check(x)
    n, f, t = x.shape[0], x.shape[-2], x.shape[-1]
    fmask, tmask = spec_augment_masks(rng, n, f, t, freq_masks, freq_width, time_masks,
                                      time_width)
    lead = (n,) + (1,) * (x.ndim - 3)
    mask = fmask.reshape(lead + (f, 1)) | tmask.reshape(lead + (1, t))
    if fill == "mean":
        value = x.reshape(n, -1).mean(axis=1).reshape((n,) + (1,) * (x.ndim - 1))
    else:
        value = np.asarray(fill, dtype=x.dtype)
    return np.where(mask, value, x).astype(x.dtype, copy=False)


PAPER_FRAMES = 334  # the paper's 10 s clips at the 30 ms hop


class Augment:
    """The paper's training augmentation as one loader transform(x, y, rng) -> (x, y):
    time roll, SpecAugment, then Mixup (which turns the labels into probabilities).

    The time roll is the paper's +-1.5 s whatever the clip length (it wraps around, so it
    never hides anything). Time-mask widths are the paper's for 10 s clips (334 frames);
    shorter clips get them scaled by T / 334, so a mask hides the same share of a clip.
    """

    def __init__(self, roll_frames=50, specaugment=True, freq_masks=2, freq_width=40, time_masks=2,
                 time_width=80, mixup_alpha=0.3, num_classes=10):
        self.roll_frames, self.specaugment = roll_frames, specaugment
        self.freq_masks, self.freq_width, self.time_masks, self.time_width = (freq_masks, freq_width, time_masks,
                                                                              time_width)
        self.mixup_alpha, self.num_classes = mixup_alpha, num_classes

    @classmethod
    def from_config(cls, config, num_classes=10):
        """The augmentation a TrainConfig asks for (its roll_frames, specaugment, ... fields)."""
        return cls(config.roll_frames, config.specaugment, config.freq_masks, config.freq_width, config.time_masks,
                   config.time_width, config.mixup_alpha, num_classes)

    def __call__(self, x, y, rng):
        scale = min(1.0, x.shape[-1] / PAPER_FRAMES)
        if self.roll_frames:
            x = time_roll(x, rng, self.roll_frames)
        if self.specaugment:
            x = spec_augment(x, rng, freq_masks=self.freq_masks, freq_width=self.freq_width,
                             time_masks=self.time_masks, time_width=max(1, int(round(self.time_width * scale))))
        if self.mixup_alpha > 0:
            x, y = mixup(x, y, rng, alpha=self.mixup_alpha, num_classes=self.num_classes)
        return x, y
