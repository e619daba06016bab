"""The training configuration: the paper's recipe (section 3.1) as defaults, every part switchable.

Saved as config.json in the run folder, so a run can be resumed or re-read exactly.
"""
import dataclasses
import json
from dataclasses import dataclass

from tinyasc.checks import MAX_FRAMES, MAX_WIDTH, NUM_BINS, SUBBANDS, check_finite, check_int, check_seed
from tinyasc.errors import TinyAscError
from tinyasc.models.bcresnet import INPUT_NORMS
from tinyasc.models.bcresnet_mod import NORMS

ARCHS = ("bcresnet-mod", "bcresnet", "cpresnet")
DEFAULT_WIDTH = {"bcresnet-mod": 10, "bcresnet": 8, "cpresnet": 64}
DEFAULT_NORM = {"bcresnet-mod": "resnorm", "bcresnet": "none", "cpresnet": "none"}

FRAME_SECONDS = 0.03  # hop 480 samples at 16 kHz


def read_json_object(path, what, fix):
    """The JSON object in `path` (a config.json), or a one-line error saying what is wrong and `fix`."""
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TinyAscError(f"{path}: not valid JSON ({exc}); {fix}") from None
    if not isinstance(values, dict):
        raise TinyAscError(f"{path}: expected a JSON object of {what}; {fix}")
    return values


class JsonConfig:
    """to_json / from_dict for a settings dataclass saved as config.json."""

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise TinyAscError(f"config has unknown keys {sorted(unknown)}; was it written by another version?")
        return cls(**values)


@dataclass
class TrainConfig(JsonConfig):
    data: str = None            # dataset root; None = the embedded synthetic default
    preset: str = "default"     # synthetic preset used when data is None
    width: int = 10             # c of Table 1 (10 = BC-ResNet-Mod-1, 80 = BC-ResNet-Mod-8); tau of BC-ResNet
    arch: str = "bcresnet-mod"  # bcresnet-mod | bcresnet (BC-ResNet-tau) | cpresnet (CP-ResNet, width = c)
    rho: int = 5                # cpresnet only: the first rho switchable convs are 3x3
    norm: str = "resnorm"
    lam: float = 0.1
    subbands: int = 4
    dropout: float = 0.1
    epochs: int = 100           # the paper's recipe: 100 epochs, 5 of them warm-up
    batch_size: int = 64
    lr: float = 0.06
    warmup_epochs: float = None  # None: 5% of the epochs (the paper: 5 of 100)
    momentum: float = 0.9
    weight_decay: float = 1e-3
    roll_seconds: float = 1.5   # 0 switches the time roll off
    mixup_alpha: float = 0.3    # 0 switches Mixup off
    specaugment: bool = True
    freq_masks: int = 2
    freq_width: int = 40
    time_masks: int = 2
    time_width: int = 80
    select: str = "last"        # "last" or "minvar"
    val_fraction: float = 0.0   # training locations held out for validation (minvar needs > 0)
    seed: int = 0
    eval_every: int = 5         # test-split evaluation every this many epochs (and always after the last)
    # Knowledge distillation (paper 2.4, 3.3): teacher run folders, comma-separated ("" = none).
    teacher: str = ""
    kd_alpha: float = 0.5       # weight of the cross-entropy; 1 - kd_alpha weighs T^2 * KL
    kd_temperature: float = 3.0
    # Compression fine-tuning (paper 2.4): start from a run, prune, hold the masks, QAT.
    init_from: str = ""         # run folder whose weights start this run ("" = fresh initialisation)
    prune: float = 0.0          # share of conv weights pruned before training (Table 3: 0.89, 0.84)
    bits: int = 32              # conv weights: 2..8 = QAT with integer codes, 16 = half, 32 = float
    per_channel: bool = False   # one quantization scale per output channel instead of per conv
    # Device translator (paper 2.3, 3.2): a folder written by `tinyasc translator train`; its
    # translations of the device-A training clips join the training set ("" = none).
    translator: str = ""

    def validate(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("data", "warmup_epochs"):
                continue
            kind = {"data": str, "warmup_epochs": float}.get(f.name, type(f.default))
            allowed = (int, float) if kind is float else (kind,)
            if isinstance(value, bool) and kind is not bool or not isinstance(value, allowed):
                raise TinyAscError(f"config value {f.name}={value!r} should be a {kind.__name__}")
            if kind is float:  # NaN slips through every comparison below, infinity through most
                check_finite(value, f"--{f.name.replace('_', '-')}")
        checks = [(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}"),
                  (self.lr > 0, f"--lr must be positive, got {self.lr}"),
                  (self.lam >= 0, f"--lam must be >= 0, got {self.lam}"),
                  (self.mixup_alpha >= 0, f"mixup alpha must be >= 0, got {self.mixup_alpha}"),
                  (self.roll_seconds >= 0, f"roll seconds must be >= 0, got {self.roll_seconds}"),
                  (self.warmup_epochs is None or 0 <= self.warmup_epochs <= self.epochs,
                   f"--warmup-epochs must be between 0 and --epochs, got {self.warmup_epochs}"),
                  (self.eval_every >= 1, f"--eval-every must be at least 1, got {self.eval_every}"),
                  (self.width >= 1, f"--model-width must be at least 1, got {self.width}"),
                  (0 <= self.kd_alpha <= 1, f"--kd-alpha must be in [0, 1], got {self.kd_alpha}"),
                  (self.kd_temperature > 0, f"--kd-temperature must be positive, got {self.kd_temperature}"),
                  (0 <= self.prune < 1, f"--prune must be in [0, 1), got {self.prune}"),
                  (2 <= self.bits <= 8 or self.bits in (16, 32), f"--bits must be 2..8, 16 or 32, got {self.bits}")]
        for ok, message in checks:
            if not ok:
                raise TinyAscError(message)
        if self.norm not in NORMS:
            raise TinyAscError(f"--norm {self.norm!r} is not one of {', '.join(NORMS)}")
        if self.arch not in ARCHS:
            raise TinyAscError(f"--arch {self.arch!r} is not one of {', '.join(ARCHS)}")
        if self.arch != "bcresnet-mod" and self.norm not in INPUT_NORMS:
            raise TinyAscError(f"--norm {self.norm} is BC-ResNet-Mod's; --arch {self.arch} takes "
                               f"{', '.join(INPUT_NORMS)}")
        if not 0 <= self.rho <= 22:
            raise TinyAscError(f"--rho must be in 0..22, got {self.rho}")
        if self.epochs < 1 or self.batch_size < 2:
            raise TinyAscError(f"--epochs must be >= 1 and --batch-size >= 2, got {self.epochs} and {self.batch_size}")
        if self.select not in ("last", "minvar"):
            raise TinyAscError(f"--select must be 'last' or 'minvar', got {self.select!r}")
        if self.select == "minvar" and self.val_fraction <= 0:
            self.val_fraction = 0.1
        if not 0 <= self.val_fraction < 1:
            raise TinyAscError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        self.check_outside_values()
        return self

    def check_outside_values(self):
        """Integers from the command line or config.json against what the code can build."""
        check_seed(self.seed)
        if self.arch in MAX_WIDTH:
            check_int(self.width, "--model-width", 1, MAX_WIDTH[self.arch],
                      f"the widest --arch {self.arch} tinyasc builds; wider needs gigabytes per batch")
        if self.subbands not in SUBBANDS:
            raise TinyAscError(f"subbands must be one of {', '.join(map(str, SUBBANDS))} (SubSpectralNorm splits "
                               f"every stage's frequency bins, 32 in the last), got {self.subbands}")
        check_int(self.freq_masks, "freq_masks", 0, 16)
        check_int(self.time_masks, "time_masks", 0, 16)
        check_int(self.freq_width, "freq_width", 0, NUM_BINS, "at most the mel bins")
        check_int(self.time_width, "time_width", 0, MAX_FRAMES)
        check_int(self.epochs, "--epochs", 1, 100_000)
        check_int(self.batch_size, "--batch-size", 2, 100_000, "batch norm needs two clips")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise TinyAscError(f"momentum must be in [0, 1) and weight_decay >= 0, got {self.momentum} and "
                               f"{self.weight_decay}")

    @property
    def warmup(self):
        return 0.05 * self.epochs if self.warmup_epochs is None else self.warmup_epochs

    @property
    def roll_frames(self):
        return int(round(self.roll_seconds / FRAME_SECONDS))



def load_run_config(run_dir):
    """The TrainConfig saved in a run folder, or a one-line error naming what is wrong."""
    from pathlib import Path

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise TinyAscError(f"{run_dir}: no config.json here; pass a run folder written by tinyasc train")
    values = read_json_object(path, "training settings", "restore it or pass another run folder")
    return TrainConfig.from_dict(values).validate()
