"""Training the device translator: pix2pix's recipe (Isola et al. 2017) with LSGAN and L2.

Each step, on a batch of pairs (A clip, the same segment from device d):
  D: 0.5 * [(D(a, real_d, d) - 1)^2 + D(a, G(a, d), d)^2]            (LSGAN, Mao et al. 2017)
  G: adv_weight * (D(a, G(a, d), d) - 1)^2 + l2_weight * |G(a, d) - real_d|^2
with Adam (lr 2e-4, beta1 0.5) for both, the learning rate constant for the first half of
the epochs and decaying linearly towards zero over the second half, as pix2pix schedules it
(its last epoch runs at lr / (E/2 + 1)).

Determinism and resume follow the classifier: epoch e's order is default_rng([seed, e]),
step s's random time crops default_rng([seed, e, s]); the checkpoint (one atomic .npz with
JSON inside) holds both networks, both optimizers and the step, so a run resumed after any
step ends where an uninterrupted one would.
"""
import json
import math
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tinyasc import functional as F
from tinyasc import optim
from tinyasc import random as ta_random
from tinyasc.autograd import Tensor
from tinyasc.errors import TinyAscError
from tinyasc.fileio import progressbar
from tinyasc.run.checkpoint import (CheckpointError, check_finite_state, checked_history, checked_position,
                                    checked_tally, load_model_state, split_prefix)
from tinyasc.run.folder import RunFolder
from tinyasc.translator.config import load_translator_config
from tinyasc.translator.data import PairData
from tinyasc.translator.evaluate import evaluate_translator, translator_lsd
from tinyasc.translator.load import CHECKPOINT, KIND, build_networks
from tinyasc.translator.model import lsgan_loss


class Losses(NamedTuple):
    """One step's losses: the generator's L2 and adversarial terms, the discriminator's LSGAN loss."""
    l2: float
    g_adv: float
    d_loss: float


class Tally(NamedTuple):
    """The epoch so far (sums of Losses over `steps`); saved in the checkpoint for an exact resume."""
    l2: float = 0.0
    g_adv: float = 0.0
    d_loss: float = 0.0
    steps: int = 0
    seconds: float = 0.0


def lr_at(config, epoch):
    """pix2pix's schedule: constant, then linear decay to zero (per epoch)."""
    start = int(round(config.decay_start * config.epochs))
    if epoch < start:
        return config.lr
    return config.lr * (1.0 - (epoch - start + 1) / (config.epochs - start + 1))


class TranslatorTrainer:
    def __init__(self, config, run_dir, data=None, log=print, progress=True):
        self.config = config.validate()
        self.folder = RunFolder(run_dir, KIND, CHECKPOINT)
        self.run_dir = self.folder.path
        self.log, self.show_progress = log, progress
        self.data = data if data is not None else PairData.load(config, log=log, progress=progress)
        config.check_frames(min(config.crop_frames, self.data.features.shape[-1]))
        if len(self.data.train) < config.batch_size:
            raise TinyAscError(f"the training split has {len(self.data.train)} device pairs, fewer than --batch-size "
                               f"{config.batch_size}; lower --batch-size")
        ta_random.manual_seed(config.seed)
        self.targets = self.data.train.targets
        self.generator, self.discriminator = build_networks(config, len(self.targets))
        self.generator.eq.data[...] = self.data.mean_offsets()
        betas = (config.beta1, 0.999)
        self.opt_g = optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        self.steps_per_epoch = len(self.data.train) // config.batch_size
        self.epoch, self.step_in_epoch = 0, 0
        self.running = Tally()
        self.history = []

    # ---------------------------------------------------------- checkpoints
    def save(self):
        arrays = {f"generator/{k}": v for k, v in self.generator.state_dict().items()}
        arrays.update({f"discriminator/{k}": v for k, v in self.discriminator.state_dict().items()})
        arrays.update({f"opt_g/{k}": v for k, v in self.opt_g.state_dict()["state"].items()})
        arrays.update({f"opt_d/{k}": v for k, v in self.opt_d.state_dict()["state"].items()})
        arrays["norm/mean"], arrays["norm/std"] = self.data.normalizer.mean, self.data.normalizer.std
        meta = {"config": json.loads(self.config.to_json()), "targets": list(self.targets),
                "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "running": self.running,
                "history": self.history,
                # what it learned from: a classifier using it checks none of these is in its test split
                "train_segments": sorted(set(self.data.train.segments))}
        self.folder.save(arrays, meta)

    def restore(self, path):
        arrays, meta = self.folder.load(path)
        if tuple(meta.get("targets", ())) != self.targets:
            raise CheckpointError(f"{path}: translates to {meta.get('targets')}, this data pairs {list(self.targets)}")
        load_model_state(self.generator, split_prefix(arrays, "generator"), path)
        load_model_state(self.discriminator, split_prefix(arrays, "discriminator"), path)
        check_finite_state(arrays, path)  # both optimizers' moments too
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            groups = opt.state_dict()["param_groups"]
            try:
                opt.load_state_dict({"state": split_prefix(arrays, name), "param_groups": groups})
            except (ValueError, IndexError) as exc:
                raise CheckpointError(f"{path}: optimizer state does not fit the networks ({exc})") from None
        try:
            self.epoch, self.step_in_epoch = checked_position(meta, self.config.epochs, self.steps_per_epoch)
            self.running = t = checked_tally(Tally, meta["running"])
            if type(t.steps) is not int or not all(math.isfinite(v) and v >= 0 for v in t):
                raise ValueError(f"running totals {meta['running']!r:.100} are not finite sums and a whole "
                                 "number of steps, none negative")
            # mid-epoch the tally counts the steps taken (the epoch's means divide by it)
            if self.step_in_epoch and self.running.steps != self.step_in_epoch:
                raise ValueError(f"running totals count {self.running.steps} steps, the checkpoint is at step "
                                 f"{self.step_in_epoch}")
            self.history = checked_history(meta["history"], self.epoch)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: a number beyond float
            raise CheckpointError(f"{path}: checkpoint metadata is incomplete or malformed ({exc!r}); "
                                  "train the translator again into another --out") from None

    # ------------------------------------------------------------- training
    def train_step(self, src, tgt, device):
        """One discriminator and one generator update; returns its Losses."""
        config = self.config
        source, real = Tensor(src), Tensor(tgt)
        fake = self.generator(source, device)
        d_loss = None
        if config.adv_weight > 0:
            d_real = self.discriminator(source, real, device)
            d_fake = self.discriminator(source, fake.detach(), device)
            d_loss = 0.5 * (lsgan_loss(d_real, True) + lsgan_loss(d_fake, False))
            self.opt_d.zero_grad()
            d_loss.backward()
            self.opt_d.step()
        l2 = F.mse_loss(fake, real)
        g_loss = config.l2_weight * l2
        adv = None
        if config.adv_weight > 0:
            adv = lsgan_loss(self.discriminator(source, fake, device), True)
            g_loss = g_loss + config.adv_weight * adv
        self.opt_g.zero_grad()
        g_loss.backward()
        self.opt_g.step()
        return Losses(float(l2.data), float(adv.data) if adv is not None else 0.0,
                      float(d_loss.data) if d_loss is not None else 0.0)

    def fit(self, stop=None):
        """Train to the configured epochs; False if `stop()` asked to stop (after saving)."""
        # diverging losses are reported in one line below; NumPy's overflow warnings would repeat it
        with np.errstate(over="ignore", invalid="ignore"):
            return self._fit(stop)

    def _fit(self, stop):
        self.folder.write_config(self.config)
        config, pairs = self.config, self.data.train
        while self.epoch < config.epochs:
            lr = lr_at(config, self.epoch)
            for opt in (self.opt_g, self.opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            order = np.random.default_rng([config.seed, self.epoch]).permutation(len(pairs))
            if self.step_in_epoch == 0:
                self.running = Tally()
            start = time.perf_counter() - self.running.seconds
            desc = f"translator epoch {self.epoch + 1}/{config.epochs}"
            with progressbar(self.steps_per_epoch, desc, quiet=not self.show_progress) as bar:
                bar.update(self.step_in_epoch)
                for step in range(self.step_in_epoch, self.steps_per_epoch):
                    index = order[step * config.batch_size:(step + 1) * config.batch_size]
                    rng = np.random.default_rng([config.seed, self.epoch, step])
                    src, tgt = self.data.batch(pairs, index, config.crop_frames, rng)
                    losses = self.train_step(src, tgt, pairs.device[index])
                    if not all(math.isfinite(v) for v in losses):
                        raise TinyAscError(f"translator losses became {losses} at epoch {self.epoch + 1}, "
                                           f"step {step + 1}; try a lower --lr")
                    t = self.running
                    t = self.running = Tally(t.l2 + losses.l2, t.g_adv + losses.g_adv, t.d_loss + losses.d_loss,
                                             t.steps + 1, time.perf_counter() - start)
                    self.step_in_epoch = step + 1
                    bar.update(1, f"l2 {t.l2 / t.steps:.4g}, g_adv {t.g_adv / t.steps:.4g}, d {t.d_loss / t.steps:.4g}")
                    if stop is not None and stop():
                        self.save()
                        return False
            self._end_epoch(lr)
        return True

    def _end_epoch(self, lr):
        l2, adv, d, n, seconds = self.running  # a Tally
        test = self.data.test
        lsd = float(translator_lsd(self.generator, self.data.normalizer, self.data.features, test,
                                   np.arange(len(test))).mean())
        row = {"epoch": self.epoch + 1, "l2": l2 / n, "g_adv": adv / n, "d_loss": d / n, "lr": lr,
               "test_lsd_db": lsd, "seconds": seconds}
        self.history.append(row)
        self.epoch += 1
        self.step_in_epoch = 0
        self.save()
        self.folder.write_metrics(self.history)
        self.log(f"translator epoch {self.epoch}/{self.config.epochs}: L2 {row['l2']:.4f}, G adv {row['g_adv']:.4f}, "
                 f"D {row['d_loss']:.4f}, test LSD {lsd:.2f} dB, {seconds:.0f} s")


def train_translator(config, run_dir, resume=False, log=print, progress=True, data=None, stop=None):
    """Train (or resume) a translator run folder; returns the evaluation text, or None if stopped."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise TinyAscError(f"{run_dir} is a file, not a folder; pass another --out")
    if resume:
        load_translator_config(run_dir)  # before the folder is held (and so created): it must exist
    else:
        config.validate()  # before the folder is made
    busy = f"{run_dir} is in use by another tinyasc translator run; wait for it to finish, or pass another --out"
    with RunFolder(run_dir, KIND).hold(busy):
        return _train_translator(config, run_dir, resume, log, progress, data, stop)


def _train_translator(config, run_dir, resume, log, progress, data, stop):
    if resume:
        config = load_translator_config(run_dir)
    elif (run_dir / CHECKPOINT).is_file():
        raise TinyAscError(f"{run_dir} already holds a translator ({CHECKPOINT}); pass --resume to continue it, "
                           "or another --out")
    trainer = TranslatorTrainer(config, run_dir, data=data, log=log, progress=progress)
    if resume:
        trainer.restore(run_dir / CHECKPOINT)
        log(f"resuming {run_dir} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
    if not trainer.fit(stop=stop):
        log(f"interrupted at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}; checkpoint saved. "
            f"Resume with: tinyasc translator train --resume --out {run_dir}")
        return None
    return evaluate_translator(run_dir, trainer.data, log=log)
