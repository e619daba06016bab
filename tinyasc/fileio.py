"""Writing files so that nothing is half-written, lost or left behind.

Every file tinyasc writes (checkpoints, feature caches, datasets, reports, ONNX files)
goes to a temporary name beside its target, `.<name>.tmp-<pid>-<n>`, and is renamed over
the target only when it is complete: a reader sees the old file or the new one, never
half. A failed write removes its temporary; one left by a process that was killed
(kill -9, power loss) carries the dead process's id and is removed the next time
anything writes that name. A write error becomes one line naming the target file.

Run folders are held with an exclusive lock (flock on the folder itself, released by the
kernel however the process ends), so two runs cannot share one folder. The long writes
(datasets, feature caches, training epochs) show a `progressbar` on the terminal.
"""
import contextlib
import csv
import errno
import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path

import click

from tinyasc.errors import TinyAscError


class WriteError(TinyAscError):
    """A file could not be written (full disk, permissions, a folder in the way)."""


_FIXES = {errno.ENOSPC: "no space left on the device; free some space (or write elsewhere) and run again",
          errno.EDQUOT: "disk quota exceeded; free some space (or write elsewhere) and run again",
          errno.EACCES: "permission denied; check the folder's permissions or write elsewhere",
          errno.EPERM: "operation not permitted; check the folder's permissions or write elsewhere",
          errno.EROFS: "the file system is read-only; write elsewhere",
          errno.EISDIR: "a folder of that name is in the way; name a file instead",
          errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
          errno.ENAMETOOLONG: "the name is too long; choose a shorter path"}


def read_csv(path, fix):
    """(header, rows as dicts) of a CSV file tinyasc wrote; one that does not decode or parse
    (not UTF-8, a field over csv's size limit) is a one-line error ending with `fix`."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return reader.fieldnames or [], rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TinyAscError(f"{path}: not a CSV file of tinyasc ({exc}); {fix}") from None


def json_problem(exc):
    """What is wrong with a JSON text, from the error its parsing raised, in one short phrase."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if "integer string conversion" in str(exc):  # over sys.get_int_max_str_digits()
        return "a number with too many digits"
    return " ".join(str(exc).split())[:200]


def read_index(path):
    """(the JSON object in `path`, None), or (None, why it cannot be used): a cache's index,
    whose damage means "rebuild the cache", never an error."""
    try:
        with open(path, encoding="utf-8") as fh:
            index = json.load(fh)
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        return None, f"unreadable index ({exc.__class__.__name__})"
    if not isinstance(index, dict):
        return None, f"unreadable index (a JSON {type(index).__name__}, not an object)"
    return index, None


def write_error(path, exc):
    """The one-line WriteError for a failed write of `path` (an OSError or a library error)."""
    code = getattr(exc, "errno", None)
    if code in _FIXES:
        return WriteError(f"{path}: cannot write: {_FIXES[code]}")
    detail = getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__
    return WriteError(f"{path}: cannot write ({detail}); check the free space and the folder's permissions")


def temporary_path(path):
    """A hidden name beside `path`, unique to this process and call, that marks its owner."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")


def _owner_alive(pid):
    if pid == os.getpid():
        return True  # another thread of this process may be writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temporaries(folder, name):
    """Delete `.<name>.tmp-<pid>-*` and `.<name>.old-<pid>-*` files or folders in `folder`
    whose process no longer runs. Returns how many were removed."""
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for entry in entries:
        for kind in (".tmp-", ".old-"):
            head = f".{name}{kind}"
            if not entry.name.startswith(head):
                continue
            pid = entry.name[len(head):].split("-", 1)[0]
            if not pid.isdigit() or _owner_alive(int(pid)):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def _remove(path):
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        pass


def make_parent(path):
    """Create the folder `path` will go into; a failure names it."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder of the path should be
        raise WriteError(f"{parent}: cannot write: {_FIXES[errno.ENOTDIR]}") from None
    except OSError as exc:
        raise write_error(parent, exc) from None


def first_missing_folder(folder):
    """The outermost folder of `folder`'s path that does not exist yet (what creating `folder`
    with its parents would make first), or None if `folder` exists."""
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        return None
    while not folder.parent.exists() and not folder.parent.is_symlink() and folder.parent != folder.parent.parent:
        folder = folder.parent
    return folder


def remove_empty_folders(folder, top):
    """Remove `folder` and its parents up to `top` while they are empty (the folders a failed
    command made for its output, from first_missing_folder)."""
    folder = Path(folder)
    while True:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): what is left stays
            return
        if folder == top:
            return
        folder = folder.parent


def check_writable(path):
    """Fail now, not after minutes of work, if the file `path` could not be written: it must not
    be a folder, and the nearest folder of its path that exists must be one this process may
    write into (a read-only file system counts as not). Nothing is created."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"{path}: is a folder; name a file to write instead")
    missing = first_missing_folder(path.parent)
    folder = path.parent if missing is None else missing.parent  # the nearest that exists
    if not folder.is_dir():
        raise WriteError(f"{path}: cannot write: {_FIXES[errno.ENOTDIR]}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise WriteError(f"{path}: cannot write: {folder} is read-only or not writable by you; write elsewhere")


@contextlib.contextmanager
def pending(path):
    """Yield a temporary path to write `path` through; on success it is renamed over `path`,
    on any failure it is removed and an OSError becomes a WriteError naming `path`.

    Stale temporaries of `path` (from processes that died) are removed first.
    """
    path = Path(path)
    make_parent(path)
    remove_stale_temporaries(path.parent, path.name)
    if path.is_dir():
        raise WriteError(f"{path}: is a folder; name a file to write instead")
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise write_error(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise
    fsync_folder(path.parent)


def reserve(path):
    """Allocate every block of the (sparse) file `path` now, e.g. a new np.lib.format.open_memmap.

    A write through a memory map to a full disk kills the process with SIGBUS ("Bus error",
    exit 135) and no message; with the blocks reserved, a full disk is an OSError here, before
    any work. Where the file system or OS cannot reserve (macOS), the file stays sparse.
    """
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    finally:
        os.close(fd)


def fsync_folder(folder):
    """Make a rename in `folder` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_through(tmp, write):
    """Create `tmp` (it must not exist), call write(file) on it, flush and fsync."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    with os.fdopen(fd, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path, write):
    """Call write(file) on a temporary file beside `path`, fsync, then rename over `path`."""
    with pending(path) as tmp:
        write_through(tmp, write)


def atomic_write_text(path, text):
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_texts(files):
    """Write several text files as one: {path: text}. Every file is written and synced to
    its temporary first and only then are they renamed, so a failure (a full disk) leaves
    all of the old files and none of the new ones."""
    with contextlib.ExitStack() as stack:
        for path, text in files.items():
            tmp = stack.enter_context(pending(path))
            try:
                write_through(tmp, lambda f, text=text: f.write(text.encode("utf-8")))
            except OSError as exc:
                raise write_error(path, exc) from None


@contextlib.contextmanager
def file_lock(path):
    """Hold an exclusive lock on the file `path` (created if missing) for the block; others wait."""
    make_parent(path)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def exclusive_folder(folder, busy=None):
    """Create `folder` if needed and hold it exclusively for the block.

    A second holder (another process, or another open in this one) gets a TinyAscError with
    the message `busy`, or with busy=None waits its turn. The lock is on the folder itself,
    so nothing is left in it, and the kernel releases it however the holder ends.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteError(f"{folder}: is a file, not a folder; name a new folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise write_error(folder, exc) from None
    held = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if busy is None else fcntl.LOCK_NB))
        except BlockingIOError:
            raise TinyAscError(busy) from None
        except OSError as exc:
            # Some network file systems emulate flock with byte-range locks, which a folder opened
            # read-only cannot take (EBADF), or have no locks at all: run unlocked rather than not at all.
            if exc.errno not in (errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
                raise write_error(folder, exc) from None
        held = True
        yield folder
    except BaseException:
        # A block that failed before writing anything leaves no empty folder behind: only the
        # holder that made the folder, and only when no one waits for it (busy given: others are
        # turned away, never queued on a folder that is about to go).
        if created and held and busy is not None:
            with contextlib.suppress(OSError):
                folder.rmdir()  # refused unless empty
        raise
    finally:
        os.close(fd)


def new_folder(base):
    """Create and return a folder that did not exist: `base`, else `base-2`, `base-3`, ...

    os.mkdir is atomic, so two processes asking for the same base at once get different folders.
    """
    base = Path(base)
    make_parent(base)
    for n in range(1, 10_000):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise write_error(folder, exc) from None
        return folder
    raise WriteError(f"{base}: 10,000 folders of this name exist already; pass --out")


def progressbar(length, label, quiet=False):
    """click's progress bar on stderr, drawn only on a terminal: nothing at all when `quiet`
    (--quiet), when stderr is a file or a pipe (logs, CI, pytest) or when TINYASC_PROGRESS=0.
    `bar.update(n, text)` advances it and shows `text` (running loss, accuracy, ...) after the ETA.
    """
    hidden = quiet or not sys.stderr.isatty() or os.environ.get("TINYASC_PROGRESS", "1") == "0"
    return click.progressbar(length=length, label=label, file=sys.stderr, hidden=hidden, show_pos=True,
                             show_percent=True, item_show_func=lambda text: text)
