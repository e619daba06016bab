"""Data: the TAU layout reader, the synthetic dataset, the feature cache, augmentation and
batching (paper 3.1; docs/data.md). Data flows one way:

    tau.load_dataset / synth.write_dataset -> cache.load_features -> training.BatchLoader
                                                                    (augment.Augment as transform)
                                                                    -> training.TrainingData
"""
from tinyasc.data.augment import Augment, mixup, spec_augment, time_roll
from tinyasc.data.cache import FeatureSet, default_cache_dir, load_features, tinyasc_home
from tinyasc.data.synth import (PRESETS, default_dataset_path, ensure_default_dataset,
                                write_dataset)
from tinyasc.data.tau import CITIES, DEVICES, SCENES, Dataset, Split, load_dataset
from tinyasc.data.training import BatchLoader, TrainingData

__all__ = ["Augment", "BatchLoader", "CITIES", "DEVICES", "Dataset", "FeatureSet", "PRESETS", "TrainingData",
           "SCENES", "Split", "default_cache_dir", "default_dataset_path",
           "ensure_default_dataset", "load_dataset", "load_features", "mixup",
           "spec_augment", "time_roll", "tinyasc_home", "write_dataset"]
