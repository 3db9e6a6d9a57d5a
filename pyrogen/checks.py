"""Argument checks shared by every layer: one message for each kind of bad argument.

Each check returns the value (as ``int`` or ``float``) or raises ``ValueError`` naming the argument and the
value, as pyrogen's public boundary does everywhere. Booleans are not numbers here (``True`` is not a count).
This module imports nothing from pyrogen, so that ``nn``, ``distributions``, ``inference`` and ``models`` all
can use it.

Example:
    >>> integer("num_steps", 3), number("step_size", 0.5, lo=0, strict=True)
    (3, 0.5)
    >>> integer("num_steps", 0)
    Traceback (most recent call last):
    ...
    ValueError: num_steps must be a positive integer; got 0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["choice", "integer", "number", "optional_number"]

T = TypeVar("T")


def integer(name: str, v: object, lo: int = 1) -> int:
    """``v`` as an integer of at least ``lo``."""
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        what = {1: "a positive integer", 0: "a non-negative integer"}.get(lo, f"an integer >= {lo}")
        raise ValueError(f"{name} must be {what}; got {v!r}")
    return v


def _describe(lo: float, hi: float, strict: bool) -> str:
    if math.isfinite(hi):
        return f"a number in {'(' if strict else '['}{lo:g}, {hi:g}]"
    if lo == 0 and strict:
        return "a positive finite number"
    if lo == -math.inf:
        return "a finite number"
    return f"a finite number {'>' if strict else '>='} {lo:g}"


def number(name: str, v: object, lo: float = -math.inf, hi: float = math.inf, *, strict: bool = False) -> float:
    """``v`` as a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``strict``)."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or not (lo < v if strict else lo <= v) or not v <= hi:  # type: ignore[operator]
        raise ValueError(f"{name} must be {_describe(lo, hi, strict)}; got {v!r}")
    return float(v)  # type: ignore[arg-type]


def optional_number(
    name: str, v: object, lo: float = -math.inf, hi: float = math.inf, *, strict: bool = False
) -> float | None:
    """:func:`number`, or ``None`` where ``v`` is ``None``."""
    if v is None:
        return None
    try:
        return number(name, v, lo, hi, strict=strict)
    except ValueError:
        raise ValueError(f"{name} must be {_describe(lo, hi, strict)} or None; got {v!r}") from None


def choice(name: str, v: Any, options: Sequence[T]) -> T:
    """``v``, one of ``options``."""
    if v not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))}; got {v!r}")
    return v
