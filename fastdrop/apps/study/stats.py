"""Statistics over seeds: mean and sd, the comparison rule, run selection and summaries."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["RULE", "epochs_to_converge"]

RULE = ("two means differ when |mean_a - mean_b| > sd_a + sd_b "
        "(sample standard deviations over seeds)")


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 with one value)."""
    a = np.asarray(values, float)
    return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else 0.0)


def differs(a: tuple, b: tuple) -> bool:
    """The rule: two means differ when they are further apart than the sum of their
    standard deviations over seeds."""
    return abs(a[0] - b[0]) > a[1] + b[1]


def epochs_to_converge(val_acc: Sequence[float], frac: float) -> int:
    """First epoch (1-based) whose validation accuracy reaches frac x the run's best.

    Parameters
    ----------
    val_acc : sequence of float
        The run's validation accuracy per epoch.
    frac : float
        The fraction of the best accuracy that counts as converged.

    Returns
    -------
    int
        The 1-based epoch.
    """
    a = np.asarray(val_acc)
    return int(np.argmax(a >= frac * a.max())) + 1


def select_runs(runs, **kw) -> list:
    """The runs whose spec has every given field value, sorted by seed."""
    out = []
    for r in runs:
        s = r["spec"]
        if all(s[k] == v for k, v in kw.items()):
            out.append(r)
    return sorted(out, key=lambda r: r["spec"]["seed"])


def run_summary(runs: list, frac: float) -> dict:
    """Mean and std over seeds of a set of runs' end-of-budget figures."""
    final = lambda k: [r["history"][k][-1] for r in runs]  # noqa: E731
    s = {k: mean_sd(final(k)) for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
    s["gap_acc"] = mean_sd([r["history"]["train_acc"][-1] - r["history"]["val_acc"][-1]
                           for r in runs])
    s["gap_loss"] = mean_sd([r["history"]["val_loss"][-1] - r["history"]["train_loss"][-1]
                            for r in runs])
    s["best_val_acc"] = mean_sd([max(r["history"]["val_acc"]) for r in runs])
    s["min_val_loss"] = mean_sd([min(r["history"]["val_loss"]) for r in runs])
    s["test_acc"] = mean_sd([r["test_acc"] for r in runs])
    s["epochs_converge"] = mean_sd([epochs_to_converge(r["history"]["val_acc"], frac)
                                   for r in runs])
    s["epoch_min_val_loss"] = mean_sd([int(np.argmin(r["history"]["val_loss"])) + 1
                                      for r in runs])
    s["epoch_ms"] = mean_sd([1e3 * float(np.median(r["history"]["epoch_seconds"]))
                            for r in runs])
    s["n"] = len(runs)
    return s
