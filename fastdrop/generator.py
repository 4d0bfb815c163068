"""Stateful conveniences over the stateless kernels: Generator and the Dropout layer.

The kernels are pure functions of (seed, stream). A Generator hands out a fresh stream
per call and returns, with each output, the few numbers its backward pass needs. No mask
is kept: the backward regenerates it.
"""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import functional as _d
from ._validation import UINT64_MAX, check_bits, check_uint64
from .rng import random_bits, standard_normal, uniform

__all__ = ["Generator", "DropoutCall", "Dropout"]


@dataclass(frozen=True)
class DropoutCall:
    """What a dropout call's backward needs: its stream and its arguments (no mask).

    Attributes
    ----------
    kind : {"dropout", "alpha", "gaussian", "bias_dropout_add"}
    seed, stream : int
    p : float
    bits : int
    mode : str
    noise_shape : tuple of int or None
    """

    kind: str
    seed: int
    stream: int
    p: float
    bits: int = 16
    mode: str = "inverted"
    noise_shape: tuple | None = None

    def backward(self, grad: Any, *, out: np.ndarray | None = None,
                 n_threads: int | None = None):
        """Gradient of the call's input, regenerating its mask.

        For bias_dropout_add, returns (dx, dbias, dresidual)."""
        common = dict(seed=self.seed, stream=self.stream, bits=self.bits, n_threads=n_threads)
        if self.kind == "alpha":
            return _d.alpha_dropout_backward(grad, self.p, noise_shape=self.noise_shape,
                                             out=out, **common)
        if self.kind == "gaussian":
            return _d.gaussian_dropout_backward(grad, self.p, seed=self.seed, stream=self.stream,
                                                out=out, n_threads=n_threads)
        if self.kind == "bias_dropout_add":
            if out is not None:
                raise ValueError("out is not supported for bias_dropout_add backward")
            return _d.bias_dropout_add_backward(grad, self.p, **common)
        return _d.dropout_backward(grad, self.p, mode=self.mode, noise_shape=self.noise_shape,
                                   out=out, **common)

    def mask(self, shape: Any, *, packed: bool = True) -> np.ndarray:
        """The keep mask of the call, over `shape` (its noise shape, or x's shape)."""
        if self.kind == "gaussian":
            raise ValueError("gaussian dropout has no keep mask (its noise is regenerated "
                             "by backward)")
        return _d.dropout_mask(shape, self.p, seed=self.seed, stream=self.stream,
                               bits=self.bits, packed=packed)


class Generator:
    """A seed and the next stream number: every call takes a fresh stream.

    Parameters
    ----------
    seed : int, optional
        Unsigned 64-bit key; None draws one from the operating system.
    stream : int
        The first stream to hand out.

    Examples
    --------
    >>> gen = fastdrop.Generator(1234)
    >>> y, call = gen.dropout(x, 0.1)        # stream 0
    >>> dx = call.backward(dy)                # same mask, regenerated
    >>> state = gen.get_state()               # save ... and later gen.set_state(state)
    """

    def __init__(self, seed: int | None = None, stream: int = 0):
        self._seed = secrets.randbits(64) if seed is None else check_uint64(seed, "seed")
        self._next = check_uint64(stream, "stream")
        self._lock = threading.Lock()

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def next_stream(self) -> int:
        return self._next

    def take_stream(self) -> int:
        """Reserve and return the next stream number (thread-safe)."""
        with self._lock:
            s = self._next
            if s > UINT64_MAX:
                raise OverflowError("this generator has used all 2**64 streams")
            self._next = s + 1
            return s

    def get_state(self) -> dict:
        """{"seed": ..., "stream": ...}: everything needed to replay what follows."""
        return {"seed": self._seed, "stream": self._next}

    def set_state(self, state: dict) -> None:
        """Restore a state from get_state()."""
        if not isinstance(state, dict) or set(state) != {"seed", "stream"}:
            raise ValueError("state must be a dict with keys 'seed' and 'stream'")
        seed = check_uint64(state["seed"], "state['seed']")
        stream = check_uint64(state["stream"], "state['stream']")
        with self._lock:
            self._seed, self._next = seed, stream

    def __repr__(self) -> str:
        return f"Generator(seed={self._seed}, stream={self._next})"

    # -- operations ------------------------------------------------------------------

    def dropout(self, x: Any, p: float = 0.5, *, training: bool = True,
                mode: str = "inverted", noise_shape: Any = None, bits: int = 16,
                out: np.ndarray | None = None, n_threads: int | None = None):
        """fastdrop.dropout on a fresh stream; returns (y, DropoutCall) (call None at inference)."""
        if not training:
            return _d.dropout(x, p, seed=0, training=False, mode=mode, noise_shape=noise_shape,
                              bits=bits, out=out), None
        stream = self.take_stream()
        y = _d.dropout(x, p, seed=self._seed, stream=stream, mode=mode, noise_shape=noise_shape,
                       bits=bits, out=out, n_threads=n_threads)
        return y, DropoutCall("dropout", self._seed, stream, float(p), bits, mode,
                              _tuple(noise_shape, np.shape(x)))

    def alpha_dropout(self, x: Any, p: float = 0.5, *, training: bool = True,
                      noise_shape: Any = None, bits: int = 16, out: np.ndarray | None = None,
                      n_threads: int | None = None):
        """fastdrop.alpha_dropout on a fresh stream; returns (y, DropoutCall)."""
        if not training:
            return _d.alpha_dropout(x, p, seed=0, training=False, out=out), None
        stream = self.take_stream()
        y = _d.alpha_dropout(x, p, seed=self._seed, stream=stream, noise_shape=noise_shape,
                             bits=bits, out=out, n_threads=n_threads)
        return y, DropoutCall("alpha", self._seed, stream, float(p), bits, "inverted",
                              _tuple(noise_shape, np.shape(x)))

    def gaussian_dropout(self, x: Any, p: float = 0.5, *, training: bool = True,
                         out: np.ndarray | None = None, n_threads: int | None = None):
        """fastdrop.gaussian_dropout on a fresh stream; returns (y, DropoutCall)."""
        if not training:
            return _d.gaussian_dropout(x, p, seed=0, training=False, out=out), None
        stream = self.take_stream()
        y = _d.gaussian_dropout(x, p, seed=self._seed, stream=stream, out=out,
                                n_threads=n_threads)
        return y, DropoutCall("gaussian", self._seed, stream, float(p), 32)

    def bias_dropout_add(self, x: Any, bias: Any, residual: Any, p: float, *, bits: int = 16,
                         out: np.ndarray | None = None, n_threads: int | None = None):
        """fastdrop.bias_dropout_add on a fresh stream; returns (y, DropoutCall)."""
        stream = self.take_stream()
        y = _d.bias_dropout_add(x, bias, residual, p, seed=self._seed, stream=stream,
                                bits=bits, out=out, n_threads=n_threads)
        return y, DropoutCall("bias_dropout_add", self._seed, stream, float(p), bits)

    def dropout_mask(self, shape: Any, p: float, *, bits: int = 16, packed: bool = True):
        """A keep mask on a fresh stream."""
        return _d.dropout_mask(shape, p, seed=self._seed, stream=self.take_stream(), bits=bits,
                               packed=packed)

    def random_bits(self, shape: Any, *, bits: int = 32):
        """Random draws on a fresh stream."""
        return random_bits(shape, seed=self._seed, stream=self.take_stream(), bits=bits)

    def uniform(self, shape: Any, *, dtype: Any = np.float32):
        """Uniform [0, 1) floats on a fresh stream."""
        return uniform(shape, seed=self._seed, stream=self.take_stream(), dtype=dtype)

    def standard_normal(self, shape: Any, *, dtype: Any = np.float64):
        """Standard normal deviates on a fresh stream."""
        return standard_normal(shape, seed=self._seed, stream=self.take_stream(), dtype=dtype)


def _tuple(noise_shape, shape):
    if noise_shape is None:
        return None
    return tuple(s if d is None else int(d) for d, s in zip(noise_shape, shape))


class Dropout:
    """A dropout layer in the Keras manner, with a backward pass and no stored mask.

    Parameters
    ----------
    rate : float
        Drop probability in [0, 1].
    noise_shape : tuple, optional
        Mask shape, one entry per axis (x's or 1; None entries mean x's).
    mode : {"inverted", "classic"}
    seed : int or Generator, optional
        A seed, or a Generator to share with other layers; None: OS entropy.
    bits : {16, 32}

    Examples
    --------
    >>> layer = fastdrop.Dropout(0.2, seed=0)
    >>> y = layer(x, training=True)
    >>> dx = layer.backward(dy)       # the mask of the last training call, regenerated
    """

    def __init__(self, rate: float, *, noise_shape: Any = None, mode: str = "inverted",
                 seed: int | Generator | None = None, bits: int = 16):
        self.rate = _d.check_p(rate)
        self.mode = _d._check_mode(mode)
        self.bits = check_bits(bits)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.generator = seed if isinstance(seed, Generator) else Generator(seed)
        self._last: DropoutCall | None = None

    @property
    def effective_rate(self) -> float:
        """The drop probability actually used (a multiple of 2**-bits)."""
        return _d.effective_p(self.rate, self.bits)

    @property
    def scale(self) -> float:
        """The factor applied to kept elements while training (1 in classic mode)."""
        return 1.0 if self.mode == "classic" else _d.dropout_scale(self.rate, self.bits)

    def __call__(self, x: Any, training: bool = True, *, out: np.ndarray | None = None):
        y, call = self.generator.dropout(x, self.rate, training=training, mode=self.mode,
                                         noise_shape=self.noise_shape, bits=self.bits, out=out)
        if training:
            self._last = call
        return y

    def backward(self, grad: Any, *, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient for the last training call (its mask is regenerated, never stored)."""
        if self._last is None:
            raise RuntimeError("backward() needs a training call of the layer first")
        return self._last.backward(grad, out=out)

    def get_config(self) -> dict:
        return {"rate": self.rate, "noise_shape": self.noise_shape, "mode": self.mode,
                "bits": self.bits, "seed": self.generator.seed}

    def __repr__(self) -> str:
        return (f"Dropout(rate={self.rate}, effective_rate={self.effective_rate}, "
                f"mode={self.mode!r}, noise_shape={self.noise_shape}, bits={self.bits})")
