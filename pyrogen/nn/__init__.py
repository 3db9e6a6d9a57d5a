"""Networks only: building blocks that the model families share.

Nothing here knows about probability; models in :mod:`pyrogen.models`
combine these networks with distributions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    r"""A multilayer perceptron :math:`x \mapsto W_L \sigma(\dots \sigma(W_1 x + b_1)) + b_L`.

    Args:
        in_features: size of the input's last dimension.
        hidden: sizes of the hidden layers (may be empty).
        out_features: size of the output's last dimension.
        activation: the non-linearity class placed after every hidden layer.

    Raises:
        ValueError: a non-positive size.

    Example:
        >>> net = MLP(4, [16, 16], 3)
        >>> net(torch.zeros(5, 4)).shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        sizes = [in_features, *hidden, out_features]
        for s in sizes:
            if not isinstance(s, int) or s < 1:
                raise ValueError(f"layer sizes must be positive integers; got {sizes}")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)
