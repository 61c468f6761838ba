"""Sphinx configuration of the jaxloss documentation.

Build (warnings are errors; the notebooks are rendered from their saved outputs, never executed):

    .venv/bin/pip install -q -e '.[docs]'
    .venv/bin/python -m sphinx -W -b html docs docs/_build/html
"""

import importlib
import inspect
import os
import pathlib
import shutil

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

# Importing jaxloss for autodoc needs no accelerator: stay on the CPU whatever the machine has.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jaxloss

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent


# The notebooks live in notebooks/ (tests/test_notebooks.py runs them there) and Sphinx reads
# only files under its source folder, so each build copies them, with their figures, into
# docs/notebooks/, a folder git ignores: one copy in git, none to keep in step by hand. Only a
# file that changed is copied (copy2 keeps its time, so Sphinx does not read an unchanged
# notebook again, and two builds at once write nothing under each other), and a file that left
# notebooks/ leaves the copy.
def _copy_notebooks(source: pathlib.Path, target: pathlib.Path) -> None:
    wanted = {
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file() and ".ipynb_checkpoints" not in path.parts
    }
    for relative in sorted(wanted):
        original, copy = source / relative, target / relative
        if not copy.is_file() or copy.read_bytes() != original.read_bytes():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(original, copy)
    for copy in target.rglob("*"):
        if copy.is_file() and copy.relative_to(target) not in wanted:
            copy.unlink()


_copy_notebooks(ROOT / "notebooks", DOCS / "notebooks")

project = "jaxloss"
author = "the jaxloss authors"
copyright = "the jaxloss authors"
release = jaxloss.__version__
version = release

extensions = [
    "myst_nb",  # MyST Markdown pages and the notebooks (myst-nb brings myst-parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # the Google-style docstrings
    "sphinx.ext.mathjax",
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]

# MyST: $...$ and $$...$$ math (MathJax), and ::: fences.
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# The notebooks are shown with the outputs saved in them (tests/test_notebooks.py runs them in CI).
nb_execution_mode = "off"

# The API reference: each module's __all__ decides what is documented (docs/api/).
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autosummary_generate = False  # the tables link to the entries on the same page (public-api below)
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_book_theme"
html_title = f"jaxloss {release}"
html_theme_options = {"show_toc_level": 2}


# ``public-api`` (docs/api/*.md): a module's public names, read from its __all__ when the docs
# are built, as a summary table and one entry each. A name added to __all__ later appears with no
# edit here, and tests/test_docs.py checks that each one is in the built reference.


def public_names(module_name: str) -> list[str]:
    """The functions and classes a module exports (its __all__ less the submodules it re-exports)."""
    module = importlib.import_module(module_name)
    return [name for name in module.__all__ if not inspect.ismodule(getattr(module, name))]


class PublicApi(SphinxDirective):
    """``.. public-api:: MODULE``: an autosummary table of MODULE's public names, then an
    ``autofunction`` or ``autoclass`` entry for each."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        module = importlib.import_module(name)
        names = public_names(name)
        lines = [f".. currentmodule:: {name}", "", ".. autosummary::", ""]
        lines += [f"   {public}" for public in names]
        for public in names:
            obj = getattr(module, public)
            if not inspect.isclass(obj):
                lines += ["", f".. autofunction:: {public}"]
                continue
            lines += ["", f".. autoclass:: {public}"]
            if hasattr(obj, "_fields"):  # a NamedTuple: its docstring's Attributes section has the fields
                lines += [f"   :exclude-members: {', '.join(obj._fields)}"]
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source=self.get_source_info()[0]), container)
        return container.children


def setup(app):
    app.add_directive("public-api", PublicApi)
