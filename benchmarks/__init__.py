"""Speed measurements of tinyasc, beside the package rather than inside it.

- `benchmarks.kernels`: each Numba kernel at the layer shapes of BC-ResNet-Mod (paper Table 1),
  against its NumPy reference, PyTorch and this machine's roofline; JIT compile times.
  `benchmarks.norms` holds its cases of the memory-bound ops (batch norm, SubSpectralNorm, ResNorm,
  the residual + ReLU).
- `benchmarks.train_step`: one whole training step, tinyasc and PyTorch alternating, with the
  per-op breakdown of tinyasc's step.
- `benchmarks.torch_reference`: BC-ResNet-Mod in PyTorch, the side-by-side reference (the
  interop tests use it too).

The package is installed with tinyasc so that `tinyasc bench` works from an installed copy; it
imports nothing here until the command runs, and PyTorch only when the comparison is asked for.
Run a module directly with `python -m benchmarks.kernels` or `python -m benchmarks.train_step`.
"""
