"""One BC-ResNet-Mod training step, tinyasc against PyTorch (when installed), at the four
configurations of tinyasc.bench_step.CONFIGS (or the ones given).

    python benchmarks/bench_train_step.py [--repeats 5] [--config 10,64,334 ...] [--json FILE]
"""
import argparse
import json

from tinyasc.bench_step import CONFIGS, run
from tinyasc.kernels.runtime import configure_runtime

if __name__ == "__main__":
    configure_runtime()  # the command line's thread and allocator settings (tinyasc/kernels/runtime.py)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=None, metavar="C,BATCH,FRAMES",
                        help="width, batch and frames (default: all of CONFIGS)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-profile", action="store_true", help="skip the per-op breakdown and roofline")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    configs = CONFIGS if not args.config else [tuple(int(v) for v in c.split(",")) for c in args.config]
    rows = run(configs, repeats=args.repeats, threads=args.threads, profile=not args.no_profile)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
