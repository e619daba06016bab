"""Model compression of the paper's section 2.4 and Table 3.

prune      magnitude-based one-shot unstructured pruning of every conv, masks held in fine-tuning
quantize   symmetric b-bit fake quantization with a straight-through estimator (QAT); float16 rest
distill    knowledge distillation from a teacher (or an ensemble of teachers)
size       the DCASE 2021 size accounting (non-zero x bits / 8, 128 KB limit)
export     the compressed model as a compact .npz, and loading it back

The order of use: train a teacher; train a student with distill; prune it; fine-tune with
the masks held (mask_gradients, hold_masks around each
optimizer step) and the convs quantized (quantize_convs_: QAT, visible in repr(model)), and the
teacher again; export; check the size table.
"""
from tinyasc.compress.distill import (Distiller, Ensemble, distillation_loss, ensemble_probabilities)
from tinyasc.compress.export import ExportSummary, architecture, load_compressed, save_compressed
from tinyasc.compress.prune import (apply_masks, conv_modules, conv_weights, hold_masks,
                                    layer_sparsity, magnitude_masks, mask_gradients, masks_from_state,
                                    masks_state, prune)
from tinyasc.compress.quantize import (FakeQuantizeFunction, QuantizationAware, QuantizedConv2d, compress_weights_,
                                       dequantize, fake_quantize, fake_quantize_weights_, float_convs_, half_precision_, qmax,
                                       quantization_scale, quantize, quantize_convs_, round_half)
from tinyasc.compress.size import KIB, LIMIT_BYTES, SizeReport, accounted_bytes, model_size

__all__ = ["Distiller", "Ensemble", "ExportSummary", "FakeQuantizeFunction", "KIB", "LIMIT_BYTES",
           "QuantizationAware", "QuantizedConv2d", "SizeReport", "accounted_bytes", "apply_masks", "architecture",
           "compress_weights_", "conv_modules", "conv_weights", "dequantize", "distillation_loss",
           "ensemble_probabilities", "fake_quantize", "fake_quantize_weights_",
           "float_convs_", "half_precision_", "hold_masks", "layer_sparsity",
           "load_compressed", "magnitude_masks", "mask_gradients", "masks_from_state", "masks_state",
           "model_size", "prune", "qmax", "quantization_scale", "quantize", "quantize_convs_", "round_half", "save_compressed"]
