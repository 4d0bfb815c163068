import os

import pytest
from hypothesis import HealthCheck, settings

import fastdrop
from fastdrop._cpu import _philox

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=_philox.simd_levels())
def simd_level(request):
    """Run a test once per Philox tile kernel this machine can run (portable, avx2)."""
    previous = _philox.set_simd_level(request.param)
    try:
        yield request.param
    finally:
        _philox.set_simd_level(previous)


def pytest_report_header(config):
    return (f"fastdrop {fastdrop.__version__}: openmp={fastdrop.openmp_enabled()} "
            f"max_threads={fastdrop.omp_max_threads()} simd={fastdrop.simd_levels()}")
