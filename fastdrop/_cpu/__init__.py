"""fastdrop's CPU backend: Cython kernels over C headers (``src/``), OpenMP threads and
run-time SIMD dispatch.

`backend` runs the validated requests of `fastdrop._core` on NumPy arrays; ``_philox``
(Philox4x32-10 and per-element draws), ``_dropout`` (the dropout driver) and
``_openmp_helpers`` are the compiled kernels.
"""
