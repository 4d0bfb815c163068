"""fastdrop._core.forksafe: a lock that another thread held when the process forked is
free in the child (it would otherwise stay locked forever: the thread that held it does
not exist there), so a child's Generator calls never hang.

Each case runs in a subprocess (the fork happens there, away from pytest's threads); a
child that hangs is ended by its own alarm and the case fails.
"""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")

# another thread holds the lock while this one forks; the child must take it at once
HELD_AT_FORK = textwrap.dedent("""
    import os, signal, sys, threading
    import fastdrop
    from fastdrop._core.forksafe import new_lock
    gen = fastdrop.Generator(5, stream=7)
    lock = new_lock()
    plain = threading.Lock()
    held, release = threading.Event(), threading.Event()
    def hold():
        with gen._lock, lock, plain:   # as take() and set_state() hold theirs
            held.set()
            release.wait()
    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)               # a hang ends the child, not the test
        ok = (gen.take() == (5, 7) and gen.get_state() == {"seed": 5, "stream": 8}
              and lock.acquire(timeout=5)
              and not plain.acquire(timeout=0.1))   # the control: a plain lock stays held
        os._exit(0 if ok else 3)
    release.set()
    t.join()
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
""")


def run(script: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "child.py"
    path.write_text(script)
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=120)


def test_a_lock_held_by_another_thread_at_fork_is_free_in_the_child(tmp_path):
    proc = run(HELD_AT_FORK, tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stdout + proc.stderr)


def test_new_lock_is_a_plain_lock():
    from fastdrop._core.forksafe import new_lock
    lock = new_lock()
    assert lock.acquire(blocking=False) and not lock.acquire(blocking=False)
    lock.release()
    assert not lock.locked()
