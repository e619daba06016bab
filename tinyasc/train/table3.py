"""Table 3 end to end: the paper's compressed submission, built from BC-ResNet-Mod-8 + ResNorm.

Paper section 2.4, section 4 and Table 3. `tinyasc table3` runs every step into one folder.
Each step is an ordinary run folder, so an interrupted step resumes where it stopped and a
finished one is read back, never trained again:

  teacher/              BC-ResNet-Mod + ResNorm at c=80 with the paper's best schedule, 300 epochs
                        with 10 of warm-up (or --teacher: a run trained before, e.g. a Table 2 row)
  student-seed<s>/      the same network, newly initialised, trained with knowledge distillation
                        from the teacher (the paper's KD row: 300 epochs), one per seed
  model1/               every student pruned 89 % (all convs, magnitude, one shot), fine-tuned with
                        the masks held, the convs quantized to 8 bits (QAT) and the teacher again;
                        every other parameter in half precision; the students' ensemble: Table 3's
                        model 1 (two students, 121.9 KB)
  model4/               the first student pruned 84 %, everything in half precision, one model:
                        Table 3's model 4 (122.5 KB)
  table3.md/.csv/.json  per-device accuracy before and after compression, the DCASE 2021 size,
                        parameters and MMACs per second of audio (DCASE 2022-2025), and
                        table3_devices.png (with the plot extra)
  submission.tsv        model 1 on the test split's audio, read from the .wav files: the DCASE
                        submission file, as `tinyasc predict` writes it
  model1.onnx           model 1 in ONNX, compared with tinyasc in onnxruntime on test clips

Models 2 and 3 of Table 3 differ from model 1 only in the data the teacher and students saw
(and model 2 in the translator), so they are not built. Where this differs from the paper
(docs/decisions.md): the teacher and the students see the training split only, the model is
the last epoch's (model 1 chose by Min Var), and model 4 is the ensemble's first student
trained without the device translator, not a student of its own.
"""
import csv
import io
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from tinyasc.compress import Ensemble, load_compressed
from tinyasc.compress.export import ensemble_complexity
from tinyasc.compress.size import KIB, model_size
from tinyasc.data.training import TrainingData
from tinyasc.errors import TinyAscError
from tinyasc.fileio import atomic_write_texts, pending
from tinyasc.run import plots
from tinyasc.train import classifier, evaluate
from tinyasc.train.config import load_run_config
from tinyasc.train.evaluate import DEVICE_COLUMNS
from tinyasc.train.experiment import row_name
from tinyasc.train.finetune import MODEL_FILE, compress_runs, finetune_config
from tinyasc.train.inference import write_submission
from tinyasc.train.runs import check_same_config, finished, require_checkpoint

ONNX_TOLERANCE = 1e-3   # max |logit difference| between onnxruntime and tinyasc (float32 both)
ONNX_CLIPS = 32         # test clips compared
FIGURE = "table3_devices.png"


@dataclass(frozen=True)
class Submission:
    """One compressed model of Table 3."""
    key: str
    name: str
    prune: float     # share of conv weights set to zero
    bits: int        # conv weight bits (8: QAT integer codes; 16: half precision)
    ensemble: bool   # all the students (True) or the first one


SUBMISSIONS = (Submission("model1", "model 1: 89% pruned, 8-bit convs, 16-bit rest", 0.89, 8, True),
               Submission("model4", "model 4: 84% pruned, all 16-bit, one model", 0.84, 16, False))


@dataclass
class Row:
    """One line of the table: a model's test-split metrics and its size."""
    key: str
    name: str
    devices: dict        # accuracy (%) per device column (NaN where the test split has none)
    overall: float
    log_loss: float
    parameters: int      # every member's, for an ensemble
    nonzero: int
    size_kb: float       # DCASE 2021: non-zero x bits / 8; float32 models 4 bytes a parameter
    mmacs: float         # per second of audio, every member


def teacher_config(base, epochs, warmup):
    """The teacher: BC-ResNet-Mod + ResNorm at base's width, `epochs` with `warmup` of them warming up."""
    return replace(base, epochs=epochs, warmup_epochs=warmup, teacher="").validate()


def student_config(base, teacher, seed):
    return replace(base, seed=seed, teacher=str(teacher)).validate()


def _train_stage(name, config, run_dir, data, log, progress):
    """Train (or resume) one run folder unless it has finished; False if interrupted."""
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


def _check_teacher(teacher, base):
    config = load_run_config(teacher)
    if not finished(teacher, config.epochs):
        raise TinyAscError(f"--teacher {teacher}: not a finished run; finish it (tinyasc train --resume {teacher}) "
                           "or leave --teacher out to train one")
    require_checkpoint(teacher)
    if (config.data, config.preset) != (base.data, base.preset):
        raise TinyAscError(f"--teacher {teacher}: trained on {config.data or 'the ' + config.preset + ' preset'}, "
                           f"not on {base.data or 'the ' + base.preset + ' preset'} as the students would be")


def _check_folder(run_dir, config):
    """A step's folder, if it exists, holds this step's settings, and its weights if it finished
    (the next steps read them)."""
    check_same_config(run_dir, config)
    if finished(run_dir, config.epochs):
        require_checkpoint(run_dir)


def _train_students(seeds, students, configs, teacher_dir, jobs, out, data, log, progress):
    """Every student not yet finished: one after the other, or with jobs > 1 that many at a
    time, each in a worker process on one core (tinyasc/train/parallel.py; its output in
    out/logs/). A lone student left trains here, with every core. False if interrupted."""
    names = [f"student, seed {seed} (distilled from {teacher_dir})" for seed in seeds]
    left = [not finished(run_dir, config.epochs) for run_dir, config in zip(students, configs)]
    if jobs == 1 or sum(left) < 2:
        return all(_train_stage(name, config, run_dir, data, log, progress)
                   for name, run_dir, config in zip(names, students, configs))
    from tinyasc.train.parallel import Job, train_in_parallel

    todo = []
    for name, run_dir, config, todo_here in zip(names, students, configs, left):
        if todo_here:
            todo.append(Job(run_dir.name, name, run_dir, config))
        else:
            log(f"--- {name}: finished in {run_dir}")
    return train_in_parallel(todo, jobs, out / "logs", log=log)


def run_table3(base, out_dir, seeds=(1, 2), teacher=None, teacher_epochs=300, finetune_epochs=10,
               log=print, progress=True, jobs=1):
    """Every step of Table 3 into out_dir; returns the table text (None if interrupted).

    base: the students' TrainConfig (width, epochs, warm-up, data, ...); the teacher trained
    here shares it but for its epochs. teacher: a finished run folder to distil from, or None
    to train one in out_dir/teacher. jobs: students trained at a time, one core each (the
    teacher and the fine-tunes use every core)."""
    out = Path(out_dir)
    seeds = list(seeds)
    if len(seeds) < 2:
        raise TinyAscError(f"--seeds {','.join(map(str, seeds))}: Table 3's model 1 ensembles two students or "
                           "more; pass e.g. --seeds 1,2")
    if len(set(seeds)) < len(seeds):  # two students would share (and with jobs > 1 race for) one folder
        raise TinyAscError(f"--seeds {','.join(map(str, seeds))} names a seed twice")
    base = replace(base, arch="bcresnet-mod", norm="resnorm").validate().check_inputs()
    # Every folder that exists must hold what is asked for now: checked before hours of training.
    if teacher is not None:
        _check_teacher(teacher, base)
        teacher_dir = Path(teacher)
    else:
        teacher_dir = out / "teacher"
        _check_folder(teacher_dir, teacher_config(base, teacher_epochs, base.warmup_epochs))
    students = [out / f"student-seed{s}" for s in seeds]
    student_configs = [student_config(base, teacher_dir, s) for s in seeds]
    for run_dir, config in zip(students, student_configs):
        _check_folder(run_dir, config)
    for sub in SUBMISSIONS:
        for i, (run_dir, config) in enumerate(zip(*_members(sub, students, student_configs))):
            _check_folder(out / sub.key / f"finetune-{i}",
                          finetune_config(config, run_dir, sub.prune, sub.bits, teachers=[teacher_dir],
                                          epochs=finetune_epochs))
    out.mkdir(parents=True, exist_ok=True)
    data = TrainingData.load(base, log=log, progress=progress)

    if teacher is None and not _train_stage("teacher", teacher_config(base, teacher_epochs, base.warmup_epochs),
                                            teacher_dir, data, log, progress):
        return None
    if not _train_students(seeds, students, student_configs, teacher_dir, jobs, out, data, log, progress):
        return None
    compressed = {}
    for sub in SUBMISSIONS:
        runs, _ = _members(sub, students, student_configs)
        log(f"--- {sub.name}: {len(runs)} student{'s' * (len(runs) > 1)} into {out / sub.key}")
        summary = compress_runs(runs, out / sub.key, sub.prune, sub.bits, teachers=[teacher_dir],
                                epochs=finetune_epochs, log=log, progress=progress, data=data)
        if summary is None:
            return None
        log(summary.text())
        compressed[sub.key] = out / sub.key / MODEL_FILE

    rows = table_rows(data, teacher_dir, seeds, students, compressed, log)
    first = SUBMISSIONS[0]
    model = load_compressed(compressed[first.key])
    onnx = onnx_check(model, data, out / f"{first.key}.onnx", log)  # a failed check leaves nothing behind
    files = [(data.dataset.path(name), name) for name in data.filenames("test")]
    log(f"--- the submission file of {first.name}: {len(files)} test clips read from their audio")
    probs = write_submission(base, model, files, out / "submission.tsv", progress=progress)
    checks = {"submission_clips": len(files),
              "submission_accuracy": 100.0 * float(np.mean(probs.argmax(axis=1) == data.labels("test"))),
              "onnx": onnx}
    text = format_table3(rows, checks, teacher_dir)
    if plots.available():
        plots.device_bars([{"method": r.name, **r.devices, "overall_mean": r.overall, "overall_std": 0.0}
                           for r in rows], DEVICE_COLUMNS, out / FIGURE,
                          title="Table 3: test accuracy per device, before and after compression")
    atomic_write_texts({out / "table3.md": text + "\n", out / "table3.csv": table3_csv(rows),
                        out / "table3.json": json.dumps({"teacher": str(teacher_dir), "seeds": seeds,
                                                         "finetune_epochs": finetune_epochs,
                                                         "rows": [asdict(r) for r in rows], "checks": checks,
                                                         "students": json.loads(base.to_json())}, indent=2) + "\n"})
    return text


def _members(sub, students, configs):
    """(run folders, their configs) that a compressed model holds."""
    return (students, configs) if sub.ensemble else (students[:1], configs[:1])


def _row(key, name, model, data, size_bytes=None, nonzero=None):
    """Test-split metrics and size of a model or an ensemble; size_bytes None: float32."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    cx = ensemble_complexity(members)
    table = evaluate.device_metrics(evaluate.predict_proba(model, data.features, data.rows("test")),
                                    data.labels("test"), data.devices("test"))
    return Row(key, name, {c: table[c]["accuracy"] if c in table else float("nan") for c in DEVICE_COLUMNS},
               table["overall"]["accuracy"], table["overall"]["log_loss"], cx.parameters,
               cx.parameters if nonzero is None else nonzero,
               (4 * cx.parameters if size_bytes is None else size_bytes) / KIB, cx.mmacs_per_second)


def table_rows(data, teacher_dir, seeds, students, compressed, log):
    """The teacher, each student and their ensemble as trained, then each compressed model."""
    log("--- evaluating the test split: teacher, students, their ensemble, the compressed models")
    config, teacher_model = classifier.load_run(teacher_dir)
    rows = [_row("teacher", f"teacher: {row_name(config, config.norm)}, {config.epochs} epochs", teacher_model, data)]
    models = []
    for seed, run_dir in zip(seeds, students):
        config, model = classifier.load_run(run_dir)
        models.append(model)
        rows.append(_row(f"student-seed{seed}", f"KD student, seed {seed}, {config.epochs} epochs", model, data))
    rows.append(_row("students", f"ensemble of the {len(models)} KD students", Ensemble(models), data))
    for sub in SUBMISSIONS:
        model, meta = load_compressed(compressed[sub.key], return_meta=True)
        members = list(model.members) if isinstance(model, Ensemble) else [model]
        size = model_size(members, conv_bits=meta["bits"], per_channel=meta["per_channel"])
        name = f"{sub.name}, ensemble of {len(members)}" if sub.ensemble else sub.name
        rows.append(_row(sub.key, name, model, data,
                         size.total_bytes, size.nonzero))
    return rows


def onnx_check(model, data, path, log):
    """Export `model` to ONNX and compare onnxruntime's logits with tinyasc's on test clips; the
    file keeps its name only if they agree."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        log("onnx/onnxruntime not installed: no ONNX export (pip install 'tinyasc[onnx]')")
        return None
    import tinyasc as ta
    from tinyasc.compress.onnx_export import export_onnx, onnx_predict

    rows = np.sort(data.rows("test")[:ONNX_CLIPS])
    x = np.asarray(data.features[rows], dtype=np.float32)[:, None]
    with ta.no_grad():
        expected = model.eval()(ta.Tensor(x)).numpy()
    with pending(path) as tmp:
        summary = export_onnx(model, tmp, num_bins=data.features.shape[1])
        got = onnx_predict(tmp, x)
        error = float(np.abs(got - expected).max())
        if not error <= ONNX_TOLERANCE:
            raise TinyAscError(f"{path}: not written: onnxruntime disagrees with tinyasc (max |logit difference| "
                               f"{error:.3g} on {len(rows)} test clips)")
    same = int(np.sum(got.argmax(axis=1) == expected.argmax(axis=1)))
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
        writer.writerow([row.key, row.name] + [f"{row.devices[c]:.2f}" for c in DEVICE_COLUMNS]
                        + [f"{row.overall:.2f}", f"{row.log_loss:.4f}", row.parameters, row.nonzero,
                           f"{row.size_kb:.2f}", f"{row.mmacs:.2f}"])
    return buf.getvalue()


def format_table3(rows, checks, teacher_dir):
    lines = [f"Table 3 at CPU scale: test accuracy (%) per device; size by the DCASE 2021 rule (non-zero x bits / 8, "
             f"1 KB = 1024 bytes; float32 models 4 bytes a parameter); MMACs per second of audio. Teacher: {teacher_dir}",
             "", "| Model | " + " | ".join(DEVICE_COLUMNS) + " | Overall | log loss | params (total / non-zero) "
             "| size | MMACs/s |", "|---|" + "---|" * (len(DEVICE_COLUMNS) + 5)]
    for row in rows:
        cells = " | ".join(f"{row.devices[c]:.1f}" for c in DEVICE_COLUMNS)
        lines.append(f"| {row.name} | {cells} | {row.overall:.1f} | {row.log_loss:.3f} | "
                     f"{row.parameters / 1000:.1f}k / {row.nonzero / 1000:.1f}k | {row.size_kb:.1f} KB | "
                     f"{row.mmacs:.1f} |")
    by_key = {row.key: row for row in rows}
    first_student = next(row for row in rows if row.key.startswith("student-seed"))
    lines.append("")
    for sub in SUBMISSIONS:  # against the uncompressed models they hold
        after, before = by_key[sub.key], by_key["students"] if sub.ensemble else first_student
        lines.append(f"- {sub.name}: {after.overall - before.overall:+.1f} points overall against {before.name} "
                     f"({before.overall:.1f} -> {after.overall:.1f}), {after.size_kb:.1f} KB")
    lines.append(f"- submission.tsv: {checks['submission_clips']} test clips classified from their audio, "
                 f"accuracy {checks['submission_accuracy']:.1f}% (the table's {SUBMISSIONS[0].key} row: "
                 f"{by_key[SUBMISSIONS[0].key].overall:.1f}%)")
    onnx = checks.get("onnx")
    if onnx:
        lines.append(f"- {onnx['file']}: onnxruntime against tinyasc on {onnx['clips']} test clips, max |logit "
                     f"difference| {onnx['max_abs_difference']:.1e}, same class on {onnx['same_class']}")
    return "\n".join(lines)
