"""`fastdrop bench`: forward, backward and mask generation side by side.

For each operation and size, every contender (fastdrop, NumPy's naive dropout, PyTorch
when installed, and the memory-bound limit `np.multiply(x, 2.0, out=y)` on the same arrays)
runs once per round, in interleaved rounds. The table gives median times, GB/s (the bytes
the operation must move, see BYTES below) and two ratios, each the median over rounds of a
per-round ratio: "x limit" (time / np.multiply's time, 1.00 = the memory-bound limit) and
"fastdrop speed-up" (the contender's time / fastdrop's time).

    python -m fastdrop bench [--sizes 16 20 22] [--dtype float32] [--p 0.5]
                             [--threads N] [--device cpu|cuda] [--repeats 7]
                             [--bits 16] [--json PATH] [--plot PATH]
    python -m fastdrop bench --bounds [--threads 1 2] [--sizes ...] [--bits 8]

`--bounds` shows instead how near each kernel is to its memory bound and to its
generator bound, per size and thread count (fastdrop/apps/bounds.py).

The JSON schema ("fastdrop-bench/1") is documented in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .measure import cpu_model, interleaved_times

SCHEMA = "fastdrop-bench/1"
LIMIT = "limit"
OPS = ("forward", "backward", "mask")
TITLES = {
    "forward": "forward: y = dropout(x, p)",
    "backward": "backward: dx = dropout_backward(dy, p)",
    "mask": "mask generation: the keep flags of n elements",
}
# Bytes moved per element, for GB/s: x read + y written (2 itemsizes), plus 1/8 byte per
# element for a packed mask written or read, 1 byte for a bool mask.
DEFAULT_SIZES = (16, 20, 22)
DEFAULT_REPEATS = 7


@dataclass
class Contender:
    key: str          # stable id in the JSON: "fastdrop", "fastdrop_nomask", "numpy", ...
    label: str        # the table's row label
    fn: Callable[[], object]
    nbytes: int       # bytes the operation must move (for GB/s)


@dataclass
class Group:
    op: str
    log2n: int
    contenders: list[Contender] = field(default_factory=list)


# ---- environment ------------------------------------------------------------------------


def _dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise SystemExit("fastdrop bench: --dtype bfloat16 needs ml_dtypes "
                             "(pip install ml_dtypes)") from None
        return np.dtype(ml_dtypes.bfloat16)
    if name not in ("float16", "float32", "float64"):
        raise SystemExit(f"fastdrop bench: --dtype must be float16, bfloat16, float32 or "
                         f"float64, got {name!r}")
    return np.dtype(name)


def _torch():
    if os.environ.get("FASTDROP_BENCH_NO_TORCH", "").strip() not in ("", "0"):
        return None   # (0 or empty: torch in, as the other FASTDROP_ switches read)
    try:
        import torch
    except ImportError:
        return None
    return torch


def _no_torch() -> str:
    """Why the tables have no torch rows."""
    if os.environ.get("FASTDROP_BENCH_NO_TORCH", "").strip() not in ("", "0"):
        return "left out (FASTDROP_BENCH_NO_TORCH)"
    return "not installed"


def _used_threads(n: int) -> int:
    """The threads fastdrop's kernels run on when asked for n (its CPU backend's cap: the
    CPUs this process may use, its affinity and cgroup quota; one in a forked child)."""
    from fastdrop._cpu.backend import thread_policy

    policy = thread_policy()
    return 1 if policy["single"] else max(1, min(n, policy["cpus"]))


def machine_info(threads: int, device: str = "cpu") -> dict:
    import fastdrop

    torch = _torch()
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "simd": fastdrop.get_simd_level(),
        "openmp": bool(fastdrop.openmp_enabled()),
        "max_threads": int(fastdrop.omp_max_threads()),
        "threads": threads,
        "device": device,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fastdrop": fastdrop.__version__,
        "torch": None if torch is None else torch.__version__,
    }
    if device == "cuda":
        try:
            from numba import cuda
            info["gpu"] = str(cuda.get_current_device().name)
        except Exception:  # reported by cuda_groups, with a clear message
            info["gpu"] = None
    return info


def machine_header(info: dict) -> str:
    gpu = f"GPU {info['gpu']}; " if info.get("gpu") else ""
    return (f"{gpu}{info['cpu']}, {info['cores']} cores; SIMD {info['simd']}; OpenMP "
            f"{'on' if info['openmp'] else 'off'}, {info['threads']} threads; "
            f"numpy {info['numpy']}; torch {info['torch'] or _no_torch()}; "
            f"fastdrop {info['fastdrop']}")


# ---- contenders -------------------------------------------------------------------------


def _batched(fn: Callable[[], object], inner: int) -> Callable[[], object]:
    if inner == 1:
        return fn

    def run():
        for _ in range(inner):
            fn()
    return run


def cpu_groups(log2n: int, dtype: np.dtype, p: float, threads: int,
               bits: int = 16) -> list[Group]:
    """The three operations at n = 2**log2n, each with its contenders and the limit
    (fastdrop's calls draw `bits`-bit draws)."""
    import fastdrop

    n = 1 << log2n
    s = dtype.itemsize
    x = np.empty(n, dtype)
    x[...] = np.random.default_rng(0).standard_normal(n).astype(dtype)
    y = np.zeros(n, dtype)
    g = np.empty(n, dtype)
    g.fill(0.25)
    dx = np.zeros(n, dtype)
    two = dtype.type(2.0)
    _, packed = fastdrop.dropout(x, p, seed=1, bits=bits, return_mask=True,
                                 n_threads=threads)
    rng = np.random.default_rng(1)
    keep = rng.random(n) >= p
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    torch = _torch()

    def limit():
        if s == 2:  # NumPy multiplies halves in scalar code: not a memory-bound baseline
            xw, yw = x.view(np.uint16), y.view(np.uint16)
            return Contender(LIMIT, "memory-bound limit: copy of x's bytes into y",
                             lambda: np.copyto(yw, xw), 2 * n * s)
        return Contender(LIMIT, "memory-bound limit: np.multiply(x, 2.0, out=y)",
                         lambda: np.multiply(x, two, out=y), 2 * n * s)

    fwd = Group("forward", log2n, [
        limit(),
        Contender("fastdrop", "fastdrop dropout, packed mask",
                  lambda: fastdrop.dropout(x, p, seed=1, bits=bits, return_mask=True,
                                           out=y, n_threads=threads), 2 * n * s + n // 8),
        Contender("fastdrop_nomask", "fastdrop dropout, no mask",
                  lambda: fastdrop.dropout(x, p, seed=1, bits=bits, out=y,
                                           n_threads=threads), 2 * n * s),
        Contender("numpy", "numpy naive x*(rng.random>=p)/(1-p)",
                  lambda: x * (rng.random(x.shape) >= p) / (1 - p), 2 * n * s),
    ])
    bwd = Group("backward", log2n, [
        limit(),
        Contender("fastdrop", "fastdrop backward, packed mask",
                  lambda: fastdrop.dropout_backward(g, p, mask=packed, bits=bits, out=dx,
                                                    n_threads=threads), 2 * n * s + n // 8),
        Contender("fastdrop_seed", "fastdrop backward, from the seed",
                  lambda: fastdrop.dropout_backward(g, p, seed=1, bits=bits, out=dx,
                                                    n_threads=threads),
                  2 * n * s),
        Contender("numpy", "numpy naive dy*keep/(1-p), bool mask",
                  lambda: g * keep / (1 - p), 2 * n * s + n),
    ])
    msk = Group("mask", log2n, [
        limit(),
        Contender("fastdrop", "fastdrop dropout_mask, packed",
                  lambda: fastdrop.dropout_mask(n, p, seed=1, bits=bits,
                                                n_threads=threads), n // 8),
        Contender("fastdrop_bool", "fastdrop dropout_mask, bool",
                  lambda: fastdrop.dropout_mask(n, p, seed=1, bits=bits, packed=False,
                                                n_threads=threads), n),
        Contender("numpy", "numpy rng.random(n) >= p",
                  lambda: rng.random(n) >= p, n),
    ])
    if torch is not None:
        torch.set_num_threads(threads)
        tdt = getattr(torch, dtype.name if dtype.name != "bfloat16" else "bfloat16")
        tx = torch.from_numpy(x) if dtype.name != "bfloat16" else torch.from_numpy(
            x.astype(np.float32)).to(tdt)
        tg = torch.full((n,), 0.25, dtype=tdt)
        _, tmask = torch.native_dropout(tx, p, True)
        tk = torch.empty(n, dtype=tdt)
        fwd.contenders.append(Contender(
            "torch", "torch.nn.functional.dropout",
            lambda: torch.nn.functional.dropout(tx, p, True), 2 * n * s))
        bwd.contenders.append(Contender(
            "torch", "torch native_dropout_backward, bool mask",
            lambda: torch.ops.aten.native_dropout_backward(tg, tmask, scale), 2 * n * s + n))
        msk.contenders.append(Contender(
            "torch", "torch bernoulli_(1-p)", lambda: tk.bernoulli_(1 - p), n * s))
    return [fwd, bwd, msk]


def cuda_groups(log2n: int, dtype: np.dtype, p: float) -> list[Group]:
    """The GPU's forward and backward beside a device-to-device copy of x (the
    memory-bound limit: n itemsizes read and written)."""
    try:
        from numba import cuda
    except ImportError:
        raise SystemExit("fastdrop bench --device cuda: numba is not installed "
                         "(pip install numba numba-cuda)") from None
    try:
        available = cuda.is_available()
    except Exception:
        available = False
    if not available:
        raise SystemExit("fastdrop bench --device cuda: no CUDA GPU is available "
                         "(numba.cuda.is_available() is False)")
    import fastdrop

    try:
        fastdrop.random_bits(1, seed=0, device="cuda")  # imports numba-cuda
    except Exception as e:
        raise SystemExit(f"fastdrop bench --device cuda: this fastdrop has no usable GPU "
                         f"backend: {e}") from None

    if dtype.name not in ("float16", "float32", "float64"):
        raise SystemExit(f"fastdrop bench --device cuda: --dtype {dtype.name} is not "
                         f"benchmarked on the GPU here (float16, float32 or float64)")
    n = 1 << log2n
    s = dtype.itemsize
    x = cuda.to_device(np.full(n, 1.5, dtype))
    y = cuda.device_array_like(x)
    dx = cuda.device_array_like(x)
    _, mask = fastdrop.dropout(x, p, seed=1, return_mask=True, out=y)

    def sync(fn):
        def run():
            fn()
            cuda.synchronize()
        return run

    limit = Contender(LIMIT, "memory-bound limit: device-to-device copy",
                      sync(lambda: y.copy_to_device(x)), 2 * n * s)
    return [
        Group("forward", log2n, [limit, Contender(
            "fastdrop", "fastdrop dropout (GPU), packed mask",
            sync(lambda: fastdrop.dropout(x, p, seed=1, return_mask=True, out=y)),
            2 * n * s + n // 8)]),
        Group("backward", log2n, [limit, Contender(
            "fastdrop", "fastdrop backward (GPU), packed mask",
            sync(lambda: fastdrop.dropout_backward(x, p, mask=mask, out=dx)),
            2 * n * s + n // 8)]),
    ]


# ---- running ----------------------------------------------------------------------------


def measure(group: Group, repeats: int) -> list[dict]:
    """Interleaved rounds over the group's contenders; one result dict per contender."""
    n = 1 << group.log2n
    # calls shorter than ~2 ms are timed in batches (calibrated on one warm call each), so
    # the timer's resolution and the loop's overhead stay small
    inner = {}
    for c in group.contenders:
        c.fn()
        t0 = time.perf_counter()
        c.fn()
        inner[c.key] = max(1, min(1000, int(2e-3 / max(time.perf_counter() - t0, 1e-7))))
    fns = {c.key: _batched(c.fn, inner[c.key]) for c in group.contenders}
    times = {k: v / inner[k] for k, v in interleaved_times(fns, repeats, warmup=0).items()}
    base = times[LIMIT]
    fd = times.get("fastdrop")
    rows = []
    for c in group.contenders:
        t = times[c.key]
        med = float(np.median(t))
        rows.append({
            "op": group.op, "contender": c.key, "label": c.label,
            "log2n": group.log2n, "n": n, "bytes": c.nbytes,
            "median_s": med, "min_s": float(np.min(t)),
            "gbps": c.nbytes / med / 1e9 if med > 0 else None,
            "gelems": n / med / 1e9 if med > 0 else None,  # 1e9 elements per second
            "ratio_to_limit": float(np.median(t / base)),
            "fastdrop_speedup": None if fd is None else float(np.median(t / fd)),
        })
    return rows


def format_table(info: dict, config: dict, results: list[dict]) -> str:
    lines = [machine_header(info),
             f"dtype {config['dtype']}, p = {config['p']}, {config['repeats']} interleaved "
             f"rounds; medians; ratios are medians of per-round ratios",
             ("x limit: time / a device-to-device copy of x" if info["device"] == "cuda" else
              "x limit: time / np.multiply(x, 2.0, out=y) on the same arrays (for float16 "
              "and bfloat16: a copy of the same bytes)" if config["dtype"] in
              ("float16", "bfloat16") else
              "x limit: time / np.multiply(x, 2.0, out=y) on the same arrays")
             + " (1.00 = the memory-bound limit); speed-up: the row's time / fastdrop's"]
    for op in OPS:
        rows = [r for r in results if r["op"] == op]
        if not rows:
            continue
        # masks: elements per second (GB/s of mask bytes would show the packed mask,
        # 8 flags a byte, as 8x slower than the bool one)
        rate, unit = ("gelems", "Gelem/s") if op == "mask" else ("gbps", "GB/s")
        lines += ["", f"== {TITLES[op]} ==",
                  f"{'n':>5s}  {'contender':48s} {'median ms':>10s} {unit:>7s} "
                  f"{'x limit':>8s} {'speed-up':>9s}"]
        for r in rows:
            sp = ("" if r["fastdrop_speedup"] is None or r["contender"] in (LIMIT, "fastdrop")
                  else f"{r['fastdrop_speedup']:8.2f}x")
            lines.append(f"{'2^' + str(r['log2n']):>5s}  {r['label']:48s} "
                         f"{r['median_s'] * 1e3:10.3f} {r[rate]:7.2f} "
                         f"{r['ratio_to_limit']:8.2f} {sp:>9s}")
    return "\n".join(lines)


def plot(results: list[dict], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = [op for op in OPS if any(r["op"] == op for r in results)]
    fig, axes = plt.subplots(1, len(ops), figsize=(5 * len(ops), 4), squeeze=False)
    for ax, op in zip(axes[0], ops):
        rows = [r for r in results if r["op"] == op]
        for key in dict.fromkeys(r["contender"] for r in rows):
            pts = sorted((r["n"], r["gbps"], r["label"]) for r in rows if r["contender"] == key)
            style = dict(color="black", linestyle="--") if key == LIMIT else {}
            ax.plot([q[0] for q in pts], [q[1] for q in pts], marker="o",
                    label=pts[0][2], **style)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("elements")
        ax.set_ylabel("GB/s")
        ax.set_title(TITLES[op], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _check_common(sizes, p, repeats, bits) -> None:
    if not 0.0 <= p < 1.0:
        raise SystemExit(f"fastdrop bench: --p must be in [0, 1), got {p}")
    if repeats < 1:
        raise SystemExit("fastdrop bench: --repeats must be at least 1")
    if bits not in (8, 16, 32):
        raise SystemExit(f"fastdrop bench: --bits must be 8, 16 or 32, got {bits}")
    for log2n in sizes:
        if not 0 <= log2n <= 30:
            raise SystemExit(f"fastdrop bench: --sizes are log2 sizes in [0, 30], got {log2n}")


def run(sizes=DEFAULT_SIZES, dtype="float32", p=0.5, threads=None, device="cpu",
        repeats=DEFAULT_REPEATS, progress=True, bits=16) -> dict:
    """Run the benchmark; returns the JSON document (schema fastdrop-bench/1)."""
    import fastdrop

    _check_common(sizes, p, repeats, bits)
    if device not in ("cpu", "cuda"):
        raise SystemExit(f"fastdrop bench: --device must be cpu or cuda, got {device!r}")
    if device == "cuda" and bits != 16:
        raise SystemExit("fastdrop bench --device cuda: --bits is for the CPU tables")
    if threads is not None and threads < 1:
        raise SystemExit(f"fastdrop bench: --threads must be at least 1, got {threads}")
    dt = _dtype(dtype)
    threads = threads or max(1, fastdrop.omp_max_threads())
    used = _used_threads(threads)
    if used != threads:   # the count the kernels run on is the one recorded (and torch's)
        print(f"fastdrop bench: --threads {threads} is more than this process may use: "
              f"measured on {used}", file=sys.stderr)
        threads = used
    info = machine_info(threads, device)
    config = {"sizes_log2": list(sizes), "dtype": dt.name, "p": p, "repeats": repeats,
              "threads": threads, "device": device, "bits": bits}
    results: list[dict] = []
    t0 = time.perf_counter()
    for i, log2n in enumerate(sizes):
        groups = (cuda_groups(log2n, dt, p) if device == "cuda"
                  else cpu_groups(log2n, dt, p, threads, bits))
        for grp in groups:
            if progress:
                print(f"[{time.perf_counter() - t0:6.1f} s] size {i + 1}/{len(sizes)}: "
                      f"{grp.op} 2^{log2n}, {len(grp.contenders)} contenders",
                      file=sys.stderr, flush=True)
            results += measure(grp, repeats)
    return {"schema": SCHEMA,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": info, "config": config, "results": results}


def run_bounds(sizes=DEFAULT_SIZES, dtype="float32", p=0.5, threads=None,
               repeats=DEFAULT_REPEATS, progress=True, bits=16) -> dict:
    """The bounds view (fastdrop/apps/bounds.py) for each size and thread count; returns
    the JSON document (schema fastdrop-bench/1, its results empty, its "bounds" filled)."""
    import fastdrop

    from .bounds import measure_bounds

    _check_common(sizes, p, repeats, bits)
    most = max(1, fastdrop.omp_max_threads())
    counts = sorted(set(threads)) if threads else sorted({1, most})
    if any(t < 1 for t in counts):
        raise SystemExit("fastdrop bench: --threads must be at least 1")
    dt = _dtype(dtype)
    info = machine_info(max(counts), "cpu")
    config = {"sizes_log2": list(sizes), "dtype": dt.name, "p": p, "repeats": repeats,
              "threads": counts, "device": "cpu", "bits": bits, "view": "bounds"}
    rows: list[dict] = []
    t0 = time.perf_counter()
    for log2n in sizes:
        for t in counts:
            if progress:
                print(f"[{time.perf_counter() - t0:6.1f} s] bounds 2^{log2n}, {t} threads",
                      file=sys.stderr, flush=True)
            rows += measure_bounds(log2n, dt, p, t, bits, repeats)
    return {"schema": SCHEMA,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": info, "config": config, "results": [], "bounds": rows}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        metavar="LOG2N", help="sizes as powers of 2 (default: 16 20 22)")
    parser.add_argument("--dtype", default="float32",
                        help="float32 (default), float64, float16 or bfloat16")
    parser.add_argument("--p", type=float, default=0.5, help="drop probability (0.5)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="threads for fastdrop and torch (default: all); with --bounds "
                        "one or more counts (default: 1 and all)")
    parser.add_argument("--bits", type=int, default=16, choices=(8, 16, 32),
                        help="fastdrop's draws (16)")
    parser.add_argument("--bounds", action="store_true",
                        help="instead: each kernel's time over its memory and generator "
                        "bounds, per size and thread count")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help="interleaved rounds (7)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="also draw GB/s against size as a PNG (needs matplotlib)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _check_output(path: str | None, option: str) -> None:
    """A --json or --plot path that can be written, checked before anything is measured."""
    if path is None:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise SystemExit(f"fastdrop bench: {option} {path!r} cannot be written (a directory, "
                         f"or a folder that does not exist or is not writable)")


def run_from_args(args: argparse.Namespace) -> int:
    _check_output(args.json, "--json")
    _check_output(args.plot, "--plot")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("fastdrop bench: --plot needs matplotlib: pip install 'fastdrop[plot]' "
                  "(or pip install matplotlib)", file=sys.stderr)
            return 2
    if args.bounds:
        if args.device != "cpu":
            raise SystemExit("fastdrop bench --bounds: the CPU kernels only")
        if args.plot:
            raise SystemExit("fastdrop bench --bounds: no --plot (use --json)")
        from .bounds import format_bounds

        doc = run_bounds(sizes=args.sizes, dtype=args.dtype, p=args.p, threads=args.threads,
                         repeats=args.repeats, progress=not args.quiet, bits=args.bits)
        print(machine_header(doc["machine"]))
        print(format_bounds(doc["bounds"]))
    else:
        if args.threads is not None and len(args.threads) > 1:
            raise SystemExit("fastdrop bench: give one --threads count (several only with "
                             "--bounds)")
        doc = run(sizes=args.sizes, dtype=args.dtype, p=args.p,
                  threads=args.threads[0] if args.threads else None, device=args.device,
                  repeats=args.repeats, progress=not args.quiet, bits=args.bits)
        print(format_table(doc["machine"], doc["config"], doc["results"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        plot(doc["results"], args.plot, machine_header(doc["machine"]))
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastdrop bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
