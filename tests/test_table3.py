"""Table 3 end to end on the tiny preset: every step, its outputs, read back on a second call,
and the checks that stop a wrong folder before hours of training."""
import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tinyasc.cli import main
from tinyasc.compress import Ensemble, load_compressed, model_size
from tinyasc.data import synth
from tinyasc.data.tau import SCENES


@pytest.fixture(scope="module")
def table3_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    root = home / "tiny"
    synth.write_dataset(root, preset="tiny", seed=0, progress=False)
    out = tmp_path_factory.mktemp("table3") / "out"
    args = ["table3", "--data", str(root), "--model-width", "4", "--teacher-epochs", "2", "--warmup-epochs", "1",
            "--epochs", "1", "--finetune-epochs", "1", "--batch-size", "8", "--seeds", "1,2", "--out", str(out),
            "--quiet"]
    env = {"TINYASC_HOME": str(home)}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    return root, out, args, env, result.output


def _table(out):
    with open(out / "table3.csv", newline="") as f:
        return {row["row"]: row for row in csv.DictReader(f)}


def test_every_step_writes_its_outputs(table3_run):
    root, out, _, _, output = table3_run
    for folder in ("teacher", "student-seed1", "student-seed2", "model1/finetune-0", "model1/finetune-1",
                   "model4/finetune-0"):
        assert (out / folder / "device_table.csv").is_file(), folder
    assert not (out / "model4" / "finetune-1").exists()  # model 4 is one student
    assert json.loads((out / "student-seed2" / "config.json").read_text())["teacher"] == str(out / "teacher")
    rows = _table(out)
    assert list(rows) == ["teacher", "student-seed1", "student-seed2", "students", "model1", "model4"]
    assert "| model 1" in (out / "table3.md").read_text() and "| model 1" in output
    assert (out / "table3_devices.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"   # matplotlib: a test extra


def test_the_compressed_models_are_table_3s(table3_run):
    _, out, _, _, _ = table3_run
    model1, meta1 = load_compressed(out / "model1" / "model.npz", return_meta=True)
    model4, meta4 = load_compressed(out / "model4" / "model.npz", return_meta=True)
    assert isinstance(model1, Ensemble) and len(model1) == 2 and not isinstance(model4, Ensemble)
    assert (meta1["bits"], meta1["prune_ratio"]) == (8, 0.89) and (meta4["bits"], meta4["prune_ratio"]) == (16, 0.84)
    for model, share in ((model1.members[0], 0.89), (model1.members[1], 0.89), (model4, 0.84)):
        convs = [p.data for p in model.parameters() if p.data.ndim == 4]
        total = sum(w.size for w in convs)
        zeros = sum(int((w == 0).sum()) for w in convs) / total
        assert share - 1 / total <= zeros < share + 0.05  # the pruned share, to one weight (8 bits: a few more)
    rows = _table(out)
    # the ensembles count both members; compression leaves the parameter count, not the non-zeros
    assert int(rows["students"]["parameters"]) == 2 * int(rows["student-seed1"]["parameters"])
    assert int(rows["model1"]["parameters"]) == int(rows["students"]["parameters"])
    assert int(rows["model1"]["nonzero"]) < 0.5 * int(rows["model1"]["parameters"])
    assert float(rows["model1"]["size_kb"]) < float(rows["students"]["size_kb"]) / 4
    assert float(rows["students"]["size_kb"]) == pytest.approx(4 * int(rows["students"]["parameters"]) / 1024, abs=0.01)
    assert float(rows["model1"]["size_kb"]) == pytest.approx(model_size(list(model1.members), conv_bits=8).kib, abs=0.01)
    assert float(rows["model4"]["size_kb"]) == pytest.approx(model_size(model4, conv_bits=16).kib, abs=0.01)
    assert int(rows["model4"]["parameters"]) == int(rows["student-seed1"]["parameters"])
    assert float(rows["students"]["mmacs"]) == pytest.approx(2 * float(rows["student-seed1"]["mmacs"]), rel=1e-3)
    assert rows["model1"]["mmacs"] == rows["students"]["mmacs"] and rows["model4"]["mmacs"] == rows["teacher"]["mmacs"]


def test_the_submission_file_agrees_with_the_table(table3_run):
    root, out, _, _, _ = table3_run
    with open(out / "submission.tsv", newline="") as f:
        lines = list(csv.reader(f, delimiter="\t"))
    assert lines[0] == ["filename", "scene_label"] + list(SCENES)
    with open(root / "evaluation_setup" / "fold1_evaluate.csv", newline="") as f:
        truth = {row["filename"]: row["scene_label"] for row in csv.DictReader(f, delimiter="\t")}
    assert sorted(line[0] for line in lines[1:]) == sorted(truth)
    probs = np.array([[float(v) for v in line[2:]] for line in lines[1:]])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    accuracy = 100 * np.mean([line[1] == truth[line[0]] for line in lines[1:]])
    # read from the .wav files, the same accuracy as the table's model 1 row (from the feature cache)
    assert accuracy == pytest.approx(float(_table(out)["model1"]["overall"]), abs=0.01)
    checks = json.loads((out / "table3.json").read_text())["checks"]
    assert checks["submission_accuracy"] == pytest.approx(accuracy)
    assert checks["onnx"]["max_abs_difference"] <= 1e-3 and (out / "model1.onnx").is_file()   # onnx: a test extra


def test_a_second_call_trains_nothing_and_gives_the_same_table(table3_run):
    _, out, args, env, _ = table3_run
    before = (out / "table3.csv").read_text()
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert "training" not in result.output and "fine-tuning" not in result.output
    assert result.output.count("finished in") == 3 and result.output.count("fine-tuned before in") == 3
    assert (out / "table3.csv").read_text() == before


def test_other_settings_in_the_folder_stop_before_any_work(table3_run):
    _, out, args, env, _ = table3_run
    changed = [("3" if a == "2" and args[i - 1] == "--teacher-epochs" else a) for i, a in enumerate(args)]
    result = CliRunner().invoke(main, changed, env=env)
    assert result.exit_code == 1
    assert "teacher holds a run with other settings (epochs: 2 there, 3 now)" in result.output
    assert "Traceback" not in result.output and "split" not in result.output  # before the data is loaded


def test_a_step_of_other_students_is_not_reused(table3_run):
    _, out, args, env, _ = table3_run
    swapped = [("2,1" if a == "1,2" else a) for a in args]  # model 4 would now be seed 2's
    result = CliRunner().invoke(main, swapped, env=env)
    assert result.exit_code == 1 and "model1/finetune-0 holds a run with other settings (init_from:" in result.output


def test_a_given_teacher_must_be_a_finished_run_of_the_same_data(table3_run, tmp_path):
    root, out, args, env, _ = table3_run
    base = args[:-3] + ["--out", str(tmp_path / "o"), "--quiet"]
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    result = CliRunner().invoke(main, base + ["--teacher", str(teacher)], env=env)
    assert result.exit_code == 1 and f"{teacher}: no config.json here" in result.output
    shutil.copy(out / "teacher" / "config.json", teacher)
    result = CliRunner().invoke(main, base + ["--teacher", str(teacher)], env=env)
    assert result.exit_code == 1 and "not a finished run" in result.output
    for name in ("metrics.csv", "device_table.csv"):  # what git keeps of a finished run: no weights
        shutil.copy(out / "teacher" / name, teacher)
    result = CliRunner().invoke(main, base + ["--teacher", str(teacher)], env=env)
    assert result.exit_code == 1 and "checkpoint.npz is gone" in result.output
    shutil.copy(out / "teacher" / "checkpoint.npz", teacher)
    other_data = [a for a in base if a not in ("--data", str(root))] + ["--preset", "tiny"]
    result = CliRunner().invoke(main, other_data + ["--teacher", str(teacher)], env=env)
    assert result.exit_code == 1 and "not on the tiny preset as the students would be" in result.output
    assert not (tmp_path / "o").exists()  # every refusal came before any work


def test_bad_options_are_one_line(table3_run):
    _, _, args, env, _ = table3_run
    for bad, message in ((["--seeds", "1,1"], "names a seed twice"), (["--seeds", "3"], "ensembles two students"),
                         (["--teacher-epochs", "1", "--warmup-epochs", "1.5"], "--warmup-epochs"),
                         (["--finetune-epochs", "0"], "--finetune-epochs")):
        result = CliRunner().invoke(main, args + bad, env=env)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output


def test_jobs_2_trains_the_students_in_workers_to_the_same_bits(table3_run, tmp_path):
    """--jobs 2: the students in worker processes of one core each; the same weights as the
    students trained one after the other in this process, so the same table. A lone student
    left trains in this process."""
    _, out, args, env, _ = table3_run
    other = tmp_path / "o"
    jobs = args[:-3] + ["--out", str(other), "--teacher", str(out / "teacher"), "--jobs", "2", "--quiet"]
    result = CliRunner().invoke(main, jobs, env=env)
    assert result.exit_code == 0, result.output
    assert result.output.count("finished student, seed") == 2
    for seed in (1, 2):
        assert "epoch 1/1" in (other / "logs" / f"student-seed{seed}.txt").read_text()
        a = np.load(out / f"student-seed{seed}" / "checkpoint.npz")
        b = np.load(other / f"student-seed{seed}" / "checkpoint.npz")
        assert all(np.array_equal(a[k], b[k]) for k in a.files if k.startswith("model/"))
    assert (other / "table3.csv").read_text() == (out / "table3.csv").read_text()
    (other / "student-seed2" / "device_table.csv").unlink()   # not finished after all
    again = CliRunner().invoke(main, jobs, env=env)
    assert again.exit_code == 0, again.output
    assert f"student, seed 2 (distilled from {out / 'teacher'}): resuming" in again.output
    assert (other / "logs" / "student-seed2.txt").read_text().count("=== ") == 1   # no worker this time


def test_run_table3_refuses_a_repeated_seed(tmp_path):
    """The command line's --seeds refuses it too; through the API two students would share a folder."""
    from tinyasc.errors import TinyAscError
    from tinyasc.train.config import TrainConfig
    from tinyasc.train.table3 import run_table3

    with pytest.raises(TinyAscError, match="names a seed twice"):
        run_table3(TrainConfig(preset="tiny", width=4).validate(), tmp_path / "o", seeds=(1, 1), jobs=2)
    assert not (tmp_path / "o").exists()
