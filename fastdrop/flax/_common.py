"""What both Flax modules share: the checks and the call of fastdrop.jax.dropout."""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from .. import jax as fj
from .._core.args import check_bits, check_p


_FLOATS = ("float16", "bfloat16", "float32", "float64")


def check_rate(rate: Any) -> float:
    """A drop rate in [0, 1], as fastdrop.dropout's p (ValueError / TypeError naming it);
    a concrete 0-d JAX or NumPy array is its value, as Flax's Dropout takes it."""
    if (getattr(rate, "shape", None) == () and hasattr(rate, "dtype")
            and not isinstance(rate, jax.core.Tracer) and rate.dtype != bool):
        rate = float(rate)
    try:
        return check_p(rate)
    except (TypeError, ValueError) as e:
        raise type(e)(str(e).replace("p must", "rate must").replace("p ", "rate ", 1)) from None


def noise_shape(ndim: int, broadcast_dims: Sequence[int]) -> tuple | None:
    """Flax's broadcast_dims as fastdrop's noise_shape: 1 on those axes, None elsewhere."""
    if isinstance(broadcast_dims, (str, bytes)) or not hasattr(broadcast_dims, "__iter__"):
        raise TypeError(f"broadcast_dims must be a sequence of ints, got "
                        f"{type(broadcast_dims).__name__}")
    dims = set()
    for d in broadcast_dims:
        try:   # ints, NumPy integers (operator.index), not bools
            d = operator.index(d) if not isinstance(d, (bool, np.bool_)) else None
        except TypeError:
            d = None
        if d is None:
            raise TypeError(f"broadcast_dims must be a sequence of ints, got "
                            f"{broadcast_dims!r}")
        if not -ndim <= d < ndim:
            raise ValueError(f"broadcast_dims entry {d} is out of range for an input of "
                             f"{ndim} dimensions")
        dims.add(d % ndim)
    if not dims:
        return None
    return tuple(1 if k in dims else None for k in range(ndim))


def apply(inputs: Any, rate: float, key: Any, broadcast_dims: Sequence[int],
          bits: int) -> jax.Array:
    """fastdrop.jax.dropout of inputs with `key` as the seed (stream 0)."""
    try:
        x = jax.numpy.asarray(inputs)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"inputs must be an array of float16, bfloat16, float32 or "
                        f"float64, got {type(inputs).__name__}") from exc
    if x.dtype.name not in _FLOATS:
        raise TypeError(f"inputs must have dtype float16, bfloat16, float32 or float64, got "
                        f"{x.dtype}")
    return fj.dropout(x, rate, seed=key, stream=0, noise_shape=noise_shape(x.ndim,
                                                                          broadcast_dims),
                      bits=check_bits(bits))
