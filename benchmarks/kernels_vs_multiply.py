"""fastdrop's CPU kernels against np.multiply on the same array (float32 unless
--dtype), one thread, alternating in one process (best of --rounds batches of 20 calls):

    python benchmarks/kernels_vs_multiply.py [--exp 20] [--rounds 30] [--dtype float32]

The forward at bits 16 and 8 into a given output, the forward returning a new output and
its packed mask, and the backward from that mask and from the seed. To compare two builds,
run it with each on PYTHONPATH in turn.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import fastdrop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dtype", default="float32",
                    choices=["float16", "bfloat16", "float32", "float64"])
    args = ap.parse_args()
    n = 1 << args.exp
    if args.dtype == "bfloat16":
        import ml_dtypes
        dtype = ml_dtypes.bfloat16
    else:
        dtype = np.dtype(args.dtype)
    x = np.random.default_rng(0).random(n, dtype=np.float32).astype(dtype)
    y = np.empty_like(x)
    _, mk = fastdrop.dropout(x, 0.1, seed=1, n_threads=1, return_mask=True)
    fs = {"np.multiply": lambda: np.multiply(x, 1.1, out=y),
          "forward, bits=16": lambda: fastdrop.dropout(x, 0.1, seed=1, n_threads=1, out=y),
          "forward, bits=8": lambda: fastdrop.dropout(x, 0.1, seed=1, n_threads=1, out=y,
                                                      bits=8),
          "forward + mask, new output": lambda: fastdrop.dropout(x, 0.1, seed=1, n_threads=1,
                                                                 return_mask=True),
          "backward from the mask": lambda: fastdrop.dropout_backward(
              x, 0.1, mask=mk, n_threads=1, out=y),
          "backward from the seed": lambda: fastdrop.dropout_backward(
              x, 0.1, seed=1, n_threads=1, out=y)}
    best = {k: float("inf") for k in fs}
    for _ in range(args.rounds):
        for k, f in fs.items():
            t = time.perf_counter()
            for _ in range(20):
                f()
            best[k] = min(best[k], (time.perf_counter() - t) / 20)
    print(f"{args.dtype}, n = 2^{args.exp}, one thread, simd {fastdrop.get_simd_level()}, "
          f"best of {args.rounds} batches of 20\n")
    print("| kernel | us | x np.multiply |")
    print("|---|---|---|")
    for k, v in best.items():
        print(f"| {k} | {v * 1e6:.1f} | {v / best['np.multiply']:.2f} |")


if __name__ == "__main__":
    main()
