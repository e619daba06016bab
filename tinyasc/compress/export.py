"""The compressed model on disk: what Table 3 counts, in one small .npz (no pickle).

Per model i of the file (an ensemble stores several) four arrays:

  model{i}/values     the non-zero conv weights, all convs in registration order, each in
                      flat C order: int8 codes (bits 2..8) or float16 values (bits 16)
  model{i}/positions  where they go: one bit per conv weight (1 = non-zero), the same order,
                      np.packbits (most significant bit first)
  model{i}/scales     float32 quantization scales: one per conv, or one per output channel
  model{i}/half       every other parameter and buffer, float16, concatenated

plus `__meta__`, JSON as bytes (as tinyasc/run/checkpoint.py stores it): the format, bits,
prune ratio, each model's architecture and tensor list, the training config and the
accounted size. Positions as a bitmask cost a fixed 1 bit per conv weight (37.5 KB for the
300,320 of BC-ResNet-Mod-8): less than 1-byte gaps between non-zeros below 87.5% sparsity,
a little more at 89%, and nothing to escape when a gap is long. The archive is deflated.

load_compressed rebuilds a BCResNetMod whose weights equal, bit for bit, the fake-quantized
weights of the model that was saved (codes x float32 scale, the product fake_quantize
computes), so its predictions equal the QAT model's with half-precision norms exactly.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

from tinyasc import random as ta_random
from tinyasc.checks import first_nonfinite
from tinyasc.compress.distill import Ensemble
from tinyasc.compress.prune import conv_weights
from tinyasc.compress.quantize import HALF, check_bits, quantize, round_half
from tinyasc.compress.complexity import Complexity, complexity
from tinyasc.compress.size import model_size
from tinyasc.models.bcresnet_mod import BCResNetMod
from tinyasc.fileio import atomic_write_bytes
from tinyasc.run.checkpoint import META_KEY, CheckpointError, load_checkpoint, load_model_state

FORMAT = "tinyasc-compressed"
VERSION = 1


def architecture(model):
    """The BCResNetMod constructor arguments that rebuild `model`."""
    if not isinstance(model, BCResNetMod):
        raise TypeError(f"export handles BCResNetMod models, got {type(model).__name__}")
    first = model.stages[0][0]
    num_bins = int(model.input_norm.mean.shape[0]) if model.norm == "global" else 256
    return {"c": int(model.c), "num_classes": int(model.num_classes), "norm": model.norm, "lam": float(model.lam),
            "subbands": int(first.f2.ssn.subbands), "dropout": float(first.f1.drop.p), "num_bins": num_bins}


@dataclass
class ExportSummary:
    path: str
    file_bytes: int
    size: object  # SizeReport of the stored models
    complexity: object = None  # Complexity of the whole ensemble (parameters and MACs summed)

    def text(self):
        lines = [self.size.table(), f"file on disk: {self.file_bytes:,} bytes = {self.file_bytes / 1024:.2f} KB "
                 f"({self.path}; adds positions, running statistics, metadata and zip headers)"]
        if self.complexity is not None:
            lines.append(f"complexity, DCASE 2022-2025 rules ({self.size.models} model{'s' * (self.size.models > 1)}, "
                         f"summed): {self.complexity.line()}")
        return "\n".join(lines)


def _encode(model, bits, per_channel):
    convs = conv_weights(model)
    values, positions, scales, conv_list = [], [], [], []
    for name, p in convs.items():
        if bits == HALF:
            stored = round_half(p.data).astype(np.float16)
            nonzero = stored != 0
            values.append(stored[nonzero])
        else:
            codes, scale = quantize(p.data, bits, per_channel)
            nonzero = codes != 0
            values.append(codes[nonzero])
            scales.append(scale.astype(np.float32).ravel())
        positions.append(nonzero.ravel())
        conv_list.append([name, list(p.shape)])
    conv_ids = {id(p) for p in convs.values()}
    half_list, half = [], []
    for name, p in model.named_parameters():
        if id(p) not in conv_ids:
            half_list.append([name, list(p.shape)])
            half.append(round_half(p.data).astype(np.float16).ravel())
    for name, b in model.named_buffers():
        if b.dtype.kind == "f":
            half_list.append([name, list(b.shape)])
            half.append(round_half(b).astype(np.float16).ravel())
    value_dtype = np.float16 if bits == HALF else np.int8
    arrays = {"values": np.concatenate(values).astype(value_dtype) if values else np.zeros(0, value_dtype),
              "positions": np.packbits(np.concatenate(positions)),
              "scales": np.concatenate(scales) if scales else np.zeros(0, np.float32),
              "half": np.concatenate(half) if half else np.zeros(0, np.float16)}
    meta = {"architecture": architecture(model), "convs": conv_list, "half": half_list,
            "nonzero": int(arrays["values"].size)}
    return arrays, meta


def save_compressed(path, models, bits=8, per_channel=False, prune_ratio=None, config=None):
    """Write one model or an ensemble (list) as the compressed .npz; returns an ExportSummary.

    The models may be the QAT-trained float models or their compress_weights_ versions:
    both give the same file (re-quantizing a quantized weight is exact).
    """
    bits = check_bits(bits)
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    payload, model_meta = {}, []
    for i, model in enumerate(models):
        arrays, meta = _encode(model, bits, per_channel)
        payload.update({f"model{i}/{k}": v for k, v in arrays.items()})
        model_meta.append(meta)
    size = model_size(models, conv_bits=bits, per_channel=per_channel)
    meta = {"kind": FORMAT, "version": VERSION, "bits": bits, "per_channel": bool(per_channel),
            "prune_ratio": prune_ratio, "position_encoding": "bitmask, np.packbits, flat C order",
            "models": model_meta, "config": config, "accounted_bytes": size.total_bytes}
    bad = first_nonfinite(payload)
    if bad is not None:  # a file that could never be loaded back is not written
        raise CheckpointError(f"{path}: not written: {bad[0]} holds {bad[1]} (a diverged model, or a value beyond "
                              "half precision's 65504); fine-tune again with a lower --lr")
    payload[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_write_bytes(path, lambda f: np.savez_compressed(f, **payload))
    return ExportSummary(str(path), os.path.getsize(path), size, ensemble_complexity(models))


def ensemble_complexity(models):
    """Parameters and MACs per second of audio of an ensemble: every member runs on every clip."""
    parts = [complexity(m) for m in models]
    return Complexity(sum(c.parameters for c in parts), sum(c.macs for c in parts), parts[0].seconds)


ARCHITECTURE_KEYS = {"c", "num_classes", "norm", "lam", "subbands", "dropout", "num_bins"}


def _check_meta(meta, path):
    """The metadata of a compressed file against what can be built, before anything is allocated:
    the widths, bins and sub-bands of each model come from here."""
    from tinyasc.checks import MAX_WIDTH, SUBBANDS, check_finite, check_int
    from tinyasc.errors import TinyAscError
    from tinyasc.models.bcresnet_mod import NORMS

    try:
        check_bits(meta.get("bits"))
        if not isinstance(meta.get("per_channel"), bool):
            raise ValueError(f"per_channel is {meta.get('per_channel')!r}, not true or false")
        models = meta.get("models")
        if not isinstance(models, list) or not 1 <= len(models) <= 16:
            raise ValueError("'models' must list 1 to 16 models")
        for model_meta in models:
            arch = model_meta["architecture"]
            if not isinstance(arch, dict) or set(arch) != ARCHITECTURE_KEYS:
                raise ValueError(f"an architecture must have exactly the keys {sorted(ARCHITECTURE_KEYS)}")
            check_int(arch["c"], "c", 1, MAX_WIDTH["bcresnet-mod"])
            check_int(arch["num_classes"], "num_classes", 2, 1000)
            check_int(arch["num_bins"], "num_bins", 1, 4096)
            if arch["norm"] not in NORMS or arch["subbands"] not in SUBBANDS:
                raise ValueError(f"norm {arch['norm']!r} or subbands {arch['subbands']!r} is not one tinyasc builds")
            if not 0 <= check_finite(arch["lam"], "lam") or not 0 <= check_finite(arch["dropout"], "dropout") < 1:
                raise ValueError(f"lam {arch['lam']} or dropout {arch['dropout']} is out of range")
            if not isinstance(model_meta["convs"], list) or not isinstance(model_meta["half"], list):
                raise ValueError("'convs' and 'half' must be lists")
    except (KeyError, TypeError, ValueError, AttributeError, TinyAscError) as exc:
        raise CheckpointError(f"{path}: the metadata of this compressed model is damaged ({exc}); "
                              "write it again with tinyasc compress") from None


def _tensor_lists(model):
    """[name, shape] of the conv weights and of the other stored tensors, in the order _encode stores them."""
    convs = conv_weights(model)
    conv_ids = {id(p) for p in convs.values()}
    half = [[name, list(p.shape)] for name, p in model.named_parameters() if id(p) not in conv_ids]
    half += [[name, list(b.shape)] for name, b in model.named_buffers() if b.dtype.kind == "f"]
    return [[name, list(p.shape)] for name, p in convs.items()], half


def _decode(arrays, meta, bits, per_channel, source, index):
    get = lambda key: arrays[f"model{index}/{key}"]  # noqa: E731
    try:
        values, positions, scales, half = get("values"), get("positions"), get("scales"), get("half")
    except KeyError as exc:
        raise CheckpointError(f"{source}: model {index} has no array {exc}") from None
    value_dtype = np.float16 if bits == HALF else np.int8
    for key, array, dtype in (("values", values, value_dtype), ("positions", positions, np.uint8),
                              ("scales", scales, np.float32), ("half", half, np.float16)):
        if array.dtype != dtype or array.ndim != 1:
            raise CheckpointError(f"{source}: model {index}'s array {key!r} is {array.dtype} of shape {array.shape}, "
                                  f"not a 1-D {np.dtype(dtype)} array; the file is damaged: write it again with "
                                  "tinyasc compress")
        if dtype in (np.float16, np.float32) and not np.isfinite(array).all():
            raise CheckpointError(f"{source}: model {index}'s array {key!r} holds NaN or infinite values; "
                                  "the file is damaged: write it again with tinyasc compress")
    sizes = [int(np.prod(shape)) for _, shape in meta["convs"]]
    if positions.size != (sum(sizes) + 7) // 8:  # else unpackbits(count=) pads with whatever memory held
        raise CheckpointError(f"{source}: model {index}'s array 'positions' holds {positions.size:,} bytes, not the "
                              f"{(sum(sizes) + 7) // 8:,} of one bit per conv weight ({sum(sizes):,}); the file is "
                              "damaged: write it again with tinyasc compress")
    nonzero = np.unpackbits(positions, count=sum(sizes)).astype(bool)
    if int(nonzero.sum()) != values.size:
        raise CheckpointError(f"{source}: model {index} marks {int(nonzero.sum())} non-zero positions "
                              f"but stores {values.size} values")
    state, v, s, bit = {}, 0, 0, 0
    for (name, shape), size in zip(meta["convs"], sizes):
        where = np.flatnonzero(nonzero[bit:bit + size])
        bit += size
        codes = values[v:v + where.size]
        v += where.size
        weight = np.zeros(size, np.float32)
        if bits == HALF:
            weight[where] = codes.astype(np.float32)
        else:
            count = shape[0] if per_channel else 1
            scale = scales[s:s + count]
            s += count
            if scale.size != count:
                raise CheckpointError(f"{source}: model {index} has too few quantization scales")
            per_value = scale[where // (size // shape[0])] if per_channel else scale[0]
            weight[where] = codes.astype(np.float32) * per_value
        state[name] = weight.reshape(shape)
    h = 0
    for name, shape in meta["half"]:
        size = int(np.prod(shape))
        if h + size > half.size:
            raise CheckpointError(f"{source}: model {index} stores too few half-precision values")
        state[name] = half[h:h + size].astype(np.float32).reshape(shape)
        h += size
    return state


def load_compressed(path, return_meta=False):
    """Rebuild the stored model (a BCResNetMod, or an Ensemble of them), in eval mode."""
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") != FORMAT:
        raise CheckpointError(f"{path}: not a compressed tinyasc model (kind {meta.get('kind')!r}); "
                              "write one with `tinyasc compress`")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: compressed format version {meta.get('version')}, this tinyasc reads {VERSION}")
    _check_meta(meta, path)
    models = []
    for i, model_meta in enumerate(meta["models"]):
        saved = ta_random.get_state()  # building draws an initialisation we overwrite: keep the stream
        try:
            model = BCResNetMod(**model_meta["architecture"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: model {i}'s architecture cannot be built ({exc}); "
                                  "write the file again with tinyasc compress") from None
        finally:
            ta_random.set_state(saved)
        convs, half = _tensor_lists(model)
        if model_meta["convs"] != convs or model_meta["half"] != half:
            raise CheckpointError(f"{path}: model {i}'s tensor list does not match its architecture "
                                  f"{model_meta['architecture']}; the file is damaged: write it again with tinyasc compress")
        state = _decode(arrays, model_meta, meta["bits"], meta["per_channel"], path, i)
        load_model_state(model, state, path)
        models.append(model.eval())
    model = models[0] if len(models) == 1 else Ensemble(models).eval()
    return (model, meta) if return_meta else model
