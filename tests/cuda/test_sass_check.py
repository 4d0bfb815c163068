"""The static SASS check of the fast path (tests/cuda/sass_check.py), when the toolkit is here.

Needs numba-cuda with libNVVM, ptxas and nvdisasm, but no GPU (the check strips
NUMBA_ENABLE_CUDASIM in its own process); skips when any is missing.  By default three
specialisations (two forward, one masked backward) and the control kernel (``--quick``,
about 20 s on 2 cores); ``FASTDROP_SASS_CHECK=1`` checks every specialisation and the
general kernels (about a minute and a half).  tests/cuda/test_simulator_run.py's child
run leaves this file out, so it runs once per suite.
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("numba") is None
                                or importlib.util.find_spec("numba.cuda") is None,
                                reason="numba-cuda is not installed")


def test_fast_kernels_pass_the_static_sass_check():
    full = os.environ.get("FASTDROP_SASS_CHECK", "0") not in ("", "0")
    args = [sys.executable, "tests/cuda/sass_check.py"] + ([] if full else ["--quick"])
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    out = proc.stdout + proc.stderr
    if proc.returncode == 0 and out.strip().startswith("SKIP"):
        pytest.skip(out.strip().splitlines()[-1])
    assert proc.returncode == 0, out[-4000:]
    summary = re.search(r"sass_check: (\d+) fast kernels checked, (\d+) general, 0 failures",
                        out)
    assert summary and int(summary.group(1)) >= 3 and int(summary.group(2)) >= 1, out[-4000:]
    rows = [ln for ln in out.splitlines() if ln.startswith(("fast/", "masked/", "bda/"))]
    assert len(rows) == int(summary.group(1)) and all(ln.endswith(" ok") for ln in rows), out
    assert re.search(r"control .* flagged: .*scalar loads in the loop", out), out
