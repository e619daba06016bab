"""The device translator's settings (paper 2.3; training recipe of pix2pix, section 3.1).

Saved as config.json in the translator folder and inside its checkpoint. Each field carries
its help text for the command line: `tinyasc translator train` builds its options from them.
"""
import dataclasses
from dataclasses import dataclass

from tinyasc.checks import MAX_FRAMES, check_finite, check_int, check_seed
from tinyasc.errors import TinyAscError
from tinyasc.run.config import PRESET_NAMES, JsonConfig, read_json_object, setting
from tinyasc.translator.model import check_bins


@dataclass
class TranslatorConfig(JsonConfig):
    data: str = setting(None, "Dataset root. Default: the embedded synthetic dataset.", path=True)
    preset: str = setting("default", "Size of the synthetic dataset when --data is not given.", choices=PRESET_NAMES)
    targets: str = setting("", "Comma-separated target devices. Default: every device paired with A in training.")
    width: int = setting(8, "Generator channels at full resolution.")
    depth: int = setting(3, "U-Net down-sampling steps (frequency and time halve at each).")
    res_blocks: int = setting(6, "Residual blocks in the middle (the paper: six).")
    subbands: int = setting(16, "SubSpectralNorm sub-bands (the paper: 16).")
    disc_width: int = setting(16, "Discriminator channels of its first layer.")
    disc_layers: int = setting(3, "Strided PatchGAN layers (3: 70x70 patches, as pix2pix).")
    epochs: int = setting(12, "Training epochs.")
    batch_size: int = setting(8, "Pairs per batch.")
    lr: float = setting(2e-4, "Adam learning rate of both networks (pix2pix: 2e-4).")
    beta1: float = setting(0.5, "Adam beta1 (pix2pix: 0.5).")
    decay_start: float = setting(0.5, "Share of the epochs after which the learning rate decays linearly "
                                      "(towards 0, which the epoch after the last would reach).")
    l2_weight: float = setting(100.0, "Weight of the L2 reconstruction loss (pix2pix weighs its L1 by 100).")
    adv_weight: float = setting(1.0, "Weight of the LSGAN loss (0: a plain L2-trained U-Net).")
    crop_frames: int = setting(128, "Random time crops of this many frames (longer clips only).")
    seed: int = setting(0, "Seed of the initialisation, the pair order and the crops.")

    def validate(self):
        for f in dataclasses.fields(self):  # config.json can hold anything: types first
            value = getattr(self, f.name)
            if f.name == "data" and value is None:
                continue
            kind = str if f.name == "data" else type(f.default)
            if kind is float:
                check_finite(value, f"--{f.name.replace('_', '-')}")
            elif isinstance(value, bool) or not isinstance(value, kind):
                raise TinyAscError(f"config value {f.name}={value!r} should be a {kind.__name__}")
        if self.data is not None and not self.data.strip():  # "" would mean the current folder to some
            raise TinyAscError("--data is empty; pass a dataset folder, or leave --data out for the default")
        check_seed(self.seed)
        if self.preset not in PRESET_NAMES:  # a config.json can name any
            raise TinyAscError(f"--preset {self.preset!r} is not one of {', '.join(PRESET_NAMES)}")
        # Limits: four times the defaults of the widths (the paper's networks are far smaller),
        # and 2^8 = 256 mel bins for the depth; beyond them the networks need gigabytes.
        check_int(self.width, "--width", 1, 64)
        check_int(self.disc_width, "--disc-width", 1, 128)
        check_int(self.depth, "--depth", 0, 8, "each step halves the 256 mel bins")
        check_int(self.res_blocks, "--res-blocks", 0, 64)
        check_int(self.disc_layers, "--disc-layers", 1, 8)
        check_int(self.crop_frames, "--crop-frames", 1, MAX_FRAMES)
        checks = [(self.width >= 1 and self.disc_width >= 1, "--width and --disc-width must be >= 1"),
                  (self.subbands >= 1, f"--subbands must be >= 1, got {self.subbands}"),
                  (self.depth >= 0 and self.res_blocks >= 0, "--depth and --res-blocks must be >= 0"),
                  (self.disc_layers >= 1, f"--disc-layers must be >= 1, got {self.disc_layers}"),
                  (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
                  (self.batch_size >= 2, f"--batch-size must be >= 2 (batch norm needs two), got {self.batch_size}"),
                  (self.lr > 0, f"--lr must be positive, got {self.lr}"),
                  (0 <= self.beta1 < 1, f"--beta1 must be in [0, 1), got {self.beta1}"),
                  (0 <= self.decay_start <= 1, f"--decay-start must be in [0, 1], got {self.decay_start}"),
                  (self.l2_weight >= 0 and self.adv_weight >= 0, "loss weights must be >= 0"),
                  (self.l2_weight + self.adv_weight > 0, "at least one loss weight must be positive"),
                  (self.crop_frames >= 2 ** self.depth,
                   f"--crop-frames must be at least 2^depth = {2 ** self.depth}, got {self.crop_frames}")]
        for ok, message in checks:
            if not ok:
                raise TinyAscError(message)
        try:
            check_bins(256, self.depth, self.subbands)
        except ValueError as exc:
            raise TinyAscError(str(exc)) from None
        self.check_frames(self.crop_frames)
        return self

    def check_frames(self, frames):
        """The discriminator must give at least one score over `frames` frames."""
        n = frames
        for _ in range(self.disc_layers):
            n //= 2          # 4x4 conv, stride 2, padding 1
        if n - 2 < 1:        # then two 4x4 convs at stride 1, padding 1
            raise TinyAscError(f"{frames} frames are too few for --disc-layers {self.disc_layers}: the "
                               "discriminator's patches would be empty; lower --disc-layers")
        targets = self.target_list or ()
        if len(set(targets)) != len(targets):
            raise TinyAscError(f"--targets names a device twice: {self.targets!r}")

    @property
    def target_list(self):
        names = tuple(d.strip().lower() for d in self.targets.split(",") if d.strip())
        return names or None


def load_translator_config(run_dir):
    """The TranslatorConfig saved in a translator folder, or a one-line error naming what is wrong."""
    from pathlib import Path

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise TinyAscError(f"{run_dir}: no config.json here; pass a folder written by tinyasc translator train")
    fix = "restore it or train into another --out"
    return TranslatorConfig.from_saved(read_json_object(path, "translator settings", fix), path, fix)
