"""Validation of data entering pyrogen at its public boundary."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["SUPPORTS", "validate"]

#: Data supports a model can declare: real vectors, {0, 1}, integers
#: ``0..levels-1`` and the unit interval.
SUPPORTS = ("real", "binary", "integer", "unit_interval")


def validate(
    x: object,
    *,
    event_shape: Sequence[int] | None = None,
    support: str = "real",
    levels: int | None = None,
    name: str = "x",
) -> torch.Tensor:
    """Check a data tensor and return it unchanged.

    Args:
        x: the data, a tensor of shape ``batch_shape + event_shape``.
        event_shape: the expected trailing shape, or ``None`` to accept any.
        support: one of :data:`SUPPORTS`.
        levels: the number of levels of an ``"integer"`` support.
        name: the argument name used in error messages.

    Raises:
        TypeError: ``x`` is not a tensor, or its dtype does not fit ``support``.
        ValueError: ``x`` is empty, has the wrong shape, holds NaN or infinite
            values, or values outside ``support``.

    Example:
        >>> validate(torch.tensor([[0.0, 1.0]]), event_shape=(2,), support="binary")
        tensor([[0., 1.]])
        >>> validate(torch.tensor([[0.5, 1.0]]), support="binary")
        Traceback (most recent call last):
        ...
        ValueError: x must hold only 0 and 1 for a binary support; found 0.5
    """
    if support not in SUPPORTS:
        raise ValueError(f"support must be one of {SUPPORTS}; got {support!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); at least one example is needed")
    if event_shape is not None:
        event_shape = tuple(event_shape)
        k = len(event_shape)
        if x.dim() <= k or tuple(x.shape[x.dim() - k :]) != event_shape:
            raise ValueError(f"{name} must have shape (batch, *{event_shape}); got {tuple(x.shape)}")
    if support == "integer":
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise TypeError(f"{name} must have an integer dtype for an integer support; got {x.dtype}")
        lo, hi = int(x.min()), int(x.max())
        top = None if levels is None else levels - 1
        if lo < 0 or (top is not None and hi > top):
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must hold integers in 0..{top}; found {bad}")
        return x
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must have a floating dtype for a {support} support; got {x.dtype}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ValueError(f"{name} must be finite; found {x[~finite].flatten()[0].item()}")
    if support == "binary":
        ok = (x == 0) | (x == 1)
        if not bool(ok.all()):
            raise ValueError(
                f"{name} must hold only 0 and 1 for a binary support; found {x[~ok].flatten()[0].item():g}"
            )
    elif support == "unit_interval":
        ok = (x >= 0) & (x <= 1)
        if not bool(ok.all()):
            raise ValueError(f"{name} must lie in [0, 1]; found {x[~ok].flatten()[0].item():g}")
    return x
