"""The study's PNG figures: the sweep, training curves, convergence and input dropout."""
from __future__ import annotations

import os

import numpy as np

from .extras import require_extra
from .stats import select_runs

__all__ = ["write_plots"]


def _mean_sd(sw: dict, rates: list, key: str) -> tuple:
    """(means, sds) of a sweep figure, one per rate."""
    return (np.array([sw[str(p)][key][0] for p in rates]),
            np.array([sw[str(p)][key][1] for p in rates]))


def _save(fig, out, name, plt) -> str:
    """Save the figure as out/name (no software tag, so the bytes repeat) and close it."""
    path = os.path.join(out, name)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def _sweep_figure(plt, study: dict, out) -> str:
    """1: val and train accuracy and loss against p."""
    cfg, sw = study["config"], study["analysis"]["sweep"]
    rates = list(cfg["rates"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, lab in (("val_acc", "validation"), ("train_acc", "training")):
        m, s = _mean_sd(sw, rates, key)
        ax1.errorbar(rates, 100 * m, yerr=100 * s, marker="o", capsize=3, label=lab)
    ax1.set_xlabel("hidden dropout rate p")
    ax1.set_ylabel("accuracy (%)")
    ax1.legend()
    ax1.set_title("accuracy at the end of training")
    for key, lab in (("val_loss", "validation"), ("train_loss", "training")):
        m, s = _mean_sd(sw, rates, key)
        ax2.errorbar(rates, m, yerr=s, marker="o", capsize=3, label=lab)
    ax2.set_xlabel("hidden dropout rate p")
    ax2.set_ylabel("cross-entropy")
    ax2.set_yscale("log")
    ax2.legend()
    ax2.set_title("loss at the end of training")
    fig.suptitle(f"dropout-rate sweep, mean ± sd over {len(cfg['seeds'])} seed(s)")
    fig.tight_layout()
    return _save(fig, out, "sweep.png", plt)


def _curves_figure(plt, study: dict, out) -> str:
    """2: train and val curves for p = 0 and the best p (mean ± sd over seeds)."""
    cfg, a, runs = study["config"], study["analysis"], study["runs"]
    w = cfg["sizes"][1]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, cfg["epochs"] + 1)
    for p, color in ((cfg["rates"][0], "C0"), (a["best_p"], "C1")):
        sel = select_runs(runs, width=w, hidden_p=p, input_p=0.0, mode="inverted")
        for key, ls, ax in (("train_acc", "--", ax1), ("val_acc", "-", ax1),
                            ("train_loss", "--", ax2), ("val_loss", "-", ax2)):
            h = np.array([r["history"][key] for r in sel])
            m, s = h.mean(axis=0), (h.std(axis=0, ddof=1) if len(h) > 1 else 0 * h[0])
            k = 100 if key.endswith("acc") else 1
            ax.plot(epochs, k * m, ls, color=color,
                    label=f"p = {p} {'train' if key.startswith('train') else 'val'}")
            ax.fill_between(epochs, k * (m - s), k * (m + s), color=color, alpha=0.15)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("accuracy (%)")
    ax1.legend()
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("cross-entropy")
    ax2.set_yscale("log")
    ax2.legend()
    fig.suptitle("training curves: no dropout against the best rate")
    fig.tight_layout()
    return _save(fig, out, "curves.png", plt)


def _convergence_figure(plt, study: dict, out) -> str:
    """3: epochs to converge and epoch time against p."""
    cfg, a = study["config"], study["analysis"]
    rates, sw = list(cfg["rates"]), a["sweep"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    m, s = _mean_sd(sw, rates, "epochs_converge")
    ax1.errorbar(rates, m, yerr=s, marker="o", capsize=3, label="val acc reaches "
                 f"{cfg['converge_frac']:g} x best")
    m, s = _mean_sd(sw, rates, "epoch_min_val_loss")
    ax1.errorbar(rates, m, yerr=s, marker="s", capsize=3, label="epoch of min val loss")
    ax1.set_xlabel("hidden dropout rate p")
    ax1.set_ylabel("epochs")
    ax1.legend()
    ax1.set_title("epochs to converge")
    tm = a.get("timing", {})
    if all(str(p) in tm for p in rates):
        ax2.errorbar(rates, [tm[str(p)]["mean_sd"][0] for p in rates],
                     yerr=[tm[str(p)]["mean_sd"][1] for p in rates], marker="o", capsize=3,
                     label="interleaved benchmark")
    m, s = _mean_sd(sw, rates, "epoch_ms")
    ax2.errorbar(rates, m, yerr=s, marker="s", capsize=3, alpha=0.6, label="in-run median")
    ax2.legend()
    ax2.set_xlabel("hidden dropout rate p")
    ax2.set_ylabel("ms per epoch (training steps)")
    ax2.set_ylim(bottom=0)
    ax2.set_title("cost of an epoch (measured)")
    fig.tight_layout()
    return _save(fig, out, "convergence.png", plt)


def _input_figure(plt, study: dict, out) -> str:
    """4: val accuracy against the input dropout rate."""
    cfg, a = study["config"], study["analysis"]
    fig, ax = plt.subplots(figsize=(5, 4))
    pins = list(cfg["input_rates"])
    m = np.array([a["input"][str(q)]["val_acc"][0] for q in pins])
    s = np.array([a["input"][str(q)]["val_acc"][1] for q in pins])
    ax.errorbar(pins, 100 * m, yerr=100 * s, marker="o", capsize=3)
    ax.set_xlabel("input dropout rate")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"input dropout, hidden p = {cfg['input_hidden_p']}")
    fig.tight_layout()
    return _save(fig, out, "input_dropout.png", plt)


def write_plots(study: dict, out: str | os.PathLike) -> list[str]:
    """Write the four figures into an existing folder.

    Parameters
    ----------
    study : dict
        A ``run_study`` result (with ``analysis``).
    out : str or os.PathLike
        The folder.

    Returns
    -------
    list of str
        The paths of ``sweep.png``, ``curves.png``, ``convergence.png`` and
        ``input_dropout.png``.

    Raises
    ------
    ImportError
        Without matplotlib.
    """
    plt = require_extra("matplotlib")
    return [figure(plt, study, out) for figure in
            (_sweep_figure, _curves_figure, _convergence_figure, _input_figure)]
