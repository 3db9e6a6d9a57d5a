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

__all__ = ["ROWS_PLATE", "data_plate", "refuse_frozen_in_svi"]


#: The name of the plate a model opens for its rows when the caller has none there: one a user will not pick for
#: their own plates (a program that calls a model and then opens ``pyro.plate("data")`` for its own sites works).
ROWS_PLATE = "pyrogen_rows"


def data_plate(size: int | None, name: str = ROWS_PLATE, dim: int = -1) -> contextlib.AbstractContextManager[Any]:
    """The plate of ``size`` rows at ``dim``: the caller's plate there if there is one, no plate for an
    unbatched row (``size=None``), else ``pyro.plate(name, size, dim=dim)`` -- under a name the enclosing
    plates do not use (``name``, :data:`ROWS_PLATE` by default, or ``name`` with a numeric suffix).

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


def _inside_svi_step() -> bool:
    """Whether a Pyro ``SVI.step`` is running: it records the parameters its loss touches with a parameter-only
    trace around the whole loss computation."""
    from pyro.poutine.runtime import _PYRO_STACK
    from pyro.poutine.trace_messenger import TraceMessenger

    return any(isinstance(m, TraceMessenger) and m.param_only for m in _PYRO_STACK)


def refuse_frozen_in_svi(model: Any, what: str = "the EMA weights") -> None:
    """Refuse to run ``model``'s Pyro program inside an ``SVI`` step while ``model`` is in eval mode: in eval mode
    the program uses ``what`` (the weights ``sample`` and the reported bound use), which SVI cannot train, so the
    step would train nothing the model uses; ``model.train()`` makes the program use the trained weights.
    Evaluating the program (a trace, an ELBO's ``loss``) in eval mode is fine.

    Raises:
        ValueError: ``model`` is in eval mode and an ``SVI`` step is running.

    Example:
        >>> import torch
        >>> refuse_frozen_in_svi(torch.nn.Linear(1, 1).eval())  # outside SVI: nothing to refuse
    """
    if not model.training and _inside_svi_step():
        raise ValueError(
            f"{type(model).__name__} is in eval mode, so its model/guide use {what}, which SVI cannot train: "
            "call .train() on it before training it by SVI"
        )
