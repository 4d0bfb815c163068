"""Dropout: forward, backward, masks, bias-dropout-add, alpha and gaussian dropout.

Every function here is its docstring and one call of the router
(`fastdrop._core.route.call`): the arguments are parsed once into a validated request
(`fastdrop._core.parse`), before anything is written, and run by the backend the arrays
belong to (the CPU kernels for NumPy, torch and JAX CPU arrays; the GPU kernels for CUDA
arrays of any framework).  The common NumPy call of each function but unpack_mask first
tries the CPU backend's fast path (`fastdrop._core.route.fast_path`: the same checks in
Cython, no request), which runs it or returns None for the router.  Results follow
docs/contract.md sections 4-7 bit for bit and equal their twins in `fastdrop.reference`.

Arrays (``x``, ``grad``, ``bias``, ``residual``, ``mask``) may be NumPy arrays, PyTorch or
JAX CPU arrays (viewed without a copy; results come back in the caller's type) or CUDA
arrays (the GPU backend, results on the same device and framework).
"""
from __future__ import annotations

from typing import Any


from ._core import parse
from ._core.args import check_bits, check_p
from ._core.contract import gaussian_sigma as _sigma
from ._core.contract import inverted_scale, threshold
from ._core.route import Spec, call, fast_path

__all__ = [
    "dropout", "dropout_backward", "dropout_mask", "unpack_mask", "effective_p",
    "dropout_scale", "bias_dropout_add", "bias_dropout_add_backward", "alpha_dropout",
    "alpha_dropout_backward", "gaussian_dropout", "gaussian_dropout_backward",
    "gaussian_sigma",
]

_DROPOUT = Spec("dropout", parse.dropout, ("x",), "out", buffers=("mask_out",))
_DROPOUT_BACKWARD = Spec("dropout_backward", parse.dropout_backward, ("grad", "mask"), "out")
# the common NumPy call of each function below but unpack_mask runs without a request
# (route.fast_path: None for any other call, which then goes through `call`)
_fast_dropout = fast_path("dropout")
_fast_dropout_backward = fast_path("dropout_backward")
_fast_dropout_mask = fast_path("dropout_mask")
_fast_bda = fast_path("bias_dropout_add")
_fast_bda_backward = fast_path("bias_dropout_add_backward")
_fast_alpha = fast_path("alpha_dropout")
_fast_alpha_backward = fast_path("alpha_dropout_backward")
_fast_gaussian = fast_path("gaussian_dropout")
_fast_gaussian_backward = fast_path("gaussian_dropout_backward")
_DROPOUT_MASK = Spec("dropout_mask", parse.dropout_mask)
_UNPACK_MASK = Spec("unpack_mask", parse.unpack_mask, ("mask",))
_BDA = Spec("bias_dropout_add", parse.bias_dropout_add, ("x", "bias", "residual"), "out",
            buffers=("mask_out",))
_BDA_BACKWARD = Spec("bias_dropout_add_backward", parse.bias_dropout_add_backward,
                     ("grad", "mask"))
_ALPHA = Spec("alpha_dropout", parse.alpha_dropout, ("x",), "out", buffers=("mask_out",))
_ALPHA_BACKWARD = Spec("alpha_dropout_backward", parse.alpha_dropout_backward,
                       ("grad", "mask"), "out")
_GAUSSIAN = Spec("gaussian_dropout", parse.gaussian_dropout, ("x",), "out")
_GAUSSIAN_BACKWARD = Spec("gaussian_dropout_backward", parse.gaussian_dropout_backward,
                          ("grad",), "out")


# ---- probabilities ---------------------------------------------------------------------


def effective_p(p: float, bits: int = 16) -> float:
    """The drop probability actually used: ``round_half_even(p * 2**bits) / 2**bits``.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    bits : {16, 32, 8}
        Bits per draw.

    Returns
    -------
    float
        A multiple of ``2**-bits``.

    Raises
    ------
    TypeError
        p is not a real number, or bits not an integer.
    ValueError
        p is outside [0, 1] or NaN, or bits is not 8, 16 or 32.

    Examples
    --------
    >>> import fastdrop
    >>> fastdrop.effective_p(0.1)
    0.100006103515625
    >>> fastdrop.effective_p(0.1, bits=32)
    0.10000000009313226
    """
    b = check_bits(bits)
    return threshold(check_p(p), b) / 2.0**b


def dropout_scale(p: float, bits: int = 16) -> float:
    """The inverted-dropout scale ``2**bits / (2**bits - t)``: 1 / P(keep) exactly.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    bits : {16, 32, 8}
        Bits per draw.

    Returns
    -------
    float
        The factor kept elements are multiplied by; 0.0 when p drops everything.

    Raises
    ------
    TypeError, ValueError
        As `effective_p`.

    Examples
    --------
    >>> import fastdrop
    >>> fastdrop.dropout_scale(0.5)
    2.0
    >>> fastdrop.dropout_scale(1.0)
    0.0
    """
    b = check_bits(bits)
    return inverted_scale(threshold(check_p(p), b), b)


def gaussian_sigma(p: float) -> float:
    """Standard deviation ``sqrt(p / (1 - p))`` of gaussian dropout's noise (float64).

    Parameters
    ----------
    p : float
        Drop rate in [0, 1).

    Returns
    -------
    float
        The noise's standard deviation; 0.0 for p = 0.

    Raises
    ------
    TypeError
        p is not a real number.
    ValueError
        p is outside [0, 1) or NaN (p = 1 has infinite variance).

    Examples
    --------
    >>> import fastdrop
    >>> fastdrop.gaussian_sigma(0.5)
    1.0
    """
    return _sigma(check_p(p))


# ---- dropout -------------------------------------------------------------------------------


def dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
            training: bool = True, mode: str = "inverted", noise_shape: Any = None,
            bits: int = 16, return_mask: bool = False, mask_format: str = "packed",
            out: Any = None, n_threads: int | None = None, block: Any = None,
            mask_out: Any = None):
    """Dropout of x with probability p (docs/contract.md section 4).

    Parameters
    ----------
    x : array_like of float16, bfloat16, float32 or float64
        Any shape (0-d and empty included) and any strides.
    p : float
        Drop probability in [0, 1]; the one used is ``effective_p(p, bits)``.
    seed : int, optional
        Unsigned 64-bit key; None draws one from the OS (the call is then not reproducible
        unless the mask is returned).
    stream : int
        Unsigned 64-bit stream number: one per call/layer/step under a seed.
    training : bool
        False: inverted mode returns x itself (or copies it into out); classic mode
        returns ``x * P(keep)``.
    mode : {"inverted", "classic"}
        "inverted" scales kept elements by 1/P(keep) while training (PyTorch, Keras);
        "classic" keeps them as they are and scales at inference instead.
    noise_shape : tuple, optional
        Shape of the mask, one entry per axis, each x's or 1 (e.g. ``(N, C, 1, 1)`` drops
        whole channels); None entries mean x's.
    bits : {16, 32, 8}
        Bits per draw: p is resolved to multiples of 2**-bits (8: opt-in, half the
        generator's work of 16, p in steps of 1/256).
    return_mask : bool
        Also return the mask (over noise_shape) for the backward pass.
    mask_format : {"packed", "bool"}
        Packed: uint8, bit k of byte j keeps element 8j+k (LSB first). Bool: noise shape.
    out : array, optional
        Output of x's shape and dtype, of x's kind (a NumPy array or torch tensor on the
        CPU, a CUDA array on the GPU); may be x itself (in place).
    n_threads : int, optional
        CPU threads; None means OMP_NUM_THREADS, else all cores. Never changes the result.
    block : (origin, global_shape), optional
        x is the block at index `origin` of a larger C-ordered logical array of shape
        `global_shape` (a chunk, a shard): each element draws as its global index does, so
        the blocks of an array give exactly the whole array's result (fastdrop.dask uses
        it). noise_shape then refers to the global array; a returned mask covers the block,
        in its own C order. Every function of this module takes it.
    mask_out : array, optional
        With return_mask=True only (else ValueError): the buffer the mask is written into
        and returned as (the same object), so that no mask is allocated per call.  For
        mask_format="packed" a uint8 array of shape ``(ceil(m / 8),)``, m the number of
        elements of the noise shape (of the block's noise with `block`); for "bool" a
        bool array of the noise shape.  C-contiguous, writeable, of x's kind (a NumPy
        array or torch tensor on the CPU, a CUDA array on the GPU), overlapping neither
        x nor out.  At inference nothing is drawn: it is left as it is and the mask
        returned is None.

    Returns
    -------
    y : array of x's type, or (y, mask) when return_mask
        The caller's array type comes back: NumPy in, NumPy out; a torch CPU tensor gives
        a torch tensor, a JAX CPU array a JAX array; a CUDA array (CuPy, torch, Numba)
        gives an array of the same framework on the same GPU. The mask is of that type
        too (None at inference). Dropped elements are exactly +0.0, whatever x holds
        (NaN, Inf); a kept NaN stays NaN.

    Raises
    ------
    TypeError
        x is not a float array of a supported dtype; an argument has the wrong type.
    ValueError
        p outside [0, 1], a bad noise_shape, block, mode or mask_format, a wrong out
        (shape, read-only, overlapping x but for x itself), a wrong mask_out (shape, not
        C-contiguous, read-only, overlapping x or out; given without return_mask).
        TypeError for an out or mask_out of the wrong type or dtype.  Nothing is written
        when a call raises one of these (every argument is checked before any kernel
        runs); a KeyboardInterrupt that stops a long call between two of its batches
        leaves out, an in-place x and mask_out partly written.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> x = np.ones(8, np.float32)
    >>> fastdrop.dropout(x, 0.5, seed=42)
    array([2., 2., 0., 0., 0., 0., 2., 0.], dtype=float32)
    >>> y, mask = fastdrop.dropout(x, 0.5, seed=42, return_mask=True)
    >>> mask
    array([67], dtype=uint8)
    >>> fastdrop.dropout(x, 0.5, training=False) is x
    True
    """
    y = _fast_dropout(x, p, seed, stream, training, mode, noise_shape, bits, return_mask,
                      mask_format, out, n_threads, block, mask_out)
    if y is not None:
        return y
    return call(_DROPOUT, dict(x=x, p=p, seed=seed, stream=stream, training=training,
                               mode=mode, noise_shape=noise_shape, bits=bits,
                               return_mask=return_mask, mask_format=mask_format, out=out,
                               n_threads=n_threads, block=block, mask_out=mask_out))


def dropout_backward(grad: Any, p: float, *, mask: Any = None, seed: int | None = None,
                     stream: int = 0, mode: str = "inverted", noise_shape: Any = None,
                     bits: int = 16, out: Any = None, n_threads: int | None = None,
                     block: Any = None):
    """Gradient of dropout: ``grad * scale`` where kept, else +0 (classic: ``grad``).

    Parameters
    ----------
    grad : array_like of float16, bfloat16, float32 or float64
        The gradient of dropout's output.
    p : float
        The forward call's drop probability.
    mask : array, optional
        The forward call's mask: packed uint8 (``ceil(n / 8)`` bytes over the noise shape)
        or bool (the noise shape), any strides.
    seed : int, optional
        Instead of a mask: the forward call's seed; with its stream, bits and noise_shape
        the mask is regenerated and never stored.  Give exactly one of mask and seed.
    stream : int
        The forward call's stream.
    mode : {"inverted", "classic"}
        The forward call's mode.
    noise_shape : tuple, optional
        The forward call's noise shape.
    bits : {16, 32, 8}
        The forward call's bits per draw.
    out : array, optional
        Output of grad's shape and dtype; may be grad itself.
    n_threads : int, optional
        CPU threads (None: OMP_NUM_THREADS, else all cores).
    block : (origin, global_shape), optional
        As in `dropout`.

    Returns
    -------
    dx : array of grad's type
        NumPy in, NumPy out; torch or JAX CPU in, the same out; a CUDA array gives the
        same framework's array on its GPU.

    Raises
    ------
    TypeError, ValueError
        As `dropout`; also neither or both of mask and seed, or a mask of the wrong dtype
        or size.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> x = np.ones(8, np.float32)
    >>> y, mask = fastdrop.dropout(x, 0.5, seed=42, return_mask=True)
    >>> dy = np.full(8, 3.0, np.float32)
    >>> fastdrop.dropout_backward(dy, 0.5, mask=mask)
    array([6., 6., 0., 0., 0., 0., 6., 0.], dtype=float32)
    >>> fastdrop.dropout_backward(dy, 0.5, seed=42)
    array([6., 6., 0., 0., 0., 0., 6., 0.], dtype=float32)
    """
    y = _fast_dropout_backward(grad, p, mask, seed, stream, mode, noise_shape, bits, out,
                               n_threads, block)
    if y is not None:
        return y
    return call(_DROPOUT_BACKWARD, dict(grad=grad, p=p, mask=mask, seed=seed, stream=stream,
                                        mode=mode, noise_shape=noise_shape, bits=bits,
                                        out=out, n_threads=n_threads, block=block))


def dropout_mask(shape: Any, p: float, *, seed: int, stream: int = 0, bits: int = 16,
                 packed: bool = True, offset: int = 0, n_threads: int | None = None,
                 device: Any = None, block: Any = None):
    """The keep mask dropout would draw over `shape`: packed uint8 bytes or a bool array.

    Parameters
    ----------
    shape : int or tuple of ints
        The shape of the array the mask is for.
    p : float
        Drop probability in [0, 1].
    seed : int
        Unsigned 64-bit key.
    stream : int
        Unsigned 64-bit stream number.
    bits : {16, 32, 8}
        Bits per draw.
    packed : bool
        True: uint8 bytes, LSB first, ``ceil(n / 8)`` of them; False: bool of `shape`.
    offset : int
        Logical index of the first element (a 1-D run of a larger array).
    n_threads : int, optional
        CPU threads (None: OMP_NUM_THREADS, else all cores).
    device : optional
        None or "cpu": a NumPy array; "cuda", "cuda:N", a GPU index or a CUDA array: on
        that GPU (the CUDA array's framework and stream).
    block : (origin, global_shape), optional
        Place an N-d block of `shape` in a larger array (the mask is then that of the
        block's elements, in the block's own C order); not together with offset.

    Returns
    -------
    mask : array of uint8 or bool
        A NumPy array, or with a GPU `device` an array on that GPU (of the given CUDA
        array's framework; a Numba device array for "cuda").

    Raises
    ------
    TypeError, ValueError
        A bad shape, p, seed, stream, bits, offset (``offset + size`` past 2**64) or block.

    Examples
    --------
    >>> import fastdrop
    >>> fastdrop.dropout_mask(8, 0.5, seed=42)
    array([67], dtype=uint8)
    >>> fastdrop.dropout_mask(8, 0.5, seed=42, packed=False).astype(int)
    array([1, 1, 0, 0, 0, 0, 1, 0])
    """
    y = _fast_dropout_mask(shape, p, seed, stream, bits, packed, offset, n_threads, device,
                           block)
    if y is not None:
        return y
    return call(_DROPOUT_MASK, dict(shape=shape, p=p, seed=seed, stream=stream, bits=bits,
                                    packed=packed, offset=offset, n_threads=n_threads,
                                    device=device, block=block))


def unpack_mask(mask: Any, shape: Any):
    """A packed mask (uint8, LSB first) as a bool array of `shape`.

    Parameters
    ----------
    mask : array_like of uint8
        1-D, ``ceil(prod(shape) / 8)`` bytes.
    shape : int or tuple of ints
        The shape of the array the mask was drawn for.

    Returns
    -------
    keep : array of bool, of `shape`
        Of mask's type: NumPy in, NumPy out; torch or JAX CPU in, the same out; a CUDA
        array gives the same framework's array on its GPU.

    Raises
    ------
    TypeError
        mask is not uint8.
    ValueError
        mask has the wrong number of bytes, or shape is bad.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> fastdrop.unpack_mask(np.array([114], np.uint8), (2, 4)).astype(int)
    array([[0, 1, 0, 0],
           [1, 1, 1, 0]])
    """
    return call(_UNPACK_MASK, dict(mask=mask, shape=shape))


# ---- bias-dropout-add ----------------------------------------------------------------------


def bias_dropout_add(x: Any, bias: Any, residual: Any, p: float, *, seed: int,
                     stream: int = 0, bits: int = 16, return_mask: bool = False,
                     out: Any = None, n_threads: int | None = None, block: Any = None,
                     mask_out: Any = None):
    """Fused ``residual + dropout(x + bias)`` in one pass (docs/contract.md section 7).

    Parameters
    ----------
    x : array_like of float16, bfloat16, float32 or float64
        The input of the dropout.
    bias : array_like of x's dtype, shape ``(x.shape[-1],)``, or None
        Added to every row of x before the dropout; None adds nothing.
    residual : array_like of x's dtype and shape
        Added after the dropout.
    p : float
        Drop probability in [0, 1].
    seed : int
        Unsigned 64-bit key; the mask is the one
        ``dropout(x, p, seed=seed, stream=stream, bits=bits)`` draws.
    stream : int
        Unsigned 64-bit stream number.
    bits : {16, 32, 8}
        Bits per draw.
    return_mask : bool
        Also return the packed mask.
    out : array, optional
        Output of x's shape and dtype; may be x or residual itself.
    n_threads : int, optional
        CPU threads (None: OMP_NUM_THREADS, else all cores).
    block : (origin, global_shape), optional
        As in `dropout`.
    mask_out : array, optional
        With return_mask=True only: the packed mask's buffer, returned as the mask (the
        same object), a uint8 array of shape ``(ceil(x.size / 8),)``; as in `dropout`,
        and overlapping none of x, bias, residual and out.

    Returns
    -------
    y : array of x's type, or (y, packed mask) when return_mask
        NumPy in, NumPy out; torch or JAX CPU in, the same out; a CUDA array gives the
        same framework's array on its GPU.

    Raises
    ------
    TypeError
        Mixed dtypes, non-float arrays.
    ValueError
        A bias or residual of the wrong shape, and as `dropout` (out, mask_out).

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> x = np.ones((2, 4), np.float32)
    >>> fastdrop.bias_dropout_add(x, np.ones(4, np.float32), np.zeros_like(x), 0.5, seed=42)
    array([[4., 4., 0., 0.],
           [0., 0., 4., 0.]], dtype=float32)
    """
    y = _fast_bda(x, bias, residual, p, seed, stream, bits, return_mask, out, n_threads,
                  block, mask_out)
    if y is not None:
        return y
    return call(_BDA, dict(x=x, bias=bias, residual=residual, p=p, seed=seed, stream=stream,
                           bits=bits, return_mask=return_mask, out=out,
                           n_threads=n_threads, block=block, mask_out=mask_out))


def bias_dropout_add_backward(grad: Any, p: float, *, mask: Any = None,
                              seed: int | None = None, stream: int = 0, bits: int = 16,
                              has_bias: bool = True, n_threads: int | None = None,
                              block: Any = None):
    """Gradients of bias_dropout_add: ``(dx, dbias, dresidual)``.

    Parameters
    ----------
    grad : array_like of float16, bfloat16, float32 or float64
        The gradient of bias_dropout_add's output.
    p : float
        The forward call's drop probability.
    mask : array, optional
        The forward call's packed mask; or give seed (exactly one of the two).
    seed : int, optional
        The forward call's seed: the mask is regenerated.
    stream : int
        The forward call's stream.
    bits : {16, 32, 8}
        The forward call's bits per draw.
    has_bias : bool
        False: dbias is None.
    n_threads : int, optional
        CPU threads (None: OMP_NUM_THREADS, else all cores).
    block : (origin, global_shape), optional
        As in `dropout`.

    Returns
    -------
    dx : array of grad's type
        Dropout's gradient. NumPy in, NumPy out; torch or JAX CPU in, the same out; a
        CUDA array gives the same framework's array on its GPU.
    dbias : array of grad's type and dtype, shape ``(grad.shape[-1],)``, or None
        dx summed over all axes but the last, from the compute-precision products
        (float32 for half types), accumulated in float64.
    dresidual : grad itself
        The residual's gradient is grad, returned as the very object.

    Raises
    ------
    TypeError, ValueError
        As `dropout_backward`; a 0-d grad with has_bias.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> g = np.ones((2, 4), np.float32)
    >>> dx, dbias, dres = fastdrop.bias_dropout_add_backward(g, 0.5, seed=42)
    >>> dx
    array([[2., 2., 0., 0.],
           [0., 0., 2., 0.]], dtype=float32)
    >>> dbias
    array([2., 2., 2., 0.], dtype=float32)
    >>> dres is g
    True
    """
    grads = _fast_bda_backward(grad, p, mask, seed, stream, bits, has_bias, n_threads, block)
    if grads is not None:
        return grads
    return call(_BDA_BACKWARD, dict(grad=grad, p=p, mask=mask, seed=seed, stream=stream,
                                    bits=bits, has_bias=has_bias, n_threads=n_threads,
                                    block=block))


# ---- alpha dropout -------------------------------------------------------------------------


def alpha_dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
                  training: bool = True, noise_shape: Any = None, bits: int = 16,
                  return_mask: bool = False, mask_format: str = "packed",
                  out: Any = None, n_threads: int | None = None, block: Any = None,
                  mask_out: Any = None):
    """Alpha dropout (SELU networks; PyTorch's and Keras' definition).

    With q = effective_p(p), alpha' = 1.7580993408473766 and
    a = ((1 - q) (1 + q alpha'^2))^-1/2: kept elements become ``x * a + a alpha' q``, dropped
    ones ``-a alpha' (1 - q)``, keeping zero mean and unit variance for SELU activations.

    Parameters
    ----------
    x : array_like of float16, bfloat16, float32 or float64
        The input (SELU activations).
    p : float
        Drop probability in [0, 1]; q = 0 returns a copy of x, q = 1 zeros.
    seed, stream, training, noise_shape, bits, return_mask, mask_format, out, n_threads, block
        As in `dropout` (there is no classic mode). Inference returns x itself.
    mask_out : array, optional
        As in `dropout`: with return_mask=True, the mask's buffer, returned as the mask.

    Returns
    -------
    y : array of x's type, or (y, mask) when return_mask
        NumPy in, NumPy out; torch or JAX CPU in, the same out; a CUDA array gives the
        same framework's array on its GPU.

    Raises
    ------
    TypeError, ValueError
        As `dropout`.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> fastdrop.alpha_dropout(np.zeros(4, np.float32), 0.5, seed=42)
    array([ 0.7791...,  0.7791..., -0.7791..., -0.7791...], dtype=float32)
    """
    y = _fast_alpha(x, p, seed, stream, training, noise_shape, bits, return_mask,
                    mask_format, out, n_threads, block, mask_out)
    if y is not None:
        return y
    return call(_ALPHA, dict(x=x, p=p, seed=seed, stream=stream, training=training,
                             noise_shape=noise_shape, bits=bits, return_mask=return_mask,
                             mask_format=mask_format, out=out, n_threads=n_threads,
                             block=block, mask_out=mask_out))


def alpha_dropout_backward(grad: Any, p: float, *, mask: Any = None, seed: int | None = None,
                           stream: int = 0, noise_shape: Any = None, bits: int = 16,
                           out: Any = None, n_threads: int | None = None, block: Any = None):
    """Gradient of alpha_dropout: ``grad * a`` where kept, else +0.

    Parameters
    ----------
    grad : array_like of float16, bfloat16, float32 or float64
        The gradient of alpha_dropout's output.
    p : float
        The forward call's drop probability.
    mask, seed, stream, noise_shape, bits, out, n_threads, block
        As in `dropout_backward`.

    Returns
    -------
    dx : array of grad's type
        NumPy in, NumPy out; torch or JAX CPU in, the same out; a CUDA array gives the
        same framework's array on its GPU.

    Raises
    ------
    TypeError, ValueError
        As `dropout_backward`.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> fastdrop.alpha_dropout_backward(np.ones(4, np.float32), 0.5, seed=42)
    array([0.8864..., 0.8864..., 0.       , 0.       ], dtype=float32)
    """
    y = _fast_alpha_backward(grad, p, mask, seed, stream, noise_shape, bits, out, n_threads,
                             block)
    if y is not None:
        return y
    return call(_ALPHA_BACKWARD, dict(grad=grad, p=p, mask=mask, seed=seed, stream=stream,
                                      noise_shape=noise_shape, bits=bits, out=out,
                                      n_threads=n_threads, block=block))


# ---- gaussian dropout ----------------------------------------------------------------------


def gaussian_dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
                     training: bool = True, out: Any = None, n_threads: int | None = None,
                     block: Any = None):
    """Gaussian dropout (Keras ``GaussianDropout``): multiplicative N(1, p / (1 - p)) noise.

    ``y = x * g`` with ``g = 1 + gaussian_sigma(p) * z``, where z is the standard normal
    deviate of the 32-bit word of each element's logical index (`standard_normal`; the
    transform is exact and documented in docs/contract.md).  g is computed in float64 and
    the product in the compute precision (float32 for float16/bfloat16, rounded once).
    ``E[y] = x`` and ``Var[y] = x**2 p / (1 - p)``.  There is no mask: the backward pass
    regenerates g from (seed, stream).

    Parameters
    ----------
    x : array_like of float16, bfloat16, float32 or float64
        The input.
    p : float
        In [0, 1): p = 0 gives x unchanged (a copy).
    seed, stream
        As in `dropout`.
    training : bool
        False returns x itself, as Keras does.
    out, n_threads, block
        As in `dropout`.

    Returns
    -------
    y : array of x's type
        NumPy in, NumPy out; torch or JAX CPU in, the same out; a CUDA array gives the
        same framework's array on its GPU.

    Raises
    ------
    TypeError, ValueError
        As `dropout`; p = 1.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> fastdrop.gaussian_dropout(np.ones(3), 0.5, seed=1)
    array([2.2279..., 2.2518..., 1.2165...])
    """
    y = _fast_gaussian(x, p, seed, stream, training, out, n_threads, block)
    if y is not None:
        return y
    return call(_GAUSSIAN, dict(x=x, p=p, seed=seed, stream=stream, training=training,
                                out=out, n_threads=n_threads, block=block))


def gaussian_dropout_backward(grad: Any, p: float, *, seed: int, stream: int = 0,
                              out: Any = None, n_threads: int | None = None,
                              block: Any = None):
    """Gradient of gaussian_dropout: ``grad * g`` with the forward call's noise.

    Parameters
    ----------
    grad : array_like of float16, bfloat16, float32 or float64
        The gradient of gaussian_dropout's output.
    p : float
        The forward call's rate.
    seed : int
        The forward call's seed (required: the noise is regenerated, never stored).
    stream, out, n_threads, block
        As in `dropout_backward`.

    Returns
    -------
    dx : array of grad's type
        NumPy in, NumPy out; torch or JAX CPU in, the same out; a CUDA array gives the
        same framework's array on its GPU.

    Raises
    ------
    TypeError, ValueError
        As `gaussian_dropout`; no seed.

    Examples
    --------
    >>> import numpy as np, fastdrop
    >>> fastdrop.gaussian_dropout_backward(np.ones(3), 0.5, seed=1)
    array([2.2279..., 2.2518..., 1.2165...])
    """
    y = _fast_gaussian_backward(grad, p, seed, stream, out, n_threads, block)
    if y is not None:
        return y
    return call(_GAUSSIAN_BACKWARD, dict(grad=grad, p=p, seed=seed, stream=stream, out=out,
                                         n_threads=n_threads, block=block))
