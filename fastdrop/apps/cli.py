"""Command line: `python -m fastdrop [demo|bench|bench-rng|bench-dropout|study]` (also `fastdrop`).

With no subcommand: the demo, then `bench` with its defaults (under a minute).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def demo() -> None:
    import fastdrop

    print(f"fastdrop {fastdrop.__version__}")
    block = fastdrop.philox4x32(np.zeros(4, np.uint32), np.zeros(2, np.uint32))
    print("Philox4x32-10(counter 0, key 0) =", " ".join(f"{w:08x}" for w in block),
          "(Random123 known answer: 6627e8d5 e169c58d bc57ac4c 9b00dbd8)")
    words = fastdrop.random_bits(6, seed=2024, stream=7)
    print("random_bits(6, seed=2024, stream=7)        =", words.tolist())
    print("random_bits(3, seed=2024, stream=7, off=3) =",
          fastdrop.random_bits(3, seed=2024, stream=7, offset=3).tolist(),
          "(the same draws: each depends on its index only)")
    print("random_bits(4, ..., bits=16)              =",
          fastdrop.random_bits(4, seed=2024, stream=7, bits=16).tolist())
    print("uniform(4, seed=2024, stream=7)            =",
          np.array2string(fastdrop.uniform(4, seed=2024, stream=7), precision=6))


def _check_measure(command: str, args: argparse.Namespace) -> None:
    """bench-rng's and bench-dropout's options, as `fastdrop bench` checks its own."""
    if not 0 <= args.log2n <= 30:
        raise SystemExit(f"fastdrop {command}: --log2n must be in [0, 30], got {args.log2n}")
    if args.repeats < 1:
        raise SystemExit(f"fastdrop {command}: --repeats must be at least 1, got "
                         f"{args.repeats}")
    threads = args.threads if isinstance(args.threads, list) else [args.threads]
    if any(t is not None and t < 1 for t in threads):
        raise SystemExit(f"fastdrop {command}: --threads must be at least 1, got "
                         f"{args.threads}")
    p = getattr(args, "p", 0.0)
    if not 0.0 <= p < 1.0:
        raise SystemExit(f"fastdrop {command}: --p must be in [0, 1), got {p}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "study":  # its own options: python -m fastdrop study --help
        from .study import main as study_main

        return study_main(argv[1:])
    parser = argparse.ArgumentParser(prog="fastdrop", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("study", help="the dropout study on sklearn's digits (see study --help)")
    sub.add_parser("demo", help="show the generator at work, then a quick benchmark")
    from . import bench as _bench_cli

    bb = sub.add_parser("bench", help="forward, backward and mask generation beside NumPy, "
                        "PyTorch and the memory-bound limit (--json, --plot)")
    _bench_cli.add_arguments(bb)
    b = sub.add_parser("bench-rng", help="random_bits against NumPy's Philox and out.fill")
    b.add_argument("--log2n", type=int, default=24, help="number of words, as a power of 2")
    b.add_argument("--repeats", type=int, default=15)
    b.add_argument("--threads", type=int, nargs="+", default=None)
    d = sub.add_parser("bench-dropout", help="dropout against np.multiply, NumPy and PyTorch")
    d.add_argument("--log2n", type=int, default=24)
    d.add_argument("--p", type=float, default=0.5)
    d.add_argument("--repeats", type=int, default=11)
    d.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command in ("bench-rng", "bench-dropout"):
        _check_measure(args.command, args)

    from .measure import dropout_report, rng_report

    if args.command in (None, "demo"):
        demo()
        print()
        sys.stdout.flush()
        return _bench_cli.main([])
    elif args.command == "bench":
        return _bench_cli.run_from_args(args)
    elif args.command == "bench-rng":
        print(rng_report(log2n=args.log2n, repeats=args.repeats, threads=args.threads))
    elif args.command == "bench-dropout":
        print(dropout_report(log2n=args.log2n, p=args.p, repeats=args.repeats,
                             threads=args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
