"""random_bits throughput beside NumPy's Philox and out.fill(), in one run.

    python benchmarks/rng_report.py [--log2n 24] [--repeats 15] [--threads 1 2]
"""
import sys

from fastdrop.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench-rng", *sys.argv[1:]]))
