"""The default thread count of a call, per context (a thread, an asyncio task).

``n_threads=None`` means this context's default: None (OMP_NUM_THREADS, else all usable
cores) unless `default_threads` set one.  fastdrop.dask runs each chunk's kernel with a
default of 1: its scheduler already runs chunks in parallel, and a team of all cores per
chunk would oversubscribe the machine.  Results never depend on the count.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

from .args import check_n_threads

__all__ = ["default_threads", "current_default"]

_DEFAULT: contextvars.ContextVar = contextvars.ContextVar("fastdrop_default_threads",
                                                          default=None)


@contextlib.contextmanager
def default_threads(n: int | None) -> Iterator[None]:
    """Within the block, calls with ``n_threads=None`` use n threads (None: the usual
    default).  Contexts nest; each thread and task has its own."""
    token = _DEFAULT.set(check_n_threads(n))
    try:
        yield
    finally:
        _DEFAULT.reset(token)


def current_default() -> int | None:
    """The default of this context (None: OMP_NUM_THREADS, else all usable cores)."""
    return _DEFAULT.get()
