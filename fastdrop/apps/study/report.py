"""The report: ``report.md`` (one function per section), ``results.json`` and the plots.

Each ``_..._section(study)`` returns that section's lines; ``render_markdown`` joins them
with newlines (a line may end in ``\\n`` itself, which makes the blank line after it).
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from .plots import write_plots

__all__ = ["render_markdown", "write_report"]


# ---- formatting --------------------------------------------------------------------------


def _f(ms: tuple, digits: int = 3, pct: bool = False) -> str:
    """``mean ± sd``, with ``digits`` decimals, or in % with one decimal."""
    m, s = ms
    if pct:
        return f"{100 * m:.1f} ± {100 * s:.1f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _verdict(ok: bool) -> str:
    return "**supported**" if ok else "**not supported**"


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


def _ends(study: dict) -> tuple:
    """(the first and the last rate of the sweep)."""
    rates = study["config"]["rates"]
    return rates[0], rates[-1]


# ---- sections ----------------------------------------------------------------------------


def _intro_section(study: dict) -> list[str]:
    """Title, the set-up in one paragraph, how to read the figures, and the rule."""
    cfg, a = study["config"], study["analysis"]
    sizes = "-".join(str(s) for s in cfg["sizes"])
    return [
        "# Dropout study report\n",
        f"Network {sizes} (ReLU, hand-written backprop in NumPy {cfg['dtype']}), "
        f"fastdrop dropout after every hidden layer; scikit-learn digits, "
        f"{cfg['n_train']} training / {cfg['n_val']} validation images "
        f"(stratified, split seed {cfg['split_seed']}), the rest held out as test. "
        f"SGD lr {cfg['lr']}, momentum {cfg['momentum']}, batch {cfg['batch']}, "
        f"{cfg['epochs']} epochs, no weight decay, no early stopping. "
        f"Seeds {list(cfg['seeds'])}; {len(study['runs'])} runs in "
        f"{study['seconds']:.1f} s wall ({study['jobs']} process(es)).\n",
        "Figures are mean ± sample standard deviation over the seeds, taken at the end "
        "of the fixed epoch budget unless said otherwise. Accuracies in %.\n",
        f"**Rule**: {a['rule']}. A claim is *supported* only where every comparison it "
        "needs passes that rule in the claimed direction."
        + (" With one seed the deviations are 0 and the rule only checks the "
           "direction." if a["seeds"] < 2 else "") + "\n",
    ]


def _verdict_rows_1_to_3(study: dict) -> list[str]:
    """The verdict table's rows for claims 1 to 3."""
    a = study["analysis"]
    c1, c2, c3, sw = a["claim1"], a["claim2"], a["claim3"], a["sweep"]
    pb, (p0, pmax) = a["best_p"], _ends(study)
    return [
        f"| 1 | val accuracy rises and val loss falls with p, then both turn | "
        f"{_verdict(c1['supported'])} | best val acc at p = {pb} "
        f"({_f(sw[str(pb)]['val_acc'], pct=True)} vs {_f(sw[str(p0)]['val_acc'], pct=True)}"
        f" at p = {p0}, {_f(sw[str(pmax)]['val_acc'], pct=True)} at p = {pmax}); "
        f"lowest val loss at p = {a['best_loss_p']} "
        f"({_f(sw[str(a['best_loss_p'])]['val_loss'])} vs {_f(sw[str(p0)]['val_loss'])} "
        f"at p = {p0}) |",
        f"| 2 | dropout narrows the train-val accuracy gap | {_verdict(c2['supported'])} | "
        f"gap {_f(c2['gap_acc_0'], pct=True)} at p = {p0} vs "
        f"{_f(c2['gap_acc_best'], pct=True)} at p = {c2['p']} |",
        f"| 3 | more epochs to converge (about 2x), each epoch cheaper | "
        f"{_verdict(c3['supported'])} | epochs {_f(c3['epochs_0'], 1)} vs "
        f"{_f(c3['epochs_best'], 1)} (ratio {c3['ratio']:.2f}); epoch "
        f"{_f(c3['epoch_ms_0'], 1)} ms vs {_f(c3['epoch_ms_best'], 1)} ms |",
    ]


def _verdict_rows_4_and_5(study: dict) -> list[str]:
    """The verdict table's rows for claims 4 and 5."""
    c4, c5 = study["analysis"]["claim4"], study["analysis"]["claim5"]
    return [
        f"| 4 | inverted and classic dropout: same predictions in expectation | "
        f"{_verdict(c4['supported'])} | val acc {_f(c4['inverted']['val_acc'], pct=True)}"
        f" (inverted) vs {_f(c4['classic']['val_acc'], pct=True)} (classic); "
        f"reparametrised twin max rel. diff {c4['twin_max_rel_diff']:.1e}; "
        f"mask averages unbiased: {_yes(c4['layer_ok'])}; trained separately at the same "
        f"lr, accuracies differ: {_yes(not c4['same_accuracy'])} |",
        f"| 5 | widening by 1/(1-p) recovers capacity | {_verdict(c5['supported'])} | "
        f"val acc {_f(c5['narrow_p0']['val_acc'], pct=True)} (width {c5['width']}, p = 0), "
        f"{_f(c5['narrow_p']['val_acc'], pct=True)} (p = {c5['p']}), "
        f"{_f(c5['wide_p']['val_acc'], pct=True)} (width {c5['wide_width']}, "
        f"p = {c5['p']}) |\n",
    ]


def _verdicts_section(study: dict) -> list[str]:
    """The table of the five verdicts, with the evidence in a line each."""
    return (["## Verdicts\n", "| # | claim | verdict | evidence |", "|---|---|---|---|"]
            + _verdict_rows_1_to_3(study) + _verdict_rows_4_and_5(study))


def _claim1_section(study: dict) -> list[str]:
    """Claim 1: the table of the rate sweep and its comparisons."""
    cfg, a = study["config"], study["analysis"]
    c1, sw, pb, (p0, pmax) = a["claim1"], a["sweep"], a["best_p"], _ends(study)
    L = ["## Claim 1: the dropout-rate sweep\n",
         "Hidden dropout rate p after both hidden layers, no input dropout. Epoch-end "
         "figures; 'best val acc' is the best epoch of each run (an early-stopping view).\n",
         "| p | train acc | val acc | val loss | best val acc | min val loss | test acc |",
         "|---|---|---|---|---|---|---|"]
    for p in cfg["rates"]:
        s = sw[str(p)]
        L.append(f"| {p} | {_f(s['train_acc'], pct=True)} | {_f(s['val_acc'], pct=True)} | "
                 f"{_f(s['val_loss'])} | {_f(s['best_val_acc'], pct=True)} | "
                 f"{_f(s['min_val_loss'])} | {_f(s['test_acc'], pct=True)} |")
    L.append("")
    L.append(f"- accuracy rises (best p = {pb} above p = {p0} by more than the spread): "
             f"{_yes(c1['acc_rise'])}; turns (best p above p = {pmax}): {_yes(c1['acc_turn'])}")
    L.append(f"- loss falls (lowest-loss p = {a['best_loss_p']} below p = {p0}): "
             f"{_yes(c1['loss_fall'])}; turns (below p = {pmax}): {_yes(c1['loss_turn'])}")
    L.append(f"- verdict: {_verdict(c1['supported'])}\n")
    return L


def _input_section(study: dict) -> list[str]:
    """The input-dropout grid (under claim 1)."""
    cfg, a = study["config"], study["analysis"]
    L = [f"### Input dropout (hidden p = {cfg['input_hidden_p']})\n",
         "| input p | train acc | val acc | val loss | test acc |",
         "|---|---|---|---|---|"]
    for pin in cfg["input_rates"]:
        s = a["input"][str(pin)]
        L.append(f"| {pin} | {_f(s['train_acc'], pct=True)} | {_f(s['val_acc'], pct=True)} | "
                 f"{_f(s['val_loss'])} | {_f(s['test_acc'], pct=True)} |")
    L.append("")
    return L


def _claim2_section(study: dict) -> list[str]:
    """Claim 2: the generalisation gap per rate."""
    cfg, a = study["config"], study["analysis"]
    c2, sw, (p0, _) = a["claim2"], a["sweep"], _ends(study)
    L = ["## Claim 2: the generalisation gap\n",
         "Gap = train accuracy - val accuracy (and val loss - train loss), train figures "
         "from the inference network on the whole training split.\n",
         "| p | train acc | val acc | accuracy gap | loss gap |",
         "|---|---|---|---|---|"]
    for p in cfg["rates"]:
        s = sw[str(p)]
        L.append(f"| {p} | {_f(s['train_acc'], pct=True)} | {_f(s['val_acc'], pct=True)} | "
                 f"{_f(s['gap_acc'], pct=True)} | {_f(s['gap_loss'])} |")
    L.append("")
    L.append(f"- accuracy gap narrower at p = {c2['p']} than at p = {p0}: "
             f"{_yes(c2['acc_narrower'])}; loss gap narrower: {_yes(c2['loss_narrower'])}")
    L.append(f"- verdict (on the accuracy gap): {_verdict(c2['supported'])}\n")
    return L


def _claim3_intro(cfg: dict) -> str:
    """Claim 3's paragraph on how convergence and epoch time are measured."""
    return (f"Epochs to converge: the first epoch whose val accuracy reaches "
            f"{cfg['converge_frac']:g} x the run's best (mean ± sd over seeds). Epoch time: "
            "wall time of one epoch of training steps (forward, backward, update; no "
            "evaluation), one BLAS thread, from an interleaved benchmark run alone after "
            f"the study ({cfg.get('timing_rounds', 0)} rounds, each timing one epoch of "
            "every rate in a rotated order; mean ± sd and median over rounds). The "
            "'in-run' column is the median epoch time inside the study's own runs, which "
            "share the machine with whatever else runs (other runs too, with --jobs > 1). "
            "Timings are measured, so they vary from run to run and with the load; "
            "everything else in this report repeats bit for bit.\n")


def _claim3_section(study: dict) -> list[str]:
    """Claim 3: epochs to converge and the cost of an epoch per rate."""
    cfg, a = study["config"], study["analysis"]
    c3, sw, tm, (p0, _) = a["claim3"], a["sweep"], a.get("timing", {}), _ends(study)
    L = ["## Claim 3: epochs to converge and the cost of an epoch\n", _claim3_intro(cfg),
         "| p | epochs to converge | epoch of min val loss | epoch time (ms) | "
         "median (ms) | in-run (ms) | time to converge (s) |",
         "|---|---|---|---|---|---|---|"]
    for p in cfg["rates"]:
        s = sw[str(p)]
        t = tm.get(str(p))
        ms = t["median"] if t else s["epoch_ms"][0]
        L.append(f"| {p} | {_f(s['epochs_converge'], 1)} | {_f(s['epoch_min_val_loss'], 1)} | "
                 f"{_f(t['mean_sd'], 1) if t else '-'} | {f'{ms:.1f}' if t else '-'} | "
                 f"{_f(s['epoch_ms'], 1)} | {s['epochs_converge'][0] * ms / 1e3:.2f} |")
    L.append("")
    L.append(f"- more epochs at p = {c3['p']} than at p = {p0}: {_yes(c3['more_epochs'])} "
             f"(ratio of means {c3['ratio']:.2f}; 'about twice' read as 1.5-2.5: "
             f"{_yes(c3['about_twice'])})")
    L.append(f"- cheaper epoch at p = {c3['p']}: {_yes(c3['cheaper_epoch'])}. A dense NumPy "
             "network does the same matrix products whatever p is (dropped units are zeros, "
             "not skipped), so dropout cannot save FLOPs here; it adds a mask kernel forward "
             "and backward per layer.")
    L.append(f"- verdict (both parts): {_verdict(c3['supported'])}\n")
    return L


def _claim4_table(c4: dict) -> list[str]:
    """Claim 4's set-up and its table, inverted against classic."""
    L = ["## Claim 4: inverted against classic dropout\n",
         f"p = {c4['p']}. Inverted: kept units scaled by 1/P(keep) while training, identity "
         "at inference. Classic: no scaling while training, x P(keep) at inference "
         "(fastdrop's mode=\"classic\"). Same seeds, so the same initial weights, "
         "minibatches and masks.\n",
         "| | inverted | classic |",
         "|---|---|---|"]
    for k, name in (("train_acc", "train acc"), ("val_acc", "val acc"),
                    ("test_acc", "test acc")):
        L.append(f"| {name} | {_f(c4['inverted'][k], pct=True)} | "
                 f"{_f(c4['classic'][k], pct=True)} |")
    L.append(f"| val loss | {_f(c4['inverted']['val_loss'])} | {_f(c4['classic']['val_loss'])} |")
    L.append("")
    return L


def _claim4_expectation(c4: dict) -> list[str]:
    """Claim 4's Monte Carlo checks, at the layer and for the network (none without)."""
    e = c4["expectation"]
    if not e:
        return []
    lay = "; ".join(f"{m}: mean z {np.mean([x['layer'][m]['mean_z'] for x in e]):+.3f}, "
                    f"rms z {np.mean([x['layer'][m]['rms_z'] for x in e]):.3f}"
                    for m in ("inverted", "classic"))
    return [f"- layer expectation, first hidden layer over {e[0]['k']} masks: "
            f"z = (mask average - inference output) / its standard error; {lay} "
            f"(unbiased: mean z ~ 0, rms z ~ 1). Within the rule "
            f"(|mean z| sqrt(n) < 4, 0.9 < rms z < 1.1): {_yes(c4['layer_ok'])}.",
            f"- network level: the argmax of the {e[0]['k']}-mask average softmax agrees "
            f"with the inference network on {_f(c4['network_agreement'], pct=True)} % of "
            f"val images (accuracy {_f(c4['mc_acc'], pct=True)} vs "
            f"{_f(c4['weight_scaling_acc'], pct=True)}); through ReLUs the inference rule "
            "is an approximation of the expectation, for both modes alike."]


def _claim4_section(study: dict) -> list[str]:
    """Claim 4: the trained pair, the reparametrised twin, the expectation checks."""
    c4, dtype = study["analysis"]["claim4"], study["config"]["dtype"]
    L = _claim4_table(c4)
    L.append(f"- separately trained networks: val predictions agree on "
             f"{_f(c4['agreement'], pct=True)} % of images; val accuracies differ by more than "
             f"the spread: {_yes(not c4['same_accuracy'])}. (Plain SGD is not invariant to the "
             "reparametrisation, so the two trainings follow different paths.)")
    L.append(f"- the classic network with the weights after each dropout layer divided by "
             f"P(keep) is the inverted network: max relative logit difference "
             f"{c4['twin_max_rel_diff']:.1e} (training mode with the same masks, and inference).")
    L += _claim4_expectation(c4)
    L.append(f"- verdict: {_verdict(c4['supported'])}, by the rule: the twin's logits "
             f"match to {c4['twin_tol']:.1e} (relative; 100 ulp of {dtype}) and the "
             "mask averages are unbiased at the layer. The "
             "separately trained pair is reported, not part of the verdict: the claim is "
             "about the scaling rules for given weights, and the training difference "
             "comes from SGD, not from the rules.\n")
    return L


def _claim5_section(study: dict) -> list[str]:
    """Claim 5: the narrow network without and with dropout, and the widened one."""
    c5 = study["analysis"]["claim5"]
    L = ["## Claim 5: widening by 1/(1-p)\n",
         f"Narrow hidden width {c5['width']}, p = {c5['p']}; widened to "
         f"{c5['width']}/(1-{c5['p']}) = {c5['wide_width']}.\n",
         "| network | train acc | train loss | val acc | val loss | test acc |",
         "|---|---|---|---|---|---|"]
    for key, name in (("narrow_p0", f"width {c5['width']}, p = 0"),
                      ("narrow_p", f"width {c5['width']}, p = {c5['p']}"),
                      ("wide_p", f"width {c5['wide_width']}, p = {c5['p']}")):
        s = c5[key]
        L.append(f"| {name} | {_f(s['train_acc'], pct=True)} | {_f(s['train_loss'])} | "
                 f"{_f(s['val_acc'], pct=True)} | {_f(s['val_loss'])} | "
                 f"{_f(s['test_acc'], pct=True)} |")
    L.append("")
    L.append(f"- dropout costs the narrow network val accuracy: {_yes(c5['capacity_loss'])}; "
             f"the widened one beats the narrow dropout one: {_yes(c5['wide_beats_narrow'])}; "
             f"and is not worse than the narrow one without dropout: {_yes(c5['recovered'])}")
    L.append(f"- verdict (all three): {_verdict(c5['supported'])}\n")
    return L


def _plots_section(images: Sequence[str]) -> list[str]:
    """The figures, one image link each (nothing without figures)."""
    if not images:
        return []
    return ["## Plots\n"] + [f"![{img}]({img})\n" for img in images]


def _reproducing_section(study: dict) -> list[str]:
    """What repeats bit for bit, the machine, and the configuration as JSON."""
    cfg, m = study["config"], study.get("machine", {})
    return ["## Reproducing\n",
            "Every number above but the timings is a deterministic function of the "
            "configuration (fixed split, seeded initialisation and minibatch order, "
            "fastdrop Generator(seed) masks, one BLAS thread per run). "
            f"Measured with Python {m.get('python')}, NumPy {m.get('numpy')} on "
            f"{m.get('platform')} ({m.get('cpus')} CPUs, 1-minute load average "
            f"{m.get('loadavg_1min_at_end')} at the end, which bears on the timings). "
            "Configuration:\n",
            "```json\n" + json.dumps(cfg) + "\n```\n"]


# ---- the report --------------------------------------------------------------------------


_SECTIONS = (_intro_section, _verdicts_section, _claim1_section, _input_section,
             _claim2_section, _claim3_section, _claim4_section, _claim5_section)


def render_markdown(study: dict, images: Sequence[str] = ()) -> str:
    """The text of ``report.md``.

    Parameters
    ----------
    study : dict
        A ``run_study`` result (``config``, ``runs``, ``seconds``, ``jobs``, ``machine``,
        ``analysis``).
    images : sequence of str
        Figure file names to link, relative to the report.

    Returns
    -------
    str
        The Markdown: the set-up, the verdicts, a section per claim, the plots and how to
        reproduce it.
    """
    lines: list[str] = []
    for section in _SECTIONS:
        lines += section(study)
    lines += _plots_section(images)
    lines += _reproducing_section(study)
    return "\n".join(lines)


def _json_default(o):
    """NumPy scalars and arrays as plain JSON values."""
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def write_report(study: dict, out: str | os.PathLike, *, plots: bool = True) -> list[str]:
    """Write report.md, results.json and (plots) the PNG figures into ``out``.

    Parameters
    ----------
    study : dict
        A ``run_study`` result.
    out : str or os.PathLike
        The report folder, created if needed.
    plots : bool
        Write the figures too (needs matplotlib).

    Returns
    -------
    list of str
        The files written: the figures, then report.md and results.json.
    """
    os.makedirs(out, exist_ok=True)
    files = []
    if plots:
        files += write_plots(study, out)
    path = os.path.join(out, "report.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_markdown(study, [os.path.basename(f) for f in files]))
    files.append(path)
    jpath = os.path.join(out, "results.json")
    with open(jpath, "w", encoding="utf-8") as fh:
        json.dump({k: v for k, v in study.items() if k != "files"}, fh, indent=1,
                  default=_json_default)
    files.append(jpath)
    return files
