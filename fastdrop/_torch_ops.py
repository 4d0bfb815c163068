"""fastdrop's kernels as PyTorch operators (``torch.library.custom_op``), for fastdrop.torch.

Operators (namespace ``fastdrop``), each with a fake (meta) implementation, an autograd
formula, a vmap rule, a CPU implementation on the tensors' own memory and a device
implementation through ``fastdrop._core.route.device_implementation``:

- ``fastdrop::dropout(x, seed, p, bits, mode, noise_shape, return_mask, n_threads)
  -> (y, mask)``
- ``fastdrop::dropout_(x!, seed, p, bits, dropout_mode, noise_shape, return_mask, n_threads)
  -> mask``: in place (x is mutated); no autograd formula (see `DropoutInplaceFunction`)
- ``fastdrop::dropout_backward(grad, seed, mask, p, bits, mode, noise_shape, n_threads)
  -> dx``
- ``fastdrop::alpha_dropout(x, seed, p, bits, noise_shape, return_mask, n_threads)
  -> (y, mask)``
- ``fastdrop::alpha_dropout_backward(grad, seed, mask, p, bits, noise_shape, n_threads)
  -> dx``
- ``fastdrop::bias_dropout_add(x, bias, residual, seed, p, bits, return_mask, n_threads)
  -> (y, mask)``
- ``fastdrop::bias_dropout_add_backward(grad, seed, mask, p, bits, has_bias, n_threads)
  -> (dx, dbias)``

``seed`` is an int64 tensor of shape (3,): ``[seed mod 2**32, seed div 2**32, stream]``
(the stream's 64 bits as a two's-complement int64). It is a tensor, not a Python int, so
that a compiled graph takes a new seed or stream as data: no guard, no recompile. ``mask``
is the packed uint8 mask (docs/contract.md section 5); when ``return_mask`` is False the
operators return an empty one and the backward regenerates the mask from ``seed``.
``noise_shape`` has one int per axis (-1: that axis's size, as in ``Tensor.expand``, which
is what ``torch.jit.trace`` records so that a traced graph takes other shapes) or is None;
``n_threads`` 0 means
``torch.get_num_threads()``.

The backward of every operator is itself one of these operators (the maps are diagonal,
hence self-adjoint), so double backward composes. ``fastdrop::take_stream(state)`` returns
a copy of a module's seed tensor and advances its stream in place (what compiled code
calls).

`entry` picks what a call goes through: the operators (compiled and exported code, fake
and meta tensors, dispatch modes, the profiler), `torch.autograd.Function`s on the
operators under a ``torch.func`` transform (torch.func rejects a custom op's own autograd
formula), or, for plain eager CPU tensors, classic Functions on the operators'
implementations (the same kernels and bits, less per-call Python).
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

import torch
from torch import Tensor

from . import functional as F
from ._core.interop import DeviceArrayError, numpy_to_torch, to_host_array
from ._core.route import device_implementation, fast_path
from ._cpu import _torch_lean as _lean_c

__all__ = ["take_stream", "dropout", "dropout_", "dropout_backward", "alpha_dropout",
           "alpha_dropout_backward", "bias_dropout_add", "bias_dropout_add_backward", "seed_words", "seed_tensor",
           "MASK64"]

MASK64 = (1 << 64) - 1
_LO32 = (1 << 32) - 1


def seed_tensor(seed: int, stream: int, device=None) -> Tensor:
    """The (3,) int64 seed tensor of an unsigned 64-bit seed and stream."""
    st = stream - (1 << 64) if stream >= (1 << 63) else stream
    return torch.tensor([seed & _LO32, seed >> 32, st], dtype=torch.int64, device=device)


def seed_words(seed: Tensor) -> tuple[int, int]:
    """(seed, stream) as unsigned 64-bit Python ints, from a (3,) seed tensor."""
    lo, hi, st = seed.tolist()
    return ((lo & _LO32) | ((hi & _LO32) << 32)), st & MASK64


def _nthreads(n: int) -> int:
    return n if n > 0 else torch.get_num_threads()


def _nbytes(x: Tensor, noise_shape, return_mask: bool):
    if not return_mask:
        return 0
    n = x.numel() if noise_shape is None else _prod(_ns(noise_shape, x.shape))
    return (n + 7) // 8


def _prod(shape):
    n = 1
    for d in shape:
        n = n * d
    return n


def _ns(noise_shape, shape):
    """The noise shape for an operand of this shape, its -1 entries (that axis's size, as
    in ``Tensor.expand``: what ``torch.jit.trace`` records) resolved."""
    if noise_shape is None:
        return None
    if len(noise_shape) != len(shape):
        return tuple(noise_shape)  # (the kernel's error)
    return tuple(s if d == -1 else d for d, s in zip(noise_shape, shape))


def _device(name: str, t: Tensor):
    impl = device_implementation(name, t)
    if impl is None:
        raise NotImplementedError(
            f"fastdrop.torch: tensors on {t.device} are not supported (CPU tensors only; "
            f"no GPU implementation of fastdrop.{name} is registered)")
    return impl


def _host(t: Tensor, name: str, writable: bool = False):
    """A NumPy view of a CPU tensor (no copy), or None for a device tensor."""
    try:
        return to_host_array(t, name, writable=writable)[0]
    except DeviceArrayError:
        return None


def _empty_mask(x: Tensor, n: int) -> Tensor:
    return torch.empty((n,), dtype=torch.uint8, device=x.device)


# ---- the stream counter ---------------------------------------------------------------------


@torch.library.custom_op("fastdrop::take_stream", mutates_args=("state",))
def take_stream(state: Tensor) -> Tensor:
    """A copy of the seed tensor `state`, whose stream is then advanced in place.

    What a module's training call does inside compiled code. An operator, not
    ``state.clone()`` and ``add_``: inductor may drop a clone of a graph input and save the
    input itself for the backward pass, which would then read the advanced stream; the
    output of an opaque operator is a value of its own."""
    out = state.clone()
    state.narrow(0, 2, 1).add_(1)
    return out


@take_stream.register_fake
def _(state):
    return torch.empty_like(state)


# ---- dropout --------------------------------------------------------------------------------


def dropout_impl(x: Tensor, seed: Tensor, p: float, bits: int, mode: str,
            noise_shape: Optional[Sequence[int]], return_mask: bool,
            n_threads: int) -> tuple[Tensor, Tensor]:
    s, st = seed_words(seed)
    ns = _ns(noise_shape, x.shape)
    kw = dict(seed=s, stream=st, mode=mode, noise_shape=ns, bits=bits,
              return_mask=return_mask)
    y = torch.empty_like(x)
    xa = _host(x, "input")
    if xa is None:
        res = _device("dropout", x)(x, p, out=y, **kw)
        return res if return_mask else (res, _empty_mask(x, 0))
    res = F.dropout(xa, p, out=_host(y, "out", True), n_threads=_nthreads(n_threads), **kw)
    if return_mask:
        return y, torch.from_numpy(res[1])
    return y, _empty_mask(x, 0)


dropout = torch.library.custom_op(
    "fastdrop::dropout", mutates_args=())(dropout_impl)


@dropout.register_fake
def _(x, seed, p, bits, mode, noise_shape, return_mask, n_threads):
    return torch.empty_like(x), _empty_mask(x, _nbytes(x, noise_shape, return_mask))


def dropout_backward_impl(grad: Tensor, seed: Tensor, mask: Optional[Tensor], p: float,
                     bits: int, mode: str, noise_shape: Optional[Sequence[int]],
                     n_threads: int) -> Tensor:
    kw = dict(mode=mode, noise_shape=_ns(noise_shape, grad.shape), bits=bits)
    if mask is not None:
        kw["mask"] = mask
    else:
        kw["seed"], kw["stream"] = seed_words(seed)
    out = torch.empty_like(grad)
    ga = _host(grad, "grad")
    if ga is None:
        return _device("dropout_backward", grad)(grad, p, out=out, **kw)
    if mask is not None:
        kw["mask"] = _host(mask, "mask")
    F.dropout_backward(ga, p, out=_host(out, "out", True), n_threads=_nthreads(n_threads),
                       **kw)
    return out


dropout_backward = torch.library.custom_op(
    "fastdrop::dropout_backward", mutates_args=())(dropout_backward_impl)


@dropout_backward.register_fake
def _(grad, seed, mask, p, bits, mode, noise_shape, n_threads):
    return torch.empty_like(grad)


def dropout_inplace_impl(x: Tensor, seed: Tensor, p: float, bits: int, dropout_mode: str,
                         noise_shape: Optional[Sequence[int]], return_mask: bool,
                         n_threads: int) -> Tensor:
    # (not "mode": torch's mode redirection for mutating operators takes that name)
    s, st = seed_words(seed)
    kw = dict(seed=s, stream=st, mode=dropout_mode, noise_shape=_ns(noise_shape, x.shape),
              bits=bits, return_mask=return_mask)
    xa = _host(x.detach(), "input", True)
    if xa is None:
        res = _device("dropout", x)(x, p, out=x, **kw)
        return res[1] if return_mask else _empty_mask(x, 0)
    res = F.dropout(xa, p, out=xa, n_threads=_nthreads(n_threads), **kw)
    return torch.from_numpy(res[1]) if return_mask else _empty_mask(x, 0)


dropout_ = torch.library.custom_op(
    "fastdrop::dropout_", mutates_args=("x",))(dropout_inplace_impl)
dropout_.__doc__ = """``fastdrop::dropout_``: dropout of x in place (x mutated, declared so to
torch.library, hence functionalized under torch.compile and re-inplaced by inductor);
returns the packed mask (empty unless return_mask). No autograd formula (torch.library
has none for mutating operators): under autograd, `DropoutInplaceFunction`."""


@dropout_.register_fake
def _(x, seed, p, bits, dropout_mode, noise_shape, return_mask, n_threads):
    return _empty_mask(x, _nbytes(x, noise_shape, return_mask))


# ---- alpha dropout --------------------------------------------------------------------------


def alpha_dropout_impl(x: Tensor, seed: Tensor, p: float, bits: int,
                  noise_shape: Optional[Sequence[int]], return_mask: bool,
                  n_threads: int) -> tuple[Tensor, Tensor]:
    s, st = seed_words(seed)
    kw = dict(seed=s, stream=st, noise_shape=_ns(noise_shape, x.shape), bits=bits,
              return_mask=return_mask)
    y = torch.empty_like(x)
    xa = _host(x, "input")
    if xa is None:
        res = _device("alpha_dropout", x)(x, p, out=y, **kw)
        return res if return_mask else (res, _empty_mask(x, 0))
    res = F.alpha_dropout(xa, p, out=_host(y, "out", True), n_threads=_nthreads(n_threads),
                          **kw)
    if return_mask:
        return y, torch.from_numpy(res[1])
    return y, _empty_mask(x, 0)


alpha_dropout = torch.library.custom_op(
    "fastdrop::alpha_dropout", mutates_args=())(alpha_dropout_impl)


@alpha_dropout.register_fake
def _(x, seed, p, bits, noise_shape, return_mask, n_threads):
    return torch.empty_like(x), _empty_mask(x, _nbytes(x, noise_shape, return_mask))


def alpha_dropout_backward_impl(grad: Tensor, seed: Tensor, mask: Optional[Tensor], p: float,
                           bits: int, noise_shape: Optional[Sequence[int]],
                           n_threads: int) -> Tensor:
    kw = dict(noise_shape=_ns(noise_shape, grad.shape), bits=bits)
    if mask is not None:
        kw["mask"] = mask
    else:
        kw["seed"], kw["stream"] = seed_words(seed)
    out = torch.empty_like(grad)
    ga = _host(grad, "grad")
    if ga is None:
        return _device("alpha_dropout_backward", grad)(grad, p, out=out, **kw)
    if mask is not None:
        kw["mask"] = _host(mask, "mask")
    F.alpha_dropout_backward(ga, p, out=_host(out, "out", True),
                             n_threads=_nthreads(n_threads), **kw)
    return out


alpha_dropout_backward = torch.library.custom_op(
    "fastdrop::alpha_dropout_backward", mutates_args=())(alpha_dropout_backward_impl)


@alpha_dropout_backward.register_fake
def _(grad, seed, mask, p, bits, noise_shape, n_threads):
    return torch.empty_like(grad)


# ---- bias-dropout-add -----------------------------------------------------------------------


@torch.library.custom_op("fastdrop::bias_dropout_add", mutates_args=())
def bias_dropout_add(x: Tensor, bias: Optional[Tensor], residual: Tensor, seed: Tensor,
                     p: float, bits: int, return_mask: bool,
                     n_threads: int) -> tuple[Tensor, Tensor]:
    s, st = seed_words(seed)
    kw = dict(seed=s, stream=st, bits=bits, return_mask=return_mask)
    y = torch.empty_like(x)
    xa = _host(x, "x")
    if xa is None:
        res = _device("bias_dropout_add", x)(x, bias, residual, p, out=y, **kw)
        return res if return_mask else (res, _empty_mask(x, 0))
    ba = None if bias is None else _host(bias, "bias")
    res = F.bias_dropout_add(xa, ba, _host(residual, "residual"), p,
                             out=_host(y, "out", True), n_threads=_nthreads(n_threads), **kw)
    if return_mask:
        return y, torch.from_numpy(res[1])
    return y, _empty_mask(x, 0)


@bias_dropout_add.register_fake
def _(x, bias, residual, seed, p, bits, return_mask, n_threads):
    return torch.empty_like(x), _empty_mask(x, _nbytes(x, None, return_mask))


@torch.library.custom_op("fastdrop::bias_dropout_add_backward", mutates_args=())
def bias_dropout_add_backward(grad: Tensor, seed: Tensor, mask: Optional[Tensor], p: float,
                              bits: int, has_bias: bool,
                              n_threads: int) -> tuple[Tensor, Tensor]:
    kw = dict(bits=bits, has_bias=has_bias)
    if mask is not None:
        kw["mask"] = mask
    else:
        kw["seed"], kw["stream"] = seed_words(seed)
    ga = _host(grad, "grad")
    if ga is None:
        dx, db, _ = _device("bias_dropout_add_backward", grad)(grad, p, **kw)
    else:
        if mask is not None:
            kw["mask"] = _host(mask, "mask")
        dx, db, _ = F.bias_dropout_add_backward(ga, p, n_threads=_nthreads(n_threads), **kw)
        dx = numpy_to_torch(dx)
        db = None if db is None else numpy_to_torch(db)
    if dx.stride() != grad.stride():  # the fake's layout: grad's, as empty_like gives
        dx = torch.empty_like(grad).copy_(dx)
    if db is None:
        db = grad.new_empty((0,))
    return dx, db


@bias_dropout_add_backward.register_fake
def _(grad, seed, mask, p, bits, has_bias, n_threads):
    nb = grad.shape[-1] if has_bias else 0
    return torch.empty_like(grad), grad.new_empty((nb,))


# ---- autograd -------------------------------------------------------------------------------
# y = D x (+ b for alpha dropout), D diagonal: dx = D dy, through the backward operator,
# whose own derivative is D again. Dropout and alpha dropout are two such families with
# the same shape of arguments: forward (x, seed, *cfg, return_mask, n_threads), backward
# (grad, seed, mask, *cfg, n_threads), cfg being (p, bits, mode, noise_shape) for dropout
# and (p, bits, noise_shape) for alpha dropout. Each piece below is written once for both
# (`_register_diagonal`, `_func_pair`, `_eager_pair`).


def _backward_args(inputs) -> tuple:
    """The backward operator's arguments after (grad, seed, mask), (*cfg, n_threads), of a
    forward call's inputs."""
    return tuple(inputs[2:-2]) + (inputs[-1],)


def _nones(args) -> tuple:
    """The None gradients of a call's other inputs: seed, mask or return_mask, and args."""
    return (None,) * (len(args) + 2)


def _bda_setup(ctx, inputs, output):
    x, bias, residual, seed, p, bits, return_mask, n_threads = inputs
    ctx.save_for_backward(seed, output[1] if return_mask else None)
    ctx.args = (p, bits, bias is not None, n_threads)


def _bda_bwd(ctx, gy, gmask):
    seed, mask = ctx.saved_tensors
    p, bits, has_bias, n_threads = ctx.args
    dx, db = bias_dropout_add_backward(gy, seed, mask, p, bits, has_bias, n_threads)
    return dx, (db if has_bias else None), gy, None, None, None, None, None


bias_dropout_add.register_autograd(_bda_bwd, setup_context=_bda_setup)


def _bda_backward_setup(ctx, inputs, output):
    grad, seed, mask, p, bits, has_bias, n_threads = inputs
    ctx.save_for_backward(seed, mask)
    ctx.args = (p, bits, has_bias, n_threads)


def _bda_backward_bwd(ctx, ggx, ggb):
    # dx = D g, dbias = sum_rows(D g): the adjoint maps (ggx, ggb) to D (ggx + ggb)
    seed, mask = ctx.saved_tensors
    p, bits, has_bias, n_threads = ctx.args
    v = ggx
    if has_bias and ggb is not None:
        v = ggb.expand(ctx.shape) if v is None else v + ggb
    if v is None:
        return (None,) * 7
    dg = dropout_backward(v, seed, mask, p, bits, "inverted", None, n_threads)
    return dg, None, None, None, None, None, None


def _bda_backward_setup_shape(ctx, inputs, output):
    _bda_backward_setup(ctx, inputs, output)
    ctx.shape = inputs[0].shape


bias_dropout_add_backward.register_autograd(_bda_backward_bwd,
                                            setup_context=_bda_backward_setup_shape)


# ---- vmap -----------------------------------------------------------------------------------
# Each batch element gets exactly what the unbatched call gives it. An unbatched seed (and
# mask) with a batched input: one call over the whole batch with the noise shape
# (1, *noise_shape), whose mask is the unbatched one broadcast over the batch. A batched
# seed or mask: one call per element.


def _front(t, d, size):
    if d is None:
        return t.unsqueeze(0).expand((size,) + tuple(t.shape))
    return t.movedim(d, 0)


def _stacked(results):
    if isinstance(results[0], tuple):
        return tuple(torch.stack([r[i] for r in results]) for i in range(len(results[0])))
    return torch.stack(results)


def _vmap_forward(op, info, in_dims, x, seed, *args):
    """args: (*cfg, return_mask, n_threads), cfg ending in noise_shape."""
    *head, noise_shape, return_mask, n_threads = args
    xd, sd = in_dims[0], in_dims[1]
    B = info.batch_size
    xb = _front(x, xd, B)
    if sd is None:
        ns = tuple(xb.shape[1:]) if noise_shape is None else tuple(noise_shape)
        y, m = op(xb, seed, *head, (1,) + ns, return_mask, n_threads)
        return (y, m), (0, None)
    sb = seed.movedim(sd, 0)
    res = [op(xb[i], sb[i], *head, noise_shape, return_mask, n_threads) for i in range(B)]
    return _stacked(res), (0, 0)


def _vmap_backward(op, info, in_dims, grad, seed, mask, *args):
    """args: (*cfg, n_threads), cfg ending in noise_shape."""
    *head, noise_shape, n_threads = args
    gd, sd, md = in_dims[0], in_dims[1], in_dims[2]
    B = info.batch_size
    gb = _front(grad, gd, B)
    if sd is None and md is None:
        ns = tuple(gb.shape[1:]) if noise_shape is None else tuple(noise_shape)
        return op(gb, seed, mask, *head, (1,) + ns, n_threads), 0
    sb = _front(seed, sd, B)
    mb = None if mask is None else _front(mask, md, B)
    res = [op(gb[i], sb[i], None if mb is None else mb[i], *head, noise_shape, n_threads)
           for i in range(B)]
    return _stacked(res), 0


def _register_diagonal(fwd, bwd) -> None:
    """The autograd formulas and vmap rules of one diagonal family's two operators."""

    def setup(ctx, inputs, output):
        return_mask = inputs[-2]
        ctx.save_for_backward(inputs[1], output[1] if return_mask else None)
        ctx.args = _backward_args(inputs)

    def backward(ctx, gy, gmask):
        seed, mask = ctx.saved_tensors
        return (bwd(gy, seed, mask, *ctx.args),) + _nones(ctx.args)

    def setup_backward(ctx, inputs, output):
        ctx.save_for_backward(inputs[1], inputs[2])
        ctx.args = tuple(inputs[3:])

    def backward_backward(ctx, gg):
        seed, mask = ctx.saved_tensors
        return (bwd(gg, seed, mask, *ctx.args),) + _nones(ctx.args)

    fwd.register_autograd(backward, setup_context=setup)
    bwd.register_autograd(backward_backward, setup_context=setup_backward)
    fwd.register_vmap(lambda info, in_dims, *args: _vmap_forward(fwd, info, in_dims, *args))
    bwd.register_vmap(lambda info, in_dims, *args: _vmap_backward(bwd, info, in_dims, *args))


_register_diagonal(dropout, dropout_backward)
_register_diagonal(alpha_dropout, alpha_dropout_backward)


@bias_dropout_add.register_vmap
def _(info, in_dims, x, bias, residual, seed, p, bits, return_mask, n_threads):
    # the mask is drawn over x's whole (per-element) shape: one call per batch element
    B = info.batch_size
    xd, bd, rd, sd = in_dims[:4]
    xb, rb = _front(x, xd, B), _front(residual, rd, B)
    bb = None if bias is None else _front(bias, bd, B)
    sb = _front(seed, sd, B)
    res = [bias_dropout_add(xb[i], None if bb is None else bb[i], rb[i], sb[i], p, bits,
                            return_mask, n_threads) for i in range(B)]
    return _stacked(res), (0, 0)


@bias_dropout_add_backward.register_vmap
def _(info, in_dims, grad, seed, mask, p, bits, has_bias, n_threads):
    B = info.batch_size
    gd, sd, md = in_dims[:3]
    gb, sb = _front(grad, gd, B), _front(seed, sd, B)
    mb = None if mask is None else _front(mask, md, B)
    res = [bias_dropout_add_backward(gb[i], sb[i], None if mb is None else mb[i], p, bits,
                                     has_bias, n_threads) for i in range(B)]
    return _stacked(res), (0, 0)


# ---- entry points under torch.func: autograd.Functions ------------------------------------
# torch.func (grad, jacrev, jvp, functional_call) does not accept the autograd formula of a
# custom_op (its generated Function has no setup_context) and dynamo refuses a Function
# with a custom jvp. So calls under a torch.func transform go through these Functions
# (setup_context, jvp, vmap through the operators' own rules); everything else, compiled
# and exported code included, calls the operators, whose registered autograd AOTAutograd
# uses. Both run exactly the same operators.


def _function(name: str, doc: str, **methods) -> type:
    """An autograd.Function subclass made under its own name (torch names the node class
    of its graph, ``grad_fn``, after it: NameBackward), the methods static."""
    ns = {k: v if k == "generate_vmap_rule" else staticmethod(v) for k, v in methods.items()}
    return type(name, (torch.autograd.Function,), dict(ns, __doc__=doc))


def _func_pair(name: str, fwd, bwd):
    """The torch.func entry points of one diagonal family: (NameFunction,
    NameBackwardFunction), with backward, jvp and generated vmap rules; the backward is
    differentiable again (the same diagonal map)."""

    def b_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[1], inputs[2])
        ctx.save_for_forward(inputs[1], inputs[2])
        ctx.args = tuple(inputs[3:])

    def b_backward(ctx, gg):
        seed, mask = ctx.saved_tensors
        return (Backward.apply(gg, seed, mask, *ctx.args),) + _nones(ctx.args)

    def b_jvp(ctx, gt, *rest):
        seed, mask = ctx.saved_tensors
        return bwd(gt, seed, mask, *ctx.args)

    def f_setup(ctx, inputs, output):
        return_mask = inputs[-2]
        mask = output[1] if return_mask else None
        ctx.save_for_backward(inputs[1], mask)
        ctx.save_for_forward(inputs[1], mask)
        ctx.args = _backward_args(inputs)
        ctx.mark_non_differentiable(output[1])

    def f_backward(ctx, gy, gmask):
        seed, mask = ctx.saved_tensors
        return (Backward.apply(gy, seed, mask, *ctx.args),) + _nones(ctx.args)

    def f_jvp(ctx, xt, *rest):
        seed, mask = ctx.saved_tensors
        return bwd(xt, seed, mask, *ctx.args), None

    def b_forward(grad, seed, mask, *args):
        return bwd(grad, seed, mask, *args)

    def f_forward(x, seed, *args):
        return fwd(x, seed, *args)

    Backward = _function(name + "BackwardFunction",
                         f"{name}'s backward operator, differentiable again (torch.func).",
                         generate_vmap_rule=True, forward=b_forward, setup_context=b_setup,
                         backward=b_backward, jvp=b_jvp)
    Forward = _function(name + "Function",
                        f"{name}'s operator with a backward, a jvp and a vmap rule usable by "
                        "torch.func.", generate_vmap_rule=True, forward=f_forward,
                        setup_context=f_setup, backward=f_backward, jvp=f_jvp)
    return Forward, Backward


DropoutFunction, DropoutBackwardFunction = _func_pair("Dropout", dropout, dropout_backward)
AlphaDropoutFunction, AlphaDropoutBackwardFunction = _func_pair(
    "AlphaDropout", alpha_dropout, alpha_dropout_backward)


class BiasDropoutAddFunction(torch.autograd.Function):
    """fastdrop::bias_dropout_add for torch.func: y = residual + D (x + bias)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, bias, residual, seed, p, bits, return_mask, n_threads):
        return bias_dropout_add(x, bias, residual, seed, p, bits, return_mask, n_threads)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, bias, residual, seed, p, bits, return_mask, n_threads = inputs
        mask = output[1] if return_mask else None
        ctx.save_for_backward(seed, mask)
        ctx.save_for_forward(seed, mask)
        ctx.args = (p, bits, n_threads)
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, gy, gmask):
        seed, mask = ctx.saved_tensors
        p, bits, n_threads = ctx.args
        # the operator, as compiled code uses: dbias accumulated in float64, bit for bit
        # the same (differentiable again through the operator's own autograd formula)
        dx, db = bias_dropout_add_backward(gy, seed, mask, p, bits, ctx.has_bias, n_threads)
        return dx, (db if ctx.has_bias else None), gy, None, None, None, None, None

    @staticmethod
    def jvp(ctx, xt, bt, rt, *rest):
        seed, mask = ctx.saved_tensors
        p, bits, n_threads = ctx.args
        v = xt
        if bt is not None:
            v = bt.expand(xt.shape) if v is None else v + bt
        out = rt
        if v is not None:
            d = dropout_backward(v, seed, mask, p, bits, "inverted", None, n_threads)
            out = d if out is None else out + d
        return out, None


def _eager_pair(name: str, fwd_impl, bwd_impl):
    """Plain eager CPU calls of one diagonal family: the operators' own implementations
    under classic autograd.Functions (no dispatcher round trip, no signature binding):
    the same kernels, the same bits, a fraction of the per-call cost. Returns
    (_EagerName, _EagerNameBackward)."""

    def b_forward(ctx, grad, seed, mask, *args):
        ctx.save_for_backward(seed, mask)
        ctx.args = args
        return bwd_impl(grad, seed, mask, *args)

    def b_backward(ctx, gg):
        seed, mask = ctx.saved_tensors
        return (Backward.apply(gg, seed, mask, *ctx.args),) + _nones(ctx.args)

    def f_forward(ctx, x, seed, *args):
        y, mask = fwd_impl(x, seed, *args)
        return_mask = args[-2]
        ctx.save_for_backward(seed, mask if return_mask else None)
        ctx.args = _backward_args((x, seed) + args)
        ctx.mark_non_differentiable(mask)
        return y, mask

    def f_backward(ctx, gy, gmask):
        seed, mask = ctx.saved_tensors
        return (Backward.apply(gy, seed, mask, *ctx.args),) + _nones(ctx.args)

    Backward = _function("_Eager" + name + "Backward", f"{name}'s eager backward.",
                         forward=b_forward, backward=b_backward)
    Forward = _function("_Eager" + name, f"{name}'s eager forward.", forward=f_forward,
                        backward=f_backward)
    return Forward, Backward


_EagerDropout, _EagerDropoutBackward = _eager_pair("Dropout", dropout_impl,
                                                   dropout_backward_impl)
_EagerAlphaDropout, _EagerAlphaDropoutBackward = _eager_pair(
    "AlphaDropout", alpha_dropout_impl, alpha_dropout_backward_impl)


class DropoutInplaceFunction(torch.autograd.Function):
    """Eager in-place dropout under autograd: x written in place (``mark_dirty``: the
    version counter is bumped, a leaf is refused), dx = D dy from the seed or mask."""

    @staticmethod
    def forward(ctx, x, seed, p, bits, mode, noise_shape, return_mask, n_threads):
        mask = dropout_inplace_impl(x, seed, p, bits, mode, noise_shape, return_mask,
                                    n_threads)
        ctx.save_for_backward(seed, mask if return_mask else None)
        ctx.args = (p, bits, mode, noise_shape, n_threads)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, gy):
        seed, mask = ctx.saved_tensors
        dx = _EagerDropoutBackward.apply(gy, seed, mask, *ctx.args)
        return dx, None, None, None, None, None, None, None


_PLAIN = (torch.Tensor, torch.nn.Parameter)


# forward-mode AD (torch.autograd.forward_ad): inside a dual level the calls take the
# Functions with a jvp (those of torch.func), whose tangent is D x_t; the classic eager
# Functions and the lean path have none (they would raise, or drop the tangent)
_FWAD = vars(torch.autograd.forward_ad) if hasattr(torch.autograd.forward_ad,
                                                   "_current_level") else None


def dual_level_active() -> bool:
    """Inside ``torch.autograd.forward_ad.dual_level()``."""
    return _FWAD is not None and _FWAD["_current_level"] >= 0


# each entry point once: `X.apply` makes a new bound method at every access, so `entry`'s
# callers can only recognise its answer (`is`) when it hands out these same objects
_ENTRIES = {"dropout": (dropout, DropoutFunction.apply, _EagerDropout.apply),
            "alpha": (alpha_dropout, AlphaDropoutFunction.apply, _EagerAlphaDropout.apply)}
_EAGER_DROPOUT = _ENTRIES["dropout"][2]
_FUNC_DROPOUT = _ENTRIES["dropout"][1]


def entry(kind: str, x: Tensor):
    """The callable for one dropout ("dropout" or "alpha") of x: the operator (compiled
    and exported code, fake and meta tensors, dispatch modes, the profiler, which then
    shows ``fastdrop::...``), the torch.func Functions (under a transform), or, for plain
    eager CPU tensors, the classic Functions on the same implementations."""
    op, func, eager = _ENTRIES[kind]
    if torch.compiler.is_compiling():
        return op
    if torch._C._are_functorch_transforms_active() or dual_level_active():
        return func
    if (type(x) in _PLAIN and x.device.type == "cpu"
            and not torch.autograd.profiler._is_profiler_enabled
            and not torch._C._len_torch_dispatch_stack() and not torch.jit.is_tracing()):
        return eager
    return op


def plain_eager(x: Tensor) -> bool:
    """True when `entry` takes the classic Functions for x (plain eager CPU code)."""
    return entry("dropout", x) is _EAGER_DROPOUT


def use_functions() -> bool:
    """True under a torch.func transform or inside a forward-mode AD dual level (eager):
    call the Functions above. Otherwise
    (plain eager code; dynamo, i.e. compile and export) call the operators, whose
    autograd is cheaper (``Function.apply`` binds its signature with ``inspect`` on
    every call when setup_context is defined)."""
    return (not torch.compiler.is_compiling()) and (
        torch._C._are_functorch_transforms_active() or dual_level_active())


# ---- the lean eager path --------------------------------------------------------------------
# Plain eager calls on plain, C-contiguous CPU tensors (the common training call) skip the
# dispatcher, the seed tensor and the NumPy conversion helpers: one autograd.Function (none
# when no graph is recorded) calls the CPU backend's fast path (fastdrop._core.route.
# fast_path: what fastdrop.dropout itself runs) on the tensors' addresses (its
# "dropout_ptr" entries; NumPy views when they decline).
# Same kernels, same arguments, so the same bits as the operators. Everything else
# (compile, export, torch.func, dispatch and function modes, the profiler, tracing, other
# devices and layouts, bfloat16) takes `entry`'s route.

_fast_fwd = fast_path("dropout")
_fast_bwd = fast_path("dropout_backward")
# the same common call on the tensors' addresses (tensor.data_ptr()): no NumPy view or
# wrap per call; False for a call outside it (then the NumPy route below runs)
_ptr_fwd = fast_path("dropout_ptr")
_ptr_bwd = fast_path("dropout_backward_ptr")
_DTYPE_CODE = {torch.float32: 0, torch.float64: 1, torch.float16: 2}  # DTYPE_CODES
_C = torch._C
_prof = torch.autograd.profiler
_is_compiling = torch.compiler.is_compiling
# Outputs of at most this many elements come from torch.empty_like; larger ones from
# _fresh_like (the same allocator, advised huge pages from _HUGE_BYTES on). The fast path
# writes them through their addresses (tensor.data_ptr(): no NumPy view or wrap per call);
# NumPy views only on its fallback. (NumPy's own allocator, madvise'd huge pages, made glibc
# return and re-fault them on every call: about 500 to 1000 page faults per forward +
# backward from 2^18 to 2^22 elements; torch's: none.)
_NUMPY_ALLOC = 1 << 16
# Outputs of at least this many bytes get madvise(MADV_HUGEPAGE) before their first touch,
# as NumPy does for its own arrays: glibc hands allocations above its largest mmap
# threshold (32 MiB) out as fresh mappings, and faulting those in 4 KiB pages cost more
# than the kernel (measured: 64 MiB, 16385 faults, 88 ms to fill; advised, 544 faults,
# 25 ms). Linux only; elsewhere (or if the call is unavailable) nothing is done.
_HUGE_BYTES = 1 << 25
_PAGE = 4096


def _load_madvise():
    try:
        import ctypes
        import sys

        if not sys.platform.startswith("linux"):
            return None
        fn = ctypes.CDLL(None, use_errno=True).madvise
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        fn.restype = ctypes.c_int
        return fn
    except (OSError, AttributeError):  # pragma: no cover - no libc symbol
        return None


_madvise = _load_madvise()
_MADV_HUGEPAGE = 14


# Outputs (and packed masks) from _RECYCLE_BYTES up are recycled. Each torch.empty_like of
# 32 MiB and more is a fresh mapping (glibc's mmap threshold stops there), whose pages the
# kernel zeroes at first touch, and that cost the forward more than its kernel (2^24
# float32, one thread: 21.6 ms into a fresh output, 10.0 ms into a reused one). Below
# that, glibc's heap may return the freed top of the heap to the system (its trim
# threshold follows the mmap threshold): in about half of the processes measured, from
# 2^18 to 2^22 float32 elements, every page of both outputs faulted again on every
# forward + backward (2^20: 2049 faults per step; in the other processes 0 to 5), so
# that a step's time depended on the process. A few buffers per size are kept, as NumPy
# arrays; a torch tensor made from one holds a reference to it (torch.from_numpy), so a
# buffer whose only reference is the pool's belongs to no tensor and is handed out
# again. At most _POOL_PER_SIZE buffers of a size and _POOL_MAX in all are kept (memory
# that stays with the process, as a caching allocator's), free buffers of the least
# recently used sizes giving way to new sizes (fastdrop/_cpu/_torch_lean.pyx:
# pool_array); FASTDROP_TORCH_RECYCLE=0 turns it off, and `clear_pool()` lets the
# buffers go.
_RECYCLE_BYTES = 1 << 18
_ALIGN = 64
_NP_DTYPE = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}
_RECYCLE = os.environ.get("FASTDROP_TORCH_RECYCLE", "1") != "0"
_POOL: dict = {}
_POOL_PER_SIZE = 4
_POOL_MAX = 8


def clear_pool() -> None:
    """Drop the recycled output buffers (those still in use live on with their tensors)."""
    _POOL.clear()


# NumPy advises its pages huge from 4 MiB; its large arrays are 16-byte aligned, and
# 64-byte vector stores across two cache lines cost the kernels (the backward from a
# packed mask at 2^17 float32: 18.2 us 16 bytes off, 12.6 aligned): pooled arrays start
# on a 64-byte boundary
_lean_c.bind_pool(empty=np.empty, ndarray=np.ndarray, uint8=np.uint8)
_pool_array = _lean_c.pool_array


def _recycled_like(t: Tensor, nbytes: int) -> Tensor | None:
    """A C-contiguous tensor of t's shape and dtype (float16, float32 or float64) on a free
    pooled buffer of nbytes (`_torch_lean.pool_array`), or None. The tensor holds the
    buffer (through a NumPy array whose base is the buffer) as long as its storage lives."""
    dt = _NP_DTYPE.get(t.dtype)
    if dt is None:
        return None
    a = _pool_array(_POOL, nbytes, tuple(t.shape), dt, _POOL_PER_SIZE, _POOL_MAX, _ALIGN)
    return None if a is None else torch.from_numpy(a)


def _fresh_like(t: Tensor) -> Tensor:
    """torch.empty_like(t) of a C-contiguous t; from _RECYCLE_BYTES up a recycled buffer
    (`_recycled_like`); from _HUGE_BYTES up, when not recycled, one whose pages are
    advised huge."""
    nbytes = t.numel() * t.element_size()
    if _RECYCLE and nbytes >= _RECYCLE_BYTES and t.is_contiguous():
        y = _recycled_like(t, nbytes)
        if y is not None:
            return y
    y = torch.empty_like(t)
    nbytes = y.numel() * y.element_size()
    if nbytes >= _HUGE_BYTES and _madvise is not None:
        a = y.data_ptr()
        start, end = (a + _PAGE - 1) & -_PAGE, (a + nbytes) & -_PAGE
        _madvise(start, end - start, _MADV_HUGEPAGE)  # advice only: a failure is harmless
    return y


def _fresh_mask(nbytes: int) -> Tensor:
    """A uint8 tensor of nbytes for a packed mask: recycled from _RECYCLE_BYTES up, as the
    outputs are (`_fresh_like`)."""
    if _RECYCLE and nbytes >= _RECYCLE_BYTES:
        a = _pool_array(_POOL, nbytes, (nbytes,), np.uint8, _POOL_PER_SIZE, _POOL_MAX,
                        _ALIGN)
        if a is not None:
            return torch.from_numpy(a)
    return torch.empty((nbytes,), dtype=torch.uint8)


def lean_input(x) -> bool:
    """True when a dropout of `x` may take the lean path: `lean_code`'s conditions (plain
    eager code, a plain C-contiguous CPU tensor of float16, float32 or float64, no lazy
    negation) and elements."""
    return lean_code(x) >= 0 and x.numel() != 0


def lean_code(x) -> int:
    """`lean_input` as the modules ask it: x's dtype code for the pointer kernels (0
    float32, 1 float64, 2 float16), or -1 when x may not take the lean path (or holds a
    lazy negation, which the pointer kernels do not read). Compilation is checked here,
    in Python (torch.compile folds the check and never reaches the C checks)."""
    return -1 if _is_compiling() else _lean_c.lean_code(x)


take_words = _lean_c.take_words
# fastdrop.torch.Dropout's common training call (bound by fastdrop.torch: bind_module_call)
dropout_call = _lean_c.dropout_call
bind_module_call = _lean_c.bind_module_call

def _lean_forward(xa, key: int, st: int, p: float, bits: int, keep_mask: bool, nt: int,
                  out):
    """(y, packed mask or None) as NumPy arrays: the fast path, else fastdrop.dropout."""
    n = nt if nt > 0 else torch.get_num_threads()
    res = _fast_fwd(xa, p, key, st, True, "inverted", None, bits, keep_mask, "packed", out,
                    n, None)
    if res is None:
        res = F.dropout(xa, p, seed=key, stream=st, bits=bits, return_mask=keep_mask,
                        out=out, n_threads=n)
    return res if keep_mask else (res, None)


def _lean_run(x: Tensor, key: int, st: int, p: float, bits: int, keep_mask: bool, nt: int,
              inplace: bool):
    """(y, packed mask tensor or None) of a lean call: the pointer fast path on the
    tensors' memory (y is x itself when `inplace`), else `_lean_forward` on NumPy views."""
    n = x.numel()
    nth = nt if nt > 0 else torch.get_num_threads()
    y = x if inplace else (torch.empty_like(x) if n <= _NUMPY_ALLOC else _fresh_like(x))
    mt = _fresh_mask((n + 7) // 8) if keep_mask else None
    if not x.is_neg() and _ptr_fwd(x.data_ptr(), y.data_ptr(), n, _DTYPE_CODE[x.dtype], p,
                                   key, st, bits, 0 if mt is None else mt.data_ptr(), nth):
        return y, mt
    xa = x.numpy(force=True)  # a view (x is a CPU tensor, not conjugate or negative)
    _, mask = _lean_forward(xa, key, st, p, bits, keep_mask, nt,
                            xa if inplace else y.numpy())
    return y, None if mask is None else torch.from_numpy(mask)


def _lean_backward(gy: Tensor, key: int, st: int, p: float, bits: int, mt, nt: int
                   ) -> Tensor:
    """dx of a lean call (first order) that the pointer kernel declined
    (`_torch_lean.lean_backward`: a lazy negation, another layout, a tensor subclass):
    NumPy views of gy when it is a plain C-contiguous tensor (the packed mask tensor mt,
    or None: regenerated from the seed), else the operator's implementation (any
    layout)."""
    if type(gy) in _PLAIN and gy.is_contiguous():
        nth = nt if nt > 0 else torch.get_num_threads()
        dt = torch.empty_like(gy) if gy.numel() <= _NUMPY_ALLOC else _fresh_like(gy)
        ga = gy.numpy(force=True)
        dx = _fast_bwd(ga, p, None if mt is None else mt.numpy(),
                       None if mt is not None else key, st, "inverted", None, bits,
                       dt.numpy(), nth, None)
        if dx is not None:
            return dt
    return dropout_backward_impl(gy, seed_tensor(key, st), mt, p, bits, "inverted", None, nt)


def _lean_grad(gy: Tensor, key: int, st: int, p: float, bits: int, mt, nt: int) -> Tensor:
    """dx of a lean call; differentiable under create_graph=True (through the classic
    Functions on the operators' implementations: the same map)."""
    if torch.is_grad_enabled():  # create_graph=True: a differentiable dx
        f = entry("dropout", gy)
        if f is _EAGER_DROPOUT:
            f = _EagerDropoutBackward.apply
        else:
            f = DropoutBackwardFunction.apply if f is _FUNC_DROPOUT else dropout_backward
        return f(gy, seed_tensor(key, st), mt, p, bits, "inverted", None, nt)
    return _lean_backward(gy, key, st, p, bits, mt, nt)


def _lean_backward_fn(ctx, gy):
    """The lean Functions' backward as a Python function, which is what compiled autograd
    traces (dynamo inlines Python functions only): there, through the operator, whose
    seed is data (no guard on it); elsewhere the C function. (Eager backward passes call
    the C function directly: `_backward_cls.apply` below.)"""
    if torch.compiler.is_compiling():
        key, st, p, bits, mt, nt = ctx.fd[:6]
        return dropout_backward(gy, seed_tensor(key, st), mt, p, bits, "inverted", None,
                                nt), None
    return _lean_c.lean_backward(ctx, gy)


class _LeanDropout(torch.autograd.Function):
    """The lean path under autograd: y = D x, dx = D dy; double backward through the
    classic Functions on the operators' implementations (the same map)."""

    @staticmethod
    def forward(ctx, x, cfg):
        key, st, p, bits, keep_mask, nt, inplace = cfg
        y, mt = _lean_run(x, key, st, p, bits, keep_mask, nt, inplace)
        # what the backward needs, as _LeanModuleDropout keeps it (threads > 0)
        ctx.fd = (key, st, p, bits, mt, nt if nt > 0 else torch.get_num_threads(),
                  x.numel(), _DTYPE_CODE[x.dtype])
        if inplace:
            ctx.mark_dirty(x)
        return y

    # dx (the pointer kernel, or _lean_grad), in C: fastdrop/_cpu/_torch_lean.pyx
    backward = staticmethod(_lean_backward_fn)


class _LeanModuleDropout(torch.autograd.Function):
    """`_LeanDropout` for the modules' training call, out of place, with the work the
    module has already done passed in (cfg: key, stream, p, bits, keep the mask, threads
    (> 0), n, dtype code), so that the common call runs the pointer kernels with no
    further checks: the forward + backward of a small tensor is mostly Python calls
    (docs/benchmarks.md). The same bits as `_LeanDropout`."""

    # y and dx (the pointer kernels, or _lean_run and _lean_grad), in C:
    # fastdrop/_cpu/_torch_lean.pyx
    forward = staticmethod(_lean_c.module_forward)
    backward = staticmethod(_lean_backward_fn)


try:  # Function.apply without its Python prologue (signature binding, torch.func checks)
    _lean_apply = super(torch.autograd.Function, _LeanDropout).apply
    lean_module_apply = super(torch.autograd.Function, _LeanModuleDropout).apply
except AttributeError:  # pragma: no cover - another torch's layout
    _lean_apply = _LeanDropout.apply
    lean_module_apply = _LeanModuleDropout.apply
# The engine runs a Function's backward through its ctx class's `apply` (Python: it picks
# backward or vjp, then calls it); the lean backward is called directly (torch calls
# `apply` on the ctx object, then the C function runs with ctx as its first argument)
if getattr(torch.autograd.function.BackwardCFunction, "apply", None) is not None:
    for _f in (_LeanDropout, _LeanModuleDropout):
        _f._backward_cls.apply = _lean_c.lean_backward
# the lean path's checks, bound once (each is one C call)
_functorch_active = _C._are_functorch_transforms_active
_dispatch_modes = _C._len_torch_dispatch_stack
_function_modes = _C._is_torch_function_mode_enabled
_tracing = _C._is_tracing
# seed=None's draws (fastdrop.torch._draw_words), in C on a scratch tensor bound once, or
# through the opt-in C++ extension (fastdrop._torch_draw; FASTDROP_TORCH_CPP=1 at import)
_lean_c.bind_draw(scratch=torch.empty(2, dtype=torch.int64, device="cpu"))
draw_words = _lean_c.draw_words
if hasattr(os, "register_at_fork"):   # the scratch's and the pool's busy flags
    os.register_at_fork(after_in_child=_lean_c.after_fork_in_child)
_lean_c.bind(tensor=torch.Tensor, parameter=torch.nn.Parameter, codes=_DTYPE_CODE,
             functorch_active=_functorch_active, dispatch_modes=_dispatch_modes,
             function_modes=_function_modes, tracing=_tracing, profiler=_prof,
             grad_enabled=torch.is_grad_enabled, fresh_mask=_fresh_mask,
             empty_like=torch.empty_like, fresh_like=_fresh_like, ptr_forward=_ptr_fwd,
             ptr_backward=_ptr_bwd, lean_run=_lean_run, lean_grad=_lean_grad,
             small=_NUMPY_ALLOC, forward_ad=_FWAD)


def check_inplace_target(x: Tensor) -> None:
    """torch's refusals of an in-place write (which a custom operator's or a kernel's
    write does not get), before any write: to an inference tensor outside inference mode,
    and to a tensor whose elements share memory (a broadcast view). Eager only: compiled
    code is functionalized (and its sizes may be symbolic)."""
    if torch.compiler.is_compiling():
        return
    if any(s == 0 and n > 1 for s, n in zip(x.stride(), x.shape)):
        raise RuntimeError(
            "unsupported operation: more than one element of the written-to tensor refers "
            "to a single memory location. Please clone() the tensor before performing the "
            "operation.")
    if x.is_inference() and not torch.is_inference_mode_enabled():
        raise RuntimeError(
            "Inplace update to inference tensor outside InferenceMode is not allowed.You "
            "can make a clone to get a normal tensor before doing inplace update.See "
            "https://github.com/pytorch/rfcs/pull/17 for more details.")


def lean_dropout(x: Tensor, key: int, st: int, p: float, bits: int, keep_mask: bool,
                 nt: int, inplace: bool) -> Tensor:
    """Inverted dropout of a `lean_input` tensor with the seed words (key, st): the result
    of ``fastdrop::dropout`` (``x`` itself, written in place, when `inplace`); None (nothing
    done) for an in-place call on a leaf or a view under autograd: the caller takes the
    operators' route, where autograd's own rules apply."""
    if x.requires_grad and torch.is_grad_enabled():
        if inplace and (x.is_leaf or x._base is not None):
            # autograd's own errors (a leaf) or view bookkeeping, before any write
            return None
        # _lean_apply skips Function.apply's Python prologue, valid because lean_input
        # has ruled out torch.func transforms (its only other work)
        return _lean_apply(x, (key, st, p, bits, keep_mask, nt, inplace))
    if inplace:
        check_inplace_target(x)
    y = _lean_run(x, key, st, p, bits, False, nt, inplace)[0]
    if inplace and not x.is_inference():
        torch.autograd.graph.increment_version(x)  # as any in-place op
    return y
