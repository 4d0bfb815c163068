"""fastdrop.torch in a child forked while another thread was inside one of its guarded
sections: seed=None's draw on the shared scratch tensor (`_torch_lean`'s busy flag), the
output pool (its busy flag), and the module locks of fastdrop.torch.checkpoint and the
C++ extension's loader (fastdrop._core.forksafe). The thread that held them does not exist
in the child: left held, a lock would hang the child and a flag would send every later
draw or output of it to the slower fallback.

Each case runs in a subprocess; a child that hangs is ended by its own alarm.
"""
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")

SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading
    import numpy as np, torch
    from torch.utils._python_dispatch import TorchDispatchMode
    import fastdrop.torch as ft
    from fastdrop import _torch_draw, _torch_replay
    from fastdrop._cpu import _torch_lean as L

    inside, release = threading.Event(), threading.Event()

    class Block(TorchDispatchMode):     # holds the draw inside the scratch's random_
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if "random_" in str(func):
                inside.set()
                release.wait()
            return func(*args, **(kwargs or {}))

    def blocking_empty(n, dt):          # holds the pool inside its allocation
        inside.set()
        release.wait()
        return np.empty(n, dt)

    def draw():
        with Block():                   # (dispatch modes are per thread)
            L.draw_words(torch.Generator().manual_seed(3))

    def pool():
        L.pool_array({}, 64, (16,), np.float32, 4, 16, 64)

    def locks():
        with _torch_replay._lock, _torch_draw._lock:
            inside.set()
            release.wait()

    case = sys.argv[1]
    if case == "pool":
        L.bind_pool(empty=blocking_empty, ndarray=np.ndarray, uint8=np.uint8)
    t = threading.Thread(target={"draw": draw, "pool": pool, "locks": locks}[case])
    t.start()
    inside.wait()
    # the control: while the other thread is inside, this one finds it busy
    if case == "draw":
        assert L.draw_words(torch.Generator().manual_seed(1)) is None
    elif case == "pool":
        assert L.pool_array({}, 64, (16,), np.float32, 4, 16, 64) is None
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)                # a hang ends the child, not the test
        if case == "draw":
            ref = torch.Generator().manual_seed(1)
            lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=ref).tolist()
            ok = L.draw_words(torch.Generator().manual_seed(1)) == lo | (hi << 32)
        elif case == "pool":
            L.bind_pool(empty=np.empty, ndarray=np.ndarray, uint8=np.uint8)
            a = L.pool_array({}, 64, (16,), np.float32, 4, 16, 64)
            ok = a is not None and a.shape == (16,)
        else:
            x = torch.ones(64, requires_grad=True)
            layer = ft.Dropout(0.5, seed=2)
            y = ft.checkpoint(layer, x, use_reentrant=False)   # takes _torch_replay._lock
            y.sum().backward()
            ok = (torch.equal(x.grad, ft.Dropout(0.5, seed=2)(torch.ones(64)))
                  and _torch_draw._lock.acquire(timeout=5))
        os._exit(0 if ok else 3)
    release.set()
    t.join()
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
""")


@pytest.mark.parametrize("case", ["draw", "pool", "locks"])
def test_a_child_forked_while_another_thread_is_inside(case, tmp_path):
    path = tmp_path / "child.py"
    path.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(path), case], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, (proc.returncode, proc.stdout + proc.stderr)
