# cython: language_level=3, boundscheck=False, wraparound=False
"""Test-only hooks into fastdrop's C headers (fastdrop/_cpu/src), as randomgen's
tests/_shims.pyx: they reach code paths the public API cannot aim at, and stay out of the
production modules.  Built on first use by tests/_helpers.py `shims()` with the package's
own compiler flags (no FMA contraction)."""
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t

cdef extern from "fd_half.h" nogil:
    ctypedef struct fd_f16:
        uint16_t bits
    ctypedef struct fd_bf16:
        uint16_t bits
    fd_f16 fd_f32_to_f16(float v)
    fd_bf16 fd_f32_to_bf16(float v)

cdef extern from "fd_normal.h" nogil:
    void fd_normal_block(const uint32_t* r, double* z, int64_t n)

cdef extern from "philox.h" nogil:
    enum: FD_SIMD_AVX2
    enum: FD_HAVE_AVX2_KERNEL
    int fd_simd_best()
    void fd_philox_tile_portable(uint64_t seed, uint64_t stream, uint64_t block0,
                                 uint32_t* out)
    void fd_philox_tile_avx512_emu(uint64_t seed, uint64_t stream, uint64_t block0,
                                   uint32_t* out)

cdef extern from "fd_fused.h" nogil:
    enum: FD_HAVE_FUSED
    int fd_cpu_has_f16c()
    void fd_round_h16_vec(int bf16, const float* src, uint16_t* dst, int64_t n)


def normals_of_words(const uint32_t[::1] words, double[::1] out):
    """out[k] = the normal deviate of words[k] (fd_normal.h), for words (0, 2**32 - 1, the
    branch boundary) that a stream rarely draws."""
    if words.shape[0] != out.shape[0]:
        raise ValueError("words and out must have the same length")
    with nogil:
        fd_normal_block(&words[0] if words.shape[0] else NULL,
                        &out[0] if out.shape[0] else NULL, words.shape[0])


def round_to_half_bits(const float[::1] src, uint16_t[::1] out, bint bf16, bint vector):
    """out[k] = the float16 (or bfloat16) bits of src[k], rounded by the fused path's vector
    code (vector=True; AVX2 and, for float16, F16C machines only) or by fd_half.h."""
    cdef Py_ssize_t k, n = src.shape[0]
    if out.shape[0] != n:
        raise ValueError("src and out must have the same length")
    if vector and not (FD_HAVE_FUSED and fd_simd_best() >= FD_SIMD_AVX2
                       and (bf16 or fd_cpu_has_f16c())):
        raise RuntimeError("the vector conversions need AVX2 (and F16C for float16)")
    if n == 0:
        return
    with nogil:
        if vector:
            fd_round_h16_vec(bf16, &src[0], &out[0], n)
        else:
            for k in range(n):
                out[k] = fd_f32_to_bf16(src[k]).bits if bf16 else fd_f32_to_f16(src[k]).bits


def philox_tile(uint64_t seed, uint64_t stream, uint64_t block0, uint32_t[::1] out,
                bint avx512_emulated):
    """One tile (128 words) from block0: the portable kernel, or the AVX-512 tile's body
    run on AVX2 registers (fd_philox_tile_avx512_emu: its logic, on any AVX2 machine)."""
    if out.shape[0] != 128:
        raise ValueError("out must hold one tile: 128 words")
    if avx512_emulated and not (FD_HAVE_AVX2_KERNEL and fd_simd_best() >= FD_SIMD_AVX2):
        raise RuntimeError("the emulated AVX-512 tile runs on AVX2")
    with nogil:
        if avx512_emulated:
            fd_philox_tile_avx512_emu(seed, stream, block0, &out[0])
        else:
            fd_philox_tile_portable(seed, stream, block0, &out[0])
