"""Benchmark of one BC-ResNet-Mod training step: tinyasc against PyTorch, side by side.

A step is forward, cross-entropy, backward and an SGD update (momentum 0.9, weight
decay 1e-3), on random 256 x T log-mel input. Each configuration runs in its own fresh
subprocess: tinyasc first, alone (its first step, and its peak resident memory before
PyTorch is loaded), then tinyasc and PyTorch (when installed, same thread count)
*alternating* step by step, so that both see the same machine load: the ratio of their
median step times is what the benchmark is for. Other processes on a shared machine
distort absolute times far more than this ratio; the report prints the load average.

Also reported: the per-op breakdown of one tinyasc step (tinyasc.autograd.profile), with
each op's FLOPs and bytes moved set against this machine's roofline (float32 matmul peak
and copy bandwidth, measured in the same subprocess), and inference time per clip.

    python -m benchmarks.train_step [--repeats 5] [--config 10,64,334 ...] [--json FILE]

(`tinyasc bench --what train-step` runs the four CONFIGS.)
"""
import argparse
import json
import os
import subprocess
import sys
import time

F32 = 4

# (width c, batch, frames): c=10 on 3 s and 10 s clips at batch 64 (the paper's recipe), and the
# paper's width c=80 at batch 16 on 10 s clips and batch 64 on 3 s clips
CONFIGS = ((10, 64, 101), (10, 64, 334), (80, 16, 334), (80, 64, 101))


# ------------------------------------------------------------------ FLOPs and bytes per op call


def _size(shape):
    n = 1
    for d in shape or ():
        n *= d
    return n


def op_name(cls):
    """The name _call_cost matches for an autograd Function class: a trailing "Function" dropped."""
    name = cls.__name__
    if name.endswith("Function") and name != "Function":
        name = name[:-len("Function")]
    return name


def _call_cost(record):
    """(flops, bytes) of one recorded op call (tinyasc.autograd.profile(record=True)).

    Bytes are a lower bound: every array the op must read or write, counted once (float32).
    FLOPs count the multiply-adds of convolutions (2 per tap); the rest are memory-bound.
    """
    name, kind, _, cls, params, ins, outs, needs = record
    op = op_name(cls)
    if op == "Conv2d":
        x_shape, w_shape = (ins[0], ins[1]) if kind == "forward" else (ins[1], ins[2])
        y_shape = outs[0] if kind == "forward" else ins[0]
        per_output = 2 * w_shape[1] * w_shape[2] * w_shape[3]
        if kind == "forward":
            return per_output * _size(y_shape), F32 * (_size(x_shape) + _size(w_shape) + _size(y_shape))
        flops = moved = 0
        moved += _size(y_shape)
        if needs[0]:  # input gradient: reads w, writes gx
            flops += per_output * _size(y_shape)
            moved += _size(w_shape) + _size(x_shape)
        if len(needs) > 1 and needs[1]:  # weight gradient: reads x, writes gw
            flops += per_output * _size(y_shape)
            moved += _size(x_shape) + _size(w_shape)
        return flops, F32 * moved
    if kind == "forward":
        elements = sum(_size(s) for s in ins if s is not None) + sum(_size(s) for s in outs if s is not None)
        if op == "MaxPool2d":  # also writes the int64 argmax indices
            elements += 2 * _size(outs[0])
        return 0, F32 * elements
    grad = ins[0]
    produced = [s for s in outs if s is not None]
    if op == "BroadcastResidualReLU":  # gmasked is one array for x2 and x, plus gf1; reads out and g
        return 0, F32 * (2 * _size(grad) + _size(grad) + _size(produced[1]))
    if op == "MaxPool2d":  # reads g and the indices, writes gx
        return 0, F32 * (3 * _size(grad) + _size(produced[0]))
    if op in ("Mean", "Sum", "Reshape", "BroadcastTo"):  # a view or a tiny array
        return 0, F32 * (_size(grad) + (sum(_size(s) for s in produced) if op == "Sum" else 0))
    # (SubSpectralNorm's second gradient, the frequency mean's, is 1/F of the map and not counted)
    reads_input = op in ("BatchNorm", "SubSpectralNorm", "FreqNorm", "SiLU", "Sigmoid", "Tanh",
                         "Mul", "Div")
    elements = _size(grad) + sum(_size(s) for s in produced) + (_size(ins[1]) if reads_input else 0)
    return 0, F32 * elements


def roofline_table(calls, peak_gflops, peak_gbs, top=12):
    """Per op and pass: ms, GFLOP, GB, and the share of the roofline reached: the time the
    machine's peaks allow (max(flops / peak, bytes / bandwidth)) over the time taken."""
    groups = {}
    for record in calls:
        flops, moved = _call_cost(record)
        key = (record[0], record[1])
        g = groups.setdefault(key, [0.0, 0.0, 0.0, 0.0])
        g[0] += record[2]
        g[1] += flops
        g[2] += moved
        g[3] += max(flops / (peak_gflops * 1e9), moved / (peak_gbs * 1e9))
    total = sum(g[0] for g in groups.values()) or 1.0
    lines = [f"{'op':<24}{'pass':<9}{'ms':>8}{'share':>7}{'GFLOP':>8}{'GB':>7}{'GFLOP/s':>9}{'GB/s':>7}"
             f"{'roof%':>7}"]
    for (name, kind), (seconds, flops, moved, ideal) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"{name:<24}{kind:<9}{1e3 * seconds:>8.1f}{100 * seconds / total:>6.1f}%{flops / 1e9:>8.2f}"
                     f"{moved / 1e9:>7.2f}{flops / seconds / 1e9:>9.1f}{moved / seconds / 1e9:>7.1f}"
                     f"{100 * ideal / seconds:>7.1f}")
    ideal = sum(g[3] for g in groups.values())
    lines.append(f"{'all ops':<33}{1e3 * total:>8.1f}{'':>7}{sum(g[1] for g in groups.values()) / 1e9:>8.2f}"
                 f"{sum(g[2] for g in groups.values()) / 1e9:>7.2f}{'':>16}{100 * ideal / total:>7.1f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ the measurement


def _loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def _measure(width, batch, frames, repeats, threads, profile, use_torch):
    """Runs inside the subprocess; returns a dict of timings."""
    import resource

    import numpy as np

    import tinyasc as ta
    from tinyasc.autograd import profile as op_profile
    from tinyasc.kernels.runtime import configure_runtime
    from tinyasc.models import BCResNetMod
    from tinyasc.train import train_step

    from benchmarks.kernels import measure_peaks

    configure_runtime()  # this subprocess runs as `tinyasc` does
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 256, frames)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    result = {"width": width, "batch": batch, "frames": frames, "threads": threads, "load_start": _loadavg()}
    model = BCResNetMod(width)
    opt = ta.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
    start = time.perf_counter()
    train_step(model, opt, x, y)
    result["first_step_s"] = time.perf_counter() - start  # includes loading Numba's cache / JIT
    train_step(model, opt, x, y)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model.eval()
    clip = x[:1]
    with ta.no_grad():
        model(ta.Tensor(clip))
        start = time.perf_counter()
        for _ in range(5):
            model(ta.Tensor(clip))
    result["inference_ms_per_clip"] = 1000 * (time.perf_counter() - start) / 5
    model.train()

    torch_step = None
    if use_torch:
        # PyTorch keeps its own OpenMP defaults, not the passive wait tinyasc sets for Numba
        policy = os.environ.pop("OMP_WAIT_POLICY", None)
        import torch

        from benchmarks.torch_reference import BCResNetModTorch

        if policy is not None:
            os.environ["OMP_WAIT_POLICY"] = policy
        torch.set_num_threads(threads)
        tmodel = BCResNetModTorch(width)
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step():
            loss = torch.nn.functional.cross_entropy(tmodel(xt), yt)
            topt.zero_grad()
            loss.backward()
            topt.step()

        start = time.perf_counter()
        torch_step()
        result["torch_first_step_s"] = time.perf_counter() - start
        torch_step()
        tmodel.eval()
        with torch.no_grad():
            tmodel(xt[:1])
            start = time.perf_counter()
            for _ in range(5):
                tmodel(xt[:1])
        result["torch_inference_ms_per_clip"] = 1000 * (time.perf_counter() - start) / 5
        tmodel.train()

    ours, theirs = [], []
    for _ in range(repeats):  # alternate, so that both frameworks see the same load
        start = time.perf_counter()
        train_step(model, opt, x, y)
        ours.append(time.perf_counter() - start)
        if torch_step is not None:
            start = time.perf_counter()
            torch_step()
            theirs.append(time.perf_counter() - start)
    result["step_s_median"] = float(np.median(ours))
    result["step_s_min"] = float(np.min(ours))
    if theirs:
        result["torch_step_s_median"] = float(np.median(theirs))
        result["torch_step_s_min"] = float(np.min(theirs))
        result["ratio"] = result["step_s_median"] / result["torch_step_s_median"]
    if profile:
        with op_profile(record=True) as prof:
            train_step(model, opt, x, y)
        result["profile"] = prof.table(20)
        peak_gflops, peak_gbs = measure_peaks(3)
        result["peak_gflops"], result["peak_gbs"] = peak_gflops, peak_gbs
        result["roofline"] = roofline_table(prof.calls, peak_gflops, peak_gbs)
    result["load_end"] = _loadavg()
    return result


def run_one(width, batch, frames=334, repeats=5, threads=2, profile=False, use_torch=True):
    """Measure one configuration in a fresh Python process; returns its result dict."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    code = ("import json; from benchmarks.train_step import _measure; "
            f"print('RESULT' + json.dumps(_measure({width}, {batch}, {frames}, {repeats}, {threads}, "
            f"{profile}, {use_torch})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"benchmark of c={width}, batch {batch}, {frames} frames failed:\n{proc.stderr[-2000:]}")


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def run(configs=CONFIGS, repeats=5, threads=2, profile=True, log=print, torch=True):
    """Measure each (width, batch, frames) configuration; log a report per configuration and a
    summary table at the end. torch=False leaves PyTorch out even when it is installed.
    Returns the result dicts."""
    use_torch = torch and torch_available()
    if torch and not use_torch:
        log("PyTorch is not installed: tinyasc only (pip install torch==2.13.0 for the comparison)")
    rows = []
    for width, batch, frames in configs:
        result = run_one(width, batch, frames, repeats, threads, profile, use_torch)
        rows.append(result)
        log(format_row(result))
    log(format_summary(rows))
    return rows


def format_row(r):
    head = (f"c={r['width']}, batch {r['batch']}, 256x{r['frames']}, {r['threads']} threads "
            f"(load average {r['load_start']} at the start, {r['load_end']} at the end)")
    lines = [head,
             f"  tinyasc: step {r['step_s_median']:.3f} s (min {r['step_s_min']:.3f}), first step "
             f"{r['first_step_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
             f"inference {r['inference_ms_per_clip']:.1f} ms/clip"]
    if "ratio" in r:
        lines.append(f"  PyTorch: step {r['torch_step_s_median']:.3f} s (min {r['torch_step_s_min']:.3f}), "
                     f"inference {r['torch_inference_ms_per_clip']:.1f} ms/clip")
        lines.append(f"  tinyasc / PyTorch step time: {r['ratio']:.2f}")
    if r.get("profile"):
        lines.append("  tinyasc per-op breakdown of one step:")
        lines.extend("    " + line for line in r["profile"].splitlines())
    if r.get("roofline"):
        lines.append(f"  against the roofline (float32 matmul {r['peak_gflops']:.0f} GFLOP/s, copy "
                     f"{r['peak_gbs']:.1f} GB/s, measured now; roof% = time the peaks allow / time taken):")
        lines.extend("    " + line for line in r["roofline"].splitlines())
    return "\n".join(lines)


def format_summary(rows):
    lines = ["", "summary (median step, the two frameworks alternating in one process):",
             f"  {'configuration':<28}{'tinyasc s':>10}{'PyTorch s':>10}{'ratio':>7}  load"]
    for r in rows:
        name = f"c={r['width']}, batch {r['batch']}, 256x{r['frames']}"
        theirs = f"{r['torch_step_s_median']:>10.3f}{r['ratio']:>7.2f}" if "ratio" in r else f"{'-':>10}{'-':>7}"
        lines.append(f"  {name:<28}{r['step_s_median']:>10.3f}{theirs}  {r['load_start']}")
    return "\n".join(lines)


if __name__ == "__main__":
    from tinyasc.kernels.runtime import configure_runtime

    configure_runtime()  # the settings the command line applies (tinyasc/kernels/runtime.py)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=None, metavar="C,BATCH,FRAMES",
                        help="width, batch and frames (default: all of CONFIGS)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-op breakdown and roofline")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    configs = CONFIGS if not args.config else [tuple(int(v) for v in c.split(",")) for c in args.config]
    rows = run(configs, repeats=args.repeats, threads=args.threads, profile=not args.no_profile,
               torch=not args.no_torch)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
