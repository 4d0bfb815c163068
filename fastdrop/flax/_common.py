"""What both Flax modules share: the checks and the call of fastdrop.jax.dropout."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from .. import jax as fj
from .._core.args import check_bits, check_p


def check_rate(rate: Any) -> float:
    """A drop rate in [0, 1], as fastdrop.dropout's p (ValueError / TypeError naming it)."""
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
        if isinstance(d, bool) or not isinstance(d, int):
            raise TypeError(f"broadcast_dims must be a sequence of ints, got {d!r}")
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
    x = jax.numpy.asarray(inputs)
    return fj.dropout(x, rate, seed=key, stream=0, noise_shape=noise_shape(x.ndim,
                                                                          broadcast_dims),
                      bits=check_bits(bits))
