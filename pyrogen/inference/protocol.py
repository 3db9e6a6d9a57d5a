"""The one interface every model family implements, as typing protocols.

:mod:`pyrogen.inference`, :mod:`pyrogen.metrics` and :mod:`pyrogen.diagnostics`
know models only through these protocols; they never import a model family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["DENSITY_KINDS", "Density", "GenerativeModelProtocol", "TrainableProtocol"]

Density = Literal["exact", "lower_bound", "unnormalized", "none"]
#: What ``log_prob`` means for a family: exact, a lower bound estimated by
#: ``elbo``/``iwae``, an unnormalized ``energy``, or no density (implicit models).
DENSITY_KINDS: tuple[str, ...] = ("exact", "lower_bound", "unnormalized", "none")


@runtime_checkable
class GenerativeModelProtocol(Protocol):
    """What metrics, the CLI and the generic tests use of a model."""

    @property
    def density(self) -> str: ...
    @property
    def event_shape(self) -> torch.Size: ...

    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any: ...
    def guide(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any: ...
    def sample(self, n: int) -> torch.Tensor: ...
    def loss(self, batch: torch.Tensor) -> torch.Tensor: ...

    def log_likelihood(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Per-example log-likelihood in nats: exact, or an IWAE-``k`` estimate."""
        ...


@runtime_checkable
class TrainableProtocol(Protocol):
    """What the trainer uses of a model: the step protocol.

    One training step at step ``s`` runs, for each ``group`` in
    ``update_schedule(s)``: zero the gradients of ``param_groups()[group]``,
    ``model(batch, group=group).backward()``, step that group's optimizer.
    A maximum-likelihood or ELBO family has the single group ``"model"``; an
    adversarial family has e.g. ``"critic"`` and ``"generator"`` and a schedule
    such as five critic updates per generator update; all without a change to
    the trainer. While one group trains, the others' parameters collect no
    gradient. Optional members the trainer reads when present:
    ``optimizer_settings()`` (per-group ``lr``, ``betas``, ``weight_decay``,
    ``grad_clip``), ``monitor`` (``None``: no validation) and
    ``validation_needs_grad``; and any :class:`~pyrogen.inference.hooks.TrainingHook`
    child module (an EMA, a replay buffer) is called after every step.
    """

    def param_groups(self) -> Mapping[str, Sequence[nn.Parameter]]: ...
    def update_schedule(self, step: int) -> Sequence[str]: ...
    def set_step(self, step: int) -> None: ...
    def validation_loss(self, batch: torch.Tensor) -> torch.Tensor: ...
    def config(self) -> dict[str, Any]: ...
    def __call__(self, batch: torch.Tensor, group: str = ..., objective: str = ...) -> torch.Tensor: ...
