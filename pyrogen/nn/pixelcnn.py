"""PixelCNN networks: masked convolution stacks, plain and gated."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pyrogen.nn.masked import MaskedConv2d

__all__ = ["GatedPixelCNNNet", "PixelCNNNet"]


def _groups(features: int, channels: int) -> torch.Tensor:
    """Colour group of each of ``features`` hidden channels: equal consecutive blocks."""
    if features % channels:
        raise ValueError(f"features must be a multiple of the {channels} image channels; got {features}")
    return torch.arange(features) * channels // features


class _OutputHead(nn.Module):
    def __init__(self, features: int, channels: int, out_mult: int) -> None:
        super().__init__()
        g = _groups(features, channels)
        self.hidden = MaskedConv2d(features, features, 1, "B", g, g)
        self.out = MaskedConv2d(features, channels * out_mult, 1, "B", g, torch.arange(channels * out_mult) // out_mult)
        self.channels, self.out_mult = channels, out_mult

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        o = self.out(F.relu(self.hidden(F.relu(h))))
        n, _, hh, ww = o.shape
        # (n, C*P, H, W) -> (n, C*H*W, P): positions in (C, H, W) flattening order
        return o.view(n, self.channels, self.out_mult, hh, ww).permute(0, 1, 3, 4, 2).reshape(n, -1, self.out_mult)


class PixelCNNNet(nn.Module):
    r"""PixelCNN: a mask-A convolution, residual mask-B convolutions, 1x1 mask-B outputs.

    The output for channel :math:`c` of pixel :math:`(i, j)` depends on every
    channel of the pixels before :math:`(i, j)` in raster order *that lie in
    its receptive field*, and on channels :math:`< c` of pixel :math:`(i, j)`.
    Stacked masked convolutions leave a **blind spot**: pixels above and to
    the right of the current one grow out of view (a test shows it);
    :class:`GatedPixelCNNNet` removes it.

    Args:
        channels: image channels :math:`C`.
        out_mult: parameters per channel and pixel.
        features: hidden channels (a multiple of ``C``).
        layers: residual mask-B layers.
        kernel_size: of the mask-A layer (the others are 3x3).
        dropout: dropout on each residual branch (training mode only); the
            bundled digits are few, so it is the main regularizer.
        size: ``(H, W)`` to learn a bias per position and hidden channel after
            the first layer (it depends on no pixel, so the masks still hold):
            convolutions share weights across positions, and on small
            centred images such as the digits the position matters.

    Input ``(n, C, H, W)`` floats; output ``(n, C*H*W, out_mult)``.

    References: van den Oord, Kalchbrenner and Kavukcuoglu, 2016, arXiv:1601.06759.
    """

    def __init__(
        self,
        channels: int,
        out_mult: int,
        features: int = 64,
        layers: int = 4,
        kernel_size: int = 7,
        dropout: float = 0.0,
        size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.dropout = dropout
        g, gin = _groups(features, channels), torch.arange(channels)
        self.first = MaskedConv2d(channels, features, kernel_size, "A", gin, g)
        self.position = nn.Parameter(torch.zeros(features, *size)) if size is not None else None
        self.blocks = nn.ModuleList(MaskedConv2d(features, features, 3, "B", g, g) for _ in range(layers))
        self.head = _OutputHead(features, channels, out_mult)

    @property
    def rows_above(self) -> int:
        """How many rows above a pixel's its output reads: the mask-A kernel's half height, one per block."""
        return self.first.kernel_size[0] // 2 + len(self.blocks)

    def forward(self, x: torch.Tensor, top: int = 0) -> torch.Tensor:
        """``x`` holds rows ``top, top + 1, ...`` of the images (all of them by default): the position bias of
        those rows is added. The output of a row is exact once ``x`` holds :attr:`rows_above` rows above it."""
        h = self.first(x)
        if self.position is not None:
            h = h + self.position[:, top : top + h.shape[-2], : h.shape[-1]]
        for block in self.blocks:
            h = h + F.dropout(block(F.relu(h)), self.dropout, self.training)
        return self.head(h)


class _GatedLayer(nn.Module):
    def __init__(self, in_ch: int, features: int, channels: int, kernel_size: int, first: bool, dropout: float) -> None:
        super().__init__()
        self.dropout = dropout
        k = kernel_size
        gin = torch.arange(channels) if first else _groups(features, channels)
        gate = _groups(features, channels).repeat(2)  # the tanh half and the sigmoid half
        g = _groups(features, channels)
        self.v = nn.Conv2d(in_ch, 2 * features, (k // 2 + 1, k), padding=(k // 2, k // 2))
        self.v2h = nn.Conv2d(2 * features, 2 * features, 1)
        self.h = MaskedConv2d(
            in_ch, 2 * features, (1, k // 2 + 1), "A" if first else "B", gin, gate, (0, k // 2), (0, k // 2)
        )
        self.h_out = MaskedConv2d(features, features, 1, "B", g, g)
        self.first = first

    @staticmethod
    def _gate(a: torch.Tensor) -> torch.Tensor:
        t, s = a.chunk(2, dim=1)
        return torch.tanh(t) * torch.sigmoid(s)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = v.shape[-2:]
        v_pre = self.v(v)[:, :, :height, :]  # row i sees rows <= i
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :height, :]  # row i sees rows < i
        h_pre = self.h(h)[:, :, :, :width] + self.v2h(v_down)  # column j sees columns <= j
        h_new = F.dropout(self.h_out(self._gate(h_pre)), self.dropout, self.training)
        return self._gate(v_pre), (h_new if self.first else h + h_new)


class GatedPixelCNNNet(nn.Module):
    r"""Gated PixelCNN: vertical and horizontal stacks with :math:`\tanh \odot \sigma` gates, no blind spot.

    The vertical stack sees the rows above the current one (its output is
    shifted down one row before it feeds the horizontal stack); the horizontal
    stack sees the pixels to the left in the current row, with the colour
    masks of :class:`PixelCNNNet` at the current pixel. Together they cover
    every earlier pixel once the stack is deep enough.

    Args:
        channels: image channels :math:`C`.
        out_mult: parameters per channel and pixel.
        features: hidden channels (a multiple of ``C``).
        layers: gated layers (the first uses mask A).
        kernel_size: odd width of the stacks' kernels.
        dropout: dropout on each horizontal-stack update (training mode only).
        size: ``(H, W)`` to learn a bias per position and hidden channel after
            the first layer (it depends on no pixel, so the masks still hold):
            convolutions share weights across positions, and on small
            centred images such as the digits the position matters.

    Input ``(n, C, H, W)`` floats; output ``(n, C*H*W, out_mult)``.

    References: van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves and
    Kavukcuoglu, 2016, arXiv:1606.05328.
    """

    def __init__(
        self,
        channels: int,
        out_mult: int,
        features: int = 64,
        layers: int = 5,
        kernel_size: int = 3,
        dropout: float = 0.0,
        size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and at least 3; got {kernel_size}")
        self.layers = nn.ModuleList(
            _GatedLayer(channels if i == 0 else features, features, channels, kernel_size, i == 0, dropout)
            for i in range(layers)
        )
        self.head = _OutputHead(features, channels, out_mult)
        self.position = nn.Parameter(torch.zeros(2, features, *size)) if size is not None else None

    @property
    def rows_above(self) -> int:
        """How many rows above a pixel's its output reads: the vertical stack's half kernel per layer, and the
        one-row shift into the horizontal stack."""
        first = self.layers[0]
        assert isinstance(first, _GatedLayer)
        return 1 + len(self.layers) * (first.v.kernel_size[0] - 1)

    def forward(self, x: torch.Tensor, top: int = 0) -> torch.Tensor:
        """``x`` holds rows ``top, top + 1, ...`` of the images (all of them by default): the position bias of
        those rows is added. The output of a row is exact once ``x`` holds :attr:`rows_above` rows above it."""
        v = h = x
        for i, layer in enumerate(self.layers):
            v, h = layer(v, h)
            if i == 0 and self.position is not None:
                bias = self.position[:, :, top : top + v.shape[-2], : v.shape[-1]]
                v, h = v + bias[0], h + bias[1]
        return self.head(h)
