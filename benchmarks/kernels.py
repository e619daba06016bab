"""Kernel benchmarks at the shapes BC-ResNet-Mod uses (paper Table 1; docs/model.md).

For each layer shape of the model (width c, batch 64, 256 x 334 input) and each array-level op
(forward, input gradient, weight gradient; forward and backward of the memory-bound norms), this
times the tinyasc kernel, its NumPy reference and, when installed, PyTorch with 2 threads, and
reports throughput against this machine's own roofline: peak float32 matmul GFLOP/s and copy
bandwidth, both measured in the same run.
JIT compile time is measured separately, in fresh subprocesses: once with an empty Numba cache
(the real compile) and once with the cache just written (what every later run pays).

    from benchmarks.kernels import run_kernel_benchmarks, format_table
    print(format_table(run_kernel_benchmarks(widths=(10,), repeats=3)))

or from a shell (`tinyasc bench --what kernels` runs the same):

    python -m benchmarks.kernels                            # c = 10 and 80, batch 64
    python -m benchmarks.kernels --widths 10 --repeats 3 --no-reference --out kernels.csv
"""
import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numba
import numpy as np

from tinyasc import kernels as K
from benchmarks.norms import norm_cases, norm_ops
from tinyasc.kernels import dispatch, pointwise

F32 = 4  # bytes


# ------------------------------------------------------------------------------ the machine


def _median_time(fn, repeats):
    fn()  # warm: JIT load, page faults of fresh buffers, BLAS thread start
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _on_all_cores(fn, threads=2):
    """Run fn() on `threads` Python threads at once (NumPy releases the GIL in BLAS and copies)."""
    workers = [threading.Thread(target=fn) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()


def measure_peaks(repeats=5):
    """(GFLOP/s of large float32 matmuls, GB/s of large copies counting read + write), the
    better of one call and two concurrent calls (tinyasc keeps BLAS single-threaded)."""
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    outs = [np.empty_like(a) for _ in range(2)]
    one = 2 * n**3 / _median_time(lambda: np.matmul(a, a, out=outs[0]), repeats)
    it = iter(range(10**9))
    two = 2 * 2 * n**3 / _median_time(lambda: _on_all_cores(lambda: np.matmul(a, a, out=outs[next(it) % 2])), repeats)
    gflops = max(one, two) / 1e9
    src = np.ones(64 * 2**20, np.float32)  # 256 MB, far beyond any cache
    dst = np.zeros_like(src)
    half = src.size // 2
    one = 2 * src.nbytes / _median_time(lambda: np.copyto(dst, src), repeats)
    parts = iter(range(10**9))

    def copy_half():
        k = next(parts) % 2
        np.copyto(dst[k * half:(k + 1) * half], src[k * half:(k + 1) * half])

    two = 2 * src.nbytes / _median_time(lambda: _on_all_cores(copy_half), repeats)
    return gflops, max(one, two) / 1e9


# ------------------------------------------------------------------------------ the cases


def _conv_cases(c, batch):
    """(layer, kind, x_shape, w_shape, stride, padding, groups) for one width c."""
    c15, c2, c25 = int(1.5 * c), 2 * c, int(2.5 * c)
    B = batch
    return [
        ("head conv 5x5/2", "general", (B, 1, 256, 334), (c2, 1, 5, 5), (2, 2), (2, 2), 1),
        ("stage1 pw 2c->c", "pointwise", (B, c2, 128, 167), (c, c2, 1, 1), (1, 1), (0, 0), 1),
        ("stage2 pw c->1.5c", "pointwise", (B, c, 64, 83), (c15, c, 1, 1), (1, 1), (0, 0), 1),
        ("stage4 pw 2c->2.5c", "pointwise", (B, c2, 32, 41), (c25, c2, 1, 1), (1, 1), (0, 0), 1),
        ("f1 pw c->c (1xT)", "pointwise", (B, c, 1, 167), (c, c, 1, 1), (1, 1), (0, 0), 1),
        ("stage1 dw 3x1", "depthwise", (B, c, 128, 167), (c, 1, 3, 1), (1, 1), (1, 0), c),
        ("stage2 dw 3x1", "depthwise", (B, c15, 64, 83), (c15, 1, 3, 1), (1, 1), (1, 0), c15),
        ("stage4 dw 3x1", "depthwise", (B, c25, 32, 41), (c25, 1, 3, 1), (1, 1), (1, 0), c25),
        ("f1 dw 1x3 (1xT)", "depthwise", (B, c, 1, 167), (c, 1, 1, 3), (1, 1), (0, 1), c),
    ]


def _pool_cases(c, batch):
    return [("max-pool 2x2 (stage1)", (batch, c, 128, 167)), ("max-pool 2x2 (stage2)", (batch, int(1.5 * c), 64, 83))]


def _torch_module(use_torch):
    if not use_torch:
        return None
    # PyTorch gets its own OpenMP defaults, not the passive wait tinyasc.kernels sets for Numba
    policy = os.environ.pop("OMP_WAIT_POLICY", None)
    try:
        import torch
    except ImportError:
        return None
    finally:
        if policy is not None:
            os.environ["OMP_WAIT_POLICY"] = policy
    torch.set_num_threads(2)
    return torch


def _conv_rows(c, batch, repeats, torch, reference, rng):
    rows = []
    for layer, family, x_shape, w_shape, stride, padding, groups in _conv_cases(c, batch):
        args = (stride, padding, (1, 1), groups)
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        y = K.conv2d_forward(x, w, *args)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        flops = 2.0 * y.size * w_shape[1] * w_shape[2] * w_shape[3]
        ops = {
            "forward": (lambda: K.conv2d_forward(x, w, *args), lambda: K.conv2d_forward_ref(x, w, *args),
                        x.size + w.size + y.size),
            "backward_input": (lambda: K.conv2d_backward_input(gy, w, x.shape, *args),
                               lambda: K.conv2d_backward_input_ref(gy, w, x.shape, *args), gy.size + w.size + x.size),
            "backward_weight": (lambda: K.conv2d_backward_weight(x, gy, w.shape, *args),
                                lambda: K.conv2d_backward_weight_ref(x, gy, w.shape, *args), x.size + gy.size + w.size),
        }
        t_ops = _torch_conv_ops(torch, x, w, gy, args) if torch is not None else {}
        for op, (fn, ref, elements) in ops.items():
            path = _conv_path(family, op, x_shape, w_shape, groups)
            rows.append(dict(width=c, layer=layer, op=op, path=path, shape=_shape_str(x_shape, w_shape),
                             ms=1e3 * _median_time(fn, repeats),
                             ref_ms=1e3 * _median_time(ref, 1) if reference else None,
                             torch_ms=1e3 * _median_time(t_ops[op], repeats) if op in t_ops else None,
                             flops=flops, bytes=F32 * elements, kernel=f"conv2d_{op}[{path}]"))
    return rows


def _conv_path(family, op, x_shape, w_shape, groups):
    """The path dispatch.py sends this op to (its rules, asked for the table)."""
    N, Cin, H, W = x_shape
    Cout = w_shape[0]
    if family == "pointwise":
        # symmetric in Cin, Cout: holds for all 3 ops
        return {"streaming": "streaming", "numpy": "matmul"}.get(dispatch.pointwise_path(N, Cin, Cout, H * W, F32),
                                                                 "BLAS")
    taps = (Cin // groups) * w_shape[2] * w_shape[3]
    if family == "general" and op == "backward_weight" and taps <= dispatch.DOTS_MAX_TAPS:
        return "dots"
    return "im2col+BLAS" if family == "general" else family


def _torch_conv_ops(torch, x, w, gy, args):
    stride, padding, dilation, groups = args
    xt, wt, gyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
    conv_bwd = torch.ops.aten.convolution_backward

    def backward(mask):
        return lambda: conv_bwd(gyt, xt, wt, None, list(stride), list(padding), list(dilation), False, [0, 0],
                                groups, mask)

    return {"forward": lambda: torch.nn.functional.conv2d(xt, wt, None, stride, padding, dilation, groups),
            "backward_input": backward([True, False, False]),
            "backward_weight": backward([False, True, False])}


def _pool_rows(c, batch, repeats, torch, reference, rng):
    rows = []
    pool = ((2, 2), (2, 2), (0, 0), (1, 1), False)
    for layer, x_shape in _pool_cases(c, batch):
        x = rng.standard_normal(x_shape).astype(np.float32)
        y, idx = K.max_pool2d_forward(x, *pool)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        t_ops = {}
        if torch is not None:
            xt, gyt = torch.from_numpy(x), torch.from_numpy(gy)
            _, it = torch.nn.functional.max_pool2d(xt, 2, 2, return_indices=True)
            t_ops = {"forward": lambda: torch.nn.functional.max_pool2d(xt, 2, 2, return_indices=True),
                     "backward": lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                         gyt, xt, [2, 2], [2, 2], [0, 0], [1, 1], False, it)}
        ops = {"forward": (lambda: K.max_pool2d_forward(x, *pool), lambda: K.max_pool2d_forward_ref(x, *pool),
                           F32 * (x.size + y.size) + 8 * y.size),
               "backward": (lambda: K.max_pool2d_backward(gy, idx, x.shape),
                            lambda: K.max_pool2d_backward_ref(gy, idx, x.shape), F32 * (gy.size + x.size) + 8 * y.size)}
        for op, (fn, ref, nbytes) in ops.items():
            rows.append(dict(width=c, layer=layer, op=op, path="2x2" if op == "forward" else "scatter",
                             shape="x" + "x".join(map(str, x_shape)),
                             ms=1e3 * _median_time(fn, repeats),
                             ref_ms=1e3 * _median_time(ref, 1) if reference else None,
                             torch_ms=1e3 * _median_time(t_ops[op], repeats) if op in t_ops else None,
                             flops=0.0, bytes=float(nbytes), kernel=f"max_pool2d_{op}"))
    return rows


# ------------------------------------------------------------- the memory-bound norm ops


def _norm_rows(c, batch, repeats, torch, reference, rng):
    rows = []
    for layer, family, x_shape in norm_cases(c, batch):
        for op, (fn, ref, t_fn, elements, passes) in norm_ops(family, x_shape, rng, torch).items():
            rows.append(dict(width=c, layer=layer, op=op, path=f"{passes} pass" + ("es" if passes > 1 else ""),
                             shape="x" + "x".join(map(str, x_shape)),
                             ms=1e3 * _median_time(fn, repeats),
                             ref_ms=1e3 * _median_time(ref, 1) if reference else None,
                             torch_ms=1e3 * _median_time(t_fn, repeats) if t_fn is not None else None,
                             flops=0.0, bytes=float(F32 * elements), kernel=f"{family}_{op}"))
    return rows


def _shape_str(x_shape, w_shape):
    return "x" + "x".join(map(str, x_shape)) + " w" + "x".join(map(str, w_shape))


# ------------------------------------------------------------------------- JIT compile time


def _first_calls():
    """Time the first call of every kernel path on tiny float32 inputs; print JSON (subprocess)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 8, 8)).astype(np.float32)
    times = {}

    def first(name, fn):
        t = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - t

    for path, w_shape, stride, padding, groups in [("im2col+BLAS", (2, 2, 5, 5), (2, 2), (2, 2), 1),
                                                   ("depthwise", (2, 1, 3, 1), (1, 1), (1, 0), 2)]:
        w = rng.standard_normal(w_shape).astype(np.float32)
        args = (stride, padding, (1, 1), groups)
        y_shape = (2, w_shape[0]) + tuple(K.conv2d_output_size(8, w_shape[2 + a], stride[a], padding[a], 1)
                                          for a in range(2))
        gy = rng.standard_normal(y_shape).astype(np.float32)
        first(f"conv2d_forward[{path}]", lambda: K.conv2d_forward(x, w, *args))
        first(f"conv2d_backward_input[{path}]", lambda: K.conv2d_backward_input(gy, w, x.shape, *args))
        # a layer with this few taps takes the dot-product weight-gradient kernel
        first(f"conv2d_backward_weight[{'dots' if path != 'depthwise' else path}]",
              lambda: K.conv2d_backward_weight(x, gy, w.shape, *args))
    # a layer with many taps takes the im2col + BLAS kernel
    w = rng.standard_normal((64, 4, 5, 5)).astype(np.float32)
    x4 = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    gy = rng.standard_normal((2, 64, 4, 4)).astype(np.float32)
    first("conv2d_backward_weight[im2col+BLAS]",
          lambda: K.conv2d_backward_weight(x4, gy, w.shape, (2, 2), (2, 2), (1, 1), 1))
    # the pointwise kernels serve only large layers: call them directly
    x3, w2, g3 = x.reshape(2, 2, 64), np.ones((3, 2), np.float32), np.ones((2, 3, 64), np.float32)
    for path, forward, weight in [
            ("streaming", pointwise.pointwise_forward_kernel, pointwise.pointwise_backward_weight_kernel),
            ("BLAS", pointwise.pointwise_blas_forward_kernel, pointwise.pointwise_blas_backward_weight_kernel)]:
        first(f"conv2d_forward[{path}]", lambda: forward(x3, w2))
        times[f"conv2d_backward_input[{path}]"] = 0.0  # the forward kernel again
        first(f"conv2d_backward_weight[{path}]", lambda: weight(x3, g3, 2))
    pool = ((2, 2), (2, 2), (0, 0), (1, 1), False)
    first("max_pool2d_forward", lambda: K.max_pool2d_forward(x, *pool))
    y, idx = K.max_pool2d_forward(x, *pool)
    first("max_pool2d_backward", lambda: K.max_pool2d_backward(y, idx, x.shape))
    # the norm ops in the table's order (SubSpectralNorm runs batch norm's loops, compiled by then)
    for family, shape in [("freq_norm", (2, 1, 8, 6)), ("batch_norm", (2, 2, 8, 6)), ("sub_spectral_norm", (2, 2, 8, 6)),
                          ("freq_mean", (2, 2, 8, 6)), ("broadcast_residual_relu", (2, 2, 8, 6))]:
        for op, (fn, *_) in norm_ops(family, shape, rng, None).items():
            first(f"{family}_{op}", fn)
    print(json.dumps(times))


def measure_jit_times(timeout=900):
    """{kernel: (cold compile s, cached load s)} from two fresh interpreters sharing a new,
    initially empty Numba cache directory. Helpers shared by several kernels are compiled
    with the first one that needs them."""
    code = "from benchmarks.kernels import _first_calls; _first_calls()"
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                 timeout=timeout, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {name: (runs[0][name], runs[1].get(name)) for name in runs[0]}


# ------------------------------------------------------------------------------ the report


def run_kernel_benchmarks(widths=(10, 80), batch=64, repeats=5, torch=True, reference=True, jit=True):
    """Benchmark every kernel at BC-ResNet-Mod's shapes; returns a list of dict rows.

    Row keys: width, layer, op, path, shape, ms (median), ref_ms, torch_ms, speedup_vs_torch,
    gflops, gbs, roof (achieved fraction of the roofline max(flops/peak, bytes/bandwidth)),
    jit_cold_s, jit_cached_s, the machine's peak_gflops / peak_gbs and its loadavg at the start.
    """
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    jit_times = measure_jit_times() if jit else {}
    tm = _torch_module(torch)
    peak_gflops, peak_gbs = measure_peaks()
    # other processes on the machine distort every timing: the table says how busy it was
    loadavg = " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"
    rng = np.random.default_rng(0)
    rows = []
    for c in widths:
        rows += _conv_rows(c, batch, repeats, tm, reference, rng)
        rows += _pool_rows(c, batch, repeats, tm, reference, rng)
        rows += _norm_rows(c, batch, repeats, tm, reference, rng)
    for row in rows:
        t = row["ms"] / 1e3
        row["gflops"] = row["flops"] / t / 1e9
        row["gbs"] = row["bytes"] / t / 1e9
        row["roof"] = max(row["flops"] / 1e9 / peak_gflops, row["bytes"] / 1e9 / peak_gbs) / t
        row["speedup_vs_torch"] = row["torch_ms"] / row["ms"] if row["torch_ms"] else None
        cold, cached = jit_times.get(row.pop("kernel"), (None, None))
        row["jit_cold_s"], row["jit_cached_s"] = cold, cached
        row["peak_gflops"], row["peak_gbs"] = peak_gflops, peak_gbs
        row["loadavg"] = loadavg
    return rows


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def format_table(rows):
    """A fixed-width text table of run_kernel_benchmarks' rows, with the machine's peaks."""
    if not rows:
        return "(no rows)"
    head = (f"{'c':>3} {'layer':<22} {'op':<15} {'path':<11} {'ms':>8} {'ref ms':>9} {'torch ms':>9} "
            f"{'x torch':>7} {'GFLOP/s':>8} {'GB/s':>6} {'roof%':>6} {'jit cold s':>10} {'cached s':>8}")
    lines = [f"peak: float32 matmul {rows[0]['peak_gflops']:.0f} GFLOP/s, copy {rows[0]['peak_gbs']:.1f} GB/s "
             f"(read+write); {numba.get_num_threads()} Numba threads; load average {rows[0]['loadavg']}; "
             "median times",
             "roof% = time the roofline allows (flops at peak or bytes at copy bandwidth) / time taken; over 100 "
             "when the data stays in cache. jit 0.00 = compiled with an earlier row's kernel.",
             head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['width']:>3} {r['layer']:<22} {r['op']:<15} {r['path']:<11} {r['ms']:>8.2f} "
                     f"{_fmt(r['ref_ms'], '9.1f')} {_fmt(r['torch_ms'], '9.2f')} "
                     f"{_fmt(r['speedup_vs_torch'], '7.2f')} {r['gflops']:>8.1f} {r['gbs']:>6.1f} "
                     f"{100 * r['roof']:>6.1f} {_fmt(r['jit_cold_s'], '10.2f')} {_fmt(r['jit_cached_s'], '8.3f')}")
    return "\n".join(lines)


def write_rows(rows, path):
    """CSV when path ends in .csv, JSON otherwise; written atomically (all of it or nothing)."""
    from tinyasc.fileio import atomic_write_text

    if str(path).lower().endswith(".csv"):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buf.getvalue())
    else:
        atomic_write_text(path, json.dumps(rows, indent=1))


def main(widths=(10, 80), batch=64, repeats=5, torch=True, reference=True, jit=True, out=None):
    """Run, print the table, write rows to out (CSV or JSON) if given; returns the rows."""
    rows = run_kernel_benchmarks(widths=widths, batch=batch, repeats=repeats, torch=torch,
                                 reference=reference, jit=jit)
    print(format_table(rows))
    if out:
        write_rows(rows, out)
    return rows


if __name__ == "__main__":
    from tinyasc.kernels.runtime import configure_runtime

    configure_runtime()  # the settings the command line applies (tinyasc/kernels/runtime.py)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[10, 80], help="BC-ResNet-Mod width c")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per kernel (the median is reported)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) NumPy references")
    parser.add_argument("--no-jit", action="store_true", help="skip the cold/cached compile-time subprocesses")
    parser.add_argument("--out", help="write the rows to this .csv or .json file")
    a = parser.parse_args()
    main(widths=tuple(a.widths), batch=a.batch, repeats=a.repeats, torch=not a.no_torch,
         reference=not a.no_reference, jit=not a.no_jit, out=a.out)
