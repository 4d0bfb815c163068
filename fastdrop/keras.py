"""Keras 3 layers on fastdrop: drop-ins for Keras's regularization layers.

Install with ``pip install fastdrop[keras]`` (Keras 3 and one of its backends: JAX,
PyTorch, TensorFlow or NumPy; set ``KERAS_BACKEND`` before Keras is first imported).

``Dropout``, ``SpatialDropout1D``, ``SpatialDropout2D``, ``SpatialDropout3D``,
``GaussianDropout``, ``AlphaDropout`` and ``GaussianNoise`` subclass the Keras layers of
the same names (``isinstance(fastdrop.keras.Dropout(0.5), keras.layers.Dropout)``), so
they take the same arguments in the same order, validate them the same way at
construction (a ValueError for a rate outside [0, 1] or a bad ``noise_shape``), have no
weights, support masking, compute their output shape without running (dynamic shapes:
``keras.Input((None, 8))`` works), are built at instantiation, return their input at
inference (``training=False``, the default outside ``fit``), and keep one
``keras.random.SeedGenerator`` (its state lives in the model: it is saved with it and
``keras.utils.set_random_seed`` makes seed-less layers reproducible).  Only the random
draws change: they are fastdrop's counter-based Philox draws (docs/contract.md), the same
on every backend and equal bit for bit to ``fastdrop.dropout`` and friends.

Seeds and streams
-----------------
A Keras ``SeedGenerator`` holds a state ``[s0, s1]`` (``[seed, 0]`` at creation; a
seed-less layer's seed is drawn from Python's ``random`` in [1, 10**9], as Keras does)
and each training call takes the state and advances ``s1`` by one (``next()``).  A call
with state ``[s0, s1]`` uses fastdrop's

    seed = s0 mod 2**32,    stream = s1 mod 2**32

(the reduction reads the bits of the int32 torch state as the unsigned 32-bit value
Keras means).  So ``Dropout(0.5, seed=42)``'s n-th training call (n = 0, 1, ...) equals
``fastdrop.dropout(x, 0.5, seed=42, stream=n)``: a fixed Philox key per layer and one
stream per step, which is how fastdrop numbers its calls (a stream per call/layer/step),
and which keeps the step counter a traced value under ``jax.jit`` (no recompilation).
`seed_stream` reads the (seed, stream) of a generator's next call.  Two layers given the
same seed draw the same masks, as Keras's layers do.

What each layer computes, for state ``(seed, stream)`` and input ``x``:

- `Dropout`, ``SpatialDropout*D``: ``fastdrop.dropout(x, rate, seed=seed, stream=stream,
  noise_shape=..., bits=bits)``; the spatial layers' noise shapes are ``(None, 1, None)``
  (1D), ``(None, 1, 1, None)`` / ``(None, None, 1, 1)`` (2D, channels last / first) and
  their 3D analogues: whole feature maps are dropped.
- `AlphaDropout`: ``fastdrop.alpha_dropout(x, rate, seed=..., stream=..., noise_shape=...,
  bits=bits)``.
- `GaussianDropout`: ``fastdrop.gaussian_dropout(x, rate, seed=..., stream=...)``.
- `GaussianNoise`: with c = float64 for float64 inputs, else float32:
  ``(c(x) + c(stddev) * fastdrop.standard_normal(x.shape, seed=..., stream=..., dtype=c))``
  rounded once to x's dtype (a non-float x, which Keras does not cast: to the layer's
  compute dtype, as Keras's ``x + normal(..., dtype=compute_dtype)``); the product is formed on the host (NumPy), the sum by the
  backend (one correctly rounded addition: no fused multiply-add can change it).

How each backend runs them:

- numpy: the public functions on the NumPy arrays (Keras's numpy backend cannot train).
- torch: `Dropout` and the spatial layers through ``fastdrop.torch.dropout``, and
  `AlphaDropout` through ``fastdrop.torch.alpha_dropout`` (autograd, torch.compile);
  `GaussianDropout` through an autograd function of this module (``fastdrop.torch`` has
  no gaussian op): forward ``fastdrop.gaussian_dropout`` on the CPU tensor, backward
  ``fastdrop.gaussian_dropout_backward`` with the same (seed, stream) (nothing but the
  seed and stream is kept; the backward is its own derivative, so double backward
  works), run eagerly under torch.compile (``torch._dynamo.disable``: a graph break).
  Eager mode (Keras's default for torch) and ``jit_compile=True`` (torch.compile) give
  the same bits and streams. On the meta device (Keras's shape inference for a layer
  without ``compute_output_shape`` that calls these) the layers return an empty tensor
  of the output's shape and read no seed.
- jax: through ``fastdrop.jax.dropout`` (`Dropout`, the spatial layers),
  ``fastdrop.jax.alpha_dropout`` and ``fastdrop.jax.gaussian_dropout``, with the state's
  two words as (traced) seed and stream; `GaussianNoise`'s noise through a
  ``jax.pure_callback`` of this module (``fastdrop.jax`` has no noise op; its only operand
  is the seed words, so nothing is differentiated through it).  Works under ``jit``
  (Keras's ``fit``), with the host round trip fastdrop.jax documents (CPU only).
- tensorflow: every draw is a ``tf.numpy_function`` call of fastdrop's kernels (on the
  CPU: a GPU tensor makes a round trip through the host) whose inputs are the tensor and
  the seed state's value, so a step traced by ``tf.function`` (Keras's ``fit``) reads the
  state when it runs and takes the next stream at every run without retracing; the output
  keeps the input's static shape (None dimensions included, ``set_shape``).  Gradients
  through ``tf.custom_gradient``: the backward kernel (``fastdrop.dropout_backward``,
  ``alpha_dropout_backward``, ``gaussian_dropout_backward``) with the same (seed, stream),
  differentiable the same way (higher derivatives, nested tapes); `GaussianNoise`'s
  noise comes from the host (integer inputs only), its sum and gradient are TF's.  XLA
  cannot compile a host call: on TensorFlow these layers set ``supports_jit = False``, so
  Keras's ``jit_compile="auto"`` never picks XLA for a model with them and
  ``compile(jit_compile=True)`` falls back to False with Keras's warning; a layer traced
  by ``tf.function(jit_compile=True)`` raises NotImplementedError naming the layer.
- openvino: not supported; a training call raises NotImplementedError.

Deviations from Keras, all at construction: a rate or stddev that is not a real number is
a TypeError naming it (Keras fails comparing it); a seed outside [0, 2**32) is a
ValueError naming it on every backend (Keras's jax and numpy backends raise an
OverflowError, its torch backend takes negative seeds and fails from 2**31 on, its
tensorflow backend takes any 64-bit value), and seeds from 2**31 work on torch too;
`GaussianDropout` refuses ``rate=1`` (a ValueError: the noise would have infinite
variance; Keras accepts it and divides by zero at the first training call);
`AlphaDropout` validates ``noise_shape`` as `Dropout` does (Keras's stores anything and
fails at the call).  And one addition: the seed generator's state is saved with the
model (``model.save``, ``save_weights``) and restored on loading, so a loaded model goes
on with the saved one's streams (Keras's layers save no seed state; a weights file saved
with them loads into these layers too, the reverse does not: it lists one more
variable).  The extra keyword ``bits`` (8, 16 or 32, fastdrop's resolution of the rate:
the rate used is ``fastdrop.effective_p(rate, bits)``) is part of ``get_config``.

Examples
--------
>>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
'...'
>>> import numpy as np, keras, fastdrop, fastdrop.keras
>>> layer = fastdrop.keras.Dropout(0.5, seed=42)
>>> x = np.ones((2, 4), np.float32)
>>> y = keras.ops.convert_to_numpy(layer(x, training=True))
>>> bool((y == fastdrop.dropout(x, 0.5, seed=42, stream=0)).all())
True
>>> fastdrop.keras.seed_stream(layer.seed_generator)   # the next call's (seed, stream)
(42, 1)
"""
from __future__ import annotations

import functools
import numbers
from typing import Any

import keras
import numpy as np

from . import functional as _F
from . import rng as _rng
from ._core.args import check_bits

__all__ = [
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianDropout", "AlphaDropout", "GaussianNoise", "seed_stream",
]

_PACKAGE = "fastdrop"
_SUPPORTED_BACKENDS = ("jax", "torch", "numpy", "tensorflow")


# ---- seeds -----------------------------------------------------------------------------------


def seed_stream(state: Any) -> tuple[int, int]:
    """The fastdrop ``(seed, stream)`` of a Keras seed state: ``(s0 mod 2**32, s1 mod 2**32)``.

    Parameters
    ----------
    state : keras.random.SeedGenerator, keras.Variable or array_like
        A generator (its current state is read, not advanced: the (seed, stream) its
        next draw, i.e. the layer's next training call, uses), its ``state`` variable, or
        the two-element value ``SeedGenerator.next()`` returns (a concrete tensor of any
        backend).

    Returns
    -------
    (int, int)
        Unsigned 32-bit seed and stream.

    Raises
    ------
    TypeError
        state is not a two-element integer value.

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
    '...'
    >>> import keras, fastdrop.keras
    >>> gen = keras.random.SeedGenerator(7)
    >>> fastdrop.keras.seed_stream(gen)
    (7, 0)
    >>> _ = gen.next()
    >>> fastdrop.keras.seed_stream(gen)
    (7, 1)
    >>> fastdrop.keras.seed_stream([-1, 3])          # int32 bits, read as uint32
    (4294967295, 3)
    """
    if isinstance(state, keras.random.SeedGenerator):
        state = state.state
    if isinstance(state, keras.Variable):
        state = state.value
    arr = np.asarray(keras.ops.convert_to_numpy(state))
    if arr.shape != (2,) or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"state must be two integers (a Keras seed state), got "
                        f"{arr.dtype}{list(arr.shape)}")
    return int(arr[0]) & 0xFFFFFFFF, int(arr[1]) & 0xFFFFFFFF


def _backend() -> str:
    name = keras.backend.backend()
    if name not in _SUPPORTED_BACKENDS:
        raise NotImplementedError(
            f"fastdrop.keras supports the jax, torch, tensorflow and numpy Keras backends, "
            f"not {name!r}")
    return name


# ---- argument checks (at construction) ------------------------------------------------------


def _check_real(value: Any, name: str) -> None:
    """A TypeError naming the argument where Keras would fail comparing it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Invalid value received for argument `{name}`: expected a float "
                        f"between 0 and 1, got {type(value).__name__}: {value!r}")


def _check_seed(seed: Any) -> None:
    """A ValueError naming the seed for an int outside [0, 2**32) (Keras's own message for
    a seed that is not an int comes from its SeedGenerator)."""
    if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed < 2**32:
        raise ValueError(f"Invalid value received for argument `seed`: expected an integer "
                         f"in [0, 2**32) (a Keras seed is 32 bits), got {seed}")


def _check_noise_shape(noise_shape: Any) -> tuple | None:
    """Keras's Dropout rules and messages (for AlphaDropout, which Keras does not check)."""
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str):
        raise ValueError("Invalid value received for argument `noise_shape`. Expected a "
                         f"tuple or list of integers. Received: noise_shape={noise_shape}")
    try:
        noise_shape = tuple(noise_shape)
    except TypeError:
        raise ValueError("Invalid value received for argument `noise_shape`. Expected an "
                         "iterable of integers (e.g., a tuple or list). "
                         f"Received: noise_shape={noise_shape}") from None
    for i, dim in enumerate(noise_shape):
        if dim is None:
            continue
        if not isinstance(dim, int):
            raise ValueError("Invalid value received for argument `noise_shape`. Expected "
                             "all elements to be integers or None. Received element at "
                             f"index {i}: {dim} (type: {type(dim).__name__})")
        if dim <= 0:
            raise ValueError("Invalid value received for argument `noise_shape`. Expected "
                             "all dimensions to be positive integers or None. Received "
                             f"negative or zero value at index {i}: {dim}")
    return noise_shape


def _spatial_noise_shape(ndim: int, data_format: str) -> tuple:
    """(None, 1, ..., 1, None) channels last, (None, None, 1, ..., 1) channels first."""
    spatial = (1,) * (ndim - 2)
    if data_format == "channels_first":
        return (None, None) + spatial
    return (None,) + spatial + (None,)


# ---- host functions (NumPy arrays in and out) -----------------------------------------------


def _compute_dtype(dtype: Any) -> np.dtype:
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _noise(shape: tuple, dtype: Any, stddev: float, seed: int, stream: int) -> np.ndarray:
    """``c(stddev) * standard_normal(shape, c)`` with c the compute dtype of `dtype`."""
    c = _compute_dtype(dtype)
    z = _rng.standard_normal(tuple(int(d) for d in shape), seed=seed, stream=stream, dtype=c)
    return np.multiply(z, c.type(stddev), dtype=c)


def _host_forward(op: str, x: Any, cfg: tuple, seed: int, stream: int, **kw):
    p, noise_shape, bits = cfg
    if op == "alpha":
        return _F.alpha_dropout(x, p, seed=seed, stream=stream, noise_shape=noise_shape,
                                bits=bits, **kw)
    return _F.gaussian_dropout(x, p, seed=seed, stream=stream, **kw)


def _host_backward(op: str, g: Any, cfg: tuple, seed: int, stream: int, **kw):
    p, noise_shape, bits = cfg
    if op == "alpha":
        return _F.alpha_dropout_backward(g, p, seed=seed, stream=stream,
                                         noise_shape=noise_shape, bits=bits, **kw)
    return _F.gaussian_dropout_backward(g, p, seed=seed, stream=stream, **kw)


# ---- torch: an autograd function for gaussian dropout (alpha: fastdrop.torch's op) -------


@functools.lru_cache(maxsize=None)
def _torch_functions():
    import torch

    def threads() -> int:
        return torch.get_num_threads()

    class Backward(torch.autograd.Function):
        """dx = D dy (alpha: a where kept, else 0; gaussian: the noise g): a diagonal, its
        own transpose, so its derivative is itself (double backward)."""

        @staticmethod
        def forward(ctx, g, op, cfg, seed, stream):
            ctx.args = (op, cfg, seed, stream)
            return _host_backward(op, g, cfg, seed, stream, n_threads=threads())

        @staticmethod
        def backward(ctx, gg):
            return (Backward.apply(gg, *ctx.args), None, None, None, None)

    class Forward(torch.autograd.Function):
        """y = D x + c: fastdrop.alpha_dropout / gaussian_dropout on the CPU tensor."""

        @staticmethod
        def forward(ctx, x, op, cfg, seed, stream):
            ctx.args = (op, cfg, seed, stream)
            return _host_forward(op, x, cfg, seed, stream, n_threads=threads())

        @staticmethod
        def backward(ctx, gy):
            return (Backward.apply(gy, *ctx.args), None, None, None, None)

    # gaussian dropout's forward as dynamo sees it (torch.compile, Keras's jit_compile):
    # run eagerly (a graph break), since its host call cannot take fake tensors
    return Forward, Backward, torch._dynamo.disable(Forward.apply)


# ---- jax: the noise of GaussianNoise from a callback ----------------------------------------


@functools.lru_cache(maxsize=None)
def _jax_noise():
    """noise(shape, dtype, stddev, words): `_noise` through ``jax.pure_callback`` (its only
    operand is the integer words, so nothing is differentiated through it)."""
    import jax

    def noise(shape, dtype, stddev, words):
        c = _compute_dtype(dtype)

        def host(wa):
            w = [int(v) for v in np.asarray(wa)]
            return _noise(shape, dtype, stddev, w[0] | (w[1] << 32), w[2] | (w[3] << 32))

        return jax.pure_callback(host, jax.ShapeDtypeStruct(tuple(shape), c), words,
                                 vmap_method="sequential")

    return noise


def _jax_words(state: Any):
    import fastdrop.jax as fj
    return fj.stream_words(state[0], state[1])


# ---- tensorflow: tf.numpy_function around the kernels, a custom gradient --------------------

_XLA_MESSAGE = (
    "fastdrop.keras.{layer} runs fastdrop's CPU kernels through tf.numpy_function, which XLA "
    "cannot compile, and it is being traced for XLA (a tf.function(jit_compile=True) of "
    "your own, or a TPU). Use jit_compile=False there: Keras's "
    "model.compile(jit_compile=True) already falls back to False with a warning (these "
    "layers set supports_jit=False on TensorFlow), and jit_compile='auto' never picks XLA "
    "for a model with them.")


def _host_kernel(op: str, cfg: tuple, x: np.ndarray, state: np.ndarray) -> np.ndarray:
    """One host call of the TF path: op in ("dropout", "dropout_backward", "alpha",
    "alpha_backward", "gaussian", "gaussian_backward") on x with the state's stream."""
    seed, stream = seed_stream(state)
    p, noise_shape, bits = cfg
    if op == "dropout":
        y = _F.dropout(x, p, seed=seed, stream=stream, noise_shape=noise_shape, bits=bits)
    elif op == "dropout_backward":
        y = _F.dropout_backward(x, p, seed=seed, stream=stream, noise_shape=noise_shape,
                                bits=bits)
    elif op.endswith("_backward"):
        y = _host_backward(op[:-len("_backward")], x, cfg, seed, stream)
    else:
        y = _host_forward(op, x, cfg, seed, stream)
    return np.array(y, copy=True) if y is x else y   # never hand TF its own buffer back


def _host_noise(dtype: np.dtype, stddev: float, state: np.ndarray,
                shape: np.ndarray) -> np.ndarray:
    seed, stream = seed_stream(state)
    return _noise(tuple(int(d) for d in shape), dtype, stddev, seed, stream)


@functools.lru_cache(maxsize=None)
def _tf_functions():
    """(apply, add_noise) on TensorFlow tensors, eager and inside tf.function.

    ``apply(op, cfg, x, state, layer)``: the host kernel ``op`` of x (shape kept with
    set_shape, None dimensions included), its gradient the matching backward kernel with
    the same (seed, stream) through `tf.custom_gradient`; the backward kernels are their
    own derivatives (diagonal), so higher derivatives work too. The state is an input of
    the host call, so a traced step reads it when it runs (not when it is traced).
    ``add_noise(x, stddev, state, layer)``: GaussianNoise's sum, the noise from the host
    (its inputs are integers: nothing to differentiate), the sum by TF.
    """
    import tensorflow as tf

    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TF without these internals: no check
        control_flow_util = None

    backward = {"dropout": "dropout_backward", "alpha": "alpha_backward",
                "gaussian": "gaussian_backward"}

    def check_not_xla(layer: str) -> None:
        if control_flow_util is not None and control_flow_util.GraphOrParentsInXlaContext(
                tf_ops.get_default_graph()):
            raise NotImplementedError(_XLA_MESSAGE.format(layer=layer))

    def host_call(op: str, cfg: tuple, x, state):
        y = tf.numpy_function(functools.partial(_host_kernel, op, cfg), [x, state],
                              x.dtype, stateful=False, name=f"fastdrop_{op}")
        y.set_shape(x.shape)
        return y

    def apply(op: str, cfg: tuple, x, state, layer: str = "layer"):
        check_not_xla(layer)
        x = tf.convert_to_tensor(x)
        state = tf.convert_to_tensor(state)

        @tf.custom_gradient
        def f(x, state):
            y = host_call(op, cfg, x, state)

            def grad(dy):
                return apply(backward.get(op, op), cfg, dy, state, layer), None

            return y, grad

        return f(x, state)

    def add_noise(x, stddev: float, state, compute_dtype: str = "float32",
                  layer: str = "GaussianNoise"):
        check_not_xla(layer)
        x = tf.convert_to_tensor(x)
        out = x.dtype if x.dtype.is_floating else tf.as_dtype(compute_dtype)
        c = _compute_dtype(out.as_numpy_dtype)
        n = tf.numpy_function(functools.partial(_host_noise, c, stddev),
                              [tf.convert_to_tensor(state), tf.shape(x)], tf.as_dtype(c),
                              stateful=False, name="fastdrop_gaussian_noise")
        n.set_shape(x.shape)
        return tf.cast(tf.cast(x, n.dtype) + n, out)

    return apply, add_noise


# ---- the ops, per backend -------------------------------------------------------------------


def _dropout(x: Any, rate: float, noise_shape: tuple | None, bits: int, state: Any,
             layer: str = "Dropout"):
    name = _backend()
    if name == "tensorflow":
        return _tf_functions()[0]("dropout", (rate, noise_shape, bits), x, state, layer)
    if name == "jax":
        import fastdrop.jax as fj
        return fj.dropout(x, rate, seed=state[0], stream=state[1], noise_shape=noise_shape,
                          bits=bits)
    if name == "torch" and _on_meta(x):
        return _meta_like(x)
    seed, stream = seed_stream(state)
    if name == "torch":
        import fastdrop.torch as ft
        return ft.dropout(x, rate, seed=seed, stream=stream, noise_shape=noise_shape,
                          bits=bits)
    return _F.dropout(np.asarray(x), rate, seed=seed, stream=stream, noise_shape=noise_shape,
                      bits=bits)


def _affine(op: str, x: Any, cfg: tuple, state: Any, layer: str = "AlphaDropout"):
    """Alpha ("alpha") or gaussian ("gaussian") dropout of x with the state's stream."""
    name = _backend()
    if name == "tensorflow":
        return _tf_functions()[0](op, cfg, x, state, layer)
    if name == "jax":
        import fastdrop.jax as fj
        p, noise_shape, bits = cfg
        if op == "alpha":
            return fj.alpha_dropout(x, p, seed=state[0], stream=state[1],
                                    noise_shape=noise_shape, bits=bits)
        return fj.gaussian_dropout(x, p, seed=state[0], stream=state[1])
    if name == "torch" and _on_meta(x):
        return _meta_like(x)
    seed, stream = seed_stream(state)
    if name == "torch":
        if op == "alpha":   # fastdrop.torch's operator: the same bits, and it compiles
            import fastdrop.torch as ft
            p, noise_shape, bits = cfg
            return ft.alpha_dropout(x, p, True, seed=seed, stream=stream,
                                    noise_shape=noise_shape, bits=bits)
        return _torch_functions()[2](x, op, cfg, seed, stream)
    return _host_forward(op, np.asarray(x), cfg, seed, stream)


def _add_noise(x: Any, stddev: float, state: Any, compute_dtype: str = "float32"):
    """x + noise, rounded once to x's dtype; a non-float x (which Keras does not cast to
    the layer's compute dtype) gives the compute dtype, as Keras's ``x + normal(...,
    dtype=compute_dtype)`` does."""
    name = _backend()
    if name == "tensorflow":
        return _tf_functions()[1](x, stddev, state, compute_dtype)
    if name == "jax":
        import jax.numpy as jnp
        out = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.dtype(compute_dtype)
        n = _jax_noise()(tuple(x.shape), out, stddev, _jax_words(state))
        return (x.astype(n.dtype) + n).astype(out)
    if name == "torch":
        import torch
        out = x.dtype if x.dtype.is_floating_point else getattr(torch, compute_dtype)
        if _on_meta(x):
            return torch.empty_like(x, dtype=out)
        seed, stream = seed_stream(state)
        dtype = {torch.float64: np.float64}.get(out, np.float32)
        n = torch.from_numpy(_noise(tuple(x.shape), dtype, stddev, seed, stream)).to(x.device)
        return (x.to(n.dtype) + n).to(out)
    seed, stream = seed_stream(state)
    xa = np.asarray(x)
    out = xa.dtype if np.issubdtype(xa.dtype, np.floating) else np.dtype(compute_dtype)
    n = _noise(xa.shape, out, stddev, seed, stream)
    return (xa.astype(n.dtype) + n).astype(out)


def _on_meta(x: Any) -> bool:
    """Whether x is a torch tensor on the meta device: Keras's torch backend infers output
    shapes (``compute_output_spec``) by calling the layer on those, with the seed state
    there too (no data to read)."""
    return getattr(getattr(x, "device", None), "type", None) == "meta"


def _meta_like(x: Any) -> Any:
    import torch
    return torch.empty_like(x)


# ---- the layers -----------------------------------------------------------------------------

_STATE_KEY = "seed_generator_state"


def _as_seed_dtype(value: Any, dtype: str) -> np.ndarray:
    """Two seed words as `dtype` (uint32, int32 or int64), keeping their 32-bit patterns."""
    v = np.asarray(value).astype(np.int64) & 0xFFFFFFFF
    if dtype == "int32":
        v = (v ^ 0x80000000) - 0x80000000
    return v.astype(dtype)


class _FastdropLayer:
    """What the seven layers share.

    Saves the SeedGenerator's state with the model (``model.save``, ``save_weights``)
    and restores it on loading, so that a loaded model draws the next streams of the saved
    one (Keras's own layers save no seed state: a loaded layer restarts at stream 0, or a
    seed-less one at a new random seed). A weights file without the state (one saved with
    Keras's layers) loads too and leaves the state as it is.

    On TensorFlow, ``supports_jit`` is False (the host call cannot be XLA-compiled), so
    Keras's ``jit_compile="auto"`` never picks XLA for a model with these layers and an
    explicit ``jit_compile=True`` falls back to False with Keras's warning.
    """

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any):
        _check_seed(seed)
        keras_seed = seed
        if isinstance(seed, int) and keras.backend.backend() == "torch":
            # Keras's torch seed state is int32: give it the seed's 32 bits (as Keras's
            # draw_seed does), so seeds in [2**31, 2**32) work there too
            keras_seed = (seed ^ 0x80000000) - 0x80000000
        super().__init__(*args, seed=keras_seed, **kwargs)
        self.seed = seed
        if keras.backend.backend() == "tensorflow":
            self.supports_jit = False

    def save_own_variables(self, store: Any) -> None:
        super().save_own_variables(store)
        gen = getattr(self, "seed_generator", None)
        if gen is not None:
            store[_STATE_KEY] = keras.ops.convert_to_numpy(gen.state.value)

    def load_own_variables(self, store: Any) -> None:
        gen = getattr(self, "seed_generator", None)
        keys = list(store.keys())
        if gen is not None and _STATE_KEY in keys:
            gen.state.assign(_as_seed_dtype(store[_STATE_KEY], gen.state.dtype))
        # the layer's own variables (a subclass's weights), as Keras loads them
        super().load_own_variables({k: store[k] for k in keys if k != _STATE_KEY})



@keras.saving.register_keras_serializable(package=_PACKAGE)
class Dropout(_FastdropLayer, keras.layers.Dropout):
    """Drop-in for ``keras.layers.Dropout`` on fastdrop's counter-based kernels.

    Parameters
    ----------
    rate : float
        Fraction of the inputs to drop, in [0, 1]; the one used is
        ``fastdrop.effective_p(rate, bits)``. Kept inputs are scaled by
        ``fastdrop.dropout_scale(rate, bits)``.
    noise_shape : tuple of int or None, optional
        Shape of the mask, broadcast to the input: ``(None, 1, None)`` shares the mask
        over the second axis. None entries take the input's size.
    seed : int, optional
        The Keras seed (its ``SeedGenerator``'s); None draws one from Python's ``random``.
        Call n (n = 0, 1, ...) uses fastdrop's ``seed=seed mod 2**32, stream=n``.
    bits : {16, 32, 8}, keyword-only
        fastdrop's resolution of the rate (``2**-bits``).
    **kwargs
        Keras layer arguments (``name``, ``dtype``, ...).

    Returns
    -------
    tensor
        Calling the layer returns a tensor of the input's shape and dtype:
        ``fastdrop.dropout(x, rate, seed=..., stream=..., noise_shape=..., bits=...)`` when
        ``training=True``, the input itself otherwise.

    Raises
    ------
    ValueError
        rate outside [0, 1], a bad noise_shape (as Keras), a seed that is not an int in
        [0, 2**32), bits not 8, 16 or 32.
    TypeError
        rate is not a real number.

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
    '...'
    >>> import numpy as np, keras, fastdrop, fastdrop.keras
    >>> layer = fastdrop.keras.Dropout(0.5, seed=42)
    >>> x = np.ones((1, 8), np.float32)
    >>> keras.ops.convert_to_numpy(layer(x, training=True))
    array([[2., 2., 0., 0., 0., 0., 2., 0.]], dtype=float32)
    >>> fastdrop.dropout(x, 0.5, seed=42, stream=0)
    array([[2., 2., 0., 0., 0., 0., 2., 0.]], dtype=float32)
    >>> keras.ops.convert_to_numpy(layer(x))               # inference: the input
    array([[1., 1., 1., 1., 1., 1., 1., 1.]], dtype=float32)
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4),
    ...                           fastdrop.keras.Dropout(0.2), keras.layers.Dense(1)])
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, *,
                 bits: int = 16, **kwargs: Any):
        _check_real(rate, "rate")
        b = check_bits(bits)
        super().__init__(rate, noise_shape=noise_shape, seed=seed, **kwargs)
        self.bits = b

    def call(self, inputs: Any, training: bool = False):
        if training and self.rate > 0:
            return _dropout(inputs, float(self.rate), self.noise_shape, self.bits,
                            self.seed_generator.next(), type(self).__name__)
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "bits": self.bits}


class _SpatialMixin:
    """The spatial layers' call: whole feature maps, through `_dropout`."""

    def call(self, inputs: Any, training: bool = False):
        if training and self.rate > 0:
            ns = _spatial_noise_shape(len(inputs.shape), getattr(self, "data_format",
                                                                 "channels_last"))
            return _dropout(inputs, float(self.rate), ns, self.bits,
                            self.seed_generator.next(), type(self).__name__)
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "bits": self.bits}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialDropout1D(_FastdropLayer, _SpatialMixin, keras.layers.SpatialDropout1D):
    """Drop-in for ``keras.layers.SpatialDropout1D``: drops whole 1D feature maps.

    Parameters
    ----------
    rate : float
        Fraction of the feature maps to drop, in [0, 1].
    seed : int, optional
        As in `Dropout`.
    name, dtype : optional
        Keras layer arguments.
    bits : {16, 32, 8}, keyword-only
        As in `Dropout`.

    Returns
    -------
    tensor
        For a 3D input ``(samples, timesteps, channels)`` in training:
        ``fastdrop.dropout(x, rate, seed=..., stream=..., noise_shape=(None, 1, None))``;
        the input itself at inference.

    Raises
    ------
    ValueError, TypeError
        As `Dropout`; an input that is not 3D (at the call, as Keras).

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
    '...'
    >>> import numpy as np, keras, fastdrop.keras
    >>> y = fastdrop.keras.SpatialDropout1D(0.5, seed=1)(np.ones((2, 3, 4)), training=True)
    >>> y = keras.ops.convert_to_numpy(y)
    >>> bool((y[:, 0] == y[:, 1]).all() and (y[:, 0] == y[:, 2]).all())
    True
    """

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None,
                 dtype: Any = None, *, bits: int = 16):
        _check_real(rate, "rate")
        b = check_bits(bits)
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        self.bits = b


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialDropout2D(_FastdropLayer, _SpatialMixin, keras.layers.SpatialDropout2D):
    """Drop-in for ``keras.layers.SpatialDropout2D``: drops whole 2D feature maps.

    Parameters
    ----------
    rate : float
        Fraction of the feature maps to drop, in [0, 1].
    data_format : {"channels_last", "channels_first"}, optional
        Where the channels are; None: ``keras.config.image_data_format()``.
    seed : int, optional
        As in `Dropout`.
    name, dtype : optional
        Keras layer arguments.
    bits : {16, 32, 8}, keyword-only
        As in `Dropout`.

    Returns
    -------
    tensor
        For a 4D input in training: ``fastdrop.dropout`` with noise shape
        ``(None, 1, 1, None)`` (channels last) or ``(None, None, 1, 1)`` (channels first);
        the input itself at inference.

    Raises
    ------
    ValueError, TypeError
        As `Dropout`; a bad data_format; an input that is not 4D (at the call).

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
    '...'
    >>> import numpy as np, keras, fastdrop.keras
    >>> layer = fastdrop.keras.SpatialDropout2D(0.5, "channels_first", seed=1)
    >>> y = keras.ops.convert_to_numpy(layer(np.ones((2, 3, 4, 4)), training=True))
    >>> bool((y == y[:, :, :1, :1]).all())
    True
    """

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None,
                 name: str | None = None, dtype: Any = None, *, bits: int = 16):
        _check_real(rate, "rate")
        b = check_bits(bits)
        super().__init__(rate, data_format=data_format, seed=seed, name=name, dtype=dtype)
        self.bits = b


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialDropout3D(_FastdropLayer, _SpatialMixin, keras.layers.SpatialDropout3D):
    """Drop-in for ``keras.layers.SpatialDropout3D``: drops whole 3D feature maps.

    Parameters
    ----------
    rate : float
        Fraction of the feature maps to drop, in [0, 1].
    data_format : {"channels_last", "channels_first"}, optional
        Where the channels are; None: ``keras.config.image_data_format()``.
    seed : int, optional
        As in `Dropout`.
    name, dtype : optional
        Keras layer arguments.
    bits : {16, 32, 8}, keyword-only
        As in `Dropout`.

    Returns
    -------
    tensor
        For a 5D input in training: ``fastdrop.dropout`` with noise shape
        ``(None, 1, 1, 1, None)`` (channels last) or ``(None, None, 1, 1, 1)`` (channels
        first); the input itself at inference.

    Raises
    ------
    ValueError, TypeError
        As `SpatialDropout2D`; an input that is not 5D (at the call).

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
    '...'
    >>> import numpy as np, keras, fastdrop.keras
    >>> layer = fastdrop.keras.SpatialDropout3D(0.5, seed=1)          # channels last
    >>> y = keras.ops.convert_to_numpy(layer(np.ones((2, 2, 2, 2, 3)), training=True))
    >>> bool((y == y[:, :1, :1, :1, :]).all())
    True
    """

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None,
                 name: str | None = None, dtype: Any = None, *, bits: int = 16):
        _check_real(rate, "rate")
        b = check_bits(bits)
        super().__init__(rate, data_format=data_format, seed=seed, name=name, dtype=dtype)
        self.bits = b


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AlphaDropout(_FastdropLayer, keras.layers.AlphaDropout):
    """Drop-in for ``keras.layers.AlphaDropout`` (SELU networks) on fastdrop's kernels.

    Parameters
    ----------
    rate : float
        Fraction of the inputs to drop, in [0, 1] (rate 1 gives a constant 0).
    noise_shape : tuple of int or None, optional
        As in `Dropout` (validated as `Dropout` validates it).
    seed : int, optional
        As in `Dropout`.
    bits : {16, 32, 8}, keyword-only
        As in `Dropout`.
    **kwargs
        Keras layer arguments.

    Returns
    -------
    tensor
        In training: ``fastdrop.alpha_dropout(x, rate, seed=..., stream=...,
        noise_shape=..., bits=...)`` (kept ``x * a + a alpha' q``, dropped
        ``-a alpha' (1 - q)``, keeping SELU's zero mean and unit variance); the input
        itself at inference.

    Raises
    ------
    ValueError, TypeError
        As `Dropout`.

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
    '...'
    >>> import numpy as np, keras, fastdrop, fastdrop.keras
    >>> x = np.zeros((1, 4), np.float32)
    >>> keras.ops.convert_to_numpy(fastdrop.keras.AlphaDropout(0.5, seed=42)(x, training=True))
    array([[ 0.7791...,  0.7791..., -0.7791..., -0.7791...]], dtype=float32)
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, *,
                 bits: int = 16, **kwargs: Any):
        _check_real(rate, "rate")
        b = check_bits(bits)
        ns = _check_noise_shape(noise_shape)
        super().__init__(rate, noise_shape=ns, seed=seed, **kwargs)
        self.bits = b

    def call(self, inputs: Any, training: bool = False):
        if training and self.rate > 0:
            cfg = (float(self.rate), self.noise_shape, self.bits)
            return _affine("alpha", inputs, cfg, self.seed_generator.next(), "AlphaDropout")
        return inputs

    def get_config(self) -> dict:
        return {**super().get_config(), "bits": self.bits}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaussianDropout(_FastdropLayer, keras.layers.GaussianDropout):
    """Drop-in for ``keras.layers.GaussianDropout``: multiplicative N(1, rate/(1-rate)) noise.

    Parameters
    ----------
    rate : float
        In [0, 1): the noise's standard deviation is ``sqrt(rate / (1 - rate))``.
    seed : int, optional
        As in `Dropout`.
    **kwargs
        Keras layer arguments.

    Returns
    -------
    tensor
        In training: ``fastdrop.gaussian_dropout(x, rate, seed=..., stream=...)``; the
        input itself at inference.

    Raises
    ------
    ValueError
        rate outside [0, 1) (rate 1 too: Keras accepts it and divides by zero at the first
        training call), a seed that is not an int in [0, 2**32).
    TypeError
        rate is not a real number.

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
    '...'
    >>> import numpy as np, keras, fastdrop, fastdrop.keras
    >>> x = np.ones((1, 3), np.float32)
    >>> y = fastdrop.keras.GaussianDropout(0.5, seed=1)(x, training=True)
    >>> bool((keras.ops.convert_to_numpy(y)
    ...       == fastdrop.gaussian_dropout(x, 0.5, seed=1, stream=0)).all())
    True
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        _check_real(rate, "rate")
        super().__init__(rate, seed=seed, **kwargs)
        if rate == 1:
            raise ValueError("Invalid value received for argument `rate`: rate=1 gives "
                             "gaussian noise of infinite variance; fastdrop.keras."
                             "GaussianDropout takes a rate in [0, 1)")

    def call(self, inputs: Any, training: bool = False):
        if training and self.rate > 0:
            cfg = (float(self.rate), None, 32)
            return _affine("gaussian", inputs, cfg, self.seed_generator.next(),
                           "GaussianDropout")
        return inputs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaussianNoise(_FastdropLayer, keras.layers.GaussianNoise):
    """Drop-in for ``keras.layers.GaussianNoise``: additive N(0, stddev**2) noise.

    Parameters
    ----------
    stddev : float
        The noise's standard deviation, in [0, 1] (Keras's range).
    seed : int, optional
        As in `Dropout`.
    **kwargs
        Keras layer arguments.

    Returns
    -------
    tensor
        In training, with c = float64 for float64 inputs, else float32:
        ``c(x) + c(stddev) * fastdrop.standard_normal(x.shape, seed=..., stream=...,
        dtype=c)``, rounded once to the input's dtype; the input itself at inference.

    Raises
    ------
    ValueError
        stddev outside [0, 1], a seed that is not an int in [0, 2**32).
    TypeError
        stddev is not a real number.

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
    '...'
    >>> import numpy as np, keras, fastdrop, fastdrop.keras
    >>> x = np.zeros((1, 3), np.float32)
    >>> y = fastdrop.keras.GaussianNoise(0.5, seed=1)(x, training=True)
    >>> z = fastdrop.standard_normal((1, 3), seed=1, stream=0, dtype=np.float32)
    >>> bool((keras.ops.convert_to_numpy(y) == np.float32(0.5) * z).all())
    True
    """

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any):
        _check_real(stddev, "stddev")
        super().__init__(stddev, seed=seed, **kwargs)

    def call(self, inputs: Any, training: bool = False):
        if training and self.stddev > 0:
            return _add_noise(inputs, float(self.stddev), self.seed_generator.next(),
                              self.compute_dtype)
        return inputs
