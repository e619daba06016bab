"""Training a classifier with the paper's recipe (section 3.1), resumable to the bit.

The whole loop reads top to bottom in `Trainer`: the data, the model (and, for compression,
its pruning masks, quantized convs and teacher: paper 2.4), the optimizer and the schedule in
`__init__`; then in `fit`, for each epoch and each batch, `train_step`: forward, loss,
zero_grad, backward, step. What every run shares (folder, checkpoint, metrics.csv, Ctrl-C)
comes from tinyasc/run/.

Every random choice of step s of epoch e comes from np.random.default_rng([seed, e, s])
(augmentation) or from the epoch's shuffle default_rng([seed, e]); dropout draws from
tinyasc.random, whose state is checkpointed. So a run stopped after any step and
resumed reproduces the uninterrupted run exactly.
"""
import hashlib
import json
import math
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tinyasc import functional as F
from tinyasc import optim
from tinyasc import random as ta_random
from tinyasc.autograd import Tensor
from tinyasc.checks import check_frames
from tinyasc.compress import (Distiller, fake_quantize_weights_, hold_masks, load_compressed, mask_gradients,
                              masks_from_state, masks_state, prune, quantize_convs_)
from tinyasc.compress.complexity import complexity
from tinyasc.data.augment import Augment
from tinyasc.data.training import TrainingData
from tinyasc.errors import TinyAscError
from tinyasc.fileio import atomic_write_texts, progressbar
from tinyasc.models import BCResNet, BCResNetMod, CPResNet
from tinyasc.run import plots
from tinyasc.run.checkpoint import (CheckpointError, NonFiniteWeights, check_finite_state, check_same_model,
                                    checked_history, checked_position, checked_tally, load_checkpoint,
                                    load_model_state, split_prefix)
from tinyasc.run.folder import RunFolder, StopFlag
from tinyasc.train import evaluate
from tinyasc.train.config import TrainConfig, load_run_config
from tinyasc.translator.augment import add_translations

CHECKPOINT = "checkpoint.npz"   # the last epoch
SELECTED = "selected.npz"       # the Min Var epoch (--select minvar)
KIND = "tinyasc-classifier"


def build_model(config):
    """The untrained network of a TrainConfig: BC-ResNet-Mod (the paper's), BC-ResNet or CP-ResNet."""
    if config.arch == "bcresnet":
        return BCResNet(tau=config.width, num_classes=10, subbands=config.subbands, dropout=config.dropout,
                        norm=config.norm, lam=config.lam)
    if config.arch == "cpresnet":
        return CPResNet(c=config.width, rho=config.rho, num_classes=10, norm=config.norm, lam=config.lam)
    return BCResNetMod(c=config.width, num_classes=10, norm=config.norm, lam=config.lam,
                       subbands=config.subbands, dropout=config.dropout)


def load_run(run):
    """(config, model in eval mode) of a run folder, with the selected (Min Var) or last weights,
    or of a compressed model file written by `tinyasc compress`."""
    run = Path(run)
    if run.is_file():
        if not zipfile.is_zipfile(run):  # a CSV, a WAV, an ONNX file given by mistake, or a damaged model
            raise TinyAscError(f"{run}: not a model file (.npz of tinyasc compress), or a damaged one; pass a run "
                               "folder or a compressed model, or write it again with tinyasc compress")
        model, meta = load_compressed(run, return_meta=True)
        if not isinstance(meta.get("config"), dict):
            raise TinyAscError(f"{run}: this compressed model carries no training config; "
                               "write it with tinyasc compress")
        fix = "the file is damaged: write it again with tinyasc compress"
        config = TrainConfig.from_saved(meta["config"], f"{run} (its training settings)", fix)
        # The settings are those of the last model's run (`compress_runs`): they must describe that
        # model; the ensemble's other members may come from runs of other widths or norms.
        last = len(meta["models"]) - 1
        arch = meta["models"][last]["architecture"]
        stored = {"arch": "bcresnet-mod", "width": arch["c"], "norm": arch["norm"], "lam": arch["lam"],
                  "subbands": arch["subbands"]}
        differ = [f"{k} {getattr(config, k)!r} there, {v!r} in model {last}" for k, v in stored.items()
                  if getattr(config, k) != v]
        if differ:
            raise CheckpointError(f"{run}: its training settings do not describe the model it stores "
                                  f"({'; '.join(differ)}); {fix}")
        return config, model
    config = load_run_config(run)
    path = run / SELECTED if config.select == "minvar" else run / CHECKPOINT
    if config.select == "minvar" and not path.is_file() and (run / CHECKPOINT).is_file():
        raise CheckpointError(f"{path}: missing, and this run selects its model by Min Var (--select minvar); "
                              f"its last epoch is not the selected model. Restore {SELECTED}, or train the run "
                              "again into a new folder")
    arrays, meta = load_checkpoint(path)
    model = build_model(config)
    load_model_state(model, split_prefix(arrays, "model"), path)
    check_same_model(meta.get("config"), config, path)  # when the shapes agree, the settings may not
    if config.bits <= 8:  # a QAT fine-tune (tinyasc compress): the model it trained and reported computes
        fake_quantize_weights_(model, config.bits, config.per_channel)  # with these weights, not the float ones
    model.eval()
    return config, model


def weights_digest(models):
    """SHA-1 of the models' state dicts (names and bytes, in order); None for no models."""
    if not models:
        return None
    digest = hashlib.sha1()
    for model in models:
        for name, value in model.state_dict().items():
            value = np.ascontiguousarray(value)
            digest.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


class Tally(NamedTuple):
    """The epoch so far; saved in the checkpoint, so a resumed epoch reports what an uninterrupted one would."""
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0


class Choice(NamedTuple):
    """Min Var's choice so far: the epoch whose validation accuracies spread least over devices."""
    epoch: int
    spread: float


class TrainingDiverged(TinyAscError):
    """The loss became NaN or infinite."""


def train_step(model, optimizer, x, y, loss_fn=None, masks=None):
    """Forward, loss, zero_grad, backward, optimizer step; returns (loss, logits array).

    loss_fn(logits, y, x) defaults to cross-entropy; distillation passes Distiller.loss.
    masks (from prune, paper 2.4): the pruned weights get no gradient and stay exactly zero,
    momentum included.
    """
    logits = model(Tensor(x))
    loss = F.cross_entropy(logits, y) if loss_fn is None else loss_fn(logits, y, x)
    value = float(loss.data)
    if not math.isfinite(value):
        return value, logits.data
    optimizer.zero_grad()
    loss.backward()
    if masks is not None:
        mask_gradients(model, masks)
    optimizer.step()
    if masks is not None:
        hold_masks(model, masks, optimizer)
    return value, logits.data


def training_data(config, data=None, log=print, progress=True):
    """The run's TrainingData (`data` if given, split for the run's val_fraction and seed;
    else loaded as config says), checked against what the network and the batch size need,
    grown by the translator's clips if config asks."""
    if data is None:
        data = TrainingData.load(config, log=log, progress=progress)
    data = data.split_for(config.val_fraction, config.seed)
    root = getattr(getattr(data, "dataset", None), "root", "the dataset")
    check_frames(data.features.shape[-1], config.arch, f"the clips of {root}")
    if config.translator:
        data = add_translations(data, config.translator, log=log, progress=progress)
    train_clips = len(data.rows("train"))
    if train_clips < config.batch_size:
        if config.val_fraction > 0:  # the held-out locations, not the batch size, are the likely cause
            raise TinyAscError(f"holding out --val-fraction {config.val_fraction:g} of the training locations "
                               f"for validation leaves {train_clips} training clips, fewer than --batch-size "
                               f"{config.batch_size}; lower --val-fraction (Min Var's default is 0.1)")
        raise TinyAscError(f"the training split has {train_clips} clips, fewer than --batch-size "
                           f"{config.batch_size}: no full batch to train on; lower --batch-size")
    return data


class Trainer:
    def __init__(self, config, run_dir, data=None, log=print, progress=True):
        self.config = config.validate()
        self.folder = RunFolder(run_dir, KIND, CHECKPOINT)
        self.run_dir = self.folder.path
        self.log, self.show_progress = log, progress
        # data: cached log-mels of the dataset's splits (+ the translator's clips, paper 3.2)
        self.data = training_data(config, data, log, progress)
        # model. Models of other runs are built before seeding: building one draws from tinyasc.random.
        teachers = [load_run(run.strip())[1] for run in config.teacher.split(",") if run.strip()]
        start = load_run(config.init_from.strip())[1] if config.init_from else None
        # which weights the teachers and the starting run hold: a resume checks they are the same
        self.sources_digest = weights_digest(teachers + ([start] if start is not None else []))
        ta_random.manual_seed(config.seed)
        self.model = build_model(config)
        if config.norm == "global":
            self.model.input_norm.set_statistics(*self.data.frequency_statistics())
        if start is not None:
            load_model_state(self.model, start.state_dict(), config.init_from)
        # optimizer: SGD with momentum and weight decay (paper 3.1)
        self.optimizer = optim.SGD(self.model.parameters(), lr=0.0, momentum=config.momentum,
                                   weight_decay=config.weight_decay)
        # compression (paper 2.4): prune once, then train_step keeps the pruned weights at zero;
        # the convs compute with fake-quantized weights (QAT: QuantizedConv2d in repr(model));
        # distillation replaces the loss.
        self.masks = self.distiller = None
        if config.prune > 0:
            self.masks = prune(self.model, config.prune)
            hold_masks(self.model, self.masks, self.optimizer)
        if config.bits <= 8:
            quantize_convs_(self.model, config.bits, config.per_channel, self.masks)
        if teachers:
            self.distiller = Distiller(teachers, config.kd_alpha, config.kd_temperature)
        # schedule: linear warm-up, then cosine to zero, per step
        self.steps_per_epoch = self.data.steps_per_epoch(config.batch_size)
        self.schedule = optim.WarmupCosine(self.optimizer, config.lr,
                                           int(round(config.warmup * self.steps_per_epoch)),
                                           config.epochs * self.steps_per_epoch)
        self.epoch, self.step_in_epoch = 0, 0
        self.running = Tally()
        self.history = []
        self.selected = None  # the Min Var Choice
        self.saved = None     # (epoch, step) of the last checkpoint written or restored: the last good one
        self.tested = None    # (epoch, test probabilities) when the test split was evaluated after the last epoch

    # ---------------------------------------------------------- checkpoints
    def state_arrays(self):
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        optim_state = self.optimizer.state_dict()
        arrays.update({f"optim/{k}": v for k, v in optim_state["state"].items()})
        if self.masks is not None:
            arrays.update({f"mask/{k}": v for k, v in masks_state(self.masks).items()})
        return arrays

    def save(self, name=CHECKPOINT):
        meta = {"config": json.loads(self.config.to_json()),
                "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "running": self.running,
                "schedule": self.schedule.state_dict(), "random": _jsonable(ta_random.get_state()),
                "history": self.history, "selected": self.selected}
        digest = getattr(self.data, "translator_digest", None)
        if digest is not None:
            meta["translator_digest"] = digest
        if self.sources_digest is not None:
            meta["sources_digest"] = self.sources_digest
        try:
            self.folder.save(self.state_arrays(), meta, name)
        except NonFiniteWeights as exc:
            when = (f"by the end of epoch {self.epoch}" if self.step_in_epoch == 0
                    else f"by epoch {self.epoch + 1}, step {self.step_in_epoch}")
            raise TrainingDiverged(f"the weights became non-finite {when} ({exc.array} holds {exc.what}); "
                                   f"{self.kept()}. Try a lower --lr") from None
        if name == CHECKPOINT:
            self.saved = (self.epoch, self.step_in_epoch)

    def kept(self):
        """What is on disk after a divergence: the last checkpoint that passed the finite check."""
        if self.saved is None:
            return "no checkpoint was saved before it diverged"
        epoch, step = self.saved
        where = f"end of epoch {epoch}" if step == 0 else f"epoch {epoch + 1}, step {step}"
        return f"the last good checkpoint ({where}) is kept in {self.run_dir}"

    def restore(self, path):
        arrays, meta = self.folder.load(path)
        saved_digest, digest = meta.get("translator_digest"), getattr(self.data, "translator_digest", None)
        if saved_digest is not None and saved_digest != digest:
            raise CheckpointError(f"{path}: the translator {self.config.translator} is not the one this run started "
                                  "with (retrained or replaced since), so resuming would not reproduce the run; "
                                  "start a new run, or train translators into new folders")
        saved_sources = meta.get("sources_digest")
        if saved_sources is not None and saved_sources != self.sources_digest:
            sources = ", ".join(p for p in (self.config.teacher, self.config.init_from) if p)
            raise CheckpointError(f"{path}: the weights of its teacher or starting runs ({sources}) are not those "
                                  "this run started with (retrained or replaced since), so resuming would not "
                                  "reproduce the run; restore them, or start a new run")
        load_model_state(self.model, split_prefix(arrays, "model"), path)
        check_same_model(meta.get("config"), self.config, path)  # when the shapes agree, the settings may not
        check_finite_state(arrays, path)  # the optimizer's momentum too
        if self.masks is not None:
            saved = masks_from_state(split_prefix(arrays, "mask"))
            if set(saved) != set(self.masks):
                raise CheckpointError(f"{path}: the pruning masks in this checkpoint do not fit the run")
            for name, mask in saved.items():
                self.masks[name][...] = mask  # in place: the QuantizedConv2d modules hold these arrays
        groups = self.optimizer.state_dict()["param_groups"]
        try:
            self.optimizer.load_state_dict({"state": split_prefix(arrays, "optim"), "param_groups": groups})
        except (ValueError, IndexError) as exc:
            raise CheckpointError(f"{path}: optimizer state does not fit the model ({exc})") from None
        if self.masks is not None:
            hold_masks(self.model, self.masks, self.optimizer)
        try:
            epoch, step = checked_position(meta, self.config.epochs, self.steps_per_epoch)
            self.epoch, self.step_in_epoch = epoch, step
            self.history = checked_history(meta["history"], self.epoch)
            self.schedule.load_state_dict(checked_schedule(meta["schedule"], epoch, step, self.steps_per_epoch))
            ta_random.set_state(meta["random"])
            self.running = checked_running(meta.get("running", list(Tally())), step, self.steps_per_epoch,
                                           self.config.batch_size)
            selected = meta.get("selected")
            self.selected = None if selected is None else checked_tally(Choice, selected)
            if selected is not None and not (isinstance(self.selected.epoch, int)
                                             and 1 <= self.selected.epoch <= self.epoch):
                raise ValueError(f"the selected epoch {self.selected.epoch} is not one of the {self.epoch} trained")
            if selected is not None and not math.isfinite(self.selected.spread):  # Min Var compares later epochs to it
                raise ValueError(f"the selected epoch's device spread is {self.selected.spread}, not a finite number")
            self.saved = (self.epoch, self.step_in_epoch)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: a number beyond float
            raise CheckpointError(f"{path}: checkpoint metadata is incomplete or malformed ({exc!r}); "
                                  "resume from another run") from None

    # ------------------------------------------------------------- training
    def fit(self, stop=None):
        """The loop: for each epoch, for each batch of augmented clips, one train_step; after each
        epoch, evaluate, checkpoint and write metrics.csv.

        stop() is asked before each epoch and after each step (default: has Ctrl-C been pressed);
        when it says so, the run saves a checkpoint and fit returns False.
        """
        config = self.config
        self.folder.write_config(config)
        augment = Augment.from_config(config)  # time roll, SpecAugment, Mixup (paper 3.1)
        loss_fn = None if self.distiller is None else self.distiller.loss
        # a diverging run overflows on its way to a non-finite loss, which the loop reports in one
        # line (TrainingDiverged); NumPy's overflow warnings before it would only repeat that
        with StopFlag() as ctrl_c, np.errstate(over="ignore", invalid="ignore"):
            stop = stop or ctrl_c
            while self.epoch < config.epochs:
                if stop():
                    return self._interrupted()
                if self.step_in_epoch == 0:
                    self.running = Tally()
                start = time.perf_counter() - self.running.seconds
                batches = self.data.train_batches(config.batch_size, config.seed, self.epoch, self.step_in_epoch,
                                                  transform=augment)
                desc = f"epoch {self.epoch + 1}/{config.epochs}"
                with progressbar(self.steps_per_epoch, desc, quiet=not self.show_progress) as bar:
                    bar.update(self.step_in_epoch)
                    for step, (x, y) in batches:
                        loss, logits = train_step(self.model, self.optimizer, x, y, loss_fn, self.masks)
                        if not math.isfinite(loss):
                            raise TrainingDiverged(f"loss became {loss} at epoch {self.epoch + 1}, step {step + 1}; "
                                                   f"{self.kept()}. Try a lower --lr")
                        self.schedule.step()
                        self.step_in_epoch = step + 1
                        bar.update(1, self._count(loss, logits, y, time.perf_counter() - start))
                        if stop():
                            return self._interrupted()
                self._end_epoch(time.perf_counter() - start)
        return True

    def _interrupted(self):
        self.save()
        self.log(f"interrupted at epoch {self.epoch + 1}, step {self.step_in_epoch}; checkpoint saved. "
                 f"Resume with: tinyasc train --resume {self.run_dir}")
        return False

    def _count(self, loss, logits, y, elapsed):
        """Add a step to this epoch's Tally; return the running means, for the progress bar."""
        labels = y.argmax(axis=1) if y.ndim == 2 else y  # Mixup: the larger share
        t = self.running
        t = self.running = Tally(loss_sum=t.loss_sum + loss * len(labels),
                                 correct=t.correct + int(np.sum(logits.argmax(axis=1) == labels)),
                                 seen=t.seen + len(labels), seconds=elapsed)
        return (f"loss {t.loss_sum / t.seen:.4g}, acc {100.0 * t.correct / t.seen:.1f}%, "
                f"{t.seen / max(elapsed, 1e-9):.0f} clips/s")

    def _end_epoch(self, seconds):
        config = self.config
        t = self.running
        loss, acc = t.loss_sum / max(t.seen, 1), 100.0 * t.correct / max(t.seen, 1)
        speed = t.seen / max(seconds, 1e-9)
        row = {"epoch": self.epoch + 1, "loss": loss, "train_acc": acc, "lr": self.optimizer.param_groups[0]["lr"],
               "clips_per_s": speed}
        # The test split is evaluated every eval_every epochs and after the last one: it is only
        # watched, never used to choose anything, so evaluating it every epoch would buy nothing
        # but time (with 1,800 test clips, a third of an epoch's).
        tested = (self.epoch + 1) % config.eval_every == 0 or self.epoch + 1 == config.epochs
        if tested:
            probs = self.predict("test")
            test = evaluate.device_metrics(probs, self.data.labels("test"), self.data.devices("test"))
            row.update({f"test_{k}": v["accuracy"] for k, v in test.items()})
            row["test_log_loss"] = test["overall"]["log_loss"]
        if self.data.has_validation:  # Min Var chooses an epoch from these: every epoch
            val = self.evaluate("val")
            row.update({f"val_{k}": v["accuracy"] for k, v in val.items()})
            row["val_spread"] = evaluate.device_spread(val)
        self.history.append(row)
        self.epoch += 1
        self.step_in_epoch = 0
        # the last epoch's test predictions are the report's, unless it reports a Min Var epoch
        self.tested = (self.epoch, probs) if tested else None
        if config.select == "minvar" and (self.selected is None or row["val_spread"] <= self.selected.spread):
            self.selected = Choice(self.epoch, row["val_spread"])
            self.save(SELECTED)
        self.save()
        self.folder.write_metrics(self.history)
        line = f"epoch {self.epoch}/{config.epochs}: loss {loss:.4f}, train acc {acc:.1f}%"
        if tested:
            line += f", test acc {test['overall']['accuracy']:.1f}% ({test['overall']['count']} clips)"
        self.log(f"{line}, {speed:.0f} clips/s")

    def predict(self, split):
        probs = evaluate.predict_proba(self.model, self.data.features, self.data.rows(split))
        if not np.isfinite(probs).all():  # training's loss can stay finite while eval mode overflows
            raise TrainingDiverged(f"the model's outputs on the {split} split are not finite numbers after epoch "
                                   f"{self.epoch + 1}; {self.kept()}. Try a lower --lr")
        return probs

    def evaluate(self, split):
        return evaluate.device_metrics(self.predict(split), self.data.labels(split), self.data.devices(split))

    # --------------------------------------------------------------- report
    def report(self):
        """Evaluate the selected model on the test split; write the tables; return the text."""
        minvar = self.config.select == "minvar" and self.selected is not None
        if minvar:
            arrays, meta = self.folder.load(self.run_dir / SELECTED)
            check_same_model(meta.get("config"), self.config, self.run_dir / SELECTED)
            load_model_state(self.model, split_prefix(arrays, "model"), self.run_dir / SELECTED)
            which = f"Min Var selection: epoch {self.selected.epoch} (device spread {self.selected.spread:.2f})"
        else:
            which = f"last epoch ({self.epoch})"
        if not minvar and self.tested is not None and self.tested[0] == self.epoch:
            probs = self.tested[1]  # this model's, computed at the end of its epoch
        else:
            probs = self.predict("test")
        labels = self.data.labels("test")
        table = evaluate.device_metrics(probs, labels, self.data.devices("test"))
        per_class = evaluate.class_accuracy(probs, labels)
        matrix = evaluate.confusion_matrix(probs, labels)
        text = "\n".join([
            evaluate.format_device_table(table, f"Test split, {which}"), "",
            "per-class accuracy (%)", evaluate.format_class_table(per_class), "",
            f"model: {complexity(self.model).line()}"])
        if plots.available() and self.history:  # before device_table.csv, which marks the run finished
            plots.training_curves(self.history, self.run_dir / "curves.png")
            plots.confusion(matrix, self.run_dir / "confusion.png")
        atomic_write_texts({self.run_dir / "device_table.csv": evaluate.device_table_csv(table),
                            self.run_dir / "classes.csv": evaluate.class_csv(per_class, matrix),
                            self.run_dir / "report.txt": text + "\n"})
        return text, table


def checked_schedule(state, epoch, step, steps_per_epoch):
    """The checkpoint's schedule state, checked against its position: the schedule starts at 0
    in every run (fine-tunes too; warm-up is only a part of it) and counts every step taken, so
    the learning rate resumes where the run stopped."""
    count = state["step_count"] if isinstance(state, dict) else None
    steps = epoch * steps_per_epoch + step
    if type(count) is not int or count != steps:
        raise ValueError(f"schedule step_count {count!r:.40} is not the {steps} steps taken by epoch {epoch}, "
                         f"step {step} at {steps_per_epoch} steps per epoch")
    return state


def checked_running(values, step, steps_per_epoch, batch_size):
    """The checkpoint's running Tally: finite sums and whole counts, none negative. Mid-epoch it
    counts the clips of the steps taken (the epoch's means divide by them); at an epoch's start
    it may still hold the last epoch's, which the next step replaces."""
    t = checked_tally(Tally, values)
    clips = [step * batch_size] if step else range(steps_per_epoch * batch_size + 1)
    if (type(t.correct) is not int or type(t.seen) is not int or t.seen not in clips
            or not 0 <= t.correct <= t.seen or not all(math.isfinite(v) and v >= 0 for v in (t.loss_sum, t.seconds))):
        raise ValueError(f"running totals {values!r:.100} are not finite sums and whole counts, none negative, "
                         f"of {step} steps of {batch_size} clips")
    return t


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


def train(config, run_dir, resume=False, log=print, progress=True, data=None):
    """Train (or resume) a run; returns (report text, device table).

    The run folder is held exclusively while the run lasts: a second run naming it stops at once.
    """
    run_dir = Path(run_dir)
    if resume:
        config = load_run_config(run_dir)  # before the folder is held (and so created): it must exist
    else:
        config.validate()
    config.check_inputs()
    busy = (f"{run_dir} is in use by another tinyasc run; wait for it to finish, or pass another --out "
            "(two runs in one folder would overwrite each other's checkpoint and metrics)")
    with RunFolder(run_dir, KIND).hold(busy):
        if not resume and (run_dir / CHECKPOINT).exists():
            raise TinyAscError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        trainer = Trainer(config, run_dir, data=data, log=log, progress=progress)
        if resume:
            trainer.restore(run_dir / CHECKPOINT)
            log(f"resuming {run_dir} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
        if not trainer.fit():
            return None, None
        return trainer.report()
