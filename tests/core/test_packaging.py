"""The wheel must hold every subpackage (a non-editable install found fastdrop._cuda
missing once): pyproject's package list equals the packages in the source tree."""
import pathlib

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "fastdrop").rglob("__init__.py")}
    assert listed == found
