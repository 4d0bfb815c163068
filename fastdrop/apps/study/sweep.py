"""Running the study: the plan of runs, and ``run_study`` (serial or over a process pool)."""
from __future__ import annotations

import os
import platform
import time
from dataclasses import replace

import numpy as np

from .claims import analyse
from .config import DEFAULT, RunSpec, StudyConfig, widened
from .data import load_data
from .extras import require_extra
from .progress import Progress
from .report import write_report
from .train import timing_benchmark, train_run

__all__ = ["plan_runs", "run_study"]


def plan_runs(cfg: StudyConfig) -> list[RunSpec]:
    """The distinct runs of a study (shared runs are listed once).

    Per seed: the hidden-rate sweep (claims 1-3), the input-dropout grid, inverted and
    classic at ``cfg.mode_p`` (claim 4), and the narrow and widened networks (claim 5).

    Parameters
    ----------
    cfg : StudyConfig
        The study's configuration.

    Returns
    -------
    list of RunSpec
        In plan order; a run listed both with and without the claim-4 check is kept once,
        with it.
    """
    w = cfg.sizes[1]
    runs: list[RunSpec] = []

    def add(spec):
        if spec not in runs:
            runs.append(spec)

    for seed in cfg.seeds:
        for p in cfg.rates:                                           # claims 1-3
            add(RunSpec(w, p, 0.0, "inverted", seed, expectation_check=(p == cfg.mode_p)))
        for pin in cfg.input_rates:                                   # input-dropout grid
            add(RunSpec(w, cfg.input_hidden_p, pin, "inverted", seed,
                        expectation_check=(pin == 0.0 and cfg.input_hidden_p == cfg.mode_p)))
        add(RunSpec(w, cfg.mode_p, 0.0, "inverted", seed, expectation_check=True))   # claim 4
        add(RunSpec(w, cfg.mode_p, 0.0, "classic", seed))
        cw, cp = cfg.capacity_width, cfg.capacity_p                   # claim 5
        add(RunSpec(cw, 0.0, 0.0, "inverted", seed))
        add(RunSpec(cw, cp, 0.0, "inverted", seed))
        add(RunSpec(widened(cw, cp), cp, 0.0, "inverted", seed))
    # a spec listed both with and without the check is kept once, with it
    checked = {replace(r, expectation_check=False) for r in runs if r.expectation_check}
    return [r for r in runs if r.expectation_check or r not in checked]


def _worker(args):
    """One run in a pool process (module level, so that it pickles)."""
    spec, cfg = args
    return train_run(spec, cfg)


def _train_all(specs: list, cfg: StudyConfig, jobs: int, bar: Progress) -> list:
    """Every run of the plan, in plan order: serially, or over ``jobs`` spawned processes."""
    results: list = [None] * len(specs)
    if jobs <= 1:
        data = load_data(cfg)
        for i, spec in enumerate(specs):
            results[i] = train_run(spec, cfg, data)
            bar.update()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # no fork after OpenMP/BLAS threads
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futs = {pool.submit(_worker, (spec, cfg)): i for i, spec in enumerate(specs)}
            for fut in as_completed(futs):
                results[futs[fut]] = fut.result()
                bar.update()
    return results


def _machine() -> dict:
    """Python, NumPy, platform, CPU count and the 1-minute load average (for the report)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "loadavg_1min_at_end": None if load is None else round(load[0], 2)}


def run_study(cfg: StudyConfig = DEFAULT, *, out: str | os.PathLike | None = None,
              jobs: int = 1, progress: bool = True, plots: bool = True) -> dict:
    """Run every training run of the study, analyse them, and (with out) write the report.

    ``jobs > 1`` runs that many processes (spawned, one BLAS thread each): the numbers do
    not depend on it, only the wall time does (and the per-epoch timings, which share
    the cores). As with any spawned pool, a script that calls it with ``jobs > 1`` must
    do so under ``if __name__ == "__main__":``.

    Parameters
    ----------
    cfg : StudyConfig
        The configuration (default ``DEFAULT``).
    out : str or os.PathLike, optional
        Report folder; None writes nothing.
    jobs : int
        Worker processes.
    progress : bool
        Show the progress bar on stderr.
    plots : bool
        Write the PNG figures (with ``out``).

    Returns
    -------
    dict
        ``config``, ``runs`` (one entry per run, in plan order, with its history),
        ``timing``, ``seconds`` (wall time), ``jobs``, ``machine``, ``analysis`` (the
        tables and verdicts) and, with ``out``, ``files``.

    Raises
    ------
    ImportError
        Without scikit-learn, or without matplotlib when plots are to be written.
    """
    if out is not None and plots:
        require_extra("matplotlib")
    require_extra("sklearn")
    specs = plan_runs(cfg)
    t0 = time.perf_counter()
    bar = Progress(len(specs), enabled=progress)
    results = _train_all(specs, cfg, jobs, bar)
    timing = timing_benchmark(cfg) if cfg.timing_rounds > 0 else {}
    seconds = time.perf_counter() - t0
    study = {"config": cfg.to_dict(), "runs": results, "timing": timing, "seconds": seconds,
             "jobs": jobs, "machine": _machine()}
    study["analysis"] = analyse(study)
    if out is not None:
        study["files"] = write_report(study, out, plots=plots)
    return study
