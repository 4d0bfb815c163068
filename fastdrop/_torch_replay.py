"""Activation checkpointing that replays fastdrop's masks: `checkpoint`.

``torch.utils.checkpoint`` runs a region twice: the forward (no activations kept) and a
recompute in the backward. For torch's own random ops it saves torch's generator state
and restores it for the recompute. A fastdrop layer with an int seed (or a
``fastdrop.Generator``) keeps its own counter, which torch does not know about: the
recompute would take the next stream, so a mask saved downstream, the gradient and the
counter after the step would differ from a run without checkpointing.
``fastdrop.torch.checkpoint`` wraps torch's: it records the (seed, stream) words each
fastdrop layer takes in the forward, in call order, and the recompute takes the same words
again instead of drawing, as TransformerEngine's and Megatron's checkpoint functions
restore their own generator trackers.

The record is per thread (the autograd engine recomputes CPU work on the thread that
called ``backward``). Nested regions: the innermost region that is replaying serves the
words, and every region recording inside it records them too.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import torch

from ._core.forksafe import new_lock

__all__ = ["checkpoint", "save_streams_policy"]

# Regions open in any thread: a plain integer read first, so a layer call outside every
# region (the common case) pays no thread-local lookup.
active = 0
_lock = new_lock()   # (a forked child finds it unlocked)
_tls = threading.local()


class _Region:
    """One run of a checkpointed function: recording (the forward) or replaying a record."""

    __slots__ = ("log", "pos", "replaying")

    def __init__(self, log: list, replaying: bool):
        self.log, self.pos, self.replaying = log, 0, replaying


def take(layer: Any, draw: Callable[[], tuple[int, int]]) -> tuple[int, int]:
    """The (seed, stream) words of `layer`'s call inside the open regions: the recorded
    words when a region replays, else `draw()` (the layer's own next words), recorded by
    the regions that record."""
    stack = getattr(_tls, "stack", None)
    if not stack:
        return draw()
    start, words = 0, None
    for i in range(len(stack) - 1, -1, -1):
        region = stack[i]
        if region.replaying:
            if region.pos >= len(region.log) or region.log[region.pos][0] is not layer:
                raise RuntimeError(
                    "fastdrop.torch.checkpoint: the recompute called fastdrop layers in "
                    "another order than the forward did (the checkpointed function must "
                    "run the same layers in the same order each time)")
            words = region.log[region.pos][1]
            region.pos += 1
            start = i + 1
            break
    if words is None:
        words = draw()
    for region in stack[start:]:
        if not region.replaying:
            region.log.append((layer, words))
    return words


class _Open:
    """Pushes a region on this thread's stack for the time of a call."""

    def __init__(self, region: _Region):
        self.region = region

    def __enter__(self):
        global active
        stack = getattr(_tls, "stack", None)
        if stack is None:
            stack = _tls.stack = []
        stack.append(self.region)
        with _lock:
            active += 1

    def __exit__(self, *exc):
        global active
        _tls.stack.pop()
        with _lock:
            active -= 1
        return False


def save_streams_policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
    """A selective-checkpoint policy that saves the seeds ``fastdrop::take_stream`` takes.

    For ``torch.utils.checkpoint.create_selective_checkpoint_contexts``: what `checkpoint`
    uses under ``torch.compile``, where the partitioner would otherwise recompute the op
    in the backward from the layer's already-advanced buffer. Everything else may be
    recomputed; a policy of one's own should answer MUST_SAVE for that op too.

    Parameters
    ----------
    ctx : torch.utils.checkpoint.SelectiveCheckpointContext
        Torch's context (unused).
    op : OpOverload
        The operator being run in the checkpointed region.
    *args, **kwargs
        Its arguments (unused).

    Returns
    -------
    torch.utils.checkpoint.CheckpointPolicy
        MUST_SAVE for ``torch.ops.fastdrop.take_stream.default``, else PREFER_RECOMPUTE.

    Raises
    ------
    Nothing.

    Examples
    --------
    >>> import functools, torch, fastdrop.torch as ft
    >>> from torch.utils.checkpoint import create_selective_checkpoint_contexts
    >>> context_fn = functools.partial(create_selective_checkpoint_contexts,
    ...                                ft.save_streams_policy)
    >>> ft.save_streams_policy(None, torch.ops.fastdrop.take_stream.default)
    <CheckpointPolicy.MUST_SAVE: 0>
    """
    from torch.utils.checkpoint import CheckpointPolicy
    if op is torch.ops.fastdrop.take_stream.default:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _save_streams() -> Any:
    from torch.utils.checkpoint import create_selective_checkpoint_contexts
    return create_selective_checkpoint_contexts(save_streams_policy)


def checkpoint(function: Callable, *args: Any, use_reentrant: bool | None = None,
               **kwargs: Any) -> Any:
    """``torch.utils.checkpoint.checkpoint`` whose recompute draws the forward's masks.

    Every fastdrop layer called inside `function` takes the same (seed, stream) words in
    the recompute as in the forward, whatever its seed source (an int seed, a
    ``fastdrop.Generator``, or ``seed=None``), so the gradient, any output saved
    downstream and the layers' stream counters after the step equal those of a run
    without checkpointing. Torch's own random ops are restored by torch
    (``preserve_rng_state``) as usual.

    Parameters
    ----------
    function : callable
        The region to checkpoint. It must call the same fastdrop layers in the same order
        each time it runs (as torch's checkpoint requires of its random ops).
    *args
        function's positional arguments.
    use_reentrant : bool, optional
        Passed to ``torch.utils.checkpoint.checkpoint`` (both modes are supported; torch
        recommends False).
    **kwargs
        The other keyword arguments of ``torch.utils.checkpoint.checkpoint``
        (``preserve_rng_state``, ``context_fn``, ``determinism_check``, ...), then
        function's keyword arguments, as torch takes them.

    Returns
    -------
    Any
        function's result.

    Raises
    ------
    RuntimeError
        The recompute called fastdrop layers in another order than the forward did.

    Notes
    -----
    In eager code the words are recorded in Python. Under ``torch.compile`` the seeds are
    values of the graph, taken by ``fastdrop::take_stream`` from the layers' buffers; with
    ``use_reentrant=False`` and no `context_fn` of the caller's, `checkpoint` passes a
    selective-checkpoint policy that saves those seeds (`save_streams_policy`; torch
    then warns that `context_fn` is given under compile). A caller's own `context_fn`
    must save that op too. (Torch compiles a reentrant checkpoint with a graph break:
    the region then runs eagerly, recorded as above.)

    Examples
    --------
    >>> import torch, fastdrop.torch as ft
    >>> lin, drop = torch.nn.Linear(4, 4), ft.Dropout(0.5, seed=1)
    >>> x = torch.randn(2, 4, requires_grad=True)
    >>> y = ft.checkpoint(lambda v: lin(drop(v)), x, use_reentrant=False)
    >>> y.sum().backward()
    >>> drop.last_call  # one stream taken: the recompute replayed it
    (1, 0)
    """
    if torch.compiler.is_compiling():
        # Traced code: the regions' Python record would be a side effect the graph cannot
        # hold. The seeds are values of the graph there, taken from the layers' buffers by
        # fastdrop::take_stream; the partitioner would recompute that op in the backward,
        # from the buffer the forward has already advanced. A selective-checkpoint policy
        # saves its output instead (a user's own context_fn must do the same).
        if use_reentrant is False and "context_fn" not in kwargs:
            kwargs["context_fn"] = _save_streams
        return torch.utils.checkpoint.checkpoint(function, *args,
                                                 use_reentrant=use_reentrant, **kwargs)
    log: list = []
    runs = [0]

    def run(*a: Any, **k: Any) -> Any:
        runs[0] += 1
        with _Open(_Region(log, replaying=runs[0] > 1)):
            return function(*a, **k)

    return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=use_reentrant,
                                             **kwargs)
