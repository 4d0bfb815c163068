"""fastdrop._torch_draw: seed=None's draw through the opt-in C++ extension (built here once;
a C++ compiler and ninja are test requirements). That its draws are torch.randint's, from
any thread, is tests/adapters/test_torch_adapter.py's `draw_path` parametrisation."""
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import fastdrop.torch as ft  # noqa: E402
from fastdrop import _torch_draw  # noqa: E402
from fastdrop._cpu import _torch_lean  # noqa: E402


@pytest.fixture
def unbound(monkeypatch):
    """No extension loaded or bound for the test; put back as it was afterwards."""
    was = _torch_lean.cpp_draw_bound()
    mod = _torch_draw.load()
    monkeypatch.setattr(_torch_draw, "_module", None)
    _torch_lean.bind_cpp_draw(None)
    yield
    _torch_lean.bind_cpp_draw(mod._draw_capsule if was else None)


def test_the_extension_draws_what_torch_draws_and_nothing_else():
    mod = _torch_draw.load()
    assert ft.load_cpp_extension() is True and _torch_draw.active()
    assert _torch_draw.load() is mod  # built and checked once per process
    g, h = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=h).tolist()
    assert mod.draw(g) == lo | (hi << 32)
    assert torch.equal(g.get_state(), h.get_state())
    torch.manual_seed(3)
    a = mod.draw(None)
    torch.manual_seed(3)
    lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64).tolist()
    assert a == lo | (hi << 32)
    # not a CPU torch.Generator: nothing drawn, the caller draws through torch
    state = torch.get_rng_state()
    for other in (object(), 3, "cpu"):
        assert mod.draw(other) is None
    assert torch.equal(torch.get_rng_state(), state)


def test_a_module_call_is_the_same_with_and_without_the_extension(unbound):
    x = torch.randn(1000, requires_grad=True)
    outs = []
    for use in (False, True):
        if use:
            ft.load_cpp_extension()
        assert _torch_draw.active() is use
        torch.manual_seed(12)
        m = ft.Dropout(0.3)
        y = m(x)
        y.sum().backward()
        outs.append((y.detach().clone(), x.grad.clone(), m.last_call,
                     ft.dropout(x.detach(), 0.3), torch.get_rng_state()))
        x.grad = None
    (y0, g0, w0, f0, s0), (y1, g1, w1, f1, s1) = outs
    assert w0 == w1 and torch.equal(y0, y1) and torch.equal(g0, g1)
    assert torch.equal(f0, f1) and torch.equal(s0, s1)


def test_a_failed_build_raises_and_leaves_the_draw_through_torch(unbound, monkeypatch):
    from torch.utils import cpp_extension

    def broken(**kwargs):
        raise OSError("no compiler")

    monkeypatch.setattr(cpp_extension, "load", broken)
    with pytest.raises(RuntimeError, match="could not be built.*no compiler"):
        ft.load_cpp_extension()
    assert not _torch_draw.active()


def test_an_extension_that_draws_otherwise_is_refused(unbound, monkeypatch):
    monkeypatch.setattr(_torch_draw, "_agrees", lambda mod: False)
    with pytest.raises(RuntimeError, match="differ from torch.randint"):
        ft.load_cpp_extension()
    assert not _torch_draw.active()
    torch.manual_seed(4)
    m = ft.Dropout(0.5)
    m(torch.ones(8))
    torch.manual_seed(4)
    lo, hi = torch.randint(0, 2**32, (2,), dtype=torch.int64).tolist()
    assert m.last_call == (lo | (hi << 32), 0)


@pytest.mark.parametrize("value, active, warns", [("1", True, False), ("0", False, False),
                                                  (None, False, False),
                                                  ("yes", False, True)])
def test_the_environment_variable_loads_it_at_import(value, active, warns):
    _torch_draw.load()  # built: the subprocess finds it in torch's extension cache
    env = dict(os.environ)
    env.pop(_torch_draw.ENV, None)
    if value is not None:
        env[_torch_draw.ENV] = value
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import fastdrop.torch, fastdrop._torch_draw as d; print(d.active())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == str(active)
    assert (f"{_torch_draw.ENV} must be 0 or 1" in out.stderr) is warns


def test_a_failed_build_at_import_is_a_warning(tmp_path):
    # FASTDROP_TORCH_CPP=1 with no working compiler (CXX=false, an empty extension
    # cache): import still works, warns, and the draws stay torch's
    env = dict(os.environ, FASTDROP_TORCH_CPP="1", CXX="false",
               TORCH_EXTENSIONS_DIR=str(tmp_path))
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import torch, fastdrop.torch as ft, fastdrop._torch_draw as d\n"
            "torch.manual_seed(1); m = ft.Dropout(0.5); m(torch.ones(8))\n"
            "torch.manual_seed(1); lo, hi = torch.randint(0, 2**32, (2,)).tolist()\n"
            "print(d.active(), m.last_call == (lo | hi << 32, 0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "True"]
    assert "FASTDROP_TORCH_CPP=1: fastdrop.torch: the C++ extension" in out.stderr


def test_the_benchmark_has_the_cpp_draw_columns():
    # benchmarks/torch_dropout.py sizes and ops, at 2^8 with one repeat: the C++ draw's
    # columns, and sizes' memory-bound floor (x * 1.1 through autograd), are there and
    # hold figures
    import pathlib

    _torch_draw.load()
    script = pathlib.Path(__file__).parents[2] / "benchmarks" / "torch_dropout.py"
    for what in ("sizes", "ops"):
        out = subprocess.run([sys.executable, str(script), what, "--threads", "1",
                              "--min-exp", "8", "--max-exp", "8", "--repeats", "1"],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        rows = [r for r in out.stdout.splitlines() if r.startswith("| ")]
        if what == "sizes":
            head, row = (r.strip("| ").split(" | ") for r in (rows[0], rows[-1]))
            i = head.index("torch / fastdrop (seed=None, C++ draw)")
            assert len(head) == len(row) and float(row[i]) > 0
            assert float(row[head.index("fastdrop (seed=None) / floor")]) > 0
            assert row[head.index("floor: torch x * 1.1")].endswith(" us")
        else:
            row = next(r for r in rows if r.startswith("| fastdrop seed=None, C++ draw |"))
            assert float(row.split(" | ")[1].split()[0]) > 0


def test_a_first_import_inside_vmap_binds_the_same_routes():
    # fastdrop.keras imports fastdrop.torch at a layer's first call, which may run inside
    # torch.vmap (keras.ops.vectorized_map): the import's check of the draw routes runs
    # outside the transform (randint raises in vmap's randomness="error" mode)
    code = ("import importlib, torch\n"
            "def f(t):\n"
            "    importlib.import_module('fastdrop.torch')\n"
            "    return t * 2\n"
            "y = torch.vmap(f)(torch.ones(2, 3))\n"
            "import fastdrop._torch_draw as d\n"
            "print(tuple(y.shape), d.default_routes())")
    inside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert inside.returncode == 0, inside.stderr[-2000:]
    outside = subprocess.run([sys.executable, "-c", "import fastdrop._torch_draw as d, "
                              "fastdrop.torch; print(d.default_routes())"],
                             capture_output=True, text=True, timeout=300)
    assert outside.returncode == 0, outside.stderr[-2000:]
    assert inside.stdout.strip() == f"(2, 3) {outside.stdout.strip()}"
