"""fastdrop._cuda._env, the GPU backend's import of numba-cuda, with no numba needed: a
numba-cuda that fails inside its own import (installed beside a numba it does not
support) is an ImportError that names the install hint and the cause, as a missing one
is, rather than the AttributeError from numba-cuda's internals."""
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])          # the stand-in numba first
    try:
        import fastdrop._cuda._env
    except ImportError as exc:
        print("ImportError:", exc)
    else:
        print("imported")
""")


def _run(tmp_path, init: str) -> str:
    """The check's output with a stand-in numba package running `init` (numba-cuda
    installs ``numba.cuda`` through its own finder, so the stand-in's failure is its own
    import; _env treats both lines of its import alike)."""
    pkg = tmp_path / "numba"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(init)
    proc = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_numba_cuda_that_fails_inside_its_import_is_an_import_error(tmp_path):
    # what numba-cuda 0.28's own import raises under numba 0.68
    out = _run(tmp_path, "raise AttributeError(\"module 'numba.cuda.types' has no "
                         "attribute 'NPDatetime'\")\n")
    # (the versions come from the installed distributions' metadata)
    assert out.startswith("ImportError: fastdrop's GPU backend needs numba-cuda"), out
    assert "failed to import (AttributeError: module 'numba.cuda.types'" in out
    assert "its numba must be a version it supports (numba " in out and "installed)" in out


def test_a_missing_numba_cuda_is_an_import_error_naming_the_extra(tmp_path):
    # a numba without the CUDA target (numba >= 0.61 dropped its built-in one): the
    # stand-in has no `cuda` attribute and sys.modules blocks numba-cuda's finder
    out = _run(tmp_path, "import sys\nsys.modules['numba.cuda'] = None\n")
    assert out.startswith("ImportError: fastdrop's GPU backend needs numba-cuda: pip "
                          "install fastdrop[cuda]"), out
