"""The study's command line: ``fastdrop study`` / ``python -m fastdrop study``."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from .config import DEFAULT, FULL, QUICK, StudyConfig
from .sweep import run_study

__all__ = ["build_parser", "config_from_args", "main"]

_CLAIM_NAMES = ("rate sweep rises then turns", "narrower generalisation gap",
                "more epochs, cheaper epoch", "inverted == classic in expectation",
                "widening by 1/(1-p) recovers capacity")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fastdrop study``.

    Returns
    -------
    argparse.ArgumentParser
    """
    ap = argparse.ArgumentParser(
        prog="fastdrop study",
        description="The dropout-rate study on scikit-learn's digits: trains a NumPy MLP "
                    "with fastdrop dropout, writes report.md, results.json and PNG plots.")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="a tiny configuration (seconds), for smoke tests")
    size.add_argument("--full", action="store_true",
                      help="5 seeds, 120 epochs, a wider input grid (several minutes)")
    ap.add_argument("--out", default="dropout-study",
                    help="report folder (created if needed; default: %(default)s)")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (0 .. N-1)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run")
    ap.add_argument("--rates", type=float, nargs="+", default=None,
                    help="hidden dropout rates to sweep (default 0.0 .. 0.9)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="parallel processes; the numbers do not depend on it "
                         "(default: %(default)s)")
    ap.add_argument("--dtype", choices=("float32", "float64"), default=None,
                    help="network precision (default float32)")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG files")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return ap


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """The configuration the parsed options ask for.

    Parameters
    ----------
    args : argparse.Namespace
        From ``build_parser().parse_args``.

    Returns
    -------
    StudyConfig
        ``QUICK``, ``FULL`` or ``DEFAULT``, with ``--seeds``, ``--epochs``, ``--dtype``
        and ``--rates`` applied.

    Raises
    ------
    SystemExit
        For fewer than one seed or epoch, or a rate outside [0, 1).
    """
    cfg = QUICK if args.quick else FULL if args.full else DEFAULT
    if args.seeds is not None:
        if args.seeds < 1:
            raise SystemExit("--seeds must be at least 1")
        cfg = replace(cfg, seeds=tuple(range(args.seeds)))
    if args.epochs is not None:
        if args.epochs < 1:
            raise SystemExit("--epochs must be at least 1")
        cfg = replace(cfg, epochs=args.epochs)
    if args.dtype is not None:
        cfg = replace(cfg, dtype=args.dtype)
    if args.rates is not None:
        rates = tuple(sorted(set(args.rates)))
        if any(not 0.0 <= r < 1.0 for r in rates):
            raise SystemExit("--rates must lie in [0, 1)")
        cfg = replace(cfg, rates=rates)
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Run the study from the command line and print the verdicts.

    Parameters
    ----------
    argv : list of str, optional
        The options (default ``sys.argv[1:]``); ``--help`` lists them.

    Returns
    -------
    int
        0, or 2 when scikit-learn or matplotlib is missing (the error names
        ``pip install fastdrop[study]``).
    """
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    try:
        study = run_study(cfg, out=args.out, jobs=max(1, args.jobs),
                          progress=not args.no_progress, plots=not args.no_plots)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    a = study["analysis"]
    print(f"dropout study: {len(study['runs'])} runs in {study['seconds']:.1f} s; "
          f"report in {os.path.join(args.out, 'report.md')}")
    for i, name in enumerate(_CLAIM_NAMES, 1):
        print(f"  claim {i} ({name}): "
              f"{'supported' if a[f'claim{i}']['supported'] else 'not supported'}")
    return 0
