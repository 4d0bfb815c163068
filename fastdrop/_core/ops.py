"""The kernel ops and keep sources: one set of numbers for every backend.

The CPU kernels (``fastdrop/_cpu/_dropout.pyx``, which checks its C enum against these at
import) and the GPU kernels (``fastdrop._cuda._kernels``) both take them.
"""
from __future__ import annotations

from enum import IntEnum

__all__ = ["Op", "Keep"]


class Op(IntEnum):
    """What a kernel computes per element (docs/contract.md sections 4-7)."""

    DROPOUT = 0  #: ``y = x * scale`` where kept, else +0
    BDA = 1      #: ``y = r + ((x + b) * scale where kept, else +0)``
    ALPHA = 2    #: ``y = x * a + c`` where kept, else d
    MASK = 3     #: no y: only the mask outputs
    GAUSS = 4    #: ``y = x * g``, ``g = 1 + scale * z`` (z: the normal deviate of word i)
    NORMAL = 5   #: ``y = z`` rounded to y's dtype (no x)


class Keep(IntEnum):
    """Where an element's keep flag comes from."""

    DRAWS = 0    #: the Philox draw of the element's index, compared with the threshold
    PACKED = 1   #: a packed mask: bit i of the bytes keeps logical element i
    FLAGS = 2    #: a bool mask operand (broadcast over x's shape for noise_shape)
    ALL = 3      #: every element kept (classic dropout at inference: ``y = x * scale``)
