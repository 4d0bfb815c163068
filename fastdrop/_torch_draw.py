"""seed=None's draw through a PyTorch C++ extension (opt-in), for fastdrop.torch.

A seed=None call of fastdrop.torch takes two draws from torch's generator, the draws of
``torch.randint(0, 2**32, (2,))``. Through torch that is one tensor operation (``random_``
on a scratch tensor, `fastdrop._cpu._torch_lean.draw_words`), whose dispatch costs about
what the rest of a 2^8-element module step's kernels cost. The extension
(``fastdrop/_cpu/src/fd_torch_draw.cpp``) makes the same draws in C++ under the generator's
lock, and `fastdrop._cpu._torch_lean` calls it without Python in between.

It is compiled against the installed torch by ``torch.utils.cpp_extension.load`` (a C++
compiler and ninja are needed; a few seconds once), cached where torch caches its
extensions (``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``), under a name
that carries torch's version, so that another torch builds its own. Nothing here runs unless
asked: `load` from ``fastdrop.torch.load_cpp_extension()``, or at import when the
environment variable ``FASTDROP_TORCH_CPP`` is ``1``.
"""
from __future__ import annotations

import os
import re
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch

from ._cpu import _torch_lean as _lean_c

__all__ = ["load", "use", "active", "env_requested", "SOURCE", "ENV"]

SOURCE = Path(__file__).parent / "_cpu" / "src" / "fd_torch_draw.cpp"
ENV = "FASTDROP_TORCH_CPP"
_lock = threading.Lock()
_module: Optional[ModuleType] = None


def _name() -> str:
    return "fastdrop_torch_draw_" + re.sub(r"[^0-9A-Za-z]", "_", torch.__version__)


def _agrees(mod: ModuleType) -> bool:
    """The extension's draws are torch.randint's, and leave the generator where randint
    does (checked on two fresh generators: a build against mismatched headers fails it)."""
    a, b = torch.Generator().manual_seed(20261202), torch.Generator().manual_seed(20261202)
    got = [mod.draw(a) for _ in range(3)]
    want = []
    for _ in range(3):
        lo, hi = torch.randint(0, 1 << 32, (2,), dtype=torch.int64, generator=b).tolist()
        want.append(lo | (hi << 32))
    return got == want and torch.equal(a.get_state(), b.get_state())


def load(verbose: bool = False) -> ModuleType:
    """Build (if needed) and load the extension, check its draws against torch.randint's,
    and make it seed=None's draw; returns the extension module.

    Raises RuntimeError when it cannot be built or loaded, or draws what torch does not (the
    draw through torch stays in place)."""
    global _module
    with _lock:
        if _module is not None:
            _lean_c.bind_cpp_draw(_module._draw_capsule)
            return _module
        from torch.utils import cpp_extension

        try:
            mod = cpp_extension.load(name=_name(), sources=[str(SOURCE)],
                                     extra_cflags=["-O2"], verbose=verbose)
        except Exception as exc:  # a compiler, ninja or header missing; a build error
            raise RuntimeError(f"fastdrop.torch: the C++ extension for seed=None's draw "
                               f"could not be built or loaded ({type(exc).__name__}: "
                               f"{exc})") from exc
        if not _agrees(mod):
            raise RuntimeError("fastdrop.torch: the C++ extension's draws differ from "
                               "torch.randint's; it is not used")
        _lean_c.bind_cpp_draw(mod._draw_capsule)
        _module = mod
        return mod


def use(on: bool) -> None:
    """seed=None's draws through the extension (on: `load`, building it if needed) or
    through torch (off; the extension stays loaded)."""
    if on:
        load()
    else:
        _lean_c.bind_cpp_draw(None)


def active() -> bool:
    """Whether seed=None's draws go through the extension."""
    return _lean_c.cpp_draw_bound()


def env_requested() -> bool:
    """FASTDROP_TORCH_CPP: "1" loads the extension at import; "0" or unset does not; any
    other value does not either, with a warning naming the variable."""
    value = os.environ.get(ENV, "").strip()
    if value not in ("0", "1", ""):
        warnings.warn(f"{ENV} must be 0 or 1, got {value!r}: the C++ extension is not "
                      f"loaded", RuntimeWarning, stacklevel=3)
    return value == "1"
