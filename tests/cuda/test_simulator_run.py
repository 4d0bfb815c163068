"""Runs the GPU test suite (tests/cuda) under Numba's CUDA simulator in a subprocess.

The normal ``python3 -m pytest`` run has no GPU and no NUMBA_ENABLE_CUDASIM, so
tests/cuda skips there; this test turns the simulator on in a child process (the
variable must be set before Numba is imported) and requires that the suite passed and
that tests actually ran.  Skipped when numba-cuda is not installed.

``FASTDROP_PTX_CHECK=1`` also compiles every kernel to PTX for sm_80 without a GPU
(tests/cuda/ptx_check.py: typing on real hardware, no FMA contraction, explicit rounding),
which needs libNVVM and takes about a minute.
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("numba") is None
                       or importlib.util.find_spec("numba.cuda") is None,
                       reason="numba-cuda is not installed"),
    # the child run (and a run on a GPU, where tests/cuda runs on the hardware) must not
    # start this again
    pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"),
                       reason="already under the simulator"),
]


def _run(args, extra_env, timeout):
    env = dict(os.environ, **extra_env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cuda_suite_passes_under_the_simulator():
    proc = _run(["-m", "pytest", "tests/cuda", "-q", "-p", "no:cacheprovider",
                 "--deselect", "tests/cuda/test_simulator_run.py",
                 "--deselect", "tests/cuda/test_sass_check.py",
                 "--deselect", "tests/cuda/test_gpu_check.py",
                 "--deselect", "tests/cuda/test_compile_cache.py"],
                {"NUMBA_ENABLE_CUDASIM": "1"}, timeout=900)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    summary = re.search(r"(\d+) passed", proc.stdout)
    assert summary and int(summary.group(1)) >= 100, tail
    assert "failed" not in proc.stdout.splitlines()[-1], tail


@pytest.mark.skipif(os.environ.get("FASTDROP_PTX_CHECK", "0") in ("", "0"),
                    reason="set FASTDROP_PTX_CHECK=1 (needs libNVVM, about a minute)")
def test_kernels_compile_to_ptx_without_fma():
    proc = _run(["tests/cuda/ptx_check.py"], {}, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    if "SKIP" in out:
        pytest.skip(out.strip().splitlines()[-1])
    assert re.search(r"ptx_check: \d+ kernels compiled .* 0 failures", out), out[-3000:]
