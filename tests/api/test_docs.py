"""Docs that run: the Markdown code blocks, the docstring examples and the API reference.

1. Markdown code blocks (`test_markdown_block`).  Every fenced block opened with
   ```` ```python ```` in README.md and docs/*.md is executed, **each block in a fresh
   namespace** (so every block must define its own imports and inputs, and can be
   copied and run alone), with a temporary directory as the working directory.  A failure
   names the file and the block's first line (the test id is ``README.md:44``), and the
   traceback's line numbers are those of the Markdown file.  Other fences (```` ``` ````
   alone, ``bash``, ``console``, ...) and indented blocks are not run: shell commands and
   printed output.

   A block that needs an optional package or a GPU is marked by an HTML comment on the
   line right before its fence (invisible on GitHub); without the requirement the block
   is skipped::

       <!-- docs-test: requires torch -->        skipped unless `import torch` works
       <!-- docs-test: requires jax dask -->     several requirements, all needed
       <!-- docs-test: requires torch gpu -->    and a GPU (see below)
       <!-- docs-test: skip REASON -->           never run; say why

   A requirement is the name of an importable module (``torch``, ``jax``, ``dask``,
   ``cupy``, ...), or ``gpu``: a CUDA GPU that fastdrop's GPU backend (numba-cuda) can
   use (``numba.cuda.is_available()``, which is also true under Numba's simulator), and
   that torch and CuPy can use too when they are among the block's requirements.

   `UNMARKED_SKIPS` lists the blocks, in files this test's authors do not own, that are
   skipped without a marker (each entry says why; `test_unmarked_skips_still_match` fails
   when an entry no longer matches a block).

2. Doctests (`test_doctests`).  The examples of fastdrop's public modules run with
   ``doctest`` (ELLIPSIS and NORMALIZE_WHITESPACE: write ``...`` where a float's digits
   are long).  fastdrop.torch, fastdrop.jax and fastdrop.dask are skipped when torch, jax
   or dask is not installed.  `test_public_docstrings` checks that every public function
   and class has numpydoc Parameters, Returns (functions), Raises and Examples sections.

3. The Sphinx API reference (`test_sphinx_build`): ``sphinx-build -W -b html docs/api``
   (warnings are errors), skipped when sphinx or numpydoc is not importable (both are in
   the ``test`` extra).
"""
from __future__ import annotations

import doctest
import functools
import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKDOWN_FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))

# (file, text the block contains) -> why it is skipped.  Only for files whose owners have
# not marked the block themselves; mark blocks with <!-- docs-test: ... --> instead.
UNMARKED_SKIPS: dict = {}


# ---- Markdown ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    path: Path
    line: int        # 1-based line of the first line of code (after the fence)
    code: str
    requires: tuple  # requirement words
    skip: str | None  # reason, for <!-- docs-test: skip ... -->

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def where(self) -> str:
        return f"{self.rel}:{self.line - 1}"  # the fence's line


_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<verb>requires|skip)\b(?P<rest>.*?)-->\s*$")


def markdown_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        start = i + 1
        j = start
        while j < len(lines) and not (lines[j].strip().startswith(fence)
                                      and set(lines[j].strip()) == {fence[0]}):
            j += 1
        lang = info.split()[0].lower() if info else ""
        if lang in ("python", "py", "python3"):
            requires, skip = (), None
            k = i - 1
            while k >= 0 and _MARKER.match(lines[k]):  # markers just above the fence
                mk = _MARKER.match(lines[k])
                if mk.group("verb") == "skip":
                    skip = mk.group("rest").strip() or "marked skip"
                else:
                    requires += tuple(mk.group("rest").replace(",", " ").split())
                k -= 1
            blocks.append(Block(path, start + 1, "\n".join(lines[start:j]) + "\n",
                                requires, skip))
        i = j + 1
    return blocks


ALL_BLOCKS = [b for p in MARKDOWN_FILES for b in markdown_blocks(p)]


@functools.lru_cache(maxsize=None)
def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # ImportError, or a broken install
        return False
    return True


@functools.lru_cache(maxsize=None)
def _gpu(frameworks: tuple) -> bool:
    """A CUDA GPU for fastdrop's GPU backend and for the given frameworks."""
    try:
        from numba import cuda
        if not cuda.is_available():
            return False
        if "torch" in frameworks:
            import torch
            if not torch.cuda.is_available():
                return False
        if "cupy" in frameworks:
            import cupy
            if cupy.cuda.runtime.getDeviceCount() < 1:
                return False
    except Exception:
        return False
    return True


def _missing(block: Block) -> list[str]:
    missing = [r for r in block.requires if r != "gpu" and not _importable(r)]
    if "gpu" in block.requires and not missing and not _gpu(tuple(sorted(block.requires))):
        missing.append("gpu")
    return missing


def _unmarked_skip(block: Block) -> str | None:
    for (rel, text), reason in UNMARKED_SKIPS.items():
        if block.rel == rel and text in block.code:
            return reason
    return None


def _preserved_rng_state():
    """Examples may seed torch's global generator: put its state back afterwards."""
    torch = sys.modules.get("torch")
    state = None if torch is None else torch.get_rng_state()

    def restore():
        if state is not None:
            torch.set_rng_state(state)

    return restore


def test_markdown_files_have_python_blocks():
    assert any(b.rel == "README.md" for b in ALL_BLOCKS), "no ```python block in README.md"


def test_unmarked_skips_still_match():
    for (rel, text) in UNMARKED_SKIPS:
        assert any(b.rel == rel and text in b.code for b in ALL_BLOCKS), (
            f"UNMARKED_SKIPS entry ({rel!r}, {text!r}) matches no ```python block: remove it")


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.where for b in ALL_BLOCKS])
def test_markdown_block(block: Block, tmp_path, monkeypatch):
    if block.skip:
        pytest.skip(f"{block.where}: {block.skip}")
    reason = _unmarked_skip(block)
    if reason:
        pytest.skip(f"{block.where}: {reason}")
    missing = _missing(block)
    if missing:
        pytest.skip(f"{block.where}: needs {', '.join(missing)}")
    # pad with newlines so that tracebacks give the Markdown file's line numbers
    source = "\n" * (block.line - 1) + block.code
    code = error = None
    try:
        code = compile(source, str(block.path), "exec")
    except SyntaxError as exc:
        error = "".join(traceback.format_exception_only(type(exc), exc))
    if code is None:
        pytest.fail(f"{block.where}: ```python block does not compile:\n{error}",
                    pytrace=False)
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    restore = _preserved_rng_state()
    namespace = {"__name__": "__docs__", "__file__": str(block.path)}
    error = None
    try:
        exec(code, namespace)
    except Exception as exc:  # the traceback from the block's own frame on
        error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
    finally:
        restore()
    if error is not None:
        pytest.fail(f"{block.where}: ```python block (code from line {block.line}) "
                    f"failed:\n{error}", pytrace=False)


# ---- doctests ----------------------------------------------------------------------------

# module -> the packages its examples need (skipped without them)
DOCTEST_MODULES = {
    "fastdrop": (),
    "fastdrop.functional": (),
    "fastdrop.rng": (),
    "fastdrop.generator": (),
    "fastdrop.torch": ("torch",),
    "fastdrop.jax": ("jax",),
    "fastdrop.dask": ("dask.array",),
    "fastdrop.flax.linen": ("flax",),
    "fastdrop.flax.nnx": ("flax",),
}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", list(DOCTEST_MODULES))
def test_doctests(name):
    for req in DOCTEST_MODULES[name]:
        pytest.importorskip(req)
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    examples = sum(len(t.examples) for t in tests)
    if name != "fastdrop":  # the package's own docstring has no examples
        assert examples > 0, f"{name} has no docstring examples"
    out = []
    runner = doctest.DocTestRunner(optionflags=FLAGS, verbose=False)
    restore = _preserved_rng_state()
    try:
        for t in sorted(tests, key=lambda t: (t.lineno or 0, t.name)):
            runner.run(t, out=out.append)
    finally:
        restore()
    result = runner.summarize(verbose=False)
    if result.failed:
        pytest.fail(f"{result.failed} of {result.attempted} doctest examples of {name} "
                    f"failed:\n" + "".join(out), pytrace=False)


# the public API: fastdrop.__all__ and the adapters' __all__
PUBLIC_MODULES = {"fastdrop": (), "fastdrop.torch": ("torch",), "fastdrop.jax": ("jax",),
                  "fastdrop.dask": ("dask.array",), "fastdrop.flax.linen": ("flax",),
                  "fastdrop.flax.nnx": ("flax",)}
# Cython functions of fastdrop._cpu (no arguments, nothing raised): build information
BUILD_INFO = {"openmp_enabled", "omp_max_threads", "get_simd_level", "simd_levels"}


def _sections(doc: str) -> set:
    return set(re.findall(r"^\s*([A-Z][A-Za-z ]+)\n\s*-{3,}\s*$", doc, re.M))


@pytest.mark.parametrize("module_name", list(PUBLIC_MODULES))
def test_public_docstrings(module_name):
    for req in PUBLIC_MODULES[module_name]:
        pytest.importorskip(req)
    module = importlib.import_module(module_name)
    problems = []
    for name in module.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(module, name)
        doc = inspect.getdoc(obj) or ""
        if not doc:
            problems.append(f"{module_name}.{name}: no docstring")
            continue
        need = {"Parameters", "Raises", "Examples"}
        if name in BUILD_INFO and module_name == "fastdrop":
            need = {"Examples"}  # no arguments, nothing raised
        if not inspect.isclass(obj):
            need.add("Returns")
        missing = need - _sections(doc)
        if missing:
            problems.append(f"{module_name}.{name}: no {', '.join(sorted(missing))} section")
    assert not problems, "\n".join(problems)


# ---- Sphinx ------------------------------------------------------------------------------


def test_sphinx_build(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(tmp_path / "doctrees"), str(ROOT / "docs" / "api"),
           str(tmp_path / "html")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"sphinx-build -W failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}", pytrace=False)
    page = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    for ident in ("fastdrop.dropout", "fastdrop.Generator", "fastdrop.Dropout",
                  "fastdrop.torch.Dropout", "fastdrop.jax.dropout", "fastdrop.dask.dropout"):
        assert f'id="{ident}"' in page, f"{ident} is missing from the API reference"
