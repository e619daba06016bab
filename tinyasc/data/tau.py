"""Reader of the TAU Urban Acoustic Scenes 2020 Mobile layout (paper 3.1; docs/data.md).

    root/audio/<scene>-<city>-<location>-<segment>-<device>.wav
    root/meta.csv                          filename scene_label identifier source_label
    root/evaluation_setup/fold1_train.csv  filename scene_label
    root/evaluation_setup/fold1_evaluate.csv  filename scene_label   (the paper's test split)
    root/evaluation_setup/fold1_test.csv   filename                 (optional, unlabelled)

All files are tab-separated with a header row. The paper trains on fold1_train and reports
on fold1_evaluate; here they are the splits "train" and "test". Every problem with the input
raises DataError with a one-line message naming the file, the line and what to do.
"""
import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from tinyasc.audio import audio_info
from tinyasc.errors import DataError

SCENES = ("airport", "bus", "metro", "metro_station", "park", "public_square", "shopping_mall",
          "street_pedestrian", "street_traffic", "tram")
DEVICES = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
CITIES = ("amsterdam", "barcelona", "helsinki", "lisbon", "london", "lyon", "madrid", "milan",
          "prague", "paris", "stockholm", "vienna")
SPLITS = ("train", "test")

META_COLUMNS = ("filename", "scene_label", "identifier", "source_label")
SPLIT_FILES = {"train": "evaluation_setup/fold1_train.csv",
               "test": "evaluation_setup/fold1_evaluate.csv"}
UNLABELLED_TEST_FILE = "evaluation_setup/fold1_test.csv"


def device_of(filename):
    """Device suffix of a TAU file name: 'audio/airport-lyon-1-7-s2.wav' -> 's2'."""
    return Path(filename).stem.rsplit("-", 1)[-1]


def segment_of(filename):
    """The file name without its device suffix; paired recordings share it."""
    return Path(filename).stem.rsplit("-", 1)[0]


@dataclass(frozen=True)
class Split:
    """One split: parallel per-file arrays, in the order of the split's CSV file."""
    name: str
    filenames: tuple      # relative to the dataset root, e.g. 'audio/bus-milan-3-2-a.wav'
    labels: np.ndarray    # int64 index into SCENES
    devices: tuple        # device strings, 'a' .. 's6'
    identifiers: tuple    # recording location, '<city>-<location>'

    def __len__(self):
        return len(self.filenames)

    @property
    def device_ids(self):
        """int64 index into DEVICES."""
        return np.array([DEVICES.index(d) for d in self.devices], dtype=np.int64)

    @property
    def cities(self):
        return tuple(ident.rsplit("-", 1)[0] for ident in self.identifiers)

    def device_counts(self):
        return {d: self.devices.count(d) for d in DEVICES}


@dataclass(frozen=True)
class Dataset:
    """A TAU-layout dataset: the train and test splits plus per-file audio properties."""
    root: Path
    train: Split
    test: Split
    unlabelled_test: tuple = ()    # fold1_test.csv file names, if the file exists
    audio_info: dict = field(default_factory=dict, repr=False)  # filename -> (sr, frames, ch)

    def split(self, name):
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    @property
    def filenames(self):
        """Every file used by a split, train first, each once."""
        return tuple(dict.fromkeys(self.train.filenames + self.test.filenames))

    def path(self, filename):
        """The file `filename` names, which must lie inside the dataset folder."""
        problem = outside_root(filename)
        if problem:
            raise DataError(f"{self.root}: file name {filename!r} {problem}; names must be relative paths "
                            "inside the dataset folder, like 'audio/<scene>-<city>-<location>-<segment>-<device>.wav'")
        return self.root / filename

    def counts(self):
        """{split: {device: count}}."""
        return {name: self.split(name).device_counts() for name in SPLITS}

    def summary(self):
        """A small text table of per-device counts per split, and location counts."""
        rows = [counts_table(self.counts())]
        locations = {name: len(set(self.split(name).identifiers)) for name in SPLITS}
        rows.append(f"locations: train {locations['train']}, test {locations['test']}, shared "
                    f"{len(set(self.train.identifiers) & set(self.test.identifiers))}")
        return "\n".join(rows)


def counts_table(counts):
    """{split: {device: count}} as a text table, one row per split."""
    rows = [f"{'split':<6}" + "".join(f"{d:>7}" for d in DEVICES) + f"{'total':>8}"]
    for name, c in counts.items():
        rows.append(f"{name:<6}" + "".join(f"{c.get(d, 0):>7}" for d in DEVICES)
                    + f"{sum(c.values()):>8}")
    return "\n".join(rows)


def _read_table(path, required, root):
    """Rows of a tab-separated file with a header, as (line number, dict) pairs."""
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    if not path.is_file():
        raise DataError(f"{path}: missing; a TAU-layout dataset needs {rel} (regenerate it with "
                        "'tinyasc synth' or re-download the dataset)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:     # tolerate a BOM
            reader, rows, start = csv.reader(fh, delimiter="\t"), [], 1
            try:
                for row in reader:
                    rows.append(row)
                    start = reader.line_num + 1      # where the next row begins
            except csv.Error as exc:  # a field over csv's size limit: a stray '"' swallowed the rest
                raise DataError(f"{path}: line {start}: {' '.join(str(exc).split())}; a '\"' at the "
                                "start of a field quotes everything up to the next '\"', so remove a "
                                "stray one there") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read ({' '.join(str(exc).split())}); check the file's "
                        "permissions and encoding") from None
    if not rows:
        raise DataError(f"{path}: empty; expected a tab-separated header "
                        f"'{' '.join(required)}' and one row per file")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: line 1: header {header} lacks column(s) {missing}; expected the "
                        f"tab-separated header '{' '.join(required)}'")
    out = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}: line {lineno}: {len(row)} field(s) where the header has "
                            f"{len(header)}; fields must be separated by single tabs")
        out.append((lineno, {h: cell.strip() for h, cell in zip(header, row)}))
    return out


def outside_root(name):
    """Why the file name `name` (from a CSV file) could reach outside the dataset folder, or "".

    Names are confined to the folder lexically: no absolute path, no '..' component, no
    backslash (a Windows separator) and no control character. Symbolic links inside the
    folder are followed, so audio/ may live on another disk.
    """
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        return "is an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "climbs out of the dataset folder with '..'"
    if "\\" in name:
        return "holds a backslash"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "holds a control character (a tab or newline?)"
    return ""


def _check_filename(name, csv_path, lineno):
    problem = outside_root(name)
    if problem:
        raise DataError(f"{csv_path}: line {lineno}: file name {name!r} {problem}; names must be relative "
                        "paths inside the dataset folder, like 'audio/<scene>-<city>-<location>-<segment>-<device>.wav'")
    stem = Path(name).stem
    if not name.endswith(".wav") or stem.count("-") < 4:
        raise DataError(f"{csv_path}: line {lineno}: file name {name!r} is not of the form "
                        "'audio/<scene>-<city>-<location>-<segment>-<device>.wav'")
    device = device_of(name)
    if device not in DEVICES:
        raise DataError(f"{csv_path}: line {lineno}: unknown device {device!r} in {name!r}; "
                        f"expected one of {' '.join(DEVICES)}")
    return device


def _check_identifier(identifier, name, csv_path, lineno):
    """The identifier names the recording location, '<city>-<location>' of the file name; the
    validation split holds out whole locations by it, so it must be there and agree."""
    expected = "-".join(Path(name).stem.rsplit("-", 4)[1:3])
    if identifier != expected:
        found = f"identifier {identifier!r}" if identifier else "empty identifier"
        raise DataError(f"{csv_path}: line {lineno}: {found} for {name}; it must be the recording "
                        f"location '<city>-<location>' of the file name, {expected!r}")


def _check_scene(label, csv_path, lineno):
    if label not in SCENES:
        raise DataError(f"{csv_path}: line {lineno}: unknown scene label {label!r}; expected one "
                        f"of {' '.join(SCENES)}")
    return SCENES.index(label)


def _audio_info(root, name, csv_path, lineno):
    path = root / name
    if not path.is_file():
        raise DataError(f"{csv_path}: line {lineno}: names {name}, which does not exist under "
                        f"{root}; restore the file or regenerate the dataset")
    try:  # the header only, as every reader checks it: readable, not empty, a usable sample rate
        return audio_info(path)
    except DataError as exc:
        raise DataError(f"{exc} (named in {csv_path.name} line {lineno})") from None


def load_dataset(root, check_audio=True):
    """Read a TAU-layout dataset at `root`; see the module docstring for the layout.

    With check_audio, every audio file named by a split must exist and have a readable,
    non-empty header with a usable sample rate (corrupt sample data is caught later, when
    features are computed).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found; pass the folder holding meta.csv and "
                        "audio/ (or create one with 'tinyasc synth --out DIR')")
    root = root.resolve()
    meta_path = root / "meta.csv"
    meta = {}
    for lineno, row in _read_table(meta_path, META_COLUMNS, root):
        name = row["filename"]
        device = _check_filename(name, meta_path, lineno)
        _check_scene(row["scene_label"], meta_path, lineno)
        _check_identifier(row["identifier"], name, meta_path, lineno)
        if row["source_label"] != device:
            raise DataError(f"{meta_path}: line {lineno}: source_label {row['source_label']!r} "
                            f"differs from the device suffix {device!r} of {name}")
        if name in meta:
            raise DataError(f"{meta_path}: line {lineno}: {name} listed twice (first on line "
                            f"{meta[name][0]}); remove the duplicate")
        meta[name] = (lineno, row["scene_label"], row["identifier"])

    splits = {}
    audio_info = {}
    seen = {}
    for split_name in SPLITS:
        csv_path = root / SPLIT_FILES[split_name]
        names, labels, devices, idents = [], [], [], []
        for lineno, row in _read_table(csv_path, ("filename", "scene_label"), root):
            name = row["filename"]
            device = _check_filename(name, csv_path, lineno)
            label = _check_scene(row["scene_label"], csv_path, lineno)
            if name not in meta:
                raise DataError(f"{csv_path}: line {lineno}: {name} is not listed in meta.csv; "
                                "add it there or remove the row")
            if meta[name][1] != row["scene_label"]:
                raise DataError(f"{csv_path}: line {lineno}: scene {row['scene_label']!r} of "
                                f"{name} disagrees with meta.csv line {meta[name][0]} "
                                f"({meta[name][1]!r})")
            if name in seen:
                where = seen[name]
                raise DataError(f"{csv_path}: line {lineno}: {name} already listed in {where[0]} "
                                f"line {where[1]}; a file may appear in one split only, once")
            seen[name] = (csv_path.name, lineno)
            if check_audio:
                audio_info[name] = _audio_info(root, name, csv_path, lineno)
            names.append(name)
            labels.append(label)
            devices.append(device)
            idents.append(meta[name][2])
        if not names:
            raise DataError(f"{csv_path}: lists no files; the {split_name} split must not be empty")
        splits[split_name] = Split(split_name, tuple(names), np.array(labels, dtype=np.int64),
                                   tuple(devices), tuple(idents))

    unlabelled = ()
    test_path = root / UNLABELLED_TEST_FILE
    if test_path.exists():
        names = []
        for lineno, row in _read_table(test_path, ("filename",), root):
            _check_filename(row["filename"], test_path, lineno)
            if row["filename"] not in meta:
                raise DataError(f"{test_path}: line {lineno}: {row['filename']} is not listed in "
                                "meta.csv; add it there or remove the row")
            names.append(row["filename"])
        unlabelled = tuple(names)

    return Dataset(root, splits["train"], splits["test"], unlabelled, audio_info)
