"""What a GPU call allocates: nothing per call where the caller passes the outputs.

Counts the device allocations and host-to-device copies the GPU backend asks Numba for
(`cuda.device_array`, `device_array_like`, `to_device`, `_memory.allocate`) during a
second, identical call: with ``out=`` given (and the mask given, for a backward pass),
the fast path and the general kernels (noise shapes and blocks included: their small
shape arrays are made once and kept, `backend._constant`) allocate nothing, except the
noise-shaped mask a noise-shaped forward draws first (one temporary, through x's
framework).  A returned
mask is the one allocation left (through x's framework: torch.empty / cupy.empty on a
GPU, where the caching allocator serves it), and ``mask_out=`` removes it
(tests/core/test_mask_out.py counts that no allocation is made with both buffers).  Under the simulator this counts the calls; the hardware check
(benchmarks/gpu_check.py) times the calls with preallocated outputs.
"""
import numpy as np
import pytest

from _cuda_util import host, require_cuda, to_dev

cuda, D = require_cuda()

import fastdrop as fd  # noqa: E402
from _helpers import GpuAllocationCount, assert_bits_equal, make_x  # noqa: E402


def _calls(shape, noise, block):
    x = make_x(shape, np.float32, seed=1)
    xd, yd = to_dev(x), to_dev(np.zeros_like(x))
    _, m = fd.dropout(x, 0.5, seed=3, noise_shape=noise, block=block, return_mask=True)
    md = to_dev(m)
    kw = dict(seed=3, noise_shape=noise, block=block)

    def forward():
        D.dropout(xd, 0.5, out=yd, **kw)
        return fd.dropout(x, 0.5, **kw)

    def backward_from_mask():
        D.dropout_backward(xd, 0.5, mask=md, noise_shape=noise, out=yd)
        return fd.dropout_backward(x, 0.5, mask=m, noise_shape=noise)

    return yd, [forward, backward_from_mask]


@pytest.mark.parametrize("shape,noise,block", [((64,), None, None), ((5, 13), None, None),
                                               ((4, 6), (4, 1), None),
                                               ((3, 8), None, ((1, 0), (5, 8)))],
                         ids=["fast", "general", "noise", "block"])
def test_second_call_with_out_allocates_nothing(monkeypatch, shape, noise, block):
    yd, calls = _calls(shape, noise, block)
    for call in calls:
        if block is not None and call.__name__ == "backward_from_mask":
            continue                           # a block's backward takes the seed
        call()                                 # first call: kernels, shape constants
        count = GpuAllocationCount(monkeypatch)
        exp = call()
        monkeypatch.undo()
        # a noise shape's forward draws its mask first: one temporary, through x's
        # framework (Numba's, here)
        expected = (["allocate", "device_array"]
                    if noise is not None and call.__name__ == "forward" else [])
        assert count.calls == expected, (call.__name__, count.calls)
        assert_bits_equal(host(yd), exp)


def test_a_returned_mask_is_the_one_allocation(monkeypatch):
    x = make_x((64,), np.float32, seed=2)
    xd, yd = to_dev(x), to_dev(np.zeros_like(x))
    D.dropout(xd, 0.5, seed=1, out=yd, return_mask=True)
    count = GpuAllocationCount(monkeypatch)
    _, m = D.dropout(xd, 0.5, seed=1, out=yd, return_mask=True)
    monkeypatch.undo()
    assert count.calls == ["allocate", "device_array"], count.calls   # Numba's, here
    np.testing.assert_array_equal(host(m), fd.dropout(x, 0.5, seed=1, return_mask=True)[1])
