"""fastdrop.jax under jit (XLA FFI custom calls) against JAX's own dropout
(``jnp.where(jax.random.bernoulli(key, 1 - p, x.shape), x / (1 - p), 0)``), float32, by size,
forward and with grad; the host-callback route (fastdrop's fallback, the route before the
XLA FFI) alongside.

    python benchmarks/jax_dropout.py [--sizes 12 16 20 22] [--rounds 15] [--p 0.1]
        [--no-callback]

Every variant is a jitted function of (x, a traced step): the step is the PRNG key's
data for bernoulli and the Philox stream for fastdrop, so no call recompiles. Each round
times a batch of calls (``block_until_ready`` on each) of every variant in turn (A, B,
C, A, B, C, ...): a busy machine slows all alike; the table gives the medians over the
rounds, per call, and the median of the per-round ratios. fastdrop's default lowering
declares its output an alias of x (in place where x is dead afterwards, as a donated
argument or most activations are); x is a live argument here, so XLA copies it first: the
"no alias" column (FASTDROP_JAX_ALIAS=0) is the same call without that copy.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import jax
import jax.numpy as jnp

import fastdrop.jax as fj


def _variants(n: int, p: float, grad: bool, callback: bool) -> dict:
    w = jnp.asarray(np.cos(np.arange(n, dtype=np.float32)))

    def bernoulli(x, k):
        key = jax.random.wrap_key_data(k)
        keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
        return jnp.where(keep, x / (1.0 - p), 0.0)

    def fastdrop(x, s):
        return fj.dropout(x, p, seed=1, stream=s)

    def wrap(f):
        if grad:
            return jax.jit(jax.grad(lambda x, s: jnp.sum(f(x, s) * w)))
        return jax.jit(f)

    out = {"bernoulli": wrap(bernoulli)}
    default = (fj._FORCE_CALLBACK, fj._ALIAS_X)
    # the default lowering: y aliases x (XLA copies x first when, as here, x is a live
    # argument of the jitted function); and without the alias (FASTDROP_JAX_ALIAS=0)
    routes = [("fastdrop (XLA FFI)", False, True), ("fastdrop (FFI, no alias)", False, False)]
    if callback:
        routes.append(("fastdrop (callback)", True, False))
    for name, force, al in routes:
        fj._FORCE_CALLBACK, fj._ALIAS_X = force, al
        # a new function each time: jit caches its compilations per function
        f = wrap(lambda x, s: fastdrop(x, s))
        x0 = jnp.zeros(n, jnp.float32)
        jax.block_until_ready(f(x0, jnp.uint32(0)))  # lowered and compiled with this route
        out[name] = f
    fj._FORCE_CALLBACK, fj._ALIAS_X = default
    return out


def _time(f, arg, x, reps: int) -> float:
    import time
    t0 = time.perf_counter()
    for i in range(reps):
        jax.block_until_ready(f(x, arg))
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[12, 16, 20, 22])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--no-callback", action="store_true")
    args = ap.parse_args()
    from fastdrop._cpu import _xla
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, fastdrop.jax route "
          f"{fj.lowering_route()!r}, handler threads {_xla.threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, float32, "
          f"p={args.p}, median of {args.rounds} interleaved rounds\n")
    key_data = jax.random.key_data(jax.random.key(0))
    for grad in (False, True):
        print(f"### {'forward + grad (jax.grad of sum(dropout(x) * w))' if grad else 'forward'}\n")
        rows = []
        for e in args.sizes:
            n = 1 << e
            x = jnp.asarray(np.linspace(-2, 2, n, dtype=np.float32))
            fns = _variants(n, args.p, grad, not args.no_callback)
            arg = {k: (key_data if k == "bernoulli" else jnp.uint32(3)) for k in fns}
            reps = max(1, min(200, (1 << 22) // n))
            times = {k: [] for k in fns}
            for _ in range(args.rounds):
                for k, f in fns.items():
                    times[k].append(_time(f, arg[k], x, reps))
            t = {k: np.array(v) for k, v in times.items()}
            rows.append((e, t))
        names = list(rows[0][1])
        head = "| n | " + " | ".join(names) + " | " + " | ".join(
            f"bernoulli / {k.split(' ', 1)[1]}" for k in names[1:]) + " |"
        print(head)
        print("|---" * (len(names) * 2) + "|")
        for e, t in rows:
            cells = [f"{np.median(t[k]) * 1e6:,.0f} us" for k in names]
            ratios = [f"{np.median(t['bernoulli'] / t[k]):.2f}x" for k in names[1:]]
            print(f"| 2^{e} | " + " | ".join(cells + ratios) + " |", flush=True)
        print()


if __name__ == "__main__":
    main()
