"""PyTorch adapter: fastdrop's kernels as torch operators, nn modules and functions.

Install with ``pip install fastdrop[torch]`` (torch 2.4 or later; tested with 2.13).

- Operators: ``torch.ops.fastdrop.dropout``, ``dropout_backward``, ``alpha_dropout``,
  ``alpha_dropout_backward``, ``bias_dropout_add`` and ``bias_dropout_add_backward``,
  registered with ``torch.library.custom_op`` (fake implementations, autograd formulas,
  vmap rules), so ``torch.compile(fullgraph=True)``, ``torch.export``, ``torch.func``
  and the profiler see them as ``fastdrop::...``.
- Modules, subclasses of torch's own (``isinstance(m, torch.nn.Dropout)`` holds):
  `Dropout`, `Dropout1d`, `Dropout2d`, `Dropout3d`, `AlphaDropout`,
  `FeatureAlphaDropout`; functions with torch's signatures: `dropout`, `dropout1d`,
  `dropout2d`, `dropout3d`, `alpha_dropout`, `feature_alpha_dropout`, and
  `bias_dropout_add`.
- `replace_dropout` swaps the torch dropout modules of a model for these.

The seed and stream enter the operators as a (3,) int64 tensor (`seed_tensor`):
``[seed mod 2**32, seed div 2**32, stream]``. A module keeps it in a buffer that it
advances in place, so a compiled graph takes the next stream as data and never
recompiles. With ``seed=None`` (the default) every training call draws the seed words
from torch's generator (``torch.randint``), so ``torch.manual_seed`` makes runs
reproducible exactly as it does for ``nn.Dropout``.

CPU tensors are handed to the kernels as NumPy views of their memory and the outputs are
written in place (``out=``): nothing is copied. Tensors on other devices go to
``fastdrop._core.route.device_implementation`` (a registered function, else fastdrop's GPU
backend); with neither, NotImplementedError. Only the CPU path is tested here.
"""
from __future__ import annotations

import warnings
from typing import Any, List, Optional

import torch
from torch import Tensor, nn

from . import _torch_draw as _cpp_draw
from . import _torch_ops as ops
from . import _torch_replay as _replay
from ._torch_replay import checkpoint, save_streams_policy
from . import functional as _F
from ._core.args import (check_bits, check_choice, check_n_threads, check_p,
                         check_uint64)
from .generator import Generator

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
           "FeatureAlphaDropout", "dropout", "dropout1d", "dropout2d", "dropout3d",
           "alpha_dropout", "feature_alpha_dropout", "bias_dropout_add", "replace_dropout",
           "checkpoint", "save_streams_policy", "draw_seed", "seed_tensor",
           "load_cpp_extension", "ddp_local_seeds"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_lean_code = ops.lean_code
_lean_module_apply = ops.lean_module_apply
_take_words = ops.take_words
_dropout_call = ops.dropout_call
_is_compiling = torch.compiler.is_compiling
_grad_enabled = torch.is_grad_enabled
_num_threads = torch.get_num_threads
_C = torch._C
_STATE_VERSION = 1


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A 64-bit seed drawn from torch's generator (the default one if None).

    The modules and functions draw their seeds this way (as tensors, without leaving
    torch) when given none, so ``torch.manual_seed`` makes them reproducible.

    Parameters
    ----------
    generator : torch.Generator, optional
        Where to draw from; None: ``torch.default_generator``.

    Returns
    -------
    int
        In [0, 2**64 - 1], from two 32-bit draws.

    Raises
    ------
    TypeError
        generator is not a torch.Generator.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> a = fastdrop.torch.draw_seed(torch.Generator().manual_seed(0))
    >>> b = fastdrop.torch.draw_seed(torch.Generator().manual_seed(0))
    >>> a == b, 0 <= a < 2**64
    (True, True)
    """
    _check_generator(generator)
    w = torch.randint(0, 1 << 32, (2,), dtype=torch.int64, generator=generator,
                      device=_draw_device(generator))
    return int(w[0]) | (int(w[1]) << 32)


def load_cpp_extension(verbose: bool = False) -> bool:
    """Make seed=None's draws through fastdrop's C++ extension (opt-in).

    A seed=None call draws its seed from torch's generator with one tensor operation,
    whose dispatch is a tenth of a small (2^8-element) training step. The extension makes
    the same draws, from the same generator, in C++: results are unchanged bit for bit.
    It is compiled against the installed torch with ``torch.utils.cpp_extension`` (needs
    a C++ compiler and ninja; a few seconds, once: torch caches it under
    ``TORCH_EXTENSIONS_DIR``), then checked against ``torch.randint``. Setting the
    environment variable ``FASTDROP_TORCH_CPP=1`` does this at import (a failure is then a
    warning).

    Parameters
    ----------
    verbose : bool, default False
        Show the compiler's output.

    Returns
    -------
    bool
        True: the draws now go through the extension (also on a second call).

    Raises
    ------
    RuntimeError
        The extension cannot be built or loaded, or its draws differ from torch's; the
        draws stay as they were.

    Examples
    --------
    >>> import torch, fastdrop.torch as ft
    >>> ft.load_cpp_extension()
    True
    >>> m, x = ft.Dropout(0.5), torch.ones(8)
    >>> _ = torch.manual_seed(0); y = m(x)
    >>> _ = torch.manual_seed(0); lo, hi = torch.randint(0, 2**32, (2,)).tolist()
    >>> m.last_call == (lo | hi << 32, 0)
    True
    """
    _cpp_draw.load(verbose=verbose)
    return _cpp_draw.active()


def _check_generator(generator: Any) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")


def _draw_device(generator: torch.Generator | None) -> Any:
    """Where the seed words are drawn: the generator's device (torch.default_generator:
    the CPU), whatever ``torch.set_default_device`` says."""
    return "cpu" if generator is None else generator.device


def seed_tensor(seed: int, stream: int = 0, device: Any = None) -> Tensor:
    """The seed tensor the fastdrop operators take: int64 ``[seed lo32, seed hi32, stream]``.

    Pass it as ``seed=`` to the functions (or to ``torch.ops.fastdrop.*``) inside a
    compiled function: a tensor is data, so a new seed or stream does not recompile.

    Parameters
    ----------
    seed : int
        Unsigned 64-bit key.
    stream : int
        Unsigned 64-bit stream (stored as its two's-complement int64).
    device : torch.device or str, optional
        Where the tensor lives (default: the CPU).

    Returns
    -------
    torch.Tensor
        Shape (3,), dtype int64.

    Raises
    ------
    TypeError, ValueError
        seed or stream is not an integer in [0, 2**64 - 1].

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> fastdrop.torch.seed_tensor(2**32 + 5, 7)
    tensor([5, 1, 7])
    >>> x = torch.ones(8)
    >>> torch.equal(fastdrop.torch.dropout(x, 0.5, seed=fastdrop.torch.seed_tensor(42)),
    ...             fastdrop.torch.dropout(x, 0.5, seed=42))
    True
    """
    return ops.seed_tensor(check_uint64(seed, "seed"), check_uint64(stream, "stream"),
                           device)


# ---- arguments ------------------------------------------------------------------------------


def _check_input(input: Any) -> None:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    _check_dtype(input)


def _check_dtype(input: Tensor) -> None:
    if input.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"input must have dtype float16, bfloat16, float32 or float64, "
                        f"got {input.dtype}")


def _caller_level() -> int:
    """warnings.warn's stacklevel, called from the function that warns, naming the first
    frame outside torch and fastdrop (the code that called the layer)."""
    import os
    import sys
    dirs = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, sys.modules[
        __package__]))
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(dirs):
        frame, level = frame.f_back, level + 1
    return level


def _fx_proxy(*values: Any) -> Any:
    """The first ``torch.fx.Proxy`` among values, or None (called only where an argument
    is not a tensor, so the hot paths pay nothing)."""
    proxy_type = torch.fx.Proxy
    return next((v for v in values if isinstance(v, proxy_type)), None)


def _fx_function(fn, params: dict) -> Any:
    """Under torch.fx symbolic tracing: the call of the public function `fn` with these
    arguments (``locals()`` at its entry: every parameter by name) as one
    ``call_function`` node, as fx records torch's functional dropouts; the traced
    GraphModule calls `fn` at run time, so seed=None draws anew at each call (tracing
    through would bake one draw into the graph as a constant). Not tracing (no argument
    is a Proxy): the TypeError of a non-tensor input."""
    names = list(params)
    proxy = _fx_proxy(*params.values())
    if proxy is None:
        _check_input(params[names[0]])   # raises: the first argument is not a tensor
    defaults = _fx_defaults.get(fn)
    if defaults is None:
        import inspect
        defaults = _fx_defaults[fn] = {
            k: v.default for k, v in inspect.signature(fn).parameters.items()}
    kwargs = {k: params[k] for k in names[1:] if params[k] is not defaults.get(k)}
    return proxy.tracer.create_proxy("call_function", fn, (params[names[0]],), kwargs)


_fx_defaults: dict = {}


def _check_torch_p(p: Any) -> None:
    """torch's own check and message (nn.Dropout, F.dropout)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


# keep="auto" keeps the packed mask from this many elements up (below, the seed): reading
# n / 8 bytes costs the backward less than regenerating the draws once the arrays leave
# the first cache levels; below it the mask's allocation costs more than it saves.
_AUTO_MASK_MIN = 1 << 14
_module_hooks = torch.nn.modules.module
ops.bind_module_call(module_apply=_lean_module_apply, num_threads=_num_threads,
                     replay=_replay, auto_mask_min=_AUTO_MASK_MIN,
                     global_hooks=(_module_hooks._global_backward_pre_hooks,
                                   _module_hooks._global_backward_hooks,
                                   _module_hooks._global_forward_hooks,
                                   _module_hooks._global_forward_pre_hooks),
                     graph_task=_C._current_graph_task_id)
# seed=None's draws through libtorch_cpu's exported functions or its stable C ABI, if there
_cpp_draw.bind_default_draws()


def _config(bits, mode, keep, n_threads) -> tuple:
    """(bits, mode, keep, n_threads as the operators take it: 0 = torch's count)."""
    b = check_bits(bits)
    m = check_choice(mode, "mode", ("inverted", "classic"))
    k = check_choice(keep, "keep", ("auto", "seed", "mask"))
    nt = check_n_threads(n_threads)
    return b, m, k, (0 if nt is None else nt)


def _keeps_mask(keep: str, input: Tensor) -> bool:
    """Whether a call keeps the packed mask for its backward (else the seed): keep="auto"
    decides by input's size, and keeps the mask in traced or compiled graphs (no guard on
    a symbolic size). Either way the gradient is the same."""
    if keep == "auto":
        if torch.compiler.is_compiling() or _C._is_tracing():
            return True
        return input.numel() >= _AUTO_MASK_MIN
    return keep == "mask"


def _check_noise_shape(noise_shape) -> tuple | None:
    if noise_shape is None:
        return None
    try:
        ns = tuple(noise_shape)
    except TypeError:
        raise TypeError(f"noise_shape must be a tuple of ints or None, "
                        f"got {type(noise_shape).__name__}") from None
    for d in ns:
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
            raise ValueError(f"noise_shape entries must be non-negative ints or None, "
                             f"got {noise_shape!r}")
    return ns


def _resolve_noise(ns: tuple | None, input: Tensor):
    if ns is None:
        return None
    if len(ns) != input.dim():
        raise ValueError(f"noise_shape must have one entry per axis of input "
                         f"({input.dim()}), got {ns!r}")
    out = []
    tracing = torch.jit.is_tracing()  # (-1: that axis's size, not the traced size)
    for d, s in zip(ns, input.shape):
        if d is None:
            out.append(-1 if tracing else s)
        elif d != 1 and d != s:
            raise ValueError(f"noise_shape entries must be input's size or 1, got {ns!r} "
                             f"for input of shape {tuple(input.shape)}")
        else:
            out.append(d)
    return out


def _torch_seed(generator: torch.Generator | None, device=None) -> Tensor:
    """Seed words from torch's generator, stream 0, all as tensor ops (graph-friendly)."""
    w = torch.randint(0, 1 << 32, (2,), dtype=torch.int64, generator=generator,
                      device=_draw_device(generator))
    return torch.nn.functional.pad(w, (0, 1))  # the draws of draw_seed, stream 0


def _seed_arg(seed, stream, generator) -> Tensor:
    """The seed tensor of a functional call: seed None (torch's generator), an int, or a
    seed tensor (then stream must be None)."""
    _check_generator(generator)
    if isinstance(seed, torch.Tensor):
        if stream is not None:
            raise ValueError("stream must be None when seed is a seed tensor (its third "
                             "entry is the stream)")
        if seed.dtype != torch.int64 or tuple(seed.shape) != (3,):
            raise ValueError(f"seed tensor must be int64 of shape (3,) (see "
                             f"fastdrop.torch.seed_tensor), got {seed.dtype} of shape "
                             f"{tuple(seed.shape)}")
        return seed
    if seed is None:
        if stream is not None:
            check_uint64(stream, "stream")
            w = _torch_seed(generator)
            return w + ops.seed_tensor(0, stream)
        return _torch_seed(generator)
    return ops.seed_tensor(check_uint64(seed, "seed"),
                           0 if stream is None else check_uint64(stream, "stream"))


def _draw_words(generator: torch.Generator | None) -> int:
    """draw_seed's 64-bit seed: the two draws of ``torch.randint(0, 2**32, (2,))``, which
    is ``empty((2,)).random_(0, 2**32)``, and ``random_(2**32)`` (the same kernel from 0),
    made in C into a scratch tensor (`_torch_lean.draw_words`: a third of the time of
    randint's argument parsing, allocation and ``tolist``), or, while another thread draws
    into it, into a tensor of this call's own."""
    cpu = generator is None or generator.device.type == "cpu"
    w = ops.draw_words(generator) if cpu else None
    if w is None:
        lo, hi = torch.empty(2, dtype=torch.int64, device=_draw_device(generator)).random_(
            4294967296, generator=generator).tolist()
        w = lo | (hi << 32)
    return w


def _seed_words_arg(seed, stream, generator) -> tuple[int, int]:
    """(seed, stream) as Python ints for a functional call with an int or None seed: the
    words `_seed_arg`'s tensor holds (seed=None: draw_seed's draws)."""
    _check_generator(generator)
    if seed is None:
        st = 0 if stream is None else check_uint64(stream, "stream")
        return _draw_words(generator), st
    key = check_uint64(seed, "seed")
    return key, (0 if stream is None else check_uint64(stream, "stream"))


def _eval_classic(input: Tensor, p: float, bits: int, inplace: bool) -> Tensor:
    """Classic mode's inference: ``input * P(keep)`` in fastdrop's precision (float32 for
    the half types, rounded once)."""
    _check_dtype(input)
    if inplace:
        ops.check_inplace_target(input)
    keep = 1.0 - _F.effective_p(p, bits)
    if input.dtype in (torch.float16, torch.bfloat16):
        res = (input.float() * keep).to(input.dtype)
    else:
        res = input * torch.tensor(keep, dtype=input.dtype, device=input.device)
    return input.copy_(res) if inplace else res


def _run(kind: str, input: Tensor, p: float, ss: Tensor, cfg: tuple, noise, inplace: bool):
    """One training call of an operator; in place through copy_ (autograd's own rules:
    a leaf that requires grad is refused, version counters are bumped)."""
    bits, mode, keep, nt = cfg
    if inplace:
        ops.check_inplace_target(input)
    if inplace and kind == "dropout":
        y = _run_inplace(input, p, ss, cfg, noise)
        if y is not None:
            return y
    f = ops.entry(kind, input)
    if kind == "alpha":
        y = f(input, ss, p, bits, noise, _keeps_mask(keep, input), nt)[0]
    else:
        y = f(input, ss, p, bits, mode, noise, _keeps_mask(keep, input), nt)[0]
    return input.copy_(y) if inplace else y


def _run_inplace(input: Tensor, p: float, ss: Tensor, cfg: tuple, noise) -> Tensor | None:
    """In-place dropout without a copy: ``fastdrop::dropout_`` (mutating input) where no
    graph is recorded, compiled code included (functionalized, then re-inplaced);
    `DropoutInplaceFunction` in eager autograd. None where the out-of-place operator and
    ``copy_`` must do (autograd under compile or torch.func; a leaf or a view under
    autograd, whose errors and view bookkeeping are autograd's own)."""
    bits, mode, keep, nt = cfg
    grad = input.requires_grad and torch.is_grad_enabled()
    if torch.compiler.is_compiling():
        if grad:
            return None
    elif _C._are_functorch_transforms_active() or ops.dual_level_active():
        return None   # (forward-mode AD: the tangent goes through copy_)
    elif grad:
        if (input.is_leaf or input._base is not None
                or not ops.plain_eager(input)):
            return None
        return ops.DropoutInplaceFunction.apply(input, ss, p, bits, mode, noise,
                                                _keeps_mask(keep, input), nt)
    ops.dropout_(input, ss, p, bits, mode, noise, _keeps_mask(keep, input), nt)
    return input


def _feature_noise(input: Tensor) -> list:
    if torch.jit.is_tracing():  # (-1: that axis's size, not the traced size)
        return [-1, -1] + [1] * (input.dim() - 2)
    return [input.shape[0], input.shape[1]] + [1] * (input.dim() - 2)


def _check_feature_rank(input: Tensor) -> None:
    if input.dim() < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")


def _nd_rank(name: str, input: Tensor) -> bool:
    """torch's rank rules for dropout1d/2d/3d; True when the input has no batch axis."""
    d = input.dim()
    if name == "dropout1d":
        if d not in (2, 3):
            raise RuntimeError(
                f"dropout1d: Expected 2D or 3D input, but received a {d}D input. "
                "Note that dropout1d exists to provide channel-wise dropout on inputs with 1 "
                "spatial dimension, a channel dimension, and an optional batch dimension "
                "(i.e. 2D or 3D inputs).")
        return d == 2
    if name == "dropout2d":
        if d not in (3, 4):
            warnings.warn(
                f"dropout2d: Received a {d}-D input to dropout2d, which is deprecated "
                "and will result in an error in a future release. To retain the behavior "
                "and silence this warning, please use dropout instead. Note that dropout2d "
                "exists to provide channel-wise dropout on inputs with 2 spatial dimensions, "
                "a channel dimension, and an optional batch dimension (i.e. 3D or 4D inputs).",
                stacklevel=3)
        if d == 3:
            warnings.warn(
                "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                "where C is the channel dim. This behavior will change in a future release "
                "to interpret the input as one without a batch dimension, i.e. shape "
                "(C, H, W). To maintain the 1D channel-wise dropout behavior, please switch "
                "to using dropout1d instead.", stacklevel=3)
        return False
    if d not in (4, 5):
        warnings.warn(
            f"dropout3d: Received a {d}-D input to dropout3d, which is deprecated "
            "and will result in an error in a future release. To retain the behavior "
            "and silence this warning, please use dropout instead. Note that dropout3d "
            "exists to provide channel-wise dropout on inputs with 3 spatial dimensions, "
            "a channel dimension, and an optional batch dimension (i.e. 4D or 5D inputs).",
            stacklevel=3)
    return d != 5


def _feature(kind: str, input: Tensor, p: float, ss, cfg: tuple, inplace: bool,
             unbatched: bool) -> Tensor:
    """Channel-wise dropout: the mask is drawn over (N, C, 1, ...) of the batched input."""
    if unbatched:
        if inplace:   # (before the copy_ below; the batched call's _run checks its own)
            ops.check_inplace_target(input)
        v = input.unsqueeze(0)
        _check_feature_rank(v)
        y = _run(kind, v, p, ss(), cfg, _feature_noise(v), False).squeeze(0)
    else:
        _check_feature_rank(input)
        y = _run(kind, input, p, ss(), cfg, _feature_noise(input), inplace)
        if inplace:
            return y  # input, written by _run
    return input.copy_(y) if inplace else y


# ---- functional -----------------------------------------------------------------------------

_SEED_DOC = """seed : int, torch.Tensor or None
        None: the seed is drawn from torch's generator on each call (reproducible under
        ``torch.manual_seed``). An unsigned 64-bit int, or a seed tensor
        (`seed_tensor`: the form to pass inside ``torch.compile``)."""


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
            *, seed: int | Tensor | None = None, stream: int | None = None, bits: int = 16,
            mode: str = "inverted", noise_shape: Any = None, keep: str = "auto",
            generator: torch.Generator | None = None, n_threads: int | None = None
            ) -> Tensor:
    """Dropout of a tensor through fastdrop's kernels, differentiable.

    ``torch.nn.functional.dropout(input, p, training, inplace)`` with fastdrop's
    counter-based masks: the result equals
    ``fastdrop.dropout(input.numpy(), p, seed=seed, stream=stream, ...)`` bit for bit.
    It calls the operator ``torch.ops.fastdrop.dropout``; the backward pass (itself
    differentiable) is ``fastdrop::dropout_backward``, which regenerates the mask from the
    seed or reads the packed mask (``keep="mask"``).

    Parameters
    ----------
    input : torch.Tensor of float16, bfloat16, float32 or float64
        Any shape and strides (the output has input's layout: channels_last stays so).
    p : float
        Drop probability in [0, 1]; the one used is ``fastdrop.effective_p(p, bits)``.
        p = 0 returns input itself, as torch does.
    training : bool
        False: inverted mode returns input itself; classic mode ``input * P(keep)``.
    inplace : bool
        Overwrite input (autograd's in-place rules apply, as for torch's dropout).
    seed : int, torch.Tensor or None
        None: drawn from torch's generator on each call (reproducible under
        ``torch.manual_seed``). An unsigned 64-bit int, or a seed tensor (`seed_tensor`:
        the form to pass inside ``torch.compile``; then stream must be None).
    stream : int, optional
        Unsigned 64-bit stream; None means 0.
    bits, mode, noise_shape
        As in ``fastdrop.dropout`` (noise_shape entries may be None: input's size).
    keep : {"auto", "seed", "mask"}
        What the backward pass keeps: the seed tensor (the mask is regenerated) or the
        packed mask (n / 8 bytes; torch's own dropout keeps n elements). "auto" keeps the
        mask from 2**14 elements up, and in compiled or traced graphs. Never changes the
        result.
    generator : torch.Generator, optional
        Where seed=None draws from.
    n_threads : int, optional
        Kernel threads; None follows ``torch.get_num_threads()``. Never changes the result.

    Returns
    -------
    torch.Tensor
        Of input's dtype, shape, layout and device (input itself when inplace, when
        p = 0, for an empty input, or at inference in inverted mode).

    Raises
    ------
    TypeError
        input is not a tensor of a supported dtype; an argument has the wrong type.
    ValueError
        p outside [0, 1], a bad bits, mode, keep or noise_shape, a seed or stream outside
        [0, 2**64 - 1].
    RuntimeError
        inplace on a leaf tensor that requires grad (autograd's own error).
    NotImplementedError
        A tensor on a device fastdrop has no implementation for.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> x = torch.ones(8, requires_grad=True)
    >>> y = fastdrop.torch.dropout(x, 0.5, seed=42)
    >>> y.detach()
    tensor([2., 2., 0., 0., 0., 0., 2., 0.])
    >>> y.sum().backward()
    >>> x.grad
    tensor([2., 2., 0., 0., 0., 0., 2., 0.])
    """
    if not isinstance(input, Tensor):
        return _fx_function(dropout, locals())
    _check_torch_p(p)
    pf = check_p(float(p))
    cfg = _config(bits, mode, keep, n_threads)
    ns = _check_noise_shape(noise_shape)
    if not training:
        return input if cfg[1] == "inverted" else _eval_classic(input, pf, cfg[0], inplace)
    if pf == 0.0 or input.numel() == 0:
        return input
    _check_dtype(input)
    if (cfg[1] == "inverted" and ns is None and not isinstance(seed, torch.Tensor)
            and ops.lean_input(input)):
        key, st = _seed_words_arg(seed, stream, generator)
        y = ops.lean_dropout(input, key, st, pf, cfg[0], _keeps_mask(cfg[2], input), cfg[3],
                             bool(inplace))
        if y is not None:
            return y
        ss = ops.seed_tensor(key, st)
    else:
        ss = _seed_arg(seed, stream, generator)
    return _run("dropout", input, pf, ss, cfg, _resolve_noise(ns, input), bool(inplace))


def _nd_functional(name: str, input, p, training, inplace, seed, stream, bits, keep,
                   generator, n_threads) -> Tensor:
    _check_torch_p(p)   # (its callers checked the type)
    pf = check_p(float(p))
    cfg = _config(bits, "inverted", keep, n_threads)
    unbatched = _nd_rank(name, input)
    if not training or pf == 0.0 or input.numel() == 0:
        return input
    _check_dtype(input)
    return _feature("dropout", input, pf, lambda: _seed_arg(seed, stream, generator), cfg,
                    bool(inplace), unbatched)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              *, seed: int | Tensor | None = None, stream: int | None = None,
              bits: int = 16, keep: str = "auto", generator: torch.Generator | None = None,
              n_threads: int | None = None) -> Tensor:
    """Channel-wise dropout of (N, C, L) or (C, L) inputs, as ``torch.nn.functional.dropout1d``.

    Parameters
    ----------
    input : torch.Tensor
        2-D (unbatched) or 3-D; other ranks raise torch's RuntimeError.
    p, training, inplace
        As ``torch.nn.functional.dropout1d``.
    seed, stream, bits, keep, generator, n_threads
        As in `dropout`.

    Returns
    -------
    torch.Tensor
        Whole channels ``input[n, c]`` are zero or scaled by 1 / P(keep).

    Raises
    ------
    RuntimeError
        input is not 2-D or 3-D.
    TypeError, ValueError
        As `dropout`.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> fastdrop.torch.dropout1d(torch.ones(1, 4, 3), 0.5, seed=42)[0]
    tensor([[2., 2., 2.],
            [2., 2., 2.],
            [0., 0., 0.],
            [0., 0., 0.]])
    """
    if not isinstance(input, Tensor):
        return _fx_function(dropout1d, locals())
    return _nd_functional("dropout1d", input, p, training, inplace, seed, stream, bits, keep,
                          generator, n_threads)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              *, seed: int | Tensor | None = None, stream: int | None = None,
              bits: int = 16, keep: str = "auto", generator: torch.Generator | None = None,
              n_threads: int | None = None) -> Tensor:
    """Channel-wise dropout of (N, C, H, W) inputs, as ``torch.nn.functional.dropout2d``.

    Parameters
    ----------
    input : torch.Tensor
        4-D (3-D is read as (N, C, L), with torch's warning; other ranks warn as torch).
    p, training, inplace
        As ``torch.nn.functional.dropout2d``.
    seed, stream, bits, keep, generator, n_threads
        As in `dropout`.

    Returns
    -------
    torch.Tensor
        Whole channels ``input[n, c]`` are zero or scaled; channels_last stays so.

    Raises
    ------
    RuntimeError
        input has fewer than 2 dimensions.
    TypeError, ValueError
        As `dropout`.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> y = fastdrop.torch.dropout2d(torch.ones(2, 3, 4, 4), 0.5, seed=1)
    >>> y.amax((2, 3)).equal(y.amin((2, 3)))   # every channel is constant
    True
    """
    if not isinstance(input, Tensor):
        return _fx_function(dropout2d, locals())
    return _nd_functional("dropout2d", input, p, training, inplace, seed, stream, bits, keep,
                          generator, n_threads)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              *, seed: int | Tensor | None = None, stream: int | None = None,
              bits: int = 16, keep: str = "auto", generator: torch.Generator | None = None,
              n_threads: int | None = None) -> Tensor:
    """Channel-wise dropout of (N, C, D, H, W) or (C, D, H, W) inputs, as torch's dropout3d.

    Parameters
    ----------
    input : torch.Tensor
        5-D or 4-D (unbatched); other ranks warn as torch does.
    p, training, inplace
        As ``torch.nn.functional.dropout3d``.
    seed, stream, bits, keep, generator, n_threads
        As in `dropout`.

    Returns
    -------
    torch.Tensor
        Whole channels are zero or scaled.

    Raises
    ------
    RuntimeError
        input has fewer than 2 dimensions (once unsqueezed).
    TypeError, ValueError
        As `dropout`.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> y = fastdrop.torch.dropout3d(torch.ones(3, 2, 2, 2), 0.5, seed=1)  # unbatched
    >>> y.shape, y.flatten(1).amax(1).equal(y.flatten(1).amin(1))
    (torch.Size([3, 2, 2, 2]), True)
    """
    if not isinstance(input, Tensor):
        return _fx_function(dropout3d, locals())
    return _nd_functional("dropout3d", input, p, training, inplace, seed, stream, bits, keep,
                          generator, n_threads)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                  inplace: bool = False, *, seed: int | Tensor | None = None,
                  stream: int | None = None, bits: int = 16, noise_shape: Any = None,
                  keep: str = "auto", generator: torch.Generator | None = None,
                  n_threads: int | None = None) -> Tensor:
    """Alpha dropout (SELU networks), as ``torch.nn.functional.alpha_dropout``.

    Kept elements become ``x * a + a alpha' q`` and dropped ones ``-a alpha' (1 - q)``
    (``fastdrop.alpha_dropout``); operator ``torch.ops.fastdrop.alpha_dropout``.

    Parameters
    ----------
    input : torch.Tensor of float16, bfloat16, float32 or float64
    p : float
        Drop probability in [0, 1].
    training : bool
        False (torch's default here) returns input itself.
    inplace : bool
        Overwrite input.
    seed, stream, bits, noise_shape, keep, generator, n_threads
        As in `dropout`.

    Returns
    -------
    torch.Tensor
        Of input's dtype, shape and layout.

    Raises
    ------
    TypeError, ValueError
        As `dropout`.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> fastdrop.torch.alpha_dropout(torch.zeros(4), 0.5, True, seed=42)
    tensor([ 0.7792,  0.7792, -0.7792, -0.7792])
    """
    if not isinstance(input, Tensor):
        return _fx_function(alpha_dropout, locals())
    _check_torch_p(p)
    pf = check_p(float(p))
    cfg = _config(bits, "inverted", keep, n_threads)
    ns = _check_noise_shape(noise_shape)
    if not training or pf == 0.0 or input.numel() == 0:
        return input
    _check_dtype(input)
    ss = _seed_arg(seed, stream, generator)
    return _run("alpha", input, pf, ss, cfg, _resolve_noise(ns, input), bool(inplace))


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                          inplace: bool = False, *, seed: int | Tensor | None = None,
                          stream: int | None = None, bits: int = 16, keep: str = "auto",
                          generator: torch.Generator | None = None,
                          n_threads: int | None = None) -> Tensor:
    """Channel-wise alpha dropout, as ``torch.nn.functional.feature_alpha_dropout``.

    Parameters
    ----------
    input : torch.Tensor
        At least 2-D: (N, C, ...); the mask is drawn over (N, C, 1, ...).
    p, training, inplace
        As torch's (training defaults to False there too).
    seed, stream, bits, keep, generator, n_threads
        As in `dropout`.

    Returns
    -------
    torch.Tensor
        Whole channels kept (``x * a + a alpha' q``) or set to ``-a alpha' (1 - q)``.

    Raises
    ------
    RuntimeError
        input has fewer than 2 dimensions.
    TypeError, ValueError
        As `dropout`.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> y = fastdrop.torch.feature_alpha_dropout(torch.zeros(1, 4, 2), 0.5, True, seed=42)
    >>> y[0]
    tensor([[ 0.7792,  0.7792],
            [ 0.7792,  0.7792],
            [-0.7792, -0.7792],
            [-0.7792, -0.7792]])
    """
    if not isinstance(input, Tensor):
        return _fx_function(feature_alpha_dropout, locals())
    _check_torch_p(p)
    pf = check_p(float(p))
    cfg = _config(bits, "inverted", keep, n_threads)
    if not training or pf == 0.0 or input.numel() == 0:
        return input  # (torch checks the rank on the training path only, as here)
    _check_dtype(input)
    return _feature("alpha", input, pf, lambda: _seed_arg(seed, stream, generator), cfg,
                    bool(inplace), False)


def bias_dropout_add(x: Tensor, bias: Tensor | None, residual: Tensor, p: float,
                     training: bool = True, *, seed: int | Tensor | None = None,
                     stream: int | None = None, bits: int = 16, keep: str = "auto",
                     generator: torch.Generator | None = None,
                     n_threads: int | None = None) -> Tensor:
    """Fused ``residual + dropout(x + bias)``, differentiable (``fastdrop::bias_dropout_add``).

    The mask is the one `dropout` draws for x with the same seed and stream.

    Parameters
    ----------
    x : torch.Tensor of float16, bfloat16, float32 or float64
        The input of the dropout.
    bias : torch.Tensor of shape ``(x.shape[-1],)``, or None
    residual : torch.Tensor of x's shape and dtype
    p : float
        Drop probability in [0, 1].
    training : bool
        False: ``residual + (x + bias)``.
    seed, stream, bits, keep, generator, n_threads
        As in `dropout`.

    Returns
    -------
    torch.Tensor
        Of x's dtype and shape; gradients flow to x, bias and residual.

    Raises
    ------
    TypeError, ValueError
        As `dropout`; a bias or residual of the wrong shape or dtype.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> x = torch.ones(2, 4)
    >>> fastdrop.torch.bias_dropout_add(x, torch.ones(4), torch.zeros(2, 4), 0.5, seed=42)
    tensor([[4., 4., 0., 0.],
            [0., 0., 4., 0.]])
    """
    if not (isinstance(x, Tensor) and isinstance(residual, Tensor)) or (
            bias is not None and not isinstance(bias, Tensor)):
        if _fx_proxy(x, bias, residual) is not None:
            return _fx_function(bias_dropout_add, locals())
        _check_input(x)
        if not isinstance(residual, torch.Tensor):
            raise TypeError(f"residual must be a torch.Tensor, got "
                            f"{type(residual).__name__}")
        raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
    _check_dtype(x)
    _check_torch_p(p)
    pf = check_p(float(p))
    cfg = _config(bits, "inverted", keep, n_threads)
    if tuple(residual.shape) != tuple(x.shape) or residual.dtype != x.dtype:
        raise ValueError(f"residual must have x's shape {tuple(x.shape)} and dtype "
                         f"{x.dtype}, got {tuple(residual.shape)} {residual.dtype}")
    if bias is not None and (x.dim() == 0 or tuple(bias.shape) != (x.shape[-1],)
                             or bias.dtype != x.dtype):
        raise ValueError(f"bias must have shape (x.shape[-1],) and x's dtype, got "
                         f"{tuple(bias.shape)} {bias.dtype}")
    if not training:
        return residual + (x if bias is None else x + bias)
    ss = _seed_arg(seed, stream, generator)
    f = ops.BiasDropoutAddFunction.apply if ops.use_functions() else ops.bias_dropout_add
    return f(x, bias, residual, ss, pf, cfg[0], _keeps_mask(cfg[2], x), cfg[3])[0]


# ---- modules --------------------------------------------------------------------------------


_FUNCTORCH_KEYS = (torch._C.DispatchKeySet(torch._C.DispatchKey.FuncTorchDynamicLayerFrontMode)
                   | torch._C.DispatchKeySet(torch._C.DispatchKey.FuncTorchDynamicLayerBackMode))


def _advance(state: Tensor) -> None:
    """Next stream, in place, in eager code (compiled code calls fastdrop::take_stream).
    It steps past torch.func's layers: ``grad`` refuses an in-place op on a captured
    tensor (the module's buffer under ``functional_call``), and the counter is the
    module's state, not data of the transformed function (as BatchNorm's running
    statistics)."""
    if state.device.type == "cpu" and not torch._C._are_functorch_transforms_active():
        view = state.numpy()  # the cheapest write: no dispatcher round trip
        view[2] = (int(view[2]) + 1 + (1 << 63)) % (1 << 64) - (1 << 63)  # int64 wrap
        return
    step = state.narrow(0, 2, 1)
    if torch._C._functorch.is_functorch_wrapped_tensor(state):
        step.add_(1)
        return
    with torch._C._ExcludeDispatchKeyGuard(_FUNCTORCH_KEYS):
        step.add_(1)



class _FastdropDropout:
    """What the fastdrop modules share: the seed source, its state buffer, the extra
    state in state_dict. Mixed into subclasses of torch's dropout modules."""

    _fd_kind = "dropout"

    def _fd_init(self, seed, bits, mode, keep, generator, n_threads) -> None:
        self._cfg = _config(bits, mode, keep, n_threads)
        self._p_checked = check_p(float(self.p))
        _check_generator(generator)
        self.torch_generator = generator
        self.fd_generator: Generator | None = None
        if isinstance(seed, Generator):
            self._source, self.fd_generator, words = "generator", seed, (0, 0)
        elif seed is None:
            self._source, words = "torch", (0, 0)
        else:
            self._source, words = "seed", (check_uint64(seed, "seed"), 0)
        # the seed words and the next stream; advanced in place by every training call
        self._fd_words = words
        self.register_buffer("fd_state", ops.seed_tensor(*words), persistent=False)
        self._last: Tensor | None = None

    def reset_parameters(self) -> None:
        """Back to the state the layer was built with: an int seed at stream 0.

        torch's convention for re-initializing a module in place: a model built on the
        meta device (``with torch.device("meta")``) and then ``to_empty`` has an
        uninitialized seed buffer until this runs (FSDP's default ``param_init_fn``
        calls it; so does ``model.apply(lambda m: getattr(m, "reset_parameters",
        lambda: None)())``). A layer seeded by torch's generator or a fastdrop.Generator
        keeps no state of its own: nothing changes for it.
        """
        self._set_words(self._built_words())
        self._last = None

    def _built_words(self) -> tuple[int, int]:
        """The seed buffer's words at construction (an int seed and stream 0)."""
        words = self.__dict__.get("_fd_words")
        if words is None:   # a layer pickled before this attribute: its seed, stream 0
            words = (self._state_words()[0] if self._source == "seed" else 0, 0)
        return words

    def _state_words(self) -> tuple[int, int]:
        """The seed buffer's (seed, stream); on the meta device (no data) the words the
        layer was built with."""
        if self.fd_state.is_meta:
            return self._built_words()
        return ops.seed_words(self.fd_state)

    def _set_words(self, words: tuple[int, int]) -> None:
        new = ops.seed_tensor(*words)
        if self.fd_state.is_meta:   # (load_state_dict(assign=True) of a meta-built model)
            self._buffers["fd_state"] = new
            return
        with torch.no_grad():   # in place: compiled graphs hold this buffer
            self.fd_state.copy_(new)

    def _apply(self, fn, recurse=True):
        # Module.type(dtype) casts every buffer: the seed words stay int64
        before = self._buffers.get("fd_state")
        out = super()._apply(fn, recurse)
        after = self._buffers.get("fd_state")
        if before is not None and after is not None and after.dtype != torch.int64:
            self._buffers["fd_state"] = (torch.empty(3, dtype=torch.int64, device="meta")
                                         if before.is_meta else before.to(after.device))
        return out

    def _fx_call(self, input: Any) -> Any:
        """Under torch.fx symbolic tracing (input a Proxy): the layer as one
        ``call_module`` node, as fx's default tracer records torch.nn's dropouts (its
        leaves), so the traced GraphModule calls the layer: its seeds advance and
        seed=None draws at each call (tracing through would bake one seed into the graph
        as a constant). Not tracing: the TypeError of a non-tensor input."""
        if not isinstance(input, torch.fx.Proxy):
            _check_input(input)   # raises
        tracer = input.tracer
        if getattr(tracer, "root", None) is self:
            raise torch.fx.proxy.TraceError(
                f"fastdrop.torch.{type(self).__name__} cannot be the root of an fx trace "
                f"(its seeds are the layer's state, which a graph of the layer alone "
                f"cannot hold): trace a module that holds it, where it is one call_module "
                f"node")
        return tracer.create_proxy("call_module", tracer.path_of_module(self), (input,),
                                   {})

    # -- seeds --

    def _next_seed(self) -> Tensor:
        if _replay.active and not (torch.compiler.is_compiling() or _C._is_tracing()):
            # inside fastdrop.torch.checkpoint: the forward's words, replayed
            ss = ops.seed_tensor(*_replay.take(self, lambda: ops.seed_words(
                self._draw_seed())))
            self._last = ss
            return ss
        if not (torch.compiler.is_compiling() or _C._is_tracing()):
            self._check_recompute()   # (eager only: dynamo cannot trace the task id)
        return self._draw_seed()

    def _check_recompute(self) -> None:
        """Warns once per layer when a seeded layer (an int seed or a fastdrop.Generator)
        runs inside a backward pass outside fastdrop.torch.checkpoint, as
        torch.utils.checkpoint's recompute runs it. Its counter has moved on, so such a
        recompute draws the next
        stream's mask, not the forward's: whatever the recompute saves downstream of the
        layer (hence the gradients) and the counter after the step differ from a run
        without checkpointing. (seed=None draws from torch's generator, whose state
        torch's checkpoint restores.)"""
        if (self._source == "torch" or _C._current_graph_task_id() == -1
                or self.__dict__.get("_fd_warned_recompute")):
            return
        self.__dict__["_fd_warned_recompute"] = True
        warnings.warn(
            f"fastdrop.torch.{type(self).__name__} with its own seed ran inside a backward "
            f"pass: if this is torch.utils.checkpoint's recompute, it drew a new mask, "
            f"not the forward's, and gradients through it differ from a run without "
            f"checkpointing. Use fastdrop.torch.checkpoint (torch's signature; it replays "
            f"the forward's masks), or seed=None (whose draws torch's checkpoint "
            f"restores)", RuntimeWarning, stacklevel=_caller_level())

    def _draw_seed(self) -> Tensor:
        if self._source == "seed":
            if torch.compiler.is_compiling() or _C._is_tracing():
                # an operator on the buffer: a traced graph advances the stream itself
                ss = ops.take_stream(self.fd_state)
            else:
                ss = self.fd_state.clone()
                _advance(self.fd_state)
        elif self._source == "torch":
            ss = _torch_seed(self.torch_generator)
        else:  # a shared fastdrop.Generator: Python state, eager only
            if _C._is_tracing():
                raise RuntimeError(
                    "torch.jit.trace: a fastdrop.torch layer whose seeds come from a "
                    "fastdrop.Generator cannot be traced (Python state: the trace would "
                    "replay one mask forever); give the layer an int seed or seed=None")
            ss = ops.seed_tensor(*self.fd_generator.take())
        if not torch.compiler.is_compiling():
            self._last = ss
        return ss

    def _next_words(self, replay: bool = True) -> tuple[int, int]:
        """(seed, stream) of the next eager training call, as Python ints, without building
        a seed tensor: the same words `_next_seed` gives (the lean path). Inside
        fastdrop.torch.checkpoint (`replay`), the recompute's words are the forward's."""
        if replay and _replay.active:
            words = _replay.take(self, lambda: self._next_words(False))
            self.__dict__["_last"] = words
            return words
        if replay:
            self._check_recompute()
        if self._source == "seed":
            state = self._buffers["fd_state"]
            cache = self.__dict__.get("_fd_view")
            # the same tensor and the same memory (share_memory_ moves a tensor's storage)
            addr = state.data_ptr()
            if cache is None or cache[0] is not state or cache[1] != addr:
                if (state.device.type != "cpu" or _C._are_functorch_transforms_active()
                        or state.dtype != torch.int64 or state.shape != (3,)
                        or not state.is_contiguous()):
                    return ops.seed_words(self._draw_seed())
                cache = self.__dict__["_fd_view"] = (state, addr)
            # the words at the buffer's memory, its stream advanced (C: _torch_lean.pyx)
            words = _take_words(addr)
        elif self._source == "torch":
            words = (_draw_words(self.torch_generator), 0)
        else:
            words = self.fd_generator.take()
        self.__dict__["_last"] = words  # a plain attribute: skips Module.__setattr__
        return words

    def __prepare_scriptable__(self) -> nn.Module:
        """What ``torch.jit.script`` compiles in this layer's place: a `ScriptDropout`
        sharing its configuration and seed buffer (torch.jit calls this hook)."""
        return ScriptDropout(self)

    def __getstate__(self) -> dict:
        # _next_words' view of the seed buffer: a deep copy or an unpickled layer makes its
        # own (a copied view would not alias the copied buffer)
        state = self.__dict__.copy()
        state.pop("_fd_view", None)
        return state

    def _p(self) -> float:
        if self.p != self._p_checked:  # someone set .p, as one may on nn.Dropout
            _check_torch_p(self.p)
            self._p_checked = check_p(float(self.p))
        return self._p_checked

    @property
    def bits(self) -> int:
        """Bits per draw (8, 16 or 32)."""
        return self._cfg[0]

    @property
    def mode(self) -> str:
        """"inverted" or "classic"."""
        return self._cfg[1]

    @property
    def keep(self) -> str:
        """What the backward keeps: "auto", "seed" or "mask"."""
        return self._cfg[2]

    @property
    def last_call(self) -> tuple[int, int] | None:
        """(seed, stream) of the last eager training call, or None."""
        last = self._last
        if last is None or isinstance(last, tuple):
            return last
        return ops.seed_words(last)

    # -- state --

    def get_state(self) -> dict | None:
        """The seed and the next stream (None when seeds come from torch's generator).

        Returns
        -------
        dict or None
            ``{"seed": ..., "stream": ...}``, for `set_state`.
        """
        if self._source == "torch":
            return None
        if self._source == "generator":
            return self.fd_generator.get_state()
        seed, stream = self._state_words()
        return {"seed": seed, "stream": stream}

    def set_state(self, state: dict) -> None:
        """Restore a state from `get_state` (replays the calls that followed it).

        Parameters
        ----------
        state : dict
            ``{"seed": int, "stream": int}``.

        Raises
        ------
        RuntimeError
            The layer draws its seeds from torch's generator (no fastdrop state).
        TypeError, ValueError
            A bad state; nothing is changed.
        """
        if self._source == "torch":
            raise RuntimeError("this layer draws its seeds from torch's generator: use "
                               "torch.manual_seed / torch.set_rng_state")
        if self._source == "generator":
            self.fd_generator.set_state(state)
            return
        if not isinstance(state, dict) or set(state) != {"seed", "stream"}:
            raise ValueError("state must be a dict with keys 'seed' and 'stream'")
        self._set_words((check_uint64(state["seed"], "state['seed']"),
                         check_uint64(state["stream"], "state['stream']")))

    def get_extra_state(self) -> dict:
        """What `state_dict` saves under ``<name>._extra_state``.

        Returns
        -------
        dict
            ``{"version": 1, "source": "seed" | "torch" | "generator", "state": ...}``
            with ``state`` the `get_state` dict (None for "torch").
        """
        return {"version": _STATE_VERSION, "source": self._source,
                "state": self.get_state()}

    def set_extra_state(self, state: Any) -> None:
        """Restore what `get_extra_state` saved (``load_state_dict`` calls it).

        Parameters
        ----------
        state : dict
            From `get_extra_state`, of a layer with the same seed source.

        Raises
        ------
        ValueError
            Not such a dict, another version, or another seed source; nothing is changed.
        """
        if not isinstance(state, dict) or set(state) != {"version", "source", "state"}:
            raise ValueError("extra state must be a dict with keys 'version', 'source', "
                             "'state' (from get_extra_state)")
        if state["version"] != _STATE_VERSION:
            raise ValueError(f"extra state version {state['version']!r} is not "
                             f"{_STATE_VERSION}")
        if state["source"] != self._source:
            raise ValueError(f"extra state is of a layer whose seeds come from "
                             f"{state['source']!r}, this one's from {self._source!r}")
        if self._source != "torch":
            self.set_state(state["state"])

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # a checkpoint of a model with torch's dropout has no `_extra_state` for this
        # layer (torch's has no state): loading it, strict or not, keeps the layer's
        # current streams, as torch's BatchNorm loads checkpoints older than its
        # num_batches_tracked. A present entry is checked and loaded as saved.
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
        key = prefix + "_extra_state"
        if key not in state_dict and key in missing_keys:
            missing_keys.remove(key)
        if self.fd_state.is_meta and local_metadata.get("assign_to_params_buffers", False):
            # assign=True into a meta-built model leaves this non-persistent buffer on
            # meta when no state came: the construction's words, as reset_parameters
            self._set_words(self._built_words())

    def _fd_extra_repr(self) -> str:
        if "_cfg" not in self.__dict__:  # construction failed half-way (a bad p)
            return f"p={getattr(self, 'p', '?')}"
        bits, mode, keep, _ = self._cfg
        if self._source == "torch":
            seed = "torch"
        elif self._source == "generator":
            seed = repr(self.fd_generator)
        else:
            seed = self._state_words()[0]
        s = f"p={self.p}, inplace={self.inplace}, bits={bits}"
        if mode != "inverted":
            s += f", mode={mode!r}"
        return s + f", keep={keep!r}, seed={seed}"

    def extra_repr(self) -> str:
        return self._fd_extra_repr()


_MODULE_PARAMS = """    Parameters
    ----------
    p : float
        Drop probability in [0, 1] (torch's ValueError outside); the one used is
        ``fastdrop.effective_p(p, bits)``.
    inplace : bool
        Overwrite the input, as torch's module does.
    seed : int or fastdrop.Generator, optional
        None (default): each training call draws the seed from torch's generator, so
        ``torch.manual_seed`` controls it. An int: a fixed seed, the stream counter in a
        buffer (``fd_state``) advanced by every training call and saved in
        ``state_dict`` (a resumed run replays). A Generator: shared with other layers
        (eager only: it is Python state, a graph break under torch.compile).
    bits : {16, 32, 8}
    keep : {"auto", "seed", "mask"}
        What the forward keeps for the backward: the seed tensor or the packed mask
        (n / 8 bytes); "auto" keeps the mask from 2**14 elements up, and in compiled or
        traced graphs. Never changes the result.
    generator : torch.Generator, optional
        Where seed=None draws from (default: torch.default_generator).
    n_threads : int, optional
        Kernel threads; None follows ``torch.get_num_threads()``. Never changes the result.
"""


class Dropout(_FastdropDropout, nn.Dropout):
    """Drop-in for ``torch.nn.Dropout`` on fastdrop's counter-based kernels.

    A subclass of ``torch.nn.Dropout``; calls ``torch.ops.fastdrop.dropout``.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1] (torch's ValueError outside); the one used is
        ``fastdrop.effective_p(p, bits)``.
    inplace : bool
        Overwrite the input (as ``nn.Dropout(inplace=True)``).
    seed : int or fastdrop.Generator, optional
        None (default): each training call draws the seed from torch's generator, so
        ``torch.manual_seed`` controls it. An int: a fixed seed, the stream counter in a
        buffer (``fd_state``) advanced by every training call and saved in
        ``state_dict`` (a resumed run replays). A Generator: shared with other layers
        (eager only: Python state, a graph break under torch.compile).
    bits : {16, 32, 8}
    mode : {"inverted", "classic"}
    noise_shape : tuple, optional
        Mask shape, one entry per axis, each the input's size, 1 or None (the input's).
    keep : {"auto", "seed", "mask"}
        What the forward keeps for the backward: the seed tensor (the mask is
        regenerated) or the packed mask (n / 8 bytes); "auto" keeps the mask from 2**14
        elements up, and in compiled or traced graphs. Never changes the result.
    generator : torch.Generator, optional
        Where seed=None draws from (default: torch.default_generator).
    n_threads : int, optional
        Kernel threads; None follows ``torch.get_num_threads()``. Never changes the result.

    Raises
    ------
    ValueError
        p outside [0, 1] (torch's message), a bad bits, mode, keep or noise_shape.
    TypeError
        An argument of the wrong type; at a training call, an input that is not a float
        tensor.
    RuntimeError
        inplace on a leaf tensor that requires grad (at the call).

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> layer = fastdrop.torch.Dropout(0.5, seed=42)    # a fixed seed: stream 0, 1, ...
    >>> isinstance(layer, torch.nn.Dropout)
    True
    >>> layer(torch.ones(8))
    tensor([2., 2., 0., 0., 0., 0., 2., 0.])
    >>> layer.last_call
    (42, 0)
    >>> _ = layer.eval()
    >>> layer(torch.ones(8))
    tensor([1., 1., 1., 1., 1., 1., 1., 1.])

    With no seed, seeds come from torch's generator:

    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), fastdrop.torch.Dropout(0.1))
    >>> x = torch.ones(2, 4)
    >>> _ = torch.manual_seed(0); a = model(x)
    >>> _ = torch.manual_seed(0); b = model(x)
    >>> torch.equal(a, b)
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 seed: int | Generator | None = None, bits: int = 16, mode: str = "inverted",
                 noise_shape: Any = None, keep: str = "auto",
                 generator: torch.Generator | None = None, n_threads: int | None = None):
        nn.Dropout.__init__(self, p, inplace)
        self._fd_init(seed, bits, mode, keep, generator, n_threads)
        self._noise_shape = _check_noise_shape(noise_shape)
        # the lean path's configuration (inverted mode, no noise shape), or None
        b, m, k, nt = self._cfg
        self._lean = (b, k, nt) if m == "inverted" and self._noise_shape is None else None

    @property
    def noise_shape(self) -> tuple | None:
        """The mask's shape (None entries: the input's size), or None."""
        return self._noise_shape

    def __call__(self, *args, **kwargs):
        # nn.Module.__call__ (its _wrapped_call_impl and _call_impl frames, then forward's)
        # costs about 1.3 us of a 2^8-element step: the common training call goes to C
        # from here when nn.Module's would call forward directly (no hooks, no
        # Module.compile; checked in C), and every other call (compilation included,
        # which traces this) through nn.Module.__call__ as it is now (torch.fx patches it)
        if len(args) == 1 and not kwargs and not _is_compiling():
            y = _dropout_call(self, args[0], True)
            if y is not None:
                return y
        return nn.Module.__call__(self, *args, **kwargs)

    def forward(self, input: Tensor) -> Tensor:
        if not _is_compiling():  # the common training call, in C (or None: below)
            y = _dropout_call(self, input)
            if y is not None:
                return y
        lean = self._lean
        if lean is not None and self.training and (code := _lean_code(input)) >= 0:
            n = input.numel()
            p = self.p
            if p != self._p_checked:
                p = self._p()
            if p == 0.0 or n == 0:
                return input
            key, st = self._next_words()
            k = lean[1]
            keep_mask = k == "mask" or (k == "auto" and n >= _AUTO_MASK_MIN)
            if not self.inplace and input.requires_grad and _grad_enabled():
                # the common training call, written out: each Python call here is a
                # measurable part of a small tensor's step
                return _lean_module_apply(input, (key, st, p, lean[0], keep_mask,
                                                  lean[2] or _num_threads(), n, code))
            y = ops.lean_dropout(input, key, st, p, lean[0], keep_mask, lean[2],
                                 self.inplace)
            if y is not None:
                return y
            return _run("dropout", input, p, ops.seed_tensor(key, st), self._cfg, None,
                        True)
        if not isinstance(input, Tensor):
            return self._fx_call(input)
        p = self._p()
        if not self.training:
            if self._cfg[1] == "inverted":
                return input
            return _eval_classic(input, p, self._cfg[0], self.inplace)
        if p == 0.0 or input.numel() == 0:
            return input
        _check_dtype(input)
        return _run("dropout", input, p, self._next_seed(), self._cfg,
                    _resolve_noise(self._noise_shape, input), self.inplace)

    def extra_repr(self) -> str:
        s = self._fd_extra_repr()
        return s + (f", noise_shape={self._noise_shape}" if self._noise_shape else "")


class _NdMixin(_FastdropDropout):
    _fd_name = ""

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            return self._fx_call(input)
        p = self._p()
        unbatched = _nd_rank(self._fd_name, input)
        if not self.training or p == 0.0 or input.numel() == 0:
            return input
        _check_dtype(input)
        return _feature("dropout", input, p, self._next_seed, self._cfg, self.inplace,
                        unbatched)


def _nd_doc(torch_name: str, shapes: str, example: str) -> str:
    return f"""Drop-in for ``torch.nn.{torch_name}``: whole channels dropped ({shapes}).

    A subclass of ``torch.nn.{torch_name}``, with its rank rules, warnings and errors; the
    mask is drawn over (N, C, 1, ...) (``fastdrop::dropout`` with a noise shape).

{_MODULE_PARAMS}
    Raises
    ------
    ValueError
        p outside [0, 1] (torch's message), a bad bits or keep.
    RuntimeError
        An input rank torch refuses (at the call).
    TypeError
        An argument of the wrong type; at a training call, an input that is not a float
        tensor.

    Examples
    --------
{example}
"""


class Dropout1d(_NdMixin, nn.Dropout1d):
    __doc__ = _nd_doc("Dropout1d", "(N, C, L) or (C, L) inputs", """\
    >>> import torch, fastdrop.torch
    >>> m = fastdrop.torch.Dropout1d(0.5, seed=42)
    >>> isinstance(m, torch.nn.Dropout1d)
    True
    >>> m(torch.ones(4, 3))            # unbatched (C, L)
    tensor([[2., 2., 2.],
            [2., 2., 2.],
            [0., 0., 0.],
            [0., 0., 0.]])""")
    _fd_name = "dropout1d"

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 seed: int | Generator | None = None, bits: int = 16, keep: str = "auto",
                 generator: torch.Generator | None = None, n_threads: int | None = None):
        nn.Dropout1d.__init__(self, p, inplace)
        self._fd_init(seed, bits, "inverted", keep, generator, n_threads)


class Dropout2d(_NdMixin, nn.Dropout2d):
    __doc__ = _nd_doc("Dropout2d", "(N, C, H, W) inputs", """\
    >>> import torch, fastdrop.torch
    >>> m = fastdrop.torch.Dropout2d(0.5, seed=1)
    >>> y = m(torch.ones(2, 3, 4, 4).to(memory_format=torch.channels_last))
    >>> y.is_contiguous(memory_format=torch.channels_last)
    True
    >>> y.amax((2, 3)).equal(y.amin((2, 3)))
    True""")
    _fd_name = "dropout2d"

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 seed: int | Generator | None = None, bits: int = 16, keep: str = "auto",
                 generator: torch.Generator | None = None, n_threads: int | None = None):
        nn.Dropout2d.__init__(self, p, inplace)
        self._fd_init(seed, bits, "inverted", keep, generator, n_threads)


class Dropout3d(_NdMixin, nn.Dropout3d):
    __doc__ = _nd_doc("Dropout3d", "(N, C, D, H, W) or (C, D, H, W) inputs", """\
    >>> import torch, fastdrop.torch
    >>> m = fastdrop.torch.Dropout3d(0.5, seed=1)
    >>> m(torch.ones(2, 3, 2, 2, 2)).shape
    torch.Size([2, 3, 2, 2, 2])""")
    _fd_name = "dropout3d"

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 seed: int | Generator | None = None, bits: int = 16, keep: str = "auto",
                 generator: torch.Generator | None = None, n_threads: int | None = None):
        nn.Dropout3d.__init__(self, p, inplace)
        self._fd_init(seed, bits, "inverted", keep, generator, n_threads)


class AlphaDropout(_FastdropDropout, nn.AlphaDropout):
    __doc__ = f"""Drop-in for ``torch.nn.AlphaDropout`` (SELU networks).

    A subclass of ``torch.nn.AlphaDropout``; calls ``torch.ops.fastdrop.alpha_dropout``.
    As torch's module, ``inplace`` is accepted and ignored.

{_MODULE_PARAMS}
    Raises
    ------
    ValueError
        p outside [0, 1] (torch's message), a bad bits or keep.
    TypeError
        An argument of the wrong type; at a training call, an input that is not a float
        tensor.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> m = fastdrop.torch.AlphaDropout(0.5, seed=42)
    >>> m(torch.zeros(4))
    tensor([ 0.7792,  0.7792, -0.7792, -0.7792])
"""

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 seed: int | Generator | None = None, bits: int = 16, keep: str = "auto",
                 generator: torch.Generator | None = None, n_threads: int | None = None):
        nn.AlphaDropout.__init__(self, p, inplace)
        self._fd_init(seed, bits, "inverted", keep, generator, n_threads)

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            return self._fx_call(input)
        p = self._p()
        if not self.training or p == 0.0 or input.numel() == 0:
            return input
        _check_dtype(input)
        return _run("alpha", input, p, self._next_seed(), self._cfg, None, False)


class FeatureAlphaDropout(_FastdropDropout, nn.FeatureAlphaDropout):
    __doc__ = f"""Drop-in for ``torch.nn.FeatureAlphaDropout``: whole channels, alpha style.

    A subclass of ``torch.nn.FeatureAlphaDropout``; the mask is drawn over (N, C, 1, ...)
    (``fastdrop::alpha_dropout`` with a noise shape). ``inplace`` is ignored, as torch's.

{_MODULE_PARAMS}
    Raises
    ------
    ValueError
        p outside [0, 1] (torch's message), a bad bits or keep.
    RuntimeError
        An input with fewer than 2 dimensions (at the call).
    TypeError
        An argument of the wrong type; at a training call, an input that is not a float
        tensor.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> m = fastdrop.torch.FeatureAlphaDropout(0.5, seed=42)
    >>> m(torch.zeros(1, 4, 2))[0]
    tensor([[ 0.7792,  0.7792],
            [ 0.7792,  0.7792],
            [-0.7792, -0.7792],
            [-0.7792, -0.7792]])
"""

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 seed: int | Generator | None = None, bits: int = 16, keep: str = "auto",
                 generator: torch.Generator | None = None, n_threads: int | None = None):
        nn.FeatureAlphaDropout.__init__(self, p, inplace)
        self._fd_init(seed, bits, "inverted", keep, generator, n_threads)

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            return self._fx_call(input)
        p = self._p()
        if not self.training or p == 0.0 or input.numel() == 0:
            return input
        _check_dtype(input)
        return _feature("alpha", input, p, self._next_seed, self._cfg, False, False)


# ---- TorchScript ----------------------------------------------------------------------------

_SCRIPT_KINDS = {"Dropout": 0, "Dropout1d": 1, "Dropout2d": 2, "Dropout3d": 3,
                 "AlphaDropout": 4, "FeatureAlphaDropout": 5}


class ScriptDropout(nn.Module):
    """The TorchScript form of a fastdrop.torch dropout layer (``torch.jit.script`` builds
    it through ``__prepare_scriptable__``; not meant to be made by hand).

    It calls the same operators (``torch.ops.fastdrop.dropout``, ``alpha_dropout``,
    ``take_stream``) with the layer's configuration, so its masks equal the layer's
    bit for bit. It shares the layer's seed buffer (``fd_state``): an int-seeded layer's
    stream counter advances in both. Seeds from torch's generator are drawn with
    ``torch.randint`` as the layer draws them. The rank warnings of Dropout2d/3d are not
    repeated (TorchScript has no ``stacklevel``); the rank errors are.

    Parameters
    ----------
    layer : Dropout, Dropout1d, Dropout2d, Dropout3d, AlphaDropout or FeatureAlphaDropout

    Raises
    ------
    RuntimeError
        The layer draws from a fastdrop.Generator (Python state) or from a
        ``torch.Generator`` other than the default one: not scriptable.
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        cls = next(c for c in type(layer).__mro__ if c.__name__ in _SCRIPT_KINDS
                   and c.__module__ == __name__)
        name = cls.__name__
        if type(layer).forward is not cls.forward:
            raise RuntimeError(f"torch.jit.script: {type(layer).__name__} overrides "
                               f"fastdrop.torch.{name}.forward; its scripted twin would not "
                               f"run that code")
        if layer._source == "generator":
            raise RuntimeError("torch.jit.script: a fastdrop.torch layer whose seeds come "
                               "from a fastdrop.Generator is not scriptable (Python "
                               "state); give it an int seed or seed=None")
        if layer.torch_generator is not None:
            raise RuntimeError("torch.jit.script: a fastdrop.torch layer with a "
                               "torch.Generator is not scriptable; use the default "
                               "generator (generator=None)")
        bits, mode, keep, nt = layer._cfg
        self.kind = _SCRIPT_KINDS[name]
        self.p = float(layer._p())
        self.inplace = bool(layer.inplace) and self.kind < 4
        self.bits = bits
        self.mode = mode
        self.keep_mask = keep != "seed"  # "auto" keeps the mask in graphs
        self.n_threads = nt
        self.seeded = layer._source == "seed"
        self.keep_prob = 1.0 - _F.effective_p(self.p, bits)
        ns = getattr(layer, "_noise_shape", None)
        self.has_noise = ns is not None
        # never empty: TorchScript infers a list attribute's type from its elements
        self.noise = [-1 if d is None else int(d) for d in (ns or ())] or [0]
        self.register_buffer("fd_state", layer.fd_state, persistent=False)
        self.train(layer.training)

    def _seed(self) -> Tensor:
        if self.seeded:
            return torch.ops.fastdrop.take_stream(self.fd_state)
        w = torch.randint(0, 4294967296, [2], dtype=torch.int64, device=torch.device("cpu"))
        return torch.nn.functional.pad(w, [0, 1])

    def forward(self, input: Tensor) -> Tensor:
        """The layer's forward (training or eval) in TorchScript."""
        if self.kind == 1 and input.dim() != 2 and input.dim() != 3:
            raise RuntimeError("dropout1d: Expected 2D or 3D input, but received a "
                               + str(input.dim()) + "D input.")
        if not self.training:
            if self.kind == 0 and self.mode == "classic":
                # as _eval_classic: the half types in float32, rounded once
                if input.dtype == torch.float16 or input.dtype == torch.bfloat16:
                    res = (input.float() * self.keep_prob).to(input.dtype)
                else:
                    res = input * self.keep_prob
                return input.copy_(res) if self.inplace else res
            return input
        if self.p == 0.0 or input.numel() == 0:
            return input
        unbatched = (self.kind == 1 and input.dim() == 2) or \
            (self.kind == 3 and input.dim() != 5)
        v = input.unsqueeze(0) if unbatched else input
        noise: Optional[List[int]] = None
        if self.kind == 0 and self.has_noise:
            if len(self.noise) != v.dim():
                raise ValueError("noise_shape must have one entry per axis of input")
            ns: List[int] = []
            for i in range(v.dim()):
                ns.append(v.shape[i] if self.noise[i] < 0 else self.noise[i])
            noise = ns
        elif self.kind != 0 and self.kind != 4:
            if v.dim() < 2:
                raise RuntimeError("Feature dropout requires at least 2 dimensions in the "
                                   "input")
            ns2: List[int] = [v.shape[0], v.shape[1]]
            for _ in range(v.dim() - 2):
                ns2.append(1)
            noise = ns2
        seed = self._seed()
        if self.kind >= 4:
            y = torch.ops.fastdrop.alpha_dropout(v, seed, self.p, self.bits, noise,
                                                 self.keep_mask, self.n_threads)[0]
        else:
            y = torch.ops.fastdrop.dropout(v, seed, self.p, self.bits, self.mode, noise,
                                           self.keep_mask, self.n_threads)[0]
        if unbatched:
            y = y.squeeze(0)
        if self.inplace:
            return input.copy_(y)
        return y


# ---- replace_dropout ------------------------------------------------------------------------

_TWINS = {nn.Dropout: Dropout, nn.Dropout1d: Dropout1d, nn.Dropout2d: Dropout2d,
          nn.Dropout3d: Dropout3d, nn.AlphaDropout: AlphaDropout,
          nn.FeatureAlphaDropout: FeatureAlphaDropout}


def replace_dropout(model: nn.Module, *, seed: int | None = None, bits: int = 16,
                    keep: str = "auto", n_threads: int | None = None
                    ) -> list[tuple[str, nn.Module]]:
    """Swap every torch dropout module of `model`, in place, for its fastdrop twin.

    ``nn.Dropout``, ``Dropout1d``, ``Dropout2d``, ``Dropout3d``, ``AlphaDropout`` and
    ``FeatureAlphaDropout`` (exactly those classes, not subclasses) become this module's
    class of the same name, with the same ``p``, ``inplace`` and training mode, its seed
    buffer on the device of the model's first parameter or buffer. A module reachable
    under several names is replaced by one twin. `model` itself is not replaced (a caller
    holds it); nn.Transformer layers are handled (their ``dropout``, ``dropout1``,
    ``dropout2`` modules).

    Not reachable: the attention-probability dropout of ``nn.MultiheadAttention`` and of
    ``F.scaled_dot_product_attention`` (``dropout_p``) is a float argument of a function,
    not a module; it stays torch's (it is inactive in eval mode and when the attention's
    dropout is 0).

    Parameters
    ----------
    model : torch.nn.Module
        Changed in place.
    seed : int, optional
        None: every twin draws its seeds from torch's generator. An int: twin k (in
        ``named_modules`` order) gets this seed and starts at stream ``k * 2**32``, so
        the layers never share a stream.
    bits, keep, n_threads
        As in `Dropout`.

    Returns
    -------
    list of (str, torch.nn.Module)
        The qualified name of every replaced module and the torch module it was.

    Raises
    ------
    TypeError
        model is not an nn.Module.
    ValueError, TypeError
        A bad seed, bits, keep or n_threads (nothing is replaced).

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1)
    >>> [name for name, _ in fastdrop.torch.replace_dropout(layer)]
    ['dropout', 'dropout1', 'dropout2']
    >>> type(layer.dropout1).__module__, layer.dropout1.p
    ('fastdrop.torch', 0.1)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if seed is not None:
        check_uint64(seed, "seed")
    _config(bits, "inverted", keep, n_threads)  # checked before anything changes
    ref = next(model.parameters(), None)
    if ref is None:
        ref = next(model.buffers(), None)
    device = None if ref is None else ref.device
    twins: dict[int, nn.Module] = {}
    replaced = []
    for parent, name, qualified, child in list(_walk(model, "")):
        twin_cls = _TWINS.get(type(child))
        if twin_cls is not None:
            twin = twins.get(id(child))
            if twin is None:
                k = len(twins)
                twin = twin_cls(child.p, child.inplace, bits=bits, keep=keep,
                                n_threads=n_threads, seed=seed)
                if seed is not None:
                    twin.set_state({"seed": seed, "stream": k << 32})
                twin.train(child.training)
                if device is not None:
                    twin.to(device)
                twins[id(child)] = twin
                replaced.append((qualified, child))
            setattr(parent, name, twin)
    return replaced


def _walk(module: nn.Module, prefix: str):
    """(parent, name, qualified name, child), depth first as ``named_modules``; a shared
    module is visited under each of its names (``named_children`` would skip a module's
    second name under the same parent)."""
    for name, child in list(module._modules.items()):
        if child is None:
            continue
        q = f"{prefix}.{name}" if prefix else name
        yield module, name, q, child
        yield from _walk(child, q)


if _cpp_draw.env_requested():  # FASTDROP_TORCH_CPP=1
    try:
        _cpp_draw.load()
    except RuntimeError as _exc:
        warnings.warn(f"{_cpp_draw.ENV}=1: {_exc}", RuntimeWarning, stacklevel=2)


# ---- DistributedDataParallel ----------------------------------------------------------------


def ddp_local_seeds(model: nn.Module) -> list[str]:
    """Keep each fastdrop layer's seed buffer out of DistributedDataParallel's buffer sync.

    DDP broadcasts rank 0's buffers to every rank when it wraps a model and, with
    ``broadcast_buffers=True`` (its default), before each forward. A layer's seed and
    stream live in a buffer (``fd_state``), so per-rank int seeds
    (``Dropout(p, seed=base + rank)``, ``replace_dropout(model, seed=base + rank)``) would
    become rank 0's and every rank would draw rank 0's masks. Call this on the model
    before wrapping it: it names those buffers in DDP's own ignore list
    (``DistributedDataParallel._set_params_and_buffers_to_ignore_for_model``, the hook
    torch provides for this), added to what the list already holds. Layers seeded by
    torch's generator (``seed=None``) hold no seed in the buffer and draw as torch's
    dropout does; their buffers are listed too (harmless).

    Parameters
    ----------
    model : torch.nn.Module
        The module DDP will wrap (the names are relative to it).

    Returns
    -------
    list of str
        The buffers' qualified names.

    Raises
    ------
    TypeError
        model is not an nn.Module.

    Examples
    --------
    >>> import torch, fastdrop.torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), fastdrop.torch.Dropout(0.1, seed=3))
    >>> fastdrop.torch.ddp_local_seeds(model)
    ['1.fd_state']
    >>> model._ddp_params_and_buffers_to_ignore
    ['1.fd_state']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    from torch.nn.parallel import DistributedDataParallel

    names = [f"{n}.fd_state" if n else "fd_state" for n, m in model.named_modules()
             if isinstance(m, _FastdropDropout)]
    ignored = list(getattr(model, "_ddp_params_and_buffers_to_ignore", ()))
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        model, ignored + [n for n in names if n not in ignored])
    return names
