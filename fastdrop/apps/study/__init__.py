"""The dropout study: the classic dropout-rate experiment on scikit-learn's digits.

A fully-connected ReLU network (NumPy, hand-written backprop, ``fastdrop.apps.mlp.MLP``)
with fastdrop doing the dropping is trained on a small split of the 8x8 digits bundled
with scikit-learn (no download), so that it overfits without dropout. The study sweeps the
hidden dropout rate, a small grid of input rates, classic against inverted dropout and a
widened network, over several seeds, and writes a report folder: ``report.md`` (a table
per claim, each claim marked "supported" or "not supported" by a stated rule),
``results.json`` and PNG plots.

Command line (``python -m fastdrop study --help``, also ``fastdrop study`` and
``python -m fastdrop.apps.study``)::

    python -m fastdrop study --out study-report            # default budget
    python -m fastdrop study --quick --out /tmp/q          # seconds, for a smoke test
    python -m fastdrop study --full --jobs 2 --out full    # more seeds and epochs

Every run is a pure function of its seed: the data split is fixed (``split_seed``), the
initial weights and the minibatch order come from NumPy generators seeded with the run's
seed, the masks from ``fastdrop.Generator(seed)``, and BLAS and OpenMP are held to one
thread per run (threadpoolctl), so the numbers (timings apart) repeat bit for bit on the
same machine and NumPy/BLAS build, whatever ``--jobs`` is.

Needs the optional extras scikit-learn and matplotlib: ``pip install fastdrop[study]``.

Modules
-------
config
    ``StudyConfig``, the presets ``QUICK``, ``DEFAULT``, ``FULL``, and ``RunSpec``.
extras
    The optional dependencies (scikit-learn, matplotlib) and the install hint.
data
    Loading and splitting the digits.
train
    One training run, and the interleaved epoch-time benchmark.
expectation
    The claim-4 checks on a trained network (reparametrised twin, mask averages).
stats
    Mean and sd over seeds, the comparison rule, run selection and summaries.
claims
    The five claims and their verdicts (``analyse``).
progress
    The text progress bar.
sweep
    The plan of runs and ``run_study`` (serial or over a process pool).
plots
    The four PNG figures.
report
    ``report.md`` (one function per section) and ``results.json``.
cli
    The command line, ``main(argv)``.
"""
from __future__ import annotations

# re-exported: the public names, and those the tests and the CLI use
from .claims import analyse  # noqa: F401
from .cli import build_parser, config_from_args, main  # noqa: F401
from .config import DEFAULT, FULL, QUICK, RunSpec, StudyConfig, widened  # noqa: F401
from .data import load_data  # noqa: F401
from .expectation import expectation_check  # noqa: F401
from .extras import require_extra  # noqa: F401
from .progress import Progress  # noqa: F401
from .report import render_markdown, write_report  # noqa: F401
from .stats import differs, epochs_to_converge  # noqa: F401
from .sweep import plan_runs, run_study  # noqa: F401
from .train import single_thread, timing_benchmark, train_run  # noqa: F401

__all__ = ["StudyConfig", "RunSpec", "run_study", "train_run", "load_data", "write_report",
           "main", "QUICK", "DEFAULT", "FULL"]
