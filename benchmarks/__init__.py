"""fastdrop's asv suite (asv.conf.json at the top level; README "Benchmarks").

The modules here run against every commit of the history, so they call only the public
API, guard what a commit may lack (hasattr, NotImplementedError in setup: asv then
records the benchmark as skipped) and import nothing from fastdrop's own benchmark
helpers.
"""
import os

# NumPy's OpenBLAS threads play no part here and only spin beside the kernels.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
