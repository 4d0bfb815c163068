"""The GPU kernels' compile cache: the same cache key in every process (cuda.jit(cache=True)).

numba-cuda keys its on-disk cache by the kernel's bytecode, its pickled closure cells and
its signature, in an index file named after the function's qualified name.  Kernels made
as closures over device functions got another key in each process (so a cache never
hit); fastdrop's specialisations are closure-free functions named after their
compile-time constants (`_kernels.specialise`).  No GPU here (and the simulator compiles
nothing), so this checks the key, not a load: tests/cuda/cache_key.py in two processes
must print the same index files and keys, one index file per specialisation, while the
control (a kernel made the old way) must change.  Needs numba-cuda only.
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


def _keys(extra_env=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(extra_env or {})
    proc = subprocess.run([sys.executable, "tests/cuda/cache_key.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cache_keys_are_the_same_in_every_process():
    first, second = _keys(), _keys()
    ours = [k for k in first if k != "control"]
    assert all(first[k]["cached"] for k in ours), first
    for k in ours:
        assert first[k] == second[k], (k, first[k], second[k])
    indexes = [first[k]["index"] for k in ours]
    assert len(set(indexes)) == len(indexes), indexes      # one cache file each
    # the control shows that the comparison can fail: a closure's key changes
    assert first["control"]["cached"]
    assert first["control"]["key"] != second["control"]["key"], first["control"]

