"""asv benchmarks of the random generator (the full suite comes with the benchmarks issue)."""
import numpy as np

import fastdrop


class RandomBits:
    params = ([2**12, 2**18, 2**24], [16, 32])
    param_names = ["n", "bits"]

    def setup(self, n, bits):
        self.out = np.empty(n, np.uint32 if bits == 32 else np.uint16)

    def time_random_bits(self, n, bits):
        fastdrop.random_bits(n, seed=1, stream=2, bits=bits, out=self.out)

    def track_gbps(self, n, bits):
        import time
        fastdrop.random_bits(n, seed=1, stream=2, bits=bits, out=self.out)
        reps, t0 = 5, time.perf_counter()
        for _ in range(reps):
            fastdrop.random_bits(n, seed=1, stream=2, bits=bits, out=self.out)
        return self.out.nbytes * reps / (time.perf_counter() - t0) / 1e9

    track_gbps.unit = "GB/s"


class NumpyPhilox:
    params = [2**12, 2**18, 2**24]
    param_names = ["n"]

    def setup(self, n):
        self.gen = np.random.Generator(np.random.Philox(1))

    def time_integers_uint32(self, n):
        self.gen.integers(0, 2**32, size=n, dtype=np.uint32)
