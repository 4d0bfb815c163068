"""Pure-NumPy reference of fastdrop: slow, obviously correct, the tests' oracle.

A twin of every kernel, written straight from docs/contract.md with no attempt at speed
(in the manner of bottleneck's ``slow`` module).  Only NumPy.
"""
from __future__ import annotations

import numpy as np

__all__ = ["philox4x32", "stream_words", "random_bits", "uniform"]

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_U32 = np.uint64(32)


def philox4x32(counter, key, rounds=10):
    """Philox4x32-`rounds` of counter (..., 4) under key (..., 2), uint32 in and out."""
    counter = np.asarray(counter, dtype=np.uint32)
    key = np.asarray(key, dtype=np.uint32)
    c0, c1, c2, c3 = (counter[..., j].astype(np.uint64) for j in range(4))
    k0, k1 = (key[..., j].astype(np.uint64) for j in range(2))
    for _ in range(rounds):
        p0 = np.uint64(M0) * c0  # 32 x 32 -> 64 bit products fit in uint64
        p1 = np.uint64(M1) * c2
        c0, c1, c2, c3 = ((p1 >> _U32) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> _U32) ^ c3 ^ k1, p0 & _MASK32)
        k0 = (k0 + np.uint64(W0)) & _MASK32
        k1 = (k1 + np.uint64(W1)) & _MASK32
    return np.stack(np.broadcast_arrays(c0, c1, c2, c3), axis=-1).astype(np.uint32)


def stream_words(seed, stream, first_word, n):
    """Words first_word .. first_word + n - 1 of stream `stream` under `seed` (uint32)."""
    if n == 0:
        return np.empty(0, dtype=np.uint32)
    first_block, last_block = first_word // 4, (first_word + n - 1) // 4
    blocks = np.uint64(first_block) + np.arange(last_block - first_block + 1, dtype=np.uint64)
    counter = np.stack([blocks & _MASK32, blocks >> _U32,
                        np.full_like(blocks, stream & 0xFFFFFFFF),
                        np.full_like(blocks, stream >> 32)], axis=-1).astype(np.uint32)
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)
    words = philox4x32(counter, key).reshape(-1)
    start = first_word - 4 * first_block
    return words[start:start + n]


def random_bits(shape, seed, stream=0, bits=32, offset=0):
    """Draw offset + i for element i (C order): a word (bits=32) or a half word (bits=16)."""
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if bits == 32:
        return stream_words(seed, stream, offset, n).reshape(shape)
    if n == 0:
        return np.empty(shape, dtype=np.uint16)
    first_word = offset // 2
    words = stream_words(seed, stream, first_word, (offset + n - 1) // 2 - first_word + 1)
    draw = np.uint64(offset) + np.arange(n, dtype=np.uint64)
    word = words[(draw // np.uint64(2) - np.uint64(first_word)).astype(np.intp)]
    half = (draw % np.uint64(2)).astype(np.uint32)
    return ((word >> (np.uint32(16) * half)) & np.uint32(0xFFFF)).astype(np.uint16).reshape(shape)


def uniform(shape, seed, stream=0, dtype=np.float32, offset=0):
    """Uniform [0, 1) floats: float32 from the top 24 bits of one word, float64 from the
    top 53 bits of two words (low word first)."""
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if np.dtype(dtype) == np.float32:
        w = stream_words(seed, stream, offset, n)
        return ((w >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)).reshape(shape)
    w = stream_words(seed, stream, 2 * offset, 2 * n).astype(np.uint64)
    u = (w[1::2] << _U32) | w[0::2]
    return ((u >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).reshape(shape)
