"""Small convolutional encoders and decoders for images (the VAE family's conv option)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ConvDecoder", "ConvEncoder", "SpatialConvDecoder", "SpatialConvEncoder"]


def _check_image(event_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(event_shape)
    if len(shape) != 3 or shape[1] % 2 or shape[2] % 2:
        raise ValueError(f"convolutional networks need event_shape (C, H, W) with even H and W; got {shape}")
    return shape[0], shape[1], shape[2]


def _halvings(h: int, w: int) -> int:
    """How many stride-2 stages: one up to 16 x 16 (8 x 8 digits to 4 x 4), two above where H and W allow it
    (28 x 28 MNIST to 7 x 7, as DCGAN-style networks do), so the fully connected layer stays small."""
    return 2 if h * w > 256 and h % 4 == 0 and w % 4 == 0 else 1


class ConvEncoder(nn.Module):
    r"""Image :math:`\to` vector: conv 3x3, stride-2 convs 4x4 (each halving H and W; one up to 16 x 16, two
    above), then an MLP head.

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
        k = _halvings(h, w)
        layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
        for i in range(k):
            layers += [nn.Conv2d(width if i == 0 else 2 * width, 2 * width, 4, stride=2, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(2 * width * (h >> k) * (w >> k) + context, hidden), nn.ReLU(), nn.Linear(hidden, out_features)
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
    r"""Vector :math:`\to` image: an MLP to a feature map at half (above 16 x 16: a quarter) of the resolution,
    stride-2 transposed convs back to it, a conv 3x3.

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
        self.halvings = k = _halvings(h, w)
        self.head = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 2 * width * (h >> k) * (w >> k)), nn.ReLU()
        )
        layers: list[nn.Module] = []
        for i in range(k):
            last = i == k - 1
            layers += [nn.ConvTranspose2d(2 * width, width if last else 2 * width, 4, stride=2, padding=1), nn.ReLU()]
        self.deconvs = nn.Sequential(*layers, nn.Conv2d(width, out_mult * c, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        lead = z.shape[:-1]
        k = self.halvings
        f = self.head(z).reshape(-1, 2 * self.width, h >> k, w >> k)
        return self.deconvs(f).reshape(*lead, self.out_mult, c, h, w)


def _spatial_channels(event_shape: Sequence[int], latent_dim: int) -> tuple[int, int, int]:
    _, h, w = _check_image(event_shape)
    cells = (h // 2) * (w // 2)
    if latent_dim % cells:
        raise ValueError(
            f"a spatial code of {tuple(event_shape)} images has {cells} cells per channel: latent_dim must be a "
            f"multiple of {cells}; got {latent_dim}"
        )
    return latent_dim // cells, h // 2, w // 2


class SpatialConvEncoder(nn.Module):
    r"""Image :math:`\to` a code that is itself a feature map (latent diffusion's first stage, Rombach et al.,
    2022): conv 3x3, a stride-2 conv 4x4, conv 3x3, then a 1x1 conv to ``out_mult`` maps of ``latent_dim /
    (H W / 4)`` channels at half resolution, flattened per map (channel, row, column) and concatenated, so the
    output's first ``latent_dim`` entries are the first map.

    Example:
        >>> SpatialConvEncoder((1, 8, 8), 32)(torch.zeros(5, 1, 8, 8)).shape  # 2 maps of 2 x 4 x 4
        torch.Size([5, 64])
    """

    def __init__(self, event_shape: Sequence[int], latent_dim: int, width: int = 64, out_mult: int = 2) -> None:
        super().__init__()
        c = _check_image(event_shape)[0]
        self.code = _spatial_channels(event_shape, latent_dim)
        self.out_mult = out_mult
        half = max(1, width // 2)
        self.convs = nn.Sequential(
            nn.Conv2d(c, half, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(half, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, out_mult * self.code[0], 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        h = self.convs(x.reshape(-1, *x.shape[-3:]))
        return h.reshape(*lead, -1)


class SpatialConvDecoder(nn.Module):
    r"""A spatial code (flat ``(..., latent_dim)``, read as ``(latent_dim / (H W / 4), H/2, W/2)``) :math:`\to`
    image: conv 3x3, conv 3x3, a stride-2 transposed conv, conv 3x3; the output has shape
    ``lead + (out_mult, C, H, W)``.

    Example:
        >>> SpatialConvDecoder(32, (1, 8, 8), out_mult=2)(torch.zeros(7, 32)).shape
        torch.Size([7, 2, 1, 8, 8])
    """

    def __init__(self, latent_dim: int, event_shape: Sequence[int], out_mult: int = 1, width: int = 64) -> None:
        super().__init__()
        self.shape = _check_image(event_shape)
        self.code = _spatial_channels(event_shape, latent_dim)
        self.out_mult = out_mult
        half = max(1, width // 2)
        self.convs = nn.Sequential(
            nn.Conv2d(self.code[0], width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, half, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(half, out_mult * self.shape[0], 3, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        out = self.convs(z.reshape(-1, *self.code))
        return out.reshape(*lead, self.out_mult, *self.shape)
