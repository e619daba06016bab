"""Table 3 end to end: the paper's compressed submission, built from BC-ResNet-Mod-8 + ResNorm.

Paper section 2.4, section 4 and Table 3. `tinyasc table3` runs every step into one folder.
Each step is an ordinary run folder, so an interrupted step resumes where it stopped and a
finished one is read back, never trained again:

  teacher/              BC-ResNet-Mod + ResNorm at c=80; the paper's best schedule is 300 epochs
                        with 10 of warm-up (or --teacher: a run trained before, e.g. a Table 2 row)
  student-seed<s>/      the same network, newly initialised, trained with the paper's recipe and
                        knowledge distillation from the teacher, one per seed
  model1/               every student pruned 89 % (all convs, magnitude, one shot), fine-tuned with
                        the masks held, the convs quantized to 8 bits (QAT) and the teacher again;
                        every other parameter in half precision; the students' ensemble.
                        Table 3's models 1-3 (two students, 121.9 KB)
  model4/               the first student pruned 84 %, everything in half precision, one model:
                        Table 3's model 4 (122.5 KB)
  table3.md/.csv/.json  per-device accuracy before and after compression, the DCASE 2021 size,
                        parameters and MMACs per second of audio (DCASE 2022-2025)
  submission.tsv        model 1 on the test split's audio, read from the .wav files: the DCASE
                        submission file, as `tinyasc predict` writes it
  model1.onnx           model 1 in ONNX, compared with tinyasc in onnxruntime on test clips

Where this differs from the paper (docs/decisions.md): the teacher and the students see the
training split only (the paper's teachers for models 1 and 4 saw the whole development set),
the model is the last epoch's (model 1 chose by Min Var), and model 4 has no device translator.
"""
import csv
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tinyasc.compress import Ensemble, load_compressed, save_compressed
from tinyasc.compress.complexity import complexity
from tinyasc.compress.export import ensemble_complexity
from tinyasc.compress.size import KIB, model_size
from tinyasc.data.training import TrainingData
from tinyasc.errors import TinyAscError
from tinyasc.fileio import atomic_write_text, atomic_write_texts
from tinyasc.train import classifier, evaluate
from tinyasc.train.config import load_run_config
from tinyasc.train.evaluate import DEVICE_COLUMNS
from tinyasc.train.experiment import row_name
from tinyasc.train.inference import write_submission
from tinyasc.train.runs import check_same_config, finished

MODEL_FILE = "model.npz"
ONNX_TOLERANCE = 1e-3   # max |logit difference| between onnxruntime and tinyasc (float32 both)


@dataclass(frozen=True)
class Submission:
    """One compressed model of Table 3."""
    key: str
    name: str
    prune: float     # share of conv weights set to zero
    bits: int        # conv weight bits (8: QAT integer codes; 16: half precision)
    students: int    # how many students it holds (None: all of them, the ensemble)


SUBMISSIONS = (Submission("model1", "model 1: 89% pruned, 8-bit convs, 16-bit rest", 0.89, 8, None),
               Submission("model4", "model 4: 84% pruned, all 16-bit, one model", 0.84, 16, 1))


def compress_runs(runs, out_dir, prune, bits, per_channel=False, teachers=(), epochs=10, lr=None,
                  log=print, progress=True, data=None):
    """Prune each run, fine-tune it (masks held, QAT, knowledge distillation from `teachers`) in
    out_dir/finetune-<i>, and write them as one compressed model (an ensemble if several) to
    out_dir/model.npz with its size table in size.txt. Returns the ExportSummary, or None when
    interrupted (the same call resumes)."""
    out, models, config = Path(out_dir), [], None
    for i, run in enumerate(runs):
        base = load_run_config(run)
        if base.arch != "bcresnet-mod":
            raise TinyAscError(f"{run}: compression exports BC-ResNet-Mod; this run is --arch {base.arch}")
        config = replace(base, init_from=str(run), prune=prune, bits=bits, per_channel=per_channel,
                         teacher=",".join(map(str, teachers)), epochs=epochs, lr=lr or base.lr / 10,
                         warmup_epochs=0.0).validate()
        run_dir = out / f"finetune-{i}"
        check_same_config(run_dir, config)
        if finished(run_dir, epochs) and (run_dir / classifier.CHECKPOINT).is_file():
            log(f"fine-tuning {run}: finished in {run_dir}")
        else:
            resume = (run_dir / classifier.CHECKPOINT).is_file()
            log(f"fine-tuning {run} in {run_dir}" + (" (resuming)" if resume else ""))
            text, _ = classifier.train(config, run_dir, resume=resume, log=log, progress=progress, data=data)
            if text is None:
                return None
            log(text)
        models.append(classifier.load_run(run_dir)[1])
    summary = save_compressed(out / MODEL_FILE, models, bits, per_channel, prune, config=json.loads(config.to_json()))
    atomic_write_text(out / "size.txt", summary.text() + "\n")
    return summary


def teacher_config(base, epochs, warmup):
    """The teacher: BC-ResNet-Mod + ResNorm at base's width, `epochs` with `warmup` of them warming up."""
    return replace(base, arch="bcresnet-mod", norm="resnorm", epochs=epochs, warmup_epochs=warmup,
                   teacher="").validate()


def student_config(base, teacher, seed):
    return replace(base, arch="bcresnet-mod", norm="resnorm", seed=seed, teacher=str(teacher)).validate()


def _train_stage(name, config, run_dir, data, log, progress):
    """Train (or resume) one run folder unless it has finished; False if interrupted."""
    check_same_config(run_dir, config)
    if finished(run_dir, config.epochs):
        log(f"--- {name}: finished in {run_dir}")
        return True
    resume = (Path(run_dir) / classifier.CHECKPOINT).is_file()
    log(f"--- {name}: {'resuming' if resume else 'training'} {run_dir}")
    text, _ = classifier.train(config, run_dir, resume=resume, log=log, progress=progress, data=data)
    if text is None:
        return False
    log(text)
    return True


def _finished_compression(out_dir, runs, epochs):
    """The compressed file of an earlier call, if it and every fine-tuning it holds are finished
    (its checkpoints need not be there: what is kept in git is the small model.npz)."""
    path = Path(out_dir) / MODEL_FILE
    if not path.is_file():
        return None
    if not all(finished(Path(out_dir) / f"finetune-{i}", epochs) for i in range(len(runs))):
        return None
    return path


def run_table3(base, out_dir, seeds=(1, 2), teacher=None, teacher_epochs=300, teacher_warmup=10.0,
               finetune_epochs=10, finetune_lr=None, log=print, progress=True):
    """Every step of Table 3 into out_dir; returns the table text (None if interrupted).

    base: the students' TrainConfig (width, epochs, data, ...); teacher: a finished run folder
    to distil from, or None to train one in out_dir/teacher."""
    out = Path(out_dir)
    seeds = list(seeds)
    if not seeds:
        raise TinyAscError("--seeds is empty; Table 3's ensemble takes two, e.g. --seeds 1,2")
    base = replace(base, arch="bcresnet-mod", norm="resnorm").validate()
    if teacher is not None:
        config = load_run_config(teacher)
        if not finished(teacher, config.epochs) or not (Path(teacher) / classifier.CHECKPOINT).is_file():
            raise TinyAscError(f"--teacher {teacher}: not a finished run with its checkpoint; finish it "
                               f"(tinyasc train --resume {teacher}) or leave --teacher out to train one")
        teacher_dir = Path(teacher)
    else:
        teacher_dir = out / "teacher"
        check_same_config(teacher_dir, teacher_config(base, teacher_epochs, teacher_warmup))
    students = [out / f"student-seed{s}" for s in seeds]
    for seed, run_dir in zip(seeds, students):  # a folder of other settings fails now, not hours later
        check_same_config(run_dir, student_config(base, teacher_dir, seed))
    out.mkdir(parents=True, exist_ok=True)
    data = TrainingData.load(base, log=log, progress=progress)

    if teacher is None and not _train_stage("teacher", teacher_config(base, teacher_epochs, teacher_warmup),
                                            teacher_dir, data, log, progress):
        return None
    for seed, run_dir in zip(seeds, students):
        if not _train_stage(f"student, seed {seed} (distilled from {teacher_dir})",
                            student_config(base, teacher_dir, seed), run_dir, data, log, progress):
            return None
    compressed = {}
    for sub in SUBMISSIONS:
        runs = students if sub.students is None else students[:sub.students]
        folder = out / sub.key
        path = _finished_compression(folder, runs, finetune_epochs)
        if path is None:
            log(f"--- {sub.name}: {len(runs)} student{'s' * (len(runs) > 1)} into {folder}")
            summary = compress_runs(runs, folder, sub.prune, sub.bits, teachers=[teacher_dir], epochs=finetune_epochs,
                                    lr=finetune_lr, log=log, progress=progress, data=data)
            if summary is None:
                return None
            log(summary.text())
            path = folder / MODEL_FILE
        else:
            log(f"--- {sub.name}: finished in {folder}")
        compressed[sub.key] = path

    rows = table_rows(out, data, teacher_dir, seeds, students, compressed, log)
    first = compressed[SUBMISSIONS[0].key]
    model = load_compressed(first)
    files = [(data.dataset.path(name), name) for name in data.filenames("test")]
    log(f"--- the submission file of {SUBMISSIONS[0].name}: {len(files)} test clips read from their audio")
    probs = write_submission(base, model, files, out / "submission.tsv", progress=progress)
    labels = data.labels("test")
    checks = {"submission_clips": len(files),
              "submission_accuracy": 100.0 * float(np.mean(probs.argmax(axis=1) == labels)),
              "onnx": onnx_check(model, data, out / f"{SUBMISSIONS[0].key}.onnx", log)}
    text = format_table3(rows, checks, teacher_dir)
    atomic_write_texts({out / "table3.md": text + "\n", out / "table3.csv": table3_csv(rows),
                        out / "table3.json": json.dumps({"teacher": str(teacher_dir), "seeds": seeds,
                                                         "finetune_epochs": finetune_epochs, "rows": rows,
                                                         "checks": checks,
                                                         "students": json.loads(base.to_json())}, indent=2) + "\n"})
    return text


def _model_row(key, name, table, cx, size_bytes, nonzero):
    row = {"row": key, "name": name, "parameters": cx.parameters, "nonzero": nonzero,
           "size_kb": size_bytes / KIB, "mmacs": cx.mmacs_per_second,
           "log_loss": table["overall"]["log_loss"]}
    row.update({c: table[c]["accuracy"] for c in DEVICE_COLUMNS if c in table})
    row["overall"] = table["overall"]["accuracy"]
    return row


def _metrics(model, data):
    return evaluate.device_metrics(evaluate.predict_proba(model, data.features, data.rows("test")),
                                   data.labels("test"), data.devices("test"))


def table_rows(out, data, teacher_dir, seeds, students, compressed, log):
    """The rows of Table 3: the teacher, each student and their ensemble as trained (float32,
    4 bytes a parameter), then each compressed model (its DCASE 2021 size)."""
    rows = []
    log("--- evaluating the test split: teacher, students, their ensemble, the compressed models")
    config, teacher_model = classifier.load_run(teacher_dir)
    rows.append(_float_row("teacher", f"teacher: {row_name(config, config.norm)}, {config.epochs} epochs",
                           teacher_model, data))
    models = []
    for seed, run_dir in zip(seeds, students):
        _, model = classifier.load_run(run_dir)
        models.append(model)
        rows.append(_float_row(f"student-seed{seed}", f"KD student, seed {seed}", model, data))
    if len(models) > 1:
        rows.append(_float_row("students", f"ensemble of the {len(models)} KD students", Ensemble(models), data))
    for sub in SUBMISSIONS:
        model, meta = load_compressed(compressed[sub.key], return_meta=True)
        members = list(model.members) if isinstance(model, Ensemble) else [model]
        size = model_size(members, conv_bits=meta["bits"])
        rows.append(_model_row(sub.key, f"{sub.name} ({len(members)} model{'s' * (len(members) > 1)})",
                               _metrics(model, data), ensemble_complexity(members), size.total_bytes, size.nonzero))
    return rows


def _float_row(key, name, model, data):
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    cx = ensemble_complexity(members) if len(members) > 1 else complexity(model)
    return _model_row(key, name, _metrics(model, data), cx, 4 * cx.parameters, cx.parameters)


def onnx_check(model, data, path, log, clips=32):
    """Export `model` to ONNX and compare onnxruntime's logits with tinyasc's on test clips."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        log("onnx/onnxruntime not installed: no ONNX export (pip install 'tinyasc[onnx]')")
        return None
    import tinyasc as ta
    from tinyasc.compress.onnx_export import export_onnx, onnx_predict

    summary = export_onnx(model, path, num_bins=data.features.shape[1])
    rows = np.sort(data.rows("test")[:clips])
    x = np.asarray(data.features[rows], dtype=np.float32)[:, None]
    with ta.no_grad():
        expected = model.eval()(ta.Tensor(x)).numpy()
    got = onnx_predict(path, x)
    error = float(np.abs(got - expected).max())
    same = int(np.sum(got.argmax(axis=1) == expected.argmax(axis=1)))
    if not error <= ONNX_TOLERANCE:
        raise TinyAscError(f"{path}: onnxruntime disagrees with tinyasc (max |logit difference| {error:.3g} on "
                           f"{len(rows)} test clips)")
    log(f"{path}: {summary.bytes:,} bytes; onnxruntime vs tinyasc on {len(rows)} test clips: max |logit difference| "
        f"{error:.2e}, same class {same}/{len(rows)}")
    return {"file": path.name, "bytes": summary.bytes, "clips": len(rows), "max_abs_difference": error,
            "same_class": same}


COLUMNS = ["row", "name"] + list(DEVICE_COLUMNS) + ["overall", "log_loss", "parameters", "nonzero", "size_kb", "mmacs"]


def table3_csv(rows):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row["row"], row["name"]] + [f"{row[c]:.2f}" for c in DEVICE_COLUMNS]
                        + [f"{row['overall']:.2f}", f"{row['log_loss']:.4f}", row["parameters"], row["nonzero"],
                           f"{row['size_kb']:.2f}", f"{row['mmacs']:.2f}"])
    return buf.getvalue()


def format_table3(rows, checks, teacher_dir):
    lines = [f"Table 3 at CPU scale: test accuracy (%) per device; size by the DCASE 2021 rule (non-zero x bits / 8, "
             f"1 KB = 1024 bytes; float32 models 4 bytes a parameter); MMACs per second of audio. Teacher: {teacher_dir}",
             "", "| Model | " + " | ".join(DEVICE_COLUMNS) + " | Overall | log loss | params (total / non-zero) "
             "| size | MMACs/s |", "|---|" + "---|" * (len(DEVICE_COLUMNS) + 5)]
    for row in rows:
        cells = " | ".join(f"{row[c]:.1f}" for c in DEVICE_COLUMNS)
        lines.append(f"| {row['name']} | {cells} | {row['overall']:.1f} | {row['log_loss']:.3f} | "
                     f"{row['parameters'] / 1000:.1f}k / {row['nonzero'] / 1000:.1f}k | {row['size_kb']:.1f} KB | "
                     f"{row['mmacs']:.1f} |")
    by_key = {row["row"]: row for row in rows}
    first_student = next(row for row in rows if row["row"].startswith("student-seed"))
    lines.append("")
    for sub in SUBMISSIONS:  # against the uncompressed models they hold
        after = by_key[sub.key]
        reference = by_key.get("students", first_student) if sub.students is None else first_student
        lines.append(f"- {sub.name}: {after['overall'] - reference['overall']:+.1f} points overall against "
                     f"{reference['name']} ({reference['overall']:.1f} -> {after['overall']:.1f}), "
                     f"{after['size_kb']:.1f} KB")
    lines.append(f"- submission.tsv: {checks['submission_clips']} test clips classified from their audio, "
                 f"accuracy {checks['submission_accuracy']:.1f}% (the table's {SUBMISSIONS[0].key} row: "
                 f"{by_key[SUBMISSIONS[0].key]['overall']:.1f}%)")
    onnx = checks.get("onnx")
    if onnx:
        lines.append(f"- {onnx['file']}: onnxruntime against tinyasc on {onnx['clips']} test clips, max |logit "
                     f"difference| {onnx['max_abs_difference']:.1e}, same class on {onnx['same_class']}")
    return "\n".join(lines)
