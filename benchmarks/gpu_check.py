"""One-call hardware check of fastdrop's GPU fast path: bit-identity with the CPU, then bandwidth.

On a machine with an NVIDIA GPU and numba-cuda, from the repository root (the CPU
extension must be built for that machine's Python first)::

    python3 setup.py build_ext --inplace -j 16 -q
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py [--sizes 24 28] [--iters 50]

Without a GPU, ``--sim`` runs the same steps under Numba's CUDA simulator at tiny sizes
(the numbers are then meaningless: it only exercises the script; tests/cuda/
test_gpu_check.py does this).

0. **Compile cache** (not under --sim): the fast kernels are compiled (`_fast.warm_up`,
   timed) into a fresh NUMBA_CACHE_DIR, then a second process warms them up again: it
   must load every one from the cache (numba-cuda's hit and miss counters,
   `_fast.cache_stats`), and its seconds are reported.
1. **Bit-identity** (every dtype, bits 8, 16 and 32, with and without the packed mask,
   sizes with and without a tail; forward, backward from the seed and from a packed mask,
   alpha dropout, bias-dropout-add; a misaligned input, which takes the general kernel;
   the general kernel itself; the general kernels' paths: noise shapes, blocks,
   bias-dropout-add with ncols % 8 != 0, dbias over many rows and over one column):
   every GPU result
   equals the CPU backend's bit for bit.  Inputs are random normals with -0.0, +-Inf and
   float16 / bfloat16 subnormals; NaN is checked apart ("nan positions" must match; the
   payload is reported, not required: the GPU's ``mul.rn`` returns the canonical NaN).
   Each case also checks which kernel ran (`fastdrop._cuda._fast.launches`).
2. **Bandwidth** (not under --sim): float32 and bfloat16 at 2^24 and 2^28 elements
   (``--sizes``); each operation is timed with CUDA events around ``--iters``
   back-to-back launches (warm: compiled and run once first), median of 5 such runs;
   outputs are preallocated, so nothing is allocated in the timed loop:
   - ``fast fwd+mask``: the fast kernel through `_fast.try_forward` (x, y and the packed
     mask viewed once, preallocated); traffic = read x + write y + write n/8 mask bytes;
   - ``fast fwd`` / ``fast bwd(seed)``: the public ``dropout(x, out=y)`` and
     ``dropout_backward(g, seed=, out=dx)`` (host work included); traffic = 2 n itemsize;
   - ``general fwd``: ``dropout(x, out=y)`` on the general kernel (fast path off);
   - ``copy``: a device-to-device copy of half the operation's traffic (so the same bytes
     are read plus written); ``ratio`` = copy time / operation time (1.0: at copy speed);
   - ``torch F.dropout`` / ``torch.native_dropout`` when PyTorch sees the GPU (traffic
     counted with their n-byte bool mask);
   - host microseconds per public call (perf_counter over the enqueueing of --iters
     calls, synchronised after) are reported apart.
3. A torch side-stream probe (when PyTorch sees the GPU): a tensor filled on a
   non-default torch stream, then dropped out on that stream: the result must equal the
   CPU's (a launch on another stream would race with the fill).

``--identity-only`` runs the warm-up and section 1 alone, the run to put under
``compute-sanitizer --tool memcheck`` (out-of-bounds accesses of the vector loads and
stores at tails and misaligned inputs would show there).

Prints the versions it runs with first (the device machine's image, not the project's
pins) and a table last; writes everything as JSON to ``$OUT/gpu_check.json`` when OUT is
set (or ``--json PATH``), rewritten after each section and each bandwidth size
(``sections_done``), so a run cut short by its time limit still returns what it finished.
A failed warm-up is recorded and the checks go on (they compile as they launch).  Exit
status 1 if any bit-identity check, the warm-up, the cache probe or the stream probe
fails, 2 if no GPU (and no --sim).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

SIM = "--sim" in sys.argv
if SIM:  # before numba is imported
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
if "NUMBA_CACHE_DIR" not in os.environ:   # a fresh compile cache, shared with the probe's
    import tempfile                       # child process (section 0)
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastdrop-numba-cache-")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
START = time.perf_counter()


def _bits(a):
    import numpy as np
    a = np.ascontiguousarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _isnan(a):
    import numpy as np
    return np.isnan(a.astype(np.float32) if a.dtype.itemsize == 2 else a)


def compare(got, exp) -> dict:
    """Bit-for-bit comparison, NaN apart: {"ok", "differ", "nan_payload_equal"}."""
    import numpy as np
    got, exp = np.asarray(got), np.asarray(exp)
    if got.shape != exp.shape or got.dtype != exp.dtype:
        return {"ok": False, "differ": -1, "nan_payload_equal": False}
    if str(got.dtype) in ("float16", "bfloat16", "float32", "float64"):
        gn, en = _isnan(got), _isnan(exp)
    else:
        gn = en = np.zeros(got.shape, bool)
    bg, be = _bits(got), _bits(exp)
    bad = (bg != be) & ~(gn & en)
    bad |= gn != en
    return {"ok": not bad.any(), "differ": int(bad.sum()),
            "nan_payload_equal": bool((bg[gn & en] == be[gn & en]).all())}


def make_input(n: int, dtype, seed: int):
    """Random normals * 3 with -0.0, +-Inf, subnormals of half types, and a NaN."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 3).astype(np.float64)
    if n >= 16:
        idx = rng.choice(n, 6, replace=False)
        x[idx[:5]] = [-0.0, np.inf, -np.inf, 3e-6, -1e-40]
        x[idx[5]] = np.nan
    return x.astype(dtype)


class Gpu:
    """numba-cuda, fastdrop and the fast path's launch counter."""

    def __init__(self):
        import numpy as np
        from numba import cuda
        import ml_dtypes
        import fastdrop
        import fastdrop.reference
        from fastdrop._cuda import _fast
        self.np, self.cuda, self.fd, self.F = np, cuda, fastdrop, _fast
        self.BF16 = np.dtype(ml_dtypes.bfloat16)

    def dtype(self, name: str):
        return self.BF16 if name == "bfloat16" else self.np.dtype(name)

    def to_dev(self, a, misalign: int = 0):
        """a on the device, 16-byte aligned plus `misalign` bytes."""
        np, cuda = self.np, self.cuda
        raw = cuda.to_device(np.zeros(a.nbytes + 64, np.uint8))
        addr = (raw._ary.__array_interface__["data"][0] if SIM
                else raw.__cuda_array_interface__["data"][0])
        off = (-addr) % 16 + misalign
        view = raw[off:off + a.nbytes]
        view.copy_to_device(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
        return view.view(a.dtype)

    def host(self, d):
        return self.np.asarray(d.copy_to_host())


def identity_checks(g: Gpu, sizes) -> list[dict]:
    """Section 1 of the module docstring."""
    fd, F = g.fd, g.F
    rows = []

    def case(label, fast_expected, run_gpu, run_cpu):
        try:
            before = sum(F.launches[k] for k in ("forward", "masked", "bda"))
            got = run_gpu()
            took_fast = sum(F.launches[k] for k in ("forward", "masked", "bda")) > before
            exp = run_cpu()
            got = got if isinstance(got, tuple) else (got,)
            exp = exp if isinstance(exp, tuple) else (exp,)
            res = [compare(g.host(a), b) for a, b in zip(got, exp)]
        except Exception as exc:  # one hardware run: record it and go on
            rows.append({"case": label, "ok": False, "error": f"{type(exc).__name__}: "
                         f"{str(exc)[:300]}", "nan_payload_equal": True})
            return
        ok = all(r["ok"] for r in res) and fast_expected in (None, took_fast)
        rows.append({"case": label, "ok": ok, "fast": took_fast,
                     "fast_expected": fast_expected,
                     "differ": sum(max(r["differ"], 0) for r in res),
                     "nan_payload_equal": all(r["nan_payload_equal"] for r in res)})

    for name in ("float16", "bfloat16", "float32", "float64"):
        dt = g.dtype(name)
        for n in sizes:
            x = make_input(n, dt, seed=n)
            xd = g.to_dev(x)
            for bits in (8, 16, 32):
                kw = dict(seed=2**40 + 7, stream=2**33 + 1, bits=bits)
                fast = n >= g.F.per_iteration(name, bits)   # bits=8: a block of 16
                case(f"{name} n={n} bits={bits} fwd+mask", fast,
                     lambda: fd.dropout(xd, 0.3, return_mask=True, **kw),
                     lambda: fd.dropout(x, 0.3, return_mask=True, **kw))
                case(f"{name} n={n} bits={bits} fwd", fast,
                     lambda: fd.dropout(xd, 0.5, **kw), lambda: fd.dropout(x, 0.5, **kw))
                case(f"{name} n={n} bits={bits} bwd(seed)", fast,
                     lambda: fd.dropout_backward(xd, 0.3, **kw),
                     lambda: fd.dropout_backward(x, 0.3, **kw))
            case(f"{name} n={n} alpha+mask", True,
                 lambda: fd.alpha_dropout(xd, 0.2, seed=3, return_mask=True),
                 lambda: fd.alpha_dropout(x, 0.2, seed=3, return_mask=True))
            _, pm = fd.dropout(x, 0.3, seed=5, return_mask=True)
            pmd = g.to_dev(pm)
            case(f"{name} n={n} bwd(mask)", True,
                 lambda: fd.dropout_backward(xd, 0.3, mask=pmd),
                 lambda: fd.dropout_backward(x, 0.3, mask=pm))
            case(f"{name} n={n} misaligned (general)", False,
                 lambda: fd.dropout(g.to_dev(x, dt.itemsize), 0.3, seed=5),
                 lambda: fd.dropout(x, 0.3, seed=5))
            prev = F.set_enabled(False)
            try:
                case(f"{name} n={n} general fwd+mask", False,
                     lambda: fd.dropout(xd, 0.3, seed=5, return_mask=True),
                     lambda: fd.dropout(x, 0.3, seed=5, return_mask=True))
            finally:
                F.set_enabled(prev)
        xb, rb = make_input(256, dt, seed=1).reshape(4, 64), make_input(256, dt, seed=2)
        bb = make_input(64, dt, seed=3)
        xbd, rbd, bbd = g.to_dev(xb), g.to_dev(rb.reshape(4, 64)), g.to_dev(bb)
        case(f"{name} (4, 64) bias-dropout-add+mask", True,
             lambda: fd.bias_dropout_add(xbd.reshape(4, 64), bbd, rbd.reshape(4, 64), 0.3,
                                         seed=5, return_mask=True),
             lambda: fd.bias_dropout_add(xb, bb, rb.reshape(4, 64), 0.3, seed=5,
                                         return_mask=True))
        if not SIM or name in ("float32", "bfloat16"):   # (the simulator is slow)
            general_checks(g, name, case)
    return rows


def general_checks(g: Gpu, name: str, case) -> None:
    """The general kernels' paths on hardware (their hoisted index math and the dbias
    reduction): noise shapes, blocks, bias-dropout-add with ncols % 8 != 0, dbias over
    many rows (the tiled column sum) and over one column (the pairwise tree)."""
    fd = g.fd
    dt = g.dtype(name)
    rows = 4 if SIM else 3000
    x = make_input(rows * 24, dt, seed=11).reshape(rows, 6, 4)
    xd = g.to_dev(x).reshape(rows, 6, 4)
    for noise in ((rows, 1, 1), (1, 6, 4), (rows, 6, 1)):
        kw = dict(seed=4, noise_shape=noise, bits=16)
        case(f"{name} {x.shape} noise {noise} fwd+mask", False,
             lambda: fd.dropout(xd, 0.3, return_mask=True, **kw),
             lambda: fd.dropout(x, 0.3, return_mask=True, **kw))
        _, m = fd.dropout(x, 0.3, return_mask=True, **kw)
        md = g.to_dev(m)
        case(f"{name} {x.shape} noise {noise} bwd(mask)", False,
             lambda: fd.dropout_backward(xd, 0.3, mask=md, noise_shape=noise),
             lambda: fd.dropout_backward(x, 0.3, mask=m, noise_shape=noise))
    blk = ((5, 2, 1), (rows * 3, 9, 7))
    for bits in (8, 32):
        case(f"{name} block {blk} bits={bits} fwd+mask", False,
             lambda: fd.dropout(xd, 0.3, seed=6, bits=bits, block=blk, return_mask=True),
             lambda: fd.dropout(x, 0.3, seed=6, bits=bits, block=blk, return_mask=True))
    case(f"{name} block {blk} gaussian", False,
         lambda: fd.gaussian_dropout(xd, 0.3, seed=6, block=blk),
         lambda: fd.gaussian_dropout(x, 0.3, seed=6, block=blk))
    x2 = x.reshape(rows * 2, 12)[:, :10].copy()
    r2 = make_input(x2.size, dt, seed=12).reshape(x2.shape)
    b2 = make_input(10, dt, seed=13)
    x2d, r2d, b2d = (g.to_dev(a).reshape(a.shape) for a in (x2, r2, b2))
    case(f"{name} {x2.shape} bias-dropout-add (general)", False,
         lambda: fd.bias_dropout_add(x2d, b2d, r2d, 0.3, seed=5, bits=8, return_mask=True),
         lambda: fd.bias_dropout_add(x2, b2, r2, 0.3, seed=5, bits=8, return_mask=True))
    for shape in ((rows * 24 // 16, 16), (rows * 24, 1)):
        gr = make_input(rows * 24, dt, seed=14).reshape(shape)
        grd = g.to_dev(gr).reshape(shape)
        case(f"{name} {shape} dbias", None,
             lambda: fd.bias_dropout_add_backward(grd, 0.3, seed=5)[:2],
             lambda: fd.bias_dropout_add_backward(gr, 0.3, seed=5)[:2])


def _timer(g: Gpu):
    """time(fn, iters) -> median seconds per call of fn, over 5 runs of `iters`
    back-to-back calls between two CUDA events (perf_counter under the simulator)."""
    cuda = g.cuda

    def time_it(fn, iters: int) -> float:
        fn()
        cuda.synchronize()
        runs = []
        for _ in range(5):
            if SIM:
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn()
                runs.append((time.perf_counter() - t0) / iters)
                continue
            start, stop = cuda.event(), cuda.event()
            start.record()
            for _ in range(iters):
                fn()
            stop.record()
            stop.synchronize()
            runs.append(cuda.event_elapsed_time(start, stop) * 1e-3 / iters)
        return statistics.median(runs)

    return time_it


def host_us(g: Gpu, fn, iters: int) -> float:
    """Host microseconds per call: the enqueueing of `iters` calls, then one sync."""
    fn()
    g.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    t1 = time.perf_counter()
    g.cuda.synchronize()
    return (t1 - t0) / iters * 1e6


def _bandwidth_case(g: Gpu, name: str, dt, lg: int, iters: int, p: float, time_it,
                    rows: list, has_torch: bool, torch) -> None:
    """The bandwidth rows of one dtype and size (see `bandwidth`)."""
    np, cuda, fd, F = g.np, g.cuda, g.fd, g.F
    from fastdrop._cuda._memory import as_operand
    isz = dt.itemsize
    n = 1 << lg
    sd = np.uint16 if isz == 2 else dt
    x = cuda.device_array(n, dtype=sd)   # random bits, filled on the device
    fd.random_bits(n, seed=lg, bits=16 if isz == 2 else 32,
                   out=x.view(np.uint16 if isz == 2 else np.uint32))
    # (random bits: some are NaN or subnormal, which GPU float units run at
    # full speed)
    xv = x.view(dt) if isz == 2 else x
    y = cuda.device_array(n, dtype=sd)
    yv = y.view(dt) if isz == 2 else y
    pm = cuda.device_array((n + 7) // 8, dtype=np.uint8)
    t = fd.reference.threshold(p, 16)
    s = fd.reference.dropout_scale(p, 16)

    X, Y, P = (as_operand(v, nm) for v, nm in ((xv, "x"), (yv, "out"), (pm, "m")))

    def fast_mask():
        if not F.try_forward(0, X, Y, P, 7, 0, 16, t, s, 0.0, 0.0, 0.0):
            raise RuntimeError("the fast path refused an aligned request")

    def api_fwd():
        fd.dropout(xv, p, seed=7, out=yv)

    def api_bwd():
        fd.dropout_backward(xv, p, seed=7, out=yv)

    def general_fwd():
        prev = F.set_enabled(False)
        try:
            fd.dropout(xv, p, seed=7, out=yv)
        finally:
            F.set_enabled(prev)

    traffic_mask = 2 * n * isz + (n + 7) // 8
    traffic = 2 * n * isz
    copies = {}

    def copy_time(nbytes_traffic: int) -> float:
        half = nbytes_traffic // 2
        if half not in copies:
            src = cuda.device_array(half, np.uint8)
            dst = cuda.device_array(half, np.uint8)
            copies[half] = time_it(lambda: dst.copy_to_device(src), iters)
        return copies[half]

    ops = [("fast fwd+mask", fast_mask, traffic_mask, None),
           ("fast fwd (api, out=)", api_fwd, traffic, api_fwd),
           ("fast bwd(seed) (api, out=)", api_bwd, traffic, api_bwd),
           ("general fwd (api, out=)", general_fwd, traffic, general_fwd)]
    if has_torch:
        tdt = torch.float32 if name == "float32" else torch.bfloat16
        xt = torch.randn(n, device="cuda", dtype=tdt)
        ops.append(("torch F.dropout", lambda: torch.nn.functional.dropout(
            xt, p, training=True), 2 * n * isz + n, None))
        ops.append(("torch.native_dropout", lambda: torch.native_dropout(
            xt, p, True), 2 * n * isz + n, None))
    for label, fn, nbytes, host_fn in ops:
        try:
            sec = time_it(fn, iters)
            csec = copy_time(nbytes)
        except Exception as exc:  # one hardware run: record it and go on
            print(f"  {name} 2^{lg} {label}: {type(exc).__name__}: {exc}")
            continue
        rows.append({"dtype": name, "log2n": lg, "op": label, "ms": sec * 1e3,
                     "GBps": nbytes / sec / 1e9, "copy_ms": csec * 1e3,
                     "ratio": csec / sec if sec else float("nan"),
                     "host_us": host_us(g, host_fn, iters) if host_fn else None})
    del x, y, pm


def bandwidth(g: Gpu, logs, iters: int, p: float, deadline: float = float("inf"),
              on_row=lambda: None) -> list[dict]:
    """Section 2 of the module docstring; a case that would start after `deadline`
    (perf_counter seconds) is skipped and said so (the one-call run must end in time);
    `on_row()` is called after each dtype and size (the JSON is saved)."""
    time_it = _timer(g)
    rows = []
    try:
        import torch
        has_torch = (not SIM) and torch.cuda.is_available()
    except ImportError:
        torch, has_torch = None, False
    for name in ("float32", "bfloat16"):
        dt = g.dtype(name)
        for lg in logs:
            if time.perf_counter() > deadline:
                print(f"  {name} 2^{lg}: skipped (the --budget is spent)")
                rows.append({"dtype": name, "log2n": lg, "op": "skipped (budget)"})
                continue
            try:
                _bandwidth_case(g, name, dt, lg, iters, p, time_it, rows, has_torch, torch)
            except Exception as exc:  # one hardware run: record it and go on
                print(f"  {name} 2^{lg}: setup failed: {type(exc).__name__}: {exc}")
            on_row()
    return rows


def torch_stream_probe(g: Gpu) -> dict | None:
    """Section 3 of the module docstring (None without a CUDA PyTorch)."""
    if SIM:
        return None
    try:
        import torch
        if not torch.cuda.is_available():
            return None
    except ImportError:
        return None
    n = 1 << 26
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        x = torch.empty(n, device="cuda", dtype=torch.float32)
        x.fill_(1.5)
        x.mul_(2.0)            # a second pass, so the producer is still running
        y = g.fd.dropout(x, 0.5, seed=9)
    side.synchronize()
    exp = g.fd.dropout(g.np.full(n, 3.0, g.np.float32), 0.5, seed=9)
    res = compare(y.cpu().numpy(), exp)
    return {"probe": "torch side stream", "ok": res["ok"], "differ": res["differ"]}


def cache_probe() -> dict:
    """Section 0 of the module docstring: a second process's warm-up of the fast kernels,
    after this one's (the same NUMBA_CACHE_DIR): its seconds and numba-cuda's cache hits
    and misses."""
    import subprocess
    code = ("import json, time; t = time.perf_counter(); "
            "from fastdrop._cuda import _fast as F; n = F.warm_up(); "
            "print(json.dumps(dict(F.cache_stats(), kernels=n, "
            "seconds=round(time.perf_counter() - t, 2))))")
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode:
        return {"ok": False, "error": proc.stderr[-500:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["ok"] = res["misses"] == 0 and res["hits"] == res["kernels"]
    return res


def versions() -> dict:
    """The versions a hardware run depends on (the device machine's image, not the
    project's pins): Python, NumPy, Numba, numba-cuda, cuda-core, PyTorch, the driver's
    CUDA version and libNVVM's."""
    import importlib
    import platform
    res = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "numba_cuda", "cuda.core", "torch", "ml_dtypes"):
        try:
            res[mod] = str(getattr(importlib.import_module(mod), "__version__", "?"))
        except Exception:   # not installed, or broken: say so and go on
            res[mod] = None
    if not SIM:
        try:
            from numba.cuda.cudadrv import driver, nvvm
            res["driver_cuda"] = list(driver.driver.get_version())
            res["nvvm"] = list(nvvm.NVVM().get_version())
        except Exception as exc:
            res["driver_error"] = repr(exc)[:200]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", action="store_true", help="tiny sizes under the simulator")
    ap.add_argument("--sizes", type=int, nargs="+", default=[24, 28],
                    help="log2 element counts of the bandwidth runs (default: 24 28)")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--budget", type=float, default=420.0,
                    help="seconds after which bandwidth cases are skipped (default 420: "
                         "the whole run stays under 8 minutes)")
    ap.add_argument("--identity-only", action="store_true",
                    help="the warm-up and the bit-identity checks only (no cache probe, "
                         "bandwidth or stream probe): the run to put under "
                         "compute-sanitizer; JSON default $OUT/gpu_check_identity.json")
    args = ap.parse_args(argv)
    try:
        g = Gpu()
    except ImportError as exc:
        print(f"gpu_check: cannot import numba-cuda / fastdrop: {exc}")
        return 2
    if not SIM and not g.cuda.is_available():
        print("gpu_check: no GPU (use --sim to exercise the script under the simulator)")
        return 2
    info = {"simulator": SIM, "versions": versions()}
    if not SIM:
        dev = g.cuda.get_current_device()
        info.update(device=str(dev.name), cc=list(dev.compute_capability),
                    sms=dev.MULTIPROCESSOR_COUNT)
    print("gpu_check:", info, flush=True)
    name = "gpu_check_identity.json" if args.identity_only else "gpu_check.json"
    out = args.json or (os.path.join(os.environ["OUT"], name)
                        if os.environ.get("OUT") else None)
    report = {"info": info, "identity": [], "bandwidth": [], "probe": None,
              "sections_done": []}

    def save(section: str) -> None:
        """Write what is known so far (a run cut short by its time limit still leaves
        the finished sections in the JSON)."""
        report["sections_done"].append(section)
        report["seconds"] = round(time.perf_counter() - START, 1)
        if out:
            Path(out).write_text(json.dumps(report, indent=1))

    t0 = time.perf_counter()
    try:
        info["warm_up_kernels"] = g.F.warm_up()
        info["warm_up_s"] = round(time.perf_counter() - t0, 2)
        print(f"warm-up: {info['warm_up_kernels']} fast kernels compiled in "
              f"{info['warm_up_s']} s ({g.F.cache_stats()})", flush=True)
    except Exception as exc:  # one hardware run: record it, the checks compile lazily
        info["warm_up_error"] = f"{type(exc).__name__}: {str(exc)[:1000]}"
        print("warm-up FAILED:", info["warm_up_error"], flush=True)
    if not SIM and not args.identity_only and "warm_up_error" not in info:
        # (the simulator caches nothing)
        try:
            info["cache_probe"] = cache_probe()
        except Exception as exc:
            info["cache_probe"] = {"ok": False, "error": repr(exc)[:500]}
        print("compile cache, a second process:", info["cache_probe"], flush=True)
    save("warm-up")
    t0 = time.perf_counter()
    sizes = [8, 37] if SIM else [8, 1000 + 3, (1 << 20) + 5]
    ident = report["identity"] = identity_checks(g, sizes)
    bad = [r for r in ident if not r["ok"]]
    print(f"bit-identity: {len(ident) - len(bad)} of {len(ident)} cases equal the CPU "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    for r in bad:
        print("  FAIL", r)
    payload = sum(not r["nan_payload_equal"] for r in ident)
    print(f"NaN payloads: differ from the CPU's in {payload} of {len(ident)} cases "
          f"(positions always checked)")
    save("identity")
    if args.identity_only:
        ok = not bad and "warm_up_error" not in info
        report["pass"] = ok
        save("done")
        print(f"gpu_check --identity-only: {'PASS' if ok else 'FAIL'} "
              f"({time.perf_counter() - START:.1f} s)" + (f"; wrote {out}" if out else ""))
        return 0 if ok else 1

    logs = [4, 6] if SIM else args.sizes
    bw = report["bandwidth"] = bandwidth(g, logs, 2 if SIM else args.iters, args.p,
                                         START + args.budget,
                                         on_row=lambda: save("bandwidth row"))
    save("bandwidth")
    try:
        probe = torch_stream_probe(g)
    except Exception as exc:
        probe = {"probe": "torch side stream", "ok": False, "error": repr(exc)[:300]}
    report["probe"] = probe
    if probe is not None:
        print("probe:", probe)
    print(f"\n{'dtype':9} {'n':>5} {'operation':28} {'ms':>9} {'GB/s':>8} {'copy ms':>9} "
          f"{'ratio':>6} {'host us':>8}" + ("   (SIMULATOR: not a measurement)" if SIM
                                             else "   (CUDA events, median of 5)"))
    for r in bw:
        if "ms" not in r:
            print(f"{r['dtype']:9} 2^{r['log2n']:<3} {r['op']}")
            continue
        hu = f"{r['host_us']:8.1f}" if r["host_us"] is not None else f"{'-':>8}"
        print(f"{r['dtype']:9} 2^{r['log2n']:<3} {r['op']:28} {r['ms']:9.4f} "
              f"{r['GBps']:8.1f} {r['copy_ms']:9.4f} {r['ratio']:6.2f} {hu}")
    ok = (not bad and (probe is None or probe["ok"]) and "warm_up_error" not in info
          and info.get("cache_probe", {"ok": True})["ok"])
    report["pass"] = ok
    save("probe")
    if out:
        print(f"wrote {out}")
    print(f"gpu_check: {'PASS' if ok else 'FAIL'} ({time.perf_counter() - t0:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
