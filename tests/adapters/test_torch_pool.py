"""The recycled large outputs of the torch adapter's lean path (_torch_ops._fresh_like)."""
import os
import subprocess
import sys
import threading

import pytest

torch = pytest.importorskip("torch")
import fastdrop.torch as ft  # noqa: E402
from fastdrop import _torch_ops as ops  # noqa: E402

N = 1 << 17  # above the NumPy-allocated sizes (_NUMPY_ALLOC)


@pytest.fixture
def small_pool(monkeypatch):
    # recycle from 16 KiB instead of 256 KiB, so that the packed masks of these small
    # tensors (N / 8 bytes) are recycled too
    monkeypatch.setattr(ops, "_RECYCLE_BYTES", 1 << 14)
    monkeypatch.setattr(ops, "_RECYCLE", True)
    ops.clear_pool()
    yield
    ops.clear_pool()


def _ref(x, p, seed, stream, grad=None):
    """fastdrop.torch.dropout's result (and dx for grad) outside the pool."""
    ops._RECYCLE = False
    try:
        y = ft.dropout(x, p, seed=seed, stream=stream)
        if grad is None:
            return y.detach()
        return torch.autograd.grad(y, x, grad)[0]
    finally:
        ops._RECYCLE = True


def _pooled():
    """The addresses the pool hands out: each buffer's first 64-byte boundary."""
    return {a.ctypes.data + (-a.ctypes.data) % 64 for bufs in ops._POOL.values() for a in bufs}


def test_a_buffer_is_reused_only_once_free(small_pool):
    x = torch.randn(N, requires_grad=True)
    g = torch.randn(N)
    m = ft.Dropout(0.3, seed=2)
    y1 = m(x)
    y2 = m(x)  # y1 still alive: another buffer
    assert y1.data_ptr() in _pooled() and y2.data_ptr() in _pooled()
    assert y1.data_ptr() % 64 == 0 and y2.data_ptr() % 64 == 0  # whole cache lines
    assert y1.data_ptr() != y2.data_ptr()
    r1, r2 = _ref(x, 0.3, 2, 0), _ref(x, 0.3, 2, 1)
    assert torch.equal(y1.detach(), r1) and torch.equal(y2.detach(), r2)
    p1 = y1.data_ptr()
    y2.backward(g)
    assert x.grad.data_ptr() in _pooled() and x.grad.data_ptr() not in (p1, y2.data_ptr())
    assert torch.equal(x.grad, _ref(x, 0.3, 2, 1, g))
    del y1
    y3 = m(x)  # y1's buffer is free again
    assert y3.data_ptr() == p1
    assert torch.equal(y3.detach(), _ref(x, 0.3, 2, 2))
    assert torch.equal(y2.detach(), r2)  # untouched by the reuse


def test_packed_masks_are_recycled_once_their_graph_is_gone(small_pool):
    x = torch.randn(N, requires_grad=True)
    g = torch.randn(N)
    m = ft.Dropout(0.3, seed=4, keep="mask")
    y1 = m(x)
    m1 = y1.grad_fn.fd[4]  # the packed mask the backward reads
    assert m1.numel() == N // 8 and m1.data_ptr() in _pooled()
    y2 = m(x)  # y1's graph still holds its mask: another buffer
    assert y2.grad_fn.fd[4].data_ptr() not in (m1.data_ptr(), y1.data_ptr())
    y1.backward(g)
    assert torch.equal(x.grad, _ref(x, 0.3, 4, 0, g))
    x.grad = None
    p1 = m1.data_ptr()
    del y1, m1
    y3 = m(x)  # the first mask's buffer is free again
    assert y3.grad_fn.fd[4].data_ptr() == p1
    y3.backward(g)
    assert torch.equal(x.grad, _ref(x, 0.3, 4, 2, g))
    x.grad = None
    y2.backward(g)  # its mask untouched by the reuse
    assert torch.equal(x.grad, _ref(x, 0.3, 4, 1, g))


def test_views_keep_their_buffer(small_pool):
    x = torch.randn(N, requires_grad=True)
    m = ft.Dropout(0.5, seed=1)
    y = m(x)
    part = y.detach()[10:20]  # a view outlives y
    kept = part.clone()
    p = y.data_ptr()
    del y
    z = m(x)
    assert z.data_ptr() != p
    assert torch.equal(part, kept)


def test_the_pool_is_bounded(small_pool):
    x = torch.randn(N)
    m = ft.Dropout(0.5, seed=1)
    with torch.no_grad():
        live = [m(x) for _ in range(ops._POOL_PER_SIZE + 3)]
    assert sum(map(len, ops._POOL.values())) == ops._POOL_PER_SIZE
    for i, y in enumerate(live):  # past the bound: ordinary tensors, the same bits
        assert torch.equal(y, _ref(x, 0.5, 1, i))
    assert len({y.data_ptr() for y in live}) == len(live)


def test_free_buffers_of_old_sizes_give_way_to_new_sizes(small_pool):
    m = ft.Dropout(0.5, seed=3)
    sizes = [N + 1024 * k for k in range(3)]  # three sizes, each of _POOL_PER_SIZE buffers
    with torch.no_grad():
        for k, n in enumerate(sizes[:2]):
            live = [m(torch.ones(n)) for _ in range(ops._POOL_PER_SIZE)]
            assert len(ops._POOL[n * 4]) == ops._POOL_PER_SIZE
            if k == 0:
                held = live[0]  # one buffer of the first size stays in use
        assert sum(map(len, ops._POOL.values())) == ops._POOL_MAX
        del live
        ys = [m(torch.ones(sizes[2])) for _ in range(ops._POOL_PER_SIZE)]
    pooled = _pooled()
    assert all(y.data_ptr() in pooled for y in ys)  # room made for the new size
    assert held.data_ptr() in pooled  # a buffer in use is never let go
    assert sum(map(len, ops._POOL.values())) == ops._POOL_MAX
    # the least recently used size gave way first: of the first size only `held` is left
    assert len(ops._POOL[sizes[0] * 4]) == 1 and len(ops._POOL[sizes[1] * 4]) == 3
    stream = ops._POOL_PER_SIZE * 2
    for i, y in enumerate(ys):
        assert torch.equal(y, _ref(torch.ones(sizes[2]), 0.5, 3, stream + i))


def test_threads_never_share_a_buffer(small_pool):
    x = torch.randn(N)
    ms = [ft.Dropout(0.5, seed=k) for k in range(4)]
    out, errors = {}, []

    def work(k):
        try:
            with torch.no_grad():
                out[k] = [ms[k](x) for _ in range(20)]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for k, ys in out.items():
        for i, y in enumerate(ys):
            assert torch.equal(y, _ref(x, 0.5, k, i))


def test_recycling_can_be_turned_off():
    code = ("import torch, fastdrop.torch as ft\n"
            "from fastdrop import _torch_ops as ops\n"
            "ops._RECYCLE_BYTES = 1 << 14\n"
            "y = ft.Dropout(0.5, seed=1)(torch.randn(1 << 17, requires_grad=True))\n"
            "print(len(ops._POOL), ops._RECYCLE)\n")
    env = dict(os.environ, FASTDROP_TORCH_RECYCLE="0")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.stdout.split() == ["0", "False"], res.stderr
