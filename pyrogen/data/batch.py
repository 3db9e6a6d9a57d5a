"""The one batch type: examples and an optional context (class labels, caption tokens), as Pyro's conditional
transforms call what they condition on (``ConditionalTransformModule.condition(context)``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

__all__ = ["Batch", "as_batch", "split_context"]


class Batch(NamedTuple):
    """Examples ``x`` ``(n, *event_shape)`` and an optional ``context`` with one row per example.

    A tuple, so ``x, context = batch`` works; :func:`~pyrogen.inference.fit` hands every objective one of
    these for data given as ``(examples, context)`` pairs.

    Example:
        >>> b = as_batch((torch.zeros(3, 2), torch.tensor([0, 1, 1])))
        >>> b.x.shape, b.context.tolist()
        (torch.Size([3, 2]), [0, 1, 1])
    """

    x: torch.Tensor
    context: torch.Tensor | None = None

    def index_select(self, idx: torch.Tensor) -> Batch:
        """The rows ``idx`` of the examples and of the context."""
        ctx = None if self.context is None else self.context.index_select(0, idx.to(self.context.device))
        return Batch(self.x.index_select(0, idx.to(self.x.device)), ctx)


def as_batch(batch: Any) -> Batch:
    """``batch`` as a :class:`Batch`: a tensor of examples, an ``(examples, context)`` pair (tuple or list), or a
    :class:`Batch`.

    Raises:
        ValueError: any other structure (named in the message).
    """
    if isinstance(batch, Batch):
        return batch
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return Batch(batch[0], batch[1])
        if len(batch) == 1:
            return Batch(batch[0])
        raise ValueError(f"a batch is examples or (examples, context); got a {type(batch).__name__} of {len(batch)}")
    return Batch(batch)


def split_context(batch: Any, conditional: bool, model: str, what: str = "labels") -> Batch:
    """``batch`` as a :class:`Batch` whose context is there exactly when the model is ``conditional``.

    Raises:
        ValueError: a context for an unconditional model, or none for a conditional one (naming ``model`` and
            what its context is, ``what``).
    """
    b = as_batch(batch)
    if b.context is not None and not conditional:
        raise ValueError(f"{model} is unconditional; give examples, not (examples, {what})")
    if b.context is None and conditional:
        kind = "class-conditional" if what == "labels" else "conditional"
        raise ValueError(f"{model} is {kind}: give (examples, {what})")
    return b
