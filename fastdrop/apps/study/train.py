"""Training: one run of the study, and the interleaved epoch-time benchmark (claim 3)."""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict

import numpy as np

from fastdrop.apps.mlp import MLP, SGD

from .config import RunSpec, StudyConfig
from .data import load_data
from .expectation import expectation_check

__all__ = ["single_thread", "train_run", "timing_benchmark"]


@contextlib.contextmanager
def single_thread():
    """BLAS and OpenMP held to one thread (if threadpoolctl is there).

    Deterministic and independent of the machine's core count.

    Yields
    ------
    None
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1):
        yield


def _train_epoch(net: MLP, opt: SGD, x: np.ndarray, y: np.ndarray, order: np.ndarray,
                 batch: int) -> float:
    """One epoch of minibatch steps in the given order; returns its wall time (s)."""
    t0 = time.perf_counter()
    for s in range(0, len(y), batch):
        idx = order[s:s + batch]
        _, grads = net.loss_and_grads(x[idx], y[idx])
        opt.step(grads)
    return time.perf_counter() - t0


def train_run(spec: RunSpec, cfg: StudyConfig, data: dict | None = None) -> dict:
    """Train one network and return its per-epoch history and final figures.

    Deterministic given (spec, cfg): the same numbers each time (the timings apart).

    Parameters
    ----------
    spec : RunSpec
        The run: width, rates, mode, seed and whether to run the claim-4 checks.
    cfg : StudyConfig
        The study's configuration (sizes, optimiser, epochs, data split).
    data : dict, optional
        The splits from ``load_data(cfg)`` (loaded when not given).

    Returns
    -------
    dict
        ``spec`` (as a dict), ``history`` (per-epoch ``train_loss``, ``train_acc``,
        ``val_loss``, ``val_acc``, ``epoch_seconds``), ``test_loss``, ``test_acc``,
        ``val_pred`` (the val predictions when ``spec.hidden_p == cfg.mode_p``, else None)
        and, with ``spec.expectation_check``, ``expectation``.
    """
    data = load_data(cfg) if data is None else data
    xtr, ytr = data["x_train"], data["y_train"]
    xva, yva = data["x_val"], data["y_val"]
    with single_thread():
        net = MLP(spec.sizes(cfg), hidden_p=spec.hidden_p, input_p=spec.input_p,
                  mode=spec.mode, seed=spec.seed, dtype=cfg.dtype)
        opt = SGD(net.params, lr=cfg.lr, momentum=cfg.momentum)
        order_rng = np.random.default_rng([spec.seed, 0xBA7C])
        hist = {k: [] for k in ("train_loss", "train_acc", "val_loss", "val_acc",
                                "epoch_seconds")}
        for _ in range(cfg.epochs):
            order = order_rng.permutation(len(ytr))
            hist["epoch_seconds"].append(_train_epoch(net, opt, xtr, ytr, order, cfg.batch))
            trl, tra = net.evaluate(xtr, ytr)
            val, vaa = net.evaluate(xva, yva)
            hist["train_loss"].append(trl)
            hist["train_acc"].append(tra)
            hist["val_loss"].append(val)
            hist["val_acc"].append(vaa)
        test_loss, test_acc = net.evaluate(data["x_test"], data["y_test"])
        out = {"spec": asdict(spec), "history": hist, "test_loss": test_loss,
               "test_acc": test_acc,
               "val_pred": net.predict(xva).tolist() if spec.hidden_p == cfg.mode_p else None}
        if spec.expectation_check:
            out["expectation"] = expectation_check(net, xva, yva, cfg.mc_samples)
    return out


def timing_benchmark(cfg: StudyConfig, data: dict | None = None) -> dict:
    """Wall time of one training epoch (forward, backward, update) per hidden rate.

    One network per rate (seed 0), one warm-up epoch each, then ``cfg.timing_rounds``
    rounds that each time one epoch of every rate, in an order rotated from round to
    round, so that a change in the machine's load hits every rate alike. One BLAS thread.

    Parameters
    ----------
    cfg : StudyConfig
        Gives the rates, sizes, optimiser, batch and number of rounds.
    data : dict, optional
        The splits from ``load_data(cfg)`` (loaded when not given).

    Returns
    -------
    dict
        ``{str(p): [seconds per round]}``.
    """
    data = load_data(cfg) if data is None else data
    xtr, ytr = data["x_train"], data["y_train"]
    rates = list(cfg.rates)
    times: dict = {str(p): [] for p in rates}
    with single_thread():
        nets = [MLP(cfg.sizes, hidden_p=p, seed=0, dtype=cfg.dtype) for p in rates]
        opts = [SGD(n.params, lr=cfg.lr, momentum=cfg.momentum) for n in nets]
        order = np.random.default_rng(0).permutation(len(ytr))
        for net, opt in zip(nets, opts):                        # warm-up
            _train_epoch(net, opt, xtr, ytr, order, cfg.batch)
        for r in range(cfg.timing_rounds):
            for j in range(len(rates)):
                i = (j + r) % len(rates)
                times[str(rates[i])].append(
                    _train_epoch(nets[i], opts[i], xtr, ytr, order, cfg.batch))
    return times
