"""Training BC-ResNet-Mod with the paper's recipe (section 3.1), resumable to the bit.

Every random choice of step s of epoch e comes from np.random.default_rng([seed, e, s])
(augmentation) or from the epoch's shuffle default_rng([seed, e]); dropout draws from
tinyasc.random, whose state is checkpointed. So a run stopped after any step and
resumed reproduces the uninterrupted run exactly.
"""
import csv
import io
import json
import math
import signal
import time
from pathlib import Path

import numpy as np

from tinyasc import compress
from tinyasc import functional as F
from tinyasc import optim
from tinyasc import random as ta_random
from tinyasc.autograd import Tensor
from tinyasc.compress.complexity import complexity
from tinyasc.data import augment
from tinyasc.errors import TinyAscError
from tinyasc.models import BCResNet, BCResNetMod, CPResNet
from tinyasc.train import evaluate, plots
from tinyasc.checks import check_frames
from tinyasc.fileio import exclusive_folder, progressbar
from tinyasc.train.checkpoint import (CheckpointError, NonFiniteWeights, atomic_write_text, atomic_write_texts,
                                      check_finite_state, check_same_model, load_checkpoint, load_model_state,
                                      save_checkpoint, split_prefix)
from tinyasc.train.config import load_run_config
from tinyasc.train.data import TrainingData

CHECKPOINT = "checkpoint.npz"
SELECTED = "selected.npz"


class TrainingDiverged(TinyAscError):
    """The loss became NaN or infinite."""


def build_model(config):
    if config.arch == "bcresnet":
        return BCResNet(tau=config.width, num_classes=10, subbands=config.subbands, dropout=config.dropout,
                        norm=config.norm, lam=config.lam)
    if config.arch == "cpresnet":
        return CPResNet(c=config.width, rho=config.rho, num_classes=10, norm=config.norm, lam=config.lam)
    return BCResNetMod(c=config.width, num_classes=10, norm=config.norm, lam=config.lam,
                       subbands=config.subbands, dropout=config.dropout)


PAPER_FRAMES = 334  # the paper's 10 s clips


def augment_batch(x, y, config, rng, num_classes=10):
    """Time roll, SpecAugment, then Mixup (which turns labels into probabilities).

    The time roll is the paper's +-1.5 s whatever the clip length (it wraps around, so it
    never hides anything). Time-mask widths are the paper's for 10 s clips (334 frames);
    shorter clips get them scaled by T / 334, so a mask hides the same share of a clip.
    """
    scale = min(1.0, x.shape[-1] / PAPER_FRAMES)
    if config.roll_frames:
        x = augment.time_roll(x, rng, config.roll_frames)
    if config.specaugment:
        x = augment.spec_augment(x, rng, freq_masks=config.freq_masks, freq_width=config.freq_width,
                                 time_masks=config.time_masks,
                                 time_width=max(1, int(round(config.time_width * scale))))
    if config.mixup_alpha > 0:
        x, y = augment.mixup(x, y, rng, alpha=config.mixup_alpha, num_classes=num_classes)
    return x, y


def train_step(model, optimizer, x, y, loss_fn=None):
    """Forward, loss, backward, optimizer step; returns (loss, logits array).

    loss_fn(logits, y, x) defaults to cross-entropy; distillation passes Distiller.loss.
    """
    logits = model(Tensor(x))
    loss = F.cross_entropy(logits, y) if loss_fn is None else loss_fn(logits, y, x)
    value = float(loss.data)
    if not math.isfinite(value):
        return value, logits.data
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return value, logits.data


class _StopFlag:
    """SIGINT sets a flag checked between steps, so a checkpoint is never taken mid-update.

    A second Ctrl-C interrupts at once.
    """

    def __init__(self):
        self.stop = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class Trainer:
    def __init__(self, config, run_dir, data=None, log=print, progress=True):
        self.config = config.validate()
        self.run_dir = Path(run_dir)
        self.log, self.show_progress = log, progress
        self.data = data if data is not None else TrainingData.load(config, log=log, progress=progress)
        root = getattr(getattr(self.data, "dataset", None), "root", "the dataset")
        check_frames(self.data.features.shape[-1], config.arch, f"the clips of {root}")
        if config.translator:
            self.data = self.data.with_translations(config.translator, log=log, progress=progress)
        # Models of other runs are built before seeding: building one draws from tinyasc.random.
        teachers = [_load_model(run) for run in config.teacher.split(",") if run.strip()]
        start = _load_model(config.init_from) if config.init_from else None
        ta_random.manual_seed(config.seed)
        self.model = build_model(config)
        if config.norm == "global":
            self.model.input_norm.set_statistics(*self.data.frequency_statistics())
        if start is not None:
            load_model_state(self.model, start.state_dict(), config.init_from)
        self.optimizer = optim.SGD(self.model.parameters(), lr=0.0, momentum=config.momentum,
                                   weight_decay=config.weight_decay)
        # Compression (paper 2.4): prune once, keep the pruned weights at zero in every step
        # (the wrapper masks gradients and momentum), and run the convs fake-quantized (QAT).
        self.masks = self.qat = self.distiller = None
        if config.prune > 0:
            self.masks = compress.prune(self.model, config.prune)
            self.optimizer = compress.MaskedOptimizer(self.optimizer, self.model, self.masks)
        if config.bits <= 8:
            self.qat = compress.QuantizationAware(self.model, config.bits, config.per_channel, self.masks).attach()
        if teachers:
            self.distiller = compress.Distiller(teachers, config.kd_alpha, config.kd_temperature)
        train_clips = len(self.data.rows("train"))
        if train_clips < config.batch_size:
            if config.val_fraction > 0:  # the held-out locations, not the batch size, are the likely cause
                raise TinyAscError(f"holding out --val-fraction {config.val_fraction:g} of the training locations "
                                   f"for validation leaves {train_clips} training clips, fewer than --batch-size "
                                   f"{config.batch_size}; lower --val-fraction (Min Var's default is 0.1)")
            raise TinyAscError(f"the training split has {train_clips} clips, fewer than --batch-size "
                               f"{config.batch_size}: no full batch to train on; lower --batch-size")
        self.steps_per_epoch = self.data.steps_per_epoch(config.batch_size)
        self.schedule = optim.WarmupCosine(self.optimizer, config.lr,
                                           int(round(config.warmup * self.steps_per_epoch)),
                                           config.epochs * self.steps_per_epoch)
        self.epoch, self.step_in_epoch = 0, 0
        self.running = [0.0, 0, 0, 0.0]  # this epoch so far: loss sum, correct, seen, seconds
        self.history = []
        self.selected = None  # (epoch, spread) of the Min Var choice
        self.saved = None     # (epoch, step) of the last checkpoint written or restored: the last good one

    # ---------------------------------------------------------- checkpoints
    def state_arrays(self):
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        optim_state = self.optimizer.state_dict()
        arrays.update({f"optim/{k}": v for k, v in optim_state["state"].items()})
        if self.masks is not None:
            arrays.update({f"mask/{k}": v for k, v in compress.masks_state(self.masks).items()})
        return arrays

    def save(self, name=CHECKPOINT):
        meta = {"kind": "tinyasc-classifier", "config": json.loads(self.config.to_json()),
                "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "running": self.running,
                "schedule": self.schedule.state_dict(), "random": _jsonable(ta_random.get_state()),
                "history": self.history, "selected": self.selected}
        digest = getattr(self.data, "translator_digest", None)
        if digest is not None:
            meta["translator_digest"] = digest
        try:
            save_checkpoint(self.run_dir / name, self.state_arrays(), meta)
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
        arrays, meta = load_checkpoint(path)
        if meta.get("kind") != "tinyasc-classifier":
            raise CheckpointError(f"{path}: not a classifier checkpoint (kind {meta.get('kind')!r})")
        saved_digest, digest = meta.get("translator_digest"), getattr(self.data, "translator_digest", None)
        if saved_digest is not None and saved_digest != digest:
            raise CheckpointError(f"{path}: the translator {self.config.translator} is not the one this run started "
                                  "with (retrained or replaced since), so resuming would not reproduce the run; "
                                  "start a new run, or train translators into new folders")
        load_model_state(self.model, split_prefix(arrays, "model"), path)
        check_same_model(meta.get("config"), self.config, path)  # when the shapes agree, the settings may not
        check_finite_state(arrays, path)  # the optimizer's momentum too
        if self.masks is not None:
            saved = compress.masks_from_state(split_prefix(arrays, "mask"))
            if set(saved) != set(self.masks):
                raise CheckpointError(f"{path}: the pruning masks in this checkpoint do not fit the run")
            for name, mask in saved.items():
                self.masks[name][...] = mask  # in place: MaskedOptimizer and QAT hold these arrays
        groups = self.optimizer.state_dict()["param_groups"]
        try:
            self.optimizer.load_state_dict({"state": split_prefix(arrays, "optim"), "param_groups": groups})
        except (ValueError, IndexError) as exc:
            raise CheckpointError(f"{path}: optimizer state does not fit the model ({exc})") from None
        try:
            self.schedule.load_state_dict(meta["schedule"])
            ta_random.set_state(meta["random"])
            self.epoch, self.step_in_epoch = int(meta["epoch"]), int(meta["step_in_epoch"])
            self.running = list(meta.get("running", [0.0, 0, 0, 0.0]))
            self.history, self.selected = list(meta["history"]), meta.get("selected")
            if not (0 <= self.epoch <= self.config.epochs and 0 <= self.step_in_epoch <= self.steps_per_epoch):
                raise ValueError(f"epoch {self.epoch}, step {self.step_in_epoch} is outside this run's "
                                 f"{self.config.epochs} epochs of {self.steps_per_epoch} steps")
            self.saved = (self.epoch, self.step_in_epoch)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: checkpoint metadata is incomplete or malformed ({exc!r}); "
                                  "resume from another run") from None

    # ------------------------------------------------------------- training
    def prepare_run_dir(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.json", self.config.to_json() + "\n")

    def fit(self):
        config = self.config
        self.prepare_run_dir()
        with _StopFlag() as flag:
            while self.epoch < config.epochs:
                if not self._train_epoch(flag):
                    self.save()
                    self.log(f"interrupted at epoch {self.epoch + 1}, step {self.step_in_epoch}; checkpoint saved. "
                             f"Resume with: tinyasc train --resume {self.run_dir}")
                    return False
                self._end_epoch()
        return True

    def _train_epoch(self, flag):
        config, data = self.config, self.data
        epoch = self.epoch
        if self.step_in_epoch == 0:
            self.running = [0.0, 0, 0, 0.0]
        total_loss, total_correct, total_seen, before = self.running
        start = time.perf_counter() - before
        desc = f"epoch {epoch + 1}/{config.epochs}"
        with progressbar(self.steps_per_epoch, desc, quiet=not self.show_progress) as bar:
            bar.update(self.step_in_epoch)
            batches = data.train_batches(config.batch_size, config.seed, epoch, self.step_in_epoch,
                                         transform=lambda x, y, rng: augment_batch(x, y, config, rng))
            for step, (x, target) in batches:
                loss_fn = None if self.distiller is None else self.distiller.loss
                loss, logits = train_step(self.model, self.optimizer, x, target, loss_fn)
                if not math.isfinite(loss):
                    raise TrainingDiverged(f"loss became {loss} at epoch {epoch + 1}, step {step + 1}; "
                                           f"{self.kept()}. Try a lower --lr")
                self.schedule.step()
                self.step_in_epoch = step + 1
                labels = target.argmax(axis=1) if target.ndim == 2 else target  # Mixup: the larger share
                total_loss += loss * len(labels)
                total_correct += int(np.sum(logits.argmax(axis=1) == labels))
                total_seen += len(labels)
                elapsed = time.perf_counter() - start
                self.running = [total_loss, total_correct, total_seen, elapsed]
                bar.update(1, f"loss {total_loss / total_seen:.4g}, acc {100.0 * total_correct / total_seen:.1f}%, "
                              f"{total_seen / max(elapsed, 1e-9):.0f} clips/s")
                if flag.stop:
                    return False
        self._epoch_train_stats = (total_loss / max(total_seen, 1), 100.0 * total_correct / max(total_seen, 1),
                                   total_seen / max(time.perf_counter() - start, 1e-9))
        return True

    def _end_epoch(self):
        config = self.config
        loss, acc, speed = self._epoch_train_stats
        row = {"epoch": self.epoch + 1, "loss": loss, "train_acc": acc, "lr": self.optimizer.param_groups[0]["lr"],
               "clips_per_s": speed}
        # The test split is evaluated every eval_every epochs and after the last one: it is only
        # watched, never used to choose anything, so evaluating it every epoch would buy nothing
        # but time (with 1,800 test clips, a third of an epoch's).
        tested = (self.epoch + 1) % config.eval_every == 0 or self.epoch + 1 == config.epochs
        if tested:
            test = self.evaluate("test")
            row.update({f"test_{k}": v["accuracy"] for k, v in test.items()})
            row["test_log_loss"] = test["overall"]["log_loss"]
        if self.data.has_validation:  # Min Var chooses an epoch from these: every epoch
            val = self.evaluate("val")
            row.update({f"val_{k}": v["accuracy"] for k, v in val.items()})
            row["val_spread"] = evaluate.device_spread(val)
        self.history.append(row)
        self.epoch += 1
        self.step_in_epoch = 0
        if config.select == "minvar" and (self.selected is None or row["val_spread"] <= self.selected[1]):
            self.selected = (self.epoch, row["val_spread"])
            self.save(SELECTED)
        self.save()
        atomic_write_text(self.run_dir / "metrics.csv", _history_csv(self.history))
        line = f"epoch {self.epoch}/{config.epochs}: loss {loss:.4f}, train acc {acc:.1f}%"
        if tested:
            line += f", test acc {test['overall']['accuracy']:.1f}% ({test['overall']['count']} clips)"
        self.log(f"{line}, {speed:.0f} clips/s")

    def evaluate(self, split):
        probs = evaluate.predict_proba(self.model, self.data.features, self.data.rows(split))
        return evaluate.device_metrics(probs, self.data.labels(split), self.data.devices(split))

    # --------------------------------------------------------------- report
    def report(self):
        """Evaluate the selected model on the test split; write the tables; return the text."""
        if self.config.select == "minvar" and self.selected is not None:
            arrays, meta = load_checkpoint(self.run_dir / SELECTED)
            check_same_model(meta.get("config"), self.config, self.run_dir / SELECTED)
            load_model_state(self.model, split_prefix(arrays, "model"), self.run_dir / SELECTED)
            which = f"Min Var selection: epoch {self.selected[0]} (device spread {self.selected[1]:.2f})"
        else:
            which = f"last epoch ({self.epoch})"
        rows = self.data.rows("test")
        probs = evaluate.predict_proba(self.model, self.data.features, rows)
        labels = self.data.labels("test")
        table = evaluate.device_metrics(probs, labels, self.data.devices("test"))
        per_class = evaluate.class_accuracy(probs, labels)
        matrix = evaluate.confusion_matrix(probs, labels)
        text = "\n".join([
            evaluate.format_device_table(table, f"Test split, {which}"), "",
            "per-class accuracy (%)", evaluate.format_class_table(per_class), "",
            f"model: {complexity(self.model).line()}"])
        atomic_write_texts({self.run_dir / "device_table.csv": evaluate.device_table_csv(table),
                            self.run_dir / "classes.csv": evaluate.class_csv(per_class, matrix),
                            self.run_dir / "report.txt": text + "\n"})
        if plots.available() and self.history:
            plots.training_curves(self.history, self.run_dir / "curves.png")
            plots.confusion(matrix, self.run_dir / "confusion.png")
        return text, table


def _load_model(run):
    """The trained model of another run folder (or compressed .npz), for a teacher or a start."""
    from tinyasc.train.inference import load_run  # inference imports this module

    return load_run(run.strip())[1]


def _history_csv(history):
    keys = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


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
    busy = (f"{run_dir} is in use by another tinyasc run; wait for it to finish, or pass another --out "
            "(two runs in one folder would overwrite each other's checkpoint and metrics)")
    with exclusive_folder(run_dir, busy):
        if not resume and (run_dir / CHECKPOINT).exists():
            raise TinyAscError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        trainer = Trainer(config, run_dir, data=data, log=log, progress=progress)
        if resume:
            trainer.restore(run_dir / CHECKPOINT)
            log(f"resuming {run_dir} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
        if not trainer.fit():
            return None, None
        return trainer.report()
