"""PixelRNN networks: the Row LSTM and the Diagonal BiLSTM between a mask-A convolution and 1x1 outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pyrogen.nn.masked import MaskedConv2d
from pyrogen.nn.pixelcnn import _groups, _OutputHead

__all__ = ["PIXELRNN_CELLS", "PixelRNNNet", "skew", "unskew"]

#: The recurrent layers of :class:`PixelRNNNet`.
PIXELRNN_CELLS = ("row-lstm", "diagonal-bilstm")


def skew(x: torch.Tensor) -> torch.Tensor:
    """``(n, F, H, W)`` to ``(n, F, H, W + H - 1)``: row ``i`` shifted right by ``i`` (zeros elsewhere), so that
    the diagonals of the image are the columns of the result (a pad and two reshapes, no indexing)."""
    n, f, h, w = x.shape
    flat = F.pad(x, (0, h)).reshape(n, f, h * (w + h))
    return flat[..., : h * (w + h - 1)].reshape(n, f, h, w + h - 1)


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """The inverse of :func:`skew`: ``(n, F, H, W + H - 1)`` to ``(n, F, H, W)``."""
    n, f, h, _ = x.shape
    flat = F.pad(x.reshape(n, f, h * (width + h - 1)), (0, h))
    return flat.reshape(n, f, h, width + h)[..., :width]


def _lstm_step(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update from the pre-activations ``(o, f, i, g)`` stacked on the last dim."""
    o, f, i, g = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _shifted(z: torch.Tensor, by: int) -> torch.Tensor:
    """``z`` ``(n, L, P)`` moved ``by`` places along ``L`` (zeros come in): ``out[:, l] = z[:, l - by]``."""
    if by > 0:
        return F.pad(z, (0, 0, by, 0))[:, : z.shape[1]]
    return F.pad(z, (0, 0, 0, -by))[:, -by:]


def _scan(pre: torch.Tensor, state_to_state: nn.Linear, taps: tuple[int, ...]) -> torch.Tensor:
    """An LSTM along the last axis of the pre-activations ``pre`` ``(n, 4F, L, T)``, its state ``(n, L, F)`` along
    ``L`` fed back through a convolution of the previous step's state with one ``F x 4F`` kernel per offset in
    ``taps`` (``+1``: from ``l - 1``), computed as one matrix product and shifts; returns ``(n, F, L, T)``."""
    n, f4, length, _ = pre.shape
    f = f4 // 4
    h = c = pre.new_zeros(n, length, f)
    out = []
    for step in pre.permute(3, 0, 2, 1).unbind(0):  # one (n, L, 4F) slice per step, one backward for all
        z = state_to_state(h).split(f4, dim=-1)
        s = sum(zk if by == 0 else _shifted(zk, by) for zk, by in zip(z, taps, strict=True))
        h, c = _lstm_step(step + s, c)
        out.append(h)
    return torch.stack(out, dim=-1).transpose(1, 2)


class _RowLSTM(nn.Module):
    """Row by row from the top: the input-to-state part a mask-B ``1 x k`` convolution of the current row, the
    state-to-state part a width-3 convolution of the previous row's hidden state (a triangular context above)."""

    taps = (1, 0, -1)

    def __init__(self, features: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        g = _groups(features, channels)
        k = kernel_size
        self.input_to_state = MaskedConv2d(features, 4 * features, (1, k), "B", g, g.repeat(4), (0, k // 2))
        self.state_to_state = nn.Linear(features, 3 * 4 * features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # rows are the steps, the width the state's length: (n, 4F, H, W) -> (n, 4F, W, H)
        return _scan(self.input_to_state(x).transpose(2, 3), self.state_to_state, self.taps).transpose(2, 3)


class _DiagonalLSTM(nn.Module):
    """One direction of the Diagonal BiLSTM: over the skewed map column by column, the input-to-state part a
    mask-B ``1 x 1`` convolution, the state-to-state part a height-2 convolution of the previous column, so the
    state at ``(i, j)`` reads the states at ``(i - 1, j)`` and ``(i, j - 1)``."""

    taps = (1, 0)

    def __init__(self, features: int, channels: int) -> None:
        super().__init__()
        g = _groups(features, channels)
        self.input_to_state = MaskedConv2d(features, 4 * features, 1, "B", g, g.repeat(4))
        self.state_to_state = nn.Linear(features, 2 * 4 * features, bias=False)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        pre = self.input_to_state(x)
        pre = skew(pre if extra is None else pre + extra)
        return unskew(_scan(pre, self.state_to_state, self.taps), x.shape[-1])


class _DiagonalBiLSTM(nn.Module):
    """Left-to-right and right-to-left diagonal LSTMs; the right-to-left map is shifted down one row (its state
    at ``(i, j)`` has read ``(i, j + 1)``, a later pixel), so every output sees only earlier pixels and together
    they see all of them.

    After the shift the right-to-left states only reach rows above, so that direction may also read the pixels
    themselves (a ``1 x 1`` convolution of the image): without it the last pixels of the row above, which no
    mask-A feature of that row contains, would stay out of view of the first pixels of the current row."""

    def __init__(self, features: int, channels: int) -> None:
        super().__init__()
        self.forward_lstm = _DiagonalLSTM(features, channels)
        self.backward_lstm = _DiagonalLSTM(features, channels)
        self.pixels = nn.Conv2d(channels, 4 * features, 1, bias=False)

    def forward(self, h: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        left = self.forward_lstm(h)
        right = self.backward_lstm(h.flip(-1), self.pixels(image.flip(-1))).flip(-1)
        return left + F.pad(right, (0, 0, 1, 0))[:, :, :-1]


class PixelRNNNet(nn.Module):
    r"""PixelRNN: a mask-A convolution, residual recurrent layers (Row LSTM or Diagonal BiLSTM), 1x1 mask-B outputs.

    The output for channel :math:`c` of pixel :math:`(i, j)` depends on the pixels before :math:`(i, j)` in raster
    order and on channels :math:`< c` of pixel :math:`(i, j)`: the first convolution's mask A excludes the current
    pixel, the recurrences only carry state from earlier pixels, and the channel groups of every input-to-state
    convolution are masked as PixelCNN's are. The Diagonal BiLSTM sees every earlier pixel from its first layer;
    the Row LSTM a triangle above the current row that widens with depth.

    Args:
        channels: image channels :math:`C`.
        out_mult: parameters per channel and pixel.
        features: hidden channels (a multiple of ``C``), the LSTMs' state size.
        layers: recurrent layers, each added to its input through a mask-B ``1 x 1`` convolution.
        kernel_size: of the mask-A layer.
        dropout: on each residual branch while training.
        size: ``(H, W)`` for a learned bias per position and hidden channel after the first layer.
        cell: ``"row-lstm"`` or ``"diagonal-bilstm"``.

    Input ``(n, C, H, W)`` floats; output ``(n, C*H*W, out_mult)``.

    References: van den Oord, Kalchbrenner and Kavukcuoglu, 2016, arXiv:1601.06759.
    """

    def __init__(
        self,
        channels: int,
        out_mult: int,
        features: int = 32,
        layers: int = 2,
        kernel_size: int = 7,
        dropout: float = 0.0,
        size: tuple[int, int] | None = None,
        cell: str = "diagonal-bilstm",
    ) -> None:
        super().__init__()
        if cell not in PIXELRNN_CELLS:
            raise ValueError(f"cell must be one of {', '.join(PIXELRNN_CELLS)}; got {cell!r}")
        self.dropout = dropout
        g, gin = _groups(features, channels), torch.arange(channels)
        self.first = MaskedConv2d(channels, features, kernel_size, "A", gin, g)
        self.position = nn.Parameter(torch.zeros(features, *size)) if size is not None else None
        rnn = _RowLSTM if cell == "row-lstm" else _DiagonalBiLSTM
        self.rnns = nn.ModuleList(rnn(features, channels) for _ in range(layers))
        self.projections = nn.ModuleList(MaskedConv2d(features, features, 1, "B", g, g) for _ in range(layers))
        self.head = _OutputHead(features, channels, out_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        if self.position is not None:
            h = h + self.position
        for rnn, proj in zip(self.rnns, self.projections, strict=True):
            out = rnn(h, x) if isinstance(rnn, _DiagonalBiLSTM) else rnn(h)
            h = h + F.dropout(proj(out), self.dropout, self.training)
        return self.head(h)
