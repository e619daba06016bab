"""`tinyasc experiment` and the folder it writes: what it refuses before the first run trains
(another command's folder, another recipe, a run without its settings, a row that cannot fit
the data), and tables that stay right when a device is missing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli_checks import one_line_error  # tests/cli_checks.py
from test_train import tiny_home  # noqa: F401  (the fixture: the tiny dataset in a home of its own)
from tinyasc.cli import main
from tinyasc.errors import TinyAscError
from tinyasc.figures import make_figures, read_table
from tinyasc.run import plots
from tinyasc.train import parallel
from tinyasc.train.config import TrainConfig
from tinyasc.train.experiment import Plan, check_same_devices, format_table, parse_rows, summarize, table_csv
from tinyasc.train.runs import check_same_config


def _experiment(root, out, *extra):
    return CliRunner().invoke(main, ["experiment", "--data", str(root), "--model-width", "4", "--seeds", "0",
                                     "--epochs", "1", "--batch-size", "8", "--out", str(out), "--quiet", *extra])


def test_a_run_without_its_settings_is_not_taken_for_the_one_asked_for(tmp_path):
    run = tmp_path / "none-seed0"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,loss\n1,2.0\n")
    with pytest.raises(TinyAscError, match="holds a run .metrics.csv. without its config.json"):
        check_same_config(run, TrainConfig(width=4))
    (run / "metrics.csv").unlink()
    check_same_config(run, TrainConfig(width=4))  # an empty folder is a new run's


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_refusals_come_before_anything_is_written(tiny_home, tmp_path, monkeypatch, jobs):
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    run_folder = tmp_path / "a-run"
    run_folder.mkdir()
    (run_folder / "config.json").write_text(TrainConfig(width=4).to_json())
    blocked = tmp_path / "blocked"
    (blocked / "table.md").mkdir(parents=True)
    cases = [(run_folder, ["--rows", "none"], ["is a run folder of tinyasc train", "pass another --out"]),
             (root, ["--rows", "none"], ["is a dataset;", "pass another --out"]),
             (blocked, ["--rows", "none"], [str(blocked / "table.md"), "is a folder"]),
             (tmp_path / "big", ["--rows", "none,resnorm", "--batch-size", "64"], ["fewer than --batch-size 64"]),
             (tmp_path / "wide", ["--rows", "none,bcresnet@999:none"], ["the row BC-ResNet (tau=999)", "999"]),
             (tmp_path / "sup", ["--rows", "resnorm/\u00b2"], ["'/N' takes a positive number of seeds"])]
    for out, extra, needles in cases:
        before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
        one_line_error(_experiment(root, out, "--jobs", jobs, *extra), *needles)
        assert (sorted(p.name for p in out.iterdir()) if out.is_dir() else None) == before, out


def test_runs_of_another_recipe_in_the_folder_are_refused(tiny_home, tmp_path, monkeypatch):
    home, root = tiny_home
    monkeypatch.setenv("TINYASC_HOME", str(home))
    out = tmp_path / "exp"
    assert _experiment(root, out, "--rows", "none").exit_code == 0
    result = _experiment(root, out, "--rows", "resnorm", "--epochs", "2")  # no run in common: the recipe differs
    one_line_error(result, str(out / "none-seed0"), "another recipe", "epochs: 1 there, 2 now")
    assert not (out / "resnorm-seed0").exists()
    assert json.loads((out / "experiment.json").read_text())["rows"] == ["none"]
    monkeypatch.chdir(tmp_path.anchor)
    relative = _experiment(root.relative_to(tmp_path.anchor), out, "--rows", "none")  # the same folder, named otherwise
    assert relative.exit_code == 0, relative.output


def _tables(devices_per_seed):
    return {("none", s): {**{d: 50.0 + s for d in devices}, "overall": 50.0 + s}
            for s, devices in enumerate(devices_per_seed)} | \
           {("resnorm", s): {**{d: 60.0 + s for d in devices}, "overall": 60.0 + s}
            for s, devices in enumerate(devices_per_seed)}


def test_a_test_split_without_a_device_gives_a_table_without_it(tmp_path):
    devices = ["A", "B", "C", "S1", "S2", "S3", "S4", "S5"]  # no S6 clips
    rows = parse_rows("none,resnorm")
    table = summarize(_tables([devices, devices]), rows, [0, 1])
    assert table[1]["unseen_mean"] == 60.5 and np.isnan(table[1]["S6"])
    assert table[1]["d_unseen"] == pytest.approx(10.0)
    text = format_table(table, TrainConfig(), [0, 1])
    assert "| 60.5 | -" in text and "nan" not in text


def test_figures_draw_a_table_without_a_device(tmp_path):
    devices = ["A", "B", "C", "S1", "S2", "S3", "S4", "S5"]
    (tmp_path / "table.csv").write_text(table_csv(summarize(_tables([devices, devices]), parse_rows("none,resnorm"),
                                                            [0, 1])))
    rows, columns = read_table(tmp_path)
    assert "S6" not in columns and columns[-1] == "S5" and rows[1]["S5"] == 60.5
    if plots.available():
        written = make_figures(tmp_path, tmp_path / "figs", log=lambda *a: None)
        assert [p.name for p in written] == ["table2_devices.png"]


def test_a_device_table_that_lost_a_row_is_refused(tmp_path):
    full = ["A", "B", "C", "S1", "S2", "S3", "S4", "S5", "S6"]
    results = _tables([full, full])
    del results[("resnorm", 1)]["S4"]
    plan = Plan(tmp_path, [], results, "", False)
    with pytest.raises(TinyAscError, match=r"resnorm-seed1/device_table.csv: no row for S4"):
        check_same_devices(plan)


def test_a_worker_whose_parent_is_gone_stops_before_training(tmp_path):
    """Started as --jobs starts it, but told a parent id that is not its parent's (pid 1): it
    stops before it imports the training code, makes no folder and prints no traceback."""
    config = TrainConfig(width=4, epochs=1, batch_size=8)
    package_root = str(Path(parallel.__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", parallel.WORKER, package_root, str(tmp_path / "run"), config.to_json(),
                           "1"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TINYASC_HOME=str(tmp_path / "home")))
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr and not (tmp_path / "run").exists()
