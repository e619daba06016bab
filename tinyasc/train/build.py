"""A classifier from its settings, and a trained one from its run folder.

A run folder written by `tinyasc train` holds config.json (the TrainConfig), checkpoint.npz
(the last epoch) and, with --select minvar, selected.npz (the Min Var epoch); a file written
by `tinyasc compress` holds a compressed model with its config inside.
"""
from pathlib import Path

from tinyasc.compress import load_compressed
from tinyasc.errors import TinyAscError
from tinyasc.models import BCResNet, BCResNetMod, CPResNet
from tinyasc.run.checkpoint import CheckpointError, check_same_model, load_checkpoint, load_model_state, split_prefix
from tinyasc.train.config import TrainConfig, load_run_config

CHECKPOINT = "checkpoint.npz"
SELECTED = "selected.npz"


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
        model, meta = load_compressed(run, return_meta=True)
        if not isinstance(meta.get("config"), dict):
            raise TinyAscError(f"{run}: this compressed model carries no training config; "
                               "write it with tinyasc compress")
        return TrainConfig.from_dict(meta["config"]).validate(), model
    config = load_run_config(run)
    path = run / SELECTED if config.select == "minvar" else run / CHECKPOINT
    if config.select == "minvar" and not path.is_file() and (run / CHECKPOINT).is_file():
        raise CheckpointError(f"{path}: missing, and this run selects its model by Min Var (--select minvar); "
                              f"its last epoch is not the selected model. Restore {SELECTED}, or resume the run "
                              f"to write it again (tinyasc train --resume {run})")
    arrays, meta = load_checkpoint(path)
    model = build_model(config)
    load_model_state(model, split_prefix(arrays, "model"), path)
    check_same_model(meta.get("config"), config, path)  # when the shapes agree, the settings may not
    model.eval()
    return config, model
