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

By default (no compiler needed) seed=None's draws from torch.default_generator are made
by the C++ functions libtorch_cpu exports (``at::detail::getDefaultCPUGenerator``,
``at::CPUGeneratorImpl::random64``) under the generator's mutex, what the extension does,
once the generator's layout has passed every check `fastdrop/_cpu/src/fd_torch_gen.h`
makes (`bind_gen_draw`; ``FASTDROP_TORCH_SYMBOLS=0`` turns it off); else through torch's
stable C ABI (`bind_shim_draw`; ``FASTDROP_TORCH_SHIM=0`` turns it off); else through a
Python-level ``random_``. fastdrop.torch binds both at import (`bind_default_draws`).
Every route is checked against `randint_words`, torch's own draws.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch

from ._core.forksafe import new_lock
from ._cpu import _torch_lean as _lean_c

__all__ = ["load", "use", "active", "env_requested", "randint_words", "bind_shim_draw",
           "bind_gen_draw", "bind_default_draws", "default_routes", "set_default_routes",
           "SOURCE", "ENV"]

SOURCE = Path(__file__).parent / "_cpu" / "src" / "fd_torch_draw.cpp"
ENV = "FASTDROP_TORCH_CPP"
_lock = new_lock()   # (a forked child finds it unlocked)
_module: Optional[ModuleType] = None


def _name() -> str:
    return "fastdrop_torch_draw_" + re.sub(r"[^0-9A-Za-z]", "_", torch.__version__)


def randint_words(k: int, generator: torch.Generator | None = None) -> list[int]:
    """k seed=None seeds as torch draws them: ``torch.randint(0, 2**32, (2,))`` on the CPU
    from `generator` (None: torch.default_generator), the first draw the low word. The
    reference every faster draw is checked against."""
    out = []
    for _ in range(k):
        lo, hi = torch.randint(0, 1 << 32, (2,), dtype=torch.int64, generator=generator,
                               device="cpu").tolist()
        out.append(lo | (hi << 32))
    return out


def _agrees(mod: ModuleType) -> bool:
    """The extension's draws are torch.randint's, and leave the generator where randint
    does (checked on two fresh generators: a build against mismatched headers fails it)."""
    a, b = torch.Generator().manual_seed(20261202), torch.Generator().manual_seed(20261202)
    got = [mod.draw(a) for _ in range(3)]
    return got == randint_words(3, b) and torch.equal(a.get_state(), b.get_state())


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


def _libtorch_cpu() -> str | None:
    """The path of the libtorch_cpu that torch has loaded, or None."""
    lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        if os.path.exists(os.path.join(lib, name)):
            return os.path.join(lib, name)
    return None


def _draws_agree(draw) -> bool:
    """Three calls of `draw` give torch.randint's words and leave torch.default_generator
    where randint does; checked on the default generator itself, whose state is restored
    afterwards (nothing is drawn for good). Outside any torch.func transform or dispatch
    mode the import may run in (a first ``import fastdrop.torch`` inside ``torch.vmap``,
    say, where randint would raise)."""
    from torch.utils._python_dispatch import _disable_current_modes

    gen = torch.default_generator
    with torch._C._DisableFuncTorch(), _disable_current_modes():
        state = gen.get_state()
        try:
            got = [draw() for _ in range(3)]
            after = gen.get_state()
            gen.set_state(state)
            ok = got == randint_words(3) and torch.equal(after, gen.get_state())
        finally:
            gen.set_state(state)
    return ok


def _bind(env: str, bind, draw, unbind) -> bool:
    """One of the default generator's draw routes: off when the environment variable `env`
    is 0; bound (`bind` on the loaded libtorch_cpu) and kept when its draws agree with
    torch's (`_draws_agree`)."""
    if os.environ.get(env, "1").strip() == "0":
        return False
    path = _libtorch_cpu()
    if path is None or not bind(os.fsencode(path), torch.default_generator):
        return False
    if not _draws_agree(draw):
        unbind()
        return False
    return True


def bind_shim_draw() -> bool:
    """seed=None's draws from torch.default_generator through torch's stable C ABI
    (`_torch_lean.bind_shim_draw`) when it is there and draws what torch.randint does.
    False: the draws stay on ``random_``. The environment variable FASTDROP_TORCH_SHIM=0
    turns it off."""
    return _bind("FASTDROP_TORCH_SHIM", _lean_c.bind_shim_draw, _lean_c.shim_draw,
                 _lean_c.unbind_shim_draw)


def bind_gen_draw() -> bool:
    """seed=None's draws from torch.default_generator through libtorch_cpu's exported
    C++ functions (`_torch_lean.bind_gen_draw`, `fastdrop/_cpu/src/fd_torch_gen.h`) when
    the generator's layout passes its checks and the draws are torch.randint's. False: the
    draws stay on the shim or ``random_``. The environment variable
    FASTDROP_TORCH_SYMBOLS=0 turns it off."""
    return _bind("FASTDROP_TORCH_SYMBOLS", _lean_c.bind_gen_draw, _lean_c.gen_draw,
                 _lean_c.unbind_gen_draw)


def bind_default_draws() -> tuple[bool, bool]:
    """Both default-generator routes (fastdrop.torch calls this at import; importing draws
    nothing): (exported symbols bound, shim bound). The symbols are tried first per call;
    the shim stays bound beneath them, for a torch whose default generator changes."""
    return bind_gen_draw(), bind_shim_draw()


def default_routes() -> tuple[bool, bool]:
    """(exported symbols bound, shim bound): the default generator's draw routes now."""
    return _lean_c.gen_draw_bound(), _lean_c.shim_draw_bound()


def set_default_routes(symbols: bool, shim: bool) -> tuple[bool, bool]:
    """Bind (checked as at import, environment variables included) or unbind each
    default-generator route, for tests and benchmarks that compare them; returns
    `default_routes()`."""
    if not symbols:
        _lean_c.unbind_gen_draw()
    elif not _lean_c.gen_draw_bound():
        bind_gen_draw()
    if not shim:
        _lean_c.unbind_shim_draw()
    elif not _lean_c.shim_draw_bound():
        bind_shim_draw()
    return default_routes()
