"""Dropout forward/backward beside np.multiply, NumPy's naive dropout and PyTorch, in one run.

    python benchmarks/dropout_report.py [--log2n 24] [--p 0.5] [--repeats 11] [--threads 2]
"""
import sys

from fastdrop.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench-dropout", *sys.argv[1:]]))
