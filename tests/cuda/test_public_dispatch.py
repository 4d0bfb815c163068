"""The public API routes CUDA arrays and CUDA devices to the GPU backend, and the result
equals the CPU call bit for bit (the same tests run on a GPU or under the simulator)."""
import numpy as np
import pytest

from _cuda_util import host, require_cuda, to_dev

cuda, D = require_cuda()

import fastdrop as fd  # noqa: E402
from fastdrop._cuda import is_cuda_array  # noqa: E402
from _helpers import assert_bits_equal, make_x  # noqa: E402


def test_array_functions_dispatch_on_cuda_arrays():
    x = make_x((6, 9), np.float32, seed=1)
    g = make_x((6, 9), np.float32, seed=2)
    b = make_x((9,), np.float32, seed=3)
    xd, gd, bd = to_dev(x), to_dev(g), to_dev(b)
    cases = [
        (fd.dropout(xd, 0.3, seed=4, stream=1), fd.dropout(x, 0.3, seed=4, stream=1)),
        (fd.dropout_backward(gd, 0.3, seed=4, stream=1),
         fd.dropout_backward(g, 0.3, seed=4, stream=1)),
        (fd.alpha_dropout(xd, 0.3, seed=4), fd.alpha_dropout(x, 0.3, seed=4)),
        (fd.alpha_dropout_backward(gd, 0.3, seed=4), fd.alpha_dropout_backward(g, 0.3, seed=4)),
        (fd.gaussian_dropout(xd, 0.3, seed=4), fd.gaussian_dropout(x, 0.3, seed=4)),
        (fd.gaussian_dropout_backward(gd, 0.3, seed=4),
         fd.gaussian_dropout_backward(g, 0.3, seed=4)),
        (fd.bias_dropout_add(xd, bd, gd, 0.3, seed=4), fd.bias_dropout_add(x, b, g, 0.3, seed=4)),
    ]
    for got, expected in cases:
        assert is_cuda_array(got)
        assert_bits_equal(host(got), expected)
    y, mask = fd.dropout(xd, 0.3, seed=4, return_mask=True)
    ey, emask = fd.dropout(x, 0.3, seed=4, return_mask=True)
    assert_bits_equal(host(y), ey)
    np.testing.assert_array_equal(host(mask), emask)
    assert fd.dropout(xd, 0.3, training=False) is xd


@pytest.mark.parametrize("device", ["cuda", "cuda:0", 0])
def test_rng_functions_take_a_device(device):
    cases = [
        (fd.random_bits(37, seed=5, stream=2, device=device), fd.random_bits(37, seed=5, stream=2)),
        (fd.uniform(37, seed=5, device=device), fd.uniform(37, seed=5)),
        (fd.standard_normal(37, seed=5, device=device), fd.standard_normal(37, seed=5)),
        (fd.dropout_mask(37, 0.4, seed=5, device=device), fd.dropout_mask(37, 0.4, seed=5)),
    ]
    for got, expected in cases:
        assert is_cuda_array(got)
        np.testing.assert_array_equal(host(got), expected)
    assert isinstance(fd.random_bits(5, seed=1, device="cpu"), np.ndarray)


def test_cuda_out_selects_the_gpu():
    out = to_dev(np.zeros(20, np.uint32))
    assert fd.random_bits(20, seed=3, out=out) is out
    np.testing.assert_array_equal(host(out), fd.random_bits(20, seed=3))


def test_block_runs_on_the_gpu():
    """block= reaches the GPU backend (it used to be CPU only): same bits as the CPU."""
    x = make_x((3, 4), np.float32, seed=5)
    blk = ((2, 5), (8, 9))
    y, m = fd.dropout(to_dev(x), 0.5, seed=1, block=blk, return_mask=True)
    assert is_cuda_array(y) and is_cuda_array(m)
    ey, em = fd.dropout(x, 0.5, seed=1, block=blk, return_mask=True)
    assert_bits_equal(host(y), ey)
    np.testing.assert_array_equal(host(m), em)
    got = fd.dropout_mask((3, 4), 0.5, seed=1, block=blk, device="cuda")
    assert is_cuda_array(got)
    np.testing.assert_array_equal(host(got), fd.dropout_mask((3, 4), 0.5, seed=1, block=blk))
    # the generator functions take no block, on either backend
    with pytest.raises(TypeError, match="block"):
        fd.random_bits(4, seed=1, block=((0,), (8,)))
    with pytest.raises(TypeError, match="block"):
        fd.random_bits(4, seed=1, block=((0,), (8,)), device="cuda")
