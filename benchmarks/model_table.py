"""The README's table of registered models, from the registry (name, family, density kind, default data and the
recipe's one line); ``tests/test_benchmarks.py`` checks the README holds exactly this table.

    python benchmarks/model_table.py
"""

from __future__ import annotations

import re
import sys

from pyrogen.models import registry


def one_line(text: str, limit: int = 150) -> str:
    """The first sentence of the first paragraph of ``text``, its reST made markdown, cut at ``limit``
    characters."""
    para = " ".join(text.strip().split("\n\n")[0].split())
    para = re.sub(r":math:`([^`]*)`", r"`\1`", para)
    para = re.sub(r":(?:class|meth|func|attr|mod):`~?([^`]*)`", r"`\1`", para)
    para = para.replace("``", "`")
    first = re.split(r"(?<=[a-z0-9)`])\.\s", para, maxsplit=1)[0].rstrip(".").rstrip(":")
    if len(first) > limit:
        first = first[: first.rfind(" ", 0, limit)].rstrip(",;:") + " …"
    return first.replace("|", "\\|")


def table() -> str:
    rows = ["| model | family | density | data | what it is |", "|---|---|---|---|---|"]
    for name in registry.names():
        r = registry.get(name)
        rows.append(
            f"| `{name}` | {r.family} | {r.density} | {r.default_data} | {one_line(r.doc or r.cls.__doc__ or '')} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
    sys.exit(0)
