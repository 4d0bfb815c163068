"""A small fully-connected ReLU network in NumPy, with hand-written backprop and fastdrop
dropout layers.

Used by the dropout study (``fastdrop.study``) and by ``examples/numpy_mlp.py``. It needs
NumPy only.

The network is ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``: affine layers with ReLU on
every hidden layer, an optional dropout on the input (``input_p``) and one after every
hidden ReLU (``hidden_p``), and softmax cross-entropy on the logits. All dropout layers
share one :class:`fastdrop.Generator`, which hands out a fresh stream per call, so a run is
a pure function of ``seed``: the initial weights come from ``numpy.random.default_rng``
seeded with it, the masks from ``fastdrop.Generator(seed)``.

A rate of 0 means no dropout layer at all (not an identity kernel call), so a p = 0 network
is exactly the plain network, and timings compare like with like.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fastdrop import Dropout, Generator

__all__ = ["MLP", "SGD", "softmax_cross_entropy", "accuracy"]


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy of integer `labels` under softmax(logits), and its gradient
    with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(z).sum(axis=1, keepdims=True))
    logp = z - logsum
    n = logits.shape[0]
    loss = float(-logp[np.arange(n), labels].mean())
    grad = np.exp(logp)
    grad[np.arange(n), labels] -= 1.0
    grad /= n
    return loss, grad


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


class MLP:
    """Fully-connected ReLU network with fastdrop dropout.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first, classes last (e.g. ``(64, 512, 512, 10)``).
    hidden_p : float
        Drop probability after every hidden ReLU (0: no dropout layer).
    input_p : float
        Drop probability on the input (0: no dropout layer).
    mode : {"inverted", "classic"}
        fastdrop's dropout mode: "inverted" scales by 1/P(keep) while training,
        "classic" scales by P(keep) at inference.
    seed : int
        Seeds the He-normal initial weights (NumPy) and the dropout masks (fastdrop).
    dtype : numpy dtype
        float64 (default) or float32.
    """

    def __init__(self, sizes: Sequence[int], *, hidden_p: float = 0.0, input_p: float = 0.0,
                 mode: str = "inverted", seed: int = 0, dtype=np.float64):
        self.sizes = tuple(int(s) for s in sizes)
        if len(self.sizes) < 2:
            raise ValueError("sizes needs at least an input and an output width")
        self.dtype = np.dtype(dtype)
        self.hidden_p = float(hidden_p)
        self.input_p = float(input_p)
        self.mode = mode
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 0x5EED])
        self.W = []
        self.b = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
            self.W.append(w.astype(self.dtype))
            self.b.append(np.zeros(fan_out, self.dtype))
        self.generator = Generator(self.seed)
        n_hidden = len(self.sizes) - 2
        self.input_dropout = (Dropout(self.input_p, mode=mode, seed=self.generator)
                              if self.input_p > 0 else None)
        self.hidden_dropout = [Dropout(self.hidden_p, mode=mode, seed=self.generator)
                               if self.hidden_p > 0 else None for _ in range(n_hidden)]

    @property
    def params(self) -> list:
        """[W0, b0, W1, b1, ...] (the arrays themselves)."""
        out = []
        for w, b in zip(self.W, self.b):
            out += [w, b]
        return out

    def forward(self, x: np.ndarray, training: bool = False):
        """Logits and the cache backward() needs. training=True draws dropout masks (a fresh
        fastdrop stream per layer and call); False runs the inference network."""
        a = np.asarray(x, self.dtype)
        if self.input_dropout is not None:
            a = self.input_dropout(a, training=training)
        inputs, pre = [a], []
        last = len(self.W) - 1
        for i, (w, b) in enumerate(zip(self.W, self.b)):
            z = a @ w
            z += b
            if i == last:
                return z, (inputs, pre)
            pre.append(z)
            a = np.maximum(z, 0.0)
            drop = self.hidden_dropout[i]
            if drop is not None:
                a = drop(a, training=training)
            inputs.append(a)
        raise AssertionError("unreachable")

    def backward(self, cache, dlogits: np.ndarray) -> list:
        """Gradients [dW0, db0, dW1, db1, ...] from the cache of the last training forward.

        The dropout layers regenerate their masks from their last call's stream (fastdrop
        stores none), so backward must follow its own forward, layer calls unchanged."""
        inputs, pre = cache
        grads = [None] * (2 * len(self.W))
        d = dlogits
        for i in range(len(self.W) - 1, -1, -1):
            grads[2 * i] = inputs[i].T @ d
            grads[2 * i + 1] = d.sum(axis=0)
            if i == 0:
                break
            d = d @ self.W[i].T
            drop = self.hidden_dropout[i - 1]
            if drop is not None:
                d = drop.backward(d)
            d *= pre[i - 1] > 0
        return grads

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray):
        """One training forward/backward: (loss, grads)."""
        logits, cache = self.forward(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, labels)
        return loss, self.backward(cache, dlogits)

    def evaluate(self, x: np.ndarray, labels: np.ndarray, batch: int = 1024):
        """(loss, accuracy) of the inference network."""
        losses, correct, n = 0.0, 0, len(labels)
        for s in range(0, n, batch):
            logits, _ = self.forward(x[s:s + batch], training=False)
            loss, _ = softmax_cross_entropy(logits, labels[s:s + batch])
            losses += loss * len(logits)
            correct += int((logits.argmax(axis=1) == labels[s:s + batch]).sum())
        return losses / n, correct / n

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x, training=False)[0].argmax(axis=1)


class SGD:
    """SGD with (heavy-ball) momentum, updating the parameter arrays in place."""

    def __init__(self, params: list, lr: float = 0.05, momentum: float = 0.9):
        self.params = params
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.velocity = [np.zeros_like(p) for p in params]

    def step(self, grads: list) -> None:
        for p, v, g in zip(self.params, self.velocity, grads):
            v *= self.momentum
            v -= self.lr * g
            p += v
