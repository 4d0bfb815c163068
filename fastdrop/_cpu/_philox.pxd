# Shared with the other kernel modules (cimport fastdrop._philox): one dispatch state.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from "philox.h" nogil:
    enum: FD_TILE_BLOCKS
    enum: FD_TILE_WORDS

cdef void philox_tile(uint64_t seed, uint64_t stream, uint64_t block0,
                      uint32_t* out) noexcept nogil

cdef void draws_u32(uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                    uint32_t* dst) noexcept nogil

cdef void draws_u16(uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                    uint16_t* dst) noexcept nogil

cdef void draws_u8(uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                   uint8_t* dst) noexcept nogil

cdef void draws_u8_wide(uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                        uint16_t* dst) noexcept nogil

cdef int simd_level() noexcept nogil
