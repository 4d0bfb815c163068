"""asv: the random generator (random_bits, uniform) beside NumPy's Philox."""
import numpy as np

import fastdrop

from .common import SEED, SIZES, Timed, need, need_bits, simd_level_or_skip


class RandomBits(Timed):
    """Per-element draws into a preallocated array (time) and a fresh one (peakmem)."""
    params = (SIZES, [8, 16, 32])
    param_names = ["n", "bits"]

    def setup(self, n, bits):
        self.f = need(fastdrop, "random_bits")
        need_bits(bits)
        self.out = np.zeros(n, {32: np.uint32, 16: np.uint16, 8: np.uint8}[bits])

    def time_random_bits(self, n, bits):
        self.f(n, seed=SEED, stream=2, bits=bits, out=self.out)

    def peakmem_random_bits(self, n, bits):
        self.f(n, seed=SEED, stream=2, bits=bits)


class PhiloxLevels(Timed):
    """Philox words per second at each SIMD level this CPU has (portable, avx2, avx512;
    the others are skipped): 2^22 words into a preallocated array, one thread."""
    params = [["portable", "avx2", "avx512"]]
    param_names = ["level"]
    n = 2**22

    def setup(self, level):
        self.restore = simd_level_or_skip(level)
        self.f = need(fastdrop, "random_bits")
        self.out = np.zeros(self.n, np.uint32)

    def teardown(self, level):
        self.restore()

    def time_words(self, level):
        self.f(self.n, seed=SEED, stream=2, bits=32, out=self.out, n_threads=1)


class Uniform(Timed):
    params = (SIZES, ["float32", "float64"])
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        self.f = need(fastdrop, "uniform")
        self.out = np.zeros(n, dtype)

    def time_uniform(self, n, dtype):
        self.f(n, seed=SEED, stream=2, dtype=self.out.dtype, out=self.out)

    def peakmem_uniform(self, n, dtype):
        self.f(n, seed=SEED, stream=2, dtype=self.out.dtype)


class NumpyPhilox(Timed):
    """Baseline: NumPy's own Philox bit generator, 32-bit integers and float32 uniforms."""
    params = [SIZES]
    param_names = ["n"]

    def setup(self, n):
        self.gen = np.random.Generator(np.random.Philox(SEED))
        self.out = np.zeros(n, np.float32)

    def time_integers_uint32(self, n):
        self.gen.integers(0, 2**32, size=n, dtype=np.uint32)

    def time_random_float32(self, n):
        self.gen.random(n, dtype=np.float32, out=self.out)
