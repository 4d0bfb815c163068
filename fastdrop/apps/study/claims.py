"""The five claims and their verdicts, from the runs of a study (``analyse``).

1. the rate sweep: val accuracy rises and val loss falls with p, then both turn;
2. dropout narrows the train-val accuracy gap;
3. more epochs to converge (about twice as many), each epoch cheaper;
4. inverted and classic dropout give the same predictions in expectation;
5. widening a layer by 1/(1-p) recovers capacity.

Each comparison uses the rule of ``stats.RULE``.
"""
from __future__ import annotations

import math

import numpy as np

from .config import StudyConfig, widened
from .stats import RULE, differs, select_runs, mean_sd, run_summary

__all__ = ["analyse"]


def _config(study: dict) -> StudyConfig:
    """The study's configuration back from its dict form (lists become tuples)."""
    return StudyConfig(**{k: tuple(v) if isinstance(v, list) else v
                          for k, v in study["config"].items()})


def _best_rates(sweep: dict, rates: list) -> tuple:
    """(the rate of the best mean val accuracy, the rate of the lowest mean val loss)."""
    best_acc_p = max(rates, key=lambda p: sweep[p]["val_acc"][0])
    best_loss_p = min(rates, key=lambda p: sweep[p]["val_loss"][0])
    return best_acc_p, best_loss_p


def _claim1(sweep: dict, rates: list, best_acc_p: float, best_loss_p: float) -> dict:
    """Claim 1: accuracy rises above p = rates[0] and turns before rates[-1]; the loss
    falls and turns likewise."""
    p0, pmax = rates[0], rates[-1]
    acc_rise = best_acc_p != p0 and sweep[best_acc_p]["val_acc"][0] > sweep[p0]["val_acc"][0] \
        and differs(sweep[best_acc_p]["val_acc"], sweep[p0]["val_acc"])
    acc_turn = best_acc_p != pmax and differs(sweep[best_acc_p]["val_acc"], sweep[pmax]["val_acc"])
    loss_fall = best_loss_p != p0 and sweep[best_loss_p]["val_loss"][0] < sweep[p0]["val_loss"][0] \
        and differs(sweep[best_loss_p]["val_loss"], sweep[p0]["val_loss"])
    loss_turn = best_loss_p != pmax and differs(sweep[best_loss_p]["val_loss"],
                                                 sweep[pmax]["val_loss"])
    return {"acc_rise": acc_rise, "acc_turn": acc_turn, "loss_fall": loss_fall,
            "loss_turn": loss_turn,
            "supported": acc_rise and acc_turn and loss_fall and loss_turn}


def _claim2(sweep: dict, p0: float, best_p: float) -> dict:
    """Claim 2: the generalisation gap at p0 against the best p."""
    g0, gb = sweep[p0]["gap_acc"], sweep[best_p]["gap_acc"]
    l0, lb = sweep[p0]["gap_loss"], sweep[best_p]["gap_loss"]
    c = {"p": best_p, "gap_acc_0": g0, "gap_acc_best": gb, "gap_loss_0": l0,
         "gap_loss_best": lb,
         "acc_narrower": best_p != p0 and gb[0] < g0[0] and differs(gb, g0),
         "loss_narrower": best_p != p0 and lb[0] < l0[0] and differs(lb, l0)}
    c["supported"] = c["acc_narrower"]
    return c


def _timing_table(timing: dict) -> dict:
    """The epoch-time benchmark in ms: per rate, mean ± sd, median, min and rounds."""
    ms = {p: [1e3 * t for t in v] for p, v in timing.items()}
    return {p: {"mean_sd": mean_sd(v), "median": float(np.median(v)),
                "min": float(np.min(v)), "n": len(v)} for p, v in ms.items()}


def _claim3(sweep: dict, timing: dict, p0: float, best_p: float) -> dict:
    """Claim 3: epochs to converge and the cost of an epoch, p0 against the best p (the
    benchmark's epoch times, or the in-run ones without a benchmark)."""
    e0, eb = sweep[p0]["epochs_converge"], sweep[best_p]["epochs_converge"]
    if str(p0) in timing and str(best_p) in timing:
        t0, tb = timing[str(p0)]["mean_sd"], timing[str(best_p)]["mean_sd"]
    else:  # no benchmark: the in-run epoch times
        t0, tb = sweep[p0]["epoch_ms"], sweep[best_p]["epoch_ms"]
    more = best_p != p0 and eb[0] > e0[0] and differs(eb, e0)
    ratio = eb[0] / e0[0] if e0[0] else float("nan")
    cheaper = best_p != p0 and tb[0] < t0[0] and differs(tb, t0)
    return {"p": best_p, "epochs_0": e0, "epochs_best": eb, "ratio": ratio,
            "epoch_ms_0": t0, "epoch_ms_best": tb, "more_epochs": more,
            "about_twice": more and 1.5 <= ratio <= 2.5, "cheaper_epoch": cheaper,
            "supported": more and cheaper}


def _claim4(runs: list, cfg: StudyConfig) -> dict:
    """Claim 4: classic against inverted dropout at cfg.mode_p.

    The verdict is about the scaling rules (same weights, expectation over masks); the
    separately trained networks are reported beside it, not folded into the verdict."""
    w, frac = cfg.sizes[1], cfg.converge_frac
    inv = select_runs(runs, width=w, hidden_p=cfg.mode_p, input_p=0.0, mode="inverted")
    cls = select_runs(runs, width=w, hidden_p=cfg.mode_p, input_p=0.0, mode="classic")
    si, sc = run_summary(inv, frac), run_summary(cls, frac)
    agree = [float(np.mean(np.asarray(ri["val_pred"]) == np.asarray(rc["val_pred"])))
             for ri, rc in zip(inv, cls)]
    exp = [r["expectation"] for r in inv if "expectation" in r]
    twin = max((max(e["twin_max_rel_diff_inference"], e["twin_max_rel_diff_training"])
                for e in exp), default=float("nan"))
    layer_ok = all(abs(e["layer"][m]["mean_z"]) * math.sqrt(e["layer"][m]["n"]) < 4.0
                   and 0.9 < e["layer"][m]["rms_z"] < 1.1
                   for e in exp for m in ("inverted", "classic"))
    c = {"p": cfg.mode_p, "inverted": si, "classic": sc,
         "agreement": mean_sd(agree), "twin_max_rel_diff": twin,
         "layer_ok": layer_ok, "expectation": exp,
         "network_agreement": mean_sd([e["network_agreement"] for e in exp]),
         "mc_acc": mean_sd([e["mc_acc"] for e in exp]),
         "weight_scaling_acc": mean_sd([e["weight_scaling_acc"] for e in exp]),
         "same_accuracy": not differs(si["val_acc"], sc["val_acc"])}
    c["twin_tol"] = tol = 100 * float(np.finfo(cfg.dtype).eps)
    c["supported"] = bool(twin < tol and layer_ok)
    return c


def _claim5(runs: list, cfg: StudyConfig) -> dict:
    """Claim 5: the narrow network without and with dropout against the widened one."""
    cw, cp, frac = cfg.capacity_width, cfg.capacity_p, cfg.converge_frac
    narrow0 = run_summary(select_runs(runs, width=cw, hidden_p=0.0, input_p=0.0, mode="inverted"), frac)
    narrowp = run_summary(select_runs(runs, width=cw, hidden_p=cp, input_p=0.0, mode="inverted"), frac)
    wide = run_summary(select_runs(runs, width=widened(cw, cp), hidden_p=cp, input_p=0.0,
                            mode="inverted"), frac)
    loss_ = narrowp["val_acc"][0] < narrow0["val_acc"][0] and differs(narrowp["val_acc"],
                                                                        narrow0["val_acc"])
    recovered = not (wide["val_acc"][0] < narrow0["val_acc"][0]
                     and differs(wide["val_acc"], narrow0["val_acc"]))
    better_than_narrow = wide["val_acc"][0] > narrowp["val_acc"][0] and \
        differs(wide["val_acc"], narrowp["val_acc"])
    return {"width": cw, "wide_width": widened(cw, cp), "p": cp, "narrow_p0": narrow0,
            "narrow_p": narrowp, "wide_p": wide, "capacity_loss": loss_,
            "recovered": recovered, "wide_beats_narrow": better_than_narrow,
            "supported": loss_ and recovered and better_than_narrow}


def analyse(study: dict) -> dict:
    """Tables and verdicts from the runs (pure: depends on the runs only).

    Parameters
    ----------
    study : dict
        With ``config`` (``StudyConfig.to_dict()``), ``runs`` (``train_run`` results) and
        optionally ``timing`` (``timing_benchmark`` result).

    Returns
    -------
    dict
        ``rule``, ``seeds``, ``sweep`` and ``input`` (summaries per rate, keyed by
        ``str(p)``), ``best_p``, ``best_loss_p``, ``timing``, and ``claim1`` .. ``claim5``
        (each with its comparisons and ``supported``).
    """
    cfg = _config(study)
    runs = study["runs"]
    w, frac = cfg.sizes[1], cfg.converge_frac
    rates = list(cfg.rates)
    a: dict = {"rule": RULE, "seeds": len(cfg.seeds)}
    sweep = {p: run_summary(select_runs(runs, width=w, hidden_p=p, input_p=0.0, mode="inverted"),
                         frac) for p in cfg.rates}
    a["sweep"] = {str(p): v for p, v in sweep.items()}
    best_p, best_loss_p = _best_rates(sweep, rates)
    a["best_p"], a["best_loss_p"] = best_p, best_loss_p
    a["claim1"] = _claim1(sweep, rates, best_p, best_loss_p)
    a["claim2"] = _claim2(sweep, rates[0], best_p)
    a["timing"] = _timing_table(study.get("timing", {}))
    a["claim3"] = _claim3(sweep, a["timing"], rates[0], best_p)
    a["input"] = {str(pin): run_summary(select_runs(runs, width=w, hidden_p=cfg.input_hidden_p,
                                             input_p=pin, mode="inverted"), frac)
                  for pin in cfg.input_rates}
    a["claim4"] = _claim4(runs, cfg)
    a["claim5"] = _claim5(runs, cfg)
    return a
