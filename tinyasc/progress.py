"""A small progress bar on stderr, shared by feature extraction, data generation and training.

    with Progress(total=len(batches), desc="epoch 3", unit="clips") as bar:
        for xb, yb in batches:
            ...
            bar.update(len(xb), loss=loss, acc=acc)

On a terminal the bar redraws in place at most every `min_interval` seconds; otherwise
(logs, CI, pytest capture) it stays silent until close() prints one final line.
"""
import os
import sys
import time


def _fmt_time(seconds):
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _fmt_value(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class Progress:
    """Progress of `total` units (None if unknown); `update(n, **postfix)` advances it."""

    def __init__(self, total=None, desc="", unit="it", file=None, enabled=None, width=24,
                 min_interval=0.1, quiet=False):
        self.quiet = quiet  # draw nothing at all (the user asked for --quiet)
        self.total = total
        self.desc = desc
        self.unit = unit
        self.file = sys.stderr if file is None else file
        if enabled is None:
            isatty = getattr(self.file, "isatty", None)
            enabled = bool(isatty and isatty()) and os.environ.get("TINYASC_PROGRESS", "1") != "0"
        self.live = enabled
        self.width = width
        self.min_interval = min_interval
        self.n = 0
        self.postfix = {}
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def elapsed(self):
        return time.perf_counter() - self.start

    @property
    def rate(self):
        elapsed = self.elapsed
        return self.n / elapsed if elapsed > 0 else 0.0

    def update(self, n=1, **postfix):
        self.n += n
        if postfix:
            self.postfix.update(postfix)
        if self.live:
            now = time.perf_counter()
            if now - self._last_draw >= self.min_interval or self.n == self.total:
                self._last_draw = now
                self._draw(final=False)

    def set_postfix(self, **postfix):
        self.postfix.update(postfix)

    def line(self):
        """The current status as one line of text."""
        elapsed, rate = self.elapsed, self.rate
        parts = [f"{self.desc}: " if self.desc else ""]
        if self.total:
            frac = min(self.n / self.total, 1.0)
            filled = int(frac * self.width)
            parts.append(f"{frac * 100:3.0f}%|{'#' * filled}{'.' * (self.width - filled)}| "
                         f"{self.n}/{self.total} ")
            eta = (self.total - self.n) / rate if rate > 0 else 0.0
            parts.append(f"[{_fmt_time(elapsed)}<{_fmt_time(eta)}, {rate:.3g} {self.unit}/s")
        else:
            parts.append(f"{self.n} {self.unit} [{_fmt_time(elapsed)}, {rate:.3g} {self.unit}/s")
        for key, value in self.postfix.items():
            parts.append(f", {key}={_fmt_value(value)}")
        parts.append("]")
        return "".join(parts)

    def _draw(self, final):
        if self.quiet:
            return
        text = self.line()
        if self.live:
            self.file.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
        else:
            self.file.write(text + "\n")
        self.file.flush()

    def write(self, message):
        """Print a message above the bar without breaking it."""
        if self.live:
            self.file.write("\r\x1b[K")
        self.file.write(message + "\n")
        if self.live:
            self._draw(final=False)
        self.file.flush()

    def close(self):
        if not self.closed:
            self.closed = True
            self._draw(final=True)
