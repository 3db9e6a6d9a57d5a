"""How a model's rows meet the caller's Pyro program: whose plate they live in.

A pyrogen model's :meth:`model` and :meth:`guide` are Pyro programs over a batch of rows. Called on their own,
they open a plate for the rows; called inside a user's program that already has a plate at the rows' dimension
(``pyro.plate("data", n)`` or any other name), the rows are that plate's and the model opens none -- so the
plate's name, size and subsampling scale are the caller's, and a model never collides with a plate it did not
make. An unbatched row (shape ``event_shape``) gets no plate at all, as one draw of a ``torch.distributions``
distribution has no batch dimension.

Example:
    >>> import pyro, pyro.distributions as dist, torch
    >>> def program(x):
    ...     with data_plate(len(x)):
    ...         return pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)
    >>> def users(x):
    ...     with pyro.plate("rows", len(x)):  # the user's plate: the program's rows are in it
    ...         return program(x)
    >>> tr = pyro.poutine.trace(users).get_trace(torch.zeros(3))
    >>> [f.name for f in tr.nodes["x"]["cond_indep_stack"]]
    ['rows']
"""

from __future__ import annotations

import contextlib
from typing import Any

import pyro
from pyro.poutine.runtime import get_plates

__all__ = ["data_plate"]


def data_plate(size: int | None, name: str = "data", dim: int = -1) -> contextlib.AbstractContextManager[Any]:
    """The plate of ``size`` rows at ``dim``: the caller's plate there if there is one, no plate for an
    unbatched row (``size=None``), else ``pyro.plate(name, size, dim=dim)`` -- under a name the enclosing
    plates do not use (``name``, or ``name`` with a numeric suffix).

    Args:
        size: the number of rows, or ``None`` for one unbatched row.
        name: the plate's name when the model opens one.
        dim: the rows' batch dimension (negative, as Pyro counts).
    """
    if size is None:
        return contextlib.nullcontext()
    frames = get_plates()
    if any(f.dim == dim for f in frames):
        return contextlib.nullcontext()
    taken = {f.name for f in frames}
    unique, i = name, 1
    while unique in taken:
        unique, i = f"{name}_{i}", i + 1
    return pyro.plate(unique, size, dim=dim)
