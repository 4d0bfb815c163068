"""fastdrop._cuda._memory.torch_stream: launches follow PyTorch's current stream.

A torch tensor's __cuda_array_interface__ names no stream; the GPU backend asks torch for
its current stream on the tensor's device.  Here with a stand-in for torch (the real one
is checked on hardware by benchmarks/gpu_check.py's side-stream probe).
"""
from _cuda_util import SIMULATOR, require_cuda

cuda, _ = require_cuda()

from fastdrop._cuda import _memory as M  # noqa: E402


class FakeTorch:
    """torch.cuda.current_stream(device).cuda_stream, recording the devices asked for."""

    def __init__(self, handle):
        self.asked = []
        outer = self

        class _Cuda:
            @staticmethod
            def current_stream(device):
                outer.asked.append(device)
                return type("S", (), {"cuda_stream": handle})()

        self.cuda = _Cuda


def test_default_stream_is_numba_default():
    fake = FakeTorch(0)
    assert M.torch_stream("cuda:1", fake) == 0
    assert fake.asked == ["cuda:1"]


def test_side_stream_is_wrapped_once():
    fake = FakeTorch(0x1234)
    first = M.torch_stream("cuda:0", fake)
    if SIMULATOR:  # the simulator has no external streams: the default stream
        assert first == 0
    else:
        assert first != 0 and M.torch_stream("cuda:0", fake) is first   # cached
    assert fake.asked == ["cuda:0"] * (1 if SIMULATOR else 2)
