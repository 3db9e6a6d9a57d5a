"""Sphinx configuration of pyrogen's documentation site (``make docs``).

The pages are the Markdown files of ``docs/`` (MyST), the front page is the repository's README, the API
reference comes from the docstrings (autodoc, Google style through napoleon), and the tutorials are the
percent-format scripts of ``tutorials/``, turned into notebooks here and executed by MyST-NB in their fast mode
(``PYROGEN_FAST=1``), their figures shown after the cell that saves them.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYROGEN_FAST", "1")
TUTORIAL_OUT = HERE / "tutorials" / "figures"
os.environ["PYROGEN_OUT"] = str(TUTORIAL_OUT)
# tqdm.auto, imported by Pyro in a kernel without ipywidgets, warns on stderr; any other stderr fails the build
os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"]))

import pyrogen  # noqa: E402

project = "pyrogen"
author = "pyrogen developers"
copyright = "2026, pyrogen developers"
release = version = pyrogen.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "tutorials/figures"]
html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"pyrogen {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "force"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_output_stderr = "warn"  # a warning (anything on stderr) in a tutorial fails the build, as it fails pytest


def _notebook(script: Path) -> nbformat.NotebookNode:
    """A tutorial script as a notebook: its docstring becomes the title and the introduction, and each cell that
    saves a figure to ``OUT`` is followed by the figure."""
    nb = jupytext.read(script, fmt="py:percent")
    first = nb.cells[0]
    match = re.match(r'\s*"""(.*?)"""\s*$', first.source, re.S)
    if first.cell_type != "code" or match is None:
        raise ValueError(f"{script.name} must open with a docstring whose first line is its title")
    title, _, intro = match.group(1).strip().partition("\n")
    cells = [nbformat.v4.new_markdown_cell(f"# {title.strip()}\n\n{intro.strip()}")]
    for cell in nb.cells[1:]:
        cells.append(cell)
        if cell.cell_type == "code":
            for name in re.findall(r'OUT\s*/\s*"([^"]+\.png)"', cell.source):
                cells.append(nbformat.v4.new_markdown_cell(f"![{name}](figures/{name})"))
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _tutorials() -> None:
    """Write ``docs/tutorials/NN_name.ipynb`` from ``tutorials/NN_name.py`` (build products, not committed)."""
    out = HERE / "tutorials"
    shutil.rmtree(out, ignore_errors=True)
    TUTORIAL_OUT.mkdir(parents=True)
    for script in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py")):
        nbformat.write(_notebook(script), out / f"{script.stem}.ipynb")


_tutorials()


def _front_page_links(app, docname, source):  # noqa: ANN001
    """The pages link to the README as ``../README.md`` (right on GitHub); on the site, the README is the index."""
    source[0] = source[0].replace("](../README.md)", "](index.md)")


#: The pages the site must have: a build that lacks one fails.
FAMILY_PAGES = ["results", "autoregressive", "flows", "latent", "gan", "ebm", "diffusion", "classical", "sequence", "images"]


def _check_site(app, exception):  # noqa: ANN001
    """Fail the build where the index, a tutorial page, a family page or an API page is missing."""
    if exception is not None or app.builder.name != "html":
        return
    out = Path(app.outdir)
    expected = ["index", "python", "cli", "design", *FAMILY_PAGES, "api/index"]
    expected += [f"tutorials/{p.stem}" for p in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))]
    missing = [name for name in expected if not (out / f"{name}.html").is_file()]
    if missing:
        raise RuntimeError(f"the built site lacks {missing}")


def setup(app):  # noqa: ANN001
    app.connect("source-read", _front_page_links)
    app.connect("build-finished", _check_site)
