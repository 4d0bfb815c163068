"""asv: the baselines, on the same arrays as bench_dropout.

- np.multiply(x, 2.0, out=y): one read and one write per element, the memory-bound limit
  of a dropout pass;
- NumPy's naive dropout, x * (rng.random(x.shape) >= p) / (1 - p);
- torch.nn.functional.dropout, when torch is installed (skipped otherwise: asv's own
  environments leave torch out, `asv run --python=same` measures it where it is installed).
"""
import numpy as np

from .common import DTYPES, P, SEED, SIZES, Timed, array, dtype_of, torch_or_skip


class Multiply(Timed):
    params = (SIZES, DTYPES)
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        dt = dtype_of(dtype)
        self.x = array(n, dt)
        self.y = array(n, dt, 0.0)
        self.two = dt.type(2.0)

    def time_multiply(self, n, dtype):
        np.multiply(self.x, self.two, out=self.y)


class NumpyNaive(Timed):
    params = (SIZES, ["float32", "float64"])
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        self.x = array(n, np.dtype(dtype))
        self.rng = np.random.default_rng(SEED)

    def time_naive_dropout(self, n, dtype):
        self.x * (self.rng.random(self.x.shape) >= P) / (1 - P)

    def peakmem_naive_dropout(self, n, dtype):
        self.x * (self.rng.random(self.x.shape) >= P) / (1 - P)


class TorchDropout(Timed):
    params = (SIZES, DTYPES)
    param_names = ["n", "dtype"]

    def setup(self, n, dtype):
        torch = torch_or_skip()
        self.F = torch.nn.functional
        self.x = torch.full((n,), 1.5, dtype=getattr(torch, dtype))

    def time_torch_dropout(self, n, dtype):
        self.F.dropout(self.x, P, True)

    def peakmem_torch_dropout(self, n, dtype):
        self.F.dropout(self.x, P, True)
