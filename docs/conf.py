"""Sphinx configuration of crnn's documentation (build: make -C docs html)."""
import os

import crnn

project = "crnn"
author = "the crnn developers"
copyright = "2026, the crnn developers"
release = crnn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]

autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Links into the projects crnn builds on.  Their inventories are fetched over
# the network; CRNN_DOCS_OFFLINE=1 (a machine without it) leaves them out.
intersphinx_mapping = {} if os.environ.get("CRNN_DOCS_OFFLINE") else {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
    "dask": ("https://docs.dask.org/en/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
}

html_theme = "pydata_sphinx_theme"
html_title = f"crnn {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
myst_heading_anchors = 4
