"""Draw widths side by side: fastdrop at bits=8, 16 and 32 in one run (issue 14).

A benchmark, not a test.  For each size, in interleaved rounds: np.multiply(x, 2.0, out=y)
(the memory-bound limit), and fastdrop's forward with the packed mask, its backward from
the seed and the packed mask generation at each width.  It prints each call's time over
the limit (medians of per-round ratios) and the speed-up of bits=8 over bits=16.

bits=8 makes half the Philox work of bits=16 (one block serves 16 elements instead of 8),
at the price of p resolved to multiples of 1/256 (docs/contract.md section 3).

    python benchmarks/draw_widths.py [--sizes 12 16 20 24] [--threads 1] [--repeats 9]
"""
from __future__ import annotations

import argparse

import numpy as np

import fastdrop
from fastdrop.apps.measure import interleaved_times

WIDTHS = (8, 16, 32)
OPS = ("forward", "backward_seed", "mask")


def _batched(f, n: int):
    def run():
        for _ in range(n):
            f()
    return run


def measure(log2n: int, threads: int, repeats: int) -> dict:
    n = 1 << log2n
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    y = np.empty_like(x)
    g = np.full(n, 0.25, np.float32)
    dx = np.empty_like(g)
    two = np.float32(2.0)
    fns = {"limit": lambda: np.multiply(x, two, out=y)}
    for b in WIDTHS:
        fns[f"forward/{b}"] = (lambda b=b: fastdrop.dropout(
            x, 0.5, seed=1, bits=b, return_mask=True, out=y, n_threads=threads))
        fns[f"backward_seed/{b}"] = (lambda b=b: fastdrop.dropout_backward(
            g, 0.5, seed=1, bits=b, out=dx, n_threads=threads))
        fns[f"mask/{b}"] = (lambda b=b: fastdrop.dropout_mask(
            n, 0.5, seed=1, bits=b, n_threads=threads))
    inner = max(1, min(1000, (1 << 22) // max(n, 1)))
    times = interleaved_times({k: _batched(f, inner) for k, f in fns.items()}, repeats)
    base = times["limit"]
    out = {k: float(np.median(v / base)) for k, v in times.items() if k != "limit"}
    for op in OPS:
        out[f"{op}/speedup8"] = float(np.median(times[f"{op}/16"] / times[f"{op}/8"]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[12, 16, 20, 24])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    print(f"fastdrop {fastdrop.__version__}, SIMD {fastdrop.get_simd_level()}, "
          f"{args.threads} thread(s), float32, p = 0.5; x limit (np.multiply), medians of "
          f"per-round ratios; speed-up: bits=16 time / bits=8 time")
    print(f"{'n':>5s} {'op':14s} {'bits=8':>7s} {'bits=16':>8s} {'bits=32':>8s} "
          f"{'speed-up 8':>11s}")
    for log2n in args.sizes:
        r = measure(log2n, args.threads, args.repeats)
        for op in OPS:
            print(f"{'2^' + str(log2n):>5s} {op:14s} {r[op + '/8']:7.2f} {r[op + '/16']:8.2f} "
                  f"{r[op + '/32']:8.2f} {r[op + '/speedup8']:10.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
