"""The CPU dropout kernels at each SIMD level, against np.multiply on the same array.

    python benchmarks/fused_levels.py [--threads 1] [--exps 14 17 20 22] [--repeats 15]

Float32, p = 0.1, 16-bit draws, into preallocated outputs: the forward with its packed
mask, the backward from that mask and the backward from the seed, at each level that
`fastdrop.simd_levels()` lists (avx512: the AVX-512 Philox tile and, since 90dff01, the
fused float32/float64 rows with mask registers; avx2: the AVX2 tile and rows). Each
figure is the best of `--repeats` batches; the levels alternate within each size, so a
busy machine slows them alike. Prints a Markdown table.
"""
from __future__ import annotations

import argparse

import numpy as np

import fastdrop as fd
from fastdrop._cpu import _philox

try:  # run as a file (python benchmarks/...py) or imported from the package
    from common import best_of as _best
except ImportError:
    from .common import best_of as _best


def _aligned(n: int, align: int) -> np.ndarray:
    """n float32 elements whose address is `align` bytes past a 64-byte boundary
    (NumPy's own large arrays are often 16 bytes past one)."""
    raw = np.empty(4 * n + 128, np.uint8)
    off = (-raw.ctypes.data) % 64 + align
    return raw[off:off + 4 * n].view(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--exps", type=int, nargs="+", default=[14, 17, 20, 22])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--align", type=int, default=0, choices=[0, 16, 32, 48],
                    help="bytes past a 64-byte boundary of every array")
    args = ap.parse_args()
    nt = args.threads
    levels = [lv for lv in ("avx2", "avx512") if lv in fd.simd_levels()]
    print(f"float32, p=0.1, bits=16, {nt} thread(s), best of {args.repeats}; arrays "
          f"{args.align} bytes past a 64-byte boundary; levels {levels}\n")
    print("| n | level | np.multiply | forward + mask | backward (mask) | backward (seed) "
          "| forward / multiply |")
    print("|---|---|---|---|---|---|---|")
    previous = _philox.get_simd_level()
    try:
        for e in args.exps:
            n = 1 << e
            x, y, g, dx = (_aligned(n, args.align) for _ in range(4))
            x[:] = np.random.default_rng(e).random(n, dtype=np.float32)
            g[:] = 1.0
            mask = np.empty((n + 7) // 8, np.uint8)
            reps = max(2, min(2000, (1 << 24) // n))
            fns = (lambda: np.multiply(x, np.float32(1.1), out=y),
                   lambda: fd.dropout(x, 0.1, seed=1, out=y, n_threads=nt, mask_out=mask,
                                      return_mask=True),
                   lambda: fd.dropout_backward(g, 0.1, mask=mask, out=dx, n_threads=nt),
                   lambda: fd.dropout_backward(g, 0.1, seed=1, out=dx, n_threads=nt))
            times = {lv: [float("inf")] * len(fns) for lv in levels}
            for _ in range(3):  # rounds: the levels alternate
                for lv in levels:
                    _philox.set_simd_level(lv)
                    fns[1]()
                    for i, fn in enumerate(fns):
                        times[lv][i] = min(times[lv][i], _best(fn, reps, args.repeats // 3 or 1))
            for lv in levels:
                t = times[lv]
                print(f"| 2^{e} | {lv} | {t[0] * 1e6:.1f} us | {t[1] * 1e6:.1f} us "
                      f"| {t[2] * 1e6:.1f} us | {t[3] * 1e6:.1f} us | {t[1] / t[0]:.2f} |",
                      flush=True)
    finally:
        _philox.set_simd_level(previous)


if __name__ == "__main__":
    main()
