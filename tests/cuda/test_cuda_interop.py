"""Zero-copy interop with CuPy and PyTorch CUDA arrays (real GPU only: the simulator
cannot see other frameworks' device memory).  Skipped when they are not installed."""
import numpy as np
import pytest

from _cuda_util import SIMULATOR, require_cuda

cuda, D = require_cuda()

import fastdrop as fd  # noqa: E402
from _helpers import BFLOAT16, assert_bits_equal, make_x  # noqa: E402

pytestmark = pytest.mark.skipif(SIMULATOR, reason="other frameworks' arrays need a GPU")


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    x = make_x((33, 17), np.float32)
    xt = torch.as_tensor(x, device="cuda")
    y, m = D.dropout(xt, 0.3, seed=5, return_mask=True)
    assert isinstance(y, torch.Tensor) and y.is_cuda and isinstance(m, torch.Tensor)
    cy, cm = fd.dropout(x, 0.3, seed=5, return_mask=True)
    assert_bits_equal(y.cpu().numpy(), cy)
    np.testing.assert_array_equal(m.cpu().numpy(), cm)
    # bfloat16 (PyTorch exports no __cuda_array_interface__ for it: viewed as int16)
    xb = torch.as_tensor(x, device="cuda").to(torch.bfloat16)
    yb = D.dropout(xb, 0.3, seed=5)
    assert yb.dtype == torch.bfloat16
    host = xb.view(torch.int16).cpu().numpy().view(BFLOAT16)
    got = yb.view(torch.int16).cpu().numpy().view(BFLOAT16)
    assert_bits_equal(got, fd.dropout(host, 0.3, seed=5))
    # a side stream: the work runs on the producer's current stream
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        ys = D.dropout(xt, 0.3, seed=5)
    s.synchronize()
    assert_bits_equal(ys.cpu().numpy(), cy)
    # non-contiguous tensor
    assert_bits_equal(D.dropout(xt.t(), 0.3, seed=5).cpu().numpy(),
                      fd.dropout(x.T, 0.3, seed=5))


def test_cupy_arrays():
    cupy = pytest.importorskip("cupy")
    x = make_x((5, 40), np.float16)
    xc = cupy.asarray(x)
    y = D.dropout(xc, 0.5, seed=2, bits=32)
    assert isinstance(y, cupy.ndarray)
    assert_bits_equal(cupy.asnumpy(y), fd.dropout(x, 0.5, seed=2, bits=32))
    assert_bits_equal(cupy.asnumpy(D.dropout(xc[:, ::-3], 0.5, seed=2)),
                      fd.dropout(x[:, ::-3], 0.5, seed=2))
