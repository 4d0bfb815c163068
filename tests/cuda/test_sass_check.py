"""The static SASS check of the fast path (tests/cuda/sass_check.py), when the toolkit is here.

Needs numba-cuda with libNVVM, ptxas and nvdisasm, but no GPU (the check strips
NUMBA_ENABLE_CUDASIM in its own process); skips when any is missing.  By default three
specialisations (two forward, one masked backward), five float32 general kernels (the
packed-mask backward, the noise shape, ``block=``, bias-dropout-add with a bias, without
and with ``block=``: each at most 32 registers, no local memory, no call) and the control kernel (``--quick``, about 20 s
on 2 cores); ``FASTDROP_SASS_CHECK=1`` checks every specialisation and the general kernels
(about a minute and a half).  tests/cuda/test_simulator_run.py's child
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
    general = [ln for ln in out.splitlines() if ln.startswith("general/")]
    assert len(general) == int(summary.group(2)), out
    assert all(ln.endswith(" ok") and " regs," in ln for ln in general), out
    if not full:
        for path in ("noise shape", "fwd(block=)", "bias-dropout-add(bias)",
                     "bias-dropout-add(bias, block=)"):
            assert any(path in ln for ln in general), (path, out)


def test_general_checks_flag_registers_and_calls():
    """The general kernels' bound is not vacuous: the 64-bit-index block map (n >= 2^32,
    over 32 registers and calling the 64-bit division routine) must fail it."""
    code = (
        "import sys; sys.path.insert(0, 'tests/cuda'); import sass_check as S\n"
        "t, d = S.find_tool('ptxas'), S.find_tool('nvdisasm')\n"
        "from numba.cuda.cudadrv import nvvm\n"
        "if t is None or d is None or not nvvm.is_available(): print('SKIP'); sys.exit()\n"
        "tc = S.Toolchain(t, d)\n"
        "from numba import types; from fastdrop._cuda import _kernels as K\n"
        "A = lambda dt: types.Array(dt, 1, 'C')\n"
        "u8, u64, i64, b1, f = (types.uint8, types.uint64, types.int64, types.boolean,\n"
        "                       types.float32)\n"
        "sig = (A(f),) * 4 + (A(u8), A(b1), A(u8), A(b1)) + (u64,) * 6 + (f,) * 4 + (\n"
        "    b1, b1, A(i64), A(i64), u64, A(i64), A(u64))\n"
        "k = K.dropout_kernel('float32', K.OP_SCALE, K.KS_DRAWS, True, True, False, False)\n"
        "print(S._general_row(tc, 'general/float32/block64', k, sig, True)['problems'])\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_FORCE_CUDA_CC"] = "9.0"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    if proc.returncode == 0 and proc.stdout.strip() == "SKIP":
        pytest.skip("ptxas, nvdisasm or libNVVM not found")
    assert proc.returncode == 0, out[-4000:]
    assert "CALL instructions" in out and "registers > 32" in out, out[-4000:]
