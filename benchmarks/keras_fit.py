"""One ``model.fit`` epoch with fastdrop.keras's layers against Keras's own, per backend.

    python benchmarks/keras_fit.py [--backends jax,torch] [--layers Dropout,GaussianDropout]
                                   [--rounds 5] [--n 8192] [--width 512] [--batch 128]
    /tmp/tfvenv/bin/python benchmarks/keras_fit.py --backends tensorflow   # where TF is

For each backend (a child process each: Keras fixes its backend at import) and layer, two
identical MLPs (``--width`` units, two hidden layers, the layer after each, rate 0.5) are
built, one with ``keras.layers.<Layer>`` and one with ``fastdrop.keras.<Layer>``, both
compiled the same way and warmed up with one epoch (JAX compiles it). Then ``--rounds``
rounds each time one epoch of each model, in alternating order (so load changes on a
shared machine hit both alike); the table gives the median epoch time of each and the
ratio fastdrop / Keras, measured side by side in one run. torch runs with
``torch.set_num_threads(--threads)`` (default 1) for both models; tensorflow with
``--threads`` intra-op and inter-op threads and ``OMP_NUM_THREADS=--threads`` (fastdrop's
host kernels) for both, and Keras's default ``jit_compile="auto"`` (no XLA on a CPU, for
either model: fastdrop's layers cannot be XLA-compiled).

Not an asv benchmark (asv finds no ``time_*`` here): Keras is imported in the children
only.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> None:
    if os.environ["KERAS_BACKEND"] == "torch":
        import torch

        torch.set_num_threads(args.threads)
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    import numpy as np

    import fastdrop.keras as fk

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, 64)).astype(np.float32)
    y = rng.integers(0, 10, args.n).astype(np.int32)
    results = []
    for layer_name in args.layers.split(","):
        amount = 0.3 if layer_name == "GaussianNoise" else 0.5

        def model(module):
            keras.utils.set_random_seed(0)
            cls = getattr(module, layer_name)
            m = keras.Sequential([
                keras.Input((64,)),
                keras.layers.Dense(args.width, activation="relu"), cls(amount),
                keras.layers.Dense(args.width, activation="relu"), cls(amount),
                keras.layers.Dense(10)])
            m.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            return m

        models = {"keras": model(keras.layers), "fastdrop": model(fk)}
        times = {name: [] for name in models}

        def epoch(m):
            t0 = time.perf_counter()
            m.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False)
            return time.perf_counter() - t0

        for m in models.values():
            epoch(m)  # warm-up: compilation (jax), first allocations
        for r in range(args.rounds):
            order = list(models) if r % 2 == 0 else list(models)[::-1]
            for name in order:
                times[name].append(epoch(models[name]))
        results.append(dict(backend=keras.backend.backend(), layer=layer_name,
                            steps=-(-args.n // args.batch),
                            keras=statistics.median(times["keras"]),
                            fastdrop=statistics.median(times["fastdrop"]),
                            keras_all=times["keras"], fastdrop_all=times["fastdrop"]))
    print("RESULT " + json.dumps(results))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="jax,torch")
    ap.add_argument("--layers", default="Dropout,GaussianDropout")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=8192, help="training samples (64 features)")
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch / tensorflow threads")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return
    rows = []
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                           os.environ.get("PYTHONPATH")])))
        if backend == "tensorflow":
            env.update(OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="2")
        cmd = [sys.executable, __file__, "--child"] + [
            f"--{k}={v}" for k, v in vars(args).items() if k not in ("child", "backends")]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            sys.exit(f"{backend}: failed (rc {proc.returncode})\n{proc.stderr[-4000:]}")
        rows += json.loads(lines[-1][len("RESULT "):])
    print(f"model.fit, one epoch: MLP 64-{args.width}-{args.width}-10, {args.n} samples, "
          f"batch {args.batch}, median of {args.rounds} epochs each (alternating)\n")
    print("| backend | layer | steps | keras.layers s/epoch | fastdrop.keras s/epoch "
          "| fastdrop / keras |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['layer']} | {r['steps']} | {r['keras']:.3f} | "
              f"{r['fastdrop']:.3f} | {r['fastdrop'] / r['keras']:.2f} |")


if __name__ == "__main__":
    main()
