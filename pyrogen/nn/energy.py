"""Scalar-output networks for energy-based models: smooth, so that score matching can differentiate twice."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pyrogen.nn.mlp import MLP

__all__ = ["ENERGY_ARCHS", "EnergyNet"]

ENERGY_ARCHS = ("mlp", "conv")


class EnergyNet(nn.Module):
    r"""A network :math:`f: x \mapsto \mathbb R`, ``(n, *event_shape) -> (n,)``, the log density of an EBM up
    to a constant.

    SiLU (swish) activations: a ReLU network's Hessian in :math:`x` is zero almost everywhere, which
    silently removes the trace term of score matching. No output bias: a constant added to :math:`f` is
    absorbed by the unknown normalizer (and would get no gradient from score matching).

    Args:
        event_shape: the shape of one input.
        arch: ``"mlp"`` (flattened input) or ``"conv"`` (images ``(C, H, W)``, H and W divisible by 4: a
            3x3 convolution, two strided 4x4 convolutions, a linear read-out).
        hidden: the MLP's hidden sizes; features: the conv net's base width.

    Example:
        >>> EnergyNet((2,), hidden=(16,))(torch.zeros(5, 2)).shape
        torch.Size([5])
    """

    def __init__(
        self, event_shape: Sequence[int], arch: str = "mlp", hidden: Sequence[int] = (128, 128), features: int = 32
    ) -> None:
        super().__init__()
        shape = tuple(event_shape)
        if arch not in ENERGY_ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ENERGY_ARCHS)}; got {arch!r}")
        if arch == "mlp":
            d = 1
            for s in shape:
                d *= s
            body = MLP(d, list(hidden), 1, activation=nn.SiLU)
            last = body[-1]
            assert isinstance(last, nn.Linear)
            last.register_parameter("bias", None)
            self.net: nn.Module = nn.Sequential(nn.Flatten(), body)
        else:
            if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
                raise ValueError(f"arch='conv' takes images (C, H, W) with H, W divisible by 4; got {shape}")
            c, h, w = shape
            f = features
            self.net = nn.Sequential(
                nn.Conv2d(c, f, 3, padding=1),
                nn.SiLU(),
                nn.Conv2d(f, 2 * f, 4, stride=2, padding=1),
                nn.SiLU(),
                nn.Conv2d(2 * f, 4 * f, 4, stride=2, padding=1),
                nn.SiLU(),
                nn.Flatten(),
                nn.Linear(4 * f * (h // 4) * (w // 4), 1, bias=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
