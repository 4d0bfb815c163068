"""fastdrop on a loaded machine: the default thread count against one thread.

A benchmark, not a test (issue 14): it loads the machine the way real users do, then
times ``fastdrop.dropout(x, 0.5, seed=1, out=y)`` with the default thread count and with
``n_threads=1``, interleaved, at each size.  The thread policy's goal: the default call is
never more than 1.5x the one-thread call.

Loads (each in its own process, started before and killed after the timings):

- ``idle``: none;
- ``procs``: as many processes as CPUs, each calling fastdrop.dropout on 2^18 elements in
  a loop with the default thread count;
- ``threads``: one process with 256 runnable threads (hashlib over 64 KiB buffers, which
  releases the GIL);
- ``dask``: fastdrop.dask dropout of a chunked array computed over and over with Dask's
  threaded scheduler.

The timed process runs once per OpenMP wait policy, since libgomp reads it at start-up:
``fastdrop`` (fastdrop's default: idle threads sleep at once, OMP_WAIT_POLICY=PASSIVE for
its libgomp) and ``spin`` (libgomp's default: spin, then sleep; FASTDROP_WAIT_POLICY=default).

    python benchmarks/loaded.py                       # every load, sizes 2^10 .. 2^24
    python benchmarks/loaded.py --loads idle procs --sizes 12 16 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

LOADERS = {
    "procs": """
import numpy as np, fastdrop
x = np.ones(1 << 18, np.float32); y = np.empty_like(x)
while True:
    fastdrop.dropout(x, 0.5, seed=1, out=y)
""",
    "threads": """
import hashlib, threading
buf = bytes(65536)
def spin():
    while True:
        hashlib.sha256(buf).digest()
for _ in range(256):
    threading.Thread(target=spin, daemon=True).start()
threading.Event().wait()
""",
    "dask": """
import numpy as np, dask.array as da, fastdrop.dask as fdd
x = da.ones((16, 1 << 16), chunks=(1, 1 << 16), dtype=np.float32)
while True:
    fdd.dropout(x, 0.5, seed=3).compute(scheduler="threads")
""",
}

TIMED = """
import json, sys, time
import numpy as np, fastdrop
sizes, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for log2n in sizes:
    x = np.ones(1 << log2n, np.float32); y = np.empty_like(x)
    calls = {"default": lambda: fastdrop.dropout(x, 0.5, seed=1, out=y),
             "one": lambda: fastdrop.dropout(x, 0.5, seed=1, out=y, n_threads=1)}
    reps = max(1, (1 << 16) >> log2n) * 8  # a batch of at least ~half a million elements
    times = {k: [] for k in calls}
    for f in calls.values():
        f()
    for _ in range(rounds):
        for k, f in calls.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            times[k].append((time.perf_counter() - t0) / reps)
    out[log2n] = {k: float(np.median(v)) for k, v in times.items()}
print(json.dumps(out))
"""


# How the timed process's idle OpenMP threads wait: fastdrop's default (PASSIVE since
# issue 14; libgomp's spin-then-sleep before), and libgomp's own default.
POLICIES = {"fastdrop": {}, "spin": {"FASTDROP_WAIT_POLICY": "default"},
            "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "spin3000": {"GOMP_SPINCOUNT": "3000"}}


def _start_load(name: str, cpus: int) -> list[subprocess.Popen]:
    if name == "idle":
        return []
    count = cpus if name == "procs" else 1
    procs = [subprocess.Popen([sys.executable, "-c", LOADERS[name]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(count)]
    time.sleep(2.0)  # imports done, the load running
    for p in procs:
        if p.poll() is not None:
            raise RuntimeError(f"the {name!r} load exited with code {p.returncode}")
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def run(loads: list[str], sizes: list[int], rounds: int,
        policies: tuple = ("fastdrop", "spin")) -> list[dict]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = []
    for load in loads:
        procs = _start_load(load, cpus)
        try:
            for policy in policies:
                extra = POLICIES[policy]
                env = {k: v for k, v in os.environ.items()
                       if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "FASTDROP_WAIT_POLICY")}
                env.update(extra)
                res = subprocess.run([sys.executable, "-c", TIMED, json.dumps(sizes),
                                      str(rounds)], env=env, capture_output=True, text=True,
                                     timeout=1200, check=True)
                for log2n, t in json.loads(res.stdout).items():
                    rows.append(dict(load=load, wait_policy=policy, log2n=int(log2n),
                                     default_s=t["default"], one_s=t["one"],
                                     ratio=t["default"] / t["one"]))
                    print(f"{load:8s} {policy:8s} 2^{int(log2n):<3d} default "
                          f"{t['default'] * 1e6:10.1f} us  one thread {t['one'] * 1e6:10.1f} us"
                          f"  default/one {t['default'] / t['one']:6.2f}", flush=True)
        finally:
            _stop(procs)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loads", nargs="+", default=["idle", "procs", "threads", "dask"],
                    choices=["idle", "procs", "threads", "dask"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[10, 12, 16, 20, 24],
                    metavar="LOG2N")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (7)")
    ap.add_argument("--policies", nargs="+", default=["fastdrop", "spin"],
                    choices=list(POLICIES), help="wait policies of the timed process")
    ap.add_argument("--json", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    rows = run(args.loads, args.sizes, args.rounds, args.policies)
    worst = max(rows, key=lambda r: r["ratio"])
    print(f"worst default/one: {worst['ratio']:.2f} ({worst['load']}, "
          f"{worst['wait_policy']}, 2^{worst['log2n']}); the goal is at most 1.5")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
