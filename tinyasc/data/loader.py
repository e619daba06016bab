"""Batches for training and evaluation, prepared in a background thread.

    loader = BatchLoader(features.x, features.rows(split.filenames), split.labels,
                         batch_size=64, shuffle=True, transform=Augment(), seed=0)
    for epoch in range(start_epoch, epochs):
        for step, (xb, yb) in loader.epoch(epoch):     # xb float32 N x 1 x F x T
            ...

Deterministic by construction: epoch e's order comes from np.random.default_rng([seed, e])
and batch b's augmentation from np.random.default_rng([seed, e, b]), so a run resumed at
epoch e (or at batch b) sees exactly what an uninterrupted run would have seen.
"""
import queue
import threading

import numpy as np



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
