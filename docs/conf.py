"""Sphinx configuration of crnn's documentation (build: make -C docs html)."""
import os
import socket

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
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
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
# the network, and a failed fetch is a warning (an error under -W), so they
# are left out where the network is not there: CRNN_DOCS_OFFLINE=1 says so
# (CI, which has the package index only), and without it a machine that
# cannot open a connection to numpy.org within 5 s is taken to be offline.
def _online():
    if os.environ.get("CRNN_DOCS_OFFLINE"):
        return False
    try:
        socket.create_connection(("numpy.org", 443), timeout=5).close()
    except OSError:
        print("crnn docs: no network, the intersphinx links are left out")
        return False
    return True


intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
    "dask": ("https://docs.dask.org/en/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
} if _online() else {}

html_theme = "pydata_sphinx_theme"
html_title = f"crnn {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_context = {"default_mode": "auto"}
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
myst_heading_anchors = 4

# The gallery: every examples/**/plot_*.py runs as the site is built (small
# sizes: seconds each on two cores), and its figures and output go on its
# page.  An example that raises fails the build.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "subsection_order": [
        "../examples/sequences", "../examples/forecasting", "../examples/text",
        "../examples/speech", "../examples/performance",
    ],
    "reset_modules": ("matplotlib",),
    "matplotlib_animations": False,
    # the execution-time tables load jQuery and DataTables from CDNs: the site
    # must work offline (tools/check_pages.py fails on any outside request)
    "write_computation_times": False,
}

# matplotlib's plot directive: the figures of the speed and accuracy reference
# (performance.md) are drawn at build time by the scripts in docs/plots/.
plot_include_source = False
plot_html_show_source_link = True
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_basedir = "plots"
