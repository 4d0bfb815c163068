"""Locks that a forked child can always take.

A child made by ``os.fork`` holds one thread, the one that forked; a lock that another
thread of the parent held at that moment stays locked in the child, with no thread left to
release it, and the child's first ``with lock:`` would hang. The locks made here are
reinitialised (unlocked) in every forked child, as the standard library does with its own
(``logging``, ``threading``, ``concurrent.futures``). fastdrop's critical sections only
read and write a few attributes and never fork, so the forking thread itself is never
inside one, and a child can never see a section half-done by more than the attributes that
section had written when the parent forked.
"""
from __future__ import annotations

import os
import threading
import weakref

__all__ = ["new_lock"]

_locks: "weakref.WeakSet" = weakref.WeakSet()


def new_lock() -> threading.Lock:
    """A ``threading.Lock`` that every forked child finds unlocked."""
    lock = threading.Lock()
    _locks.add(lock)
    return lock


def _after_fork_in_child() -> None:
    for lock in list(_locks):
        lock._at_fork_reinit()   # CPython's own at-fork reset (3.9+), what stdlib uses


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
