"""asv: fastdrop.torch's Dropout module against torch's nn.Dropout, one training step
(forward + backward of the module, float32, p = 0.1), the goal of issue 15: never slower
than torch's module, and at least 8x faster from 2^20 elements.

track_speedup_vs_torch is torch's step time over fastdrop's, both timed round-robin in
the same process (median of per-round ratios), so a busy machine slows both alike;
ModuleStepTime times fastdrop's step alone, asv's way. Skipped where torch is not installed (asv's own
environments leave it out: `asv run --python=same` measures it where it is installed).
"""
import numpy as np

from .common import Measured, Timed, interleaved, torch_or_skip

# seed=None (torch's generator, the default; its draw through torch), the same with the
# draw through the C++ extension (fastdrop.torch.load_cpp_extension; skipped where it
# cannot be built), or seed=1
SEEDS = ["none", "none-cpp", "int"]
STEP_SIZES = [2**8, 2**12, 2**20]


def _step(torch, module, n):
    x = torch.randn(n, requires_grad=True)
    g = torch.ones(n)

    def step():
        module(x).backward(g)
        x.grad = None
    return step


def _modules(seed):
    torch = torch_or_skip()
    import fastdrop.torch as ft
    from fastdrop import _torch_draw

    try:  # set for each parameter set: one process may run several
        _torch_draw.use(seed == "none-cpp")
    except RuntimeError as exc:
        raise NotImplementedError(str(exc)) from exc  # asv: skipped
    ours = ft.Dropout(0.1, seed=1) if seed == "int" else ft.Dropout(0.1)
    return torch, torch.nn.Dropout(0.1), ours


class ModuleStep(Measured):
    """One training step of the module: torch's time over fastdrop's."""
    params = (SEEDS, STEP_SIZES)
    param_names = ["seed", "n"]
    def setup(self, seed, n):
        torch, theirs, ours = _modules(seed)
        torch.set_num_threads(1)
        a, b = _step(torch, theirs, n), _step(torch, ours, n)
        inner = max(1, min(500, 2**22 // n))  # a batch of steps lasts about 10 ms or more

        def batch(f):
            return lambda: [f() for _ in range(inner)]

        t = interleaved({"torch": batch(a), "fastdrop": batch(b)}, rounds=15, warmup=2)
        self.ratio = float(np.median(t["torch"] / t["fastdrop"]))

    def track_speedup_vs_torch(self, seed, n):
        return self.ratio

    track_speedup_vs_torch.unit = "x (torch's step time / fastdrop's)"



class ModuleStepTime(Timed):
    """fastdrop's module step alone (one thread)."""
    params = (SEEDS, STEP_SIZES)
    param_names = ["seed", "n"]

    def setup(self, seed, n):
        torch, _, ours = _modules(seed)
        torch.set_num_threads(1)
        self.step = _step(torch, ours, n)
        self.step()

    def time_fastdrop_step(self, seed, n):
        self.step()
