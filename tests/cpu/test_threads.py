"""The thread policy of the CPU backend: caps (affinity, cgroup quota), a context's
default (one thread per chunk inside fastdrop.dask), and results that never depend on
the count.  The fork and huge-count cases are in tests/core/test_reliability.py."""
import numpy as np
import pytest

import fastdrop as fd
from fastdrop._core.threads import current_default, default_threads
from fastdrop._cpu import backend


@pytest.mark.parametrize("files,expected", [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "150000 100000\n"}, 2),
    ({"cpu.max": "50000 100000\n"}, 1),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "250000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
    ({}, None),
])
def test_cgroup_quota_is_read(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert backend.cgroup_cpus(str(tmp_path)) == expected


@pytest.fixture
def seen_threads(monkeypatch):
    """The thread count the CPU backend's policy gives each call (of more than one chunk:
    a single chunk always runs on one thread), on the general path and the fast one."""
    seen, policy = [], backend._threads

    def spy(n):
        seen.append(policy(n))
        return seen[-1]

    monkeypatch.setattr(backend, "_threads", spy)
    return seen


def test_a_context_default_applies_to_n_threads_none_only(seen_threads):
    x = np.ones(1 << 19, np.float32)  # past two grains: the policy is asked
    expected = fd.dropout(x, 0.5, seed=1)
    assert current_default() is None
    with default_threads(1):
        assert current_default() == 1
        np.testing.assert_array_equal(fd.dropout(x, 0.5, seed=1), expected)
        with default_threads(None):  # nested: the usual default again
            fd.dropout(x, 0.5, seed=1)
        fd.dropout(x, 0.5, seed=1, n_threads=2)  # an explicit count wins
    assert current_default() is None
    cap = backend.thread_policy()["cpus"]
    assert seen_threads[1] == 1 and seen_threads[3] == min(2, cap)
    with pytest.raises(ValueError, match="n_threads"):
        with default_threads(0):
            pass


def test_dask_chunks_run_on_one_thread_each(seen_threads):
    da = pytest.importorskip("dask.array")
    fdd = pytest.importorskip("fastdrop.dask")
    x = da.ones((4, 1 << 18), chunks=(1, 1 << 18), dtype=np.float32)
    graph = fdd.dropout(x, 0.5, seed=3)  # (its argument check runs a probe here)
    seen_threads.clear()
    y = graph.compute(scheduler="threads")
    assert seen_threads and set(seen_threads) == {1}
    np.testing.assert_array_equal(y, fd.dropout(np.ones((4, 1 << 18), np.float32), 0.5, seed=3))


def _display_env(env_changes: dict) -> tuple[str, str]:
    """(fastdrop's wait_policy, libgomp's GOMP_SPINCOUNT: 0 for PASSIVE, 300000 for its
    default, 3e10 for ACTIVE) in a fresh process."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "FASTDROP_WAIT_POLICY")}
    env.update(env_changes)
    code = ("import ctypes, os, fastdrop\n"
            "from fastdrop._cpu import backend\n"
            "assert os.environ.get('OMP_WAIT_POLICY') == " + repr(env.get("OMP_WAIT_POLICY"))
            + "\nprint(backend.thread_policy()['wait_policy'], flush=True)\n"
            "ctypes.CDLL('libgomp.so.1').omp_display_env(1)\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    line = [ln for ln in res.stderr.splitlines() if "GOMP_SPINCOUNT" in ln]
    return res.stdout.strip(), line[0].split("=")[1].strip().strip("'") if line else ""


@pytest.mark.skipif(not fd.openmp_enabled(), reason="built without OpenMP")
def test_idle_threads_sleep_unless_the_user_chose_a_wait_policy():
    pytest.importorskip("ctypes")
    try:
        import ctypes
        ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("not linked with GNU libgomp")
    # by default PASSIVE reaches libgomp, and the environment is left as it was
    assert _display_env({}) == ("passive", "0")
    assert _display_env({"OMP_WAIT_POLICY": "ACTIVE"}) == ("user", "30000000000")
    assert _display_env({"FASTDROP_WAIT_POLICY": "default"}) == ("default", "300000")
