"""fastdrop: fast, reproducible dropout kernels.

The random generator (Philox4x32-10, counter-based) and the stream layout are written in
docs/contract.md; every backend gives bit-identical draws for the same (seed, stream).
"""
from ._cpu._openmp_helpers import omp_max_threads, openmp_enabled
from ._cpu._philox import get_simd_level, simd_levels
from .functional import (alpha_dropout, alpha_dropout_backward, bias_dropout_add,
                      bias_dropout_add_backward, dropout, dropout_backward, dropout_mask,
                      dropout_scale, effective_p, gaussian_dropout, gaussian_dropout_backward,
                      gaussian_sigma, unpack_mask)
from .generator import Dropout, DropoutCall, Generator
from .rng import philox4x32, random_bits, standard_normal, uniform

__version__ = "0.1.0.dev0"

__all__ = [
    "Generator",
    "DropoutCall",
    "Dropout",
    "dropout",
    "dropout_backward",
    "dropout_mask",
    "unpack_mask",
    "effective_p",
    "dropout_scale",
    "bias_dropout_add",
    "bias_dropout_add_backward",
    "alpha_dropout",
    "alpha_dropout_backward",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_sigma",
    "standard_normal",
    "philox4x32",
    "random_bits",
    "uniform",
    "openmp_enabled",
    "omp_max_threads",
    "get_simd_level",
    "simd_levels",
    "__version__",
]
