"""`fastdrop bench --bounds`: how near each kernel is to its two bounds.

A dropout kernel is bound by whichever is slower on the machine at hand: moving its bytes
(the memory bound) or making the random draws it needs (the generator bound). For each
size and thread count this view measures, in interleaved rounds:

- the kernel: the fastdrop call itself (forward with and without the packed mask, the
  backward from the packed mask and from the seed, mask generation);
- the memory bound: a memory-bound operation on the same arrays (``np.multiply(x, 2.0,
  out=y)``; a copy of the same bytes for float16 and bfloat16, whose multiply NumPy does in
  scalar code), scaled to the bytes the kernel must move (BYTES in bench.py: x read, y
  written, the packed mask's n/8 bytes);
- the generator bound: ``random_bits`` into a buffer that stays in cache (one grain,
  ``GRAIN`` = 2^17 draws, per thread), at the call's bits and thread count, scaled to the n
  draws the kernel makes. The backward from a packed mask draws nothing: no generator bound.

The threads are those the kernel runs on: one below two grains (2^18 elements), else the
thread count asked for, at most one per grain (fastdrop._cpu's policy).

The table gives the kernel's time over each bound ("x memory", "x generator"; 1.00 = at
the bound) and names the binding bound, the larger of the two: the kernel is "near" it
when its ratio is close to 1. The JSON document (``--json``) gets a "bounds" list, one
entry per row.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .measure import interleaved_times

GRAIN = 1 << 17   # elements per thread at most (fastdrop/_cpu/_dropout.pyx: GRAIN)
KERNELS = ("forward", "forward_nomask", "backward_mask", "backward_seed", "mask")
TITLES = {
    "forward": "forward, packed mask",
    "forward_nomask": "forward, no mask",
    "backward_mask": "backward from the packed mask",
    "backward_seed": "backward from the seed",
    "mask": "mask generation, packed",
}


def kernel_threads(n: int, threads: int) -> int:
    """The threads fastdrop's CPU kernels run n elements on, for a call asking `threads`."""
    if n < 2 * GRAIN:
        return 1
    return max(1, min(threads, n // GRAIN))


def _timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, np.ndarray]:
    """Interleaved rounds; calls shorter than ~2 ms are timed in calibrated batches."""
    inner = {}
    for k, f in fns.items():
        f()
        t0 = time.perf_counter()
        f()
        inner[k] = max(1, min(1000, int(2e-3 / max(time.perf_counter() - t0, 1e-7))))

    def batched(f, m):
        def run():
            for _ in range(m):
                f()
        return run
    times = interleaved_times({k: batched(f, inner[k]) for k, f in fns.items()}, repeats,
                              warmup=0)
    return {k: v / inner[k] for k, v in times.items()}


def measure_bounds(log2n: int, dtype: np.dtype, p: float, threads: int, bits: int,
                   repeats: int) -> list[dict]:
    """One row per kernel at n = 2**log2n on `threads` threads (see the module's doc)."""
    import fastdrop

    n = 1 << log2n
    s = dtype.itemsize
    x = np.empty(n, dtype)
    x[...] = np.random.default_rng(0).standard_normal(n).astype(dtype)
    y = np.zeros(n, dtype)
    g = np.full(n, 0.25, dtype)
    dx = np.zeros(n, dtype)
    _, packed = fastdrop.dropout(x, p, seed=1, bits=bits, return_mask=True, n_threads=threads)
    two = dtype.type(2.0)
    t = kernel_threads(n, threads)
    gen_n = GRAIN * t  # draws per generator call: one grain per thread, in cache
    gen_dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[bits]
    gbuf = np.empty(gen_n, gen_dtype)

    if s == 2:
        xw, yw = x.view(np.uint16), y.view(np.uint16)
        mem_label = "copy of the same bytes"

        def mem():
            np.copyto(yw, xw)
    else:
        mem_label = "np.multiply(x, 2.0, out=y)"

        def mem():
            np.multiply(x, two, out=y)

    fns = {
        "memory": mem,
        "generator": lambda: fastdrop.random_bits(gen_n, seed=1, bits=bits, out=gbuf,
                                                  n_threads=t),
        "forward": lambda: fastdrop.dropout(x, p, seed=1, bits=bits, return_mask=True,
                                            out=y, n_threads=threads),
        "forward_nomask": lambda: fastdrop.dropout(x, p, seed=1, bits=bits, out=y,
                                                   n_threads=threads),
        "backward_mask": lambda: fastdrop.dropout_backward(g, p, mask=packed, bits=bits,
                                                           out=dx, n_threads=threads),
        "backward_seed": lambda: fastdrop.dropout_backward(g, p, seed=1, bits=bits, out=dx,
                                                           n_threads=threads),
        "mask": lambda: fastdrop.dropout_mask(n, p, seed=1, bits=bits, n_threads=threads),
    }
    times = _timed(fns, repeats)
    mem_bytes = 2 * n * s          # what the memory-bound operation moves
    kernel_bytes = {"forward": 2 * n * s + n // 8, "forward_nomask": 2 * n * s,
                    "backward_mask": 2 * n * s + n // 8, "backward_seed": 2 * n * s,
                    "mask": n // 8}
    draws = {"forward": n, "forward_nomask": n, "backward_mask": 0, "backward_seed": n,
             "mask": n}
    rows = []
    for k in KERNELS:
        # per round: the bounds scaled from the same round's measurements
        mem_t = times["memory"] * (kernel_bytes[k] / mem_bytes)
        gen_t = times["generator"] * (draws[k] / gen_n) if draws[k] else None
        kt = times[k]
        x_mem = float(np.median(kt / mem_t))
        x_gen = None if gen_t is None else float(np.median(kt / gen_t))
        mem_med = float(np.median(mem_t))
        gen_med = None if gen_t is None else float(np.median(gen_t))
        binding = "memory" if gen_med is None or mem_med >= gen_med else "generator"
        rows.append({
            "kernel": k, "label": TITLES[k], "log2n": log2n, "n": n, "threads": threads,
            "kernel_threads": t, "bits": bits, "dtype": dtype.name,
            "kernel_s": float(np.median(kt)), "memory_s": mem_med, "generator_s": gen_med,
            "x_memory": x_mem, "x_generator": x_gen, "bound": binding,
            "memory_op": mem_label,
        })
    return rows


def format_bounds(rows: list[dict]) -> str:
    """The bounds table: per kernel, size and thread count."""
    if not rows:
        return ""
    r0 = rows[0]
    lines = [f"== bounds: dtype {r0['dtype']}, bits {r0['bits']}; memory: {r0['memory_op']} "
             f"scaled to the kernel's bytes; generator: random_bits in cache, scaled to its "
             f"draws; x: kernel time / bound (medians of per-round ratios) =="]
    for k in KERNELS:
        sub = [r for r in rows if r["kernel"] == k]
        if not sub:
            continue
        lines += ["", f"-- {TITLES[k]} --",
                  f"{'n':>5s} {'threads':>7s} {'kernel ms':>10s} {'memory ms':>10s} "
                  f"{'gen ms':>9s} {'x memory':>9s} {'x gen':>7s}  bound"]
        for r in sub:
            gen = "-" if r["generator_s"] is None else f"{r['generator_s'] * 1e3:9.3f}"
            xg = "-" if r["x_generator"] is None else f"{r['x_generator']:7.2f}"
            thr = f"{r['threads']}" + (f"({r['kernel_threads']})"
                                       if r["kernel_threads"] != r["threads"] else "")
            lines.append(f"{'2^' + str(r['log2n']):>5s} {thr:>7s} {r['kernel_s'] * 1e3:10.3f} "
                         f"{r['memory_s'] * 1e3:10.3f} {gen:>9s} {r['x_memory']:9.2f} "
                         f"{xg:>7s}  {r['bound']}")
    lines.append("")
    lines.append("threads: asked (run on, where the grain gives fewer)")
    return "\n".join(lines)
