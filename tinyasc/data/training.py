"""What training needs from a dataset: cached features, split rows, labels, devices, batches.

The validation split (used by Min Var model selection) holds out whole recording
locations of the training split, so it is as location-disjoint as the test split.

Batches come from `BatchLoader`, which prepares them (reads, augments) in a background thread
while the model trains on the previous one:

    loader = BatchLoader(features.x, features.rows(split.filenames), split.labels,
                         batch_size=64, shuffle=True, transform=Augment(), seed=0)
    for epoch in range(start_epoch, epochs):
        for step, (xb, yb) in loader.epoch(epoch):     # xb float32 N x 1 x F x T
            ...

Deterministic by construction: epoch e's order comes from np.random.default_rng([seed, e])
and batch b's augmentation from np.random.default_rng([seed, e, b]), so a run resumed at
epoch e (or at batch b) sees exactly what an uninterrupted one would have seen.
"""
import queue
import threading
from typing import NamedTuple

import numpy as np

from tinyasc.data import cache, synth
from tinyasc.data.tau import load_dataset


class SplitRows(NamedTuple):
    """One split as training sees it: rows of the feature array, and per row its label, device, file."""
    rows: np.ndarray
    labels: np.ndarray
    devices: np.ndarray
    filenames: tuple


class TrainingData:
    def __init__(self, dataset, features, splits, validation=None, unsplit_train=None):
        """features: N x F x T array (memmap); splits: name ("train", "test", "val") -> SplitRows;
        validation: the (val_fraction, seed) that held "val" out, None without one;
        unsplit_train: every training clip, before that (what `split_for` splits again)."""
        self.dataset, self.features, self.splits = dataset, features, splits
        self.validation, self.unsplit_train = validation, unsplit_train

    @classmethod
    def load(cls, config, log=print, progress=True):
        if config.data:
            root = config.data
        else:
            root = synth.ensure_default_dataset(preset=config.preset, progress=progress, log=log)
        dataset = load_dataset(root)
        log(dataset.summary())
        featureset = cache.load_features(dataset, progress=progress, log=log)
        return cls.from_features(dataset, featureset, config.val_fraction, config.seed)

    @classmethod
    def from_features(cls, dataset, featureset, val_fraction=0.0, seed=0):
        splits = {}
        for name in ("train", "test"):
            split = dataset.split(name)
            rows = np.array([featureset.index[f] for f in split.filenames], dtype=np.int64)
            splits[name] = SplitRows(rows, np.asarray(split.labels), np.asarray(split.devices), tuple(split.filenames))
        # every training clip so far; split_for holds the validation locations out
        return cls(dataset, featureset.x, splits, unsplit_train=splits["train"]).split_for(val_fraction, seed)

    def split_for(self, val_fraction, seed):
        """This data with the validation split a run of this val_fraction and seed holds out
        (val_fraction of the training locations, drawn by the seed; none for 0). Whether a run
        trains in its own process or on data loaded once for several runs, it sees the split
        `tinyasc train --seed` would give it. Returns self when it already holds exactly that
        split out, else a new TrainingData sharing the features."""
        wanted = (float(val_fraction), int(seed)) if val_fraction > 0 else None
        if wanted == self.validation:
            return self
        if self.unsplit_train is None:
            raise ValueError("this TrainingData keeps no training split from before validation to split again "
                             "(translated clips were added, or it was built without unsplit_train)")
        splits = {"train": self.unsplit_train, "test": self.splits["test"]}
        if wanted is not None:
            rows, labels, devices, names = self.unsplit_train
            identifiers = np.asarray(self.dataset.train.identifiers)
            locations = np.unique(identifiers)
            n_held = max(1, int(round(val_fraction * len(locations))))
            held = np.random.default_rng([seed, 7]).permutation(locations)[:n_held]
            is_val = np.isin(identifiers, held)
            splits["val"] = SplitRows(rows[is_val], labels[is_val], devices[is_val], tuple(np.asarray(names)[is_val]))
            splits["train"] = SplitRows(rows[~is_val], labels[~is_val], devices[~is_val],
                                        tuple(np.asarray(names)[~is_val]))
        return TrainingData(self.dataset, self.features, splits, validation=wanted, unsplit_train=self.unsplit_train)

    @property
    def has_validation(self):
        return "val" in self.splits

    def rows(self, split):
        return self.splits[split].rows

    def labels(self, split):
        return self.splits[split].labels

    def devices(self, split):
        return self.splits[split].devices

    def filenames(self, split):
        return self.splits[split].filenames

    def steps_per_epoch(self, batch_size):
        return max(len(self.rows("train")) // batch_size, 1)

    def train_batches(self, batch_size, seed, epoch, start_step=0, transform=None):
        """(step, (x N x 1 x F x T float32, y)) for the epoch's shuffle, from start_step on.

        transform(x, y, rng) runs in the loader's background thread with
        rng = default_rng([seed, epoch, step]).
        """
        loader = BatchLoader(self.features, self.rows("train"), self.labels("train"), batch_size=batch_size,
                             seed=seed, shuffle=True, drop_last=True, transform=transform)
        return loader.epoch(epoch, start=start_step)

    def with_translations(self, extra, targets, digest):
        """A copy whose training split also holds every device-A training clip translated to
        every target device (paper 3.2); validation and test are untouched.

        extra: the translations, (number of A clips x len(targets)) x F x T, target by target in
        the order of the A clips of the training split (tinyasc.translator.augment makes them);
        digest: which translator made them, so a resumed run checks it trains on the same ones.
        """
        rows, labels, devices, names = self.splits["train"]
        is_a = devices == "a"
        if len(extra) != int(is_a.sum()) * len(targets):
            raise ValueError(f"{len(extra)} translations for {int(is_a.sum())} device-A clips and "
                             f"{len(targets)} target devices")
        base = len(self.features)
        splits = dict(self.splits)
        # np.full(n, d) takes d's own width: a '<U1' device column ('a', 'b') must not cut 's1' to 's'
        splits["train"] = SplitRows(np.concatenate([rows, base + np.arange(len(extra), dtype=np.int64)]),
                           np.concatenate([labels] + [labels[is_a]] * len(targets)),
                           np.concatenate([devices] + [np.full(int(is_a.sum()), d) for d in targets]),
                           tuple(names) + tuple(f"translated-{d}:{n}" for d in targets
                                                for n, a in zip(names, is_a) if a))
        grown = TrainingData(self.dataset, StackedRows(self.features, extra), splits, validation=self.validation)
        grown.translator_digest = digest
        return grown

    def device_a_training_clips(self):
        """(rows, filenames) of the device-A clips of the training split: what the translator translates."""
        rows, _, devices, names = self.splits["train"]
        is_a = devices == "a"
        return rows[is_a], [n for n, a in zip(names, is_a) if a]

    def frequency_statistics(self, chunk=256):
        """Per-bin mean and std over the training clips and frames (Global FreqNorm)."""
        return bin_statistics(self.features, self.rows("train"), chunk)


def bin_statistics(features, rows, chunk=256, min_var=1e-12):
    """float32 per-bin mean and std of features[rows] (N x F x T) over clips and frames,
    accumulated in float64 chunk by chunk (the features may be a memmap larger than memory)."""
    rows = np.sort(np.asarray(rows))
    total = total_sq = 0.0
    count = 0
    for start in range(0, len(rows), chunk):
        x = np.asarray(features[rows[start:start + chunk]], dtype=np.float64)
        total = total + x.sum(axis=(0, 2))
        total_sq = total_sq + (x * x).sum(axis=(0, 2))
        count += x.shape[0] * x.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, min_var))
    return mean.astype(np.float32), std.astype(np.float32)

class StackedRows:
    """Two N_i x F x T arrays read as one: rows of `second` follow those of `first`.

    Supports what the loaders use: len, shape, and indexing by an int or an int array.
    """

    def __init__(self, first, second):
        if first.shape[1:] != second.shape[1:]:
            raise ValueError(f"cannot stack features of shapes {first.shape} and {second.shape}")
        self.first, self.second = first, second
        self.shape = (len(first) + len(second),) + tuple(first.shape[1:])
        self.dtype = first.dtype

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        if np.isscalar(rows):
            if not 0 <= rows < self.shape[0]:
                raise IndexError(f"row {rows} out of range for {self.shape[0]} rows")
            return self.first[rows] if rows < len(self.first) else self.second[rows - len(self.first)]
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"rows out of range for {self.shape[0]} rows")
        out = np.empty((len(rows),) + self.shape[1:], dtype=np.float32)
        low = rows < len(self.first)
        out[low] = self.first[rows[low]]
        out[~low] = self.second[rows[~low] - len(self.first)]
        return out


class BatchLoader:
    """Shuffled float32 batches (x: N x 1 x F x T, y) gathered from an N x F x T array
    (typically the feature cache's memmap).

    x: the features; rows: which rows of x make up this dataset, in order (None: all);
    y: their targets (labels, or anything indexable), one per row.
    transform: callable(x, y, rng) -> (x, y) applied to each batch (augmentation).
    prefetch: batches prepared ahead by the background thread.
    """

    def __init__(self, x, rows, y, batch_size=64, shuffle=True, drop_last=False,
                 transform=None, seed=0, prefetch=2):
        self.x = x
        self.y = np.asarray(y)
        self.rows = np.arange(len(x), dtype=np.int64) if rows is None else np.asarray(rows,
                                                                                     np.int64)
        if len(self.y) != len(self.rows):
            raise ValueError(f"{len(self.y)} targets for {len(self.rows)} rows")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.seed = seed
        self.prefetch = max(1, prefetch)
        self._epoch = 0

    def __len__(self):
        n = len(self.rows)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch):
        """Positions (into rows) in the order epoch `epoch` visits them."""
        n = len(self.rows)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def batch(self, epoch, index):
        """Batch `index` of epoch `epoch`, computed directly (no thread)."""
        order = self.order(epoch)
        return self._make(epoch, index, order[index * self.batch_size:
                                              (index + 1) * self.batch_size])

    def _make(self, epoch, index, positions):
        rows = self.rows[positions]
        # Reading the memmap in ascending row order is sequential I/O; then restore order.
        sort = np.argsort(rows, kind="stable")
        xb = np.empty((len(rows),) + tuple(self.x.shape[1:]), dtype=np.float32)
        xb[sort] = self.x[rows[sort]]
        xb = xb[:, None]
        yb = self.y[positions]
        if self.transform is not None:
            xb, yb = self.transform(xb, yb, np.random.default_rng([self.seed, epoch, index]))
        return xb, yb

    def epoch(self, epoch, start=0):
        """Iterator of (step, (x, y)) over the batches of epoch `epoch`, from batch `start`
        on (to resume mid-epoch)."""
        order = self.order(epoch)
        chunks = [(b, order[b * self.batch_size: (b + 1) * self.batch_size])
                  for b in range(start, len(self))]
        return self._prefetched(epoch, chunks)

    def __iter__(self):
        """Batches (x, y) of the next epoch (0, 1, 2, ... on successive calls)."""
        epoch, self._epoch = self._epoch, self._epoch + 1
        return (batch for _, batch in self.epoch(epoch))

    def _prefetched(self, epoch, chunks):
        q = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item):
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce():
            try:
                for b, positions in chunks:
                    if stop.is_set() or not put(("batch", (b, self._make(epoch, b,
                                                                          positions)))):
                        return
                put(("done", None))
            except BaseException as exc:        # handed to the consumer, re-raised there
                put(("error", exc))

        worker = threading.Thread(target=produce, name="tinyasc-loader", daemon=True)
        worker.start()
        try:
            while True:
                kind, item = q.get()
                if kind == "batch":
                    yield item
                elif kind == "error":
                    raise item
                else:
                    return
        finally:
            # The consumer finished, failed or stopped early: stop the producer and free it.
            stop.set()
            while worker.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    pass
                worker.join(timeout=0.05)
