"""Small convolutional encoders and decoders for images (the VAE family's conv option)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ConvDecoder", "ConvEncoder"]


def _check_image(event_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(event_shape)
    if len(shape) != 3 or shape[1] % 2 or shape[2] % 2:
        raise ValueError(f"convolutional networks need event_shape (C, H, W) with even H and W; got {shape}")
    return shape[0], shape[1], shape[2]


class ConvEncoder(nn.Module):
    r"""Image :math:`\to` vector: conv 3x3, a stride-2 conv 4x4 (halving H and W), then an MLP head.

    Args:
        event_shape: ``(C, H, W)`` with even ``H`` and ``W``.
        out_features: size of the output.
        width: channels of the first convolution (the second has twice as many).
        hidden: size of the fully connected layer after the convolutions.
        context: size of a vector (e.g. a one-hot label) joined to the features
            before the fully connected layers; 0 for none.

    Example:
        >>> ConvEncoder((1, 8, 8), 6)(torch.zeros(5, 1, 8, 8)).shape
        torch.Size([5, 6])
    """

    def __init__(
        self, event_shape: Sequence[int], out_features: int, width: int = 32, hidden: int = 256, context: int = 0
    ) -> None:
        super().__init__()
        c, h, w = _check_image(event_shape)
        self.context = context
        self.convs = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(2 * width * (h // 2) * (w // 2) + context, hidden), nn.ReLU(), nn.Linear(hidden, out_features)
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        lead = x.shape[:-3]
        h = self.convs(x.reshape(-1, *x.shape[-3:]))
        h = h.reshape(*lead, h.shape[-1])
        if self.context:
            if context is None:
                raise ValueError(f"this encoder takes a context of size {self.context}; got None")
            h = torch.cat([h, context.expand(*h.shape[:-1], context.shape[-1])], dim=-1)
        return self.head(h)


class ConvDecoder(nn.Module):
    r"""Vector :math:`\to` image: an MLP to a half-resolution feature map, a stride-2 transposed conv, a conv 3x3.

    Any leading batch dimensions of the input (e.g. importance samples) are kept; the output has
    shape ``lead + (out_mult, C, H, W)``.

    Args:
        in_features: size of the input vector (latent plus any context).
        event_shape: ``(C, H, W)`` of the output image, even ``H`` and ``W``.
        out_mult: output channels per image channel (2 for a Gaussian's mean
            and scale, the number of levels for a categorical pixel).
        width, hidden: as in :class:`ConvEncoder`.

    Example:
        >>> ConvDecoder(4, (3, 8, 8), out_mult=2)(torch.zeros(7, 5, 4)).shape
        torch.Size([7, 5, 2, 3, 8, 8])
    """

    def __init__(
        self, in_features: int, event_shape: Sequence[int], out_mult: int = 1, width: int = 32, hidden: int = 256
    ) -> None:
        super().__init__()
        c, h, w = _check_image(event_shape)
        self.shape = (c, h, w)
        self.out_mult = out_mult
        self.width = width
        self.head = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 2 * width * (h // 2) * (w // 2)), nn.ReLU()
        )
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, out_mult * c, 3, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        lead = z.shape[:-1]
        f = self.head(z).reshape(-1, 2 * self.width, h // 2, w // 2)
        return self.deconvs(f).reshape(*lead, self.out_mult, c, h, w)
