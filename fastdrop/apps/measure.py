"""Side-by-side timing helpers for `python -m fastdrop` and benchmarks/ scripts.

Contenders are timed in interleaved rounds (A, B, C, A, B, C, ...) and reported as
medians, so that a noisy, shared machine slows every contender alike.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Callable

import numpy as np

from fastdrop import (dropout, dropout_backward, get_simd_level, omp_max_threads, openmp_enabled,
                      random_bits)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} cores; OpenMP {'on' if openmp_enabled() else 'off'}"
            f" (max threads {omp_max_threads()}); Philox kernel {get_simd_level()}")


def interleaved_times(contenders: dict[str, Callable[[], object]], repeats: int,
                      warmup: int = 2) -> dict[str, np.ndarray]:
    """Seconds of each callable in each round, timed round-robin."""
    for f in contenders.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, f in contenders.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return {k: np.array(v) for k, v in times.items()}


def interleaved_medians(contenders: dict[str, Callable[[], object]], repeats: int,
                        warmup: int = 2) -> dict[str, float]:
    """Median seconds of each callable, timed round-robin."""
    return {k: float(np.median(v)) for k, v in interleaved_times(contenders, repeats, warmup).items()}


def round_ratios(times: dict[str, np.ndarray], base: str) -> dict[str, float]:
    """Median over rounds of (time / time of `base` in the same round): robust to a
    machine whose speed drifts between rounds."""
    return {k: float(np.median(v / times[base])) for k, v in times.items()}


def rng_contenders(n: int, threads: list[int]) -> dict[str, Callable[[], object]]:
    """random_bits against NumPy's Philox and the memory-write limit, n 32-bit words."""
    gen = np.random.Generator(np.random.Philox(12345))
    out = np.empty(n, np.uint32)
    out.fill(0)  # touch the pages once, so "out=" times exclude page faults
    cont: dict[str, Callable[[], object]] = {
        "numpy Philox integers(uint32)": lambda: gen.integers(0, 2**32, size=n, dtype=np.uint32),
        "numpy Philox random_raw (n/2 uint64)": lambda: gen.bit_generator.random_raw(n // 2),
        "out.fill (write limit)": lambda: out.fill(7),
    }
    for t in threads:
        cont[f"fastdrop random_bits, {t} thr"] = (
            lambda t=t: random_bits(n, seed=1, stream=2, n_threads=t))
        cont[f"fastdrop random_bits out=, {t} thr"] = (
            lambda t=t: random_bits(n, seed=1, stream=2, out=out, n_threads=t))
    return cont


def rng_report(log2n: int = 24, repeats: int = 15, threads: list[int] | None = None) -> str:
    """A text table: median time, GB/s and ratios for random_bits and its baselines."""
    n = 1 << log2n
    threads = threads or sorted({1, max(1, omp_max_threads())})
    times = interleaved_times(rng_contenders(n, threads), repeats)
    nbytes = 4 * n
    vs_numpy = round_ratios(times, "numpy Philox integers(uint32)")
    vs_fill = round_ratios(times, "out.fill (write limit)")
    lines = [machine_line(),
             f"random 32-bit words: n = 2^{log2n} ({nbytes / 2**20:.0f} MiB), "
             f"{repeats} interleaved rounds (ratios: median of per-round ratios)",
             f"{'contender':40s} {'median ms':>10s} {'GB/s':>7s} {'x numpy':>8s} {'/ fill':>7s}"]
    for name, t in times.items():
        tm = float(np.median(t))
        lines.append(f"{name:40s} {tm * 1e3:10.3f} {nbytes / tm / 1e9:7.2f} "
                     f"{1 / vs_numpy[name]:8.2f} {vs_fill[name]:7.2f}")
    return "\n".join(lines)


def dropout_contenders(n: int, p: float, threads: int) -> dict[str, Callable[[], object]]:
    """Forward/backward of fastdrop beside np.multiply (the memory-bound limit), NumPy's
    naive dropout and, when installed, PyTorch's, all on the same float32 arrays."""
    rng = np.random.default_rng(0)
    x = rng.random(n, dtype=np.float32)
    y = np.empty_like(x)
    y.fill(0)
    g = rng.random(n, dtype=np.float32)
    dx = np.empty_like(x)
    dx.fill(0)
    _, mask = dropout(x, p, seed=1, return_mask=True)
    gen = np.random.default_rng(1)
    cont: dict[str, Callable[[], object]] = {
        "np.multiply(x, 2.0, out=y)": lambda: np.multiply(x, 2.0, out=y),
        "fastdrop forward + packed mask": lambda: dropout(
            x, p, seed=1, return_mask=True, out=y, n_threads=threads),
        "fastdrop forward, no mask": lambda: dropout(x, p, seed=1, out=y, n_threads=threads),
        "fastdrop backward, packed mask": lambda: dropout_backward(
            g, p, mask=mask, out=dx, n_threads=threads),
        "fastdrop backward, from seed": lambda: dropout_backward(
            g, p, seed=1, out=dx, n_threads=threads),
        "numpy naive x*(rng.random>=p)/(1-p)": lambda: x * (gen.random(x.shape) >= p) / (1 - p),
    }
    try:
        import torch
    except ImportError:
        return cont
    torch.set_num_threads(threads)
    tx = torch.from_numpy(x)
    cont["torch.nn.functional.dropout"] = lambda: torch.nn.functional.dropout(tx, p, True)
    cont["torch.native_dropout (y, bool mask)"] = lambda: torch.native_dropout(tx, p, True)
    return cont


def forward_temporary_bytes(n: int, p: float) -> int:
    """Peak bytes NumPy allocates during a forward call beyond y and the packed mask
    (tracemalloc sees every NumPy array allocation)."""
    import tracemalloc

    x = np.ones(n, np.float32)
    y = np.empty_like(x)
    dropout(x, p, seed=1, out=y, return_mask=True)  # warm-up
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    _, mask = dropout(x, p, seed=1, out=y, return_mask=True)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak - mask.nbytes


def dropout_report(log2n: int = 24, p: float = 0.5, repeats: int = 11,
                   threads: int | None = None) -> str:
    """A text table of median times and ratios to np.multiply, float32, n = 2**log2n."""
    n = 1 << log2n
    threads = threads or max(1, omp_max_threads())
    times = interleaved_times(dropout_contenders(n, p, threads), repeats)
    ratio = round_ratios(times, "np.multiply(x, 2.0, out=y)")
    vs_fwd = round_ratios(times, "fastdrop forward + packed mask")
    lines = [machine_line(),
             f"dropout float32, n = 2^{log2n} ({4 * n / 2**20:.0f} MiB), p = {p}, "
             f"{threads} threads, {repeats} interleaved rounds",
             f"{'contender':40s} {'median ms':>10s} {'/ multiply':>11s}  (median of per-round ratios)"]
    for name, t in times.items():
        lines.append(f"{name:40s} {np.median(t) * 1e3:10.3f} {ratio[name]:11.2f}")
    for name in ("torch.nn.functional.dropout", "numpy naive x*(rng.random>=p)/(1-p)"):
        if name in times:
            lines.append(f"fastdrop forward + mask is {vs_fwd[name]:.1f}x faster than {name}")
    lines.append(f"forward temporaries beyond y and the mask: "
                 f"{forward_temporary_bytes(n, p)} bytes on the heap "
                 f"(plus 1 KiB of stack per thread on the fused path, at most 26 KiB on the "
                 f"general one)")
    return "\n".join(lines)
