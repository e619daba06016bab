"""The training configuration: the paper's recipe (section 3.1) as defaults, every part switchable.

Saved as config.json in the run folder, so a run can be resumed or re-read exactly. Each field
also carries what the command line needs (help text, choices, the option's name when it is not
the field's): `tinyasc train` builds its options from these fields, so a default or a choice list
is written once, here.
"""
import dataclasses
from dataclasses import dataclass

from tinyasc.checks import MAX_FRAMES, MAX_WIDTH, NUM_BINS, SUBBANDS, check_finite, check_int, check_seed
from tinyasc.errors import TinyAscError
from tinyasc.run.config import PRESET_NAMES, JsonConfig, read_json_object, setting  # noqa: F401 (re-exported)
from tinyasc.models.bcresnet import INPUT_NORMS
from tinyasc.models.bcresnet_mod import NORMS

ARCHS = ("bcresnet-mod", "bcresnet", "cpresnet")
DEFAULT_WIDTH = {"bcresnet-mod": 10, "bcresnet": 8, "cpresnet": 64}
DEFAULT_NORM = {"bcresnet-mod": "resnorm", "bcresnet": "none", "cpresnet": "none"}
SELECTS = ("last", "minvar")
QAT_BITS = (2, 3, 4, 5, 6, 7, 8, 16)  # what tinyasc compress exports; 32 (float) means no quantization

FRAME_SECONDS = 0.03  # hop 480 samples at 16 kHz


@dataclass
class TrainConfig(JsonConfig):
    data: str = setting(None, "TAU 2020 Mobile dataset root. Default: the embedded synthetic dataset (created on "
                              "first use).", path=True)
    preset: str = setting("default", "Size of the synthetic dataset when --data is not given.", choices=PRESET_NAMES)
    width: int = setting(10, "c of Table 1 (10 = BC-ResNet-Mod-1, 80 = -Mod-8); tau of BC-ResNet; c of CP-ResNet.",
                         option="--model-width", by_arch=DEFAULT_WIDTH)
    arch: str = setting("bcresnet-mod", "BC-ResNet-Mod (the paper's), or Table 2's BC-ResNet / CP-ResNet.",
                        choices=ARCHS)
    rho: int = setting(5, "CP-ResNet's receptive-field parameter: its first rho switchable convs are 3x3.")
    norm: str = setting("resnorm", "Normalization variant of Table 2 (other architectures than BC-ResNet-Mod take "
                                   "the input-only ones).", choices=NORMS, by_arch=DEFAULT_NORM)
    lam: float = setting(0.1, "lambda of ResNorm (eq. 3).")
    subbands: int = setting(4, "SubSpectralNorm sub-bands (the paper: 4).", choices=SUBBANDS)
    dropout: float = setting(0.1, "Dropout rate of the BC-ResBlocks.")
    epochs: int = setting(100, "Training epochs (the paper: 100).")
    batch_size: int = setting(64, "Clips per batch (the paper: 64).")
    lr: float = setting(0.06, "Peak learning rate.")
    warmup_epochs: float = setting(None, "Linear warm-up length. Default: 5% of --epochs (the paper: 5 of 100).")
    momentum: float = setting(0.9, "SGD momentum.")
    weight_decay: float = setting(1e-3, "SGD weight decay.")
    roll_seconds: float = setting(1.5, "Switch off the random time roll (shifts of up to 1.5 s either way).",
                                  option="--no-roll", flag_value=0.0)
    mixup_alpha: float = setting(0.3, "Switch off Mixup (alpha 0.3).", option="--no-mixup", flag_value=0.0)
    specaugment: bool = setting(True, "Switch off SpecAugment.", option="--no-specaugment", flag_value=False)
    freq_masks: int = setting(2, "SpecAugment: frequency masks per clip.")
    freq_width: int = setting(40, "SpecAugment: widths of the frequency masks are drawn below this (mel bins).")
    time_masks: int = setting(2, "SpecAugment: time masks per clip.")
    time_width: int = setting(80, "SpecAugment: widths of the time masks are drawn below this (frames of a 10 s "
                                  "clip; scaled by T / 334 on shorter clips, 24 at 3 s).")
    select: str = setting("last", "Model selection: the last epoch, or Min Var (smallest device spread on "
                                  "validation).", choices=SELECTS)
    val_fraction: float = setting(0.0, "Fraction of training locations held out for validation (minvar uses 0.1 "
                                       "if 0).")
    seed: int = setting(0, "Seed of the initialisation, the batch order, augmentation and dropout.")
    eval_every: int = setting(5, "Evaluate the test split every this many epochs (and always after the last one).")
    # Knowledge distillation (paper 2.4, 3.3): teacher run folders, comma-separated ("" = none).
    teacher: str = setting("", "Knowledge distillation from this run folder (repeat for an ensemble of teachers).",
                           path=True, multiple=True)
    kd_alpha: float = setting(0.5, "Weight of the cross-entropy; 1 - alpha weighs the teacher term T^2 KL.")
    kd_temperature: float = setting(3.0, "Distillation temperature T.")
    # Compression fine-tuning (paper 2.4): start from a run, prune, hold the masks, QAT. Set by
    # tinyasc compress (init_from: each of its RUNS), whose own defaults are Table 3's.
    init_from: str = setting("", "Run folder whose weights start this run (\"\" = fresh initialisation).",
                             command="compress")
    prune: float = setting(0.0, "Share of conv weights set to zero (Table 3: 0.89; model 4: 0.84).",
                           command="compress")
    bits: int = setting(32, "Conv weight bits: 2-8 integer codes learned with QAT, or 16 (half precision).",
                        choices=QAT_BITS, command="compress")
    per_channel: bool = setting(False, "One quantization scale per output channel instead of per conv.",
                                flag_value=True, command="compress")
    # Device translator (paper 2.3, 3.2): its translations of the device-A training clips join
    # the training set ("" = none).
    translator: str = setting("", "Translator folder (tinyasc translator train): add its translations of the "
                                  "device-A training clips to every target device to the training set.", path=True)

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
        if self.data is not None and not self.data.strip():  # "" would mean the current folder to some
            raise TinyAscError("--data is empty; pass a dataset folder, or leave --data out for the default")
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
        if self.preset not in PRESET_NAMES:  # a config.json can name any
            raise TinyAscError(f"--preset {self.preset!r} is not one of {', '.join(PRESET_NAMES)}")
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
        if self.select not in SELECTS:
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

    def check_inputs(self):
        """The folders a run reads (its teachers, translator, starting weights and dataset) must exist:
        checked before anything is loaded or any folder made, so a mistyped path costs nothing."""
        from pathlib import Path

        named = [("--teacher", t.strip()) for t in self.teacher.split(",") if t.strip()]
        named += [("--translator", self.translator), ("--init-from", self.init_from), ("--data", self.data)]
        for option, path in named:
            if path and not Path(path).expanduser().exists():  # as the readers expand it
                raise TinyAscError(f"{option} {path}: no such file or folder; check the path")
        return self

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
    if (Path(run_dir) / "translator.npz").is_file():
        raise TinyAscError(f"{run_dir}: a device translator's folder (tinyasc translator train), not a classifier "
                           "run; pass a run folder written by tinyasc train")
    if not path.is_file():
        raise TinyAscError(f"{run_dir}: no config.json here; pass a run folder written by tinyasc train")
    fix = "restore it or pass another run folder"
    return TrainConfig.from_saved(read_json_object(path, "training settings", fix), path, fix)
