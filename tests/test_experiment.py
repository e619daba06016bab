"""Table 2's statistics: row specs, run order, paired differences with t intervals, and the
test split evaluated every few epochs."""
import numpy as np
import pytest
import scipy.stats

from tinyasc.errors import TinyAscError
from tinyasc.train.config import TrainConfig
from tinyasc.train.evaluate import DEVICE_COLUMNS
from tinyasc.train.experiment import (format_table, paired_interval, parse_rows, run_order, summarize,
                                      table_csv)


def test_rows_limited_to_the_first_seeds():
    rows = parse_rows("table2")
    limited = {r.key: r.max_seeds for r in rows if r.max_seeds is not None}
    assert limited == {"cpresnet10-none": 3, "bcresnet1-none": 3, "resnorm-translator": 3}
    assert rows[0].seeds([0, 1, 2, 3, 4]) == [0, 1, 2, 3, 4] and rows[-1].seeds([0, 1, 2, 3, 4]) == [0, 1, 2]
    for bad in ("resnorm/0", "resnorm/x", "resnorm/"):
        with pytest.raises(TinyAscError, match="positive number of seeds"):
            parse_rows(bad)


def test_run_order_is_seed_by_seed_with_the_slow_rows_last():
    rows = parse_rows("none,resnorm,cpresnet@10:none/2")
    order = [(r.key, s) for r, s in run_order(rows, [7, 8, 9])]
    assert order == [("none", 7), ("resnorm", 7), ("none", 8), ("resnorm", 8), ("none", 9), ("resnorm", 9),
                     ("cpresnet10-none", 7), ("cpresnet10-none", 8)]


def test_paired_interval_is_the_t_interval_of_the_differences():
    mean, low, high = paired_interval([1.0, 2.0, 3.0])
    half = scipy.stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)   # sd of (1, 2, 3) is 1
    assert mean == 2.0 and np.isclose(low, 2.0 - half) and np.isclose(high, 2.0 + half)
    assert np.isclose(half, 2.484, atol=1e-3)                # t(0.975, 2) = 4.303
    mean, low, high = paired_interval([4.0])
    assert mean == 4.0 and np.isnan(low) and np.isnan(high)


def _device_table(seen, unseen):
    table = {d: seen for d in ("A", "B", "C", "S1", "S2", "S3")}
    table.update({d: unseen for d in ("S4", "S5", "S6")})
    table["overall"] = (6 * seen + 3 * unseen) / 9
    return table


def test_summary_pairs_each_row_with_plain_bc_resnet_mod_seed_by_seed():
    rows = parse_rows("none,resnorm,cpresnet@10:none/2")
    results = {("none", 0): _device_table(50, 20), ("none", 1): _device_table(52, 26), ("none", 2): _device_table(48, 23),
               ("resnorm", 0): _device_table(49, 40), ("resnorm", 1): _device_table(53, 44),
               ("cpresnet10-none", 0): _device_table(60, 30)}
    table = {row["row"]: row for row in summarize(results, rows, [0, 1, 2])}
    ref, res, cp = table["none"], table["resnorm"], table["cpresnet10-none"]
    assert "d_overall" not in ref and ref["seeds"] == 3 and np.isclose(ref["unseen_mean"], 23.0)
    # ResNorm ran seeds 0 and 1: unseen differences 20 and 18, seen -1 and +1
    assert res["seeds"] == 2 and res["paired_seeds"] == 2
    assert np.isclose(res["d_unseen"], 19.0) and np.isclose(res["d_seen"], 0.0)
    half = scipy.stats.t.ppf(0.975, 1) * np.std([20, 18], ddof=1) / np.sqrt(2)
    assert np.isclose(res["d_unseen_high"] - res["d_unseen"], half)
    assert np.isclose(res["d_overall"], np.mean([(6 * -1 + 3 * 20) / 9, (6 * 1 + 3 * 18) / 9]))
    # one paired seed: a difference, no interval
    assert cp["paired_seeds"] == 1 and np.isclose(cp["d_seen"], 10.0) and np.isnan(cp["d_seen_low"])
    text = format_table(list(table.values()), TrainConfig(epochs=100), [0, 1, 2])
    assert "Paired difference to BC-ResNet-Mod (c=10)" in text
    assert "| BC-ResNet-Mod (c=10) + ResNorm | +0.0 [" in text
    assert "+19.0 [" in text and "(1 seed)" in text and "| 2 of 3 |" in text
    header, *lines = table_csv(list(table.values())).splitlines()
    columns = header.split(",")
    assert columns[2:2 + len(DEVICE_COLUMNS)] == list(DEVICE_COLUMNS)
    resnorm = dict(zip(columns, lines[1].split(",")))
    assert resnorm["d_unseen"] == "19.00" and resnorm["paired_seeds"] == "2" and resnorm["seeds"] == "2"
    assert dict(zip(columns, lines[0].split(",")))["d_unseen"] == ""


def test_summary_without_the_reference_row_has_no_differences():
    rows = parse_rows("resnorm,freqin")
    results = {("resnorm", 0): _device_table(50, 40), ("freqin", 0): _device_table(45, 41)}
    table = summarize(results, rows, [0])
    assert all("d_overall" not in row for row in table)
    assert "Paired difference" not in format_table(table, TrainConfig(epochs=1), [0])


# ------------------------------------------------------------------ device spectra (tinyasc figures --spectra)
def test_device_spectra_remove_a_per_bin_offset_exactly():
    from tinyasc.data.tau import DEVICES
    from tinyasc.spectra import VIEWS, device_spectra, paired_segments, spread_over_devices

    rng = np.random.default_rng(0)
    n_seg, n_bins, n_frames = 5, 16, 40
    base = rng.normal(0.0, 2.0, (n_seg, n_bins, n_frames))
    offsets = {d: rng.normal(0.0, 3.0, n_bins) * (d != "a") for d in DEVICES}   # a device's gain per bin
    features, names, devices, rows = [], [], [], []
    for s in range(n_seg):
        for d in DEVICES:
            features.append(base[s] + offsets[d][:, None])
            names.append(f"audio/park-lyon-{s}-0-{d}.wav")
            devices.append(d)
            rows.append(len(rows))
    names.append("audio/park-lyon-99-0-a.wav")   # recorded by device a only: left out
    devices.append("a")
    rows.append(len(rows))
    features.append(base[0])
    features = np.asarray(features, np.float32)
    paired, n = paired_segments(names, devices, rows)
    assert n == n_seg and [names[i] for i in paired["s4"]] == [f"audio/park-lyon-{s}-0-s4.wav" for s in range(n_seg)]
    spectra = device_spectra(features, paired, lam=0.1, chunk=2)
    x = features[paired["a"]].astype(np.float64)
    for d in DEVICES:   # raw: the offset over the spread of a's values in each bin
        assert np.allclose(spectra["mean"]["raw"][d], x.mean(axis=(0, 2)) + offsets[d], atol=1e-5)
        assert np.allclose(spectra["distance"]["raw"][d], np.abs(offsets[d]) / x.std(axis=(0, 2)), rtol=1e-4)
        assert np.allclose(spectra["distance"]["FreqIN"][d], 0.0, atol=1e-4)   # the offset is gone
        assert np.allclose(spectra["mean"]["FreqIN"][d], 0.0, atol=1e-6)
    assert spread_over_devices(spectra, "FreqIN") < 1e-6 < spread_over_devices(spectra, "ResNorm")
    assert np.isclose(spread_over_devices(spectra, "ResNorm"), 0.1 * spread_over_devices(spectra, "raw"), rtol=1e-3)
    assert set(VIEWS) == {"raw", "FreqIN", "ResNorm"}


def test_device_spectra_need_segments_of_all_nine_devices():
    from tinyasc.spectra import paired_segments

    with pytest.raises(TinyAscError, match="all nine devices"):
        paired_segments(["audio/park-lyon-1-0-a.wav", "audio/park-lyon-1-0-b.wav"], ["a", "b"], [0, 1])


def test_figures_command_draws_the_device_spectra(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from click.testing import CliRunner

    from tinyasc.cli import main

    monkeypatch.setenv("TINYASC_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["figures", "--spectra", "--preset", "tiny", "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert "FreqIN" in result.output and "10 test segments" in result.output
    assert (tmp_path / "f" / "device_spectra.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nothing = CliRunner().invoke(main, ["figures", "--out", str(tmp_path / "g")])
    assert nothing.exit_code == 1 and "nothing to draw" in nothing.output
