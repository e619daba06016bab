"""Kernel benchmarks at BC-ResNet-Mod's shapes: a thin script over tinyasc.bench.

    python benchmarks/bench_kernels.py                      # c = 10 and 80, batch 64
    python benchmarks/bench_kernels.py --widths 10 --repeats 3 --no-reference --out kernels.csv
"""
import argparse

from tinyasc.bench import main
from tinyasc.kernels.runtime import configure_runtime

if __name__ == "__main__":
    configure_runtime()  # the command line's thread and allocator settings (tinyasc/kernels/runtime.py)
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
