"""Shared helpers of the asv suite: parameter grids, dtypes, arrays, interleaved timing.

Kept inside benchmarks/ (not in fastdrop) so that the suite runs against old commits.
"""
from __future__ import annotations

import time

import numpy as np

SIZES = [2**10, 2**12, 2**18, 2**24]  # 2^10, 2^12: the per-call cost dominates
DTYPES = ["float32", "bfloat16", "float16", "float64"]
P = 0.5
SEED = 1


def dtype_of(name: str) -> np.dtype:
    """A NumPy dtype by name; bfloat16 through ml_dtypes (skipped when it is missing)."""
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise NotImplementedError("bfloat16 needs ml_dtypes") from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def array(n: int, dtype: np.dtype, value: float = 1.5) -> np.ndarray:
    """n elements of dtype, pages touched (so no first-touch faults in the timings)."""
    a = np.empty(n, dtype)
    a.fill(value)
    return a


def need(module, name: str):
    """module.name, or NotImplementedError (asv: skipped) when this commit lacks it."""
    f = getattr(module, name, None)
    if f is None:
        raise NotImplementedError(f"{module.__name__}.{name} does not exist at this commit")
    return f


def need_bits(bits: int) -> None:
    """NotImplementedError (asv: skipped) at a commit whose draws lack this width (bits=8
    came with issue 14)."""
    import fastdrop
    try:
        fastdrop.effective_p(0.5, bits=bits)
    except ValueError:
        raise NotImplementedError(f"bits={bits} does not exist at this commit") from None


def simd_level_or_skip(level: str):
    """Select the Philox kernel level `level` for this benchmark (restore with the
    returned callable); NotImplementedError where this CPU or commit lacks it."""
    import fastdrop
    levels = getattr(fastdrop, "simd_levels", None)
    if levels is None or level not in levels():
        raise NotImplementedError(f"SIMD level {level} is not available here")
    from fastdrop._cpu import _philox
    before = _philox.get_simd_level()
    _philox.set_simd_level(level)
    return lambda: _philox.set_simd_level(before)


def torch_or_skip():
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed") from None
    return torch


def best_of(fn, reps: int, repeats: int) -> float:
    """Best seconds per call over `repeats` batches of `reps` calls (the standalone
    scripts' timer)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def interleaved(fns: dict, rounds: int = 7, warmup: int = 1) -> dict[str, np.ndarray]:
    """Seconds of each callable in each round, timed round-robin (A, B, A, B, ...)."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            out[k].append(time.perf_counter() - t0)
    return {k: np.array(v) for k, v in out.items()}


class Measured:
    """asv settings of the track_* classes whose setup measures once (round-robin, side by
    side) and whose track_* methods read the result: one setup per parameter set."""

    rounds = 1
    repeat = 1
    number = 1
    timeout = 300


class Timed:
    """asv timing settings shared by the time_* classes: keeps a full `asv run` near
    10 minutes on 2 cores (a few samples per benchmark, two rounds)."""

    rounds = 2
    repeat = (3, 10, 1.0)
    warmup_time = 0.05
    sample_time = 0.02
    timeout = 120
