"""fastdrop.torch.Dropout's common training call in C (`_torch_lean.dropout_call`) and
seed=None's draws from the default generator through libtorch_cpu's exported functions
(`_torch_draw.bind_gen_draw`) and through torch's stable C ABI
(`_torch_draw.bind_shim_draw`), both bound by fastdrop.torch at import.

The C call must give the same output, gradient, words and stream as forward's Python
branch, and decline (drawing and advancing nothing) every call it does not handle; each
route's draws must be torch.randint's, under the generator's own mutex, and the import
must leave torch's generator as it was."""
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import fastdrop  # noqa: E402
import fastdrop.torch as ft  # noqa: E402
from fastdrop import _torch_draw, _torch_replay  # noqa: E402
from fastdrop._cpu import _torch_lean  # noqa: E402


def _randint_words(k, generator=None):
    out = []
    for _ in range(k):
        lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=generator).tolist()
        out.append(lo | (hi << 32))
    return out


def _step(m, x, g):
    x = x.detach().clone().requires_grad_(True)
    y = m(x)
    y.backward(g)
    return y.detach(), x.grad, m.last_call


@pytest.mark.parametrize("seed", [None, 3])
@pytest.mark.parametrize("n,dtype", [(1, torch.float32), (256, torch.float32),
                                     (20000, torch.float32), (999, torch.float64),
                                     (4097, torch.float16)])
def test_the_c_call_is_forwards_python_branch(monkeypatch, seed, n, dtype):
    x = torch.randn(n).to(dtype)
    g = torch.randn(n).to(dtype)
    outs = []
    for c_call in (True, False):
        if not c_call:  # forward's Python branch: the C call declines everything
            monkeypatch.setattr(ft, "_dropout_call", lambda m, x, called=False: None)
        torch.manual_seed(40)
        m = ft.Dropout(0.3, seed=seed)
        steps = [_step(m, x, g) for _ in range(3)]
        outs.append((steps, m.fd_state.clone(), torch.get_rng_state()))
    (a, sa, ra), (b, sb, rb) = outs
    for (ya, ga, wa), (yb, gb, wb) in zip(a, b):
        assert torch.equal(ya, yb) and torch.equal(ga, gb) and wa == wb
    assert torch.equal(sa, sb) and torch.equal(ra, rb)
    # the words are the functional call's, so the output is fastdrop.dropout's
    y, _, (s, st) = a[-1]
    want = fastdrop.dropout(x.numpy(), 0.3, seed=s, stream=st)
    assert torch.equal(y, torch.from_numpy(want))


def test_the_c_call_takes_the_common_call():
    m = ft.Dropout(0.2, seed=8)
    x = torch.randn(64, requires_grad=True)
    m(x)  # the first call caches the seed buffer's address
    y = _torch_lean.dropout_call(m, x)
    assert y is not None and m.last_call == (8, 1) and int(m.fd_state[2]) == 2
    assert type(y.grad_fn).__name__ == "_LeanModuleDropoutBackward"
    torch.manual_seed(2)
    n = ft.Dropout(0.2)
    assert _torch_lean.dropout_call(n, x) is not None
    assert n.last_call == (_randint_words(1, torch.Generator().manual_seed(2))[0], 0)


def _declines(m, x):
    """dropout_call returns None and draws and advances nothing."""
    state, rng, last = m.fd_state.clone(), torch.get_rng_state(), m.last_call
    assert _torch_lean.dropout_call(m, x) is None
    assert torch.equal(m.fd_state, state) and torch.equal(torch.get_rng_state(), rng)
    assert m.last_call == last


@pytest.mark.parametrize("case", ["eval", "p set", "p int", "p zero", "inplace", "no grad",
                                  "input without grad", "empty", "bfloat16", "strided",
                                  "fastdrop generator", "torch generator", "replay",
                                  "first call", "buffer moved", "noise shape", "classic"])
def test_the_c_call_declines_what_it_does_not_handle(case, monkeypatch):
    kw = {"seed": 5}
    if case == "fastdrop generator":
        kw = {"seed": fastdrop.Generator(5)}
    elif case == "torch generator":
        kw = {"seed": None, "generator": torch.Generator().manual_seed(1)}
    elif case == "noise shape":
        kw["noise_shape"] = (None, 1)
    elif case == "classic":
        kw["mode"] = "classic"
    m = ft.Dropout(0.25, inplace=case == "inplace", **kw)
    x = torch.randn(6, 8, requires_grad=True)
    with torch.no_grad():
        m(x.clone())  # caches the seed buffer's address
    if case == "eval":
        m.eval()
    elif case == "p set":
        m.p = 0.5  # checked by forward's Python, then taken again
    elif case == "p int":
        m.p = 1
    elif case == "p zero":
        m.p = 0.0
    elif case == "inplace":
        x = x.detach().clone().mul(1).requires_grad_(False)
    elif case == "input without grad":
        x = x.detach()
    elif case == "empty":
        x = torch.randn(0, 8, requires_grad=True)
    elif case == "bfloat16":
        x = torch.randn(6, 8, dtype=torch.bfloat16, requires_grad=True)
    elif case == "strided":
        x = torch.randn(8, 6, requires_grad=True).t()
    elif case == "replay":
        monkeypatch.setattr(_torch_replay, "active", 1)
    elif case == "first call":
        m = ft.Dropout(0.25, seed=5)
    elif case == "buffer moved":
        m.fd_state = m.fd_state.clone()  # a new tensor in the buffer's place
    if case == "no grad":
        with torch.no_grad():
            _declines(m, x)
    else:
        _declines(m, x)
    if case == "p set":
        m(x)
        assert _torch_lean.dropout_call(m, x) is not None


def test_the_c_call_is_not_reached_under_compile():
    m = ft.Dropout(0.5, seed=4)
    x = torch.randn(32, requires_grad=True)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(m)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1


# ---- the shim draw ------------------------------------------------------------------------------

@pytest.fixture
def only_shim():
    """The exported-symbol route unbound for the test (the shim beneath it answers)."""
    routes = _torch_draw.default_routes()
    _torch_draw.set_default_routes(False, routes[1])
    yield
    assert _torch_draw.set_default_routes(*routes) == routes


def test_the_shim_is_bound_and_draws_what_randint_draws(no_cpp_draw, only_shim):
    if not _torch_draw.bind_shim_draw():
        pytest.skip("this torch has no stable C ABI shim for randint.low_out")
    assert _torch_lean.shim_draw_bound()
    _route_draws_randints(_torch_lean.shim_draw, 17)


def _route_draws_randints(draw, seed):
    """A route's draws (`draw`, and seed=None's through it) are randint's and leave the
    default generator where randint does; returns them."""
    torch.manual_seed(seed)
    got = [draw() for _ in range(4)]
    after = torch.get_rng_state()
    torch.manual_seed(seed)
    assert got == _randint_words(4)
    assert torch.equal(after, torch.get_rng_state())  # the generator left where randint does
    torch.manual_seed(seed)
    assert [ft.ops.draw_words(None) for _ in range(2)] == got[:2]
    assert ft.ops.draw_words(torch.default_generator) == got[2]
    return got


@pytest.fixture
def no_cpp_draw():
    """The C++ extension's draw (which no mode sees) unbound for the test."""
    from fastdrop import _torch_draw

    was = _torch_draw.active()
    _torch_draw.use(False)
    yield
    if was:
        _torch_draw.use(True)


def test_a_dispatch_mode_sees_the_draw(no_cpp_draw):
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    torch.manual_seed(6)
    with Log():
        w = ft.ops.draw_words(None)
    assert any("random_" in s for s in seen)
    torch.manual_seed(6)
    assert w == _randint_words(1)[0]


def test_a_shim_that_draws_otherwise_is_refused(monkeypatch, no_cpp_draw, only_shim):
    was = _torch_lean.shim_draw_bound()
    state = torch.get_rng_state()
    monkeypatch.setattr(_torch_lean, "shim_draw", lambda: 12345)
    try:
        assert _torch_draw.bind_shim_draw() is False
        assert not _torch_lean.shim_draw_bound()
        assert torch.equal(torch.get_rng_state(), state)
        torch.manual_seed(1)
        assert ft.ops.draw_words(None) == _randint_words(1, torch.Generator().manual_seed(1))[0]
    finally:
        monkeypatch.undo()
        if was:
            assert _torch_draw.bind_shim_draw()


_CHILD = """
import os, sys, torch
torch.manual_seed(123)
before = torch.get_rng_state()
import fastdrop.torch as ft
from fastdrop._cpu import _torch_lean as L
print(int(torch.equal(before, torch.get_rng_state())), int(L.shim_draw_bound()))
if L.shim_draw_bound():
    sys.exit()
# unbound: a library without the symbols, or one that is not loaded, binds nothing
import ctypes.util
libc = ctypes.util.find_library("c") or "libc.so.6"
print(int(L.bind_shim_draw(libc.encode(), torch.default_generator)),
      int(L.bind_shim_draw(b"/nonexistent/libtorch_cpu.so", torch.default_generator)))
"""


@pytest.mark.parametrize("env,bound", [(None, True), ("1", True), ("0", False)])
def test_the_import_binds_the_shim_and_draws_nothing(env, bound):
    import os

    environ = dict(os.environ)
    environ.pop("FASTDROP_TORCH_SHIM", None)
    if env is not None:
        environ["FASTDROP_TORCH_SHIM"] = env
    out = subprocess.run([sys.executable, "-c", _CHILD], env=environ, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "1"  # torch's generator as it was before the import
    if not sys.platform.startswith("linux"):
        return
    assert out[1] == str(int(bound))
    if not bound:
        assert out[2:] == ["0", "0"]


# ---- the exported-symbol draw (fd_torch_gen.h) --------------------------------------------------

_linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                            reason="the exported-symbol draw is checked on Linux (glibc)")


@pytest.fixture
def gen_route(no_cpp_draw):
    """The exported-symbol route bound, the shim unbound beneath it, for the test."""
    routes = _torch_draw.default_routes()
    if _torch_draw.set_default_routes(True, False) != (True, False):
        pytest.skip("libtorch_cpu's generator functions are not bound here")
    yield
    assert _torch_draw.set_default_routes(*routes) == routes


@_linux
def test_the_import_binds_the_exported_symbol_draw():
    # on the platform CI runs (Linux, glibc, torch's wheel) the layout checks pass: a
    # failing check must be seen here, not silently fall back to the slower routes
    assert _torch_lean.gen_draw_bound()


def test_the_symbols_draw_what_randint_draws(gen_route):
    got = _route_draws_randints(_torch_lean.gen_draw, 29)
    # an explicit generator is not the default: its draw goes through random_
    gen, twin = torch.Generator().manual_seed(29), torch.Generator().manual_seed(29)
    assert ft.ops.draw_words(gen) == _randint_words(1, twin)[0] == got[0]
    assert torch.equal(gen.get_state(), twin.get_state())


def _mutex_address():
    """The default generator's mutex, found independently of fd_torch_gen.h: through
    ctypes, the impl behind at::detail::getDefaultCPUGenerator() and the member after
    intrusive_ptr_target (vtable pointer, refcount)."""
    import ctypes
    import os

    lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"),
                      mode=os.RTLD_NOLOAD | os.RTLD_NOW)
    get = lib._ZN2at6detail22getDefaultCPUGeneratorEv
    get.restype = ctypes.c_void_p
    impl = ctypes.c_void_p.from_address(get()).value
    return impl + 2 * ctypes.sizeof(ctypes.c_void_p)


@_linux
def test_the_draw_holds_the_mutex_torchs_own_ops_hold(gen_route):
    # the mutex the route locks is the one torch's ops lock: held from here (pthread, at
    # the address the layout gives), torch.randint in a thread waits, and so does the
    # route's draw (without the GIL: this thread keeps running); released, both finish,
    # one after the other, each with whole draws
    import ctypes
    import ctypes.util
    import threading
    import time

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mutex = ctypes.c_void_p(_mutex_address())
    torch.manual_seed(41)
    want = _randint_words(2)
    torch.manual_seed(41)
    out = {}
    assert libc.pthread_mutex_lock(mutex) == 0
    try:
        a = threading.Thread(target=lambda: out.update(randint=_randint_words(1)[0]))
        b = threading.Thread(target=lambda: out.update(gen=_torch_lean.gen_draw()))
        a.start()
        b.start()
        time.sleep(0.3)
        assert a.is_alive() and b.is_alive() and not out  # both wait for the mutex
    finally:
        assert libc.pthread_mutex_unlock(mutex) == 0
    a.join(60)
    b.join(60)
    assert not a.is_alive() and not b.is_alive()
    assert sorted([out["randint"], out["gen"]]) == sorted(want)


def test_a_bind_whose_checks_fail_binds_nothing(gen_route):
    import ctypes.util

    path = _torch_draw._libtorch_cpu()

    class Other:  # the engine's seed is not this generator's initial seed
        @staticmethod
        def initial_seed():
            return torch.default_generator.initial_seed() ^ 1

    _torch_lean.unbind_gen_draw()
    assert _torch_lean.bind_gen_draw(path.encode(), Other()) is False
    assert not _torch_lean.gen_draw_bound() and _torch_lean.gen_draw() is None
    libc = ctypes.util.find_library("c") or "libc.so.6"  # no such symbols
    assert _torch_lean.bind_gen_draw(libc.encode(), torch.default_generator) is False
    assert _torch_lean.bind_gen_draw(b"/nonexistent/libtorch_cpu.so",
                                     torch.default_generator) is False
    assert not _torch_lean.gen_draw_bound()
    assert _torch_draw.bind_gen_draw()


def test_symbols_that_draw_otherwise_are_refused(monkeypatch, gen_route):
    state = torch.get_rng_state()
    monkeypatch.setattr(_torch_lean, "gen_draw", lambda: 12345)
    assert _torch_draw.bind_gen_draw() is False
    assert not _torch_lean.gen_draw_bound()
    assert torch.equal(torch.get_rng_state(), state)
    monkeypatch.undo()
    assert _torch_draw.bind_gen_draw()


_GEN_CHILD = """
import torch
torch.manual_seed(321)
before = torch.get_rng_state()
import fastdrop.torch as ft
from fastdrop._cpu import _torch_lean as L
same = torch.equal(before, torch.get_rng_state())
m = ft.Dropout(0.5)
m(torch.ones(8))
torch.manual_seed(321)
lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64).tolist()
print(int(same), int(L.gen_draw_bound()), int(m.last_call == (lo | (hi << 32), 0)))
"""


@pytest.mark.parametrize("env,bound", [(None, True), ("1", True), ("0", False)])
def test_the_import_binds_the_symbols_and_draws_nothing(env, bound):
    import os

    environ = dict(os.environ)
    environ.pop("FASTDROP_TORCH_SYMBOLS", None)
    if env is not None:
        environ["FASTDROP_TORCH_SYMBOLS"] = env
    out = subprocess.run([sys.executable, "-c", _GEN_CHILD], env=environ,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "1" and out[2] == "1"  # the generator untouched; seeds are randint's
    if sys.platform.startswith("linux"):
        assert out[1] == str(int(bound))


# ---- the module's __call__ ----------------------------------------------------------------------

def _calls_c(monkeypatch):
    """Count the __call__ fast path's C calls that returned a result."""
    seen = []
    real = ft._dropout_call

    def spy(m, x, called=False):
        y = real(m, x, called)
        seen.append((called, y is not None))
        return y
    monkeypatch.setattr(ft, "_dropout_call", spy)
    return seen


def test_call_takes_the_c_call_without_hooks(monkeypatch):
    seen = _calls_c(monkeypatch)
    m, twin = ft.Dropout(0.5, seed=3), ft.Dropout(0.5, seed=3)
    x = torch.randn(64, requires_grad=True)
    m(x)  # the first call of a seeded layer sees its buffer in Python
    seen.clear()
    y = m(x)
    assert seen == [(True, True)]  # one C call, from __call__, nothing in forward
    twin.forward(x)
    assert torch.equal(y, twin.forward(x)) and m.last_call == twin.last_call


@pytest.mark.parametrize("hook", ["forward_pre", "forward", "forward_kwargs",
                                  "full_backward", "full_backward_pre", "global_forward",
                                  "global_forward_pre", "global_backward"])
def test_call_runs_every_hook_as_nn_module_does(monkeypatch, hook):
    # with any hook the fast path declines (nothing drawn or advanced) and nn.Module's
    # __call__ runs the hooks around forward, as for torch's nn.Dropout
    from torch.nn.modules import module as M

    seen = _calls_c(monkeypatch)
    ran = []
    ours, theirs = ft.Dropout(0.5, seed=3), torch.nn.Dropout(0.5)
    ours(torch.ones(4, requires_grad=True))  # seen its buffer (stream 0)
    seen.clear()
    handles = []
    for m in (ours, theirs):
        tag = type(m).__module__
        if hook == "forward_pre":
            handles.append(m.register_forward_pre_hook(lambda mod, a, t=tag: ran.append(t)))
        elif hook == "forward":
            handles.append(m.register_forward_hook(lambda mod, a, o, t=tag: ran.append(t)))
        elif hook == "forward_kwargs":
            handles.append(m.register_forward_hook(
                lambda mod, a, k, o, t=tag: ran.append(t), with_kwargs=True))
        elif hook == "full_backward":
            handles.append(m.register_full_backward_hook(
                lambda mod, gi, go, t=tag: ran.append(t)))
        elif hook == "full_backward_pre":
            handles.append(m.register_full_backward_pre_hook(
                lambda mod, go, t=tag: ran.append(t)))
    if hook.startswith("global"):
        reg = {"global_forward": M.register_module_forward_hook,
               "global_forward_pre": M.register_module_forward_pre_hook,
               "global_backward": M.register_module_full_backward_hook}[hook]
        if hook == "global_forward":
            handles.append(reg(lambda mod, a, o: ran.append(type(mod).__module__)))
        elif hook == "global_forward_pre":
            handles.append(reg(lambda mod, a: ran.append(type(mod).__module__)))
        else:
            handles.append(reg(lambda mod, gi, go: ran.append(type(mod).__module__)))
    try:
        x = torch.randn(64, requires_grad=True)
        for m in (ours, theirs):
            m(x).sum().backward()
    finally:
        for h in handles:
            h.remove()
    assert ran.count("fastdrop.torch") == ran.count("torch.nn.modules.dropout") == 1
    assert (True, True) not in seen  # declined from __call__; forward's C call ran
    assert (False, True) in seen
    assert ours.last_call[1] == 1  # one call, one stream (the declined one drew nothing)
    seen.clear()
    ours(x)  # hooks removed: the fast path again
    assert seen == [(True, True)] and ours.last_call[1] == 2


def test_call_keeps_module_compile_and_keyword_calls(monkeypatch):
    seen = _calls_c(monkeypatch)
    x = torch.randn(32, requires_grad=True)
    m = ft.Dropout(0.5, seed=8)
    y = m(input=x)  # keywords: nn.Module.__call__, then forward
    assert [c for c, _ in seen] == [False]
    assert torch.equal(y, ft.Dropout(0.5, seed=8)(x))
    calls = []

    def backend(gm, example_inputs):
        calls.append(gm)
        return gm
    m = ft.Dropout(0.5, seed=8)
    m.compile(backend=backend, fullgraph=True)
    seen.clear()
    y = m(x)  # Module.compile: the compiled call, not the C path
    assert calls and (True, True) not in seen
    assert torch.equal(y, ft.Dropout(0.5, seed=8)(x))


def test_call_under_fx_symbolic_trace_as_a_leaf():
    # torch.fx patches nn.Module.__call__ while tracing; the override reaches the patched
    # one, so a tracer that keeps fastdrop's module a leaf records it as a call_module
    # and the traced module computes what the model does (fx's default tracer, which
    # does not take fastdrop's modules for leaves, is tests/adapters/test_torch_fx.py's)
    import torch.fx

    class Leaf(torch.fx.Tracer):
        def is_leaf_module(self, m, name):
            return isinstance(m, ft.Dropout) or super().is_leaf_module(m, name)

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), ft.Dropout(0.5, seed=2))
    graph = Leaf().trace(model)
    assert [n.op for n in graph.nodes].count("call_module") == 2
    twin = torch.nn.Sequential(torch.nn.Linear(4, 4), ft.Dropout(0.5, seed=2))
    twin.load_state_dict(model.state_dict())
    gm = torch.fx.GraphModule(model, graph)  # holds model's own submodules
    x = torch.randn(3, 4)
    a, b = gm(x), model(x)  # training: one layer, two calls, streams 0 and 1
    assert torch.equal(a, twin(x)) and torch.equal(b, twin(x))
    assert not torch.equal(a, b)
