"""pyrogen: deep generative models as first-class citizens of Pyro.

Example:
    >>> import pyrogen
    >>> {"made", "realnvp", "vae"} <= set(pyrogen.models.registry.names())
    True
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from pyrogen import data, distributions, inference, io, metrics, models, nn  # noqa: E402

__all__ = [
    "__version__",
    "data",
    "diagnostics",
    "distributions",
    "inference",
    "io",
    "metrics",
    "models",
    "nn",
]


def __getattr__(name: str) -> Any:
    # ArviZ (and through it xarray) is imported only when diagnostics are used.
    if name == "diagnostics":
        return importlib.import_module("pyrogen.diagnostics")
    raise AttributeError(f"module 'pyrogen' has no attribute {name!r}")
