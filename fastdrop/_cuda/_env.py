"""Numba CUDA import, with a clear error naming the extra when it is missing."""
from __future__ import annotations

from . import INSTALL_HINT

try:
    import numba
    from numba import cuda
except ImportError as exc:  # pragma: no cover - exercised only without numba
    raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
except Exception as exc:
    # numba-cuda installed beside a numba it does not support fails inside its own import
    # (numba-cuda 0.20-0.28 with numba >= 0.66: AttributeError, numba.cuda.types has no
    # NPDatetime): the GPU backend is unavailable, said as an ImportError with the fix
    try:
        from importlib.metadata import version
        have = f"numba {version('numba')} and numba-cuda {version('numba-cuda')}"
    except Exception:   # (metadata missing: say so rather than fail here)
        have = "numba and numba-cuda of unknown versions"
    raise ImportError(f"{INSTALL_HINT}: numba-cuda is installed but failed to import "
                      f"({type(exc).__name__}: {exc}); its numba must be a version it "
                      f"supports ({have} are installed)") from exc

try:  # numba-cuda keeps its own copy of the config
    from numba.cuda.core import config as _config
    SIMULATOR = bool(_config.ENABLE_CUDASIM)
except ImportError:  # pragma: no cover - older numba with the built-in CUDA target
    SIMULATOR = bool(numba.config.ENABLE_CUDASIM)

__all__ = ["cuda", "numba", "SIMULATOR", "INSTALL_HINT"]
