"""Benchmark of one BC-ResNet-Mod training step: tinyasc against PyTorch, side by side.

A step is forward, cross-entropy, backward and an SGD update (momentum 0.9, weight
decay 1e-3), on random 256 x T log-mel input. Each configuration runs in a fresh
subprocess so that its peak resident memory is its own; PyTorch (when installed) runs
with the same thread count. Also reported: the per-op breakdown of one tinyasc step
(tinyasc.autograd.profile) and inference time per clip.
"""
import json
import os
import subprocess
import sys
import time


def _measure(framework, width, batch, frames, repeats, threads, profile):
    """Runs inside the subprocess; returns a dict of timings."""
    import resource

    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 256, frames)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    result = {"framework": framework, "width": width, "batch": batch, "frames": frames, "threads": threads}
    if framework == "tinyasc":
        import tinyasc as ta
        from tinyasc.autograd import profile as op_profile
        from tinyasc.models import BCResNetMod
        from tinyasc.train.classifier import train_step

        model = BCResNetMod(width)
        opt = ta.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
        start = time.perf_counter()
        train_step(model, opt, x, y)
        result["first_step_s"] = time.perf_counter() - start  # includes loading Numba's cache / JIT
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            train_step(model, opt, x, y)
            times.append(time.perf_counter() - start)
        if profile:
            with op_profile() as prof:
                train_step(model, opt, x, y)
            result["profile"] = prof.table(20)
        model.eval()
        clip = x[:1]
        with ta.no_grad():
            model(ta.Tensor(clip))
            start = time.perf_counter()
            for _ in range(5):
                model(ta.Tensor(clip))
        result["inference_ms_per_clip"] = 1000 * (time.perf_counter() - start) / 5
    else:
        import torch

        from tinyasc.testing.torch_reference import BCResNetModTorch

        torch.set_num_threads(threads)
        model = BCResNetModTorch(width)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            loss = torch.nn.functional.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()

        start = time.perf_counter()
        step()
        result["first_step_s"] = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            model(xt[:1])
            start = time.perf_counter()
            for _ in range(5):
                model(xt[:1])
        result["inference_ms_per_clip"] = 1000 * (time.perf_counter() - start) / 5
    result["step_s_median"] = float(np.median(times))
    result["step_s_min"] = float(np.min(times))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_one(framework, width, batch, frames=334, repeats=5, threads=2, profile=False):
    """Measure one configuration in a fresh Python process; returns its result dict."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    code = ("import json, sys; from tinyasc.bench_step import _measure; "
            f"print('RESULT' + json.dumps(_measure({framework!r}, {width}, {batch}, {frames}, {repeats}, "
            f"{threads}, {profile})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"{framework} benchmark failed:\n{proc.stderr[-2000:]}")


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


CONFIGS = ((10, 64), (80, 16))  # the two targets: c=10 batch 64, c=80 batch 16


def run(configs=CONFIGS, frames=334, repeats=5, threads=2, log=print):
    rows = []
    use_torch = torch_available()
    if not use_torch:
        log("PyTorch is not installed: tinyasc only (pip install torch==2.13.0 for the comparison)")
    for width, batch in configs:
        ours = run_one("tinyasc", width, batch, frames, repeats, threads, profile=True)
        theirs = run_one("torch", width, batch, frames, repeats, threads) if use_torch else None
        rows.append((ours, theirs))
        log(format_row(ours, theirs))
    return rows


def format_row(ours, theirs):
    head = f"c={ours['width']}, batch {ours['batch']}, 256x{ours['frames']}, {ours['threads']} threads"
    lines = [head,
             f"  tinyasc: step {ours['step_s_median']:.3f} s (min {ours['step_s_min']:.3f}), first step "
             f"{ours['first_step_s']:.2f} s, peak RSS {ours['peak_rss_mb']:.0f} MB, "
             f"inference {ours['inference_ms_per_clip']:.1f} ms/clip"]
    if theirs:
        ratio = ours["step_s_median"] / theirs["step_s_median"]
        lines.append(f"  PyTorch: step {theirs['step_s_median']:.3f} s (min {theirs['step_s_min']:.3f}), "
                     f"peak RSS {theirs['peak_rss_mb']:.0f} MB, inference {theirs['inference_ms_per_clip']:.1f} ms/clip")
        lines.append(f"  tinyasc / PyTorch step time: {ratio:.2f}")
    if ours.get("profile"):
        lines.append("  tinyasc per-op breakdown of one step:")
        lines.extend("    " + line for line in ours["profile"].splitlines())
    return "\n".join(lines)
