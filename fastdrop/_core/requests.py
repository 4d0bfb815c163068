"""The validated requests that `parse` builds and the backends run.

A request is immutable (a NamedTuple: cheap to build, once per call) and complete: the
backend that runs it checks nothing again.  Its
array fields are the backend's own views of the caller's arrays (``numpy.ndarray`` on the
CPU, ``fastdrop._cuda._memory.Operand`` on the GPU), made by the backend's array policy
(`ArrayPolicy`) while parsing.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Protocol

from .contract import DrawMap
from .ops import Keep, Op

__all__ = ["ArrayPolicy", "DropoutRequest", "BiasBackwardRequest", "DrawsRequest",
           "PhiloxRequest", "UnpackRequest"]


class ArrayPolicy(Protocol):
    """How a backend views and checks the caller's arrays (one per backend)."""

    def float_input(self, obj: Any, name: str) -> Any:
        """A view of a float16/bfloat16/float32/float64 array, else TypeError."""

    def dtype(self, view: Any) -> str:
        """The view's dtype name ("float32", "uint8", "bool", ...)."""

    def shape(self, view: Any) -> tuple:
        """The view's shape."""

    def mask_input(self, obj: Any) -> Any:
        """A view of a mask argument (its dtype and shape are checked by `parse`)."""

    def out(self, obj: Any, shape: tuple, dtype: str, inputs: dict,
            may_alias: tuple = ()) -> Any:
        """A writeable output of this shape and dtype, overlapping no input but exactly
        (same data, same strides) one of those in `may_alias`."""

    def contiguous_out(self, obj: Any, shape: tuple, dtype: str) -> Any:
        """A writeable, C-contiguous output of this shape and dtype."""

    def mask_out(self, obj: Any, shape: tuple, dtype: str, inputs: dict) -> Any:
        """The public ``mask_out=``: a writeable, C-contiguous buffer of exactly this shape
        and dtype ("uint8" packed, "bool") for the returned mask, overlapping none of
        `inputs` (the call's arrays and its out); errors name mask_out."""

    def words(self, obj: Any, name: str, last: int) -> Any:
        """A uint32 array whose last axis has length `last` (Philox counters and keys)."""

    def device(self, device: Any) -> Any:
        """Where a function without array inputs puts its output."""


class DropoutRequest(NamedTuple):
    """One pass of a dropout-family kernel over x (forward or backward).

    keep says where the keep flags come from: the draws of (seed, stream) (`Keep.DRAWS`,
    over `noise_shape`, drawn through `noise_draws` for a block of a larger array), the
    caller's `mask` (`Keep.PACKED`, `Keep.FLAGS`), or none dropped (`Keep.ALL`).
    `identity`: the call returns x itself (inference), or copies it into `out`; `source`
    is the caller's x, which a backend returns when it is its own kind of array (an
    ndarray subclass or an unaligned array, whose view `x` is not the caller's object).
    """

    func: str
    op: Op
    keep: Keep
    x: Any
    out: Any = None                 # a checked output, or None: the backend allocates
    bias: Any = None
    residual: Any = None
    mask: Any = None
    seed: int = 0
    stream: int = 0
    bits: int = 16
    threshold: int = 0
    scale: float = 1.0              # DROPOUT, BDA: the kept factor; GAUSS: sigma
    alpha: tuple = (0.0, 0.0, 0.0)  # ALPHA: (a, c, d)
    noise_shape: tuple = ()
    noise_draws: Optional[DrawMap] = None
    mask_format: Optional[str] = None   # "packed" or "bool": also return the drawn mask
    returns_pair: bool = False          # (y, mask) even when no mask is drawn (inference)
    n_threads: Optional[int] = None     # None: the backend's default
    identity: bool = False
    mask_out: Any = None                # the returned mask's checked buffer, or None
    source: Any = None                  # identity: the caller's x


class BiasBackwardRequest(NamedTuple):
    """bias_dropout_add_backward: dropout's backward on grad in the compute precision
    (`dropout`, whose x is grad), then the column sums of dx for dbias."""

    dropout: DropoutRequest
    has_bias: bool


class DrawsRequest(NamedTuple):
    """Per-element draws with no array input: ``kind`` is "bits" (random_bits),
    "uniform", "normal" (standard_normal) or "mask" (dropout_mask)."""

    kind: str
    shape: tuple
    seed: int
    stream: int
    dtype: str                        # the result's dtype name
    bits: int = 32
    offset: int = 0
    threshold: int = 0                # mask
    draws: Optional[DrawMap] = None   # mask: a block of a larger array
    out: Any = None
    n_threads: Optional[int] = None
    device: Any = None


class PhiloxRequest(NamedTuple):
    """Philox4x32 blocks of `counter` (..., 4) under `key` (..., 2), broadcast to
    ``batch + (4,)``."""

    counter: Any
    key: Any
    rounds: int
    batch: tuple
    n_threads: Optional[int] = None


class UnpackRequest(NamedTuple):
    """A packed mask (uint8, LSB first) as bool flags of `shape`."""

    mask: Any
    shape: tuple
