"""benchmarks/gpu_check.py --sim: the hardware script's steps, exercised under the simulator.

The timings are meaningless there; this checks that the script runs, that its
bit-identity cases pass and took the kernel they meant, and that it writes its JSON.
tests/cuda/test_simulator_run.py's child run leaves this file out (it runs once).
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("numba") is None
                                or importlib.util.find_spec("numba.cuda") is None,
                                reason="numba-cuda is not installed")


def test_gpu_check_runs_under_the_simulator(tmp_path):
    out = tmp_path / "check.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OUT", None)
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--sim", "--json",
                           str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    assert "gpu_check: PASS" in text and "SIMULATOR: not a measurement" in text, text
    data = json.loads(out.read_text())
    assert data["info"]["simulator"] is True
    assert data["pass"] is True and data["info"]["versions"]["numba"]
    assert data["sections_done"][0] == "warm-up" and data["sections_done"][-1] == "probe"
    # saved after each bandwidth size too (2 dtypes x 2 sizes under --sim)
    assert data["sections_done"].count("bandwidth row") == 4
    ident = data["identity"]
    # per dtype 27 cases, 20 of them fast (bits=8 takes the fast path from 16 elements;
    # float64 from 8, half a Philox block per unit: 3 more), and for float32 and bfloat16
    # (only, under --sim) the general kernels' 12 cases, 2 of them fast (dbias's dx)
    assert len(ident) == 4 * 27 + 2 * 12 and all(r["ok"] for r in ident), ident
    assert sum(r["fast"] for r in ident) == 4 * 20 + 3 + 2 * 2, [r["case"] for r in ident
                                                                 if r["fast"]]
    ops = {(r["dtype"], r["log2n"], r["op"]) for r in data["bandwidth"]}
    assert len(ops) == 16 and all(r["ms"] > 0 for r in data["bandwidth"])


def test_identity_only_runs_the_checks_alone(tmp_path):
    out = tmp_path / "ident.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OUT", None)
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--sim",
                           "--identity-only", "--json", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "gpu_check --identity-only: PASS" in text, text[-4000:]
    data = json.loads(out.read_text())
    assert data["pass"] is True and data["bandwidth"] == [] and data["probe"] is None
    assert data["sections_done"] == ["warm-up", "identity", "done"]
    assert len(data["identity"]) == 4 * 27 + 2 * 12 and all(r["ok"] for r in data["identity"])
