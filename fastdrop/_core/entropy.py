"""The seeds of ``seed=None``: 64 fresh bits per call, without a system call.

A per-process generator (CPython's Mersenne Twister, about 0.1 us a draw) seeded with 256
bits of the operating system's entropy (`secrets`) when fastdrop is imported, and again
in every forked child, so that a parent and its children never draw the same seeds (as
NumPy's ``default_rng()`` and PyTorch's default generator, it is seeded once, not per
call; ``secrets.randbits`` per call cost 1.2-3 us, most of a small call).

``seed=None`` is for runs that need not repeat; it makes no secrets: the masks of a
dropout call are not a cryptographic output.
"""
from __future__ import annotations

import os
import random
import secrets

_generator = random.Random(secrets.randbits(256))


def _reseed() -> None:
    _generator.seed(secrets.randbits(256))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)

#: randbits(k): k fresh bits (k = 64 for a seed); thread-safe (one C call under the GIL).
randbits = _generator.getrandbits
