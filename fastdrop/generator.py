"""Stateful conveniences over the stateless kernels: Generator and the Dropout layer.

The kernels are pure functions of (seed, stream). A Generator hands out a fresh stream
per call and returns, with each output, the few numbers its backward pass needs. No mask
is kept: the backward regenerates it.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import functional as _d
from ._core.args import (UINT64_MAX, as_int, check_bits, check_bool, check_mode,
                         check_noise_spec, check_p, check_uint64)
from ._core.forksafe import new_lock
from .rng import random_bits, standard_normal, uniform

__all__ = ["Generator", "DropoutCall", "Dropout"]


_KINDS = ("dropout", "alpha", "gaussian", "bias_dropout_add")


@dataclass(frozen=True)
class DropoutCall:
    """What a dropout call's backward needs: its stream and its arguments (no mask).

    `Generator`'s operations return one beside their output; it is a frozen dataclass
    of a few numbers (no array is kept), so it can be stored, pickled or sent anywhere.

    Parameters
    ----------
    kind : {"dropout", "alpha", "gaussian", "bias_dropout_add"}
        The operation that made the call.
    seed, stream : int
        The call's Philox key and stream.
    p : float
        The call's drop probability (rate, for gaussian dropout).
    bits : int
        Bits per draw.
    mode : {"inverted", "classic"}
        The dropout mode (``"inverted"`` but for classic dropout).
    noise_shape : tuple of int or None
        The mask's shape when it is not the input's.
    has_bias : bool or None
        Whether a bias_dropout_add call had a bias (its backward returns a dbias then,
        None otherwise); None for the other kinds (and, for a call made by hand, a bias).

    Raises
    ------
    ValueError
        At construction, a kind outside those four.
    TypeError, ValueError
        From `backward` and `mask`, as the functions they call.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> y, call = fastdrop.Generator(1234).dropout(np.ones(8, np.float32), 0.5)
    >>> call
    DropoutCall(kind='dropout', seed=1234, stream=0, p=0.5, bits=16, mode='inverted', noise_shape=None, has_bias=None)
    >>> call.backward(np.ones(8, np.float32))
    array([2., 0., 2., 2., 2., 0., 0., 2.], dtype=float32)
    >>> call.mask(8)
    array([157], dtype=uint8)
    """

    kind: str
    seed: int
    stream: int
    p: float
    bits: int = 16
    mode: str = "inverted"
    noise_shape: tuple | None = None
    has_bias: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:   # (another kind would run dropout's backward)
            raise ValueError(f"kind must be one of {', '.join(map(repr, _KINDS))}, got "
                             f"{self.kind!r}")

    def backward(self, grad: Any, *, out: np.ndarray | None = None,
                 n_threads: int | None = None):
        """Gradient of the call's input, regenerating its mask (or noise).

        Parameters
        ----------
        grad : array_like
            Gradient of the call's output: its shape and dtype.
        out : array, optional
            Where to write the gradient (not for bias_dropout_add).
        n_threads : int, optional
            CPU threads (None: OMP_NUM_THREADS, else all cores).

        Returns
        -------
        dx : array of grad's type, or (dx, dbias, dresidual) for bias_dropout_add
            NumPy in, NumPy out; torch or JAX CPU in, the same out; a CUDA array gives
            the same framework's array on its GPU.

        Raises
        ------
        TypeError, ValueError
            As `fastdrop.dropout_backward` (and its alpha, gaussian and bias-dropout-add
            twins); `out` with bias_dropout_add.

        Examples
        --------
        >>> import numpy as np, fastdrop
        >>> y, call = fastdrop.Generator(1234).dropout(np.ones(8, np.float32), 0.5)
        >>> call.backward(np.full(8, 3.0, np.float32))
        array([6., 0., 6., 6., 6., 0., 0., 6.], dtype=float32)
        """
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
            return _d.bias_dropout_add_backward(grad, self.p, has_bias=self.has_bias is not False,
                                                **common)
        return _d.dropout_backward(grad, self.p, mode=self.mode, noise_shape=self.noise_shape,
                                   out=out, **common)

    def mask(self, shape: Any, *, packed: bool = True) -> np.ndarray:
        """The keep mask of the call, over `shape` (its noise shape, or x's shape).

        Parameters
        ----------
        shape : int or tuple of ints
            The call's noise shape, or its input's shape.
        packed : bool
            True: packed uint8 bytes (LSB first); False: a bool array of `shape`.

        Returns
        -------
        numpy.ndarray of uint8 or bool

        Raises
        ------
        ValueError
            For a gaussian dropout call, which has no keep mask; a bad shape.

        Examples
        --------
        >>> import numpy as np, fastdrop
        >>> y, call = fastdrop.Generator(1234).dropout(np.ones(8, np.float32), 0.5)
        >>> call.mask(8, packed=False)
        array([ True, False,  True,  True,  True, False, False,  True])
        """
        if self.kind == "gaussian":
            raise ValueError("gaussian dropout has no keep mask (its noise is regenerated "
                             "by backward)")
        return _d.dropout_mask(shape, self.p, seed=self.seed, stream=self.stream,
                               bits=self.bits, packed=packed)


class Generator:
    """A seed and the next stream number: every call takes a fresh stream.

    Every operation is the stateless fastdrop function of the same name, called with the
    generator's seed and its next stream (thread-safe), and returns what it returns:
    arrays of the caller's type (NumPy in, NumPy out; torch or JAX CPU in, the same out;
    a CUDA array gives the same framework's array on its GPU). The dropout operations
    also return a `DropoutCall` for the backward pass.

    Parameters
    ----------
    seed : int, optional
        Unsigned 64-bit key; None draws one from the operating system.
    stream : int
        The first stream to hand out.

    Raises
    ------
    TypeError
        seed or stream is not an integer.
    ValueError
        seed or stream is outside [0, 2**64 - 1].

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> gen = fastdrop.Generator(1234)
    >>> x = np.ones(8, np.float32)
    >>> y, call = gen.dropout(x, 0.5)            # stream 0
    >>> y
    array([2., 0., 2., 2., 2., 0., 0., 2.], dtype=float32)
    >>> dx = call.backward(np.ones_like(x))      # the same mask, regenerated
    >>> state = gen.get_state()                  # save ...
    >>> y1, _ = gen.dropout(x, 0.5)              # stream 1
    >>> gen.set_state(state)                     # ... and replay
    >>> bool((gen.dropout(x, 0.5)[0] == y1).all())
    True
    """

    def __init__(self, seed: int | None = None, stream: int = 0):
        self._seed = secrets.randbits(64) if seed is None else check_uint64(seed, "seed")
        self._next = check_uint64(stream, "stream")
        self._lock = new_lock()

    @property
    def seed(self) -> int:
        """The generator's seed (an unsigned 64-bit int)."""
        return self._seed

    @property
    def next_stream(self) -> int:
        """The stream the next operation will take."""
        return self._next

    def take_stream(self) -> int:
        """Reserve and return the next stream number (thread-safe).

        Returns
        -------
        int

        Raises
        ------
        OverflowError
            All 2**64 streams have been used.

        Examples
        --------
        >>> import fastdrop
        >>> gen = fastdrop.Generator(7, stream=5)
        >>> gen.take_stream(), gen.take_stream(), gen.next_stream
        (5, 6, 7)
        """
        return self.take()[1]

    def _give_back(self, seed: int, stream: int) -> None:
        """Undo `take` for a call that raised (bad input changes nothing), unless another
        operation has taken a stream since (threads)."""
        with self._lock:
            if self._next == stream + 1 and self._seed == seed:
                self._next = stream

    def _draw(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """fn(*args, seed=seed, stream=stream, **kwargs) on a fresh stream, given back if
        it raises. (The dropout operations write this out: their calls are the hot
        ones, and the keyword forwarding here costs a microsecond.)"""
        seed, stream = self.take()
        try:
            return fn(*args, seed=seed, stream=stream, **kwargs)
        except BaseException:
            self._give_back(seed, stream)
            raise

    def take(self) -> tuple[int, int]:
        """The seed and a newly reserved stream, read together (thread-safe).

        Use it rather than ``gen.seed`` and ``gen.take_stream()`` apart: a concurrent
        `set_state` between the two would pair a stream with another seed.

        Returns
        -------
        (int, int)
            (seed, stream) for one operation.

        Raises
        ------
        OverflowError
            All 2**64 streams have been used.

        Examples
        --------
        >>> import fastdrop
        >>> gen = fastdrop.Generator(7, stream=5)
        >>> gen.take(), gen.take()
        ((7, 5), (7, 6))
        """
        with self._lock:
            s = self._next
            if s > UINT64_MAX:
                raise OverflowError("this generator has used all 2**64 streams")
            self._next = s + 1
            return self._seed, s

    def get_state(self) -> dict:
        """Everything needed to replay what follows: the seed and the next stream.

        Returns
        -------
        dict
            ``{"seed": seed, "stream": next_stream}``, for `set_state`.

        Examples
        --------
        >>> import fastdrop
        >>> fastdrop.Generator(1234).get_state()
        {'seed': 1234, 'stream': 0}
        """
        with self._lock:
            return {"seed": self._seed, "stream": self._next}

    def set_state(self, state: dict) -> None:
        """Restore a state from get_state().

        Parameters
        ----------
        state : dict
            ``{"seed": int, "stream": int}``.

        Raises
        ------
        ValueError
            state is not a dict with exactly those keys, or a value is outside
            [0, 2**64 - 1].
        TypeError
            A value is not an integer.

        Examples
        --------
        >>> import fastdrop
        >>> gen = fastdrop.Generator(1)
        >>> gen.set_state({"seed": 1234, "stream": 3})
        >>> gen
        Generator(seed=1234, stream=3)
        """
        if not isinstance(state, dict) or set(state) != {"seed", "stream"}:
            raise ValueError("state must be a dict with keys 'seed' and 'stream'")
        seed = check_uint64(state["seed"], "state['seed']")
        stream = as_int(state["stream"], "state['stream']")
        if not 0 <= stream <= UINT64_MAX + 1:  # 2**64: every stream used (get_state's own)
            raise ValueError(f"state['stream'] must be in [0, 2**64], got {stream}")
        with self._lock:
            self._seed, self._next = seed, stream

    def __repr__(self) -> str:
        return f"Generator(seed={self._seed}, stream={self._next})"

    def __getstate__(self) -> dict:
        """Pickling and deep copies keep the seed and the next stream (not the lock): a
        copy replays what the original would draw next."""
        return self.get_state()

    def __setstate__(self, state: dict) -> None:
        self._lock = new_lock()
        self._seed, self._next = 0, 0
        self.set_state(state)

    # -- operations ------------------------------------------------------------------

    def dropout(self, x: Any, p: float = 0.5, *, training: bool = True,
                mode: str = "inverted", noise_shape: Any = None, bits: int = 16,
                out: np.ndarray | None = None, n_threads: int | None = None):
        """`fastdrop.dropout` on a fresh stream.

        Parameters
        ----------
        x : array_like of float16, bfloat16, float32 or float64
            The input.
        p : float
            Drop probability in [0, 1].
        training, mode, noise_shape, bits, out, n_threads
            As in `fastdrop.dropout`. Inference takes no stream.

        Returns
        -------
        y : array of x's type
            As `fastdrop.dropout` returns it.
        call : DropoutCall or None
            For the backward pass; None at inference.

        Raises
        ------
        TypeError, ValueError
            As `fastdrop.dropout`.

        Examples
        --------
        >>> import numpy as np, fastdrop
        >>> y, call = fastdrop.Generator(1234).dropout(np.ones(8, np.float32), 0.5)
        >>> y, call.stream
        (array([2., 0., 2., 2., 2., 0., 0., 2.], dtype=float32), 0)
        """
        if not check_bool(training, "training"):   # (every argument checked as there)
            return _d.dropout(x, p, seed=0, training=False, mode=mode, noise_shape=noise_shape,
                              bits=bits, out=out, n_threads=n_threads), None
        seed, stream = self.take()
        try:
            y = _d.dropout(x, p, seed=seed, stream=stream, mode=mode,
                           noise_shape=noise_shape, bits=bits, out=out, n_threads=n_threads)
        except BaseException:
            self._give_back(seed, stream)
            raise
        return y, DropoutCall("dropout", seed, stream, float(p), bits, mode,
                              _tuple(noise_shape, np.shape(x)))

    def alpha_dropout(self, x: Any, p: float = 0.5, *, training: bool = True,
                      noise_shape: Any = None, bits: int = 16, out: np.ndarray | None = None,
                      n_threads: int | None = None):
        """`fastdrop.alpha_dropout` on a fresh stream.

        Parameters
        ----------
        x : array_like of float16, bfloat16, float32 or float64
            The input.
        p : float
            Drop probability in [0, 1].
        training, noise_shape, bits, out, n_threads
            As in `fastdrop.alpha_dropout`.

        Returns
        -------
        y : array of x's type
            As `fastdrop.alpha_dropout` returns it.
        call : DropoutCall or None
            For the backward pass; None at inference.

        Raises
        ------
        TypeError, ValueError
            As `fastdrop.alpha_dropout`.

        Examples
        --------
        >>> import numpy as np, fastdrop
        >>> y, call = fastdrop.Generator(1234).alpha_dropout(np.zeros(4, np.float32), 0.5)
        >>> call.kind, call.stream
        ('alpha', 0)
        """
        if not check_bool(training, "training"):
            return _d.alpha_dropout(x, p, seed=0, training=False, noise_shape=noise_shape,
                                    bits=bits, out=out, n_threads=n_threads), None
        seed, stream = self.take()
        try:
            y = _d.alpha_dropout(x, p, seed=seed, stream=stream, noise_shape=noise_shape,
                                 bits=bits, out=out, n_threads=n_threads)
        except BaseException:
            self._give_back(seed, stream)
            raise
        return y, DropoutCall("alpha", seed, stream, float(p), bits, "inverted",
                              _tuple(noise_shape, np.shape(x)))

    def gaussian_dropout(self, x: Any, p: float = 0.5, *, training: bool = True,
                         out: np.ndarray | None = None, n_threads: int | None = None):
        """`fastdrop.gaussian_dropout` on a fresh stream.

        Parameters
        ----------
        x : array_like of float16, bfloat16, float32 or float64
            The input.
        p : float
            Rate in [0, 1).
        training, out, n_threads
            As in `fastdrop.gaussian_dropout`.

        Returns
        -------
        y : array of x's type
            As `fastdrop.gaussian_dropout` returns it.
        call : DropoutCall or None
            For the backward pass (the noise is regenerated); None at inference.

        Raises
        ------
        TypeError, ValueError
            As `fastdrop.gaussian_dropout`.

        Examples
        --------
        >>> import numpy as np, fastdrop
        >>> y, call = fastdrop.Generator(1).gaussian_dropout(np.ones(3), 0.5)
        >>> y
        array([2.2279..., 2.2518..., 1.2165...])
        """
        if not check_bool(training, "training"):
            return _d.gaussian_dropout(x, p, seed=0, training=False, out=out,
                                       n_threads=n_threads), None
        seed, stream = self.take()
        try:
            y = _d.gaussian_dropout(x, p, seed=seed, stream=stream, out=out,
                                    n_threads=n_threads)
        except BaseException:
            self._give_back(seed, stream)
            raise
        return y, DropoutCall("gaussian", seed, stream, float(p), 32)

    def bias_dropout_add(self, x: Any, bias: Any, residual: Any, p: float, *, bits: int = 16,
                         out: np.ndarray | None = None, n_threads: int | None = None):
        """`fastdrop.bias_dropout_add` on a fresh stream.

        Parameters
        ----------
        x, bias, residual : array_like
            As in `fastdrop.bias_dropout_add`.
        p : float
            Drop probability in [0, 1].
        bits, out, n_threads
            As in `fastdrop.bias_dropout_add`.

        Returns
        -------
        y : array of x's type
            ``residual + dropout(x + bias)``.
        call : DropoutCall
            Its `backward` returns ``(dx, dbias, dresidual)``.

        Raises
        ------
        TypeError, ValueError
            As `fastdrop.bias_dropout_add`.

        Examples
        --------
        >>> import numpy as np, fastdrop
        >>> x = np.ones((2, 4), np.float32)
        >>> y, call = fastdrop.Generator(42).bias_dropout_add(x, None, np.zeros_like(x), 0.5)
        >>> y
        array([[2., 2., 0., 0.],
               [0., 0., 2., 0.]], dtype=float32)
        """
        seed, stream = self.take()
        try:
            y = _d.bias_dropout_add(x, bias, residual, p, seed=seed, stream=stream, bits=bits,
                                    out=out, n_threads=n_threads)
        except BaseException:
            self._give_back(seed, stream)
            raise
        return y, DropoutCall("bias_dropout_add", seed, stream, float(p), bits,
                              has_bias=bias is not None)

    def dropout_mask(self, shape: Any, p: float, *, bits: int = 16, packed: bool = True):
        """`fastdrop.dropout_mask` on a fresh stream.

        Parameters
        ----------
        shape : int or tuple of ints
            The shape of the array the mask is for.
        p : float
            Drop probability in [0, 1].
        bits : {16, 32, 8}
            Bits per draw.
        packed : bool
            True: packed uint8 bytes (LSB first); False: a bool array of `shape`.

        Returns
        -------
        numpy.ndarray of uint8 or bool

        Raises
        ------
        TypeError, ValueError
            As `fastdrop.dropout_mask`.

        Examples
        --------
        >>> import fastdrop
        >>> fastdrop.Generator(42).dropout_mask(8, 0.5)
        array([67], dtype=uint8)
        """
        return self._draw(_d.dropout_mask, shape, p, bits=bits, packed=packed)

    def random_bits(self, shape: Any, *, bits: int = 32):
        """`fastdrop.random_bits` on a fresh stream.

        Parameters
        ----------
        shape : int or tuple of ints
            Output shape.
        bits : {32, 16}
            Bits per draw: uint32 or uint16 results.

        Returns
        -------
        numpy.ndarray of uint32 or uint16

        Raises
        ------
        TypeError, ValueError
            As `fastdrop.random_bits`.

        Examples
        --------
        >>> import fastdrop
        >>> fastdrop.Generator(42).random_bits(4)
        array([2632642643, 2012563771,  314527917, 1463989207], dtype=uint32)
        """
        return self._draw(random_bits, shape, bits=bits)

    def uniform(self, shape: Any, *, dtype: Any = np.float32):
        """`fastdrop.uniform` on a fresh stream: floats in [0, 1).

        Parameters
        ----------
        shape : int or tuple of ints
            Output shape.
        dtype : {numpy.float32, numpy.float64}
            The result's dtype.

        Returns
        -------
        numpy.ndarray of `dtype`

        Raises
        ------
        TypeError, ValueError
            As `fastdrop.uniform`.

        Examples
        --------
        >>> import fastdrop
        >>> fastdrop.Generator(42).uniform(3)
        array([0.61295986, 0.4685865 , 0.0732317 ], dtype=float32)
        """
        return self._draw(uniform, shape, dtype=dtype)

    def standard_normal(self, shape: Any, *, dtype: Any = np.float64):
        """`fastdrop.standard_normal` on a fresh stream.

        Parameters
        ----------
        shape : int or tuple of ints
            Output shape.
        dtype : {numpy.float64, numpy.float32}
            The result's dtype.

        Returns
        -------
        numpy.ndarray of `dtype`

        Raises
        ------
        TypeError, ValueError
            As `fastdrop.standard_normal`.

        Examples
        --------
        >>> import fastdrop
        >>> fastdrop.Generator(1).standard_normal(3)
        array([1.2279..., 1.2518..., 0.2165...])
        """
        return self._draw(standard_normal, shape, dtype=dtype)


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
    bits : {16, 32, 8}
        Bits per draw.

    Raises
    ------
    TypeError, ValueError
        A bad rate, mode, bits or seed (as `fastdrop.dropout`).

    Notes
    -----
    ``layer(x, training=True, *, out=None)`` returns ``fastdrop.dropout(x, rate, ...)``
    on the generator's next stream, an array of x's type (NumPy in, NumPy out; torch or
    JAX CPU in, the same out; a CUDA array gives the same framework's array on its GPU).
    At inference (``training=False``) inverted mode returns x itself.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> layer = fastdrop.Dropout(0.5, seed=0)
    >>> x = np.ones(8, np.float32)
    >>> layer(x, training=True)
    array([2., 0., 2., 2., 2., 2., 2., 2.], dtype=float32)
    >>> layer.backward(np.full(8, 3.0, np.float32))   # the last call's mask, regenerated
    array([6., 0., 6., 6., 6., 6., 6., 6.], dtype=float32)
    >>> layer(x, training=False) is x
    True
    """

    def __init__(self, rate: float, *, noise_shape: Any = None, mode: str = "inverted",
                 seed: int | Generator | None = None, bits: int = 16):
        self.rate = check_p(rate)
        self.mode = check_mode(mode)
        self.bits = check_bits(bits)
        self.noise_shape = check_noise_spec(noise_shape)
        self.generator = seed if isinstance(seed, Generator) else Generator(seed)
        self._last: DropoutCall | None = None

    @property
    def effective_rate(self) -> float:
        """The drop probability actually used: ``effective_p(rate, bits)``."""
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
        """Gradient for the last training call (its mask is regenerated, never stored).

        Parameters
        ----------
        grad : array_like
            Gradient of the last training call's output.
        out : array, optional
            Where to write the gradient; may be grad itself.

        Returns
        -------
        dx : array of grad's type
            NumPy in, NumPy out; torch or JAX CPU in, the same out; a CUDA array gives
            the same framework's array on its GPU.

        Raises
        ------
        RuntimeError
            The layer has not been called in training yet.
        TypeError, ValueError
            As `fastdrop.dropout_backward`.

        Examples
        --------
        >>> import numpy as np, fastdrop
        >>> layer = fastdrop.Dropout(0.5, seed=0)
        >>> y = layer(np.ones(8, np.float32))
        >>> layer.backward(np.ones(8, np.float32))
        array([2., 0., 2., 2., 2., 2., 2., 2.], dtype=float32)
        """
        if self._last is None:
            raise RuntimeError("backward() needs a training call of the layer first")
        return self._last.backward(grad, out=out)

    def get_config(self) -> dict:
        """The layer's arguments, Keras-style.

        Returns
        -------
        dict
            rate, noise_shape, mode, bits and the generator's seed.

        Examples
        --------
        >>> import fastdrop
        >>> fastdrop.Dropout(0.1, seed=3).get_config()
        {'rate': 0.1, 'noise_shape': None, 'mode': 'inverted', 'bits': 16, 'seed': 3}
        """
        return {"rate": self.rate, "noise_shape": self.noise_shape, "mode": self.mode,
                "bits": self.bits, "seed": self.generator.seed}

    def __repr__(self) -> str:
        return (f"Dropout(rate={self.rate}, effective_rate={self.effective_rate}, "
                f"mode={self.mode!r}, noise_shape={self.noise_shape}, bits={self.bits})")
