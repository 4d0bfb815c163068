"""fastdrop.torch against torch's own dropout: module forward + backward by size, and a
training step of nn.TransformerEncoderLayer, eager and compiled, side by side in one run.

    python benchmarks/torch_dropout.py sizes [--threads 1] [--min-exp 8] [--max-exp 26]
                                             [--flush-mib 64]
    python benchmarks/torch_dropout.py transformer [--threads 2] [--steps 20] [--no-compile]
    python benchmarks/torch_dropout.py faults [--threads 1] [--processes 4] [--min-exp 18]
    python benchmarks/torch_dropout.py ops [--threads 1] [--min-exp 8] [--repeats 50]

`ops` prices one extra torch operation in a small step: fastdrop's seeded module with
and without one more call per step (the seed=None draw, ``random_`` on a 2-element
tensor; ``fill_``; ``zero_``; ``torch.empty``; the generator's ``get_state``), beside
torch's module and fastdrop's seed=None module (its draw by default, through libtorch_cpu's
exported generator functions; through the C++ extension, fastdrop.torch.load_cpp_extension;
through torch's stable C ABI alone; through ``random_``), at 2^min-exp elements, as min, 10th
percentile and median over --repeats alternating batches of 500 steps. `sizes` has the
C++ draw's column too, when the extension can be built, and a memory-bound floor: the
step of ``x * 1.1`` through autograd (torch's cheapest elementwise op with a backward:
the same bytes read and written as a dropout step, no random numbers, no mask), and
fastdrop's seed=None step as a multiple of it. Before each of its timed batches `sizes`
writes a --flush-mib buffer (64 MiB by default, twice a 32 MiB L3; 0: none), so that every
batch starts from caches that hold none of its tensors: without it a batch that ran right
after another fastdrop module found the pooled outputs that module had just written still
in the cache, and one that ran after torch's or the floor's did not (at 2^20 on one
thread, a column's time followed its predecessors: 600 against 1000 us).

`faults` runs fastdrop's module alone in fresh processes (one per row) and counts the
minor page faults per forward + backward after a warm-up: whether an output's pages are
faulted in again on every step depends on the process's heap (glibc), not on the size
alone, so each size gets several processes.

Each figure is the best of `--repeats` timed batches (time.perf_counter), after warm-up
calls; torch's and fastdrop's batches alternate (round robin, `sizes` in an order shuffled
each round) in the same process, so a busy machine slows both alike. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import copy
import random
import time

import torch
from torch import nn

import fastdrop.torch as ft

try:  # run as a file (python benchmarks/...py) or imported from the package
    from common import best_of as _best
except ImportError:
    from .common import best_of as _best


def _cpp_available() -> bool:
    """Whether the C++ draw (fastdrop.torch.load_cpp_extension) can be built here; the
    draws are left going through torch (the columns switch per batch, `_with_draw`)."""
    from fastdrop import _torch_draw

    try:
        _torch_draw.load()
    except RuntimeError as exc:
        print(f"(no C++ draw column: {exc})\n")
        return False
    _torch_draw.use(False)
    return True


def _with_draw(cpp, f):
    """f with seed=None's draw through the C++ extension (cpp True), or the default routes
    (False: libtorch_cpu's exported generator functions, else the stable C ABI), or one
    route named: "shim" (the stable C ABI alone) or "random_" (torch's Python-level op)."""
    from fastdrop import _torch_draw

    routes = {"shim": (False, True), "random_": (False, False)}

    def run(*a):
        before = _torch_draw.default_routes()
        _torch_draw.use(cpp is True)
        if cpp in routes:
            _torch_draw.set_default_routes(*routes[cpp])
        try:
            return f(*a)
        finally:
            _torch_draw.use(False)
            _torch_draw.set_default_routes(*before)
    return run


def sizes(args) -> None:
    cpp = _cpp_available()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, "
          f"p=0.1, module forward + backward (best of {args.repeats}; "
          f"{args.flush_mib} MiB written before each timed batch)\n")
    names = ["torch nn.Dropout", "fastdrop Dropout (seed=None)"]
    names += ["fastdrop (seed=None, C++ draw)"] if cpp else []
    names += ["fastdrop Dropout (seed=1)", "fastdrop (seed=1, keep=\"seed\")",
              "floor: torch x * 1.1"]
    ratios = ["seed=None"] + (["seed=None, C++ draw"] if cpp else []) + [
        "keep=\"seed\""]
    print("| n | " + " | ".join(names) + " | "
          + " | ".join(f"torch / fastdrop ({r})" for r in ratios)
          + " | fastdrop (seed=None) / floor |")
    print("|---" * (2 + len(names) + len(ratios)) + "|")
    flush = torch.empty(args.flush_mib << 18) if args.flush_mib > 0 else None
    for e in range(args.min_exp, args.max_exp + 1, args.step):
        n = 1 << e
        x = torch.randn(n, requires_grad=True)
        g = torch.ones(n)
        reps = max(2, min(500, (1 << 23) // n))
        mods = [(nn.Dropout(0.1), False), (ft.Dropout(0.1), False)]
        mods += [(ft.Dropout(0.1), True)] if cpp else []
        mods += [(ft.Dropout(0.1, seed=1), False),
                 (ft.Dropout(0.1, seed=1, keep="seed"), False),
                 (lambda t: t * 1.1, False)]  # the floor
        calls = []
        for m, c in mods:
            def call(m=m):
                m(x).backward(g)
                x.grad = None
            timed = _with_draw(c, lambda call=call: _best(call, reps, 1))
            _with_draw(c, lambda call=call: [call() for _ in range(3)])()
            calls.append(timed)
        times = [float("inf")] * len(calls)
        order = random.Random(e)
        for r in range(args.repeats):
            # round robin, all see the same machine load; the order is shuffled each
            # round (a rotation would keep each column's predecessor), so that no module
            # always runs right after torch's, whose large tensors' frees and dirty cache
            # lines slow the next call from about 2^20 up
            for i in order.sample(range(len(calls)), len(calls)):
                if flush is not None:
                    flush.fill_(float(r))  # evicts the previous batch's tensors
                times[i] = min(times[i], calls[i]())
        t = times[0]
        fd = [times[1]] + ([times[2]] if cpp else []) + [times[-2]]
        print(f"| 2^{e} | " + " | ".join(f"{v * 1e6:.1f} us" for v in times) + " | "
              + " | ".join(f"{t / v:.2f}" for v in fd)
              + f" | {times[1] / times[-1]:.2f} |", flush=True)


def transformer(args) -> None:
    torch.manual_seed(0)
    base = nn.TransformerEncoderLayer(512, 8, 2048, dropout=0.1, batch_first=True)
    ours = copy.deepcopy(base)
    replaced = ft.replace_dropout(ours)
    x = torch.randn(16, 128, 512)
    variants = [("torch", base), ("fastdrop", ours)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"TransformerEncoderLayer(512, 8, 2048), batch 16, sequence 128, float32; "
          f"one step = forward, backward, SGD step; fastdrop replaced "
          f"{[n for n, _ in replaced]} (attention dropout stays torch's)\n")
    rows = []
    for mode in (["eager"] + ([] if args.no_compile else ["compiled"])):
        fns = {}
        for name, model in variants:
            model.train()
            opt = torch.optim.SGD(model.parameters(), lr=1e-4)
            run = model if mode == "eager" else torch.compile(model, fullgraph=True)

            def step(run=run, opt=opt):
                opt.zero_grad(set_to_none=True)
                run(x).square().mean().backward()
                opt.step()
            t0 = time.perf_counter()
            step()  # compiles in compiled mode
            first = time.perf_counter() - t0
            for _ in range(2):
                step()
            fns[name] = (step, first)
        res = {}
        for _ in range(args.repeats):  # alternate: the same machine load for both
            for name, (step, _) in fns.items():
                t = _best(step, args.steps, 1)
                res[name] = min(res.get(name, float("inf")), t)
        rows.append((mode, res["torch"], res["fastdrop"], fns["torch"][1], fns["fastdrop"][1]))
    print("| mode | torch dropout | fastdrop dropout | torch / fastdrop | first call "
          "(torch, fastdrop) |")
    print("|---|---|---|---|---|")
    for mode, t, f, ft0, ff0 in rows:
        print(f"| {mode} | {t * 1e3:.1f} ms | {f * 1e3:.1f} ms | {t / f:.2f} "
              f"| {ft0:.1f} s, {ff0:.1f} s |")


_FAULTS_CHILD = """
import resource, sys, time, torch
import fastdrop.torch as ft
torch.set_num_threads({threads})
n = 1 << {exp}
x = torch.randn(n, requires_grad=True); g = torch.ones(n)
m = ft.Dropout(0.1, seed=1)
def step():
    m(x).backward(g); x.grad = None
for _ in range(50):
    step()
steps = max(20, (1 << 27) // n)
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t0 = time.perf_counter()
for _ in range(steps):
    step()
t = (time.perf_counter() - t0) / steps
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / steps, t)
"""


def faults(args) -> None:
    import os
    import subprocess
    import sys

    print(f"torch {torch.__version__}, fastdrop Dropout(0.1, seed=1) alone, "
          f"{args.threads or torch.get_num_threads()} thread(s), float32, module forward + "
          f"backward; FASTDROP_TORCH_RECYCLE={os.environ.get('FASTDROP_TORCH_RECYCLE', '1')}"
          f"; one fresh process per entry\n")
    print("| n | minor faults per step (each process) | us per step (each process) |")
    print("|---|---|---|")
    for e in range(args.min_exp, args.max_exp + 1, args.step):
        res = []
        for _ in range(args.processes):
            code = _FAULTS_CHILD.format(threads=args.threads or 1, exp=e)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                 text=True, check=True).stdout.split()
            res.append((float(out[0]), float(out[1])))
        print(f"| 2^{e} | {', '.join(f'{f:.1f}' for f, _ in res)} "
              f"| {', '.join(f'{t * 1e6:.0f}' for _, t in res)} |", flush=True)


def ops(args) -> None:
    import statistics

    n = 1 << args.min_exp
    x = torch.randn(n, requires_grad=True)
    g = torch.ones(n)
    seeded = ft.Dropout(0.1, seed=1)
    scratch = torch.empty(2, dtype=torch.int64)
    flt = torch.empty(2)
    gen = torch.default_generator
    extra = {"nothing": lambda: None,
             "random_ (the seed=None draw)": lambda: scratch.random_(4294967296, generator=gen),
             "fill_": lambda: flt.fill_(1.0), "zero_": flt.zero_,
             "torch.empty(2)": lambda: torch.empty(2), "get_state()": gen.get_state}
    cpp = _cpp_available()
    calls = {"torch nn.Dropout": (nn.Dropout(0.1), lambda: None, False),
             "fastdrop seed=None": (ft.Dropout(0.1), lambda: None, False)}
    if cpp:
        calls["fastdrop seed=None, C++ draw"] = (ft.Dropout(0.1), lambda: None, True)
    calls["fastdrop seed=None, stable C ABI draw"] = (ft.Dropout(0.1), lambda: None, "shim")
    calls["fastdrop seed=None, random_ draw"] = (ft.Dropout(0.1), lambda: None, "random_")
    calls.update({f"fastdrop seed=1 + {k}": (seeded, f, False) for k, f in extra.items()})

    def batch(m, f, steps=500):
        t = time.perf_counter()
        for _ in range(steps):
            f()
            m(x).backward(g)
            x.grad = None
        return (time.perf_counter() - t) / steps
    res = {k: [] for k in calls}
    for _ in range(args.repeats):
        for k, (m, f, c) in calls.items():
            res[k].append(_with_draw(c, batch)(m, f))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, "
          f"n = 2^{args.min_exp}, module forward + backward, {args.repeats} alternating "
          f"batches of 500 steps\n")
    print("| step | min | 10th percentile | median |")
    print("|---|---|---|---|")
    for k, v in res.items():
        v.sort()
        print(f"| {k} | {v[0] * 1e6:.1f} us | {v[len(v) // 10] * 1e6:.1f} us "
              f"| {statistics.median(v) * 1e6:.1f} us |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["sizes", "transformer", "faults", "ops"])
    ap.add_argument("--processes", type=int, default=4, help="faults: processes per size")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-exp", type=int, default=8)
    ap.add_argument("--max-exp", type=int, default=26)
    ap.add_argument("--step", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="training steps per timed batch")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--flush-mib", type=int, default=64,
                    help="sizes: MiB written before each timed batch (0: none)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"sizes": sizes, "transformer": transformer, "faults": faults,
     "ops": ops}[args.what](args)


if __name__ == "__main__":
    main()
