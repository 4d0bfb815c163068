"""tests/cuda: the GPU backend against the CPU kernels and fastdrop.reference, bit for bit.

They run unchanged on a real GPU or under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1 python3 -m pytest tests/cuda``), and skip cleanly (module
level, see _cuda_util.require_cuda) when numba-cuda is missing or there is neither a GPU
nor the simulator.  Nothing here imports numba unless it is installed.
"""
import os
import warnings

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def pytest_configure(config):
    # the simulator runs kernels with NumPy scalars, which warn where the hardware
    # silently overflows to Inf or makes a NaN (the contract's arithmetic is the same)
    config.addinivalue_line("filterwarnings", "ignore::RuntimeWarning")
    config.addinivalue_line("markers", "hardware: needs a real GPU (skipped under the simulator)")


@pytest.fixture
def geometry():
    """Set a launch geometry for one test (restored afterwards)."""
    from fastdrop._cuda import _kernels
    prev = _kernels._geometry[0]
    yield _kernels.set_launch_geometry
    _kernels._geometry[0] = prev


warnings.filterwarnings("ignore", category=RuntimeWarning)
