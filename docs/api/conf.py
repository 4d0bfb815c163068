"""Sphinx configuration of fastdrop's API reference (autodoc + numpydoc).

Build it (warnings are errors, as tests/api/test_docs.py does)::

    python3 -m pip install -e ".[test]"        # sphinx and numpydoc come with it
    sphinx-build -W -b html docs/api /tmp/fastdrop-api

It documents the installed fastdrop (the compiled extension modules are needed).
PyTorch, JAX and Dask are imported when they are installed and mocked otherwise, so the
adapters' pages build everywhere.
"""
from __future__ import annotations

import importlib.util
import os
import sys

# the source tree (the editable install finds it anyway; this helps a plain checkout)
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import fastdrop  # noqa: E402

project = "fastdrop"
author = "fastdrop developers"
copyright = "fastdrop developers, BSD 3-Clause"
release = version = fastdrop.__version__

extensions = ["sphinx.ext.autodoc", "numpydoc"]

# mock the optional frameworks only where they are missing
autodoc_mock_imports = [name for name in ("torch", "jax", "dask")
                        if importlib.util.find_spec(name) is None]

autodoc_member_order = "bysource"
autodoc_typehints = "none"            # the numpydoc sections carry the types
autodoc_inherit_docstrings = False    # no torch.nn.Module docstrings on fastdrop.torch.Dropout

numpydoc_show_class_members = False   # members are listed by autodoc, not numpydoc tables
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

master_doc = root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "Fast, reproducible dropout kernels"}
