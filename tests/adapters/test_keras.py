"""fastdrop.keras on every installed Keras backend, each in its own Python process.

Keras fixes its backend when it is first imported (``KERAS_BACKEND``), so the cases live
in `keras_layer_cases.py` and run here in one child ``python -m pytest`` per backend (jax,
torch, numpy, and tensorflow where it is installed: CI does not install it, so that one
is an optional test that skips), next to a child running
``examples/keras_rate_sweep.py --quick``. The children start together, when the first test
of this file asks for them, and each test waits for its own and checks it. Skipped
without keras.
"""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

# find_spec, not importorskip: importing Keras here would fix this process's backend
# (and fail without KERAS_BACKEND when tensorflow, Keras's default, is not installed)
if importlib.util.find_spec("keras") is None:
    pytest.skip("keras is not installed", allow_module_level=True)

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES = HERE / "keras_layer_cases.py"
# backend -> the module it needs
BACKENDS = {"jax": "jax", "torch": "torch", "numpy": "numpy", "tensorflow": "tensorflow"}
# the fewest cases each backend must pass (numpy skips training, jit and gradients)
MIN_PASSED = {"jax": 180, "torch": 170, "numpy": 150, "tensorflow": 190}
TIMEOUT_S = 300


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class _Child:
    """A child process with KERAS_BACKEND set and fastdrop's tree on its path; its output
    goes to a log file."""

    def __init__(self, name: str, backend: str, args: list, tmp: pathlib.Path):
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        env.pop("PYTEST_ADDOPTS", None)
        self.log = tmp / f"{name}.log"
        self._out = open(self.log, "w")
        self.start = time.monotonic()
        self.proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, env=env,
                                     stdout=self._out, stderr=subprocess.STDOUT)

    def result(self) -> tuple[int | None, str]:
        """(exit status, or None after TIMEOUT_S; the output)."""
        try:
            rc = self.proc.wait(timeout=max(1.0, TIMEOUT_S - (time.monotonic() - self.start)))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._out.close()
        return rc, self.log.read_text()


SWEEP = ROOT / "examples" / "keras_rate_sweep.py"
# torch: no compilation per model (the quick sweep trains three), so the fastest here
SWEEP_BACKEND = "torch" if _installed("torch") else "jax"


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """All the children of this file, started at once: one per installed backend, and the
    rate sweep's quick mode."""
    tmp = tmp_path_factory.mktemp("keras")
    started = {b: _Child(b, b, ["-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider",
                                "-W", "ignore::DeprecationWarning", f"--basetemp={tmp / b}"],
                         tmp)
               for b in BACKENDS if _installed(BACKENDS[b])}
    if all(map(_installed, (SWEEP_BACKEND, "sklearn", "matplotlib"))):
        started["sweep"] = _Child("sweep", SWEEP_BACKEND,
                                  [str(SWEEP), "--quick", "--out", str(tmp / "sweep.png")], tmp)
        started["sweep"].plot = tmp / "sweep.png"
    yield started
    for child in started.values():
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_keras_layers_on_backend(children, backend):
    if backend not in children:
        pytest.skip(f"{BACKENDS[backend]} is not installed")
    rc, log = children[backend].result()
    tail = log[-6000:]
    assert rc is not None, f"KERAS_BACKEND={backend}: no result in {TIMEOUT_S} s\n{tail}"
    # installed but not importable (find_spec found it): the cases skip themselves
    skipped = re.search(r"^SKIPPED \[1\] .*(could not import 'tensorflow'.*)$", log, re.M)
    if backend == "tensorflow" and rc == 5 and skipped:
        pytest.skip(skipped.group(1)[:300])
    assert rc == 0, f"KERAS_BACKEND={backend}: the cases failed (rc={rc})\n{tail}"
    summary = re.findall(r"(\d+) passed", log)
    assert summary and int(summary[-1]) >= MIN_PASSED[backend], tail


def test_cases_file_is_not_collected_by_the_suite():
    """It runs only here, under a chosen backend: pytest's default file pattern skips it."""
    assert CASES.is_file()
    assert not CASES.name.startswith("test_") and not CASES.name.endswith("_test.py")


def test_rate_sweep_quick_mode(children):
    """examples/keras_rate_sweep.py --quick: its table has the quick rates, accuracies
    and losses that make sense (rate 0.9 trains worst in 3 epochs), and the plot."""
    if "sweep" not in children:
        pytest.skip("the sweep needs torch or jax, scikit-learn and matplotlib")
    rc, log = children["sweep"].result()
    assert rc == 0, log[-6000:]
    rows = re.findall(r"^\| (\d\.\d) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", log, re.M)
    table = {float(r[0]): [float(v) for v in r[1:]] for r in rows}
    assert sorted(table) == [0.0, 0.5, 0.9], log[-3000:]
    for train_acc, val_acc, val_loss in table.values():
        assert 0.0 <= train_acc <= 1.0 and 0.0 <= val_acc <= 1.0 and val_loss > 0
    assert table[0.0][1] > 0.8, log[-3000:]                   # 3 epochs learn the digits
    assert table[0.9][1] < table[0.0][1] and table[0.9][2] > table[0.0][2]
    png = children["sweep"].plot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
