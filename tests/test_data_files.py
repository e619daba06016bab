"""Damaged data files: what each reader does when a file on disk is not what it should be.

A damaged feature cache (NaN rows, changed values, an index that is not a JSON object, an index
from before the checksum) is rebuilt with one notice line, never used; features that come out
NaN are refused before they are cached. A synthetic-dataset marker that is not a JSON object
makes the dataset incomplete, so the default one is regenerated. meta.csv with a field over
csv's size limit, or an identifier that does not name the file's recording location, is one
error line naming the file and the line.
"""
import json
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from cli_checks import one_line_error  # tests/cli_checks.py
from tinyasc.cli import main
from tinyasc.data import cache, synth
from tinyasc.data.tau import load_dataset
from tinyasc.errors import DataError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny synthetic dataset (127 one-second clips) and its features, built once."""
    root = tmp_path_factory.mktemp("tiny") / "D"
    synth.write_dataset(root, preset="tiny", seed=0, progress=False)
    dataset = load_dataset(root)
    features = cache.load_features(dataset, root.parent / "features", progress=False)
    return dataset, np.array(features.x), features.path


@pytest.fixture
def cached(tiny, tmp_path):
    """A copy of the tiny dataset's feature cache in a folder of this test: (dataset, the
    features, the cache folder, the .npy, the .json)."""
    dataset, good, npy = tiny
    folder = tmp_path / "features"
    folder.mkdir()
    for path in (npy, npy.with_suffix(".json")):
        shutil.copy(path, folder / path.name)
    return dataset, good, folder, folder / npy.name, folder / npy.with_suffix(".json").name


def load_logged(dataset, folder):
    """load_features with a log; returns (features, the log lines), and fails on any warning."""
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = cache.load_features(dataset, folder, progress=False, log=lines.append)
    return features, lines


def rebuild_notice(lines):
    notices = [line for line in lines if "rebuilding it" in line]
    assert len(notices) == 1 and "\n" not in notices[0], lines
    return notices[0]


# ------------------------------------------------------------------------- feature cache

@pytest.mark.parametrize("damage", ["nan rows", "inf", "finite change"])
def test_a_damaged_feature_cache_is_rebuilt_with_one_notice(cached, damage):
    dataset, good, folder, npy, _ = cached
    x = np.load(npy, mmap_mode="r+")        # same size, shape and dtype: only the values change
    if damage == "nan rows":
        x[40:50] = np.nan                   # rows the 8-row fingerprint never read
    elif damage == "inf":
        x[77, 5, 3] = np.inf
    else:
        x[45, 100, 10] += 1.0
    x.flush()
    del x
    features, lines = load_logged(dataset, folder)
    notice = rebuild_notice(lines)
    assert str(npy) in notice
    if damage == "nan rows":
        assert f"10 row(s) hold NaN or inf, first row 40: {dataset.filenames[40]}" in notice
    elif damage == "finite change":
        assert "differs from the index checksum" in notice
    np.testing.assert_array_equal(features.x, good)
    _, lines = load_logged(dataset, folder)         # the rebuilt cache is trusted
    assert not any("rebuilding" in line for line in lines)


@pytest.mark.parametrize("index", ["[1, 2]", "null", '"features"', "3"])
def test_a_cache_index_that_is_not_a_json_object_is_rebuilt(cached, index):
    dataset, good, folder, npy, json_path = cached
    json_path.write_text(index)
    features, lines = load_logged(dataset, folder)
    assert "not an object" in rebuild_notice(lines)
    np.testing.assert_array_equal(features.x, good)
    assert isinstance(json.loads(json_path.read_text()), dict)


def test_an_index_without_a_checksum_is_rebuilt_and_keeps_the_old_fingerprint(cached):
    dataset, good, folder, npy, json_path = cached
    meta = json.loads(json_path.read_text())
    assert meta["fingerprint"] == cache._fingerprint(good)    # earlier checkouts still reuse it
    del meta["crc32"]                                          # an index from before the checksum
    json_path.write_text(json.dumps(meta))
    features, lines = load_logged(dataset, folder)
    assert "no checksum" in rebuild_notice(lines)
    assert "crc32" in json.loads(json_path.read_text())
    np.testing.assert_array_equal(features.x, good)


def test_features_that_come_out_nan_are_refused_before_caching(tiny, tmp_path, monkeypatch):
    dataset = tiny[0]
    real = cache.extract_features

    def poisoned(paths, out, *args, **kwargs):
        rate = real(paths, out, *args, **kwargs)
        out[7, 0, 0] = np.nan
        return rate

    monkeypatch.setattr(cache, "extract_features", poisoned)
    folder = tmp_path / "features"
    with pytest.raises(DataError) as caught:
        cache.load_features(dataset, folder, progress=False)
    message = str(caught.value)
    assert "\n" not in message and dataset.filenames[7] in message and "NaN or inf" in message
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == []


def test_train_rebuilds_a_cache_with_nan_rows_and_says_so_in_one_line(cached, tmp_path, monkeypatch):
    dataset, good, folder, npy, _ = cached
    monkeypatch.setenv("TINYASC_HOME", str(tmp_path))            # its features/ is `folder`
    x = np.load(npy, mmap_mode="r+")
    x[40:50] = np.nan
    x.flush()
    del x
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["train", "--data", str(dataset.root), "--model-width", "4",
                                           "--epochs", "1", "--batch-size", "8", "--quiet",
                                           "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
    assert "Warning" not in result.output
    assert "hold NaN or inf" in rebuild_notice(result.output.splitlines())
    np.testing.assert_array_equal(np.load(npy), good)


# -------------------------------------------------------------- the synthetic dataset marker

@pytest.mark.parametrize("marker", ["[]", "null", "[1, 2]", '"tiny"'])
def test_a_marker_that_is_not_a_json_object_means_incomplete(tiny, tmp_path, marker):
    root = tmp_path / "D"
    shutil.copytree(tiny[0].root, root)
    assert synth.is_complete(root, "tiny", 0)
    (root / synth.MARKER).write_text(marker)
    assert not synth.is_complete(root, "tiny", 0)


def test_the_default_dataset_is_regenerated_over_a_damaged_marker(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYASC_HOME", str(tmp_path))
    path = synth.default_dataset_path("tiny", 0)
    shutil.copytree(tiny[0].root, path)
    (path / synth.MARKER).write_text("[]")
    messages = []
    assert synth.ensure_default_dataset("tiny", 0, progress=False, log=messages.append) == path
    assert synth.is_complete(path, "tiny", 0)
    assert any("regenerating" in m for m in messages), messages


# --------------------------------------------------------------------------------- meta.csv

@pytest.fixture
def data(tiny, tmp_path):
    """A copy of the tiny dataset's CSV files, its audio/ a link to the original's."""
    source = tiny[0].root
    root = tmp_path / "data"
    (root / "evaluation_setup").mkdir(parents=True)
    shutil.copy(source / "meta.csv", root / "meta.csv")
    for path in (source / "evaluation_setup").iterdir():
        shutil.copy(path, root / "evaluation_setup" / path.name)
    (root / "audio").symlink_to(source / "audio")
    return root


def expect_one_line(root, *needles):
    """load_dataset and `tinyasc data-info` both refuse `root` in one line holding every needle."""
    with pytest.raises(DataError) as caught:
        load_dataset(root)
    message = str(caught.value)
    assert "\n" not in message, message
    for needle in needles:
        assert str(needle) in message, (needle, message)
    one_line_error(CliRunner().invoke(main, ["data-info", "--data", str(root)]), *needles)
    return message


def test_the_tiny_dataset_copy_reads(data):
    assert len(load_dataset(data).filenames) == 127


@pytest.mark.parametrize("where", ["last line", "third line"])
def test_a_field_over_the_csv_size_limit_is_one_line_naming_where_it_starts(data, where):
    meta = data / "meta.csv"
    lines = meta.read_text().splitlines()
    if where == "last line":                       # a stray '"' and 200,000 characters
        lines.append('"' + "x" * 200_000)
        lineno = len(lines)
    else:                                          # the quote swallows the lines after it
        lines.insert(2, '"audio/airport-lisbon-0-0-a.wav\tairport')
        lines.append("y" * 200_000)
        lineno = 3
    meta.write_text("\n".join(lines) + "\n")
    expect_one_line(data, str(meta), f"line {lineno}:", "field limit", "stray")


@pytest.mark.parametrize("change", ["blank everywhere", "blank once", "another location"])
def test_the_identifier_must_name_the_recording_location_of_the_file(data, change):
    def location(name):                            # audio/<scene>-<city>-<location>-<segment>-<device>.wav
        return "-".join(name.rsplit("/", 1)[1].split("-")[1:3])

    meta = data / "meta.csv"
    rows = [line.split("\t") for line in meta.read_text().splitlines()]
    assert rows[0] == ["filename", "scene_label", "identifier", "source_label"]
    assert all(row[2] == location(row[0]) for row in rows[1:])    # the synthetic set follows TAU
    lineno = 2 if change == "blank everywhere" else 9
    name = rows[lineno - 1][0]
    if change == "blank everywhere":
        for row in rows[1:]:
            row[2] = ""
    else:
        rows[lineno - 1][2] = "" if change == "blank once" else "vienna-99"
    meta.write_text("\n".join("\t".join(row) for row in rows) + "\n")
    needle = "'vienna-99'" if change == "another location" else "empty identifier"
    expect_one_line(data, str(meta), f"line {lineno}:", name, repr(location(name)), needle)
