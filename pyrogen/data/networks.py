"""Bundled discrete Bayesian networks, and the ``student`` dataset drawn from the first.

The student network (Koller and Friedman, *Probabilistic Graphical Models*, 2009, Figure 3.4): a course's
Difficulty and a student's Intelligence, the Grade they get, their SAT score and the reference Letter. A
node is a dict: ``name``, ``states`` (the number of values), ``parents`` (names) and ``table`` (nested lists,
indexed by the parents' values in order, then the node's own: each innermost row sums to 1).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["STUDENT", "ancestral_sample"]

STUDENT: list[dict[str, Any]] = [
    {"name": "difficulty", "states": 2, "parents": [], "table": [0.6, 0.4]},
    {"name": "intelligence", "states": 2, "parents": [], "table": [0.7, 0.3]},
    {
        "name": "grade",
        "states": 3,
        "parents": ["intelligence", "difficulty"],
        "table": [[[0.3, 0.4, 0.3], [0.05, 0.25, 0.7]], [[0.9, 0.08, 0.02], [0.5, 0.3, 0.2]]],
    },
    {"name": "sat", "states": 2, "parents": ["intelligence"], "table": [[0.95, 0.05], [0.2, 0.8]]},
    {"name": "letter", "states": 2, "parents": ["grade"], "table": [[0.1, 0.9], [0.4, 0.6], [0.99, 0.01]]},
]


def ancestral_sample(nodes: list[dict[str, Any]], n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` joint draws, ``(n, len(nodes))`` integers, each node after its parents (``nodes`` in a topological
    order)."""
    index = {node["name"]: i for i, node in enumerate(nodes)}
    out = torch.zeros(n, len(nodes), dtype=torch.long)
    for i, node in enumerate(nodes):
        table = torch.as_tensor(node["table"], dtype=torch.float64)
        probs = _rows(table, [out[:, index[p]] for p in node["parents"]], n)
        out[:, i] = torch.multinomial(probs, 1, generator=generator)[:, 0]
    return out


def _rows(table: torch.Tensor, parent_values: list[torch.Tensor], n: int) -> torch.Tensor:
    if not parent_values:
        return table.expand(n, -1)
    return table[tuple(parent_values)]
