"""Claim 4 on a trained network: inverted and classic dropout agree in expectation."""
from __future__ import annotations

import math

import numpy as np

from fastdrop import dropout, effective_p
from fastdrop.apps.mlp import MLP

__all__ = ["expectation_check"]


def _classic_twin(net: MLP) -> MLP:
    """The classic-mode network with ``net``'s weights, those after each dropout layer
    divided by P(keep): the same function as the inverted ``net``."""
    twin = MLP(net.sizes, hidden_p=net.hidden_p, input_p=net.input_p, mode="classic",
               seed=net.seed, dtype=net.dtype)
    for i in range(len(net.W)):
        # layer i reads the output of a dropout layer: divide its weights by P(keep)
        p_in = net.input_p if i == 0 else net.hidden_p
        twin.W[i][...] = net.W[i] / (1.0 - effective_p(p_in)) if p_in > 0 else net.W[i]
        twin.b[i][...] = net.b[i]
    return twin


def _twin_differences(net: MLP, x: np.ndarray) -> tuple:
    """(inference logits of ``net``, max relative logit difference to its classic twin
    at inference, the same in training mode with the same masks)."""
    twin = _classic_twin(net)
    inf_inv = net.forward(x, training=False)[0]
    inf_cls = twin.forward(x, training=False)[0]
    state = net.generator.get_state()
    twin.generator.set_state(state)
    tr_inv = net.forward(x, training=True)[0]
    tr_cls = twin.forward(x, training=True)[0]
    scale = max(1.0, float(np.abs(inf_inv).max()))
    return (inf_inv, float(np.abs(inf_inv - inf_cls).max()) / scale,
            float(np.abs(tr_inv - tr_cls).max()) / scale)


def _layer_z(net: MLP, x: np.ndarray, k: int, q: float) -> dict:
    """Per mode, z-scores of the k-mask average of the first hidden layer's dropout
    output against its inference output."""
    keep = 1.0 - q
    h = np.maximum(np.asarray(x, net.dtype) @ net.W[0] + net.b[0], 0.0)
    layer = {}
    for mode in ("inverted", "classic"):
        acc = np.zeros(h.shape)
        for stream in range(k):
            acc += dropout(h, net.hidden_p, seed=net.seed + 1_000_003, stream=stream, mode=mode)
        mean = acc / k
        target = dropout(h, net.hidden_p, training=False, mode=mode)
        sd = np.abs(h) * math.sqrt(q / keep / k) if mode == "inverted" else \
            np.abs(h) * math.sqrt(q * keep / k)
        nz = sd > 0
        z = (mean[nz] - target[nz]) / sd[nz]
        layer[mode] = {"mean_z": float(z.mean()), "rms_z": float(np.sqrt((z ** 2).mean())),
                       "n": int(nz.sum()),
                       "max_rel_err": float((np.abs(mean - target)[nz] / np.abs(h[nz])).max())}
    return layer


def _mc_prediction(net: MLP, x: np.ndarray, k: int) -> np.ndarray:
    """The argmax of the training-mode softmax averaged over k masks."""
    probs = np.zeros((len(x), net.sizes[-1]))
    for _ in range(k):
        logits = net.forward(x, training=True)[0]
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs += e / e.sum(axis=1, keepdims=True)
    probs /= k
    return probs.argmax(axis=1)


def expectation_check(net: MLP, x: np.ndarray, labels: np.ndarray, k: int) -> dict:
    """Claim 4 on a trained inverted-dropout network.

    - twin: the classic-mode network with the weights after each dropout layer divided
      by P(keep) is the same function: its logits equal the inverted network's, in training
      mode (same masks) and at inference.
    - layer: over k masks, the mean of the first hidden layer's dropout output equals the
      inference output, in both modes, within Monte Carlo error (z-scores).
    - network: the k-mask average of the training-mode softmax against the inference
      network's prediction (the weight-scaling rule, exact only for linear networks).

    Parameters
    ----------
    net : MLP
        A trained network in inverted mode.
    x : numpy.ndarray
        Inputs (the validation images).
    labels : numpy.ndarray
        Their labels.
    k : int
        Number of masks in the Monte Carlo averages.

    Returns
    -------
    dict
        ``k``, ``p_effective``, ``twin_max_rel_diff_inference``,
        ``twin_max_rel_diff_training``, ``layer`` (per mode: ``mean_z``, ``rms_z``, ``n``,
        ``max_rel_err``), ``network_agreement``, ``mc_acc``, ``weight_scaling_acc``.
    """
    q = effective_p(net.hidden_p)
    inf_inv, twin_inference, twin_training = _twin_differences(net, x)
    layer = _layer_z(net, x, k, q)                      # the first hidden ReLU output, k masks
    mc_pred = _mc_prediction(net, x, k)                 # the network, k masks
    ws_pred = inf_inv.argmax(axis=1)
    return {"k": k, "p_effective": q, "twin_max_rel_diff_inference": twin_inference,
            "twin_max_rel_diff_training": twin_training, "layer": layer,
            "network_agreement": float((mc_pred == ws_pred).mean()),
            "mc_acc": float((mc_pred == labels).mean()),
            "weight_scaling_acc": float((ws_pred == labels).mean())}
