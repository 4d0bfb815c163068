"""The package's layering (pyproject.toml's [tool.importlinter] contracts) holds, and no
module of fastdrop imports another module's private names."""
import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = ROOT / "fastdrop"


def test_import_linter_contracts_hold():
    pytest.importorskip("importlinter.cli")
    # in a fresh process: what other tests imported (logging handlers bound to pytest's
    # captured streams, by Flax's dependencies) must not reach the linter's output
    code = ("import sys, importlinter.cli as cli\n"
            f"sys.exit(cli.lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, "
            "no_cache=True))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "BROKEN" not in out and "KEPT" in out


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    """A module or package of the source tree (.py, .pyx: compiled, or a folder)."""
    base = ROOT.joinpath(*dotted.split("."))
    return base.is_dir() or base.with_suffix(".py").exists() or base.with_suffix(".pyx").exists()


def _resolve(path: pathlib.Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    pkg = _module_name(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    pkg = pkg[:len(pkg) - (node.level - 1)]
    return ".".join(pkg + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(path: pathlib.Path) -> list:
    """(line, what) for each private name of another fastdrop module this file uses."""
    tree = ast.parse(path.read_text(), str(path))
    found, modules = [], {}  # local alias -> fastdrop module it names
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(path, node)
            if not source.startswith("fastdrop"):
                continue
            for a in node.names:
                target = f"{source}.{a.name}"
                if _is_module(target):
                    modules[a.asname or a.name] = target
                elif _private(a.name):
                    found.append((node.lineno, f"from {source} import {a.name}"))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fastdrop") and a.asname:
                    modules[a.asname] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and _private(node.attr)
                and not _is_module(f"{modules[node.value.id]}.{node.attr}")):
            found.append((node.lineno, f"{modules[node.value.id]}.{node.attr}"))
    return found


def test_no_module_imports_another_modules_private_names():
    offences = [f"{p.relative_to(ROOT)}:{line}: {what}" for p in sorted(PKG.rglob("*.py"))
                for line, what in private_imports(p)]
    assert offences == []


def test_the_private_name_check_can_fail(tmp_path):
    """The check itself: a private helper taken from another module is reported."""
    bad = PKG / "_core" / "parse.py"
    tree_text = bad.read_text()
    probe = PKG / "_core" / "_probe_for_test.py"
    try:
        probe.write_text("from .parse import _noise\nfrom . import parse\nparse._mask\n"
                         "from . import args\n")
        got = private_imports(probe)
    finally:
        probe.unlink()
    assert [w for _, w in got] == ["from fastdrop._core.parse import _noise",
                                   "fastdrop._core.parse._mask"]
    assert bad.read_text() == tree_text
