"""The documentation site's sources: every public module in the API reference, every tutorial and family page in a
table of contents. (``make docs``, run by ``make test``, builds the site with every warning an error.)"""

from __future__ import annotations

import re
from pathlib import Path

import pyrogen

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_every_public_module_is_in_the_api_reference():
    documented = set()
    for page in (DOCS / "api").glob("*.rst"):
        documented |= set(re.findall(r"^\.\. automodule:: ([\w.]+)", page.read_text(), re.M))
    src = Path(pyrogen.__file__).parent
    modules = {
        ".".join(("pyrogen", *p.relative_to(src).with_suffix("").parts)).removesuffix(".__init__")
        for p in src.rglob("*.py")
    }
    assert modules - documented == set(), "add them to docs/api/*.rst"
    assert documented - modules == set()


def test_every_docs_page_and_tutorial_is_on_the_site():
    index = (DOCS / "index.md").read_text()
    listed = set(re.findall(r"^(\w[\w/]*)$", index, re.M))
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages <= listed, pages - listed
    assert "tutorials/*" in index  # the glob that takes every tutorial
    conf = (DOCS / "conf.py").read_text()
    assert 'glob("[0-9][0-9]_*.py")' in conf  # ... which conf.py writes from tutorials/
    assert {p.name for p in (ROOT / "tutorials").glob("*.py")} == {
        p.name for p in (ROOT / "tutorials").glob("[0-9][0-9]_*.py")
    }
