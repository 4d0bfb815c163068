"""GPU benchmark: fastdrop's CUDA dropout against PyTorch and a device-to-device copy.

On a machine with an NVIDIA GPU and numba-cuda (``pip install fastdrop[cuda]``):

    python benchmarks/gpu_bench.py [--sizes 24 28] [--repeat 20] [--warmup 3]

For float32 and bfloat16 at 2**24 and 2**28 elements it times, with CUDA events (median of
`--repeat` runs after `--warmup` runs):

- fastdrop forward with the packed mask (``dropout(x, p, seed, return_mask=True)``);
- fastdrop backward from the packed mask (``dropout_backward(dy, p, mask=...)``);
- ``torch.nn.functional.dropout`` and ``torch.native_dropout`` (forward; they store a
  bool mask of n bytes), when PyTorch with CUDA is installed;
- a device-to-device copy of the bytes the forward must move, the memory-bound limit.

Achieved bandwidth counts the bytes each operation must move: forward reads x, writes y
and writes n/8 mask bytes; backward reads dy and the mask and writes dx.  Ratios are
against the copy of the same byte count.  Without a GPU it prints why and exits with
status 2.  No figure has been measured yet: see docs/gpu.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys


def _no_gpu(reason: str) -> int:
    print(f"gpu_bench: no GPU benchmark possible: {reason}", file=sys.stderr)
    return 2


def _events_time(cuda, fn, repeat: int, warmup: int) -> float:
    """Median milliseconds of fn() measured with CUDA events on the default stream."""
    for _ in range(warmup):
        fn()
    cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cuda.event_elapsed_time(start, stop))
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[24, 28],
                    help="log2 of the element counts (default: 24 28)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--p", type=float, default=0.1)
    args = ap.parse_args(argv)

    try:
        import numpy as np
        from numba import cuda
    except ImportError as exc:
        return _no_gpu(f"numba-cuda is not installed ({exc}); pip install fastdrop[cuda]")
    try:
        from numba.cuda.core import config
        simulated = bool(config.ENABLE_CUDASIM)
    except ImportError:
        simulated = False
    if simulated:
        return _no_gpu("NUMBA_ENABLE_CUDASIM is set: the simulator cannot be timed")
    try:
        available = cuda.is_available()
    except Exception as exc:
        available, why = False, str(exc)
    else:
        why = "numba.cuda.is_available() is False (no GPU or no driver)"
    if not available:
        return _no_gpu(why)

    import ml_dtypes

    import fastdrop as D  # the public API: CUDA arrays (and CUDA out=) go to the GPU backend
    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

    try:
        import torch
        has_torch = torch.cuda.is_available()
    except ImportError:
        torch, has_torch = None, False

    dev = cuda.get_current_device()
    print(f"device: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name} "
          f"(cc {dev.compute_capability[0]}.{dev.compute_capability[1]}); torch: "
          f"{torch.__version__ if has_torch else 'not available'}")
    print(f"p={args.p}, median of {args.repeat} after {args.warmup} warm-up runs, "
          f"CUDA events\n")
    header = f"{'dtype':9} {'n':>6} {'operation':34} {'ms':>9} {'GB/s':>8} {'vs copy':>8}"
    print(header)
    print("-" * len(header))

    for dtname in ("float32", "bfloat16"):
        dtype = np.dtype(np.float32) if dtname == "float32" else BFLOAT16
        for lg in args.sizes:
            n = 1 << lg
            item = dtype.itemsize
            x = cuda.device_array(n, dtype=np.uint16 if item == 2 else dtype)
            x = x.view(dtype) if item == 2 else x
            D.random_bits(n, seed=1, bits=16 if item == 2 else 32,
                          out=x.view(np.uint16 if item == 2 else np.uint32))
            fwd_bytes = 2 * n * item + n // 8
            bwd_bytes = 2 * n * item + n // 8
            # a copy of B bytes reads B and writes B: half the forward's bytes give the
            # forward's traffic (copying all of them made every ratio look 2x better)
            copy_bytes = fwd_bytes // 2
            copy_src = cuda.device_array(copy_bytes, np.uint8)
            copy_dst = cuda.device_array(copy_bytes, np.uint8)
            rows = []
            t_copy = _events_time(cuda, lambda: copy_dst.copy_to_device(copy_src),
                                  args.repeat, args.warmup)
            copy_traffic = 2 * copy_bytes
            rows.append(("device-to-device copy (same traffic)", t_copy, copy_traffic))
            holder = {}

            def fwd():
                holder["y"], holder["m"] = D.dropout(x, args.p, seed=7, return_mask=True)

            rows.append(("fastdrop forward + packed mask", _events_time(
                cuda, fwd, args.repeat, args.warmup), fwd_bytes))
            mask = holder["m"]
            rows.append(("fastdrop backward (packed mask)", _events_time(
                cuda, lambda: D.dropout_backward(x, args.p, mask=mask), args.repeat,
                args.warmup), bwd_bytes))
            if has_torch:
                tdt = torch.float32 if dtname == "float32" else torch.bfloat16
                xt = torch.randn(n, device="cuda", dtype=tdt)
                torch_bytes = 2 * n * item + n  # torch stores a bool mask: n bytes
                rows.append(("torch F.dropout", _events_time(
                    cuda, lambda: torch.nn.functional.dropout(xt, args.p, training=True),
                    args.repeat, args.warmup), torch_bytes))
                rows.append(("torch.native_dropout", _events_time(
                    cuda, lambda: torch.native_dropout(xt, args.p, True), args.repeat,
                    args.warmup), torch_bytes))
            for label, ms, nbytes in rows:
                gbs = nbytes / (ms * 1e-3) / 1e9
                ratio = t_copy * nbytes / copy_traffic / ms if ms else float("nan")
                print(f"{dtname:9} 2^{lg:<4} {label:34} {ms:9.4f} {gbs:8.1f} {ratio:8.2f}")
            print()
    print("GB/s counts the bytes the operation must move (read plus written); 'vs copy' is "
          "the time a copy moving that traffic takes over the operation's time (1.00 = "
          "memory-bound limit).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
