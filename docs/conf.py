"""Sphinx configuration of the backprop site: ``make docs`` builds it with warnings as errors.

The API reference comes from the numpydoc docstrings (autodoc + autosummary + numpydoc), the
example gallery from ``examples/`` (sphinx-gallery, executed at every build), the pages from
Markdown (MyST) and the tutorial notebook from ``tutorial.ipynb``, executed by myst-nb.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import backprop  # noqa: E402

project = "backprop"
author = "the backprop developers"
copyright = "2026, the backprop developers"
version = release = backprop.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_nb",  # Markdown pages (myst-parser) and executed notebooks
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    # each experiment's summary.md is a data file of its page, not a page
    "experiments/*/*.md",
    "experiments/*/*/*.md",  # and of a page's extra runs (adding/lstm_t200_24_epochs/)
    # sphinx-gallery's downloadable notebooks are outputs, not sources
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.md5",
    "auto_examples/*.json",
]

# -- API reference -------------------------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc sections carry the types
# Which classes show inherited members is the class template's choice (an "inherited-members"
# entry here would override its directive option under Sphinx 9).


def _mixin_hosts() -> list[str]:
    """Public classes whose methods partly live in mixins (``Sequential``: ``FlatParameters``;
    ``Trainer``: ``TrainerState``, ``Predictions``): their pages show the inherited members too,
    every other class only its own (a layer's page does not repeat the Layer protocol)."""
    hosts = []
    for name in backprop.__all__:
        obj = getattr(backprop, name)
        mro = obj.__mro__[1:] if isinstance(obj, type) else ()
        if any((base.__doc__ or "").startswith("Mixin of") for base in mro):
            hosts.append(name)
    return hosts


autosummary_context = {"mixin_hosts": _mixin_hosts()}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Markdown and the notebook -------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "force"  # the tutorial runs at every build
nb_execution_timeout = 300
nb_execution_raise_on_error = True
# The README and the experiment pages link to files of the repository (scripts, configs,
# results.json) that are not pages of the site; GitHub resolves them, Sphinx cannot.
suppress_warnings = ["myst.xref_missing", "myst.header"]

# -- The gallery ---------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "write_computation_times": False,
}

# -- HTML ----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"backprop {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []
templates_path = ["_templates"]


def _skip_inherited_from_sklearn(app, what, name, obj, skip, options):
    """Leave out what the estimators inherit from scikit-learn (metadata-routing setters and
    the like): it is scikit-learn's to document, and its docstrings refer to its own glossary."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if (getattr(obj, "__module__", None) or "").startswith("sklearn"):
        return True
    return None


# Pages of docs/ that the index does not name (the derivation page, pages added later) are listed
# after the named ones, so that a new page never fails the build as "not in any toctree".
NAMED = {
    "index",
    "getting_started",
    "tutorial",
    "user_guide",
    "backprop",
    "sequences",
    "experiments",
    "api",
    "benchmarks",
    "reliability",
    "layout",
    "changelog",
}
EXTRA_PAGES = sorted(
    p.stem
    for p in Path(__file__).parent.iterdir()
    if p.suffix in (".md", ".rst", ".ipynb") and p.stem not in NAMED
)


def _list_extra_pages(app, docname, source):
    if docname == "index":
        source[0] = source[0].replace("__extra_pages__\n", "".join(f"{n}\n" for n in EXTRA_PAGES))


def setup(app):
    app.connect("autodoc-skip-member", _skip_inherited_from_sklearn)
    app.connect("source-read", _list_extra_pages)
