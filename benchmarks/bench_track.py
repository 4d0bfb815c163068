"""asv track_*: achieved GB/s and the time ratio to np.multiply(x, 2.0, out=y) on the same
float32 array, measured side by side (interleaved rounds, median of per-round ratios), so
the dashboard plots each kernel's distance to the memory-bound limit (ratio 1.0).

GB/s counts the bytes the operation must move: x read and y written (2 x 4 n), plus the
packed mask (n / 8) where one is written or read, the residual for bias_dropout_add, and
only the output for the generators. NumPy's naive dropout and torch are counted as the
same logical pass as fastdrop's forward, whatever temporaries they make.
"""
import numpy as np

import fastdrop

from .common import P, SEED, Measured, array, interleaved, need, torch_or_skip

KERNELS = ["forward", "forward_mask", "backward_mask", "backward_seed", "dropout_mask",
           "random_bits", "bias_dropout_add", "alpha_dropout", "gaussian_dropout",
           "numpy_naive", "torch_dropout"]


def contender(kernel, n, x, y):
    """(callable, bytes moved) for one kernel on the float32 arrays x, y of n elements."""
    s = 4 * n
    if kernel == "forward":
        f = need(fastdrop, "dropout")
        return (lambda: f(x, P, seed=SEED, out=y)), 2 * s
    if kernel == "forward_mask":
        f = need(fastdrop, "dropout")
        return (lambda: f(x, P, seed=SEED, return_mask=True, out=y)), 2 * s + n // 8
    if kernel in ("backward_mask", "backward_seed"):
        f = need(fastdrop, "dropout_backward")
        if kernel == "backward_seed":
            return (lambda: f(x, P, seed=SEED, out=y)), 2 * s
        _, mask = fastdrop.dropout(x, P, seed=SEED, return_mask=True)
        return (lambda: f(x, P, mask=mask, out=y)), 2 * s + n // 8
    if kernel == "dropout_mask":
        f = need(fastdrop, "dropout_mask")
        return (lambda: f((n,), P, seed=SEED)), n // 8
    if kernel == "random_bits":
        f = need(fastdrop, "random_bits")
        out = np.zeros(n, np.uint32)
        return (lambda: f(n, seed=SEED, out=out)), s
    if kernel == "bias_dropout_add":
        f = need(fastdrop, "bias_dropout_add")
        x2, y2 = x.reshape(-1, 1024), y.reshape(-1, 1024)
        r = array(n, np.float32, -0.5).reshape(-1, 1024)
        b = array(1024, np.float32, 0.125)
        return (lambda: f(x2, b, r, P, seed=SEED, out=y2)), 3 * s
    if kernel == "alpha_dropout":
        f = need(fastdrop, "alpha_dropout")
        return (lambda: f(x, P, seed=SEED, out=y)), 2 * s
    if kernel == "gaussian_dropout":
        f = need(fastdrop, "gaussian_dropout")
        try:
            f(x[:16], P, seed=SEED)
        except TypeError as e:
            raise NotImplementedError(f"gaussian_dropout signature: {e}") from None
        return (lambda: f(x, P, seed=SEED, out=y)), 2 * s
    if kernel == "numpy_naive":
        rng = np.random.default_rng(SEED)
        return (lambda: x * (rng.random(x.shape) >= P) / (1 - P)), 2 * s
    if kernel == "torch_dropout":
        torch = torch_or_skip()
        tx = torch.from_numpy(x)
        return (lambda: torch.nn.functional.dropout(tx, P, True)), 2 * s
    raise ValueError(kernel)


class Throughput(Measured):
    """One measurement per (kernel, n); track_gbps and track_ratio_to_multiply read it."""
    params = (KERNELS, [2**18, 2**24])
    param_names = ["kernel", "n"]
    def setup(self, kernel, n):
        x = array(n, np.float32)
        y = array(n, np.float32, 0.0)
        f, self.nbytes = contender(kernel, n, x, y)
        reps = 15 if n <= 2**18 else 7
        inner = 50 if n <= 2**18 else 1  # a call of 2^18 lasts ~0.1 ms: time a batch

        def batch(g):
            if inner == 1:
                return g
            return lambda: [g() for _ in range(inner)]

        t = interleaved({"k": batch(f), "m": batch(lambda: np.multiply(x, 2.0, out=y))}, reps)
        self.seconds = float(np.median(t["k"])) / inner
        self.ratio = float(np.median(t["k"] / t["m"]))

    def track_gbps(self, kernel, n):
        return self.nbytes / self.seconds / 1e9

    track_gbps.unit = "GB/s"

    def track_ratio_to_multiply(self, kernel, n):
        return self.ratio

    track_ratio_to_multiply.unit = "x np.multiply time"
