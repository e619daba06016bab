"""One BC-ResNet-Mod training step, tinyasc against PyTorch (when installed).

    python benchmarks/bench_train_step.py [--frames 334] [--repeats 5] [--json FILE]
"""
import argparse
import json

from tinyasc.bench_step import CONFIGS, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=334)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    rows = run(CONFIGS, frames=args.frames, repeats=args.repeats, threads=args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"tinyasc": a, "torch": b} for a, b in rows], f, indent=2)
