"""A trained translator: its networks, its folder, and translating clips with it.

The folder written by `tinyasc translator train` holds translator.npz: both networks, both
optimizers and the normalizer statistics, with the settings and target devices as JSON inside.
"""
from pathlib import Path

import numpy as np

from tinyasc.autograd import Tensor, no_grad
from tinyasc.data.tau import DEVICES
from tinyasc.errors import TinyAscError
from tinyasc.run.checkpoint import CheckpointError, load_checkpoint, load_model_state, split_prefix
from tinyasc.run.folder import folder_kind
from tinyasc.translator.config import TranslatorConfig
from tinyasc.translator.data import Normalizer
from tinyasc.translator.model import PatchDiscriminator, UNetGenerator

CHECKPOINT = "translator.npz"
KIND = "tinyasc-translator"


def build_networks(config, num_targets):
    generator = UNetGenerator(num_targets, width=config.width, depth=config.depth, res_blocks=config.res_blocks,
                              subbands=config.subbands)
    discriminator = PatchDiscriminator(num_targets, width=config.disc_width, layers=config.disc_layers)
    return generator, discriminator


def translate(generator, normalizer, x, target, batch_size=16):
    """Raw log-mels N x F x T of device A -> their translations to target index `target`
    (an int or N ints)."""
    x = np.asarray(x, np.float32)
    target = np.broadcast_to(np.asarray(target, np.int64), (len(x),))
    out = np.empty_like(x)
    was_training = generator.training
    generator.eval()
    with no_grad():
        for start in range(0, len(x), batch_size):
            z = normalizer(x[start:start + batch_size])[:, None]
            y = generator(Tensor(z), target[start:start + batch_size]).data[:, 0]
            out[start:start + batch_size] = normalizer.invert(y)
    generator.train(was_training)
    return out


def load_translator(run_dir):
    """(config, generator in eval mode, normalizer, target names) of a trained translator folder."""
    path = Path(run_dir)
    if path.is_dir():
        kind = folder_kind(path)
        if kind is not None and kind[0] != "translator":
            raise CheckpointError(f"{path} is {kind[1]}, not a translator; pass a folder written by tinyasc "
                                  "translator train")
        if not (path / CHECKPOINT).is_file() and kind is not None:
            # a translator folder without its weights: git keeps a run's small outputs only
            raise CheckpointError(f"{path}: a translator folder without its {CHECKPOINT} (checkpoints are not kept "
                                  f"in git); train it again with tinyasc translator train --out {path}")
        path = path / CHECKPOINT
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{path}: not a translator checkpoint (kind {meta.get('kind')!r}); "
                              "pass a folder written by tinyasc translator train")
    try:  # a damaged file must give one line naming it, not a KeyError from deep inside
        config = TranslatorConfig.from_dict(meta["config"]).validate()
        targets = tuple(str(t) for t in meta["targets"])
        mean, std = np.asarray(arrays["norm/mean"]), np.asarray(arrays["norm/std"])
        epoch, step = meta["epoch"], meta["step_in_epoch"]
        if type(epoch) is not int or type(step) is not int or not 0 <= epoch <= config.epochs or step < 0:
            # not a bool, a string, or a float (1e400 reads as infinity)
            raise ValueError(f"epoch {epoch!r:.40} and step_in_epoch {step!r:.40} are not whole numbers within "
                             f"its {config.epochs} epochs")
    except (KeyError, TypeError, ValueError, AttributeError, TinyAscError) as exc:
        raise CheckpointError(f"{path}: translator checkpoint is incomplete or damaged ({exc!r}); "
                              "retrain it with tinyasc translator train") from None
    if not targets or len(set(targets)) != len(targets) or not set(targets) <= set(DEVICES):
        raise CheckpointError(f"{path}: translator checkpoint names the target devices {list(targets)[:10]}, not "
                              f"distinct devices of {', '.join(DEVICES)}; retrain it")
    generator, _ = build_networks(config, len(targets))
    load_model_state(generator, split_prefix(arrays, "generator"), path)
    bins = generator.eq.shape[1]
    if mean.shape != (bins,) or std.shape != (bins,):
        raise CheckpointError(f"{path}: normalizer statistics have shapes {mean.shape} and {std.shape}, the "
                              f"generator has {bins} mel bins; retrain it with tinyasc translator train")
    if mean.dtype.kind != "f" or std.dtype.kind != "f":
        problem = f"are stored as {mean.dtype} and {std.dtype}, not floats"
    elif not (np.isfinite(mean).all() and np.isfinite(std).all()):
        problem = "hold NaN or infinity"
    elif not (std > 0).all():
        problem = f"include a standard deviation of {std.min():g} (every bin's must be above 0)"
    else:
        problem = None
    if problem:  # translations would be NaN or infinite for every clip
        raise CheckpointError(f"{path}: normalizer statistics norm/mean and norm/std {problem}; the file is "
                              "damaged: retrain it with tinyasc translator train")
    generator.eval()
    return config, generator, Normalizer(mean, std), targets, meta
