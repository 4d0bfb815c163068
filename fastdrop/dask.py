"""Dropout on Dask arrays, chunk by chunk, with the very result of the whole array.

Each chunk calls the fastdrop kernel with ``block=(origin, global_shape)`` (the chunk's
place in the whole array, from ``map_blocks``' block_info), so it draws the random numbers
of its own global logical indices: the result is bit-identical to ``fastdrop.dropout`` on
the computed array, whatever the chunking and the scheduler (threads, processes,
distributed).  Optional extra: ``pip install fastdrop[dask]``.

Masks are bool Dask arrays over the noise shape; the backward functions also regenerate
the mask from ``(seed, stream)``, which stores nothing and needs no communication.
A seed of None is drawn once, when the graph is built, and shared by every chunk.
Each chunk's kernel runs on one thread: Dask's scheduler already runs the chunks in
parallel, and a team of all cores per chunk would oversubscribe the machine.
"""
from __future__ import annotations

import secrets
from typing import Any

import numpy as np

try:
    import dask.array as da
    from dask import delayed
except ImportError as exc:  # pragma: no cover - exercised only without dask
    raise ImportError("fastdrop.dask needs dask: pip install 'fastdrop[dask]'") from exc

from . import functional as _f
from ._core.args import check_noise_shape, check_shape, check_uint64
from ._core.threads import default_threads

__all__ = [
    "dropout", "dropout_backward", "dropout_mask", "alpha_dropout", "alpha_dropout_backward",
    "gaussian_dropout", "gaussian_dropout_backward", "bias_dropout_add",
    "bias_dropout_add_backward",
]


def _as_dask(x: Any, name: str) -> da.Array:
    if isinstance(x, da.Array):
        if any(c != c for chunks in x.chunks for c in chunks):  # NaN: unknown sizes
            raise ValueError(f"{name} has unknown chunk sizes (after boolean indexing, say): "
                             f"each chunk's place in the array decides its draws; call "
                             f"{name}.compute_chunk_sizes() first")
        return x
    raise TypeError(f"{name} must be a dask.array.Array, got {type(x).__name__} (use the "
                    f"functions of fastdrop itself for other arrays)")


def _seed(seed: Any) -> int:
    return secrets.randbits(64) if seed is None else check_uint64(seed, "seed")


def _where(block_info: dict, i: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    info = block_info[i]
    return tuple(start for start, _ in info["array-location"]), tuple(info["shape"])


def _map(kernel, x: da.Array, *args: Any, dtype: Any = None, **kwargs: Any) -> da.Array:
    """Map kernel(block, *blocks_of_args, block=(origin, global_shape), **kwargs)."""
    def one(block, *rest, block_info=None):
        with default_threads(1):  # Dask runs the chunks in parallel: one thread each
            return kernel(block, *rest, block=_where(block_info), **kwargs)

    dtype = x.dtype if dtype is None else dtype
    return da.map_blocks(one, x, *args, dtype=dtype,
                         meta=np.empty((0,) * x.ndim, dtype=dtype))


def _validate_like_numpy(func, x: da.Array, *args: Any, **kwargs: Any) -> None:
    """Run the NumPy function on a tiny stand-in, so bad arguments fail at graph build
    time with the same errors as fastdrop's NumPy API (nothing is computed)."""
    probe = np.zeros((1,) * x.ndim, dtype=x.dtype)
    func(probe, *args, **kwargs)


def _noise_of(noise_shape: Any, x: da.Array) -> tuple[int, ...]:
    noise = check_noise_shape(noise_shape, x.shape)
    return noise


def _mask_chunks(x: da.Array, noise: tuple[int, ...]):
    return tuple(c if n != 1 else (1,) for c, n in zip(x.chunks, noise))


def dropout_mask(shape: Any, p: float, *, seed: int, stream: int = 0, bits: int = 16,
                 chunks: Any = "auto") -> da.Array:
    """Bool keep mask over `shape` as a Dask array (element i keeps iff its draw >= t).

    Equal to ``fastdrop.dropout_mask(shape, p, ..., packed=False)`` whatever `chunks`.

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
    chunks : optional
        Dask chunks (``"auto"`` by default).

    Returns
    -------
    dask.array.Array of bool
        Lazy, of `shape`, with NumPy chunks.

    Raises
    ------
    TypeError, ValueError
        As `fastdrop.dropout_mask`, when the graph is built.

    Examples
    --------
    >>> import fastdrop.dask
    >>> fastdrop.dask.dropout_mask((2, 4), 0.5, seed=42, chunks=2).compute()
    array([[ True,  True, False, False],
           [False, False,  True, False]])
    """
    dims = check_shape(shape)
    # validated on a stand-in of one element per axis (nothing of the mask computed)
    _f.dropout_mask((1,) * len(dims), p, seed=seed, stream=stream, bits=bits, packed=False)
    template = da.empty(dims, dtype=np.bool_, chunks=chunks)

    def one(block, block_info=None):
        return _f.dropout_mask(block.shape, p, seed=seed, stream=stream, bits=bits,
                               packed=False, block=_where(block_info))

    return da.map_blocks(one, template, dtype=np.bool_, meta=np.empty((0,) * len(dims), bool))


def dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
            training: bool = True, mode: str = "inverted", noise_shape: Any = None,
            bits: int = 16, return_mask: bool = False):
    """`fastdrop.dropout` of a Dask array, chunk by chunk (lazy).

    Parameters
    ----------
    x : dask.array.Array of float16, bfloat16, float32 or float64
        The input; any chunking.
    p : float
        Drop probability in [0, 1].
    seed : int, optional
        Unsigned 64-bit key; None draws one from the OS, once, when the graph is built.
    stream, training, mode, noise_shape, bits
        As in `fastdrop.dropout`.
    return_mask : bool
        Also return the bool mask.

    Returns
    -------
    y : dask.array.Array, or (y, mask) when return_mask
        y is a lazy Dask array chunked like x; each chunk is what the fastdrop function
        returns for the chunk's array type (NumPy chunks give NumPy chunks), so
        ``.compute()`` gives the result of the fastdrop function on the whole array.
        mask is a bool Dask array over the noise shape (the mask
        ``fastdrop.dropout(..., mask_format="bool")`` returns); None at inference.

    Raises
    ------
    TypeError
        x is not a Dask array, or as `fastdrop.dropout`.
    ValueError
        As `fastdrop.dropout`. Arguments are checked when the graph is built.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastdrop.dask
    >>> X = da.ones((2, 4), chunks=(1, 2), dtype=np.float32)
    >>> Y = fastdrop.dask.dropout(X, 0.5, seed=42)
    >>> Y.compute()
    array([[2., 2., 0., 0.],
           [0., 0., 2., 0.]], dtype=float32)
    >>> bool((Y.compute() == fastdrop.dropout(X.compute(), 0.5, seed=42)).all())
    True
    """
    x = _as_dask(x, "x")
    s = _seed(seed)
    _validate_like_numpy(_f.dropout, x, p, seed=s, stream=stream, training=training,
                         mode=mode, bits=bits, return_mask=return_mask,
                         noise_shape=None if noise_shape is None else (1,) * x.ndim)
    noise = _noise_of(noise_shape, x)
    if not training:
        y = x if mode == "inverted" else _map(
            lambda b, block: _f.dropout(b, p, training=False, mode=mode, bits=bits), x)
        return (y, None) if return_mask else y
    y = _map(_f.dropout, x, p, seed=s, stream=stream, mode=mode, noise_shape=noise, bits=bits)
    if not return_mask:
        return y
    mask = dropout_mask(noise, p, seed=s, stream=stream, bits=bits,
                        chunks=_mask_chunks(x, noise))
    return y, mask


def dropout_backward(grad: Any, p: float, *, mask: Any = None, seed: int | None = None,
                     stream: int = 0, mode: str = "inverted", noise_shape: Any = None,
                     bits: int = 16):
    """Gradient of `dropout`, chunk by chunk: from a bool mask, or regenerated.

    Parameters
    ----------
    grad : dask.array.Array of float16, bfloat16, float32 or float64
        The gradient of dropout's output.
    p : float
        The forward call's drop probability.
    mask : dask.array.Array or numpy.ndarray of bool, optional
        The forward call's mask, over the noise shape; or give seed (exactly one).
    seed : int, optional
        The forward call's seed: the mask is regenerated from (seed, stream).
    stream, mode, noise_shape, bits
        The forward call's.

    Returns
    -------
    dask.array.Array
        A lazy Dask array chunked like grad; each chunk is what the fastdrop function
        returns for the chunk's array type (NumPy chunks give NumPy chunks), so
        ``.compute()`` gives the result of the fastdrop function on the whole array.

    Raises
    ------
    TypeError
        grad is not a Dask array, or as `fastdrop.dropout_backward`.
    ValueError
        Neither or both of mask and seed, a mask that is not bool of the noise shape, or
        as `fastdrop.dropout_backward`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastdrop.dask
    >>> G = da.ones((2, 4), chunks=(1, 2), dtype=np.float32)
    >>> fastdrop.dask.dropout_backward(G, 0.5, seed=42).compute()
    array([[2., 2., 0., 0.],
           [0., 0., 2., 0.]], dtype=float32)
    """
    g = _as_dask(grad, "grad")
    if (mask is None) == (seed is None):
        raise ValueError("give exactly one of mask or seed")
    noise = _noise_of(noise_shape, g)
    if seed is not None:
        _validate_like_numpy(_f.dropout_backward, g, p, seed=seed, stream=stream, mode=mode,
                             bits=bits)
        return _map(_f.dropout_backward, g, p, seed=seed, stream=stream, mode=mode,
                    noise_shape=noise, bits=bits)
    m = mask if isinstance(mask, da.Array) else da.from_array(np.asarray(mask))
    if m.dtype != np.bool_ or m.shape != noise:
        raise ValueError(f"mask must be a bool array of the noise shape {noise}, got "
                         f"{m.dtype} {m.shape}")
    m = m.rechunk(_mask_chunks(g, noise))
    _validate_like_numpy(_f.dropout_backward, g, p, mask=np.ones((1,) * g.ndim, bool),
                         mode=mode, bits=bits)

    def one(gb, mb, block):
        return _f.dropout_backward(gb, p, mask=np.ascontiguousarray(mb), mode=mode,
                                   noise_shape=mb.shape, bits=bits)

    return _map(one, g, m)


def alpha_dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
                  training: bool = True, noise_shape: Any = None, bits: int = 16):
    """`fastdrop.alpha_dropout` of a Dask array, chunk by chunk (lazy).

    Parameters
    ----------
    x : dask.array.Array of float16, bfloat16, float32 or float64
        The input; any chunking.
    p : float
        Drop probability in [0, 1].
    seed : int, optional
        Unsigned 64-bit key; None draws one when the graph is built.
    stream, training, noise_shape, bits
        As in `fastdrop.alpha_dropout`.

    Returns
    -------
    dask.array.Array
        A lazy Dask array chunked like x; each chunk is what the fastdrop function
        returns for the chunk's array type (NumPy chunks give NumPy chunks), so
        ``.compute()`` gives the result of the fastdrop function on the whole array.
        x itself at inference.

    Raises
    ------
    TypeError, ValueError
        x is not a Dask array, or as `fastdrop.alpha_dropout`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastdrop.dask
    >>> X = da.zeros(4, chunks=2, dtype=np.float32)
    >>> fastdrop.dask.alpha_dropout(X, 0.5, seed=42).compute()
    array([ 0.7791...,  0.7791..., -0.7791..., -0.7791...], dtype=float32)
    """
    x = _as_dask(x, "x")
    s = _seed(seed)
    _validate_like_numpy(_f.alpha_dropout, x, p, seed=s, stream=stream, training=training,
                         bits=bits)
    noise = _noise_of(noise_shape, x)
    if not training:
        return x
    return _map(_f.alpha_dropout, x, p, seed=s, stream=stream, noise_shape=noise, bits=bits)


def alpha_dropout_backward(grad: Any, p: float, *, seed: int, stream: int = 0,
                           noise_shape: Any = None, bits: int = 16):
    """Gradient of `alpha_dropout`, chunk by chunk, regenerated from (seed, stream).

    Parameters
    ----------
    grad : dask.array.Array of float16, bfloat16, float32 or float64
        The gradient of alpha_dropout's output.
    p : float
        The forward call's drop probability.
    seed : int
        The forward call's seed.
    stream, noise_shape, bits
        The forward call's.

    Returns
    -------
    dask.array.Array
        A lazy Dask array chunked like grad; each chunk is what the fastdrop function
        returns for the chunk's array type (NumPy chunks give NumPy chunks), so
        ``.compute()`` gives the result of the fastdrop function on the whole array.

    Raises
    ------
    TypeError, ValueError
        grad is not a Dask array, or as `fastdrop.alpha_dropout_backward`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastdrop.dask
    >>> G = da.ones(4, chunks=2, dtype=np.float32)
    >>> fastdrop.dask.alpha_dropout_backward(G, 0.5, seed=42).compute()
    array([0.8864..., 0.8864..., 0.       , 0.       ], dtype=float32)
    """
    g = _as_dask(grad, "grad")
    _validate_like_numpy(_f.alpha_dropout_backward, g, p, seed=seed, stream=stream, bits=bits)
    return _map(_f.alpha_dropout_backward, g, p, seed=seed, stream=stream,
                noise_shape=_noise_of(noise_shape, g), bits=bits)


def gaussian_dropout(x: Any, p: float = 0.5, *, seed: int | None = None, stream: int = 0,
                     training: bool = True):
    """`fastdrop.gaussian_dropout` of a Dask array, chunk by chunk (lazy).

    Parameters
    ----------
    x : dask.array.Array of float16, bfloat16, float32 or float64
        The input; any chunking.
    p : float
        Rate in [0, 1).
    seed : int, optional
        Unsigned 64-bit key; None draws one when the graph is built.
    stream, training
        As in `fastdrop.gaussian_dropout`.

    Returns
    -------
    dask.array.Array
        A lazy Dask array chunked like x; each chunk is what the fastdrop function
        returns for the chunk's array type (NumPy chunks give NumPy chunks), so
        ``.compute()`` gives the result of the fastdrop function on the whole array.
        x itself at inference.

    Raises
    ------
    TypeError, ValueError
        x is not a Dask array, or as `fastdrop.gaussian_dropout`.

    Examples
    --------
    >>> import dask.array as da, fastdrop.dask
    >>> fastdrop.dask.gaussian_dropout(da.ones(3, chunks=2), 0.5, seed=1).compute()
    array([2.2279..., 2.2518..., 1.2165...])
    """
    x = _as_dask(x, "x")
    s = _seed(seed)
    _validate_like_numpy(_f.gaussian_dropout, x, p, seed=s, stream=stream, training=training)
    if not training:
        return x
    return _map(_f.gaussian_dropout, x, p, seed=s, stream=stream)


def gaussian_dropout_backward(grad: Any, p: float, *, seed: int, stream: int = 0):
    """Gradient of `gaussian_dropout`, chunk by chunk, regenerated from (seed, stream).

    Parameters
    ----------
    grad : dask.array.Array of float16, bfloat16, float32 or float64
        The gradient of gaussian_dropout's output.
    p : float
        The forward call's rate.
    seed : int
        The forward call's seed.
    stream : int
        The forward call's stream.

    Returns
    -------
    dask.array.Array
        A lazy Dask array chunked like grad; each chunk is what the fastdrop function
        returns for the chunk's array type (NumPy chunks give NumPy chunks), so
        ``.compute()`` gives the result of the fastdrop function on the whole array.

    Raises
    ------
    TypeError, ValueError
        grad is not a Dask array, or as `fastdrop.gaussian_dropout_backward`.

    Examples
    --------
    >>> import dask.array as da, fastdrop.dask
    >>> fastdrop.dask.gaussian_dropout_backward(da.ones(3, chunks=2), 0.5, seed=1).compute()
    array([2.2279..., 2.2518..., 1.2165...])
    """
    g = _as_dask(grad, "grad")
    _validate_like_numpy(_f.gaussian_dropout_backward, g, p, seed=seed, stream=stream)
    return _map(_f.gaussian_dropout_backward, g, p, seed=seed, stream=stream)


def bias_dropout_add(x: Any, bias: Any, residual: Any, p: float, *, seed: int,
                     stream: int = 0, bits: int = 16):
    """``residual + dropout(x + bias)``, fused, chunk by chunk (lazy).

    Parameters
    ----------
    x : dask.array.Array of float16, bfloat16, float32 or float64
        The input of the dropout; any chunking.
    bias : numpy.ndarray or dask.array.Array of shape ``(x.shape[-1],)``, or None
        Aligned with x's last-axis chunks.
    residual : dask.array.Array of x's shape
        Rechunked like x.
    p : float
        Drop probability in [0, 1].
    seed : int
        Unsigned 64-bit key.
    stream, bits
        As in `fastdrop.bias_dropout_add`.

    Returns
    -------
    dask.array.Array
        A lazy Dask array chunked like x; each chunk is what the fastdrop function
        returns for the chunk's array type (NumPy chunks give NumPy chunks), so
        ``.compute()`` gives the result of the fastdrop function on the whole array.

    Raises
    ------
    TypeError
        x or residual is not a Dask array, or as `fastdrop.bias_dropout_add`.
    ValueError
        A residual or bias of the wrong shape, or as `fastdrop.bias_dropout_add`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastdrop.dask
    >>> X = da.ones((2, 4), chunks=(1, 2), dtype=np.float32)
    >>> bias = np.ones(4, np.float32)
    >>> fastdrop.dask.bias_dropout_add(X, bias, da.zeros_like(X), 0.5, seed=42).compute()
    array([[4., 4., 0., 0.],
           [0., 0., 4., 0.]], dtype=float32)
    """
    x = _as_dask(x, "x")
    r = _as_dask(residual, "residual")
    if r.shape != x.shape:
        raise ValueError(f"residual must have x's shape {x.shape}, got {r.shape}")
    # stand-ins of one element: bias's and residual's dtypes checked as the NumPy API does
    probe_b = None if bias is None else np.zeros(1, dtype=(
        bias.dtype if hasattr(bias, "dtype") else np.asarray(bias).dtype))
    probe_r = np.zeros((1,) * x.ndim, dtype=r.dtype)
    _validate_like_numpy(lambda a, **k: _f.bias_dropout_add(a, probe_b, probe_r, **k), x,
                         p=p, seed=seed, stream=stream, bits=bits)
    if bias is not None and tuple(np.shape(bias)) != (x.shape[-1],):
        raise ValueError(f"bias must have shape (x.shape[-1],) = {(x.shape[-1],)}, "
                         f"got {np.shape(bias)}")
    r = r.rechunk(x.chunks)
    if bias is None:
        return _map(lambda xb, rb, block: _f.bias_dropout_add(
            xb, None, rb, p, seed=seed, stream=stream, bits=bits, block=block), x, r)
    b = (bias if isinstance(bias, da.Array) else da.from_array(np.asarray(bias)))
    b = b.rechunk((x.chunks[-1],))
    return _map(lambda xb, rb, bb, block: _f.bias_dropout_add(
        xb, bb, rb, p, seed=seed, stream=stream, bits=bits, block=block), x, r, b)


def bias_dropout_add_backward(grad: Any, p: float, *, seed: int, stream: int = 0,
                              bits: int = 16, has_bias: bool = True):
    """``(dx, dbias, dresidual)`` of `bias_dropout_add`, chunk by chunk (lazy).

    Parameters
    ----------
    grad : dask.array.Array of float16, bfloat16, float32 or float64
        The gradient of bias_dropout_add's output.
    p : float
        The forward call's drop probability.
    seed : int
        The forward call's seed: the mask is regenerated.
    stream, bits
        The forward call's.
    has_bias : bool
        False: dbias is None.

    Returns
    -------
    dx : dask.array.Array
        Dropout's gradient, chunked like grad.
    dbias : dask.array.Array of shape ``(grad.shape[-1],)``, or None
        dx (compute precision) summed over all axes but the last in float64, in the
        contract's order (the rows in C order, one after the other from +0.0: a chain of
        one task per chunk of rows, per chunk of columns; a single column pairwise, as
        NumPy sums it, on the gathered column), rounded once: bit-identical to
        `fastdrop.bias_dropout_add_backward` whatever the chunking.
    dresidual : grad itself

    Raises
    ------
    TypeError, ValueError
        grad is not a Dask array, a 0-d grad with has_bias, or as
        `fastdrop.bias_dropout_add_backward`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastdrop.dask
    >>> G = da.ones((2, 4), chunks=(1, 2), dtype=np.float32)
    >>> dx, dbias, dres = fastdrop.dask.bias_dropout_add_backward(G, 0.5, seed=42)
    >>> dbias.compute()
    array([2., 2., 2., 0.], dtype=float32)
    >>> dres is G
    True
    """
    g = _as_dask(grad, "grad")
    _validate_like_numpy(_f.dropout_backward, g, p, seed=seed, stream=stream, bits=bits)
    ct = np.dtype(np.float32) if g.dtype.itemsize == 2 else g.dtype  # the compute dtype
    dx_c = _map(lambda gb, block: _f.dropout_backward(
        gb.astype(ct, copy=False), p, seed=seed, stream=stream, bits=bits, block=block),
        g, dtype=ct)
    dbias = None
    if has_bias:
        if g.ndim == 0:
            raise ValueError("grad must have at least one axis when has_bias is True")
        dbias = _column_sums(dx_c.astype(np.float64)).astype(g.dtype)
    dx = dx_c if ct == g.dtype else dx_c.astype(g.dtype)
    return dx, dbias, g


def _fold_rows(acc: np.ndarray, block: np.ndarray) -> np.ndarray:
    """acc + the rows of block, one after the other (in float64, acc from +0.0 first):
    NumPy's axis-0 sum of a C-contiguous array of two or more columns is exactly that;
    a chunk of one column is summed by accumulation, which is sequential too."""
    rows = np.concatenate([acc[None], block.reshape(-1, acc.shape[0])])
    if acc.shape[0] == 1:
        return np.add.accumulate(rows, axis=0)[-1]
    return rows.sum(axis=0)


def _column_sums(v: da.Array) -> da.Array:
    """The sums over every axis but the last of float64 v, in the contract's order: its
    rows (``v.reshape(-1, n)`` in C order) added one after the other from +0.0 for two or
    more columns, pairwise (NumPy's ``sum``) for a single column."""
    n = v.shape[-1]
    v = v.reshape((1, n)) if v.ndim == 1 else v
    # axes 1 .. ndim-2 whole, so that each chunk of axis 0 holds consecutive rows in C order
    v = v.rechunk({k: -1 for k in range(1, v.ndim - 1)})
    if n == 1:   # NumPy sums a single column pairwise: the whole column in one task
        whole = v.rechunk(-1).to_delayed().ravel()[0]
        col = delayed(lambda b: np.ascontiguousarray(b).reshape(-1, 1).sum(axis=0))(whole)
        return da.from_delayed(col, shape=(1,), dtype=np.float64)
    blocks = v.to_delayed()
    blocks = blocks.reshape(blocks.shape[0], -1)   # (row chunks, column chunks)
    parts = []
    for j, width in enumerate(v.chunks[-1]):
        acc = np.zeros(width, np.float64)
        for i in range(blocks.shape[0]):   # a chain: chunk i adds to chunk i-1's sums
            acc = delayed(_fold_rows)(acc, blocks[i, j])
        parts.append(da.from_delayed(acc, shape=(width,), dtype=np.float64))
    return da.concatenate(parts) if parts else da.zeros((0,), np.float64)
