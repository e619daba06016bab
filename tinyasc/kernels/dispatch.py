"""Which loop runs for which shape: every path choice of tinyasc's kernels, in one place.

BC-ResNet-Mod (paper Table 1) has a 5x5 stride-2 head conv, 1x1 pointwise convs, depthwise
3x1 / 1x3 convs, 2x2 max-pools and normalizations, and each is fastest on a different loop.
The kernel modules (conv.py, pointwise.py, depthwise.py, dots.py, pool.py, norm.py) hold the
loops and their NumPy references; the entry points in api.py ask this module which one to run.
Each threshold carries the measurement it came from (docs/kernels.md, docs/results.md and
docs/decisions.md say more). `conv_paths(geometry)` lists the paths of one layer.

The reference backend: inside `with use_reference():` (or for the whole process with
TINYASC_KERNELS=reference in the environment, read once when tinyasc.kernels is imported)
every choice below is "reference": each op runs the plain NumPy definition that sits under its
kernel, slow but easy to step through in a debugger (minitorch's idea). The switch is one flag
for the process, not per thread.
"""
import contextlib
import os

import numba

# ------------------------------------------------------------------ the reference backend

_BACKENDS = ("numba", "reference")
_ENV_BACKEND = os.environ.get("TINYASC_KERNELS", "numba").strip().lower() or "numba"
_reference_depth = 0  # open use_reference() blocks


def backend_problem():
    """What is wrong with TINYASC_KERNELS, or None. Not raised on import: the command line checks
    it when a command starts (one error line), the kernels at their first call."""
    if _ENV_BACKEND in _BACKENDS:
        return None
    return f"TINYASC_KERNELS={_ENV_BACKEND!r} in the environment: set it to 'numba' or 'reference', or unset it"


def reference_active():
    """True when kernel calls run the NumPy references instead of the Numba kernels."""
    if _ENV_BACKEND not in _BACKENDS:
        raise ValueError(backend_problem())
    return _ENV_BACKEND == "reference" or _reference_depth > 0


@contextlib.contextmanager
def use_reference():
    """Run every kernel call inside the block on its plain NumPy reference (blocks may nest)."""
    global _reference_depth
    _reference_depth += 1
    try:
        yield
    finally:
        _reference_depth -= 1


# ------------------------------------------------------------------------- convolution


def is_pointwise(g):
    """1x1, stride 1, no padding, groups 1: a matmul (Cout, Cin) @ (Cin, H*W) per sample, straight
    on the NCHW memory, no im2col. These are 76% of the conv weights at c = 10, 96% at c = 80."""
    return (g.kh, g.kw) == (1, 1) and g.stride == (1, 1) and g.padding == (0, 0) and g.groups == 1


def is_depthwise(g):
    """A 3-tap filter per channel along one axis (groups == channels, stride 1, dilation 1, no
    padding along the other axis): f2 (3x1) and f1 (1x3) of every BC-ResBlock. 3 multiply-adds
    per element make it memory bound: im2col would triple the data for nothing, so each plane is
    streamed once by its own kernel."""
    if not (g.groups == g.c_in == g.c_out and g.stride == (1, 1) and g.dilation == (1, 1)):
        return False
    return ((g.kh, g.kw) == (3, 1) and g.padding[1] == 0) or ((g.kh, g.kw) == (1, 3) and g.padding[0] == 0)


def is_depthwise_any(g):
    """One filter per channel (groups == channels) of any size, stride, padding or dilation:
    BC-ResNet's strided 3x1, dilated 1x3 and 5x5 tail (the 3-tap stride-1 ones go to
    is_depthwise's kernels). A direct loop per plane reads each input row once per tap row;
    im2col would copy it KH*KW times for a (1 x K) @ (K x T) product per channel."""
    return g.groups == g.c_in == g.c_out and not is_depthwise(g)


def conv_forward_path(g):
    """The forward (and, for a full-size output gradient, the input gradient) of conv2d:
    'pointwise', 'depthwise' (3 taps, stride 1), 'depthwise-direct' (any other depthwise), or
    'im2col' for everything else (the head, generic convs).
    im2col + BLAS over a direct loop: a direct Numba forward reached 25 GFLOP/s on the head conv,
    im2col + BLAS ~65."""
    if reference_active():
        return "reference"
    if is_pointwise(g):
        return "pointwise"
    if is_depthwise(g):
        return "depthwise"
    if is_depthwise_any(g):
        return "depthwise-direct"
    return "im2col"


def conv_input_path(g, full):
    """The input gradient. full: gy has the conv's whole output size; conv_transpose2d with
    output_padding >= stride passes a smaller gy, which only the im2col path (col2im) handles,
    treating the missing rows as zero."""
    path = conv_forward_path(g)
    return path if full or path == "reference" else "im2col"


# weight gradients with at most this many taps per group (Cin/G*KH*KW) use the dot-product
# kernel: BLAS is slow on a (Cout x 25) result with a long reduction. Measured on the head conv
# (2 threads, a loaded machine): c = 10, batch 64 x 101 frames 13 ms of CPU time vs 38 ms for the
# earlier direct kernel and 23 ms for BLAS; c = 80, batch 16 x 334 frames 62 vs 72 ms for BLAS.
DOTS_MAX_TAPS = 64


def conv_weight_path(g, full):
    """The weight gradient: 'pointwise', 'depthwise', 'depthwise-direct', 'dots' (few taps: the
    head, K = 25) or 'im2col' (gy @ cols^T by BLAS)."""
    path = conv_input_path(g, full)
    if path == "im2col" and g.taps // g.groups <= DOTS_MAX_TAPS:
        return "dots"
    return path


def conv_backward_path(g, full, need_input, need_weight):
    """Both gradients at once: 'depthwise-fused' for a depthwise layer needing both (always so in
    training), else 'separate' (conv_input_path and conv_weight_path, one after the other).
    The fused 3x1 kernel reads each x row once and each gy row three times from L1, where the two
    separate kernels read x once and gy twice from memory: ~35% less time (docs/results.md)."""
    if need_input and need_weight and conv_forward_path(g) == "depthwise" and full:
        return "depthwise-fused"
    return "separate"


def depthwise_fuses(w_shape):
    """Only the 3x1 filter (f2, on the largest maps) has a one-pass backward; the 1x3 one runs on
    N x C x 1 x T maps, small enough for the two kernels."""
    return w_shape[2] == 3


# im2col tile size in elements, per thread (4 MB of float32): one whole sample of the head conv
# (25 x 128*167) per tile; bigger layers are cut into row blocks.
COL_BUDGET = 1 << 20
# im2col tile of the dot-product kernel, in elements (256 KB of float32: stays in L2)
DOTS_COL_BUDGET = 1 << 16
# Weight gradients sum per-chunk partials: a fixed number of chunks (not one per thread) keeps the
# summation order, and so the bits, the same whatever the thread count.
PARTIAL_CHUNKS = 8


def im2col_rows(g):
    """Output rows per im2col tile: the whole sample when its cols fit COL_BUDGET."""
    return max(1, min(g.out_h, COL_BUDGET // max(1, g.taps * g.out_w)))


def dots_rows(g):
    """Output rows per tile of the dot-product weight gradient: an L2-sized tile."""
    return max(1, min(g.out_h, DOTS_COL_BUDGET // max(1, g.taps * g.out_w)))


def chunks(n):
    """Parallel chunks of the batch for the forward and input gradient: one per thread."""
    return max(1, min(n, numba.get_num_threads()))


def partials(n):
    """Chunks of the batch for a weight gradient: PARTIAL_CHUNKS at most, whatever the threads."""
    return max(1, min(n, PARTIAL_CHUNKS))


# ----------------------------------------------------------------- pointwise (1x1) convs

# At the model's widths a 1x1 conv is thin: with c = 10 it does ~3 flops per byte moved, far below
# this class of machine's balance (~13 flops per byte), and BLAS handles a 10 x 20 left factor
# poorly. Measured here: stage 1 of c = 10 (20 -> 10 channels on 128 x 167) runs 2x faster on the
# streaming kernel; layers whose data stays in cache, or wide ones (c = 80, compute bound), run
# faster on BLAS.
STREAM_MAX_FLOPS_PER_BYTE = 5.0
STREAM_MIN_BYTES = 32 << 20
# Under ~4 Mflop (the f1 branch's C x C on 1 x T) one NumPy matmul call beats starting the
# parallel kernel.
TINY_MAX_FLOPS = 4 << 20


def pointwise_path(n, c_in, c_out, t, itemsize):
    """'streaming' (thin layers too big for the caches), 'numpy' (tiny ones) or 'blas' (the rest:
    np.dot inside a Numba loop over samples). Symmetric in c_in and c_out, so it holds for the
    forward, the input gradient (the transposed weight) and the weight gradient alike."""
    if reference_active():
        return "reference"
    flops_per_byte = 2.0 * c_in * c_out / (itemsize * (c_in + c_out))
    if flops_per_byte < STREAM_MAX_FLOPS_PER_BYTE and n * t * (c_in + c_out) * itemsize > STREAM_MIN_BYTES:
        return "streaming"
    if 2 * n * c_in * c_out * t < TINY_MAX_FLOPS:
        return "numpy"
    return "blas"


def conv_paths(g, itemsize=4):
    """{op: path} for one conv layer, pointwise ones with their sub-path: what runs, at a glance."""
    full = True
    out = {"forward": conv_forward_path(g), "input": conv_input_path(g, full),
           "weight": conv_weight_path(g, full), "backward": conv_backward_path(g, full, True, True)}
    if is_pointwise(g) and not reference_active():
        sub = pointwise_path(g.n, g.c_in, g.c_out, g.h * g.w, itemsize)
        out.update({op: f"pointwise/{sub}" for op in ("forward", "input", "weight")})
    return out


# ----------------------------------------------------------------------------- pooling


def max_pool_path(g):
    """'2x2' for the model's 2x2 stride-2 max-pool without padding (a streaming kernel, two input
    rows per output row), 'general' (torch's window loop) otherwise. The backward is one scatter
    kernel for both: a plane stays in cache while it is zeroed and scattered into, so a 2x2
    version would be no faster."""
    if reference_active():
        return "reference"
    if ((g.kh, g.kw) == (2, 2) and g.stride == (2, 2) and g.padding == (0, 0) and g.dilation == (1, 1)
            and (not g.ceil_mode or (g.h % 2 == 0 and g.w % 2 == 0))):
        return "2x2"
    return "general"


def single_path():
    """Ops with one kernel (average pooling, the normalizations, the frequency mean, the broadcast
    residual): 'reference' or 'numba'."""
    return "reference" if reference_active() else "numba"
