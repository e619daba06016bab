"""A synthetic, device-imbalanced stand-in for TAU Urban Acoustic Scenes 2020 Mobile.

Not part of the paper's method: the data it is tested on. The paper's problem (section 1,
2.2): ten urban scenes, one high-quality device (a) with most of the training data, a few
hundred clips each from devices b, c, s1-s3, and devices s4-s6 seen only at test time.
Devices differ mostly along frequency, which is what Residual Normalization removes. TAU
itself is 30 GB and cannot be fetched here, so tinyasc generates a dataset with the same
layout, split rules, pairing and device structure. One module per concern, each importing
only the ones before it:

  plan.py     presets (the sizes), segments, which devices record each segment
  dsp.py      spectral shapes, filters, shaped noise, envelopes, tones
  sounds.py   the nineteen sound components (traffic, engines, rails, voices, birds, ...)
  scenes.py   scene recipes and locations: the scene as it reaches the microphones
  devices.py  the nine device chains (band limits, EQ, impulse response, compression, ...)
  write.py    writing the WAV files and TAU's index files; the default dataset on disk

docs/data.md lists every parameter. Everything is deterministic for a seed.
"""
from tinyasc.data.synth.devices import (DEVICE_MODELS, DEVICE_SEED, DeviceModel, _device_fixed, apply_device,
                                        device_eq_db, device_response_db)
from tinyasc.data.synth.plan import PRESETS, SR, TRAIN_OTHER_DEVICES, Preset, Segment, get_preset, make_plan
from tinyasc.data.synth.scenes import SCENE_RECIPES, render_source
from tinyasc.data.synth.sounds import COMPONENTS
from tinyasc.data.synth.write import (MARKER, SYNTH_VERSION, _counts, default_dataset_path,
                                      ensure_default_dataset, is_complete, write_dataset)

__all__ = ["COMPONENTS", "DEVICE_MODELS", "DEVICE_SEED", "MARKER", "PRESETS", "SCENE_RECIPES", "SR",
           "SYNTH_VERSION", "TRAIN_OTHER_DEVICES", "DeviceModel", "Preset", "Segment", "apply_device",
           "default_dataset_path", "device_eq_db", "device_response_db", "ensure_default_dataset",
           "get_preset", "is_complete", "make_plan", "render_source", "write_dataset"]
