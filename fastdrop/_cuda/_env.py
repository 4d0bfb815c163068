"""Numba CUDA import, with a clear error naming the extra when it is missing."""
from __future__ import annotations

from . import INSTALL_HINT

try:
    import numba
    from numba import cuda
except ImportError as exc:  # pragma: no cover - exercised only without numba
    raise ImportError(f"{INSTALL_HINT} ({exc})") from exc

try:  # numba-cuda keeps its own copy of the config
    from numba.cuda.core import config as _config
    SIMULATOR = bool(_config.ENABLE_CUDASIM)
except ImportError:  # pragma: no cover - older numba with the built-in CUDA target
    SIMULATOR = bool(numba.config.ENABLE_CUDASIM)

__all__ = ["cuda", "numba", "SIMULATOR", "INSTALL_HINT"]
